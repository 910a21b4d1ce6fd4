/* A naive reference for the harmony parser, for the unit tests and the
 * fuzzer: it sees the whole text at once and looks ahead instead of holding
 * bytes back, and parses headers its own way (split into words first), so
 * that the streaming parser can be checked against something written
 * differently. It follows the rules in include/relay/harmony.h, emits through
 * the same callback type, and keeps the same counters. Slow and simple. */
#ifndef RELAY_TEST_HARMONY_REF_H
#define RELAY_TEST_HARMONY_REF_H

#include "relay/harmony.h"

#include <string.h>

typedef struct {
  relay_harmony_emit_cb emit;
  void *ud;
  const char *t;
  size_t n;
  int in_body;           /* 0 outside, else 1 + kind of the body */
  unsigned call;         /* index of the open call */
  relay_harmony_t count; /* only the counters are used */
} href_t;

static const char *const href_markers[] = {"<|start|>", "<|channel|>", "<|message|>",
                                           "<|constrain|>", "<|end|>", "<|call|>",
                                           "<|return|>"};
enum { HREF_START, HREF_CHANNEL, HREF_MESSAGE, HREF_CONSTRAIN, HREF_END, HREF_CALL,
       HREF_RETURN, HREF_IMPLICIT /* a header at the start of the text, no marker */ };

static size_t href_opener_len(int m) { return m == HREF_IMPLICIT ? 0 : strlen(href_markers[m]); }

/* Which marker starts at t[i] among those allowed (all, or only the ones
 * that start or end a message), or -1. */
static int href_marker_at(const href_t *r, size_t i, int all) {
  for (int m = 0; m < 7; m++) {
    if (!all && (m == HREF_MESSAGE || m == HREF_CONSTRAIN)) continue;
    size_t l = strlen(href_markers[m]);
    if (r->n - i >= l && memcmp(r->t + i, href_markers[m], l) == 0) return m;
  }
  return -1;
}

static void href_seg(href_t *r, relay_harmony_kind_t kind, const char *s, size_t len,
                     const char *recipient, size_t rlen, int complete) {
  relay_harmony_seg_t g = {kind, s, len, 0, recipient, rlen, complete};
  if (kind >= RELAY_HARMONY_CALL_BEGIN) g.call = r->call;
  r->emit(r->ud, &g);
}

static void href_text(href_t *r, size_t from, size_t to) {
  if (to <= from) return;
  relay_harmony_kind_t k = r->in_body ? (relay_harmony_kind_t)(r->in_body - 1)
                                      : RELAY_HARMONY_CONTENT;
  href_seg(r, k, r->t + from, to - from, NULL, 0, 0);
}

static void href_content(href_t *r, size_t from, size_t to) {
  if (to > from) href_seg(r, RELAY_HARMONY_CONTENT, r->t + from, to - from, NULL, 0, 0);
}

static void href_end_body(href_t *r, int complete) {
  if (r->in_body == 1 + RELAY_HARMONY_CALL_ARGS) {
    href_seg(r, RELAY_HARMONY_CALL_END, "", 0, NULL, 0, complete);
    if (!complete) r->count.calls_cut++;
  }
  r->in_body = 0;
}

/* Split h[0..len) into words at spaces and at the two inner markers, which
 * become words of their own. Up to max words; returns the count. */
typedef struct {
  const char *s;
  size_t len;
} href_word_t;

static size_t href_words(const char *h, size_t len, href_word_t *w, size_t max) {
  size_t nw = 0, i = 0;
  while (i < len && nw < max) {
    if (h[i] == ' ') {
      i++;
      continue;
    }
    size_t ml = 0;
    if (len - i >= 11 && memcmp(h + i, "<|channel|>", 11) == 0) ml = 11;
    if (len - i >= 13 && memcmp(h + i, "<|constrain|>", 13) == 0) ml = 13;
    if (ml) {
      w[nw++] = (href_word_t){h + i, ml};
      i += ml;
      continue;
    }
    size_t s = i;
    while (i < len && h[i] != ' ' && !(len - i >= 11 && memcmp(h + i, "<|channel|>", 11) == 0) &&
           !(len - i >= 13 && memcmp(h + i, "<|constrain|>", 13) == 0))
      i++;
    w[nw++] = (href_word_t){h + s, i - s};
  }
  return nw;
}

static int href_is(href_word_t w, const char *lit) {
  return w.len == strlen(lit) && memcmp(w.s, lit, w.len) == 0;
}

/* The header t[h0..end) (opening marker included), by the rules of
 * harmony.h: [role words] [<|channel|> NAME [type words]], "to=R" anywhere
 * but in the name's place, <|constrain|> starting the type words. Returns the
 * body kind, or -1; the recipient goes to *rcp. */
static int href_parse(const href_t *r, size_t h0, int opener, size_t end, href_word_t *rcp) {
  static href_word_t w[RELAY_HARMONY_MAX_HEADER];
  size_t skip = href_opener_len(opener);
  size_t nw = href_words(r->t + h0 + skip, end - h0 - skip, w, RELAY_HARMONY_MAX_HEADER);
  enum { ROLE, NAME, TYPES } part = opener == HREF_CHANNEL ? NAME : ROLE;
  int channel = -1, role = 0;
  rcp->s = NULL;
  rcp->len = 0;
  for (size_t k = 0; k < nw; k++) {
    href_word_t x = w[k];
    if (href_is(x, "<|channel|>")) {
      if (part == NAME || channel >= 0) return -1;
      part = NAME;
    } else if (href_is(x, "<|constrain|>")) {
      if (part == NAME) return -1;
      part = TYPES;
    } else if (part == NAME) {
      if (href_is(x, "analysis")) channel = 0;
      else if (href_is(x, "commentary")) channel = 1;
      else if (href_is(x, "final")) channel = 2;
      else return -1;
      part = TYPES;
    } else if (x.len >= 3 && memcmp(x.s, "to=", 3) == 0) {
      if (rcp->s) return -1;
      *rcp = (href_word_t){x.s + 3, x.len - 3};
      if (rcp->len == 0 || memchr(rcp->s, '<', rcp->len)) return -1;
      if (rcp->len == 10 && memcmp(rcp->s, "functions.", 10) == 0) return -1;
    } else if (part == ROLE) {
      if (role || !href_is(x, "assistant")) return -1;
      role = 1;
    }
  }
  if (part == NAME) return -1;
  if (rcp->s) return RELAY_HARMONY_CALL_ARGS;
  return channel == 0 ? RELAY_HARMONY_REASONING : RELAY_HARMONY_CONTENT;
}

/* Read a header starting at h0 with marker m; returns where scanning goes on
 * (and the state is set). */
static size_t href_header(href_t *r, size_t h0, int m) {
  for (;;) {
    size_t j = h0 + href_opener_len(m);
    int has_channel = m == HREF_CHANNEL, in_word = 0;
    unsigned words = 0;
    int restart = -1;
    while (restart < 0) {
      if (j >= r->n) {
        href_content(r, h0, r->n);
        r->count.fallbacks++;
        return r->n;
      }
      int mk = href_marker_at(r, j, 1);
      if (mk >= 0) {
        size_t l = strlen(href_markers[mk]);
        r->count.markers++;
        if (mk == HREF_MESSAGE) {
          href_word_t rcp;
          int kind = href_parse(r, h0, m, j, &rcp);
          if (kind < 0) {
            href_content(r, h0, j + l);
            r->count.fallbacks++;
            return j + l;
          }
          if (kind == RELAY_HARMONY_CALL_ARGS) {
            r->call = (unsigned)r->count.calls++;
            size_t skip = rcp.len > 10 && memcmp(rcp.s, "functions.", 10) == 0 ? 10 : 0;
            href_seg(r, RELAY_HARMONY_CALL_BEGIN, rcp.s + skip, rcp.len - skip, rcp.s, rcp.len, 0);
          }
          r->in_body = 1 + kind;
          return j + l;
        }
        if (mk == HREF_START || (mk == HREF_CHANNEL && has_channel)) {
          href_content(r, h0, j);
          r->count.fallbacks++;
          restart = mk;
          h0 = j;
          break;
        }
        if ((mk == HREF_CHANNEL || mk == HREF_CONSTRAIN) && j - h0 + l <= RELAY_HARMONY_MAX_HEADER) {
          has_channel |= mk == HREF_CHANNEL;
          in_word = 0;
          j += l;
          continue;
        }
        /* an end marker, or the cap reached by a marker */
        href_content(r, h0, j + l);
        r->count.fallbacks++;
        return j + l;
      }
      unsigned char c = (unsigned char)r->t[j];
      int bad = c < 0x20 || c == 0x7f || j - h0 >= RELAY_HARMONY_MAX_HEADER;
      if (!bad && c != ' ' && !in_word) bad = ++words > RELAY_HARMONY_MAX_WORDS;
      if (bad) {
        href_content(r, h0, j);
        r->count.fallbacks++;
        return j;
      }
      in_word = c != ' ';
      j++;
    }
    m = restart;
  }
}

/* The whole text, then the end of it (finish). */
static void href_run(const char *t, size_t n, relay_harmony_emit_cb emit, void *ud,
                     relay_harmony_t *counters) {
  href_t r;
  memset(&r, 0, sizeof r);
  r.emit = emit;
  r.ud = ud;
  r.t = t;
  r.n = n;
  size_t i = 0, run = 0;
  /* " to=..." at the very start: the role header went on from the prompt */
  size_t sp = 0;
  while (sp < n && t[sp] == ' ') sp++;
  if (n - sp >= 3 && memcmp(t + sp, "to=", 3) == 0 && sp + 3 <= RELAY_HARMONY_MAX_HEADER)
    i = run = href_header(&r, 0, HREF_IMPLICIT);
  while (i < n) {
    int m = href_marker_at(&r, i, 0);
    if (m < 0) {
      i++;
      continue;
    }
    href_text(&r, run, i);
    r.count.markers++;
    if (m == HREF_START || m == HREF_CHANNEL) {
      href_end_body(&r, 0);
      i = href_header(&r, i, m);
    } else {
      href_end_body(&r, 1);
      i += strlen(href_markers[m]);
    }
    run = i;
  }
  href_text(&r, run, n);
  href_end_body(&r, 0);
  if (counters) *counters = r.count;
}

#endif
