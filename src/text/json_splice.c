/* Lossless JSON lookups and edits; see include/relay/json_splice.h.
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
 * json_doc_parse). The parent links also drive json_check(), which is the
 * one pass find_choices makes over the tokens.
 *
 * Cost per streamed chunk (callgrind, -O2, 245-byte OpenAI/LM Studio chunk):
 * jsmn ~4,700 instructions, json_check with the choices pick ~2,400.
 */
#include "relay/json_splice.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

/* Enough for any chat.completion.chunk (they have 20-60 tokens), so the
 * per-event path never allocates. */
#define JSON_STACK_TOKENS 256
/* Past the stack array, tokens jsmn may add between two depth checks. */
#define JSON_DEPTH_STEP 256

typedef struct json_doc_s {
  const char *js;
  int len;
  jsmntok_t *tok;
  int ntok;
  int bs_first; /* offset of the first backslash (len if none), -1 until needed */
  jsmntok_t stack[JSON_STACK_TOKENS];
} json_doc_t;


/* ---- strings ----------------------------------------------------------- */

static int json_hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

static int json_utf8(uint32_t cp, char *o) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Decode the escape at s[*i] (a backslash) into o, advancing *i past it.
 * Returns the number of bytes written (never more than the escape's own
 * length, which lets callers decode in place into a buffer of len bytes) or
 * RELAY_EJSON. A high surrogate takes the low one that follows it;
 * any surrogate left alone becomes U+FFFD, as the WHATWG decoders do. */
static int json_unescape_one(const char *s, size_t len, size_t *i, char *o) {
  size_t k = *i + 1;
  if (k >= len) return RELAY_EJSON;
  char c = s[k++];
  switch (c) {
  case '"': case '\\': case '/': o[0] = c; break;
  case 'b': o[0] = '\b'; break;
  case 'f': o[0] = '\f'; break;
  case 'n': o[0] = '\n'; break;
  case 'r': o[0] = '\r'; break;
  case 't': o[0] = '\t'; break;
  case 'u': {
    if (len - k < 4) return RELAY_EJSON;
    int cp = json_hex4(s + k);
    if (cp < 0) return RELAY_EJSON;
    k += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      int lo = len - k >= 6 && s[k] == '\\' && s[k + 1] == 'u' ? json_hex4(s + k + 2) : -1;
      if (lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        k += 6;
      } else {
        cp = 0xFFFD;
      }
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
      cp = 0xFFFD;
    }
    *i = k;
    return json_utf8((uint32_t)cp, o);
  }
  default:
    return RELAY_EJSON;
  }
  *i = k;
  return 1;
}

/* Runs without a backslash are copied with memcpy; the output never grows
 * past len bytes, so one reserve covers the whole string. */
int relay_json_unescape(const char *s, size_t len, relay_buf_t *out) {
  if (len == 0) return 0;
  if (relay_buf_reserve(out, len)) return RELAY_ENOMEM;
  char *o = out->data + out->len;
  size_t i = 0;
  while (i < len) {
    const char *bs = memchr(s + i, '\\', len - i);
    size_t run = bs ? (size_t)(bs - (s + i)) : len - i;
    memcpy(o, s + i, run);
    o += run;
    i += run;
    if (!bs) break;
    int n = json_unescape_one(s, len, &i, o);
    if (n < 0) return n; /* out->len not yet moved: out is unchanged */
    o += n;
  }
  out->len = (size_t)(o - out->data);
  return 0;
}

/* Only what JSON requires is escaped, so text that needs no escaping is one
 * memcpy, and '/' and UTF-8 stay as the upstream would have sent them. */
int relay_json_escape(relay_buf_t *out, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t old = out->len, run = 0;
  if (relay_buf_reserve(out, len)) return RELAY_ENOMEM;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    char esc[6] = {'\\', 0, 0, 0, 0, 0};
    size_t n = 2;
    switch (c) {
    case '"': esc[1] = '"'; break;
    case '\\': esc[1] = '\\'; break;
    case '\b': esc[1] = 'b'; break;
    case '\f': esc[1] = 'f'; break;
    case '\n': esc[1] = 'n'; break;
    case '\r': esc[1] = 'r'; break;
    case '\t': esc[1] = 't'; break;
    default:
      memcpy(esc + 1, "u00", 3);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      n = 6;
    }
    if (relay_buf_append(out, s + run, i - run) || relay_buf_append(out, esc, n)) {
      out->len = old;
      return RELAY_ENOMEM;
    }
    run = i + 1;
  }
  if (relay_buf_append(out, s + run, len - run)) {
    out->len = old;
    return RELAY_ENOMEM;
  }
  return 0;
}

/* ---- keys -------------------------------------------------------------- */

/* Compare an escaped key with a decoded one, decoding as we go. */
static int json_decoded_eq(const char *raw, size_t rlen, const char *want, size_t wlen) {
  size_t i = 0, w = 0;
  char tmp[4];
  while (i < rlen) {
    if (raw[i] != '\\') {
      if (w >= wlen || raw[i] != want[w]) return 0;
      i++;
      w++;
      continue;
    }
    int n = json_unescape_one(raw, rlen, &i, tmp);
    if (n < 0 || wlen - w < (size_t)n || memcmp(tmp, want + w, (size_t)n) != 0) return 0;
    w += (size_t)n;
  }
  return w == wlen;
}

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
  if (esc) return json_decoded_eq(raw, rlen, want, wlen);
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
static int tok_begin(const jsmntok_t *t) { return t->type == JSMN_STRING ? t->start - 1 : t->start; }
static int tok_end(const jsmntok_t *t) { return t->type == JSMN_STRING ? t->end + 1 : t->end; }

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

/* The token after the whole value at token i: its descendants are exactly
 * the following tokens that start before it ends. */
static int json_skip(const json_doc_t *d, int i) {
  int end = d->tok[i].end, j = i + 1;
  while (j < d->ntok && d->tok[j].start < end) j++;
  return j;
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

static void json_doc_dispose(json_doc_t *d) {
  if (d->tok != d->stack) free(d->tok);
  d->tok = d->stack;
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
static int json_doc_parse(json_doc_t *d, const char *js, size_t len, const relay_json_visitor_t *vis) {
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
  int rc = json_doc_parse(&d, json, len, v);
  json_doc_dispose(&d);
  return rc;
}

/* ---- paths and edits --------------------------------------------------- */

/* Where one path step lands inside its container, with what an edit needs
 * to keep the separators right. Offsets are -1 when they do not apply. */
typedef struct json_slot_s {
  int key, value;     /* the member's key token (objects) and value token */
  int prev_end;       /* end of the item before it */
  int next_begin;     /* start of the item after it */
  int last_key, last_value; /* the container's last item */
  int last_prev_end;  /* end of the item before the last one */
} json_slot_t;

/* Find seg inside container token c. Every item is visited (last duplicate
 * key counts), which costs no more than skipping over them. */
static int json_locate(json_doc_t *d, int c, const relay_json_path_seg_t *seg,
                       json_slot_t *sl) {
  const jsmntok_t *t = d->tok;
  int is_obj = seg->key != NULL, prev_end = -1, want_next = 0;
  int want_bs = is_obj && memchr(seg->key, '\\', seg->key_len) != NULL;
  sl->key = sl->value = sl->prev_end = sl->next_begin = -1;
  sl->last_key = sl->last_value = sl->last_prev_end = -1;
  if (t[c].type != (is_obj ? JSMN_OBJECT : JSMN_ARRAY)) return RELAY_ENOTFOUND;
  int it = c + 1;
  for (int m = 0; m < t[c].size; m++) {
    int k = is_obj ? it : -1, v = is_obj ? it + 1 : it;
    if (want_next) {
      sl->next_begin = tok_begin(&t[it]);
      want_next = 0;
    }
    if (is_obj ? json_key_eq(d, k, seg->key, seg->key_len, want_bs) : m == seg->index) {
      sl->key = k;
      sl->value = v;
      sl->prev_end = prev_end;
      sl->next_begin = -1;
      want_next = 1;
    }
    if (m == t[c].size - 1) {
      sl->last_key = k;
      sl->last_value = v;
      sl->last_prev_end = prev_end;
    }
    prev_end = tok_end(&t[v]);
    it = json_skip(d, v);
  }
  return sl->value >= 0 ? 0 : RELAY_ENOTFOUND;
}

/* Walk path[0..n) from the root; *v is the token reached. */
static int json_walk(json_doc_t *d, const relay_json_path_seg_t *path, size_t n, int *v) {
  json_slot_t sl;
  int cur = 0;
  for (size_t s = 0; s < n; s++) {
    int rc = json_locate(d, cur, &path[s], &sl);
    if (rc) return rc;
    cur = sl.value;
  }
  *v = cur;
  return 0;
}

int relay_json_find(const char *json, size_t len, const relay_json_path_seg_t *path,
                    size_t depth, size_t *start, size_t *end) {
  json_doc_t d;
  int v = 0;
  if (depth > RELAY_JSON_MAX_PATH) return RELAY_ETOODEEP;
  int rc = json_doc_parse(&d, json, len, NULL);
  if (rc == 0) rc = json_walk(&d, path, depth, &v);
  if (rc == 0) {
    *start = (size_t)tok_begin(&d.tok[v]);
    *end = (size_t)tok_end(&d.tok[v]);
  }
  json_doc_dispose(&d);
  return rc;
}

/* out += json[0..a) + mid + json[b..len): the one shape of every edit. */
static int json_splice_out(relay_buf_t *out, const json_doc_t *d, int a, const char *mid,
                           size_t mid_len, int b) {
  if (relay_buf_reserve(out, (size_t)a + mid_len + (size_t)(d->len - b))) return RELAY_ENOMEM;
  relay_buf_append(out, d->js, (size_t)a);
  relay_buf_append(out, mid, mid_len);
  relay_buf_append(out, d->js + b, (size_t)(d->len - b));
  return 0;
}

/* Drop a member or element with exactly one of its separators: up to the
 * next item when there is one (so that item takes its place, indentation
 * and all), else back to the end of the previous item, else (the only item)
 * back to the opening bracket. */
static int json_remove(const json_doc_t *d, int c, const json_slot_t *sl, relay_buf_t *out) {
  const jsmntok_t *t = d->tok;
  int b = tok_begin(&t[sl->key >= 0 ? sl->key : sl->value]);
  int e = tok_end(&t[sl->value]);
  if (sl->next_begin >= 0) e = sl->next_begin;
  else if (sl->prev_end >= 0) b = sl->prev_end;
  else b = t[c].start + 1;
  return json_splice_out(out, d, b, "", 0, e);
}

/* Add "key":raw as the last member of object c, spelled like the members
 * already there: the separator before the last member and the one between
 * its key and value are reused, so pretty-printed documents stay pretty. */
static int json_insert(const json_doc_t *d, int c, const json_slot_t *sl,
                       const relay_json_path_seg_t *seg, const char *raw, size_t raw_len,
                       relay_buf_t *out) {
  const jsmntok_t *t = d->tok;
  const char *sep = "", *colon = ":";
  size_t sep_len = 0, colon_len = 1;
  int at = t[c].start + 1;
  relay_buf_t mid;
  if (sl->last_value >= 0) {
    const jsmntok_t *lk = &t[sl->last_key], *lv = &t[sl->last_value];
    at = tok_end(lv);
    sep = ",";
    sep_len = 1;
    if (sl->last_prev_end >= 0) {
      sep = d->js + sl->last_prev_end;
      sep_len = (size_t)(tok_begin(lk) - sl->last_prev_end);
    }
    colon = d->js + tok_end(lk);
    colon_len = (size_t)(tok_begin(lv) - tok_end(lk));
  }
  relay_buf_init(&mid);
  int rc = 0;
  if (relay_buf_append(&mid, sep, sep_len) || relay_buf_append(&mid, "\"", 1) ||
      relay_json_escape(&mid, seg->key, seg->key_len) || relay_buf_append(&mid, "\"", 1) ||
      relay_buf_append(&mid, colon, colon_len) || relay_buf_append(&mid, raw, raw_len)) {
    rc = RELAY_ENOMEM;
  }
  if (rc == 0) rc = json_splice_out(out, d, at, mid.data ? mid.data : "", mid.len, at);
  relay_buf_dispose(&mid);
  return rc;
}

static int json_edit_doc(json_doc_t *d, const relay_json_path_seg_t *path, size_t depth,
                         const char *raw, size_t raw_len, relay_buf_t *out) {
  const jsmntok_t *t = d->tok;
  json_slot_t sl;
  int c;
  if (depth == 0) {
    if (!raw) return RELAY_EJSON;
    return json_splice_out(out, d, tok_begin(&t[0]), raw, raw_len, tok_end(&t[0]));
  }
  int rc = json_walk(d, path, depth - 1, &c);
  if (rc) return rc;
  const relay_json_path_seg_t *seg = &path[depth - 1];
  rc = json_locate(d, c, seg, &sl);
  if (rc == 0 && raw)
    return json_splice_out(out, d, tok_begin(&t[sl.value]), raw, raw_len, tok_end(&t[sl.value]));
  if (rc == 0) return json_remove(d, c, &sl, out);
  if (raw && seg->key && t[c].type == JSMN_OBJECT) return json_insert(d, c, &sl, seg, raw, raw_len, out);
  return rc;
}

int relay_json_edit(const char *json, size_t len, const relay_json_path_seg_t *path,
                    size_t depth, const char *raw_value, size_t raw_len, relay_buf_t *out) {
  json_doc_t d;
  if (depth > RELAY_JSON_MAX_PATH) return RELAY_ETOODEEP;
  int rc = json_doc_parse(&d, json, len, NULL);
  if (rc == 0) rc = json_edit_doc(&d, path, depth, raw_value, raw_len, out);
  json_doc_dispose(&d);
  return rc;
}

/* ---- batches of edits -------------------------------------------------- */

/* An edit of a batch, kept with its position in the caller's list. */
typedef struct json_bedit_s {
  const relay_json_edit_t *e;
  size_t pos;
} json_bedit_t;

/* One splice of the output: json[start..end) becomes text. Inserted members
 * have start == end; their text lives in the batch's scratch buffer. */
typedef struct json_op_s {
  int start, end;
  const char *text; /* NULL: scratch + off */
  size_t off, len;
  size_t seq;       /* ties (inserts at one place) keep the edits' order */
} json_op_t;

typedef struct json_batch_s {
  json_doc_t *d;
  json_bedit_t *be; /* sorted by path */
  size_t n;
  json_op_t *ops;
  size_t nops;
  relay_buf_t scratch;
  relay_buf_t key;  /* a decoded document key */
  int err;          /* first lookup error, and the edit it belongs to */
  size_t failed;
} json_batch_t;

static int json_seg_cmp(const relay_json_path_seg_t *a, const relay_json_path_seg_t *b) {
  if (!a->key || !b->key) {
    if (a->key || b->key) return a->key ? -1 : 1; /* keys before positions */
    return a->index < b->index ? -1 : a->index > b->index;
  }
  size_t m = a->key_len < b->key_len ? a->key_len : b->key_len;
  int c = memcmp(a->key, b->key, m);
  if (c) return c;
  return a->key_len < b->key_len ? -1 : a->key_len > b->key_len;
}

/* Path order: segment by segment, a prefix before what extends it, so the
 * edits under one value are neighbours and a prefix is next to its first
 * extension. */
static int json_bedit_cmp(const void *pa, const void *pb) {
  const json_bedit_t *a = pa, *b = pb;
  size_t m = a->e->depth < b->e->depth ? a->e->depth : b->e->depth;
  for (size_t i = 0; i < m; i++) {
    int c = json_seg_cmp(&a->e->path[i], &b->e->path[i]);
    if (c) return c;
  }
  if (a->e->depth != b->e->depth) return a->e->depth < b->e->depth ? -1 : 1;
  return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static int json_op_cmp(const void *pa, const void *pb) {
  const json_op_t *a = pa, *b = pb;
  if (a->start != b->start) return a->start < b->start ? -1 : 1;
  if (a->end != b->end) return a->end < b->end ? -1 : 1; /* an insert after a span ending there */
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void json_batch_fail(json_batch_t *b, int err, size_t pos) {
  if (!b->err || pos < b->failed) {
    b->err = err;
    b->failed = pos;
  }
}

static json_op_t *json_batch_op(json_batch_t *b, int start, int end, size_t seq) {
  json_op_t *op = &b->ops[b->nops++];
  op->start = start;
  op->end = end;
  op->text = "";
  op->off = op->len = 0;
  op->seq = seq;
  return op;
}

/* The decoded text of key token k (no copy when it has no backslash). */
static int json_batch_key(json_batch_t *b, int k, relay_json_path_seg_t *seg) {
  json_doc_t *d = b->d;
  const char *raw = d->js + d->tok[k].start;
  size_t rlen = (size_t)(d->tok[k].end - d->tok[k].start);
  seg->index = 0;
  if (!json_key_has_bs(d, k)) {
    seg->key = raw;
    seg->key_len = rlen;
    return 0;
  }
  b->key.len = 0;
  int rc = relay_json_unescape(raw, rlen, &b->key);
  if (rc) return rc;
  seg->key = b->key.data ? b->key.data : "";
  seg->key_len = b->key.len;
  return 0;
}

/* First edit in be[lo..hi) whose segment at depth k is not below seg. */
static size_t json_batch_lower(const json_batch_t *b, size_t lo, size_t hi, size_t k,
                               const relay_json_path_seg_t *seg) {
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (json_seg_cmp(&b->be[mid].e->path[k], seg) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* Where the members of a container are, for the removals and inserts that
 * need their neighbours. */
typedef struct json_items_s {
  int *begin, *end; /* item i: its first byte (key or value), one past its value */
  char *removed;
  int count;
  int last_key, last_value, last_prev_end; /* as in json_slot_t */
} json_items_t;

/* Removed items go in runs, each with exactly the separators that removing
 * them one by one would take: up to the next kept item, else back to the
 * end of the previous kept one, else (all gone) back to the bracket. */
static void json_batch_removals(json_batch_t *b, int c, const json_items_t *it, int *all_removed) {
  int i = 0, kept = 0;
  while (i < it->count) {
    if (!it->removed[i]) {
      kept = 1;
      i++;
      continue;
    }
    int j = i;
    while (j + 1 < it->count && it->removed[j + 1]) j++;
    int start, end;
    if (j + 1 < it->count) {
      start = it->begin[i];
      end = it->begin[j + 1];
    } else if (i > 0) {
      start = it->end[i - 1];
      end = it->end[j];
    } else {
      start = b->d->tok[c].start + 1;
      end = it->end[j];
    }
    json_batch_op(b, start, end, 0);
    i = j + 1;
  }
  *all_removed = it->count > 0 && !kept;
}

/* New members of object c, in the edits' order, spelled as json_insert()
 * spells one: the first takes the separator before the object's last member
 * (none when the object is, or ends up, empty), the next ones that
 * separator or ','. */
static int json_bedit_cmp_pos(const void *pa, const void *pb) {
  const json_bedit_t *a = pa, *b = pb;
  return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static int json_batch_inserts(json_batch_t *b, int c, const json_items_t *it, json_bedit_t *ins, size_t nins,
                              int all_removed) {
  json_doc_t *d = b->d;
  const jsmntok_t *t = d->tok;
  const char *sep = "", *colon = ":";
  size_t sep_len = 0, colon_len = 1;
  int at = t[c].start + 1;
  if (it->last_value >= 0) {
    const jsmntok_t *lk = &t[it->last_key], *lv = &t[it->last_value];
    at = tok_end(lv);
    sep = ",";
    sep_len = 1;
    if (it->last_prev_end >= 0) {
      sep = d->js + it->last_prev_end;
      sep_len = (size_t)(tok_begin(lk) - it->last_prev_end);
    }
    colon = d->js + tok_end(lk);
    colon_len = (size_t)(tok_begin(lv) - tok_end(lk));
  }
  qsort(ins, nins, sizeof *ins, json_bedit_cmp_pos); /* in the order of the caller's list */
  int first = it->last_value < 0 || all_removed;
  for (size_t x = 0; x < nins; x++) {
    const json_bedit_t *be = &ins[x];
    const relay_json_path_seg_t *seg = &be->e->path[be->e->depth - 1];
    relay_buf_t *s = &b->scratch;
    size_t off = s->len;
    int rc = 0;
    if (!first) rc = sep_len ? relay_buf_append(s, sep, sep_len) : relay_buf_append(s, ",", 1);
    if (rc || relay_buf_append(s, "\"", 1) || relay_json_escape(s, seg->key, seg->key_len) ||
        relay_buf_append(s, "\"", 1) || relay_buf_append(s, colon, colon_len) ||
        relay_buf_append(s, be->e->raw, be->e->raw_len))
      return RELAY_ENOMEM;
    json_op_t *op = json_batch_op(b, at, at, be->pos);
    op->text = NULL;
    op->off = off;
    op->len = s->len - off;
    first = 0;
  }
  return 0;
}

static int json_batch_resolve(json_batch_t *b, int c, size_t lo, size_t hi, size_t k);

/* After the walk of container c: each group of edits that share their
 * segment k either ends there (set, remove, insert) or goes on inside the
 * member's value. found[g] is the member's value token (-1: missing) and
 * where[g] its position among the items. */
static int json_batch_apply(json_batch_t *b, int c, size_t lo, size_t hi, size_t k, const int *found,
                            const int *where, json_items_t *it) {
  const jsmntok_t *t = b->d->tok;
  size_t nins = 0;
  json_bedit_t *ins = NULL;
  int rc = 0, all_removed = 0;
  for (size_t g = lo, gi = 0; g < hi; gi++) {
    size_t end = g + 1;
    while (end < hi && json_seg_cmp(&b->be[end].e->path[k], &b->be[g].e->path[k]) == 0) end++;
    const relay_json_edit_t *e = b->be[g].e;
    int v = found[gi];
    if (e->depth == k + 1) { /* overlap was refused: alone in its group */
      if (v >= 0 && e->raw) {
        json_op_t *op = json_batch_op(b, tok_begin(&t[v]), tok_end(&t[v]), b->be[g].pos);
        op->text = e->raw;
        op->len = e->raw_len;
      } else if (v >= 0) {
        it->removed[where[gi]] = 1;
      } else if (e->raw && e->path[k].key && t[c].type == JSMN_OBJECT) {
        if (!ins && !(ins = malloc((hi - lo) * sizeof *ins))) return RELAY_ENOMEM;
        ins[nins++] = b->be[g];
      } else {
        json_batch_fail(b, RELAY_ENOTFOUND, b->be[g].pos);
      }
    } else if (v >= 0) {
      rc = json_batch_resolve(b, v, g, end, k + 1);
      if (rc) break;
    } else {
      for (size_t x = g; x < end; x++) json_batch_fail(b, RELAY_ENOTFOUND, b->be[x].pos);
    }
    g = end;
  }
  if (rc == 0 && it->removed) json_batch_removals(b, c, it, &all_removed);
  if (rc == 0 && nins) rc = json_batch_inserts(b, c, it, ins, nins, all_removed);
  free(ins);
  return rc;
}

/* Resolve be[lo..hi), which all name container c with their first k
 * segments, walking c's members once. */
static int json_batch_resolve(json_batch_t *b, int c, size_t lo, size_t hi, size_t k) {
  json_doc_t *d = b->d;
  const jsmntok_t *t = d->tok;
  int is_obj = t[c].type == JSMN_OBJECT;
  size_t ngroups = 0, needs_items = 0;
  for (size_t g = lo; g < hi; g++) {
    if (g == lo || json_seg_cmp(&b->be[g].e->path[k], &b->be[g - 1].e->path[k]) != 0) ngroups++;
    if (b->be[g].e->depth == k + 1 && !b->be[g].e->raw) needs_items = 1; /* a removal needs neighbours */
  }
  if (!is_obj && t[c].type != JSMN_ARRAY) {
    for (size_t g = lo; g < hi; g++) json_batch_fail(b, RELAY_ENOTFOUND, b->be[g].pos);
    return 0;
  }
  int *found = malloc(ngroups * 2 * sizeof *found);
  size_t *gstart = malloc(ngroups * sizeof *gstart);
  json_items_t it;
  memset(&it, 0, sizeof it);
  it.last_key = it.last_value = it.last_prev_end = -1;
  it.count = t[c].size;
  if (needs_items && it.count) {
    it.begin = malloc((size_t)it.count * 2 * sizeof *it.begin);
    it.removed = calloc((size_t)it.count, 1);
  }
  int rc = 0;
  if (!found || !gstart || (needs_items && it.count && (!it.begin || !it.removed))) {
    rc = RELAY_ENOMEM;
    goto done;
  }
  it.end = it.begin ? it.begin + it.count : NULL;
  int *where = found + ngroups;
  for (size_t g = lo, gi = 0; g < hi; g++)
    if (g == lo || json_seg_cmp(&b->be[g].e->path[k], &b->be[g - 1].e->path[k]) != 0) {
      gstart[gi] = g;
      found[gi] = where[gi] = -1;
      gi++;
    }
  int item = c + 1, prev_end = -1;
  for (int m = 0; m < t[c].size; m++) {
    int kt = is_obj ? item : -1, v = is_obj ? item + 1 : item;
    relay_json_path_seg_t seg = {NULL, 0, m};
    if (is_obj && (rc = json_batch_key(b, kt, &seg)) != 0) goto done;
    size_t at = json_batch_lower(b, lo, hi, k, &seg);
    if (at < hi && json_seg_cmp(&b->be[at].e->path[k], &seg) == 0) {
      size_t lo_g = 0, hi_g = ngroups; /* the group that starts at `at` */
      while (lo_g < hi_g) {
        size_t mid = lo_g + (hi_g - lo_g) / 2;
        if (gstart[mid] < at) lo_g = mid + 1;
        else hi_g = mid;
      }
      found[lo_g] = v; /* a repeated key: the last one counts */
      where[lo_g] = m;
    }
    if (it.begin) {
      it.begin[m] = tok_begin(&t[kt >= 0 ? kt : v]);
      it.end[m] = tok_end(&t[v]);
    }
    if (m == t[c].size - 1) {
      it.last_key = kt;
      it.last_value = v;
      it.last_prev_end = prev_end;
    }
    prev_end = tok_end(&t[v]);
    item = json_skip(d, v);
  }
  rc = json_batch_apply(b, c, lo, hi, k, found, where, &it);
done:
  free(found);
  free(gstart);
  free(it.begin);
  free(it.removed);
  return rc;
}

/* Sort, refuse overlaps, resolve every path in one walk, then splice. */
static int json_batch_run(json_batch_t *b, relay_buf_t *out) {
  json_doc_t *d = b->d;
  for (size_t i = 0; i < b->n; i++) {
    if (b->be[i].e->depth > RELAY_JSON_MAX_PATH) {
      json_batch_fail(b, RELAY_ETOODEEP, b->be[i].pos);
      return b->err;
    }
  }
  if (b->n > 1) qsort(b->be, b->n, sizeof *b->be, json_bedit_cmp);
  for (size_t i = 1; i < b->n; i++) {
    const relay_json_edit_t *p = b->be[i - 1].e, *q = b->be[i].e;
    size_t s = 0;
    while (s < p->depth && json_seg_cmp(&p->path[s], &q->path[s]) == 0) s++;
    if (s == p->depth) { /* p is a prefix of q (or equal) */
      size_t later = b->be[i - 1].pos > b->be[i].pos ? b->be[i - 1].pos : b->be[i].pos;
      json_batch_fail(b, RELAY_EOVERLAP, later);
    }
  }
  if (b->err) return b->err;
  if (b->n == 1 && b->be[0].e->depth == 0) { /* the whole document */
    const relay_json_edit_t *e = b->be[0].e;
    if (!e->raw) return RELAY_EJSON;
    return json_splice_out(out, d, tok_begin(&d->tok[0]), e->raw, e->raw_len, tok_end(&d->tok[0]));
  }
  int rc = b->n ? json_batch_resolve(b, 0, 0, b->n, 0) : 0;
  if (rc == 0) rc = b->err;
  if (rc) return rc;
  if (b->nops > 1) qsort(b->ops, b->nops, sizeof *b->ops, json_op_cmp);
  size_t total = (size_t)d->len;
  for (size_t i = 0; i < b->nops; i++) {
    if (i && b->ops[i].start < b->ops[i - 1].end) return RELAY_EOVERLAP; /* cannot happen */
    total += b->ops[i].len;
  }
  if (relay_buf_reserve(out, total)) return RELAY_ENOMEM;
  int pos = 0;
  for (size_t i = 0; i < b->nops; i++) {
    const json_op_t *op = &b->ops[i];
    relay_buf_append(out, d->js + pos, (size_t)(op->start - pos));
    relay_buf_append(out, op->text ? op->text : b->scratch.data + op->off, op->len);
    pos = op->end;
  }
  relay_buf_append(out, d->js + pos, (size_t)(d->len - pos));
  return 0;
}

int relay_json_edit_many(const char *json, size_t len, const relay_json_edit_t *edits, size_t n,
                         relay_buf_t *out, size_t *failed) {
  json_doc_t d;
  json_batch_t b;
  memset(&b, 0, sizeof b);
  b.d = &d;
  b.n = n;
  relay_buf_init(&b.scratch);
  relay_buf_init(&b.key);
  size_t old = out->len;
  int rc = json_doc_parse(&d, json, len, NULL);
  if (rc == 0 && n > SIZE_MAX / sizeof(json_op_t)) rc = RELAY_ENOMEM;
  if (rc == 0 && n) {
    b.be = malloc(n * sizeof *b.be);
    b.ops = malloc(n * sizeof *b.ops);
    if (!b.be || !b.ops) rc = RELAY_ENOMEM;
  }
  if (rc == 0) {
    for (size_t i = 0; i < n; i++) {
      b.be[i].e = &edits[i];
      b.be[i].pos = i;
    }
    rc = json_batch_run(&b, out);
  }
  if (rc) out->len = old;
  if (failed) *failed = b.err ? b.failed : 0;
  free(b.be);
  free(b.ops);
  relay_buf_dispose(&b.scratch);
  relay_buf_dispose(&b.key);
  json_doc_dispose(&d);
  return rc;
}
