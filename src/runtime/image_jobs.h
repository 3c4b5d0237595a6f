/* Image imports driven by the ring: the archive's bytes are read from a
 * file (IORING_OP_READ) or taken from an upload stream, hashed as they pass,
 * and written to the sandboxed extraction helper (IORING_OP_WRITE on its
 * stdin pipe); the helper's exit is waited on its pidfd. Progress streams
 * to the caller; the last message carries the image. */
#ifndef QUILT_RUNTIME_IMAGE_JOBS_H
#define QUILT_RUNTIME_IMAGE_JOBS_H

#include <stddef.h>
#include <stdint.h>

struct quiltd;
struct grpc_call;
struct image_job;

struct image_info;
struct qerr;
/* Called once an import for another operation ends: info on success, else
 * err. Both are valid only during the call. */
typedef void (*image_job_done_fn)(void *arg, const struct image_info *info,
                                  const struct qerr *err);

/* A tarball another operation needs (CreateContainer of an archive path):
 * imported on the ring like ImportImage, then done() is called — at once,
 * before this returns, when the file was imported before. */
void image_job_import_for(struct quiltd *d, const char *path, image_job_done_fn done, void *arg);

/* ImportImage: a tarball on the daemon's host. Answers the call. */
void image_job_import_file(struct quiltd *d, struct grpc_call *call, const char *path,
                           char *const *tags, size_t n_tags);
/* UploadImage: the first message starts the job. */
struct image_job *image_job_upload_begin(struct quiltd *d, struct grpc_call *call,
                                         char *const *tags, size_t n_tags);
void image_job_upload_data(struct image_job *j, const uint8_t *p, size_t n);
void image_job_upload_end(struct image_job *j);

#endif
