#include "extract/diag.h"

#include <stdio.h>
#include <string.h>

size_t diag_line(char *line, size_t cap, const char *fmt, va_list ap) {
  int n = vsnprintf(line, cap - 1, fmt, ap);
  size_t len = n < 0 ? 0 : strnlen(line, cap - 2);
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)line[i] < 0x20)
      line[i] = ' ';
  line[len++] = '\n';
  return len;
}
