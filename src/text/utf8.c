/* Streaming UTF-8 cleaning; see relay/utf8.h. */
#include "relay/utf8.h"

#include <string.h>

#include "relay/error.h"

static const char utf8_fffd[] = "\xEF\xBF\xBD";

/* The sequence at p (n bytes available), by the Unicode well-formedness
 * table (no overlongs, no surrogates, nothing past U+10FFFF). Returns its
 * length when complete and valid; 0 when the n bytes are a valid start of
 * one that needs more; -1 when invalid, with *adv the maximal valid prefix
 * (at least 1) to replace with one U+FFFD. */
static int utf8_seq(const unsigned char *p, size_t n, size_t *adv) {
  unsigned char c = p[0];
  int len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    *adv = 1;
    return -1;
  }
  for (int k = 1; k < len; k++) {
    if ((size_t)k >= n) return 0;
    unsigned char b = p[k];
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) {
      *adv = (size_t)k;
      return -1;
    }
  }
  return len;
}

/* ASCII runs are copied whole: the common text costs one scan and one append. */
int relay_utf8_clean(relay_utf8_tail_t *tail, const char *s, size_t n, relay_buf_t *out) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, adv = 0;
  if (tail->n) {
    unsigned char tmp[8];
    size_t have = tail->n, take = n < 4 ? n : 4;
    memcpy(tmp, tail->b, have);
    memcpy(tmp + have, u, take);
    int r = utf8_seq(tmp, have + take, &adv);
    if (r == 0) {
      memcpy(tail->b, tmp, have + take);
      tail->n = have + take;
      return 0;
    }
    tail->n = 0;
    if (r > 0 ? relay_buf_append(out, tmp, (size_t)r) : relay_buf_append(out, utf8_fffd, 3)) return RELAY_ENOMEM;
    i = (r > 0 ? (size_t)r : adv) - have;
  }
  while (i < n) {
    size_t run = i;
    while (run < n && u[run] < 0x80) run++;
    if (run > i && relay_buf_append(out, s + i, run - i)) return RELAY_ENOMEM;
    i = run;
    if (i >= n) break;
    int r = utf8_seq(u + i, n - i, &adv);
    if (r == 0) {
      memcpy(tail->b, u + i, n - i);
      tail->n = n - i;
      break;
    }
    if (r > 0 ? relay_buf_append(out, s + i, (size_t)r) : relay_buf_append(out, utf8_fffd, 3)) return RELAY_ENOMEM;
    i += r > 0 ? (size_t)r : adv;
  }
  return 0;
}

int relay_utf8_finish(relay_utf8_tail_t *tail, relay_buf_t *out) {
  if (!tail->n) return 0;
  tail->n = 0;
  return relay_buf_append(out, utf8_fffd, 3) ? RELAY_ENOMEM : 0;
}

int relay_utf8_valid(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t adv;
  for (size_t i = 0; i < n;) {
    if (u[i] < 0x80) {
      i++;
      continue;
    }
    int r = utf8_seq(u + i, n - i, &adv);
    if (r <= 0) return 0;
    i += (size_t)r;
  }
  return 1;
}

int relay_utf8_clean_all(const char *s, size_t n, relay_buf_t *out) {
  relay_utf8_tail_t tail = {{0}, 0};
  return relay_utf8_clean(&tail, s, n, out) || relay_utf8_finish(&tail, out) ? RELAY_ENOMEM : 0;
}
