/* Reading the JSON of an image archive (quilt-extract, sandboxed): a
 * `docker save` manifest.json or an OCI image layout's index.json, the
 * image manifest and the image config. Uses jansson (Debian's
 * libjansson-dev), only in the helper. Every file is loaded through a
 * callback that reads it from the spool (it refuses paths that leave it);
 * the functions return 0, or -1 with a one-line reason in why. */
#ifndef QUILT_EXTRACT_MANIFEST_H
#define QUILT_EXTRACT_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>

/* Returns the contents of the archive file at path (malloc'd, NUL added),
 * or NULL with a reason in why. */
typedef char *(*mf_load_fn)(void *arg, const char *path, size_t *len, char *why, size_t whylen);

struct mf_plan {
  char *config;          /* archive path of the config JSON */
  char **layers;         /* archive paths of the layer tars, bottom first */
  size_t n_layers;
  char **repo_tags;      /* docker save's RepoTags */
  size_t n_repo_tags;
};

/* docker: read manifest.json (its first image); otherwise index.json (the
 * OCI layout; the manifest for this machine's platform, else the first). */
int mf_plan_read(bool docker, mf_load_fn load, void *arg, struct mf_plan *out, char *why,
                 size_t whylen);
void mf_plan_free(struct mf_plan *p);

/* Turns an image config into quilt's line format (docs/images.md):
 * "env=K=V", "arg=X" (Entrypoint then Cmd), "workdir=D", "user=U", with
 * "\\" and "\n" escaping backslashes and newlines; plus "tag=T" for each of
 * tags. *out is malloc'd. */
int mf_config_lines(const char *json, size_t len, char *const *tags, size_t n_tags, char **out,
                    size_t *out_len, char *why, size_t whylen);

#endif
