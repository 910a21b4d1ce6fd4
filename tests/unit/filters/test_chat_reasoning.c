/* The chat filter with the harmony parser and upstream reasoning members,
 * driven through a filter chain whose sink is a buffer (no sockets, no
 * loop). Every case is a scripted answer in one of the servers' shapes
 * (harmony in content, reasoning_content, reasoning, Ollama's "content":""
 * beside it, vLLM's mirrored pair, mlx_lm's spaced chunks with
 * "reasoning": "" and "tool_calls": [], a call the upstream parsed); each is
 * sent with its texts whole, cut at every byte into two events, and one byte
 * per event, n = 1 and n = 2 interleaved, in every output mode (field mode
 * with each field setting), and as a JSON body. What the client reads back
 * (content, reasoning fields, tool calls, finish_reason) must be the same for
 * every cut; events out = events in; tool call ids unique; no reasoning
 * member left where the mode says none. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "chat_collect.h"
#include "check.h"
#include "log.h"
#include "relay/harmony.h"
#include "relay/json_splice.h"

static relay_buf_t out;

static int sink(void *ud, const char *data, size_t len) { return relay_buf_append(&out, data, len); }

/* ---- the scripted upstream --------------------------------------------- */

enum { SHAPE_PLAIN, SHAPE_OLLAMA, SHAPE_MIRROR, SHAPE_MLX };

#define AN "<|channel|>analysis<|message|>"
#define SA "<|start|>assistant"
#define FIN "<|channel|>final<|message|>"
#define COM "<|channel|>commentary"
#define END "<|end|>"
#define A "We need \"Paris\" & <b> caf\xc3\xa9 \\ ok."
#define F "It is 18 \xc2\xb0" "C.\n"
#define ARGS "{\"location\":\"Paris\",\"u\":\"\xc2\xb0" "C\"}"
#define CALL SA COM " to=functions.get_weather <|constrain|>json<|message|>" ARGS
#define UPCALL "[{\"index\":0,\"id\":\"Qb3kV9\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{}\"}}]"

typedef struct {
  const char *name;
  int shape;
  const char *rfield;    /* the upstream's reasoning member, or NULL */
  const char *reasoning; /* its text, sent before the content */
  const char *content;
  const char *upcall;    /* a tool_calls array the upstream parsed, sent after the content */
  const char *finish;    /* NULL: the stream ends without one */
  /* what the client must read */
  const char *tags;                    /* content in tags mode */
  const char *field_content, *strip;   /* content in field and strip mode */
  const char *field_reasoning;         /* the reasoning field in field mode */
  const char *calls;                   /* "name(args)|..." */
  const char *finish_out;              /* "" when none */
} case_t;

static const case_t cases[] = {
    {"lmstudio", SHAPE_PLAIN, NULL, "", AN A END SA FIN F, NULL, "stop", "<think>" A "</think>" F, F, F, A, "",
     "stop"},
    {"llama none (final header eaten)", SHAPE_PLAIN, NULL, "", AN A END F, NULL, "stop", "<think>" A "</think>" F, F,
     F, A, "", "stop"},
    {"analysis then call with <|call|>", SHAPE_PLAIN, NULL, "", AN A END CALL "<|call|>", NULL, "stop",
     "<think>" A "</think>", "", "", A, "get_weather(" ARGS ")", "tool_calls"},
    {"analysis then call, no <|call|>", SHAPE_PLAIN, NULL, "", AN A END CALL, NULL, "stop", "<think>" A "</think>",
     "", "", A, "get_weather(" ARGS ")", "tool_calls"},
    {"call cut by length", SHAPE_PLAIN, NULL, "", AN A CALL, NULL, "length", "<think>" A "</think>", "", "", A,
     "get_weather(" ARGS ")", "length"},
    {"recipient in the role header", SHAPE_PLAIN, NULL, "", SA " to=functions.get_weather" COM " json<|message|>" ARGS,
     NULL, "stop", "", "", "", "", "get_weather(" ARGS ")", "tool_calls"},
    {"header begins the text", SHAPE_PLAIN, NULL, "", " to=functions.get_weather" COM " json<|message|>" ARGS, NULL,
     "stop", "", "", "", "", "get_weather(" ARGS ")", "tool_calls"},
    {"preamble then call", SHAPE_PLAIN, NULL, "",
     AN A END SA COM "<|message|>Let me check." END SA COM " to=get_weather<|constrain|>json<|message|>" ARGS, NULL,
     "stop", "<think>" A "</think>Let me check.", "Let me check.", "Let me check.", A, "get_weather(" ARGS ")",
     "tool_calls"},
    {"two calls", SHAPE_PLAIN, NULL, "",
     AN A END CALL "<|call|>" SA COM " to=functions.get_time <|constrain|>json<|message|>{\"tz\":\"CET\"}", NULL,
     "stop", "<think>" A "</think>", "", "", A, "get_weather(" ARGS ")|get_time({\"tz\":\"CET\"})", "tool_calls"},
    {"built-in tool, not JSON", SHAPE_PLAIN, NULL, "", AN A END SA "<|channel|>analysis to=python code<|message|>x = \"<b>\"",
     NULL, "stop", "<think>" A "</think>", "", "", A, "python(x = \"<b>\")", "tool_calls"},
    {"invalid JSON arguments", SHAPE_PLAIN, NULL, "", SA COM " to=functions.f<|message|>{oops \"", NULL, "stop", "", "",
     "", "", "f({oops \")", "tool_calls"},
    {"analysis never closed", SHAPE_PLAIN, NULL, "", AN A, NULL, "stop", "<think>" A "</think>", "", "", A, "",
     "stop"},
    {"no finish_reason", SHAPE_PLAIN, NULL, "", AN A END SA FIN "F <|", NULL, NULL, "<think>" A "</think>F <|",
     "F <|", "F <|", A, "", ""},
    {"no markers", SHAPE_PLAIN, NULL, "", "Hello <|not one|> 2 < 3 \xe2\x80\x94 ok", NULL, "stop",
     "Hello <|not one|> 2 < 3 \xe2\x80\x94 ok", "Hello <|not one|> 2 < 3 \xe2\x80\x94 ok",
     "Hello <|not one|> 2 < 3 \xe2\x80\x94 ok", "", "", "stop"},
    {"llama.cpp reasoning_content", SHAPE_PLAIN, "reasoning_content", A, F, NULL, "stop", "<think>" A "</think>" F, F,
     F, A, "", "stop"},
    {"vLLM reasoning", SHAPE_PLAIN, "reasoning", A, F, NULL, "stop", "<think>" A "</think>" F, F, F, A, "", "stop"},
    {"Ollama reasoning beside content \"\"", SHAPE_OLLAMA, "reasoning", A, F, NULL, "stop", "<think>" A "</think>" F,
     F, F, A, "", "stop"},
    {"vLLM mirror: both members", SHAPE_MIRROR, "reasoning", A, F, NULL, "stop", "<think>" A "</think>" F, F, F, A, "",
     "stop"},
    {"reasoning field, then a parsed call", SHAPE_PLAIN, "reasoning_content", A, "", UPCALL, "tool_calls",
     "<think>" A "</think>", "", "", A, "get_weather({})", "tool_calls"},
    {"reasoning field never closed", SHAPE_PLAIN, "reasoning_content", A, "", NULL, "stop", "<think>" A "</think>", "",
     "", A, "", "stop"},
    {"mlx: harmony with a call", SHAPE_MLX, NULL, "", AN A END CALL, NULL, "stop", "<think>" A "</think>", "", "", A,
     "get_weather(" ARGS ")", "tool_calls"},
    {"mlx: harmony answer", SHAPE_MLX, NULL, "", AN A END SA FIN F, NULL, "stop", "<think>" A "</think>" F, F, F, A,
     "", "stop"},
};
#define NCASES (sizeof cases / sizeof cases[0])

static void put_escaped(relay_buf_t *b, const char *s, size_t n) {
  relay_buf_append(b, "\"", 1);
  relay_json_escape(b, s, n);
  relay_buf_append(b, "\"", 1);
}

/* One event of choice i with this delta (and finish_reason). */
static void add_event(relay_buf_t *in, int shape, int i, const char *delta, const char *finish) {
  if (shape == SHAPE_MLX)
    relay_buf_printf(in, "data: {\"id\": \"c1\", \"object\": \"chat.completion.chunk\", \"choices\": [{\"index\": %d, "
                         "\"finish_reason\": %s%s%s, \"delta\": %s}]}\n\n",
                     i, finish ? "\"" : "", finish ? finish : "null", finish ? "\"" : "", delta);
  else
    relay_buf_printf(in, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
                         "\"choices\":[{\"index\":%d,\"delta\":%s,\"logprobs\":null,\"finish_reason\":%s%s%s}]}\n\n",
                     i, delta, finish ? "\"" : "", finish ? finish : "null", finish ? "\"" : "");
}

/* The delta for a piece of reasoning (is_reasoning) or content. */
static void piece_delta(relay_buf_t *d, const case_t *c, int is_reasoning, const char *s, size_t n) {
  relay_buf_reset(d);
  switch (c->shape) {
    case SHAPE_OLLAMA:
      relay_buf_append_str(d, "{\"role\":\"assistant\",\"content\":");
      if (is_reasoning) {
        relay_buf_printf(d, "\"\",\"%s\":", c->rfield);
        put_escaped(d, s, n);
      } else {
        put_escaped(d, s, n);
      }
      relay_buf_append_str(d, "}");
      break;
    case SHAPE_MIRROR:
      relay_buf_append_str(d, "{");
      if (is_reasoning) {
        relay_buf_append_str(d, "\"reasoning\":");
        put_escaped(d, s, n);
        relay_buf_append_str(d, ",\"reasoning_content\":");
        put_escaped(d, s, n);
      } else {
        relay_buf_append_str(d, "\"content\":");
        put_escaped(d, s, n);
        relay_buf_append_str(d, ",\"reasoning_content\":null");
      }
      relay_buf_append_str(d, "}");
      break;
    case SHAPE_MLX:
      relay_buf_append_str(d, "{\"role\": \"assistant\", \"content\": ");
      put_escaped(d, s, n);
      relay_buf_append_str(d, ", \"reasoning\": \"\", \"tool_calls\": []}");
      break;
    default:
      relay_buf_printf(d, "{\"%s\":", is_reasoning ? c->rfield : "content");
      put_escaped(d, s, n);
      relay_buf_append_str(d, "}");
  }
}

static const char *finish_delta(int shape) {
  switch (shape) {
    case SHAPE_OLLAMA: return "{\"role\":\"assistant\",\"content\":\"\"}";
    case SHAPE_MLX: return "{\"role\": \"assistant\", \"content\": \"\", \"reasoning\": \"\", \"tool_calls\": []}";
    default: return "{}";
  }
}

/* Pieces of one text: whole (cut 0), one byte each (cut (size_t)-1), or cut
 * in two at `cut`. Calls back with each piece. */
typedef void (*piece_fn)(void *ud, const char *s, size_t n);
static void split(const char *s, size_t n, size_t cut, piece_fn fn, void *ud) {
  if (n == 0) return;
  if (cut == (size_t)-1) {
    for (size_t i = 0; i < n; i++) fn(ud, s + i, 1);
  } else if (cut == 0 || cut >= n) {
    fn(ud, s, n);
  } else {
    fn(ud, s, cut);
    fn(ud, s + cut, n - cut);
  }
}

typedef struct {
  const case_t *c;
  int is_reasoning;
  relay_buf_t *pieces[2]; /* the delta of each event, one list per choice order */
  relay_buf_t delta;
  relay_buf_t *list;
} gen_t;

/* The event list of one choice: a delta per line in list (NUL-separated). */
static void gen_piece(void *ud, const char *s, size_t n) {
  gen_t *g = ud;
  piece_delta(&g->delta, g->c, g->is_reasoning, s, n);
  relay_buf_append(g->list, g->delta.data, g->delta.len);
  relay_buf_append(g->list, "", 1);
}

/* The whole upstream stream for a case, cut at position cut of the
 * reasoning + content text, n choices interleaved. Returns the number of
 * events. */
static size_t make_stream(const case_t *c, size_t cut, int nch, relay_buf_t *in) {
  relay_buf_t list;
  relay_buf_init(&list);
  gen_t g;
  memset(&g, 0, sizeof g);
  g.c = c;
  g.list = &list;
  relay_buf_init(&g.delta);
  size_t rl = strlen(c->reasoning);
  g.is_reasoning = 1;
  split(c->reasoning, rl, cut == (size_t)-1 ? cut : (cut < rl ? cut : 0), gen_piece, &g);
  g.is_reasoning = 0;
  split(c->content, strlen(c->content), cut == (size_t)-1 ? cut : (cut > rl ? cut - rl : 0), gen_piece, &g);
  if (c->upcall) {
    relay_buf_printf(&list, "{\"tool_calls\":%s}", c->upcall);
    relay_buf_append(&list, "", 1);
  }
  size_t events = 0;
  relay_buf_reset(in);
  for (const char *p = list.data; p && p < list.data + list.len; p += strlen(p) + 1)
    for (int i = 0; i < nch; i++, events++) add_event(in, c->shape, i, p, NULL);
  if (c->finish)
    for (int i = nch - 1; i >= 0; i--, events++) add_event(in, c->shape, i, finish_delta(c->shape), c->finish);
  relay_buf_append_str(in, "data: [DONE]\n\n");
  relay_buf_dispose(&list);
  relay_buf_dispose(&g.delta);
  return events + 1;
}

/* ---- checks ------------------------------------------------------------ */

typedef struct {
  relay_mode_t mode;
  const char *field; /* field mode: "reasoning_content", "reasoning" or "both" */
} modecfg_t;

static const modecfg_t modes[] = {{RELAY_MODE_TAGS, NULL},
                                  {RELAY_MODE_FIELD, "reasoning_content"},
                                  {RELAY_MODE_FIELD, "reasoning"},
                                  {RELAY_MODE_FIELD, "both"},
                                  {RELAY_MODE_STRIP, NULL}};

static relay_chat_opts_t *make_opts(const modecfg_t *m) {
  relay_chat_opts_t *o = relay_chat_opts_new();
  o->parser = RELAY_CHAT_HARMONY;
  o->mode = m->mode;
  strcpy(o->in_field[0], "reasoning_content");
  strcpy(o->in_field[1], "reasoning");
  if (m->field && strcmp(m->field, "both") == 0) {
    strcpy(o->field[0], "reasoning_content");
    strcpy(o->field[1], "reasoning");
  } else if (m->field) {
    strcpy(o->field[0], m->field);
  }
  return o;
}

static int chat_chain(relay_chain_t *c, relay_chat_opts_t *o, const char *ctype) {
  relay_buf_reset(&out);
  relay_chain_init(c, 1 << 20, 1 << 20, sink, NULL, "test");
  relay_head_t h;
  relay_head_init(&h, 4096);
  relay_head_add(&h, "Content-Type", ctype, strlen(ctype));
  relay_response_t r;
  relay_response_classify(&r, 200, &h);
  relay_filter_t *f = relay_chat_filter_type.create(o, NULL);
  int rc = f->ops->on_head(f, &r);
  relay_head_dispose(&h);
  CHECK(rc == 0);
  CHECK(relay_chain_add(c, f) == 0);
  return 0;
}

/* What the client must read for this case in this mode. */
static void check_got(const case_t *c, const modecfg_t *m, got_t *g, const char *what) {
  const char *want = m->mode == RELAY_MODE_TAGS ? c->tags : m->mode == RELAY_MODE_FIELD ? c->field_content : c->strip;
  if (g->content.len != strlen(want) || memcmp(g->content.data ? g->content.data : "", want, g->content.len)) {
    fprintf(stderr, "case '%s' (%s, mode %d %s):\n", c->name, what, m->mode, m->field ? m->field : "");
    CHECK_STR(g->content.data ? g->content.data : "", g->content.len, want);
  } else {
    CHECK(1);
  }
  int rc_want = m->mode == RELAY_MODE_FIELD && strcmp(m->field, "reasoning") != 0;
  int r_want = m->mode == RELAY_MODE_FIELD && strcmp(m->field, "reasoning_content") != 0;
  const char *fr = c->field_reasoning;
  if (rc_want) CHECK_STR(g->rc.data ? g->rc.data : "", g->rc.len, fr);
  else CHECK(g->rc.len == 0); /* never left, never doubled under the other name */
  if (r_want) CHECK_STR(g->r.data ? g->r.data : "", g->r.len, fr);
  else CHECK(g->r.len == 0);
  relay_buf_t calls;
  relay_buf_init(&calls);
  for (int k = 0; k < g->ncalls && k < MAX_CALLS; k++) {
    if (k) relay_buf_append_str(&calls, "|");
    relay_buf_append(&calls, g->name[k].data, g->name[k].len);
    relay_buf_append_str(&calls, "(");
    relay_buf_append(&calls, g->args[k].data, g->args[k].len);
    relay_buf_append_str(&calls, ")");
    for (int j = 0; j < k; j++)
      CHECK(g->id[j].len != g->id[k].len || memcmp(g->id[j].data, g->id[k].data, g->id[k].len) != 0);
    CHECK(g->id[k].len > 0);
  }
  if (calls.len != strlen(c->calls) || memcmp(calls.data ? calls.data : "", c->calls, calls.len)) {
    fprintf(stderr, "case '%s' (%s, mode %d): calls\n", c->name, what, m->mode);
    CHECK_STR(calls.data ? calls.data : "", calls.len, c->calls);
  } else {
    CHECK(1);
  }
  relay_buf_dispose(&calls);
  CHECK(g->bad == 0 && g->invalid == 0);
  CHECK_STR(g->finish.data ? g->finish.data : "", g->finish.len, c->finish_out);
  if (c->upcall && g->ncalls) CHECK_STR(g->id[0].data, g->id[0].len, "Qb3kV9"); /* the upstream's id kept */
}

/* A stream: every cut of the texts, n = 1 and 2, every mode. */
static void test_streams(void) {
  relay_buf_t in;
  relay_buf_init(&in);
  for (size_t ci = 0; ci < NCASES; ci++) {
    const case_t *c = &cases[ci];
    size_t total = strlen(c->reasoning) + strlen(c->content);
    for (size_t mi = 0; mi < sizeof modes / sizeof modes[0]; mi++) {
      relay_chat_opts_t *o = make_opts(&modes[mi]);
      for (int nch = 1; nch <= 2; nch++) {
        for (size_t cut = 0; cut <= total + 1; cut++) {
          size_t real = cut == total + 1 ? (size_t)-1 : cut;
          /* every cut in tags mode and the first field mode; a sample in the others and for n = 2 */
          int sample = real != 0 && real != (size_t)-1;
          if (sample && (nch == 2 || mi > 1) && cut % 7 != 3) continue;
          size_t events = make_stream(c, real, nch, &in);
          relay_chain_t ch;
          chat_chain(&ch, o, "text/event-stream");
          CHECK(relay_chain_feed(&ch, in.data, in.len) == 0);
          CHECK(relay_chain_end(&ch, 1) == 0);
          got_t got[2];
          for (int i = 0; i < nch; i++) got_init(&got[i]);
          size_t n_out = read_stream(out.data, out.len, got, nch);
          /* one event out per event in; a stream without a finish gets one more per choice */
          if (c->finish) CHECK(n_out == events);
          else CHECK(n_out >= events && n_out <= events + (size_t)nch);
          char what[64];
          snprintf(what, sizeof what, "stream n=%d cut %zu", nch, cut);
          for (int i = 0; i < nch; i++) {
            check_got(c, &modes[mi], &got[i], what);
            got_dispose(&got[i]);
          }
          relay_filter_stats_t st;
          relay_chain_stats(&ch, &st);
          /* calls the relay made, and calls the upstream made, alike */
          CHECK(st.tool_calls == (uint64_t)nch * (strlen(c->calls) ? (strchr(c->calls, '|') ? 2 : 1) : 0));
          CHECK(st.reasoning_blocks == (uint64_t)nch * (*c->field_reasoning ? 1 : 0)); /* one block per choice */
          /* text without markers, in whole events: every byte as it came (cut inside a "<|",
           * an event holds it back and a later one releases it) */
          int plain = strcmp(c->name, "no markers") == 0;
          if (plain && real == 0) CHECK(st.events_rewritten == 0);
          else if (!plain && !c->rfield) CHECK(st.events_rewritten > 0);
          relay_chain_dispose(&ch);
        }
      }
      relay_chat_opts_unref(o);
    }
  }
  relay_buf_dispose(&in);
}

/* The same stream fed to the chain cut at every byte (two reads): the same
 * output, ids apart. */
static void test_chain_cuts(void) {
  relay_buf_t in, first;
  relay_buf_init(&in);
  relay_buf_init(&first);
  static const size_t pick[] = {3, 16, 20};
  for (size_t pi = 0; pi < sizeof pick / sizeof pick[0]; pi++) {
    const case_t *c = &cases[pick[pi]];
    relay_chat_opts_t *o = make_opts(&modes[0]);
    make_stream(c, 9, 1, &in);
    for (size_t cut = 0; cut <= in.len; cut++) {
      relay_chain_t ch;
      chat_chain(&ch, o, "text/event-stream");
      CHECK(relay_chain_feed(&ch, in.data, cut) == 0);
      CHECK(relay_chain_feed(&ch, in.data + cut, in.len - cut) == 0);
      CHECK(relay_chain_end(&ch, 1) == 0);
      got_t got;
      got_init(&got);
      read_stream(out.data, out.len, &got, 1);
      check_got(c, &modes[0], &got, "chain cut");
      got_dispose(&got);
      /* byte-identical output apart from the ids (no calls: identical) */
      if (cut == 0) {
        relay_buf_reset(&first);
        relay_buf_append(&first, out.data, out.len);
      } else if (!strlen(c->calls) || c->upcall) {
        CHECK_MEM(out.data, out.len, first.data, first.len);
      } else {
        CHECK(out.len == first.len);
      }
      relay_chain_dispose(&ch);
    }
    relay_chat_opts_unref(o);
  }
  relay_buf_dispose(&in);
  relay_buf_dispose(&first);
}

/* A JSON body: message.content, the reasoning members, message.tool_calls,
 * finish_reason, for every case and mode. */
static void test_bodies(void) {
  relay_buf_t body;
  relay_buf_init(&body);
  for (size_t ci = 0; ci < NCASES; ci++) {
    const case_t *c = &cases[ci];
    for (size_t mi = 0; mi < sizeof modes / sizeof modes[0]; mi++) {
      relay_chat_opts_t *o = make_opts(&modes[mi]);
      relay_buf_reset(&body);
      relay_buf_append_str(&body, "{\"id\":\"c1\",\"object\":\"chat.completion\",\"choices\":[");
      for (int i = 0; i < 2; i++) {
        if (i) relay_buf_append_str(&body, ",");
        relay_buf_printf(&body, "{\"index\":%d,\"message\":{\"role\":\"assistant\",\"content\":", i);
        if (*c->content || !c->upcall) put_escaped(&body, c->content, strlen(c->content));
        else relay_buf_append_str(&body, "null");
        if (*c->reasoning) {
          relay_buf_printf(&body, ",\"%s\":", c->rfield);
          put_escaped(&body, c->reasoning, strlen(c->reasoning));
          if (c->shape == SHAPE_MIRROR) {
            relay_buf_append_str(&body, ",\"reasoning_content\":");
            put_escaped(&body, c->reasoning, strlen(c->reasoning));
          }
        }
        if (c->shape == SHAPE_MLX) relay_buf_append_str(&body, ",\"reasoning\": \"\", \"tool_calls\": []");
        if (c->upcall) relay_buf_printf(&body, ",\"tool_calls\":%s", c->upcall);
        relay_buf_printf(&body, "},\"finish_reason\":\"%s\"}", c->finish ? c->finish : "stop");
      }
      relay_buf_append_str(&body, "],\"usage\":{\"total_tokens\":1.0e1,\"x\":[]}}");
      relay_chain_t ch;
      chat_chain(&ch, o, "application/json");
      CHECK(relay_chain_feed(&ch, body.data, body.len / 2) == 0);
      CHECK(relay_chain_feed(&ch, body.data + body.len / 2, body.len - body.len / 2) == 0);
      CHECK(relay_chain_end(&ch, 1) == 0);
      got_t got[2];
      for (int i = 0; i < 2; i++) got_init(&got[i]);
      size_t a, b;
      relay_json_path_seg_t root = {NULL, 0, 0};
      CHECK(relay_json_find(out.data, out.len, &root, 0, &a, &b) == 0);
      CHECK(memmem(out.data, out.len, "\"usage\":{\"total_tokens\":1.0e1,\"x\":[]}}", 37) != NULL);
      read_doc(out.data, out.len, "message", got, 2, 0);
      case_t want = *c;
      if (!c->finish) want.finish_out = "stop";
      for (int i = 0; i < 2; i++) {
        check_got(&want, &modes[mi], &got[i], "body");
        got_dispose(&got[i]);
      }
      relay_chain_dispose(&ch);
      relay_chat_opts_unref(o);
    }
  }
  relay_buf_dispose(&body);
}

static int has(const char *s, size_t n, const char *lit) { return memmem(s, n, lit, strlen(lit)) != NULL; }

/* Stream entries: the first delta of a call carries index, id, type, name
 * and "arguments":"" when nothing else came with it; pieces follow with the
 * index only; finish_reason becomes "tool_calls". Exact bytes, one token
 * per event (ids masked). */
static void test_call_delta_shape(void) {
  relay_buf_t in;
  relay_buf_init(&in);
  static const char *const toks[] = {"<|start|>", "assistant", "<|channel|>", "commentary", " to", "=functions",
                                     ".get_weather", " <|constrain|>", "json", "<|message|>", "{\"", "a\":",
                                     "1}"};
  for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++) {
    relay_buf_t d;
    relay_buf_init(&d);
    relay_buf_append_str(&d, "{\"content\":");
    put_escaped(&d, toks[i], strlen(toks[i]));
    relay_buf_append(&d, "}", 2); /* NUL-terminated */
    add_event(&in, SHAPE_PLAIN, 0, d.data, NULL);
    relay_buf_dispose(&d);
  }
  add_event(&in, SHAPE_PLAIN, 0, "{}", "stop");
  relay_chat_opts_t *o = make_opts(&modes[0]);
  relay_chain_t ch;
  chat_chain(&ch, o, "text/event-stream");
  CHECK(relay_chain_feed(&ch, in.data, in.len) == 0);
  CHECK(relay_chain_end(&ch, 1) == 0);
  /* mask the id */
  char *id = memmem(out.data, out.len, "\"id\":\"call_", 11);
  CHECK(id != NULL);
  if (id) memset(id + 11, 'X', RELAY_HARMONY_CALL_ID_LEN - 5);
  CHECK(has(out.data, out.len,
             "\"delta\":{\"content\":\"\",\"tool_calls\":[{\"index\":0,\"id\":\"call_XXXXXXXXXXXXXXXXXXXXXXXX\","
             "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}"));
  CHECK(has(out.data, out.len,
             "\"delta\":{\"content\":\"\",\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"\"}}]}"));
  CHECK(has(out.data, out.len, "\"delta\":{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}"));
  relay_chain_dispose(&ch);
  relay_chat_opts_unref(o);
  relay_buf_dispose(&in);
}

/* RELAY_TOOL_CALLS=0: the call's text stays in content, as written. */
static void test_calls_off(void) {
  relay_buf_t in;
  relay_buf_init(&in);
  const char *text = AN A END CALL "<|call|>";
  relay_buf_t d;
  relay_buf_init(&d);
  for (size_t i = 0; text[i]; i++) {
    relay_buf_reset(&d);
    relay_buf_append_str(&d, "{\"content\":");
    put_escaped(&d, text + i, 1);
    relay_buf_append(&d, "}", 2); /* NUL-terminated */
    add_event(&in, SHAPE_PLAIN, 0, d.data, NULL);
  }
  add_event(&in, SHAPE_PLAIN, 0, "{}", "stop");
  relay_chat_opts_t *o = make_opts(&modes[0]);
  o->tool_calls = 0;
  relay_chain_t ch;
  chat_chain(&ch, o, "text/event-stream");
  CHECK(relay_chain_feed(&ch, in.data, in.len) == 0);
  CHECK(relay_chain_end(&ch, 1) == 0);
  got_t got;
  got_init(&got);
  read_stream(out.data, out.len, &got, 1);
  CHECK_STR(got.content.data, got.content.len, "<think>" A "</think>" CALL "<|call|>");
  CHECK(got.ncalls == 0);
  CHECK_STR(got.finish.data, got.finish.len, "stop");
  got_dispose(&got);
  relay_chain_dispose(&ch);
  relay_chat_opts_unref(o);
  relay_buf_dispose(&d);
  relay_buf_dispose(&in);
}

int main(void) {
  relay_buf_init(&out);
  relay_log_set_level(RELAY_LOG_WARN); /* the notes of calls cut by "length" */
  test_streams();
  test_chain_cuts();
  test_bodies();
  test_call_delta_shape();
  test_calls_off();
  relay_buf_dispose(&out);
  return check_report("test_chat_reasoning");
}
