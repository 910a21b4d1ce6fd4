/* JSON strings: escapes decoded (relay_json_unescape) and written
 * (relay_json_escape); see include/relay/json_splice.h. Keys are decoded with
 * the same code (relay_json__unescape_one, json_doc.h) by json_splice.c.
 */
#include "relay/json_splice.h"

#include <stdint.h>
#include <string.h>

#include "json_doc.h"

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
int relay_json__unescape_one(const char *s, size_t len, size_t *i, char *o) {
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
    int n = relay_json__unescape_one(s, len, &i, o);
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
