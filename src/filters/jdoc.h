/* A validated, tokenized JSON document for the Responses bridge: jsmn tokens
 * (strict, with parent links) over a document that relay_json_find() has
 * checked first, so that every walk below works on well-formed JSON nested at
 * most RELAY_JSON_MAX_NESTING deep. Values are read through their byte
 * offsets; nothing is ever re-encoded. Private to src/filters.
 *
 * Costs: parsing is three linear passes (validation, a count when the stack
 * array is too small, tokenizing); relay_jdoc_next() is linear in the value
 * it skips, so a walk over the members of an object costs the object's size.
 */
#ifndef RELAY_FILTERS_JDOC_H
#define RELAY_FILTERS_JDOC_H

#include <stddef.h>
#include <stdint.h>

#include "relay/buf.h"

#ifndef JSMN_H
#define JSMN_PARENT_LINKS
#define JSMN_HEADER
#include <jsmn.h>
#undef JSMN_HEADER
#endif

/* Tokens held inside the document struct: a chat chunk has 20-60, so the
 * streaming path never allocates. */
#define RELAY_JDOC_STACK 128

typedef struct relay_jdoc_s {
  const char *js;
  size_t len;
  jsmntok_t *tok;
  int ntok;
  relay_buf_t scratch; /* decoded keys with escapes */
  jsmntok_t stack[RELAY_JDOC_STACK];
} relay_jdoc_t;

void relay_jdoc_init(relay_jdoc_t *d);
/* Validate and tokenize json. Returns 0, RELAY_EJSON (not JSON),
 * RELAY_ETOODEEP (nested too deep), RELAY_ETOOMANY (more than
 * max_tokens values, keys included) or RELAY_ENOMEM. The document may be
 * parsed again after another; relay_jdoc_dispose() frees the last one. */
int relay_jdoc_parse(relay_jdoc_t *d, const char *json, size_t len, size_t max_tokens);
void relay_jdoc_dispose(relay_jdoc_t *d);

/* The token after the whole value at i (its next sibling, if any). */
int relay_jdoc_next(const relay_jdoc_t *d, int i);
/* The value of the member `key` of object token obj (the last one when the
 * key repeats, as JavaScript does), or -1. Keys compare decoded. */
int relay_jdoc_get(relay_jdoc_t *d, int obj, const char *key);
/* Whether key or string token k decodes to lit. */
int relay_jdoc_str_is(relay_jdoc_t *d, int k, const char *lit);

int relay_jdoc_is_string(const relay_jdoc_t *d, int i);
int relay_jdoc_is_object(const relay_jdoc_t *d, int i);
int relay_jdoc_is_array(const relay_jdoc_t *d, int i);
/* i < 0 (absent) counts as null. */
int relay_jdoc_is_null(const relay_jdoc_t *d, int i);
int relay_jdoc_is_bool(const relay_jdoc_t *d, int i);
int relay_jdoc_is_true(const relay_jdoc_t *d, int i);
int relay_jdoc_is_number(const relay_jdoc_t *d, int i);

/* The encoded body of string token i (between its quotes). */
const char *relay_jdoc_body(const relay_jdoc_t *d, int i, size_t *len);
/* The whole value's text (quotes included for strings). */
const char *relay_jdoc_raw(const relay_jdoc_t *d, int i, size_t *len);
/* Append the decoded text of string token i to out. */
int relay_jdoc_decode(const relay_jdoc_t *d, int i, relay_buf_t *out);
/* Append string token i to out as an encoded string body (no quotes) that a
 * strict reader accepts: the bytes as they came, unless the string holds raw
 * control characters, which are escaped then. */
int relay_jdoc_copy_body(const relay_jdoc_t *d, int i, relay_buf_t *out);
/* An integer number token (no fraction or exponent) that fits int64_t.
 * Returns 0 or -1. */
int relay_jdoc_int(const relay_jdoc_t *d, int i, int64_t *out);

#endif
