/* JSON documents: tokens, their validation, the visitor and keys; see
 * include/relay/json_splice.h. Escapes are in json_string.c, paths and edits
 * in json_edit.c; what those share with this file is in json_doc.h.
 *
 * jsmn gives tokens with byte offsets; everything here works on those offsets
 * and copies the bytes around an edit unchanged, so no value is ever
 * re-encoded. jsmn is lenient about separators (it accepts "[1 2]" or
 * "{"a":1,}"), so after tokenizing, json_check() walks the tokens once and
 * verifies the bytes *between* them; together that is a full validation
 * without a second tokenizer.
 *
 * JSMN_PARENT_LINKS is on: without it jsmn finds the enclosing container by
 * scanning back over all earlier tokens at each ',' and closing bracket, which
 * is quadratic on bodies with long arrays of objects (a 1 MB logprobs body:
 * 0.9 s instead of 2 ms); with it both are O(depth), and depth is bounded (see
 * relay_json__doc_parse). The parent links also drive json_check(), which is
 * the one pass find_choices makes over the tokens.
 *
 * Cost per streamed chunk (callgrind, -O2, 245-byte OpenAI/LM Studio chunk):
 * jsmn ~4,700 instructions, json_check with the choices pick ~2,400.
 */
#include "relay/json_splice.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include "json_doc.h"

/* Past the stack array, tokens jsmn may add between two depth checks. */
#define JSON_DEPTH_STEP 256

/* ---- keys -------------------------------------------------------------- */

/* Compare an escaped key with a decoded one, decoding as we go. */
int relay_json__decoded_eq(const char *raw, size_t rlen, const char *want, size_t wlen) {
  size_t i = 0, w = 0;
  char tmp[4];
  while (i < rlen) {
    if (raw[i] != '\\') {
      if (w >= wlen || raw[i] != want[w]) return 0;
      i++;
      w++;
      continue;
    }
    int n = relay_json__unescape_one(raw, rlen, &i, tmp);
    if (n < 0 || wlen - w < (size_t)n || memcmp(tmp, want + w, (size_t)n) != 0) return 0;
    w += (size_t)n;
  }
  return w == wlen;
}

/* ---- tokens ------------------------------------------------------------ */

static int json_is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

/* The bytes between two tokens may only be whitespace around one expected
 * separator (none, ',' or ':'); this is what jsmn does not check. */
static int json_gap_slow(const char *js, int from, int to, char sep) {
  while (from < to && json_is_ws(js[from])) from++;
  if (sep) {
    if (from >= to || js[from] != sep) return 0;
    from++;
    while (from < to && json_is_ws(js[from])) from++;
  }
  return from == to;
}

/* Compact JSON has no whitespace, so the gap is usually empty or just the
 * separator: decide those without a loop. */
static inline int json_gap_ok(const char *js, int from, int to, char sep) {
  if (to == from) return sep == 0;
  if (to - from == 1 && sep && js[from] == sep) return 1;
  return json_gap_slow(js, from, to, sep);
}

static int json_is_digit(char c) { return c >= '0' && c <= '9'; }

/* jsmn takes any run of printable bytes as a primitive; only the JSON
 * literals and numbers (RFC 8259 grammar) are accepted here. */
static int json_primitive_ok(const char *p, int n) {
  int i = 0, s;
  switch (p[0]) {
  case 't': return n == 4 && memcmp(p, "true", 4) == 0;
  case 'f': return n == 5 && memcmp(p, "false", 5) == 0;
  case 'n': return n == 4 && memcmp(p, "null", 4) == 0;
  }
  if (p[i] == '-') i++;
  if (i >= n || !json_is_digit(p[i])) return 0;
  if (p[i++] != '0')
    while (i < n && json_is_digit(p[i])) i++;
  if (i < n && p[i] == '.') {
    s = ++i;
    while (i < n && json_is_digit(p[i])) i++;
    if (i == s) return 0;
  }
  if (i < n && (p[i] == 'e' || p[i] == 'E')) {
    i++;
    if (i < n && (p[i] == '+' || p[i] == '-')) i++;
    s = i;
    while (i < n && json_is_digit(p[i])) i++;
    if (i == s) return 0;
  }
  return i == n;
}

/* ---- the visitor ---------------------------------------------------------- */

/* Before a member's key: the end of the value before it (one past), or 0
 * when it is the object's first member. */
static size_t json_prev_value_end(const char *js, size_t key_start) {
  size_t p = key_start;
  while (p > 0 && json_is_ws(js[p - 1])) p--;
  if (p == 0 || js[p - 1] != ',') return 0;
  p--;
  while (p > 0 && json_is_ws(js[p - 1])) p--;
  return p;
}

/* After a member's value: the start of the next member's key, or 0 when the
 * object ends there. */
static size_t json_next_key_start(const char *js, size_t value_end) {
  size_t p = value_end;
  while (json_is_ws(js[p])) p++;
  if (js[p] != ',') return 0;
  p++;
  while (json_is_ws(js[p])) p++;
  return p;
}

void relay_json_member_cuts(const char *json, const relay_json_span_t *members, size_t n, relay_json_span_t *cuts) {
  int kept_before = 0;
  for (size_t i = 0; i < n; i++) {
    const relay_json_span_t *m = &members[i];
    size_t pe = json_prev_value_end(json, m->start);
    /* a member before this one stays unless it is the one removed just before */
    if (pe == 0) kept_before = 0;
    else if (!(i > 0 && members[i - 1].end == pe)) kept_before = 1;
    if (kept_before) {
      cuts[i].start = pe;
      cuts[i].end = m->end;
    } else {
      size_t nk = json_next_key_start(json, m->end);
      cuts[i].start = m->start;
      cuts[i].end = nk ? nk : m->end;
    }
  }
}

int relay_json_key_is(const char *raw, size_t len, int escaped, const char *want, size_t wlen) {
  return json_name_is(raw, len, escaped, want, wlen);
}

/* An integer must be a plain one that fits a long. */
int relay_json_parse_long(const char *json, const relay_json_value_t *v, long *out) {
  const char *p = json + v->start;
  size_t n = v->end - v->start, i = 0;
  int neg = 0;
  unsigned long acc = 0, lim;
  if (v->type != RELAY_JSON_PRIMITIVE || n == 0) return RELAY_EJSON;
  if (p[0] == '-') neg = i = 1;
  lim = neg ? (unsigned long)LONG_MAX + 1 : (unsigned long)LONG_MAX;
  if (i >= n) return RELAY_EJSON;
  for (; i < n; i++) {
    if (!json_is_digit(p[i])) return RELAY_EJSON;
    unsigned dgt = (unsigned)(p[i] - '0');
    if (acc > (lim - dgt) / 10) return RELAY_EJSON;
    acc = acc * 10 + dgt;
  }
  *out = neg ? (acc == (unsigned long)LONG_MAX + 1 ? LONG_MIN : -(long)acc) : (long)acc;
  return 0;
}

int relay_json_is_null(const char *json, const relay_json_value_t *v) {
  return v->type == RELAY_JSON_PRIMITIVE && json[v->start] == 'n';
}

static relay_json_type_t json_type_of(const jsmntok_t *t) {
  switch (t->type) {
    case JSMN_OBJECT: return RELAY_JSON_OBJECT;
    case JSMN_ARRAY: return RELAY_JSON_ARRAY;
    case JSMN_STRING: return RELAY_JSON_STRING;
    default: return RELAY_JSON_PRIMITIVE;
  }
}

/* Tell the visitor of value token i (wanted with tag); the tag it returns
 * follows i when i is a container. */
static int json_visit_value(const json_doc_t *d, const relay_json_visitor_t *vis, int tag, int i) {
  const jsmntok_t *t = &d->tok[i];
  relay_json_value_t v = {json_type_of(t), (size_t)tok_begin(t), (size_t)tok_end(t), t->size};
  return vis->value(vis->ud, tag, &v);
}

/* ---- validation -------------------------------------------------------- */

/* Leave the innermost open container: its closing bracket may follow only
 * whitespace. A container that is a member's value sits under its key, which
 * is left at the same time. */
static inline int json_close(const jsmntok_t *t, const char *js, int *cur, int *cur_type,
                             int *pos, int *depth) {
  const jsmntok_t *c = &t[*cur];
  if (!json_gap_ok(js, *pos, c->end - 1, 0)) return 0;
  --*depth;
  *pos = c->end;
  *cur = c->parent;
  if (*cur >= 0 && t[*cur].type == JSMN_STRING) *cur = t[*cur].parent;
  *cur_type = *cur >= 0 ? t[*cur].type : JSMN_UNDEFINED;
  return 1;
}

/* One pass over the tokens in document order, keeping `cur` (the innermost
 * open container), `pos` (where the last token ended), `first` (nothing seen
 * yet inside cur) and `key` (a member key whose value comes next). Before
 * each token the containers it is no longer inside are closed, then the gap
 * before it must hold exactly the separator its place calls for: nothing or
 * ',' between items, ':' after a key. Object members must be string keys with
 * exactly one value (jsmn counts a key's values in its size, and that value
 * is then the very next token); a string in value position must not have
 * been given a value itself. With a pick, the choices are collected on the
 * way, so find_choices needs no second walk. */
static int json_check(json_doc_t *d, const relay_json_visitor_t *vis) {
  const jsmntok_t *t = d->tok;
  const char *js = d->js;
  int cur = -1, cur_type = JSMN_UNDEFINED, pos = 0, first = 1, key = -1, depth = 0, n = d->ntok;
  /* With a visitor: the tag each open container is followed with, by depth
   * (0: not followed), and the tag the next value is wanted with. */
  int tags[RELAY_JSON_MAX_NESTING + 1];
  int want = 0;
  tags[0] = 0;
  for (int i = 0; i < n; i++) {
    const jsmntok_t *tk = &t[i];
    int parent = tk->parent;
    char sep = ':';
    if (key < 0 || parent != key) {
      if (key >= 0) return RELAY_EJSON;
      while (parent != cur) { /* a parent never entered (a primitive) runs into -1 */
        if (cur < 0 || !json_close(t, js, &cur, &cur_type, &pos, &depth)) return RELAY_EJSON;
        first = 0;
      }
      if (cur < 0 && i != 0) return RELAY_EJSON; /* a second top-level value */
      sep = first ? 0 : ',';
      first = 0;
      if (cur_type == JSMN_OBJECT) {
        if (tk->type != JSMN_STRING || tk->size != 1) return RELAY_EJSON;
        if (!json_gap_ok(js, pos, tk->start - 1, sep)) return RELAY_EJSON;
        pos = tk->end + 1;
        key = i;
        if (vis && tags[depth])
          want = vis->key(vis->ud, tags[depth], js + tk->start, (size_t)(tk->end - tk->start), json_key_has_bs(d, i));
        continue;
      }
    }
    int follow = 0;
    if (vis) {
      /* A member's value, an element of a followed array, or the root. */
      int tag = key >= 0 ? want : (cur_type == JSMN_ARRAY ? tags[depth] : (cur < 0 ? -1 : 0));
      if (tag > 0) follow = json_visit_value(d, vis, tag, i);
      else if (tag < 0 && vis->root) follow = json_visit_value(d, vis, vis->root, i);
      want = 0;
    }
    key = -1;
    if (!json_gap_ok(js, pos, tok_begin(tk), sep)) return RELAY_EJSON;
    switch (tk->type) {
    case JSMN_STRING:
      if (tk->size != 0) return RELAY_EJSON; /* a value given a value */
      pos = tk->end + 1;
      break;
    case JSMN_PRIMITIVE:
      if (!json_primitive_ok(js + tk->start, tk->end - tk->start)) return RELAY_EJSON;
      pos = tk->end;
      break;
    case JSMN_OBJECT:
    case JSMN_ARRAY:
      if (++depth > RELAY_JSON_MAX_NESTING) return RELAY_ETOODEEP;
      tags[depth] = follow;
      pos = tk->start + 1;
      first = 1;
      cur = i;
      cur_type = tk->type;
      break;
    default:
      return RELAY_EJSON;
    }
  }
  if (key >= 0) return RELAY_EJSON;
  while (cur >= 0) /* close what is still open at the end */
    if (!json_close(t, js, &cur, &cur_type, &pos, &depth)) return RELAY_EJSON;
  return json_gap_ok(js, pos, d->len, 0) ? 0 : RELAY_EJSON;
}


/* How many containers are open around jsmn's current position. */
static int json_open_depth(const jsmntok_t *t, int k) {
  int depth = 0;
  for (; k >= 0; k = t[k].parent)
    if (t[k].type == JSMN_OBJECT || t[k].type == JSMN_ARRAY) depth++;
  return depth;
}

/* Tokenize into the stack array first; when jsmn runs out of tokens it can be
 * resumed with a bigger array (its parser state stays at the token it could
 * not store), so big documents cost one copy per doubling, never a re-parse.
 * jsmn closes a bracket by walking up from the last token, which costs the
 * nesting depth, so deep nesting ("[[[[...") would be quadratic: past the
 * stack array jsmn is stopped every JSON_DEPTH_STEP tokens to check the
 * depth, which bounds the walk by RELAY_JSON_MAX_NESTING + JSON_DEPTH_STEP.
 * json_check() then applies the limit exactly. Always pair with
 * json_doc_dispose(). */
int relay_json__doc_parse(json_doc_t *d, const char *js, size_t len, const relay_json_visitor_t *vis) {
  jsmn_parser p;
  unsigned cap = JSON_STACK_TOKENS, lim = JSON_STACK_TOKENS;
  d->js = js;
  d->tok = d->stack;
  d->ntok = 0;
  d->bs_first = -1;
  if (len > INT_MAX) return RELAY_ENOMEM;
  d->len = (int)len;
  jsmn_init(&p);
  for (;;) {
    int r = jsmn_parse(&p, js, len, d->tok, lim);
    if (r >= 0) {
      d->ntok = r;
      break;
    }
    if (r != JSMN_ERROR_NOMEM) return RELAY_EJSON;
    if (json_open_depth(d->tok, p.toksuper) > RELAY_JSON_MAX_NESTING) return RELAY_ETOODEEP;
    if (p.toknext == cap) {
      if (cap >= RELAY_JSON_MAX_TOKENS) return RELAY_ETOOBIG;
      if (cap > (UINT_MAX / 2) / sizeof(jsmntok_t)) return RELAY_ENOMEM;
      jsmntok_t *nt = d->tok == d->stack ? malloc(2 * cap * sizeof *nt)
                                         : realloc(d->tok, 2 * cap * sizeof *nt);
      if (!nt) return RELAY_ENOMEM;
      if (d->tok == d->stack) memcpy(nt, d->stack, cap * sizeof *nt);
      d->tok = nt;
      cap *= 2;
    }
    lim = cap - p.toknext > JSON_DEPTH_STEP ? p.toknext + JSON_DEPTH_STEP : cap;
  }
  if (d->ntok == 0) return RELAY_EJSON;
  return json_check(d, vis);
}

/* One jsmn pass and one pass over its tokens; the token array lives on the
 * stack, so a chunk costs no allocation. */
int relay_json_visit(const char *json, size_t len, const relay_json_visitor_t *v) {
  json_doc_t d;
  int rc = relay_json__doc_parse(&d, json, len, v);
  json_doc_dispose(&d);
  return rc;
}
