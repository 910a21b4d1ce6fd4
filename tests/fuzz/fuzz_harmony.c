/* libFuzzer target for the streaming harmony parser. Aborts when
 *   - feeding a text in pieces (at the fuzzer's cuts, and one byte at a time)
 *     gives another typed stream than feeding it whole (text merged per
 *     kind; CALL_BEGIN / CALL_END compared where they are);
 *   - the whole-text reference in tests/unit/harmony_ref.h (lookahead, no
 *     holding back) gives another stream or other counters;
 *   - a text without any harmony marker does not come out as one CONTENT
 *     equal to the input;
 *   - the callback contract breaks (empty text, NULL data, args outside a
 *     call, calls not numbered in order, a call left open after finish), more
 *     than RELAY_HARMONY_MAX_HELD bytes are held, or more bytes come out
 *     than went in.
 *
 * Input: byte 0 = number of cuts (low 4 bits); then two bytes per cut
 * (little-endian position, taken modulo the text length + 1); the rest is the
 * text, where bytes 0x80..0x80+NFRAGS-1 stand for harmony fragments so that
 * the fuzzer meets real markers, headers and near misses often. Other bytes
 * (UTF-8 too) pass as they are.
 */
#include "relay/buf.h"
#include "relay/harmony.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harmony_ref.h"

static const char *const frags[] = {
    "<|",
    "|>",
    "<|start|>",
    "<|channel|>",
    "<|message|>",
    "<|constrain|>",
    "<|end|>",
    "<|call|>",
    "<|return|>",
    "assistant",
    "analysis",
    "commentary",
    "final",
    " to=functions.get_weather",
    " to=browser.search",
    " to=",
    " json",
    "<|start|>assistant",
    "<|channel|>analysis<|message|>",
    "<|channel|>final<|message|>",
    "<|channel|>commentary to=functions.f <|constrain|>json<|message|>",
    "<|start|>assistant to=functions.f<|channel|>commentary json<|message|>",
    "<|chan",
    "<|sta",
    "{\"a\":\"<b>\"}",
    "\xc3\xa9",
    "\xe2\x98\x80",
    "\n",
    " ",
    "to=",
    " to=functions.f<|channel|>commentary json<|message|>",
    /* a long word, so that headers reach RELAY_HARMONY_MAX_HEADER */
    "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
};
#define NFRAGS (sizeof frags / sizeof frags[0])

static const char *const markers[] = {"<|start|>", "<|channel|>", "<|message|>", "<|constrain|>",
                                      "<|end|>",   "<|call|>",    "<|return|>"};

/* The typed stream reduced to a canonical log, checking the contract. */
typedef struct {
  relay_buf_t log;
  int text_kind; /* kind of the run being merged, -1 none */
  size_t run_at; /* offset of the run's length field in log */
  long open_call;
  long next_call;
  size_t out_bytes;
  size_t segs;
  size_t content_segs;
} out_t;

static void out_head(out_t *o, char tag, uint64_t a, uint64_t b) {
  char head[1 + 2 * sizeof(uint64_t)];
  head[0] = tag;
  memcpy(head + 1, &a, sizeof a);
  memcpy(head + 1 + sizeof a, &b, sizeof b);
  relay_buf_append(&o->log, head, sizeof head);
}

static void out_emit(void *ud, const relay_harmony_seg_t *g) {
  out_t *o = ud;
  if (g == NULL || g->data == NULL) abort();
  o->segs++;
  switch (g->kind) {
  case RELAY_HARMONY_CONTENT:
  case RELAY_HARMONY_REASONING:
  case RELAY_HARMONY_CALL_ARGS: {
    if (g->len == 0) abort();
    int in_call = g->kind == RELAY_HARMONY_CALL_ARGS;
    if (in_call != (o->open_call >= 0)) abort();
    if (in_call && g->call != (unsigned)o->open_call) abort();
    if (g->kind == RELAY_HARMONY_CONTENT) o->content_segs++;
    o->out_bytes += g->len;
    if (o->text_kind != (int)g->kind) {
      out_head(o, (char)('0' + g->kind), 0, 0);
      o->run_at = o->log.len - sizeof(uint64_t);
      o->text_kind = (int)g->kind;
    }
    relay_buf_append(&o->log, g->data, g->len);
    /* keep the run's length up to date so that the log is unambiguous */
    uint64_t n;
    memcpy(&n, o->log.data + o->run_at, sizeof n);
    n += g->len;
    memcpy(o->log.data + o->run_at, &n, sizeof n);
    break;
  }
  case RELAY_HARMONY_CALL_BEGIN:
    if (g->len == 0 || o->open_call >= 0 || g->call != (unsigned)o->next_call) abort();
    if (!g->recipient || g->recipient_len < g->len) abort();
    if (memchr(g->data, '<', g->len) || memchr(g->data, ' ', g->len)) abort();
    o->open_call = (long)g->call;
    o->next_call++;
    o->out_bytes += g->len;
    out_head(o, 'B', g->call, g->len);
    relay_buf_append(&o->log, g->data, g->len);
    o->text_kind = -1;
    break;
  case RELAY_HARMONY_CALL_END:
    if (g->len != 0 || o->open_call < 0 || g->call != (unsigned)o->open_call) abort();
    if (g->complete != 0 && g->complete != 1) abort();
    out_head(o, 'E', g->call, (uint64_t)g->complete);
    o->open_call = -1;
    o->text_kind = -1;
    break;
  default:
    abort();
  }
}

static void out_init(out_t *o) {
  memset(o, 0, sizeof *o);
  relay_buf_init(&o->log);
  o->text_kind = -1;
  o->open_call = -1;
}

/* Feed text cut at the sorted cuts (ncuts == (size_t)-1: byte by byte). */
static void run(const char *t, size_t len, const size_t *cuts, size_t ncuts, out_t *o,
                relay_harmony_t *end) {
  relay_harmony_t p;
  relay_harmony_init(&p);
  size_t prev = 0;
  int bytewise = ncuts == (size_t)-1;
  size_t steps = bytewise ? len : ncuts + 1;
  for (size_t k = 0; k < steps; k++) {
    size_t c = bytewise ? k + 1 : k < ncuts ? cuts[k] : len;
    if (relay_harmony_feed(&p, t + prev, c - prev, out_emit, o) != 0) abort();
    if (relay_harmony_pending(&p) > RELAY_HARMONY_MAX_HELD) abort();
    prev = c;
  }
  if (relay_harmony_finish(&p, out_emit, o) != 0) abort();
  if (relay_harmony_pending(&p) != 0 || relay_harmony_in_call(&p) || o->open_call >= 0) abort();
  /* names are header bytes that are not text: nothing comes out twice */
  if (o->out_bytes > len) abort();
  *end = p;
}

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

static int same(const out_t *a, const out_t *b) {
  return a->log.len == b->log.len && (a->log.len == 0 || !memcmp(a->log.data, b->log.data, a->log.len));
}

static int has_marker(const char *t, size_t len) {
  for (size_t m = 0; m < sizeof markers / sizeof *markers; m++) {
    size_t ml = strlen(markers[m]);
    for (size_t i = 0; i + ml <= len; i++)
      if (memcmp(t + i, markers[m], ml) == 0) return 1;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t ncuts = data[0] & 15;
  if (size < 1 + 2 * ncuts) return 0;
  const uint8_t *raw = data + 1 + 2 * ncuts;
  size_t rawlen = size - 1 - 2 * ncuts;

  relay_buf_t text;
  relay_buf_init(&text);
  relay_buf_reserve(&text, 1);
  for (size_t i = 0; i < rawlen; i++) {
    if (raw[i] >= 0x80 && raw[i] < 0x80 + NFRAGS)
      relay_buf_append_str(&text, frags[raw[i] - 0x80]);
    else
      relay_buf_append(&text, &raw[i], 1);
  }
  size_t cuts[16];
  for (size_t k = 0; k < ncuts; k++)
    cuts[k] = (data[1 + 2 * k] | (size_t)data[2 + 2 * k] << 8) % (text.len + 1);
  qsort(cuts, ncuts, sizeof cuts[0], cmp_size);

  out_t whole, cut, bytes;
  relay_harmony_t pw, pc, pb;
  out_init(&whole);
  out_init(&cut);
  out_init(&bytes);
  run(text.data, text.len, NULL, 0, &whole, &pw);
  run(text.data, text.len, cuts, ncuts, &cut, &pc);
  run(text.data, text.len, NULL, (size_t)-1, &bytes, &pb);
  out_t ref;
  relay_harmony_t pr;
  out_init(&ref);
  href_run(text.data, text.len, out_emit, &ref, &pr);
  if (ref.open_call >= 0) abort();
  if (!same(&whole, &cut) || !same(&whole, &bytes) || !same(&whole, &ref)) abort();
  if (pw.calls != pr.calls || pw.calls_cut != pr.calls_cut || pw.markers != pr.markers ||
      pw.fallbacks != pr.fallbacks)
    abort();
  if (pw.calls != pc.calls || pw.calls != pb.calls || pw.calls_cut != pb.calls_cut ||
      pw.markers != pb.markers || pw.fallbacks != pb.fallbacks)
    abort();

  if (!has_marker(text.data, text.len)) {
    /* unchanged, byte for byte, and nothing but content */
    if (pw.markers != 0 || whole.out_bytes != text.len || pw.calls != 0) abort();
    if (text.len > 0) {
      uint64_t n;
      if (whole.log.len != 1 + 2 * sizeof n + text.len || whole.log.data[0] != '0') abort();
      memcpy(&n, whole.log.data + 1 + sizeof n, sizeof n);
      if (n != text.len || memcmp(whole.log.data + 1 + 2 * sizeof n, text.data, text.len)) abort();
    } else if (whole.segs != 0) {
      abort();
    }
  }

  relay_buf_dispose(&whole.log);
  relay_buf_dispose(&cut.log);
  relay_buf_dispose(&bytes.log);
  relay_buf_dispose(&ref.log);
  relay_buf_dispose(&text);
  return 0;
}
