/* The chat-completions rewrite: a response filter that reads each choice's
 * reasoning and answer wherever the upstream put them (markers in content
 * read by the harmony parser or a rule set's replacer, reasoning members such
 * as reasoning_content and reasoning, harmony tool calls left in content) and
 * writes them back the way the output mode says, splicing the result into
 * the upstream's JSON and leaving every other byte as it came.
 *
 * Per choice and event: the reasoning members come first, then the content
 * text through the choice's parser, then a tool call the upstream parsed and
 * the finish; each piece goes to the choice's writer (chat_delta.h), which
 * decides where it lands. The writer's content, reasoning and tool_calls
 * become edits of the document (chat_edit.c): a value replaced, a member
 * removed with one separator, members inserted (into the slot of a removed
 * one, else after the container's '{'), entries appended to tool_calls,
 * finish_reason set to "tool_calls" once a call was made.
 *
 * SSE (the chain hands over whole events): one event out per event in, in
 * order; text held back by a parser is released by a later event, the
 * choice's finish event, [DONE] or the end of the stream. JSON (the chain
 * hands over the whole body): rewritten once; the core sends it with its new
 * Content-Length.
 *
 * What cannot be rewritten goes out as it came, each byte once: an event or
 * body over the chain's limits bypasses the filter (held text first), a
 * document that is not a chat chunk passes as is, choice indexes past
 * CHAT_MAX_CHOICES are left alone. Only a failure to produce output (out of
 * memory) cuts a stream. */
#include "chat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "chat_delta.h"
#include "chat_internal.h"
#include "choices.h"
#include "exchange.h"
#include "log.h"
#include "relay/harmony.h"
#include "relay/json_splice.h"
#include "relay/sse.h"

#define CHAT_FOUND_INITIAL 2
/* Distinct choice indexes rewritten per response (OpenAI's own limit on n).
 * Each holds a parser; past the cap, text of new indexes passes through
 * unrewritten, so an upstream that opens a new index with every event cannot
 * grow the state of a response or the cost of a lookup. */
#define CHAT_MAX_CHOICES 128
/* The member the varying string of a template is: content, or a key. */
#define CHAT_VARY_CONTENT (-1)

/* The request, for log lines. */
static const char *chat_name(const relay_chat_t *chat) { return chat->base.ex ? chat->base.ex->log_path : "-"; }

static int chat_rules(const relay_chat_t *chat) {
  return chat->opts->parser == RELAY_CHAT_RULES && chat->opts->rules != NULL;
}

/* The slot of a choice index, made on first sight. Slots stay sorted by
 * index and are found by binary search, so n > 1 streams cost O(log n) per
 * lookup whatever order the indexes come in; a new slot moves at most
 * CHAT_MAX_CHOICES others, once. Returns NULL past the cap (*capped set; one
 * warning per response) or when out of memory (*capped 0). */
static chat_choice_t *chat_choice(relay_chat_t *chat, long index, int *capped) {
  size_t lo = 0, hi = chat->nchoices;
  *capped = 0;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (chat->choices[mid].index < index) lo = mid + 1;
    else hi = mid;
  }
  if (lo < chat->nchoices && chat->choices[lo].index == index) return &chat->choices[lo];
  if (chat->nchoices == CHAT_MAX_CHOICES) {
    *capped = 1;
    if (!chat->capped_logged)
      relay_log_warn("%s: more than %d choice indexes in one response; choice index %ld and further new "
                     "ones pass through unrewritten", chat_name(chat), CHAT_MAX_CHOICES, index);
    chat->capped_logged = 1;
    return NULL;
  }
  if (chat->nchoices == chat->cap) {
    size_t cap = chat->cap ? chat->cap * 2 : 1; /* n is nearly always 1; a slot holds a parser (~660 bytes) */
    chat_choice_t *p = realloc(chat->choices, cap * sizeof *p);
    if (!p) return NULL;
    chat->choices = p;
    chat->cap = cap;
  }
  chat_choice_t c;
  memset(&c, 0, sizeof c);
  if (chat->opts->parser == RELAY_CHAT_HARMONY) relay_harmony_init(&c.src.h);
  else if (chat_rules(chat) && relay_replacer_init(&c.src.r, chat->opts->rules) != 0) return NULL;
  relay_delta_state_init(&c.st);
  c.index = index;
  memmove(&chat->choices[lo + 1], &chat->choices[lo], (chat->nchoices - lo) * sizeof c);
  chat->choices[lo] = c;
  chat->nchoices++;
  return &chat->choices[lo];
}

/* ---- parsers' output into the choice's writer -------------------------- */

/* Replacer output lands by the output mode: in tags mode as it is (the
 * rules wrote the tags), else as reasoning, answer or nothing. */
static void replacer_emit(void *ud, relay_out_kind_t kind, unsigned state, const char *data, size_t len) {
  relay_chat_t *chat = ud;
  chat_choice_t *c = chat->cur;
  if (kind == RELAY_OUT_REPLACEMENT) {
    int in = (chat->opts->reasoning_states >> state) & 1u;
    if (in && !c->rules_in) chat->base.stats.reasoning_blocks++;
    c->rules_in = in;
  }
  if (chat->opts->mode == RELAY_MODE_TAGS) {
    relay_delta_raw(&chat->cfg, &c->st, &chat->o, data, len);
    return;
  }
  switch (relay_output_sink(chat->opts->mode, chat->opts->reasoning_states, kind, state)) {
    case RELAY_SINK_CONTENT: relay_delta_content(&chat->cfg, &c->st, &chat->o, data, len); break;
    case RELAY_SINK_REASONING: relay_delta_reasoning(&chat->cfg, &c->st, &chat->o, data, len); break;
    case RELAY_SINK_DROP: break;
  }
}

/* Is the choice's finish_reason "length" (a call cut there was truncated)? */
static int finish_is_length(const relay_chat_t *chat) {
  const relay_chat_choice_t *f = chat->cur_f;
  return f && f->finish.type == RELAY_JSON_STRING && f->finish.end - f->finish.start == 8 &&
         memcmp(chat->cur_json + f->finish.start, "\"length\"", 8) == 0;
}

/* A call ended without its closing marker. Servers drop <|call|> (a stop
 * token), so at the choice's finish that is the normal end; it was cut only
 * when the finish says "length" or the stream ended without a finish. */
static void call_cut(relay_chat_t *chat, unsigned call) {
  if (chat->finishing == 2 || (chat->finishing == 1 && finish_is_length(chat)))
    relay_log_info("%s: tool call %u of choice %ld is incomplete (%s); it was sent with the arguments that "
                   "arrived", chat_name(chat), call, chat->cur->index,
                   chat->finishing == 2 ? "the stream ended without a finish_reason" : "finish_reason \"length\"");
}

/* A unique id per call of the response: the seed is drawn once, at the
 * response's first call. */
static void next_call_id(relay_chat_t *chat, char *id) {
  if (!chat->seeded) {
    if (getrandom(&chat->seed, sizeof chat->seed, GRND_NONBLOCK) != (ssize_t)sizeof chat->seed)
      chat->seed = (uint64_t)(uintptr_t)chat ^ ((uint64_t)(uintptr_t)&chat->seed << 29);
    chat->seeded = 1;
  }
  relay_harmony_call_id(id, chat->seed, chat->ncalls++);
}

static void harmony_emit(void *ud, const relay_harmony_seg_t *g) {
  relay_chat_t *chat = ud;
  chat_choice_t *c = chat->cur;
  const relay_delta_cfg_t *cfg = &chat->cfg;
  char id[RELAY_HARMONY_CALL_ID_LEN + 1];
  switch (g->kind) {
    case RELAY_HARMONY_CONTENT: relay_delta_content(cfg, &c->st, &chat->o, g->data, g->len); break;
    case RELAY_HARMONY_REASONING: relay_delta_reasoning(cfg, &c->st, &chat->o, g->data, g->len); break;
    case RELAY_HARMONY_CALL_BEGIN:
      if (cfg->tool_calls) {
        next_call_id(chat, id);
        chat->base.stats.tool_calls++;
      } else {
        id[0] = '\0';
      }
      relay_delta_call_begin(cfg, &c->st, &chat->o, g->data, g->len, id, g->header, g->header_len);
      break;
    case RELAY_HARMONY_CALL_ARGS: relay_delta_call_args(cfg, &c->st, &chat->o, g->data, g->len); break;
    case RELAY_HARMONY_CALL_END:
      relay_delta_call_end(cfg, &c->st, &chat->o, g->complete);
      if (!g->complete && cfg->tool_calls) call_cut(chat, g->call);
      break;
  }
}

/* The choice's text source ends: what it held goes out, an open call ends,
 * and so does a reasoning block (the rules' own tag when they were left
 * inside one, the writer's otherwise). */
static void finish_source(relay_chat_t *chat, chat_choice_t *c) {
  const relay_chat_opts_t *o = chat->opts;
  if (o->parser == RELAY_CHAT_HARMONY) {
    relay_harmony_finish(&c->src.h, harmony_emit, chat);
  } else if (chat_rules(chat)) {
    relay_replacer_finish(&c->src.r, replacer_emit, chat);
    if (o->mode == RELAY_MODE_TAGS && (o->reasoning_states & (1u << c->src.r.state)) && o->close_tag[0])
      relay_delta_raw(&chat->cfg, &c->st, &chat->o, o->close_tag, strlen(o->close_tag));
  }
  relay_delta_close(&chat->cfg, &c->st, &chat->o);
}

/* ---- reading one choice ------------------------------------------------ */

/* The script's on_text hook sees each rewritten piece, content and reasoning. */
static void run_text_hook(relay_chat_t *chat, chat_choice_t *c) {
  const relay_chat_opts_t *o = chat->opts;
  if (!o->on_text || chat->text_hook_failed) return;
  if (chat->o.content.len && o->on_text(o, chat->base.ex, c->index, "content", &chat->o.content) < 0)
    chat->text_hook_failed = 1;
  if (chat->o.reasoning.len && !chat->text_hook_failed &&
      o->on_text(o, chat->base.ex, c->index, "reasoning", &chat->o.reasoning) < 0)
    chat->text_hook_failed = 1;
}

/* The reasoning members' text, in the keys' order. The same text under two
 * names (vLLM's transitional reasoning + reasoning_content) counts once. */
static int read_reasoning(relay_chat_t *chat, chat_choice_t *c, const char *json, const relay_chat_choice_t *f) {
  for (size_t k = 0; k < chat->nkeys; k++) {
    const relay_chat_member_t *m = &f->reasoning[k];
    if (!(chat->key_in & (1u << k)) || !m->present) continue;
    if (m->type != RELAY_JSON_STRING) {
      if (!chat->odd_logged && !relay_json_is_null(json, &(relay_json_value_t){m->type, m->start, m->end, 0}))
        relay_log_debug("%s: member \"%s\" of choice %ld is not a string; left as it came", chat_name(chat),
                        chat->keys[k], c->index);
      chat->odd_logged = 1;
      continue;
    }
    if (m->empty) continue;
    int seen = 0;
    for (size_t j = 0; j < k && !seen; j++) {
      const relay_chat_member_t *p = &f->reasoning[j];
      seen = (chat->key_in & (1u << j)) && p->present && p->type == RELAY_JSON_STRING &&
             p->end - p->start == m->end - m->start && memcmp(json + p->start, json + m->start, m->end - m->start) == 0;
    }
    if (seen) continue;
    relay_buf_reset(&chat->text);
    if (relay_json_unescape(json + m->start + 1, m->end - m->start - 2, &chat->text) != 0) return -1;
    relay_delta_reasoning(&chat->cfg, &c->st, &chat->o, chat->text.data, chat->text.len);
  }
  return 0;
}

/* The content text through the choice's parser. */
static int read_content(relay_chat_t *chat, chat_choice_t *c, const char *json, const relay_chat_choice_t *f) {
  relay_buf_reset(&chat->decoded);
  if (!f->has_content || !f->content_is_string) return 0;
  if (relay_json_unescape(json + f->content_start + 1, f->content_end - f->content_start - 2, &chat->decoded) != 0)
    return -1;
  const char *s = chat->decoded.data;
  size_t n = chat->decoded.len;
  if (chat->opts->parser == RELAY_CHAT_HARMONY) relay_harmony_feed(&c->src.h, s, n, harmony_emit, chat);
  else if (chat_rules(chat)) relay_replacer_feed(&c->src.r, s, n, replacer_emit, chat);
  else relay_delta_content(&chat->cfg, &c->st, &chat->o, s, n);
  /* Text after the choice's finish_reason: what the parser holds of it is
   * released again at the end, not dropped as already finished. */
  if (n) c->finished = 0;
  return 0;
}

/* One choice of a document: its reasoning members, its content, a tool call
 * the upstream parsed, its finish (f->finished). The writer's output is in
 * chat->o. */
static int run_choice(relay_chat_t *chat, chat_choice_t *c, const char *json, const relay_chat_choice_t *f) {
  chat->cur = c;
  chat->cur_json = json;
  chat->cur_f = f;
  relay_delta_begin(&chat->o);
  uint64_t blocks = c->st.blocks;
  if (read_reasoning(chat, c, json, f) != 0 || read_content(chat, c, json, f) != 0) return -1;
  if (f->tool_calls.present && f->tool_calls.type == RELAY_JSON_ARRAY && !f->tool_calls.empty) {
    relay_delta_close(&chat->cfg, &c->st, &chat->o);
    /* the calls the upstream made itself count too (metrics) */
    chat->base.stats.tool_calls += relay_chat_count_call_starts(json, &f->tool_calls);
  }
  if (f->finished && !c->finished) {
    chat->finishing = 1;
    finish_source(chat, c);
    chat->finishing = 0;
    c->finished = 1;
  }
  relay_delta_end(&chat->o);
  chat->base.stats.reasoning_blocks += c->st.blocks - blocks;
  if (chat->o.err) return -1;
  run_text_hook(chat, c);
  return 0;
}

/* relay_chat_find_choices with room that grows up to RELAY_CHAT_MAX_CHOICES_PER_DOC. */
static int find_choices(relay_chat_t *chat, const char *doc, size_t len, const char *container) {
  for (;;) {
    int n = relay_chat_find_choices(doc, len, container, chat->keys, chat->nkeys, chat->found, chat->found_cap);
    if (n != RELAY_ETOOMANY || chat->found_cap >= RELAY_CHAT_MAX_CHOICES_PER_DOC) return n;
    size_t cap = chat->found_cap * 4 > RELAY_CHAT_MAX_CHOICES_PER_DOC ? RELAY_CHAT_MAX_CHOICES_PER_DOC : chat->found_cap * 4;
    relay_chat_choice_t *f = realloc(chat->found, cap * sizeof *f);
    if (!f) return RELAY_ENOMEM;
    chat->found = f;
    chat->found_cap = cap;
  }
}

/* ---- the fast path ----------------------------------------------------- */

/* The string member of a one-choice chunk that changes from event to event:
 * the one with text (content, else a reasoning member), else an empty
 * content. -2: none (no template). */
static int vary_member(const relay_chat_choice_t *f, size_t nkeys) {
  if (f->has_content && f->content_is_string && f->content_end - f->content_start > 2) return CHAT_VARY_CONTENT;
  for (size_t k = 0; k < nkeys; k++) {
    const relay_chat_member_t *m = &f->reasoning[k];
    if (m->present && m->type == RELAY_JSON_STRING && !m->empty) return (int)k;
  }
  return f->has_content && f->content_is_string ? CHAT_VARY_CONTENT : -2;
}

/* Offsets past the varying string move with its end. */
static void shift_member(relay_chat_member_t *m, size_t old_end, size_t new_end) {
  if (!m->present) return;
  if (m->key_start >= old_end) m->key_start = m->key_start - old_end + new_end;
  if (m->start >= old_end) m->start = m->start - old_end + new_end;
  if (m->end >= old_end) m->end = m->end - old_end + new_end;
}

static void shift_choice(relay_chat_choice_t *f, size_t old_end, size_t new_end) {
  if (f->container_close >= old_end) f->container_close = f->container_close - old_end + new_end;
  if (f->has_content) {
    if (f->content_start >= old_end) f->content_start = f->content_start - old_end + new_end;
    if (f->content_end >= old_end) f->content_end = f->content_end - old_end + new_end;
  }
  for (size_t k = 0; k < RELAY_CHAT_MAX_KEYS; k++) shift_member(&f->reasoning[k], old_end, new_end);
  shift_member(&f->tool_calls, old_end, new_end);
  shift_member(&f->finish, old_end, new_end);
}

/* Consecutive chunks of a stream are byte-identical but for one string (the
 * content, or the reasoning member). When an event keeps the last parsed
 * event's bytes before and after that string, and what lies between is a
 * well-formed string body (no bare quote or control byte; escapes are
 * checked when it is decoded), the document has the same structure: the
 * last parse applies with the offsets after the string shifted, and jsmn
 * need not run again. Returns 1, or -1 when a full parse is needed. */
static int reuse_last_parse(relay_chat_t *chat, const char *d, size_t len) {
  if (!chat->template_ok) return -1;
  relay_chat_choice_t *f = &chat->found[0];
  const char *prev = chat->last_chunk.data;
  size_t plen = chat->last_chunk.len;
  size_t vs, ve;
  if (chat->vary == CHAT_VARY_CONTENT) {
    vs = f->content_start;
    ve = f->content_end;
  } else {
    vs = f->reasoning[chat->vary].start;
    ve = f->reasoning[chat->vary].end;
  }
  size_t head = vs + 1, tail = plen - (ve - 1);
  if (len < head + tail || memcmp(d, prev, head) != 0 || memcmp(d + len - tail, prev + plen - tail, tail) != 0)
    return -1;
  const unsigned char *b = (const unsigned char *)d + head;
  size_t blen = len - head - tail;
  for (size_t i = 0; i < blen; i++) {
    if (b[i] == '\\') {
      if (++i == blen) return -1;
    } else if (b[i] == '"' || b[i] < 0x20) {
      return -1;
    }
  }
  size_t new_end = len - tail + 1;
  shift_choice(f, ve, new_end);
  if (chat->vary == CHAT_VARY_CONTENT) f->content_end = new_end;
  else {
    f->reasoning[chat->vary].end = new_end;
    f->reasoning[chat->vary].empty = blen == 0;
  }
  return 1;
}

/* ---- output ------------------------------------------------------------ */

/* Output goes down the chain. A failed write (out of memory, the client
 * gone) means bytes are missing, so nothing more may follow them. */
static int chat_send(relay_chat_t *chat, const char *data, size_t len) {
  if (relay_filter_pass(&chat->base, data, len) == 0) return 0;
  chat->broken = 1;
  return -1;
}

/* One event for what a choice still had when the stream ended without its
 * finish_reason (held text, a close tag), built from the last chunk so that
 * ids and model match. It is written by the framer's writer, so a line
 * break anywhere in the template (a chunk whose data had several lines)
 * continues the data instead of ending it. */
static void flush_event(relay_chat_t *chat, const chat_choice_t *c) {
  relay_buf_t choices, doc;
  relay_buf_init(&choices);
  relay_buf_init(&doc);
  if (relay_buf_printf(&choices, "[{\"index\":%ld,\"delta\":{", c->index)) chat->broken = 1;
  chat_missing_t all = {chat->o.content.len > 0,
                        {chat->o.reasoning.len > 0 && chat->opts->field[0][0],
                         chat->o.reasoning.len > 0 && chat->opts->field[1][0]},
                        chat->o.entries > 0};
  if (chat->opts->mode != RELAY_MODE_FIELD) all.field[0] = all.field[1] = 0;
  relay_chat__put_members(chat, &choices, &all);
  chat_put_str(chat, &choices, "},\"finish_reason\":null}]");
  relay_json_path_seg_t path = {"choices", 7, 0};
  if (!chat->broken && (!chat->last_chunk.len || relay_json_edit(chat->last_chunk.data, chat->last_chunk.len, &path,
                                                               1, choices.data, choices.len, &doc))) {
    relay_buf_reset(&doc);
    chat_put_str(chat, &doc, "{\"object\":\"chat.completion.chunk\",\"choices\":");
    chat_put(chat, &doc, choices.data, choices.len);
    chat_put_str(chat, &doc, "}");
  }
  if (chat->sse && !chat->broken) {
    relay_buf_reset(&chat->out);
    if (relay_sse_append_event(&chat->out, doc.data ? doc.data : "", doc.len)) chat->broken = 1;
    else chat_send(chat, chat->out.data, chat->out.len);
  }
  relay_buf_dispose(&doc);
  relay_buf_dispose(&choices);
}

/* What the choices still hold when the stream ends (or the rewrite gives
 * up) without a finish_reason for them goes out in one more event per
 * choice. */
static void flush_all(relay_chat_t *chat) {
  for (size_t i = 0; i < chat->nchoices && !chat->broken; i++) {
    chat_choice_t *c = &chat->choices[i];
    if (c->finished) continue;
    c->finished = 1;
    chat->cur = c;
    chat->cur_f = NULL;
    relay_delta_begin(&chat->o);
    uint64_t blocks = c->st.blocks;
    chat->finishing = 2;
    finish_source(chat, c);
    chat->finishing = 0;
    relay_delta_end(&chat->o);
    chat->base.stats.reasoning_blocks += c->st.blocks - blocks;
    if (chat->o.err) {
      chat->broken = 1;
      break;
    }
    run_text_hook(chat, c);
    if (chat->o.content.len == 0 && chat->o.reasoning.len == 0 && chat->o.entries == 0) continue;
    flush_event(chat, c);
  }
}

/* Rebuild an event with new data: a single data line is replaced in place,
 * keeping every other line and the line ends as they were; a line break in
 * new data (a script's) continues on a new data: line (see sse.h), so the
 * client still reads one event with the same data. */
static void send_event_with_data(relay_chat_t *chat, const relay_sse_event_t *ev, const char *data, size_t len) {
  relay_buf_reset(&chat->out);
  if (relay_sse_event_with_data(ev, data, len, &chat->out)) {
    chat->broken = 1;
    return;
  }
  chat_send(chat, chat->out.data, chat->out.len);
}

/* An event whose data is final: rebuilt when it changed, else as it came. */
static void send_data_event(relay_chat_t *chat, const relay_sse_event_t *ev, const char *data, size_t len,
                            int changed) {
  if (changed) send_event_with_data(chat, ev, data, len);
  else chat_send(chat, ev->raw, ev->raw_len);
}

/* The choices of one document (an event's data or a whole body): each run
 * through its parser and writer, its edits recorded. Returns the number of
 * choices, or what find_choices said (<= 0). */
static int rewrite_choices(relay_chat_t *chat, const char *doc, size_t len, int n, int body) {
  edit_begin(chat);
  for (int k = 0; k < n && !chat->broken; k++) {
    relay_chat_choice_t *f = &chat->found[k];
    if (body) f->finished = 1; /* a whole body: every choice ends here */
    int capped;
    chat_choice_t *c = chat_choice(chat, f->index, &capped);
    if (!c) {
      chat->broken |= !capped;
      continue; /* past the cap: this choice's bytes stay as they came */
    }
    if (run_choice(chat, c, doc, f) != 0) chat->broken = 1;
    else relay_chat__edit_choice(chat, c, f, doc);
  }
  return n;
}

static void rewrite_event(relay_chat_t *chat, const relay_sse_event_t *ev) {
  if (!ev->data) {
    chat_send(chat, ev->raw, ev->raw_len);
    return;
  }
  if (ev->is_done) {
    flush_all(chat);
    if (!chat->broken) send_data_event(chat, ev, ev->data, ev->data_len, 0);
    return;
  }
  int n = reuse_last_parse(chat, ev->data, ev->data_len);
  if (n < 0) {
    n = find_choices(chat, ev->data, ev->data_len, "delta");
    const relay_chat_choice_t *f = &chat->found[0];
    chat->vary = n == 1 && f->has_container && !f->finished ? vary_member(f, chat->nkeys) : -2;
    chat->template_ok = chat->vary != -2;
  }
  if (n == RELAY_ENOMEM) {
    chat->broken = 1;
    return;
  }
  if (n <= 0) {
    /* Not a chunk we understand (or no choices, like the usage chunk): as is. */
    chat->template_ok = 0;
    send_data_event(chat, ev, ev->data, ev->data_len, 0);
    return;
  }
  relay_buf_reset(&chat->last_chunk);
  chat_put(chat, &chat->last_chunk, ev->data, ev->data_len);
  rewrite_choices(chat, ev->data, ev->data_len, n, 0);
  if (chat->broken) return;
  if (chat->nedits == 0) { /* nothing to change: the event as it came */
    send_data_event(chat, ev, ev->data, ev->data_len, 0);
    return;
  }
  chat->base.stats.events_rewritten++;
  relay_buf_reset(&chat->payload);
  relay_chat__apply_edits(chat, ev->data, ev->data_len, &chat->payload);
  if (!chat->broken) send_data_event(chat, ev, chat->payload.data, chat->payload.len, 1);
}

/* Once output is missing a piece (out of memory, the client gone), nothing
 * more goes out: the core cuts the response after the gap. */
static int chat_on_event(relay_filter_t *f, const relay_sse_event_t *ev) {
  relay_chat_t *chat = (relay_chat_t *)f;
  if (chat->broken) return -1;
  rewrite_event(chat, ev);
  if (chat->broken) relay_log_warn("%s: out of memory or write failed while rewriting; cutting the response", chat_name(chat));
  return chat->broken ? -1 : 0;
}

/* The rewrite is over for this response: its buffers and parsers are not
 * needed any more (an event of up to the limit must not stay allocated for
 * the rest of a long stream). Safe to call twice. */
static void chat_drop_state(relay_chat_t *chat) {
  if (chat_rules(chat))
    for (size_t i = 0; i < chat->nchoices; i++) relay_replacer_dispose(&chat->choices[i].src.r);
  chat->nchoices = 0;
  relay_buf_dispose(&chat->decoded);
  relay_buf_dispose(&chat->text);
  relay_buf_dispose(&chat->out);
  relay_buf_dispose(&chat->edits_buf);
  relay_buf_dispose(&chat->payload);
  relay_buf_dispose(&chat->last_chunk);
  relay_delta_out_dispose(&chat->o);
  relay_delta_out_init(&chat->o);
  chat->template_ok = 0;
}

/* The whole body down the chain; the core sends it with its length. */
static void send_body(relay_chat_t *chat, const char *data, size_t len) { chat_send(chat, data ? data : "", len); }

/* JSON body: rewrite choices[i].message of the whole document. Any failure
 * on the way (not a chat document, out of memory) sends the body as it
 * came. */
static void rewrite_body(relay_chat_t *chat, const char *doc, size_t len) {
  int n = find_choices(chat, doc, len, "message");
  if (n <= 0) {
    send_body(chat, doc, len);
    return;
  }
  rewrite_choices(chat, doc, len, n, 1);
  relay_buf_reset(&chat->out);
  if (!chat->broken) relay_chat__apply_edits(chat, doc, len, &chat->out);
  if (chat->broken) {
    chat->broken = 0;
    send_body(chat, doc, len);
    return;
  }
  if (chat->nedits) chat->base.stats.events_rewritten++;
  send_body(chat, chat->out.data, chat->out.len);
}

/* JSON: the whole body, once. */
static int chat_on_data(relay_filter_t *f, const char *data, size_t len) {
  relay_chat_t *chat = (relay_chat_t *)f;
  rewrite_body(chat, data, len);
  return chat->broken ? -1 : 0;
}

/* What the choices still hold goes out (in one more event per choice) at
 * the end of a stream, and before the raw rest when the chain bypasses the
 * filter. A body's work was done in on_data. */
static int chat_on_end(relay_filter_t *f, relay_end_t how) {
  relay_chat_t *chat = (relay_chat_t *)f;
  if (chat->broken) return -1; /* already being cut: nothing more */
  if (chat->sse) flush_all(chat);
  if (how == RELAY_END_BYPASS) chat_drop_state(chat);
  return chat->broken ? -1 : 0;
}

static void chat_dispose(relay_filter_t *f) {
  relay_chat_t *chat = (relay_chat_t *)f;
  chat_drop_state(chat);
  relay_delta_out_dispose(&chat->o);
  free(chat->choices);
  free(chat->found);
  free(chat->edits);
  free(chat);
}

/* Only a successful, unencoded JSON or SSE response is rewritten; everything
 * else passes through byte for byte. */
static int chat_on_head(relay_filter_t *f, const relay_response_t *r) {
  relay_chat_t *chat = (relay_chat_t *)f;
  if (!relay_response_is_rewritable(r)) return RELAY_FILTER_SKIP;
  chat->sse = r->media == RELAY_MEDIA_SSE;
  chat->cfg.stream = chat->sse;
  f->unit = chat->sse ? RELAY_UNIT_EVENTS : RELAY_UNIT_BODY;
  return 0;
}

static const relay_filter_ops_t chat_ops = {"chat", chat_on_head, chat_on_data, chat_on_event, chat_on_end,
                                            chat_dispose};

/* A member name the picker looks for; returns its key index. */
static size_t add_key(relay_chat_t *chat, const char *name) {
  for (size_t k = 0; k < chat->nkeys; k++)
    if (strcmp(chat->keys[k], name) == 0) return k;
  chat->keys[chat->nkeys] = name;
  return chat->nkeys++;
}

/* The members to locate: the upstream's reasoning members, and in field
 * mode the output fields too (text already there is joined, never doubled). */
static void set_keys(relay_chat_t *chat) {
  const relay_chat_opts_t *o = chat->opts;
  for (int i = 0; i < RELAY_CHAT_IN_MAX; i++)
    if (o->in_field[i][0]) chat->key_in |= 1u << add_key(chat, o->in_field[i]);
  if (o->mode != RELAY_MODE_FIELD) return;
  for (int i = 0; i < 2; i++) {
    if (!o->field[i][0]) continue;
    size_t k = add_key(chat, o->field[i]);
    chat->key_in |= 1u << k;
    chat->key_out |= 1u << k;
  }
}

static relay_filter_t *chat_create(const void *opts, struct relay_exchange_s *ex) {
  relay_chat_t *chat = calloc(1, sizeof *chat);
  if (!chat) return NULL;
  chat->base.ops = &chat_ops;
  chat->base.ex = ex;
  chat->opts = opts;
  const relay_chat_opts_t *o = opts;
  chat->cfg.mode = o->mode;
  chat->cfg.open_tag = o->open_tag;
  chat->cfg.open_len = strlen(o->open_tag);
  chat->cfg.close_tag = o->close_tag;
  chat->cfg.close_len = strlen(o->close_tag);
  chat->cfg.tool_calls = o->tool_calls;
  set_keys(chat);
  relay_delta_out_init(&chat->o);
  chat->found_cap = CHAT_FOUND_INITIAL;
  chat->found = malloc(CHAT_FOUND_INITIAL * sizeof *chat->found);
  if (!chat->found) {
    chat_dispose(&chat->base);
    return NULL;
  }
  return &chat->base;
}

relay_chat_opts_t *relay_chat_opts_new(void) {
  relay_chat_opts_t *o = calloc(1, sizeof *o);
  if (!o) return NULL;
  o->refs = 1;
  o->parser = RELAY_CHAT_RULES;
  o->mode = RELAY_MODE_TAGS;
  o->tool_calls = 1;
  strcpy(o->field[0], "reasoning_content");
  strcpy(o->open_tag, "<think>");
  strcpy(o->close_tag, "</think>");
  return o;
}

void relay_chat_opts_ref(relay_chat_opts_t *o) { o->refs++; }

void relay_chat_opts_unref(relay_chat_opts_t *o) {
  if (!o || --o->refs > 0) return;
  if (o->on_dispose) o->on_dispose(o);
  if (o->rules) relay_ruleset_unref(o->rules);
  free(o);
}

static void chat_opts_ref(void *o) { relay_chat_opts_ref(o); }
static void chat_opts_unref(void *o) { relay_chat_opts_unref(o); }

const relay_filter_type_t relay_chat_filter_type = {"chat", chat_create, chat_opts_ref, chat_opts_unref,
                                                    RELAY_FILTER_READS_BODY};
