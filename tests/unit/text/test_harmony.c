/* Unit tests for the streaming harmony parser: every text is run whole, cut at
 * every position, cut at every pair of positions (short texts) and one byte at
 * a time; all runs must give the expected typed stream, compared on a
 * canonical log where adjacent text of one kind is merged (so runs that were
 * cut differently, and so called back differently, compare equal) while
 * CALL_BEGIN and CALL_END stay where they are. Each text is also checked
 * against a naive whole-text reference (harmony_ref.h), counters included. */
#include "relay/buf.h"
#include "relay/harmony.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cuts.h"
#include "harmony_ref.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- output collection -------------------------------------------------- */

/* Canonical log: "C:len:text" / "R:..." / "A<call>:len:text" for merged text,
 * "B<call>:len:name|len:recipient", "E<call>:complete". The sink also checks
 * the callback contract as it goes. */
typedef struct {
  relay_buf_t canon;
  relay_buf_t text; /* text run not yet written to canon */
  int text_kind;
  unsigned text_call;
  relay_buf_t content; /* all CONTENT, for lossless checks */
  int open_call;       /* index of the open call, or -1 */
  long next_call;      /* index the next CALL_BEGIN must carry */
  size_t calls;        /* callback invocations */
  int bad;             /* callback contract violations */
} sink_t;

static void sink_init(sink_t *s) {
  memset(s, 0, sizeof *s);
  relay_buf_init(&s->canon);
  relay_buf_init(&s->text);
  relay_buf_init(&s->content);
  relay_buf_reserve(&s->canon, 1);
  relay_buf_reserve(&s->content, 1);
  s->open_call = -1;
  s->text_kind = -1;
}

static void sink_close(sink_t *s) {
  relay_buf_dispose(&s->canon);
  relay_buf_dispose(&s->text);
  relay_buf_dispose(&s->content);
}

static const char kind_letter[] = {'C', 'R', 'B', 'A', 'E'};

static void sink_flush_text(sink_t *s) {
  if (s->text_kind < 0) return;
  if (s->text_kind == RELAY_HARMONY_CALL_ARGS)
    relay_buf_printf(&s->canon, "A%u:%zu:", s->text_call, s->text.len);
  else
    relay_buf_printf(&s->canon, "%c:%zu:", kind_letter[s->text_kind], s->text.len);
  relay_buf_append(&s->canon, s->text.data, s->text.len);
  relay_buf_reset(&s->text);
  s->text_kind = -1;
}

static void sink_text(sink_t *s, int kind, unsigned call, const char *data, size_t len) {
  if (s->text_kind != kind || s->text_call != call) sink_flush_text(s);
  s->text_kind = kind;
  s->text_call = call;
  relay_buf_append(&s->text, data, len);
}

static void sink_emit(void *ud, const relay_harmony_seg_t *g) {
  sink_t *s = ud;
  s->calls++;
  if (g == NULL || g->data == NULL) {
    s->bad++;
    return;
  }
  switch (g->kind) {
  case RELAY_HARMONY_CONTENT:
  case RELAY_HARMONY_REASONING:
    if (g->len == 0 || s->open_call >= 0 || g->call != 0 || g->recipient) s->bad++;
    sink_text(s, (int)g->kind, 0, g->data, g->len);
    if (g->kind == RELAY_HARMONY_CONTENT) relay_buf_append(&s->content, g->data, g->len);
    break;
  case RELAY_HARMONY_CALL_ARGS:
    if (g->len == 0 || s->open_call < 0 || g->call != (unsigned)s->open_call) s->bad++;
    sink_text(s, (int)g->kind, g->call, g->data, g->len);
    break;
  case RELAY_HARMONY_CALL_BEGIN:
    if (g->len == 0 || s->open_call >= 0 || g->call != (unsigned)s->next_call ||
        g->recipient == NULL || g->recipient_len < g->len)
      s->bad++;
    sink_flush_text(s);
    relay_buf_printf(&s->canon, "B%u:%zu:", g->call, g->len);
    relay_buf_append(&s->canon, g->data, g->len);
    relay_buf_printf(&s->canon, "|%zu:", g->recipient_len);
    if (g->recipient) relay_buf_append(&s->canon, g->recipient, g->recipient_len);
    s->open_call = (int)g->call;
    s->next_call++;
    break;
  case RELAY_HARMONY_CALL_END:
    if (g->len != 0 || s->open_call < 0 || g->call != (unsigned)s->open_call ||
        (g->complete != 0 && g->complete != 1))
      s->bad++;
    sink_flush_text(s);
    relay_buf_printf(&s->canon, "E%u:%d", g->call, g->complete);
    s->open_call = -1;
    break;
  default:
    s->bad++;
  }
}

static void sink_done(sink_t *s) {
  sink_flush_text(s);
  if (s->open_call >= 0) s->bad++; /* finish() must close every call */
}

/* ---- expectations ------------------------------------------------------- */

/* One expected segment: kind letter (C R B A E), text (or name, or "0"/"1"
 * for E) and, for B, the recipient. Calls are numbered in order. */
typedef struct {
  char k;
  const char *s;
  const char *r;
} exp_t;

#define C_(t) {'C', (t), NULL}
#define R_(t) {'R', (t), NULL}
#define A_(t) {'A', (t), NULL}
#define BF(name) {'B', (name), "functions." name} /* to=functions.NAME */
#define BN(name) {'B', (name), (name)}            /* to=NAME */
#define E1 {'E', "1", NULL}
#define E0 {'E', "0", NULL}
#define END_ {0, NULL, NULL}

/* Build the canonical log the expected segments must give. */
static void expect_canon(const exp_t *e, relay_buf_t *out) {
  relay_buf_reserve(out, 1); /* never NULL data, for CHECK_MEM's memcmp() */
  sink_t s;
  sink_init(&s);
  unsigned call = 0;
  for (; e->k; e++) {
    relay_harmony_seg_t g = {RELAY_HARMONY_CONTENT, e->s, strlen(e->s), 0, NULL, 0, 0};
    switch (e->k) {
    case 'C':
      break;
    case 'R':
      g.kind = RELAY_HARMONY_REASONING;
      break;
    case 'A':
      g.kind = RELAY_HARMONY_CALL_ARGS;
      g.call = call - 1;
      break;
    case 'B':
      g.kind = RELAY_HARMONY_CALL_BEGIN;
      g.call = call++;
      g.recipient = e->r;
      g.recipient_len = strlen(e->r);
      break;
    case 'E':
      g.kind = RELAY_HARMONY_CALL_END;
      g.call = call - 1;
      g.complete = e->s[0] == '1';
      g.data = "";
      g.len = 0;
      break;
    }
    if (g.len || g.kind == RELAY_HARMONY_CALL_END) sink_emit(&s, &g);
  }
  sink_done(&s);
  relay_buf_reset(out);
  relay_buf_append(out, s.canon.data, s.canon.len);
  sink_close(&s);
}

/* ---- runners ------------------------------------------------------------ */

static int same(const char *a, size_t alen, const char *b, size_t blen) {
  return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Feed t cut at the sorted positions cuts[], then finish. Each piece is copied
 * into a buffer of exactly its size so ASan sees any read past it. Returns the
 * number of invariant violations. */
static int run_cuts(const char *t, size_t len, const size_t *cuts, size_t ncuts, sink_t *s,
                    relay_harmony_t *out) {
  relay_harmony_t p;
  int bad = 0;
  relay_harmony_init(&p);
  size_t prev = 0;
  for (size_t k = 0; k <= ncuts; k++) {
    size_t c = k < ncuts ? cuts[k] : len;
    size_t n = c - prev;
    char *piece = malloc(n ? n : 1);
    memcpy(piece, t + prev, n);
    if (relay_harmony_feed(&p, piece, n, sink_emit, s) != 0) bad++;
    free(piece);
    if (relay_harmony_pending(&p) > RELAY_HARMONY_MAX_HELD) bad++;
    prev = c;
  }
  if (relay_harmony_finish(&p, sink_emit, s) != 0) bad++;
  if (relay_harmony_pending(&p) != 0 || relay_harmony_in_call(&p)) bad++;
  /* a second finish adds nothing */
  size_t calls = s->calls;
  if (relay_harmony_finish(&p, sink_emit, s) != 0 || s->calls != calls) bad++;
  sink_done(s);
  if (out) *out = p;
  return bad + s->bad;
}

typedef struct {
  const char *name;
  const char *text;
  size_t len;
  const relay_buf_t *canon;
  int mismatches;
} variant_ctx_t;

/* One way of cutting: compare with the expected log, report the first miss. */
static void variant(variant_ctx_t *v, const size_t *cuts, size_t ncuts) {
  sink_t s;
  sink_init(&s);
  int bad = run_cuts(v->text, v->len, cuts, ncuts, &s, NULL);
  if ((bad || !same(s.canon.data, s.canon.len, v->canon->data, v->canon->len)) &&
      v->mismatches++ == 0) {
    fprintf(stderr, "%s: cut at", v->name);
    for (size_t k = 0; k < ncuts && k < 8; k++) fprintf(stderr, " %zu", cuts[k]);
    fprintf(stderr, "%s: bad=%d got [%.*s]\n", ncuts > 8 ? " ..." : "", bad, (int)s.canon.len,
            s.canon.data);
  }
  sink_close(&s);
}
static void variant_cb(void *v, const size_t *cuts, size_t ncuts) { variant(v, cuts, ncuts); }

#define PAIR_LIMIT 200

/* Run a text whole, at every cut, at every pair of cuts (texts up to
 * PAIR_LIMIT bytes) and byte by byte; all must give the expected log. */
static void check_text(const char *name, const char *text, size_t len, const exp_t *e) {
  relay_buf_t want;
  relay_buf_init(&want);
  expect_canon(e, &want);
  sink_t whole;
  sink_init(&whole);
  CHECK(run_cuts(text, len, NULL, 0, &whole, NULL) == 0);
  if (!same(whole.canon.data, whole.canon.len, want.data, want.len))
    fprintf(stderr, "case %s:\n", name);
  CHECK_MEM(whole.canon.data, whole.canon.len, want.data, want.len);
  sink_t ref;
  relay_harmony_t pw, pr;
  sink_init(&ref);
  href_run(text, len, sink_emit, &ref, &pr);
  sink_done(&ref);
  sink_close(&whole);
  sink_init(&whole);
  run_cuts(text, len, NULL, 0, &whole, &pw);
  CHECK_MEM(ref.canon.data, ref.canon.len, want.data, want.len);
  CHECK(ref.bad == 0);
  CHECK(pw.calls == pr.calls && pw.calls_cut == pr.calls_cut && pw.markers == pr.markers &&
        pw.fallbacks == pr.fallbacks);
  sink_close(&ref);

  variant_ctx_t v = {name, text, len, &want, 0};
  for_each_cut(len, PAIR_LIMIT, variant_cb, &v);
  if (v.mismatches) fprintf(stderr, "case %s: %d cut variants differ\n", name, v.mismatches);
  CHECK(v.mismatches == 0);
  sink_close(&whole);
  relay_buf_dispose(&want);
}

#define CHECK_CASE(text, ...)                                   \
  do {                                                          \
    static const exp_t e_[] = {__VA_ARGS__, END_};              \
    check_text(text, text, sizeof(text) - 1, e_);               \
  } while (0)
#define CHECK_NONE(text) \
  do {                                                          \
    static const exp_t e_[] = {END_};                           \
    check_text(text, text, sizeof(text) - 1, e_);               \
  } while (0)
/* Text that must come out as CONTENT, byte for byte. */
#define CHECK_SAME(text) CHECK_CASE(text, C_(text))

/* ---- the DESIGN.md table for gpt-oss ------------------------------------ */

#define AN "<|channel|>analysis<|message|>"
#define SA "<|start|>assistant"
#define FIN "<|channel|>final<|message|>"
#define COM "<|channel|>commentary"
#define ARGS "{\"location\":\"Paris\"}"
#define TOOL COM " to=functions.get_weather <|constrain|>json<|message|>" ARGS "<|call|>"
#define A1 "The user asks for 2+2. Simple: 4."
#define A2 "Double-check: yes, 4."
#define F1 "2 + 2 = **4**."

static void test_design_table(void) {
  /* LM Studio (the seed's pair) */
  CHECK_CASE(AN A1 "<|end|>" SA FIN F1, R_(A1), C_(F1));
  /* llama-server drops <|end|> */
  CHECK_CASE(AN A1 SA FIN F1, R_(A1), C_(F1));
  /* <|start|>assistant before the first <|channel|> */
  CHECK_CASE(SA AN A1 "<|end|>" SA FIN F1, R_(A1), C_(F1));
  CHECK_CASE(SA AN A1 SA FIN F1, R_(A1), C_(F1));
  /* two analysis messages, then final: the reasoning is joined */
  CHECK_CASE(AN A1 "<|end|>" SA AN A2 "<|end|>" SA FIN F1, R_(A1 A2), C_(F1));
  CHECK_CASE(AN A1 SA AN A2 SA FIN F1, R_(A1 A2), C_(F1));
  CHECK_CASE(AN A1 AN A2 FIN F1, R_(A1 A2), C_(F1));
  /* analysis, then a tool call: now a call */
  CHECK_CASE(AN A1 "<|end|>" SA TOOL, R_(A1), BF("get_weather"), A_(ARGS), E1);
  CHECK_CASE(AN A1 SA TOOL, R_(A1), BF("get_weather"), A_(ARGS), E1);
  /* trailing <|return|> or <|end|> after the final text */
  CHECK_CASE(AN A1 "<|end|>" SA FIN F1 "<|return|>", R_(A1), C_(F1));
  CHECK_CASE(AN A1 "<|end|>" SA FIN F1 "<|end|>", R_(A1), C_(F1));
  CHECK_CASE(AN A1 SA FIN F1 "<|return|>", R_(A1), C_(F1));
  CHECK_CASE(AN A1 SA FIN F1 "<|return|><|end|><|return|>", R_(A1), C_(F1));
  /* final channel only */
  CHECK_CASE(FIN F1, C_(F1));
  CHECK_CASE(SA FIN F1 "<|return|>", C_(F1));
  /* analysis cut short by <|return|> */
  CHECK_CASE(AN A1 "<|return|>", R_(A1));
  /* no markers: unchanged byte for byte */
  CHECK_SAME("plain text < | > <| |> <|x|> caf\xc3\xa9 \xe2\x97\x81 \n\t\\u003c");
  CHECK_NONE("");
  /* empty bodies give nothing */
  CHECK_NONE(AN "<|end|>" SA FIN "<|return|>");
  CHECK_NONE("<|end|><|return|><|call|>");
}

/* ---- tool calls --------------------------------------------------------- */

static void test_calls(void) {
  /* recipient in the channel header, with <|start|>assistant and <|constrain|> */
  CHECK_CASE(SA TOOL, BF("get_weather"), A_(ARGS), E1);
  /* recipient in the role header */
  CHECK_CASE(SA " to=functions.get_weather" COM " json<|message|>" ARGS "<|call|>",
             BF("get_weather"), A_(ARGS), E1);
  CHECK_CASE(SA " to=functions.get_weather" COM " <|constrain|>json<|message|>" ARGS "<|call|>",
             BF("get_weather"), A_(ARGS), E1);
  /* without functions. */
  CHECK_CASE(SA COM " to=get_weather <|constrain|>json<|message|>" ARGS "<|call|>",
             BN("get_weather"), A_(ARGS), E1);
  /* without <|start|>assistant */
  CHECK_CASE(TOOL, BF("get_weather"), A_(ARGS), E1);
  /* without <|constrain|>, with a bare content type, with nothing */
  CHECK_CASE(COM " to=functions.f json<|message|>{}<|call|>", BF("f"), A_("{}"), E1);
  CHECK_CASE(COM " to=functions.f<|message|>{}<|call|>", BF("f"), A_("{}"), E1);
  /* <|constrain|> glued to the recipient */
  CHECK_CASE(COM " to=functions.f<|constrain|>json<|message|>{}<|call|>", BF("f"), A_("{}"), E1);
  /* the recipient without a channel */
  CHECK_CASE(SA " to=functions.f<|message|>{}<|call|>", BF("f"), A_("{}"), E1);
  /* analysis with a recipient, and built-in tools keep their whole name */
  CHECK_CASE(AN "look it up" SA "<|channel|>analysis to=browser.search code<|message|>"
             "{\"query\":\"gpt-oss\"}<|call|>",
             R_("look it up"), BN("browser.search"), A_("{\"query\":\"gpt-oss\"}"), E1);
  CHECK_CASE(SA "<|channel|>analysis to=python code<|message|>print(1+1)<|call|>",
             BN("python"), A_("print(1+1)"), E1);
  CHECK_CASE(SA " to=container.exec<|channel|>commentary json<|message|>{\"cmd\":[\"ls\"]}<|call|>",
             BN("container.exec"), A_("{\"cmd\":[\"ls\"]}"), E1);
  /* closed by <|end|> or <|return|> */
  CHECK_CASE(TOOL "x" "<|end|>" "after",
             BF("get_weather"), A_(ARGS), E1, C_("xafter"));
  CHECK_CASE(COM " to=functions.f<|message|>{}<|end|>", BF("f"), A_("{}"), E1);
  CHECK_CASE(COM " to=functions.f<|message|>{}<|return|>", BF("f"), A_("{}"), E1);
  /* not closed: the text ends, or a new message begins */
  CHECK_CASE(COM " to=functions.f<|message|>{\"a\":1}", BF("f"), A_("{\"a\":1}"), E0);
  CHECK_CASE(COM " to=functions.f<|message|>{\"a\":1}" SA FIN "done",
             BF("f"), A_("{\"a\":1}"), E0, C_("done"));
  CHECK_CASE(COM " to=functions.f<|message|>{\"a\":1}" FIN "done",
             BF("f"), A_("{\"a\":1}"), E0, C_("done"));
  /* several calls in a row, with and without end markers */
  CHECK_CASE(TOOL SA TOOL SA COM " to=functions.g<|message|>{}<|call|>",
             BF("get_weather"), A_(ARGS), E1, BF("get_weather"), A_(ARGS), E1, BF("g"), A_("{}"),
             E1);
  CHECK_CASE(COM " to=functions.f<|message|>1" COM " to=functions.g<|message|>2" COM
             " to=functions.h<|message|>3",
             BF("f"), A_("1"), E0, BF("g"), A_("2"), E0, BF("h"), A_("3"), E0);
  /* a preamble is content, then the call */
  CHECK_CASE(AN A1 "<|end|>" SA COM "<|message|>Let me check the weather.<|end|>" SA TOOL,
             R_(A1), C_("Let me check the weather."), BF("get_weather"), A_(ARGS), E1);
  CHECK_CASE(SA COM " <|constrain|>json<|message|>preamble" SA TOOL, C_("preamble"),
             BF("get_weather"), A_(ARGS), E1);
  /* arguments exactly as written: invalid JSON, stray markup, UTF-8, spaces */
  CHECK_CASE(COM " to=functions.f<|message|>{\"a\": 1,, <b>oops</b> <|x|> |> <|mess"
             "age|>}<|call|>",
             BF("f"), A_("{\"a\": 1,, <b>oops</b> <|x|> |> <|message|>}"), E1);
  CHECK_CASE(COM " to=functions.f<|message|> {\"city\": \"Z\xc3\xbcrich \xe2\x98\x80\"} \n<|call|>",
             BF("f"), A_(" {\"city\": \"Z\xc3\xbcrich \xe2\x98\x80\"} \n"), E1);
  CHECK_CASE(COM " to=functions.f<|message|>not json at all", BF("f"), A_("not json at all"), E0);
  /* an empty call still begins and ends */
  CHECK_CASE(COM " to=functions.f<|message|><|call|>", BF("f"), E1);
  CHECK_CASE(COM " to=functions.f<|message|>", BF("f"), E0);
  /* a call ended by a marker cut at the end of the text */
  CHECK_CASE(COM " to=functions.f<|message|>{}<|ca", BF("f"), A_("{}<|ca"), E0);
  /* text after a completed call is content */
  CHECK_CASE(TOOL "tail", BF("get_weather"), A_(ARGS), E1, C_("tail"));
  /* wire forms from /work/research/dialects/NOTES.md section 2.2 */
  /* V6/V7: analysis channel, content type "code", body starting with a newline
   * (vllm-mlx capture) */
  CHECK_CASE(SA "<|channel|>analysis to=functions.ffgrep code<|message|>\n{\"path\":\"\","
             "\"pattern\":\"TextualDisplayView\"}<|call|>",
             BF("ffgrep"), A_("\n{\"path\":\"\",\"pattern\":\"TextualDisplayView\"}"), E1);
  /* V10: browser.search with <|constrain|>json */
  CHECK_CASE("<|channel|>analysis to=browser.search <|constrain|>json<|message|>"
             "{\"query\":\"x\",\"topn\":10}<|call|>",
             BN("browser.search"), A_("{\"query\":\"x\",\"topn\":10}"), E1);
}

/* ---- a header at the start of the text, without a marker ---------------- */

/* The prompt ended in <|start|>assistant, so the model's output may go on
 * with the role header: " to=functions.f<|channel|>..." (V3 in NOTES.md,
 * llama.cpp's tests/test-chat.cpp). */
static void test_implicit_start(void) {
  CHECK_CASE(" to=functions.special_function<|channel|>commentary <|constrain|>json<|message|>"
             "{\"arg1\": 1}",
             BF("special_function"), A_("{\"arg1\": 1}"), E0);
  CHECK_CASE(" to=functions.special_function<|channel|>analysis <|constrain|>json<|message|>"
             "{\"arg1\": 1}<|call|>",
             BF("special_function"), A_("{\"arg1\": 1}"), E1);
  CHECK_CASE("to=functions.f<|channel|>commentary json<|message|>{}", BF("f"), A_("{}"), E0);
  CHECK_CASE("   to=python<|channel|>analysis code<|message|>print(1)", BN("python"),
             A_("print(1)"), E0);
  CHECK_CASE(" to=functions.f<|channel|>commentary json<|message|>{}" SA FIN "ok", BF("f"),
             A_("{}"), E0, C_("ok"));
  /* only there: later, " to=" is text */
  CHECK_SAME("x to=functions.f<|message|>{}");
  CHECK_CASE(FIN "a to=functions.f<|message|>{}", C_("a to=functions.f<|message|>{}"));
  /* text that only starts like it */
  CHECK_SAME("today is fine");
  CHECK_SAME(" t");
  CHECK_SAME(" to");
  CHECK_SAME("   ");
  CHECK_SAME(" \n");
  CHECK_SAME("t<|");
  CHECK_SAME("to<|channel|>final");
  CHECK_CASE(" <|channel|>final<|message|>F", C_(" F"));
  /* "to=" but no header after all: held, then passed through exactly */
  CHECK_SAME("to=do list: eggs, milk, bread, butter, jam, tea, rice, salt");
  CHECK_SAME("to=do\nlist");
  CHECK_SAME(" to=<|message|>x");
  CHECK_SAME(" to=functions.f<|channel|>nope<|message|>x");
  /* and V14: llama.cpp --reasoning-format none eats the final header */
  CHECK_CASE(AN "I'm\nthinking<|end|>Hello, world!\nWhat's up?", R_("I'm\nthinking"),
             C_("Hello, world!\nWhat's up?"));
}

/* ---- stray markup and malformed headers --------------------------------- */

static void test_plain_and_malformed(void) {
  CHECK_SAME("<");
  CHECK_SAME("<|");
  CHECK_SAME("|>");
  CHECK_SAME("a < b and c <| d |> e");
  CHECK_SAME("<<<|foo|>>> <|foo|> <|star <|start| <|end|x <|channel| |channel|>");
  CHECK_SAME("Hello <|chan world");
  CHECK_SAME("<|message|>x<|constrain|>json");
  CHECK_SAME("if (a<|b) return a<b||b>c;");
  CHECK_SAME("\xe2\x97\x81think\xe2\x96\xb7 caf\xc3\xa9 \xf0\x9f\x98\x80<\xf0\x9f\x98\x80|");
  /* a marker cut off at the very end is released as text of its kind */
  CHECK_SAME("x<|channel");
  CHECK_SAME("F<|");
  CHECK_CASE(AN "A<|en", R_("A<|en"));
  CHECK_CASE(FIN "F<|retur", C_("F<|retur"));
  /* a header that never reaches <|message|> is passed through */
  CHECK_SAME("x<|channel|>analysis<|mess");
  CHECK_CASE(AN "A<|end|>" SA "<|chan", R_("A"), C_(SA "<|chan"));
  CHECK_CASE(AN "A" SA "<|channel|>fin", R_("A"), C_(SA "<|channel|>fin"));
  /* unknown channel, unknown role, empty channel, missing names */
  CHECK_SAME("<|channel|>foo<|message|>x");
  CHECK_SAME(SA "<|channel|>Final<|message|>x");
  CHECK_SAME("<|start|>user<|message|>hi");
  CHECK_SAME("<|start|>functions.get_weather to=assistant" COM "<|message|>{\"sunny\":true}");
  CHECK_SAME("<|channel|><|message|>x");
  CHECK_SAME("<|channel|> <|message|>x");
  CHECK_SAME(SA "<|channel|><|constrain|>json<|message|>x");
  CHECK_SAME(COM " to=<|message|>{}");
  CHECK_SAME(COM " to=functions.<|message|>{}");
  CHECK_SAME(COM " to=functions.f to=functions.g<|message|>{}");
  CHECK_SAME(SA " assistant" FIN "x");
  CHECK_SAME(SA " hello" FIN "x");
  CHECK_SAME(COM " to=a<b<|message|>{}");
  CHECK_SAME(SA " \"quoted\" {json} \\ ~\x7e\xc3\xa9<|message|>{}");
  /* the same, after reasoning: the reasoning stays reasoning */
  CHECK_CASE(AN "A" SA "<|channel|>foo<|message|>x", R_("A"), C_(SA "<|channel|>foo<|message|>x"));
  /* an end marker inside a header */
  CHECK_SAME(SA "<|end|>x");
  CHECK_SAME("<|channel|>final<|call|>x");
  /* a control byte in a header */
  CHECK_SAME("<|channel|>final\n<|message|>F");
  CHECK_SAME("See <|start|>\nthat token.");
  CHECK_CASE("<|start|>\t" SA FIN "F", C_("<|start|>\t"), C_("F"));
  /* prose with a stray marker is released after a few words */
  CHECK_SAME("The <|start|> token opens a message in the harmony format, then a role.");
  /* a new <|start|> (or a second <|channel|>) restarts the header */
  CHECK_CASE("<|start|>garbage" SA FIN "F", C_("<|start|>garbage"), C_("F"));
  CHECK_CASE("<|channel|>analysis" FIN "F", C_("<|channel|>analysis"), C_("F"));
  CHECK_CASE("<|start|><|start|>" SA AN "A", C_("<|start|><|start|>"), R_("A"));
  /* a message without a channel is content; a role alone too */
  CHECK_CASE(SA "<|message|>Hi", C_("Hi"));
  CHECK_CASE("<|start|><|message|>Hi", C_("Hi"));
  /* markers of a message are text where they mean nothing */
  CHECK_CASE(AN "a<|message|>b<|constrain|>c", R_("a<|message|>b<|constrain|>c"));
  /* a body ends at a new <|start|>/<|channel|> even when what follows is
   * not a header after all */
  CHECK_CASE(AN "A<|start|>user says hi", R_("A"), C_("<|start|>user says hi"));
}

/* ---- header size limits ------------------------------------------------- */

/* A call header of exactly `size` bytes (opening marker included). */
static void call_header(relay_buf_t *b, size_t size) {
  static const char pre[] = COM " to=functions.";
  relay_buf_reset(b);
  relay_buf_append_str(b, pre);
  while (b->len < size) relay_buf_append(b, "n", 1);
}

static void test_header_cap(void) {
  relay_buf_t h, t, name, want;
  relay_buf_init(&want);
  relay_buf_init(&h);
  relay_buf_init(&t);
  relay_buf_init(&name);
  for (size_t size = RELAY_HARMONY_MAX_HEADER - 1; size <= RELAY_HARMONY_MAX_HEADER + 1; size++) {
    call_header(&h, size);
    relay_buf_reset(&t);
    relay_buf_append(&t, h.data, h.len);
    relay_buf_append_str(&t, "<|message|>{}<|call|>");
    exp_t e[5] = {END_};
    relay_buf_reset(&name);
    relay_buf_append(&name, h.data + strlen(COM " to="), h.len - strlen(COM " to="));
    relay_buf_append(&name, "", 1); /* NUL for strlen() in expect_canon */
    relay_buf_append(&t, "", 1);
    if (size <= RELAY_HARMONY_MAX_HEADER) {
      /* fits: a call named n...n */
      e[0] = (exp_t){'B', name.data + strlen("functions."), name.data};
      e[1] = (exp_t)A_("{}");
      e[2] = (exp_t)E1;
    } else {
      /* one byte over: passed through exactly, and what follows is outside
       * any message (where <|call|> means nothing and is dropped) */
      relay_buf_reset(&want);
      relay_buf_append(&want, t.data, t.len - 1 - strlen("<|call|>"));
      relay_buf_append(&want, "", 1);
      e[0] = (exp_t){'C', want.data, NULL};
    }
    char label[64];
    snprintf(label, sizeof label, "call header of %zu bytes", size);
    check_text(label, t.data, t.len - 1, e);
  }
  /* the cap, reached by a marker */
  relay_buf_reset(&t);
  relay_buf_append_str(&t, SA " ");
  while (t.len < RELAY_HARMONY_MAX_HEADER - 5) relay_buf_append(&t, "x", 1);
  relay_buf_append_str(&t, "<|channel|>final<|message|>F");
  relay_buf_append(&t, "", 1);
  {
    exp_t e[] = {{'C', t.data, NULL}, END_};
    check_text("cap reached by <|channel|>", t.data, t.len - 1, e);
  }
  /* the cap for a header at the start of the text: spaces, "to=f" */
  for (size_t size = RELAY_HARMONY_MAX_HEADER; size <= RELAY_HARMONY_MAX_HEADER + 1; size++) {
    relay_buf_reset(&t);
    while (t.len + 4 < size) relay_buf_append(&t, " ", 1);
    relay_buf_append_str(&t, "to=f<|message|>{}");
    relay_buf_append(&t, "", 1);
    exp_t fits[] = {BN("f"), A_("{}"), E0, END_};
    exp_t over[] = {{'C', t.data, NULL}, END_};
    check_text(size <= RELAY_HARMONY_MAX_HEADER ? "implicit header at the cap"
                                                : "implicit header over the cap",
               t.data, t.len - 1, size <= RELAY_HARMONY_MAX_HEADER ? fits : over);
  }
  relay_buf_reset(&t);
  while (t.len < RELAY_HARMONY_MAX_HEADER + 10) relay_buf_append(&t, " ", 1);
  relay_buf_append_str(&t, "to=f<|message|>{}");
  relay_buf_append(&t, "", 1);
  {
    exp_t e[] = {{'C', t.data, NULL}, END_};
    check_text("only spaces up to the cap", t.data, t.len - 1, e);
  }
  /* the word limit */
  relay_buf_reset(&t);
  relay_buf_append_str(&t, COM);
  for (int w = 1; w < RELAY_HARMONY_MAX_WORDS; w++) relay_buf_append_str(&t, " json");
  relay_buf_append_str(&t, "<|message|>F");
  relay_buf_append(&t, "", 1);
  {
    exp_t e[] = {C_("F"), END_};
    check_text("content types up to the word limit", t.data, t.len - 1, e);
  }
  relay_buf_reset(&t);
  relay_buf_append_str(&t, COM);
  for (int w = 0; w < RELAY_HARMONY_MAX_WORDS; w++) relay_buf_append_str(&t, " json");
  relay_buf_append_str(&t, "<|message|>F");
  relay_buf_append(&t, "", 1);
  {
    exp_t e[] = {{'C', t.data, NULL}, END_};
    check_text("one word over the limit", t.data, t.len - 1, e);
  }
  relay_buf_dispose(&h);
  relay_buf_dispose(&t);
  relay_buf_dispose(&name);
  relay_buf_dispose(&want);
}

/* ---- streaming: what is held, and when ---------------------------------- */

typedef struct {
  relay_buf_t reasoning, content, args;
  size_t begins, ends;
} live_t;

static void live_emit(void *ud, const relay_harmony_seg_t *g) {
  live_t *l = ud;
  if (g->kind == RELAY_HARMONY_REASONING) relay_buf_append(&l->reasoning, g->data, g->len);
  if (g->kind == RELAY_HARMONY_CONTENT) relay_buf_append(&l->content, g->data, g->len);
  if (g->kind == RELAY_HARMONY_CALL_ARGS) relay_buf_append(&l->args, g->data, g->len);
  if (g->kind == RELAY_HARMONY_CALL_BEGIN) l->begins++;
  if (g->kind == RELAY_HARMONY_CALL_END) l->ends++;
}

#define FEED(p, l, s) CHECK(relay_harmony_feed(&(p), (s), strlen(s), live_emit, &(l)) == 0)

static void test_streaming(void) {
  relay_harmony_t p;
  live_t l;
  memset(&l, 0, sizeof l);
  relay_harmony_init(&p);
  /* reasoning goes out as it comes; only a marker prefix is held */
  FEED(p, l, "<|channel|>analysis");
  CHECK(relay_harmony_pending(&p) == strlen("<|channel|>analysis"));
  FEED(p, l, "<|message|>abc");
  CHECK_STR(l.reasoning.data, l.reasoning.len, "abc");
  CHECK(relay_harmony_pending(&p) == 0);
  FEED(p, l, "de<|");
  CHECK_STR(l.reasoning.data, l.reasoning.len, "abcde");
  CHECK(relay_harmony_pending(&p) == 2);
  /* "<|m" cannot start a marker that ends a body: released at once */
  FEED(p, l, "m");
  CHECK_STR(l.reasoning.data, l.reasoning.len, "abcde<|m");
  CHECK(relay_harmony_pending(&p) == 0);
  FEED(p, l, "<|en");
  CHECK(relay_harmony_pending(&p) == 4);
  FEED(p, l, "d|>");
  CHECK(relay_harmony_pending(&p) == 0);
  CHECK_STR(l.reasoning.data, l.reasoning.len, "abcde<|m");
  /* a call: the name as soon as <|message|> arrives, arguments as they come */
  FEED(p, l, "<|start|>assistant<|channel|>commentary to=functions.f <|constrain|>json<|message|>");
  CHECK(l.begins == 1 && relay_harmony_in_call(&p));
  FEED(p, l, "{\"a\":");
  CHECK_STR(l.args.data, l.args.len, "{\"a\":");
  FEED(p, l, "\"<b>\"");
  CHECK_STR(l.args.data, l.args.len, "{\"a\":\"<b>\"");
  FEED(p, l, "}<|ca");
  CHECK_STR(l.args.data, l.args.len, "{\"a\":\"<b>\"}");
  CHECK(relay_harmony_pending(&p) == 4);
  FEED(p, l, "ll|>");
  CHECK(l.ends == 1 && !relay_harmony_in_call(&p));
  CHECK(p.calls == 1 && p.calls_cut == 0 && p.fallbacks == 0);
  CHECK(relay_harmony_seen(&p));
  CHECK(l.content.len == 0);
  /* finish twice, then a new text */
  CHECK(relay_harmony_finish(&p, live_emit, &l) == 0);
  CHECK(relay_harmony_finish(&p, live_emit, &l) == 0);
  FEED(p, l, "plain");
  CHECK_STR(l.content.data, l.content.len, "plain");
  /* the start of a text holds spaces and "to=" only */
  CHECK(relay_harmony_finish(&p, live_emit, &l) == 0);
  FEED(p, l, "  t");
  CHECK(relay_harmony_pending(&p) == 3);
  FEED(p, l, "o=functions.g<|channel|>commentary json<|message|>{");
  CHECK(l.begins == 2 && relay_harmony_in_call(&p));
  CHECK(relay_harmony_finish(&p, live_emit, &l) == 0);
  CHECK(l.ends == 2 && p.calls_cut == 1);
  FEED(p, l, " x");
  CHECK_STR(l.content.data, l.content.len, "plain x");
  relay_buf_dispose(&l.reasoning);
  relay_buf_dispose(&l.content);
  relay_buf_dispose(&l.args);

  /* plain text: nothing seen, nothing held but a '<' tail */
  memset(&l, 0, sizeof l);
  relay_harmony_init(&p);
  FEED(p, l, "no markers at all <");
  CHECK(!relay_harmony_seen(&p) && p.markers == 0);
  CHECK(relay_harmony_pending(&p) == 1);
  CHECK_STR(l.content.data, l.content.len, "no markers at all ");
  CHECK(relay_harmony_finish(&p, live_emit, &l) == 0);
  CHECK_STR(l.content.data, l.content.len, "no markers at all <");
  relay_buf_dispose(&l.content);

  /* counters: a cut call and a fallback */
  memset(&l, 0, sizeof l);
  relay_harmony_init(&p);
  FEED(p, l, "<|channel|>foo<|message|>x" COM " to=functions.f<|message|>{}");
  CHECK(relay_harmony_finish(&p, live_emit, &l) == 0);
  CHECK(p.calls == 1 && p.calls_cut == 1 && p.fallbacks == 1 && p.markers == 4);
  relay_buf_dispose(&l.content);
  relay_buf_dispose(&l.args);

  /* bad arguments */
  relay_harmony_init(&p);
  CHECK(relay_harmony_feed(&p, NULL, 1, live_emit, &l) == RELAY_EINVAL);
  CHECK(relay_harmony_feed(&p, "x", 1, NULL, &l) == RELAY_EINVAL);
  CHECK(relay_harmony_feed(NULL, "x", 1, live_emit, &l) == RELAY_EINVAL);
  CHECK(relay_harmony_feed(&p, NULL, 0, live_emit, &l) == 0);
  CHECK(relay_harmony_finish(&p, NULL, &l) == RELAY_EINVAL);
}

/* ---- UTF-8 -------------------------------------------------------------- */

typedef struct {
  relay_buf_t all;
} utf_t;

static void utf_emit(void *ud, const relay_harmony_seg_t *g) {
  utf_t *u = ud;
  if (g->kind == RELAY_HARMONY_CONTENT || g->kind == RELAY_HARMONY_REASONING ||
      g->kind == RELAY_HARMONY_CALL_ARGS)
    relay_buf_append(&u->all, g->data, g->len);
}

/* Whether s[0..n) ends on a UTF-8 character boundary. */
static int utf8_whole(const char *s, size_t n) {
  size_t k = n, cont = 0;
  while (k > 0 && ((unsigned char)s[k - 1] & 0xc0) == 0x80) {
    k--;
    cont++;
  }
  if (k == 0) return cont == 0;
  unsigned char lead = (unsigned char)s[k - 1];
  size_t need = lead < 0x80 ? 0 : lead >= 0xf0 ? 3 : lead >= 0xe0 ? 2 : 1;
  return cont == need;
}

/* Cut only between characters, the parser must never release half of one
 * (what it holds starts with '<'); cut inside characters, the output still
 * joins up (covered by every check_text run). */
static void test_utf8(void) {
  static const char t[] = AN "\xc3\xa9t\xc3\xa9 <\xe2\x82\xac> \xf0\x9f\x98\x80<|end|>" SA FIN
      "\xe2\x98\x80<|\xc3\xa9|> \xf0\x9f\x8c\x8d";
  CHECK_CASE(AN "\xc3\xa9t\xc3\xa9 <\xe2\x82\xac> \xf0\x9f\x98\x80<|end|>" SA FIN
             "\xe2\x98\x80<|\xc3\xa9|> \xf0\x9f\x8c\x8d",
             R_("\xc3\xa9t\xc3\xa9 <\xe2\x82\xac> \xf0\x9f\x98\x80"),
             C_("\xe2\x98\x80<|\xc3\xa9|> \xf0\x9f\x8c\x8d"));
  size_t len = sizeof t - 1;
  int broken = 0;
  for (size_t a = 0; a <= len; a++) {
    if (!utf8_whole(t, a)) continue;
    for (size_t b = a; b <= len; b++) {
      if (!utf8_whole(t, b)) continue;
      relay_harmony_t p;
      utf_t u;
      relay_buf_init(&u.all);
      relay_buf_reserve(&u.all, 1);
      relay_harmony_init(&p);
      relay_harmony_feed(&p, t, a, utf_emit, &u);
      if (!utf8_whole(u.all.data, u.all.len)) broken++;
      relay_harmony_feed(&p, t + a, b - a, utf_emit, &u);
      if (!utf8_whole(u.all.data, u.all.len)) broken++;
      relay_harmony_feed(&p, t + b, len - b, utf_emit, &u);
      relay_harmony_finish(&p, utf_emit, &u);
      if (!utf8_whole(u.all.data, u.all.len)) broken++;
      relay_buf_dispose(&u.all);
    }
  }
  CHECK(broken == 0);
}

/* ---- bounded work on hostile text --------------------------------------- */

typedef struct {
  size_t content;
  size_t other;
} count_t;

static void count_emit(void *ud, const relay_harmony_seg_t *g) {
  count_t *c = ud;
  if (g->kind == RELAY_HARMONY_CONTENT) c->content += g->len;
  else c->other += g->len;
}

/* Megabytes of near-markers and headers that are never finished, whole and
 * in small pieces: everything comes back as content, nothing is held past
 * the bound. (A robustness guard, not a timing test.) */
static void test_hostile(void) {
  static const char *const units[] = {
      "<|", "<|star", "<|start|", "<|start|>", "<|start|>assistant ", "<|channel|>x ",
      "<|start|>assistant<|channel|>commentary to=functions.", "<<<<",
  };
  for (size_t u = 0; u < NELEM(units); u++) {
    relay_buf_t t;
    relay_buf_init(&t);
    while (t.len < (1u << 20)) relay_buf_append_str(&t, units[u]);
    for (int pieces = 0; pieces < 2; pieces++) {
      relay_harmony_t p;
      count_t c = {0, 0};
      int over = 0;
      relay_harmony_init(&p);
      size_t step = pieces ? 7 : t.len;
      for (size_t i = 0; i < t.len; i += step) {
        size_t n = t.len - i < step ? t.len - i : step;
        relay_harmony_feed(&p, t.data + i, n, count_emit, &c);
        if (relay_harmony_pending(&p) > RELAY_HARMONY_MAX_HELD) over++;
      }
      relay_harmony_finish(&p, count_emit, &c);
      CHECK(over == 0);
      CHECK(c.content == t.len && c.other == 0);
    }
    relay_buf_dispose(&t);
  }
}

/* ---- call ids ----------------------------------------------------------- */

static int cmp_id(const void *a, const void *b) { return memcmp(a, b, RELAY_HARMONY_CALL_ID_LEN); }

static void test_call_ids(void) {
  enum { N = 20000 };
  char(*ids)[RELAY_HARMONY_CALL_ID_LEN + 1] = malloc(N * sizeof *ids);
  int badchars = 0;
  for (unsigned n = 0; n < N; n++) {
    relay_harmony_call_id(ids[n], 0x1234, n);
    if (strlen(ids[n]) != RELAY_HARMONY_CALL_ID_LEN || memcmp(ids[n], "call_", 5) != 0) badchars++;
    for (size_t k = 5; k < RELAY_HARMONY_CALL_ID_LEN; k++) {
      char ch = ids[n][k];
      if (!((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')))
        badchars++;
    }
  }
  CHECK(badchars == 0);
  char again[RELAY_HARMONY_CALL_ID_LEN + 1], other[RELAY_HARMONY_CALL_ID_LEN + 1];
  relay_harmony_call_id(again, 0x1234, 7);
  CHECK(strcmp(again, ids[7]) == 0); /* deterministic */
  relay_harmony_call_id(other, 0x1235, 7);
  CHECK(strcmp(other, ids[7]) != 0); /* depends on the seed */
  relay_harmony_call_id(other, 0, 0);
  CHECK(strlen(other) == RELAY_HARMONY_CALL_ID_LEN);
  qsort(ids, N, sizeof *ids, cmp_id);
  int dups = 0;
  for (unsigned n = 1; n < N; n++) dups += memcmp(ids[n - 1], ids[n], RELAY_HARMONY_CALL_ID_LEN) == 0;
  CHECK(dups == 0);
  free(ids);
}

/* CALL_BEGIN carries the header as written, so a consumer that keeps calls
 * as text can give them back: whole and one byte at a time. */
typedef struct {
  relay_buf_t headers; /* each header, then '|' */
} hdr_sink_t;

static void hdr_emit(void *ud, const relay_harmony_seg_t *g) {
  hdr_sink_t *h = ud;
  if (g->kind != RELAY_HARMONY_CALL_BEGIN) {
    if (g->header || g->header_len) relay_buf_append_str(&h->headers, "!");
    return;
  }
  relay_buf_append(&h->headers, g->header, g->header_len);
  relay_buf_append_str(&h->headers, "|");
}

static void check_headers(const char *text, const char *want) {
  for (int bytewise = 0; bytewise < 2; bytewise++) {
    hdr_sink_t h;
    relay_buf_init(&h.headers);
    relay_harmony_t p;
    relay_harmony_init(&p);
    size_t n = strlen(text);
    if (bytewise)
      for (size_t i = 0; i < n; i++) CHECK(relay_harmony_feed(&p, text + i, 1, hdr_emit, &h) == 0);
    else
      CHECK(relay_harmony_feed(&p, text, n, hdr_emit, &h) == 0);
    CHECK(relay_harmony_finish(&p, hdr_emit, &h) == 0);
    CHECK_STR(h.headers.data ? h.headers.data : "", h.headers.len, want);
    relay_buf_dispose(&h.headers);
  }
}

static void test_call_header(void) {
  check_headers("<|channel|>analysis<|message|>A<|end|><|start|>assistant<|channel|>commentary to=functions.f "
                "<|constrain|>json<|message|>{}<|call|>",
                "<|start|>assistant<|channel|>commentary to=functions.f <|constrain|>json|");
  check_headers(" to=functions.f<|channel|>commentary json<|message|>{}", " to=functions.f<|channel|>commentary json|");
  check_headers("<|channel|>commentary to=a<|message|>1<|call|><|channel|>analysis to=python code<|message|>x",
                "<|channel|>commentary to=a|<|channel|>analysis to=python code|");
  check_headers("<|channel|>final<|message|>no call", "");
}

int main(void) {
  test_design_table();
  test_calls();
  test_implicit_start();
  test_plain_and_malformed();
  test_header_cap();
  test_streaming();
  test_utf8();
  test_hostile();
  test_call_ids();
  test_call_header();
  return check_report("test_harmony");
}
