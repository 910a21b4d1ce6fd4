/* A tokenized, checked JSON document, private to the text layer: what
 * json_edit.c (paths and edits) needs from json_splice.c (parsing, tokens and
 * keys), and the one escape decoder json_splice.c takes from json_string.c.
 * The public contract is include/relay/json_splice.h.
 *
 * The small helpers stay static inline: they run per token or per key on
 * the path of every SSE event, in both files.
 */
#ifndef RELAY_TEXT_JSON_DOC_H
#define RELAY_TEXT_JSON_DOC_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "relay/json_splice.h"

/* json_splice.c includes jsmn first, with its code; the other files need
 * only its types, laid out the same (parent links on). */
#ifndef JSMN_H
#define JSMN_PARENT_LINKS
#define JSMN_HEADER
#include <jsmn.h>
#undef JSMN_HEADER
#endif

/* Enough for any chat.completion.chunk (they have 20-60 tokens), so the
 * per-event path never allocates. */
#define JSON_STACK_TOKENS 256

typedef struct json_doc_s {
  const char *js;
  int len;
  jsmntok_t *tok;
  int ntok;
  int bs_first; /* offset of the first backslash (len if none), -1 until needed */
  jsmntok_t stack[JSON_STACK_TOKENS];
} json_doc_t;

/* Tokenize json and check it (json_splice.c); a visitor, when given, is
 * told what it follows on the way. Returns 0 or an error of
 * relay/json_splice.h. Always pair with json_doc_dispose(), whatever it
 * returned. */
int relay_json__doc_parse(json_doc_t *d, const char *js, size_t len, const relay_json_visitor_t *vis);

/* Only a document past the stack array holds heap memory. */
static inline void json_doc_dispose(json_doc_t *d) {
  if (d->tok != d->stack) free(d->tok);
  d->tok = d->stack;
}

/* ---- strings (json_string.c) ------------------------------------------- */

/* Decode the escape at s[*i] (a backslash) into o, advancing *i past it:
 * the bytes written (at most the escape's own length) or RELAY_EJSON. */
int relay_json__unescape_one(const char *s, size_t len, size_t *i, char *o);

/* ---- keys (json_splice.c) ---------------------------------------------- */

/* Whether the escaped key raw[0..rlen) decodes to want[0..wlen). */
int relay_json__decoded_eq(const char *raw, size_t rlen, const char *want, size_t wlen);

/* Whether key token k holds a backslash. Most documents have none before
 * their first string with escapes, so one memchr over the document (done on
 * first need) answers for every key before it. */
static inline int json_key_has_bs(json_doc_t *d, int k) {
  if (d->bs_first < 0) {
    const char *p = memchr(d->js, '\\', (size_t)d->len);
    d->bs_first = p ? (int)(p - d->js) : d->len;
  }
  if (d->tok[k].end <= d->bs_first) return 0;
  return memchr(d->js + d->tok[k].start, '\\', (size_t)(d->tok[k].end - d->tok[k].start)) != NULL;
}

/* Whether a raw key (esc: it holds a backslash) decodes to want. A raw key
 * without a backslash is its own decoding, so that case is one memcmp, which
 * the compiler expands inline when want is a literal. */
static inline int json_name_is(const char *raw, size_t rlen, int esc, const char *want,
                               size_t wlen) {
  if (esc) return relay_json__decoded_eq(raw, rlen, want, wlen);
  return rlen == wlen && memcmp(raw, want, wlen) == 0;
}

/* Keys are compared decoded. A decoded key is never longer than its raw
 * text, so a shorter raw key cannot match, and one of the same length only
 * if it has no backslash (want_bs: want itself has one, so cannot). */
static inline int json_key_eq(json_doc_t *d, int k, const char *want, size_t wlen, int want_bs) {
  const char *raw = d->js + d->tok[k].start;
  size_t rlen = (size_t)(d->tok[k].end - d->tok[k].start);
  if (rlen < wlen || (rlen == wlen && want_bs)) return 0;
  return json_name_is(raw, rlen, rlen > wlen && json_key_has_bs(d, k), want, wlen);
}

/* ---- tokens ------------------------------------------------------------ */

/* Where a token's text begins and ends: jsmn leaves the quotes out of string
 * tokens, but edits and separator checks need the whole token. */
static inline int tok_begin(const jsmntok_t *t) { return t->type == JSMN_STRING ? t->start - 1 : t->start; }
static inline int tok_end(const jsmntok_t *t) { return t->type == JSMN_STRING ? t->end + 1 : t->end; }

/* The token after the whole value at token i: its descendants are exactly
 * the following tokens that start before it ends. */
static inline int json_skip(const json_doc_t *d, int i) {
  int end = d->tok[i].end, j = i + 1;
  while (j < d->ntok && d->tok[j].start < end) j++;
  return j;
}

#endif /* RELAY_TEXT_JSON_DOC_H */
