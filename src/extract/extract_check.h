/* The rules quilt-extract applies to every archive entry before libarchive
 * writes anything: path normalisation and the kind each path has within the
 * archive. Pure and I/O-free; extraction starts from an empty directory, so
 * the table below knows everything that exists in the tree being built.
 *
 * The rules (docs/images.md repeats them):
 *  - a path is relative; "." and empty components are dropped, a ".."
 *    component, an absolute path, a component over NAME_MAX or a path over
 *    PATH_MAX - 1 bytes rejects the archive;
 *  - every path has one kind for the whole archive: directory or not. A
 *    directory entry, or a path used as the parent of another entry, makes
 *    it a directory; any other entry makes it a non-directory. An entry that
 *    would change a path's kind is a type conflict. Non-directories may
 *    repeat (the last one wins, as with tar); directories may repeat;
 *  - no entry may go through a symlink of the archive ("a" -> "/etc", then
 *    "a/passwd"), nor through a non-directory;
 *  - a hard link must name an earlier non-directory entry of the archive,
 *    by a path that obeys the same rules;
 *  - the root (".") may only be a directory;
 *  - character and block devices need allow_devices; sockets and unknown
 *    types are refused;
 *  - the number of paths the archive creates (entries plus the parent
 *    directories they imply) is limited by max_paths. */
#ifndef QUILT_EXTRACT_CHECK_H
#define QUILT_EXTRACT_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum xc_type {
  XC_DIR,
  XC_FILE,
  XC_SYMLINK,
  XC_HARDLINK,
  XC_FIFO,
  XC_CHR,
  XC_BLK,
  XC_OTHER,
};

struct xc_entry {
  const char *path;      /* as found in the archive */
  enum xc_type type;
  const char *link;      /* hard link target (XC_HARDLINK) */
  unsigned dev_major, dev_minor;
};

struct xc_tree;

/* A tree holding only the root. max_paths 0: no limit. NULL on ENOMEM. */
struct xc_tree *xc_tree_new(uint64_t max_paths);
void xc_tree_free(struct xc_tree *t);
/* Paths recorded so far (entries and implied parents, the root excluded). */
uint64_t xc_tree_paths(const struct xc_tree *t);

/* Normalises an archive path into out (cap >= PATH_MAX): no leading,
 * trailing or doubled slashes, no "." components; "" is the root. Returns
 * NULL, or the reason the path is refused ("absolute path", ...). */
const char *xc_normalize(const char *in, char *out, size_t cap);

enum xc_result {
  XC_OK = 0,
  XC_REJECT = 1,   /* the archive is refused: why says which rule */
  XC_NOMEM = -1,
};

/* Checks one entry and records it. On XC_OK, path_out (and link_out for
 * hard links) hold the normalised paths to hand to libarchive ("." for
 * the root); both need PATH_MAX bytes, and *existed (when not NULL) says
 * whether the path was there already (the root always is). On XC_REJECT,
 * why holds a reason that does not repeat the entry's name. */
enum xc_result xc_check(struct xc_tree *t, const struct xc_entry *e, bool allow_devices,
                        char *path_out, char *link_out, bool *existed, char *why,
                        size_t whylen);

/* Quotes s for a one-line error message: "...", with \", \\ and \xNN for
 * every byte outside printable ASCII; past about 200 bytes of s it ends
 * with "...". Always NUL-terminates out (cap >= 16). */
void xc_quote(const char *s, char *out, size_t cap);

#endif
