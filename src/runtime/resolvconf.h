/* The /etc/resolv.conf a container on the bridge network gets. Pure: the
 * caller reads the host's file and passes its text. */
#ifndef QUILT_RUNTIME_RESOLVCONF_H
#define QUILT_RUNTIME_RESOLVCONF_H

#include <stddef.h>

#include "common/qerr.h"

/* glibc's resolver reads at most three nameservers. */
#define RESOLVCONF_MAX_NS 3

/* Renders the container's resolv.conf into out (NUL-terminated).
 *
 * With `dns` (an IPv4 address), that one nameserver. Without, the host's
 * nameservers from host_text (read from host_path, named in the text) that
 * a container can reach: IPv4 and not loopback -- 127.x inside the
 * container is the container itself, and the bridge has no IPv6 -- at most
 * RESOLVCONF_MAX_NS, with the host's last search/domain line and its
 * options lines. When none is usable the text says so in a comment.
 *
 * Returns the number of nameservers written (0 is not an error), -EINVAL
 * for a bad `dns`, -ENOSPC when cap is too small. */
int resolvconf_render(const char *dns, const char *host_text, const char *host_path, char *out,
                      size_t cap, struct qerr *err);

#endif
