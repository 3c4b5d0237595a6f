/* libFuzzer harness: quilt-extract (src/extract/quilt-extract.c), the
 * sandboxed tar extractor of the image store, minus the sandbox: the same
 * extract() reads the archive from a memfd (as it reads its stdin) and
 * writes the tree into a fresh temporary directory, running the entry
 * checks (extract_check.c), the image-archive spool, the manifests
 * (manifest.c) and the layer operations (layers.c).
 *
 * The helper's die() ends the process; built with QUILT_EXTRACT_FUZZ it
 * calls fuzz_bail, which jumps back here, and everything the run held is
 * reachable from its struct state and freed (state_release). Descriptors a
 * refused archive left open are closed; after an archive that was
 * accepted, none may be left.
 *
 * Input: byte 0: bit 0 --rootfs-dir (image archives recognised), bit 1 a
 * 16-entry limit, bit 2 a 4 KiB size limit; the rest is the archive. */
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <sys/mman.h>

#include "extract/quilt-extract.c"

#define MAX_FD 256

struct harness {
  jmp_buf bail;
  char base[4096];
};

/* libFuzzer gives the callback no context: the one piece of global state. */
static struct harness *h;

static void fuzz_bail(int code) { longjmp(h->bail, code); }

static void state_release(struct state *s) {
  if (s->in)
    archive_read_free(s->in);
  if (s->out)
    archive_write_free(s->out);
  xc_tree_free(s->tree);
  for (size_t i = 0; i < s->n_late; i++)
    free(s->late[i].path);
  free(s->late);
  spool_free(&s->sp);
  if (s->root)
    archive_entry_free(s->root);
  mf_plan_free(&s->plan);
  free(s->cjson);
  free(s->lines);
  strv_free(&s->opaque);
  strv_free(&s->gone);
}

static void open_fds(bool out[MAX_FD]) {
  for (int fd = 0; fd < MAX_FD; fd++)
    out[fd] = fcntl(fd, F_GETFD) >= 0;
}

/* Returns how many descriptors were open that were not before. */
static int close_new_fds(const bool before[MAX_FD]) {
  int n = 0;
  for (int fd = 0; fd < MAX_FD; fd++)
    if (!before[fd] && fcntl(fd, F_GETFD) >= 0) {
      close(fd);
      n++;
    }
  return n;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? -1 : 0;
}

static void remove_base(void) { rmdir(h->base); }

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (!setlocale(LC_CTYPE, "C.UTF-8"))
    setlocale(LC_CTYPE, "C");
  h = calloc(1, sizeof *h);
  const char *tmp = getenv("TMPDIR");
  if (!h)
    abort();
  snprintf(h->base, sizeof h->base, "%s/quilt-fuzz-extract-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(h->base))
    abort();
  atexit(remove_base);
  (void)parse_args; /* the helper's command line is not fuzzed */
  return 0;
}

static int archive_fd(const uint8_t *p, size_t n) {
  int fd = memfd_create("archive", MFD_CLOEXEC);
  if (fd < 0 || write(fd, p, n) != (ssize_t)n || lseek(fd, 0, SEEK_SET) != 0)
    abort();
  return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  bool fds[MAX_FD];
  open_fds(fds);
  struct opts o = {
      .rootfs_dir = data[0] & 1 ? "rootfs" : NULL,
      .max_entries = data[0] & 2 ? 16 : 4096,
      .max_bytes = data[0] & 4 ? 4096 : 8u << 20,
  };
  o.in_fd = archive_fd(data + 1, size - 1);
  char run[4200];
  snprintf(run, sizeof run, "%s/run", h->base);
  if (mkdir(run, 0700) < 0 || chdir(run) < 0)
    abort();
  struct state s = {.o = &o, .ctx = "", .rootfd = -1, .topfd = -1, .sp = {.fd = -1}};
  volatile bool accepted = false; /* read after the jump */
  if (setjmp(h->bail) == 0) {
    extract(&s);
    accepted = true;
  }
  state_release(&s);
  close(o.in_fd);
  int leaked = close_new_fds(fds);
  if (chdir(h->base) < 0 || nftw(run, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
    abort();
  if (accepted && leaked)
    abort(); /* an accepted archive left a descriptor open */
  return 0;
}
