/* Any protobuf-c message as JSON, driven by its descriptor: what the
 * container commands print for --json.
 *
 * Mapping: proto field names as keys; every field, defaults included (so
 * scripts can rely on the keys); enums by value name; 64-bit integers as
 * numbers; bytes as a string (invalid UTF-8 becomes U+FFFD: the bytes are
 * container output, meant to be read); map fields as objects; an unset
 * message field as null. */
#ifndef QUILT_CLI_PBJSON_H
#define QUILT_CLI_PBJSON_H

#include <stdbool.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "cli/output.h"

/* Writes m as an object value (key NULL at the top level or in an array). */
void json_message(struct json_out *j, const char *key, const ProtobufCMessage *m);

/* m as one top-level document and a newline: indented, or on one line for
 * JSON Lines streams (events, logs). */
void json_print_message(FILE *f, const ProtobufCMessage *m, bool pretty);

#endif
