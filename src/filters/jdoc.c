/* Validated jsmn documents for the Responses bridge; see jdoc.h. */
#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include "jdoc.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "relay/json_splice.h"

void relay_jdoc_init(relay_jdoc_t *d) {
  d->js = "";
  d->len = 0;
  d->tok = d->stack;
  d->ntok = 0;
  relay_buf_init(&d->scratch);
}

static void jdoc_free_tokens(relay_jdoc_t *d) {
  if (d->tok != d->stack) free(d->tok);
  d->tok = d->stack;
  d->ntok = 0;
}

void relay_jdoc_dispose(relay_jdoc_t *d) {
  jdoc_free_tokens(d);
  relay_buf_dispose(&d->scratch);
}

/* relay_json_find() runs the full check of json_splice.c (separators,
 * literals, numbers, one top-level value, nesting depth) that jsmn does not
 * do. Only after it has passed is jsmn run here, so that its closing-bracket
 * walk is bounded by the checked depth. The token limit is enforced before
 * anything allocates: a document of len bytes has at most len / 2 + 1
 * values, and a longer one is counted first (jsmn without tokens: one pass,
 * no memory), so that a hostile body cannot make the check hold more than
 * max_tokens tokens either. */
int relay_jdoc_parse(relay_jdoc_t *d, const char *json, size_t len, size_t max_tokens) {
  size_t s, e;
  jsmn_parser p;
  int n;
  jdoc_free_tokens(d);
  d->js = json;
  d->len = len;
  if (len > INT_MAX) return RELAY_ENOMEM;
  if (len / 2 + 1 > max_tokens) {
    jsmn_init(&p);
    n = jsmn_parse(&p, json, len, NULL, 0);
    if (n < 0) return RELAY_EJSON;
    if ((size_t)n > max_tokens) return RELAY_ETOOMANY;
  }
  int rc = relay_json_find(json, len, NULL, 0, &s, &e);
  if (rc) return rc == RELAY_ENOTFOUND ? RELAY_EJSON : rc;
  jsmn_init(&p);
  n = jsmn_parse(&p, json, len, d->stack, RELAY_JDOC_STACK);
  if (n == JSMN_ERROR_NOMEM) {
    jsmn_init(&p);
    n = jsmn_parse(&p, json, len, NULL, 0);
    if (n <= 0) return RELAY_EJSON;
    if ((size_t)n > max_tokens) return RELAY_ETOOMANY;
    jsmntok_t *t = malloc((size_t)n * sizeof *t);
    if (!t) return RELAY_ENOMEM;
    d->tok = t;
    jsmn_init(&p);
    n = jsmn_parse(&p, json, len, t, (unsigned)n);
  }
  if (n <= 0) {
    jdoc_free_tokens(d);
    return RELAY_EJSON;
  }
  if ((size_t)n > max_tokens) {
    jdoc_free_tokens(d);
    return RELAY_ETOOMANY;
  }
  d->ntok = n;
  return 0;
}

/* A value's descendants are exactly the tokens after it that start before
 * it ends. */
int relay_jdoc_next(const relay_jdoc_t *d, int i) {
  int end = d->tok[i].end, j = i + 1;
  while (j < d->ntok && d->tok[j].start < end) j++;
  return j;
}

/* Keys without a backslash (nearly all) compare with one memcmp; the others
 * are decoded into the scratch buffer first. */
int relay_jdoc_str_is(relay_jdoc_t *d, int k, const char *lit) {
  if (k < 0 || d->tok[k].type != JSMN_STRING) return 0;
  const char *raw = d->js + d->tok[k].start;
  size_t rlen = (size_t)(d->tok[k].end - d->tok[k].start), llen = strlen(lit);
  if (!memchr(raw, '\\', rlen)) return rlen == llen && memcmp(raw, lit, llen) == 0;
  d->scratch.len = 0;
  if (relay_json_unescape(raw, rlen, &d->scratch)) return 0;
  return d->scratch.len == llen && memcmp(d->scratch.data, lit, llen) == 0;
}

/* One walk over the object's members; the last match wins. */
int relay_jdoc_get(relay_jdoc_t *d, int obj, const char *key) {
  if (obj < 0 || d->tok[obj].type != JSMN_OBJECT) return -1;
  int found = -1, k = obj + 1;
  for (int m = 0; m < d->tok[obj].size; m++) {
    if (relay_jdoc_str_is(d, k, key)) found = k + 1;
    k = relay_jdoc_next(d, k + 1);
  }
  return found;
}

int relay_jdoc_is_string(const relay_jdoc_t *d, int i) { return i >= 0 && d->tok[i].type == JSMN_STRING; }
int relay_jdoc_is_object(const relay_jdoc_t *d, int i) { return i >= 0 && d->tok[i].type == JSMN_OBJECT; }
int relay_jdoc_is_array(const relay_jdoc_t *d, int i) { return i >= 0 && d->tok[i].type == JSMN_ARRAY; }

static char jdoc_first(const relay_jdoc_t *d, int i) {
  return d->tok[i].type == JSMN_PRIMITIVE ? d->js[d->tok[i].start] : 0;
}

int relay_jdoc_is_null(const relay_jdoc_t *d, int i) { return i < 0 || jdoc_first(d, i) == 'n'; }
int relay_jdoc_is_true(const relay_jdoc_t *d, int i) { return i >= 0 && jdoc_first(d, i) == 't'; }
int relay_jdoc_is_bool(const relay_jdoc_t *d, int i) {
  return i >= 0 && (jdoc_first(d, i) == 't' || jdoc_first(d, i) == 'f');
}
int relay_jdoc_is_number(const relay_jdoc_t *d, int i) {
  char c = i >= 0 ? jdoc_first(d, i) : 0;
  return c == '-' || (c >= '0' && c <= '9');
}

const char *relay_jdoc_body(const relay_jdoc_t *d, int i, size_t *len) {
  *len = (size_t)(d->tok[i].end - d->tok[i].start);
  return d->js + d->tok[i].start;
}

const char *relay_jdoc_raw(const relay_jdoc_t *d, int i, size_t *len) {
  int q = d->tok[i].type == JSMN_STRING;
  *len = (size_t)(d->tok[i].end - d->tok[i].start) + (q ? 2 : 0);
  return d->js + d->tok[i].start - q;
}

int relay_jdoc_decode(const relay_jdoc_t *d, int i, relay_buf_t *out) {
  size_t n;
  const char *p = relay_jdoc_body(d, i, &n);
  return relay_json_unescape(p, n, out);
}

/* Raw control characters pass the validation (most readers accept them) but
 * not every upstream's parser: such a string is decoded and encoded again. */
int relay_jdoc_copy_body(const relay_jdoc_t *d, int i, relay_buf_t *out) {
  size_t n;
  const char *p = relay_jdoc_body(d, i, &n);
  size_t k = 0;
  while (k < n && (unsigned char)p[k] >= 0x20) k++;
  if (k == n) return relay_buf_append(out, p, n) ? RELAY_ENOMEM : 0;
  relay_buf_t tmp;
  relay_buf_init(&tmp);
  int rc = relay_json_unescape(p, n, &tmp);
  if (rc == 0) rc = relay_json_escape(out, tmp.data ? tmp.data : "", tmp.len);
  relay_buf_dispose(&tmp);
  return rc;
}

int relay_jdoc_int(const relay_jdoc_t *d, int i, int64_t *out) {
  if (i < 0 || d->tok[i].type != JSMN_PRIMITIVE) return -1;
  const char *p = d->js + d->tok[i].start;
  int n = d->tok[i].end - d->tok[i].start, k = 0, neg = 0;
  uint64_t acc = 0, lim = (uint64_t)INT64_MAX;
  if (p[0] == '-') {
    neg = k = 1;
    lim++;
  }
  if (k >= n) return -1;
  for (; k < n; k++) {
    if (p[k] < '0' || p[k] > '9') return -1;
    unsigned dg = (unsigned)(p[k] - '0');
    if (acc > (lim - dg) / 10) return -1;
    acc = acc * 10 + dg;
  }
  *out = neg ? (acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc) : (int64_t)acc;
  return 0;
}
