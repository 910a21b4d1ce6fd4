/* libFuzzer target for the chat filter, driven through a filter chain with a
 * buffer as sink (no sockets, no loop): arbitrary event streams in every
 * configuration (harmony parser or the stock rules, each output mode and
 * field setting, tool calls on or off, n = 1 or 2, streams and bodies),
 * with text in content, in reasoning_content, in reasoning, in both (vLLM's
 * mirror), null members, calls the upstream parsed, and hostile event data.
 * Aborts when
 *   - the same script cut into events differently (each segment's text split
 *     at the fuzzer's positions into several events of the same kind) gives
 *     the client other content, reasoning, tool calls (name and arguments;
 *     ids are random) or finish_reason; this also pits the reuse-last-parse
 *     fast path against full parses;
 *   - the SSE bytes fed to the chain cut at the fuzzer's positions give other
 *     output than fed whole (ids masked);
 *   - an event the upstream sent as a JSON chunk comes out as invalid JSON,
 *     fewer events come out than went in, or more than one extra per choice;
 *   - the two choices of an n = 2 stream read differently;
 *   - in tags and strip mode a reasoning member is left with text, in field
 *     mode one that was not asked for has text;
 *   - a tool call entry breaks the streaming rules (first delta without id,
 *     type or name; a name sent twice);
 *   - a body that was valid JSON comes out invalid.
 *
 * Input: byte 0 = configuration (bits 0-1 mode: tags, field, strip, tags;
 * bits 2-3 field: reasoning_content, reasoning, both; bit 4 the stock rules
 * instead of the parser; bit 5 tool calls off; bit 6 a JSON body; bit 7
 * n = 2); byte 1 = number of cuts (low 3 bits), then two bytes per cut; the
 * rest is the script: segments separated by 0xFE, each a kind byte (0
 * content, 1 reasoning_content, 2 reasoning, 3 both, 4 an upstream call's
 * arguments, 5 raw event data, 6 content null beside reasoning_content, 7
 * finish "length", else content) and its text, where bytes 0x80.. stand for
 * harmony fragments. */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "chat_collect.h"
#include "log.h"
#include "harmony_rules.h"
#include "relay/harmony.h"

#define FUZZ_CHECK(c) \
  do {                \
    if (!(c)) {       \
      fprintf(stderr, "fuzz_chat_filter: %s:%d: %s\n", __FILE__, __LINE__, #c); \
      abort();        \
    }                 \
  } while (0)

static const char *const frags[] = {
    "<|start|>assistant", "<|channel|>analysis<|message|>", "<|channel|>final<|message|>", "<|end|>",
    "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>", "<|call|>", "<|return|>",
    "<|start|>", "<|channel|>", "<|message|>", "<|constrain|>", " to=functions.f", "commentary", "analysis",
    " json", "{\"a\":\"<b>\"}", "\xc3\xa9", "\"", "\\", "<|", "\n", "<think>", "</think>",
    " to=functions.f<|channel|>commentary json<|message|>", "<|channel|>analysis to=python code<|message|>",
};
#define NFRAGS (sizeof frags / sizeof frags[0])

#define MAX_SEGS 64
typedef struct {
  int kind;
  relay_buf_t text;
} seg_t;

static relay_buf_t out;
static int sink(void *ud, const char *d, size_t n) { return relay_buf_append(&out, d, n); }

static void expand(relay_buf_t *t, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] >= 0x80 && p[i] < 0x80 + NFRAGS) relay_buf_append_str(t, frags[p[i] - 0x80]);
    else relay_buf_append(t, &p[i], 1);
  }
}

static void put_str(relay_buf_t *b, const char *s, size_t n) {
  relay_buf_append(b, "\"", 1);
  relay_json_escape(b, s ? s : "", n);
  relay_buf_append(b, "\"", 1);
}

/* One event (or body choice) of segment kind k with text s. */
static void delta_of(relay_buf_t *d, int kind, const char *s, size_t n) {
  relay_buf_reset(d);
  switch (kind) {
    case 1: relay_buf_append_str(d, "{\"reasoning_content\":"); put_str(d, s, n); break;
    case 2: relay_buf_append_str(d, "{\"role\":\"assistant\",\"content\":\"\",\"reasoning\":"); put_str(d, s, n); break;
    case 3:
      relay_buf_append_str(d, "{\"reasoning\":");
      put_str(d, s, n);
      relay_buf_append_str(d, ",\"reasoning_content\":");
      put_str(d, s, n);
      break;
    case 4: relay_buf_append_str(d, "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"); put_str(d, s, n);
      relay_buf_append_str(d, "}}]"); break;
    case 6: relay_buf_append_str(d, "{\"content\":null,\"reasoning_content\":"); put_str(d, s, n); break;
    default: relay_buf_append_str(d, "{\"content\":"); put_str(d, s, n); relay_buf_append_str(d, ",\"reasoning\":\"\""); break;
  }
  relay_buf_append_str(d, "}");
}

static void event(relay_buf_t *in, int index, const relay_buf_t *delta, const char *finish) {
  relay_buf_printf(in, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":%d,\"delta\":",
                   index);
  relay_buf_append(in, delta->data, delta->len);
  relay_buf_printf(in, ",\"finish_reason\":%s}]}\n\n", finish ? finish : "null");
}

/* The stream of a script, each segment's text cut at the cuts (none: whole). */
static size_t build(seg_t *segs, size_t nsegs, const size_t *cuts, size_t ncuts, int n2, relay_buf_t *in,
                    const char **finish) {
  relay_buf_t d;
  relay_buf_init(&d);
  size_t events = 0;
  relay_buf_reset(in);
  *finish = "\"stop\"";
  for (size_t k = 0; k < nsegs; k++) {
    seg_t *g = &segs[k];
    if (g->kind == 7) {
      *finish = "\"length\"";
      continue;
    }
    if (g->kind == 5) {
      for (int i = 0; i <= n2; i++, events++) {
        relay_buf_append_str(in, "data: ");
        for (size_t j = 0; j < g->text.len; j++)
          if (g->text.data[j] != '\n' && g->text.data[j] != '\r') relay_buf_append(in, g->text.data + j, 1);
        relay_buf_append_str(in, "\n\n");
      }
      continue;
    }
    size_t pos = 0;
    for (size_t c = 0; c <= ncuts; c++) {
      size_t end = c < ncuts ? cuts[c] % (g->text.len + 1) : g->text.len;
      if (end <= pos) continue;
      delta_of(&d, g->kind, g->text.data + pos, end - pos);
      for (int i = 0; i <= n2; i++, events++) event(in, i, &d, NULL);
      pos = end;
    }
  }
  relay_buf_reset(&d);
  relay_buf_append_str(&d, "{}");
  for (int i = n2; i >= 0; i--, events++) event(in, i, &d, *finish);
  relay_buf_append_str(in, "data: [DONE]\n\n");
  relay_buf_dispose(&d);
  return events + 1;
}

static relay_chat_opts_t *opts_of(uint8_t cfg) {
  relay_chat_opts_t *o = relay_chat_opts_new();
  FUZZ_CHECK(o);
  int mode = cfg & 3;
  o->mode = mode == 1 ? RELAY_MODE_FIELD : mode == 2 ? RELAY_MODE_STRIP : RELAY_MODE_TAGS;
  int field = (cfg >> 2) & 3;
  if (field == 1) strcpy(o->field[0], "reasoning");
  if (field == 2) strcpy(o->field[1], "reasoning");
  if (cfg & 0x10) {
    FUZZ_CHECK(relay_ruleset_new(&o->rules, harmony_rules, HARMONY_NRULES) == 0);
    o->reasoning_states = 1u << 1;
  } else {
    o->parser = RELAY_CHAT_HARMONY;
  }
  o->tool_calls = !(cfg & 0x20);
  strcpy(o->in_field[0], "reasoning_content");
  strcpy(o->in_field[1], "reasoning");
  return o;
}

static void run(relay_chat_opts_t *o, const char *ctype, const char *data, size_t len, const size_t *cuts,
                size_t ncuts) {
  relay_chain_t c;
  relay_buf_reset(&out);
  relay_chain_init(&c, 1 << 24, 1 << 24, sink, NULL, "fuzz"); /* no bypass: it would end the comparisons */
  relay_head_t h;
  relay_head_init(&h, 4096);
  relay_head_add(&h, "Content-Type", ctype, strlen(ctype));
  relay_response_t r;
  relay_response_classify(&r, 200, &h);
  relay_filter_t *f = relay_chat_filter_type.create(o, NULL);
  FUZZ_CHECK(f && f->ops->on_head(f, &r) == 0);
  relay_head_dispose(&h);
  FUZZ_CHECK(relay_chain_add(&c, f) == 0);
  size_t pos = 0;
  for (size_t k = 0; k <= ncuts; k++) {
    size_t end = k < ncuts ? cuts[k] % (len + 1) : len;
    if (end < pos) continue;
    FUZZ_CHECK(relay_chain_feed(&c, data + pos, end - pos) == 0);
    pos = end;
  }
  FUZZ_CHECK(relay_chain_end(&c, 1) == 0);
  relay_chain_dispose(&c);
}

/* Tool call ids are random per response: blank them for comparisons. */
static void mask_ids(relay_buf_t *b) {
  static const char key[] = "\"id\":\"call_";
  size_t kl = sizeof key - 1;
  for (char *p = b->data; p && (p = memmem(p, b->len - (size_t)(p - b->data), key, kl)); p += kl) {
    size_t room = (size_t)(b->data + b->len - p) - kl;
    size_t k = 0;
    while (k < room && k < RELAY_HARMONY_CALL_ID_LEN - 5 &&
           ((p[kl + k] >= '0' && p[kl + k] <= '9') || (p[kl + k] >= 'A' && p[kl + k] <= 'Z') ||
            (p[kl + k] >= 'a' && p[kl + k] <= 'z')))
      k++;
    if (k == RELAY_HARMONY_CALL_ID_LEN - 5) memset(p + kl, 'X', k);
  }
}

static int same(const relay_buf_t *a, const relay_buf_t *b) {
  return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void same_choice(got_t *a, got_t *b, int ids) {
  FUZZ_CHECK(same(&a->content, &b->content));
  FUZZ_CHECK(same(&a->rc, &b->rc));
  FUZZ_CHECK(same(&a->r, &b->r));
  FUZZ_CHECK(same(&a->finish, &b->finish));
  FUZZ_CHECK(a->ncalls == b->ncalls);
  for (int k = 0; k < a->ncalls && k < MAX_CALLS; k++) {
    FUZZ_CHECK(same(&a->name[k], &b->name[k]));
    FUZZ_CHECK(same(&a->args[k], &b->args[k]));
    if (ids) FUZZ_CHECK(same(&a->id[k], &b->id[k]));
  }
}

/* Reasoning members left where the mode says none. */
static void check_members(const relay_chat_opts_t *o, got_t *g, int raw_events) {
  if (raw_events) return; /* hostile data may carry anything, passed as it came */
  if (o->mode != RELAY_MODE_FIELD) {
    FUZZ_CHECK(g->rc.len == 0 && g->r.len == 0);
  } else {
    int want_rc = o->field[0][0] && strcmp(o->field[0], "reasoning_content") == 0;
    int want_r = strcmp(o->field[0], "reasoning") == 0 || strcmp(o->field[1], "reasoning") == 0;
    if (!want_rc) FUZZ_CHECK(g->rc.len == 0);
    if (!want_r) FUZZ_CHECK(g->r.len == 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int init;
  if (!init) {
    relay_log_set_level(RELAY_LOG_ERROR);
    relay_buf_init(&out);
    init = 1;
  }
  if (size < 2) return 0;
  uint8_t cfg = data[0];
  size_t ncuts = data[1] & 7;
  if (size < 2 + 2 * ncuts) return 0;
  size_t cuts[8];
  for (size_t k = 0; k < ncuts; k++) cuts[k] = (size_t)data[2 + 2 * k] | (size_t)data[3 + 2 * k] << 8;
  const uint8_t *p = data + 2 + 2 * ncuts, *end = data + size;
  seg_t segs[MAX_SEGS];
  size_t nsegs = 0;
  int raw_events = 0;
  while (p < end && nsegs < MAX_SEGS) {
    const uint8_t *e = memchr(p, 0xFE, (size_t)(end - p));
    if (!e) e = end;
    seg_t *g = &segs[nsegs++];
    g->kind = p[0] & 7;
    raw_events |= g->kind == 5 || g->kind == 4;
    relay_buf_init(&g->text);
    expand(&g->text, p + 1, (size_t)(e - p) - (e > p ? 1 : 0));
    p = e + 1;
  }
  int n2 = (cfg >> 7) & 1;
  relay_chat_opts_t *o = opts_of(cfg);
  relay_buf_t in1, in2, out1;
  relay_buf_init(&in1);
  relay_buf_init(&in2);
  relay_buf_init(&out1);
  const char *finish;
  if (cfg & 0x40) {
    /* a body: the segments' texts joined into one message */
    relay_buf_t msg, all[8];
    relay_buf_init(&msg);
    for (int k = 0; k < 8; k++) relay_buf_init(&all[k]);
    for (size_t k = 0; k < nsegs; k++) relay_buf_append(&all[segs[k].kind], segs[k].text.data, segs[k].text.len);
    relay_buf_append_str(&in1, "{\"id\":\"c\",\"object\":\"chat.completion\",\"choices\":[");
    for (int i = 0; i <= n2; i++) {
      relay_buf_printf(&in1, "%s{\"index\":%d,\"message\":{\"role\":\"assistant\",\"content\":", i ? "," : "", i);
      put_str(&in1, all[0].data, all[0].len);
      relay_buf_append_str(&in1, ",\"reasoning_content\":");
      put_str(&in1, all[1].data, all[1].len);
      relay_buf_append_str(&in1, ",\"reasoning\":");
      put_str(&in1, all[2].data, all[2].len);
      relay_buf_append_str(&in1, ",\"tool_calls\":[]},\"finish_reason\":\"stop\"}");
    }
    relay_buf_append_str(&in1, "],\"usage\":{\"x\":[]}}");
    run(o, "application/json", in1.data, in1.len, cuts, ncuts);
    relay_json_path_seg_t root = {NULL, 0, 0};
    size_t a, b;
    FUZZ_CHECK(relay_json_find(out.data ? out.data : "", out.len, &root, 0, &a, &b) == 0);
    got_t g[2];
    for (int i = 0; i < 2; i++) got_init(&g[i]);
    read_doc(out.data, out.len, "message", g, n2 + 1, 0);
    FUZZ_CHECK(g[0].bad == 0 && g[0].invalid == 0);
    check_members(o, &g[0], 0);
    if (n2) same_choice(&g[0], &g[1], 0);
    for (int i = 0; i < 2; i++) got_dispose(&g[i]);
    for (int k = 0; k < 8; k++) relay_buf_dispose(&all[k]);
    relay_buf_dispose(&msg);
  } else {
    size_t ev1 = build(segs, nsegs, NULL, 0, n2, &in1, &finish);
    size_t ev2 = build(segs, nsegs, cuts, ncuts, n2, &in2, &finish);
    /* whole, then the same bytes cut at the fuzzer's positions: same output */
    run(o, "text/event-stream", in1.data, in1.len, NULL, 0);
    relay_buf_append(&out1, out.data, out.len);
    got_t g1[2], g2[2];
    for (int i = 0; i < 2; i++) {
      got_init(&g1[i]);
      got_init(&g2[i]);
    }
    size_t n_out = read_stream(out1.data, out1.len, g1, n2 + 1);
    run(o, "text/event-stream", in1.data, in1.len, cuts, ncuts);
    mask_ids(&out1);
    mask_ids(&out);
    FUZZ_CHECK(same(&out1, &out));
    FUZZ_CHECK(n_out >= ev1 && (raw_events || n_out <= ev1 + 1 + (size_t)n2));
    /* the texts cut into other events: the client reads the same */
    run(o, "text/event-stream", in2.data, in2.len, NULL, 0);
    n_out = read_stream(out.data, out.len, g2, n2 + 1);
    FUZZ_CHECK(n_out >= ev2 && (raw_events || n_out <= ev2 + 1 + (size_t)n2));
    if (!raw_events) {
      FUZZ_CHECK(g1[0].invalid == 0 && g2[0].invalid == 0);
      for (int i = 0; i <= n2; i++) {
        FUZZ_CHECK(g1[i].bad == 0 && g2[i].bad == 0);
        same_choice(&g1[i], &g2[i], 0);
        check_members(o, &g1[i], raw_events);
      }
      if (n2) same_choice(&g1[0], &g1[1], 0);
    }
    for (int i = 0; i < 2; i++) {
      got_dispose(&g1[i]);
      got_dispose(&g2[i]);
    }
  }
  relay_chat_opts_unref(o);
  relay_buf_dispose(&in1);
  relay_buf_dispose(&in2);
  relay_buf_dispose(&out1);
  for (size_t k = 0; k < nsegs; k++) relay_buf_dispose(&segs[k].text);
  return 0;
}
