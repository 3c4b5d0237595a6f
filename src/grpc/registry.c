#include "grpc/registry.h"

#include <string.h>

#include "common/cleanup.h"

void grpc_registry_init(struct grpc_registry *r) {
  const struct grpc_service *svcs[] = {&svc_quilt, &svc_health, &svc_reflection};
  r->count = 0;
  for (unsigned s = 0; s < ARRAY_SIZE(svcs); s++)
    for (unsigned i = 0; i < svcs[s]->count && r->count < ARRAY_SIZE(r->methods); i++) {
      r->methods[r->count] = &svcs[s]->methods[i];
      r->names[r->count] = svcs[s]->methods[i].path;
      r->count++;
    }
}

const struct grpc_method *grpc_registry_find(const struct grpc_registry *r, const char *path,
                                             size_t len, unsigned *index) {
  for (unsigned i = 0; i < r->count; i++) {
    const char *p = r->methods[i]->path;
    if (strncmp(p, path, len) == 0 && p[len] == 0) {
      *index = i;
      return r->methods[i];
    }
  }
  return NULL;
}
