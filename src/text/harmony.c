/* Streaming harmony parser (see include/relay/harmony.h).
 *
 * Four states: the start of the text (where a header may begin without a
 * marker), outside any message, reading a header (held in p->head until
 * <|message|> decides it), and reading a body of one kind. Every marker
 * begins with "<|" and contains no other '<', so outside a header the text up
 * to the next '<' is settled at once (one memchr per run), and a possible
 * marker is matched byte by byte against the markers that matter in the
 * current state, with a bit set of the ones still possible. When the match
 * fails, the held bytes are plain text and none of them after the first can
 * start a marker, so only the failing byte needs a second look. The set of
 * markers that matter outside a header is a subset of the header's, which
 * keeps this true across a header that is given up half-way.
 */
#include "relay/harmony.h"

#include <string.h>

enum { HARMONY__START = 0, HARMONY__OUTSIDE = 1, HARMONY__HEADER = 2, HARMONY__BODY = 3 };

/* p->body is the kind the body's text goes out as; a call's is CALL_ARGS. */
#define HARMONY__CALL RELAY_HARMONY_CALL_ARGS

enum {
  M_START = 0,
  M_CHANNEL,
  M_MESSAGE,
  M_CONSTRAIN,
  M_END,
  M_CALL,
  M_RETURN,
  M_COUNT
};

static const struct {
  const char *s;
  size_t len;
} harmony__markers[M_COUNT] = {
    [M_START] = {"<|start|>", 9},       [M_CHANNEL] = {"<|channel|>", 11},
    [M_MESSAGE] = {"<|message|>", 11},  [M_CONSTRAIN] = {"<|constrain|>", 13},
    [M_END] = {"<|end|>", 7},           [M_CALL] = {"<|call|>", 8},
    [M_RETURN] = {"<|return|>", 10},
};

/* The opener of a header that began at the start of the text with no marker
 * (the prompt ended in <|start|>assistant and the model went on with
 * " to=functions.f<|channel|>..."). */
#define M_IMPLICIT M_COUNT

#define BIT(m) (1u << (m))
/* Outside a header: what starts a message, and what ends one. */
#define HARMONY__FLOW_MARKERS \
  (BIT(M_START) | BIT(M_CHANNEL) | BIT(M_END) | BIT(M_CALL) | BIT(M_RETURN))
/* In a header every marker means something. */
#define HARMONY__HEADER_MARKERS ((1u << M_COUNT) - 1)

static const char harmony__empty[] = "";

static size_t harmony__opener_len(int m) {
  return m == M_IMPLICIT ? 0 : harmony__markers[m].len;
}

/* One feed or finish call: where segments go. */
typedef struct {
  relay_harmony_t *p;
  relay_harmony_emit_cb emit;
  void *ud;
} harmony_pass_t;

/* ---- output ------------------------------------------------------------- */

/* Text of a kind; the call index goes with call arguments so that the
 * consumer needs no state of its own to place them. */
static void harmony__text(harmony_pass_t *ps, relay_harmony_kind_t kind, const char *s, size_t n) {
  if (n == 0) return;
  relay_harmony_seg_t seg = {kind, s, n, 0, NULL, 0, 0, NULL, 0};
  if (kind == RELAY_HARMONY_CALL_ARGS) seg.call = (unsigned)(ps->p->calls - 1);
  ps->emit(ps->ud, &seg);
}

/* Plain text where no header is being read: it belongs to the body, or is
 * content when outside any message. */
static void harmony__flow_text(harmony_pass_t *ps, const char *s, size_t n) {
  relay_harmony_t *p = ps->p;
  harmony__text(ps, p->state == HARMONY__BODY ? (relay_harmony_kind_t)p->body
                                              : RELAY_HARMONY_CONTENT, s, n);
}

/* End the body being read; a call gets its CALL_END, complete or cut. */
static void harmony__end_body(harmony_pass_t *ps, int complete) {
  relay_harmony_t *p = ps->p;
  if (p->state == HARMONY__BODY && p->body == HARMONY__CALL) {
    relay_harmony_seg_t seg = {RELAY_HARMONY_CALL_END, harmony__empty, 0,
                               (unsigned)(p->calls - 1), NULL, 0, complete, NULL, 0};
    if (!complete) p->calls_cut++;
    ps->emit(ps->ud, &seg);
  }
  p->state = HARMONY__OUTSIDE;
}

/* A header that is not one: its bytes go out exactly as they came, and
 * parsing goes on as if outside any message. */
static void harmony__give_up_header(harmony_pass_t *ps) {
  relay_harmony_t *p = ps->p;
  harmony__text(ps, RELAY_HARMONY_CONTENT, p->head, p->head_len);
  p->head_len = 0;
  p->fallbacks++;
  p->state = HARMONY__OUTSIDE;
}

/* ---- headers ------------------------------------------------------------ */

/* A header starts with the marker that opened it, so that giving it up
 * releases every byte. */
static void harmony__begin_header(relay_harmony_t *p, int m) {
  memcpy(p->head, harmony__markers[m].s, harmony__markers[m].len);
  p->head_len = harmony__markers[m].len;
  p->head_open = m;
  p->head_channel = m == M_CHANNEL;
  p->head_in_word = 0;
  p->head_words = 0;
  p->state = HARMONY__HEADER;
}

/* One plain byte of a header. Bytes that no header contains (control bytes),
 * too many words or too many bytes mean it is not a header: give it up at
 * once rather than hold text for nothing. Returns 0 when the byte was not
 * taken (the header was given up; the byte belongs to what follows). */
static int harmony__header_byte(harmony_pass_t *ps, unsigned char c) {
  relay_harmony_t *p = ps->p;
  int bad = c < 0x20 || c == 0x7f || p->head_len >= RELAY_HARMONY_MAX_HEADER;
  if (!bad && c != ' ' && !p->head_in_word) bad = ++p->head_words > RELAY_HARMONY_MAX_WORDS;
  if (bad) {
    harmony__give_up_header(ps);
    return 0;
  }
  p->head_in_word = c != ' ';
  p->head[p->head_len++] = (char)c;
  return 1;
}

/* Text that turned out not to be a marker, in whatever state we are in. In a
 * header byte by byte (it may be given up half-way; the rest is then plain
 * text outside, where it cannot start a marker either). */
static void harmony__plain(harmony_pass_t *ps, const char *s, size_t n) {
  while (n > 0 && ps->p->state == HARMONY__HEADER) {
    if (!harmony__header_byte(ps, (unsigned char)*s)) break;
    s++;
    n--;
  }
  harmony__flow_text(ps, s, n);
}

static int harmony__word_is(const char *w, size_t n, const char *lit) {
  size_t l = strlen(lit);
  return n == l && memcmp(w, lit, l) == 0;
}

/* Length of the marker m at h[i..n), or 0. */
static size_t harmony__at_marker(const char *h, size_t i, size_t n, int m) {
  size_t l = harmony__markers[m].len;
  return n - i >= l && memcmp(h + i, harmony__markers[m].s, l) == 0 ? l : 0;
}

typedef struct {
  relay_harmony_kind_t kind;
  const char *recipient;
  size_t recipient_len;
  const char *name;
  size_t name_len;
} harmony_header_t;

/* A recipient is a non-empty name without '<' (which would be stray markup);
 * "functions." is the namespace of declared tools and is not part of their
 * name, while built-ins (browser.search, python) keep their whole name. */
static int harmony__recipient(harmony_header_t *h, const char *w, size_t n) {
  if (h->recipient || n == 0 || memchr(w, '<', n)) return -1;
  h->recipient = w;
  h->recipient_len = n;
  h->name = w;
  h->name_len = n;
  if (n > 10 && memcmp(w, "functions.", 10) == 0) {
    h->name += 10;
    h->name_len -= 10;
  } else if (n == 10 && memcmp(w, "functions.", 10) == 0) {
    return -1;
  }
  return 0;
}

/* Decide a complete header (p->head, without <|message|>). Words are split
 * at spaces and at the <|channel|> and <|constrain|> markers, which may come
 * with or without a space before them. Returns 0 and fills *out, or -1. */
static int harmony__parse_header(const relay_harmony_t *p, harmony_header_t *out) {
  enum { ROLE, CHANNEL_NAME, AFTER_NAME } sect;
  const char *h = p->head;
  size_t n = p->head_len, i = harmony__opener_len(p->head_open);
  int role = 0, channel = -1; /* 0 analysis, 1 commentary, 2 final */
  memset(out, 0, sizeof *out);
  sect = p->head_open == M_CHANNEL ? CHANNEL_NAME : ROLE;
  while (i < n) {
    size_t l;
    if (h[i] == ' ') {
      i++;
      continue;
    }
    if ((l = harmony__at_marker(h, i, n, M_CHANNEL)) != 0) {
      if (channel >= 0 || sect == CHANNEL_NAME) return -1;
      sect = CHANNEL_NAME;
      i += l;
      continue;
    }
    if ((l = harmony__at_marker(h, i, n, M_CONSTRAIN)) != 0) {
      if (sect == CHANNEL_NAME) return -1;
      sect = AFTER_NAME; /* the content type follows */
      i += l;
      continue;
    }
    size_t w = i;
    while (i < n && h[i] != ' ' && !harmony__at_marker(h, i, n, M_CHANNEL) &&
           !harmony__at_marker(h, i, n, M_CONSTRAIN))
      i++;
    const char *word = h + w;
    size_t wl = i - w;
    if (sect != CHANNEL_NAME && wl >= 3 && memcmp(word, "to=", 3) == 0) {
      if (harmony__recipient(out, word + 3, wl - 3)) return -1;
    } else if (sect == ROLE) {
      if (role || !harmony__word_is(word, wl, "assistant")) return -1;
      role = 1;
    } else if (sect == CHANNEL_NAME) {
      if (harmony__word_is(word, wl, "analysis")) channel = 0;
      else if (harmony__word_is(word, wl, "commentary")) channel = 1;
      else if (harmony__word_is(word, wl, "final")) channel = 2;
      else return -1;
      sect = AFTER_NAME;
    }
    /* AFTER_NAME: a content type ("json", "code"); it changes nothing here */
  }
  if (sect == CHANNEL_NAME) return -1;
  if (out->recipient) out->kind = HARMONY__CALL;
  else out->kind = channel == 0 ? RELAY_HARMONY_REASONING : RELAY_HARMONY_CONTENT;
  return 0;
}

/* <|message|> ends the header: start the body it announces, or pass the
 * header and the marker through when it does not parse. */
static void harmony__message(harmony_pass_t *ps) {
  relay_harmony_t *p = ps->p;
  harmony_header_t h;
  if (harmony__parse_header(p, &h) != 0) {
    harmony__give_up_header(ps);
    harmony__text(ps, RELAY_HARMONY_CONTENT, harmony__markers[M_MESSAGE].s,
                  harmony__markers[M_MESSAGE].len);
    return;
  }
  if (h.kind == HARMONY__CALL) {
    p->calls++;
    relay_harmony_seg_t seg = {RELAY_HARMONY_CALL_BEGIN, h.name, h.name_len,
                               (unsigned)(p->calls - 1), h.recipient, h.recipient_len, 0,
                               p->head, p->head_len};
    ps->emit(ps->ud, &seg);
  }
  p->head_len = 0;
  p->body = (int)h.kind;
  p->state = HARMONY__BODY;
}

/* ---- markers ------------------------------------------------------------ */

/* A marker inside a header. */
static void harmony__header_marker(harmony_pass_t *ps, int m) {
  relay_harmony_t *p = ps->p;
  const char *s = harmony__markers[m].s;
  size_t l = harmony__markers[m].len;
  switch (m) {
  case M_MESSAGE:
    harmony__message(ps);
    return;
  case M_START:
    /* a new message began: this header was none */
    harmony__give_up_header(ps);
    harmony__begin_header(p, m);
    return;
  case M_CHANNEL:
    if (p->head_channel) {
      harmony__give_up_header(ps);
      harmony__begin_header(p, m);
      return;
    }
    p->head_channel = 1;
    /* fall through */
  case M_CONSTRAIN:
    if (p->head_len + l > RELAY_HARMONY_MAX_HEADER) break;
    memcpy(p->head + p->head_len, s, l);
    p->head_len += l;
    p->head_in_word = 0;
    return;
  default: /* an end marker: the header never got to its body */
    break;
  }
  harmony__give_up_header(ps);
  harmony__text(ps, RELAY_HARMONY_CONTENT, s, l);
}

/* A complete marker was matched; act on it in the current state. */
static void harmony__marker(harmony_pass_t *ps, int m) {
  relay_harmony_t *p = ps->p;
  p->markers++;
  if (p->state == HARMONY__HEADER) {
    harmony__header_marker(ps, m);
    return;
  }
  if (m == M_START || m == M_CHANNEL) {
    /* a new message; a body without its end marker ends here (llama-server
     * drops <|end|>), a call as cut */
    harmony__end_body(ps, 0);
    harmony__begin_header(p, m);
  } else {
    /* <|end|>, <|call|>, <|return|>: end of a message, or a stray one */
    harmony__end_body(ps, 1);
  }
}

/* Which markers the current state listens for. */
static unsigned harmony__active(const relay_harmony_t *p) {
  return p->state == HARMONY__HEADER ? HARMONY__HEADER_MARKERS : HARMONY__FLOW_MARKERS;
}

/* Next byte of a possible marker. Returns 1 if c was taken, 0 if the held
 * bytes were released as text and c must be looked at again. */
static int harmony__mark_byte(harmony_pass_t *ps, unsigned char c) {
  relay_harmony_t *p = ps->p;
  size_t at = p->mark_len;
  unsigned cand = 0;
  int full = -1;
  for (int m = 0; m < M_COUNT; m++) {
    if (!(p->mark_cand & BIT(m)) || (unsigned char)harmony__markers[m].s[at] != c) continue;
    cand |= BIT(m);
    if (harmony__markers[m].len == at + 1) full = m;
  }
  if (cand == 0) {
    char held[RELAY_HARMONY_MAX_MARKER];
    memcpy(held, p->mark, at);
    p->mark_len = 0;
    harmony__plain(ps, held, at);
    return 0;
  }
  if (full >= 0) {
    /* markers are never prefixes of each other, so this one is decided */
    p->mark_len = 0;
    harmony__marker(ps, full);
    return 1;
  }
  p->mark[p->mark_len++] = (char)c;
  p->mark_cand = cand;
  return 1;
}

/* ---- the start of the text ---------------------------------------------- */

/* The text may begin inside a role header whose <|start|>assistant was the
 * end of the prompt: " to=functions.f<|channel|>commentary json<|message|>".
 * Hold leading spaces and "to=" only; once "to=" is there, read the rest as a
 * header (given up like any other if it is none). Anything else settles the
 * held bytes as content at once. Returns 1 if c was taken. */
static int harmony__probe_byte(harmony_pass_t *ps, unsigned char c) {
  relay_harmony_t *p = ps->p;
  static const char to[] = "to=";
  if (p->head_len >= RELAY_HARMONY_MAX_HEADER) {
    /* only spaces so far: no header */
  } else if (c == ' ' && p->probe_to == 0) {
    p->head[p->head_len++] = ' ';
    return 1;
  } else if ((char)c == to[p->probe_to]) {
    p->head[p->head_len++] = (char)c;
    if (++p->probe_to == 3) {
      p->head_open = M_IMPLICIT;
      p->head_channel = 0;
      p->head_in_word = 1;
      p->head_words = 1;
      p->state = HARMONY__HEADER;
    }
    return 1;
  }
  harmony__text(ps, RELAY_HARMONY_CONTENT, p->head, p->head_len);
  p->head_len = 0;
  p->state = HARMONY__OUTSIDE;
  return 0;
}

/* ---- feeding ------------------------------------------------------------ */

void relay_harmony_init(relay_harmony_t *p) {
  memset(p, 0, sizeof *p);
  p->state = HARMONY__START;
}

int relay_harmony_feed(relay_harmony_t *p, const char *data, size_t len,
                       relay_harmony_emit_cb emit, void *ud) {
  if (!p || !emit || (!data && len)) return RELAY_EINVAL;
  harmony_pass_t ps = {p, emit, ud};
  size_t i = 0;
  while (i < len) {
    unsigned char c = (unsigned char)data[i];
    if (p->mark_len) {
      i += (size_t)harmony__mark_byte(&ps, c);
    } else if (p->state == HARMONY__START) {
      i += (size_t)harmony__probe_byte(&ps, c);
    } else if (c == '<') {
      /* every marker starts with '<' */
      p->mark[0] = '<';
      p->mark_len = 1;
      p->mark_cand = harmony__active(p);
      i++;
    } else if (p->state == HARMONY__HEADER) {
      i += (size_t)harmony__header_byte(&ps, c);
    } else {
      /* settled up to the next '<' */
      const char *lt = memchr(data + i, '<', len - i);
      size_t end = lt ? (size_t)(lt - data) : len;
      harmony__flow_text(&ps, data + i, end - i);
      i = end;
    }
  }
  return 0;
}

int relay_harmony_finish(relay_harmony_t *p, relay_harmony_emit_cb emit, void *ud) {
  if (!p || !emit) return RELAY_EINVAL;
  harmony_pass_t ps = {p, emit, ud};
  if (p->mark_len) {
    char held[RELAY_HARMONY_MAX_MARKER];
    size_t n = p->mark_len;
    memcpy(held, p->mark, n);
    p->mark_len = 0;
    harmony__plain(&ps, held, n);
  }
  if (p->state == HARMONY__START) {
    harmony__text(&ps, RELAY_HARMONY_CONTENT, p->head, p->head_len);
    p->head_len = 0;
  }
  if (p->state == HARMONY__HEADER) harmony__give_up_header(&ps);
  harmony__end_body(&ps, 0);
  /* what comes next is a new text */
  p->state = HARMONY__START;
  p->probe_to = 0;
  return 0;
}

size_t relay_harmony_pending(const relay_harmony_t *p) {
  int holds = p->state == HARMONY__HEADER || p->state == HARMONY__START;
  return p->mark_len + (holds ? p->head_len : 0);
}

int relay_harmony_seen(const relay_harmony_t *p) { return p->markers != 0; }

int relay_harmony_in_call(const relay_harmony_t *p) {
  return p->state == HARMONY__BODY && p->body == HARMONY__CALL;
}

/* ---- call ids ----------------------------------------------------------- */

/* splitmix64's finaliser: a bijection of 64-bit words that spreads every
 * input bit over the output. */
static uint64_t harmony__mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* 12 base-62 digits hold any 64-bit word (62^12 > 2^64), so writing two
 * words loses nothing and distinct words give distinct text. */
static void harmony__base62(char *out, uint64_t v) {
  static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  for (int k = 11; k >= 0; k--) {
    out[k] = digits[v % 62];
    v /= 62;
  }
}

void relay_harmony_call_id(char *out, uint64_t seed, uint64_t n) {
  /* lo is a bijection of n for a fixed seed: that is what makes ids unique
   * within a response; hi only makes them look unrelated */
  uint64_t lo = harmony__mix(seed ^ harmony__mix(n));
  uint64_t hi = harmony__mix(lo + seed);
  memcpy(out, "call_", 5);
  harmony__base62(out + 5, hi);
  harmony__base62(out + 17, lo);
  out[RELAY_HARMONY_CALL_ID_LEN] = '\0';
}
