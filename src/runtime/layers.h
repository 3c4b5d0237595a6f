/* Setup layers: <root>/layers/<key>, the upper directories that setup
 * steps produced (docs/setup.md), listed and pruned with the images. */
#ifndef QUILT_RUNTIME_LAYERS_H
#define QUILT_RUNTIME_LAYERS_H

#include <stdint.h>

#include "common/qerr.h"

struct layer_info {
  char key[65];
  uint64_t size_bytes;   /* allocated bytes of the tree */
  int64_t created_ns;
};

/* Calls fn for every layer under <root_dir>/layers (none: no call). A
 * negative return from fn stops the walk and is returned. */
int layers_list(const char *root_dir, int (*fn)(void *arg, const struct layer_info *l),
                void *arg, struct qerr *err);

#endif
