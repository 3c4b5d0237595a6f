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

/* ImportImage: a tarball on the daemon's host. Answers the call. */
void image_job_import_file(struct quiltd *d, struct grpc_call *call, const char *path,
                           char *const *tags, size_t n_tags);
/* UploadImage: the first message starts the job. */
struct image_job *image_job_upload_begin(struct quiltd *d, struct grpc_call *call,
                                         char *const *tags, size_t n_tags);
void image_job_upload_data(struct image_job *j, const uint8_t *p, size_t n);
void image_job_upload_end(struct image_job *j);

#endif
