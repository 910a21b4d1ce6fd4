/* Lossless JSON edits with byte offsets from jsmn.
 *
 * The stock rewrite path never re-encodes upstream JSON: it finds the string it
 * rewrites, decodes it, and splices the re-encoded result back in place, so that
 * every other byte (key order, number spelling, [] and null) is kept.
 */
#ifndef RELAY_JSON_SPLICE_H
#define RELAY_JSON_SPLICE_H

#include <stddef.h>

#include "relay/buf.h"

#define RELAY_JSON_EINVAL -1   /* not valid JSON, or not the expected shape */
#define RELAY_JSON_ENOMEM -2
#define RELAY_JSON_ENOTFOUND -3 /* path does not exist */
#define RELAY_JSON_ETOODEEP -4

#define RELAY_JSON_MAX_CHOICES 64

/* One element of choices[], as the rewrite needs it. All offsets are byte
 * offsets into the JSON text passed to relay_json_find_choices(). */
typedef struct relay_json_choice_s {
  long index;              /* the element's "index" member, else its array position */
  int has_container;       /* the "delta" / "message" object exists */
  size_t container_open;   /* offset of its '{' */
  int container_empty;     /* the object has no members */
  int has_content;         /* "content" member present in the container */
  int content_is_string;   /* its value is a string (else null or other) */
  size_t content_start;    /* value token start (the opening quote for strings) */
  size_t content_end;      /* one past the value token (past the closing quote) */
  int has_reasoning;       /* an existing reasoning field name given by caller */
  size_t reasoning_start, reasoning_end;
  int finished;            /* "finish_reason" present and not null */
} relay_json_choice_t;

/* Parse a chat completion chunk or body and describe choices[i].<container>.
 * container is "delta" (SSE chunks) or "message" (JSON bodies).
 * reasoning_key, if not NULL, is also located (e.g. "reasoning_content").
 * Returns the number of choices found (>= 0) or a negative code. A document
 * without "choices" gives 0. */
int relay_json_find_choices(const char *json, size_t len, const char *container,
                            const char *reasoning_key, relay_json_choice_t *out,
                            size_t max);

/* Decode the body of a JSON string token (text between the quotes) into out:
 * all escapes including \uXXXX and surrogate pairs. Lone surrogates decode to
 * U+FFFD. Returns 0 or a negative code. */
int relay_json_unescape(const char *s, size_t len, relay_buf_t *out);

/* Append s encoded as a JSON string *without* the surrounding quotes: escapes
 * '"', '\\' and control characters only (never '/', never non-ASCII). */
int relay_json_escape(relay_buf_t *out, const char *s, size_t len);

/* A path into a document: object keys and array indexes. */
typedef struct relay_json_path_seg_s {
  const char *key; /* NULL for an array index */
  size_t key_len;
  long index;
} relay_json_path_seg_t;

/* Locate the value at path. *start/*end are the value token's offsets. */
int relay_json_find(const char *json, size_t len, const relay_json_path_seg_t *path,
                    size_t depth, size_t *start, size_t *end);

/* Write json with the value at path replaced by raw_value (raw JSON text), or
 * the member/element removed when raw_value is NULL. Setting a missing last key
 * of an existing object inserts it (as the object's last member). Everything
 * else is copied byte for byte. */
int relay_json_edit(const char *json, size_t len, const relay_json_path_seg_t *path,
                    size_t depth, const char *raw_value, size_t raw_len, relay_buf_t *out);

const char *relay_json_strerror(int err);

#endif
