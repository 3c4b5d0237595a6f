/* The helpers' last words: quilt-extract and quilt-copy end with one line
 * on stderr that quiltd reads back as the error message. */
#ifndef QUILT_EXTRACT_DIAG_H
#define QUILT_EXTRACT_DIAG_H

#include <stdarg.h>
#include <stddef.h>

/* Formats fmt into line (cap >= 2) as exactly one newline-terminated line:
 * control characters a path or libarchive put in it become spaces, so the
 * message cannot be split or forged. Returns its length. */
size_t diag_line(char *line, size_t cap, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
