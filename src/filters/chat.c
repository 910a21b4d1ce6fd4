/* The chat-completions rewrite: a response filter that runs each choice's
 * text through its own streaming replacer and splices the result back into
 * the upstream's JSON, leaving every other byte as it came.
 *
 * SSE (the chain hands over whole events): one event out per event in, in
 * order; text held back by a replacer is released by a later event, the
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

#include <stdlib.h>
#include <string.h>

#include "exchange.h"
#include "log.h"
#include "choices.h"
#include "relay/json_splice.h"
#include "relay/sse.h"

#define CHAT_FOUND_INITIAL 2
/* Distinct choice indexes rewritten per response (OpenAI's own limit on n).
 * Each holds a replacer; past the cap, text of new indexes passes through
 * unrewritten, so an upstream that opens a new index with every event cannot
 * grow the state of a response or the cost of a lookup. */
#define CHAT_MAX_CHOICES 128

typedef struct chat_choice_s {
  long index;
  relay_replacer_t r;
  int finished;
  int in_reasoning; /* the replacer's last state change entered a reasoning state */
} chat_choice_t;

typedef struct chat_edit_s {
  size_t start, end;   /* bytes of the original replaced by the edit */
  size_t off, len;     /* the new bytes, in chat->edits_buf */
} chat_edit_t;

typedef struct relay_chat_s {
  relay_filter_t base;
  const relay_chat_opts_t *opts;
  int sse;
  int text_hook_failed; /* the on_text hook failed once: not called again */
  chat_choice_t *choices; /* sorted by index, at most CHAT_MAX_CHOICES */
  size_t nchoices, cap;
  int capped_logged;
  chat_choice_t *cur; /* the choice being fed, for the metrics' counts */
  /* Scratch, reused for every event so the steady state does not allocate. */
  relay_buf_t decoded, content, reasoning, out, edits_buf;
  chat_edit_t *edits;   /* two per choice slot */
  size_t nedits;
  relay_buf_t last_chunk; /* the last data payload, a template for flush events */
  int template_ok; /* last_chunk and found[0] describe a one-choice content chunk */
  /* Choices of the current document; grown on demand (n is nearly always 1)
   * so that an idle stream stays small. */
  relay_chat_choice_t *found;
  relay_chat_choice_t *found2; /* the second reasoning field ("both") */
  int found2_ok;               /* found2 describes the current document */
  size_t found_cap;
  /* Output could not be made exactly (out of memory, or the client write
   * failed). A stream: nothing more goes out and the response is cut,
   * visibly. A JSON body: it goes out as it came. */
  int broken;
} relay_chat_t;

/* The slot of a choice index, made on first sight. Slots stay sorted by
 * index and are found by binary search, so n > 1 streams cost O(log n) per
 * lookup whatever order the indexes come in; a new slot moves at most
 * CHAT_MAX_CHOICES others, once. Returns NULL past the cap (*capped set; one
 * warning per response) or when out of memory (*capped 0). */
/* The request, for log lines. */
static const char *chat_name(const relay_chat_t *chat) { return chat->base.ex ? chat->base.ex->log_path : "-"; }

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
    size_t cap = chat->cap ? chat->cap * 2 : 2;
    chat_choice_t *p = realloc(chat->choices, cap * sizeof *p);
    if (!p) return NULL;
    chat->choices = p;
    chat->cap = cap;
  }
  chat_choice_t c;
  memset(&c, 0, sizeof c);
  if (chat->opts->rules && relay_replacer_init(&c.r, chat->opts->rules) != 0) return NULL;
  c.index = index;
  c.finished = 0;
  memmove(&chat->choices[lo + 1], &chat->choices[lo], (chat->nchoices - lo) * sizeof c);
  chat->choices[lo] = c;
  chat->nchoices++;
  return &chat->choices[lo];
}

/* Appends that remember a failure: a builder runs to its end and its caller
 * looks at chat->broken once, instead of every call checking. */
static void chat_put(relay_chat_t *chat, relay_buf_t *b, const void *p, size_t n) {
  if (relay_buf_append(b, p, n)) chat->broken = 1;
}

static void chat_put_str(relay_chat_t *chat, relay_buf_t *b, const char *s) {
  chat_put(chat, b, s, strlen(s));
}

static void put_json_string(relay_chat_t *chat, relay_buf_t *b, const char *s, size_t len) {
  chat_put(chat, b, "\"", 1);
  if (relay_json_escape(b, s ? s : "", len)) chat->broken = 1;
  chat_put(chat, b, "\"", 1);
}

/* "name": for a configured field name. */
static void put_key(relay_chat_t *chat, relay_buf_t *b, const char *name) {
  chat_put(chat, b, "\"", 1);
  chat_put_str(chat, b, name);
  chat_put(chat, b, "\":", 2);
}

/* Replacer output lands in content or reasoning by the output mode. */
static void chat_emit(void *ud, relay_out_kind_t kind, unsigned state, const char *data, size_t len) {
  relay_chat_t *chat = ud;
  if (kind == RELAY_OUT_REPLACEMENT && chat->cur) {
    /* A reasoning block opens where the text enters a reasoning state. */
    int reasoning = (chat->opts->reasoning_states >> state) & 1u;
    if (reasoning && !chat->cur->in_reasoning && chat->base.ex) chat->base.ex->stats.reasoning_blocks++;
    chat->cur->in_reasoning = reasoning;
  }
  switch (relay_output_sink(chat->opts->mode, chat->opts->reasoning_states, kind, state)) {
    case RELAY_SINK_CONTENT: chat_put(chat, &chat->content, data, len); break;
    case RELAY_SINK_REASONING: chat_put(chat, &chat->reasoning, data, len); break;
    case RELAY_SINK_DROP: break;
  }
}

static void edit_begin(relay_chat_t *chat) {
  chat->nedits = 0;
  relay_buf_reset(&chat->edits_buf);
}

/* Record that [start, end) becomes the bytes appended to edits_buf since off. */
static void edit_add(relay_chat_t *chat, size_t start, size_t end, size_t off) {
  if (chat->nedits == 4 * chat->found_cap) {
    chat->broken = 1;
    return;
  }
  chat_edit_t *e = &chat->edits[chat->nedits++];
  e->start = start;
  e->end = end;
  e->off = off;
  e->len = chat->edits_buf.len - off;
}

/* A reasoning member of field mode, for the flush event built from scratch. */
static void append_reasoning_members(relay_chat_t *chat, relay_buf_t *b) {
  const relay_chat_opts_t *o = chat->opts;
  for (int f = 0; f < 2; f++) {
    if (!o->field[f][0]) continue;
    if (f > 0) chat_put(chat, b, ",", 1);
    put_key(chat, b, o->field[f]);
    put_json_string(chat, b, chat->reasoning.data, chat->reasoning.len);
  }
}

/* Apply the edits (sorted by position; they never overlap) to doc into out. */
static int cmp_edit(const void *a, const void *b) {
  const chat_edit_t *x = a, *y = b;
  return x->start < y->start ? -1 : x->start > y->start;
}

static void apply_edits(relay_chat_t *chat, const char *doc, size_t len, relay_buf_t *out) {
  qsort(chat->edits, chat->nedits, sizeof chat->edits[0], cmp_edit);
  size_t pos = 0;
  for (size_t i = 0; i < chat->nedits; i++) {
    const chat_edit_t *e = &chat->edits[i];
    chat_put(chat, out, doc + pos, e->start - pos);
    chat_put(chat, out, chat->edits_buf.data + e->off, e->len);
    pos = e->end;
  }
  chat_put(chat, out, doc + pos, len - pos);
}

/* After a choice's text went through its replacer (chat->content and
 * chat->reasoning hold the output), record the edits for that choice: the
 * content value replaced in place; in field mode each reasoning member set
 * (appended to a string the upstream already put there, replacing a null);
 * members the object lacks inserted right after its '{'. f2 locates the
 * second reasoning field ("both"), or is NULL. */
static void edit_choice(relay_chat_t *chat, const relay_chat_choice_t *f, const relay_chat_choice_t *f2,
                        const char *json) {
  if (!f->has_container) return;
  const relay_chat_opts_t *o = chat->opts;
  int have_reasoning = o->mode == RELAY_MODE_FIELD && chat->reasoning.len > 0;
  size_t off = chat->edits_buf.len;
  /* Text the rewrite left as it was keeps its original encoding (\u003c stays). */
  int unchanged = f->has_content && f->content_is_string && chat->content.len == chat->decoded.len &&
                  (chat->content.len == 0 || memcmp(chat->content.data, chat->decoded.data, chat->content.len) == 0);
  if (f->has_content && !unchanged && (f->content_is_string || chat->content.len > 0)) {
    put_json_string(chat, &chat->edits_buf, chat->content.data, chat->content.len);
    edit_add(chat, f->content_start, f->content_end, off);
  }
  int insert_field[2] = {0, 0};
  for (int i = 0; i < 2 && have_reasoning; i++) {
    const relay_chat_choice_t *m = i == 0 ? f : f2;
    if (!o->field[i][0]) continue;
    if (!m || !m->has_reasoning) {
      insert_field[i] = 1;
      continue;
    }
    off = chat->edits_buf.len;
    relay_buf_t joined;
    relay_buf_init(&joined);
    if (m->reasoning_is_string &&
        relay_json_unescape(json + m->reasoning_start + 1, m->reasoning_end - m->reasoning_start - 2, &joined))
      chat->broken = 1;
    chat_put(chat, &joined, chat->reasoning.data, chat->reasoning.len);
    put_json_string(chat, &chat->edits_buf, joined.data, joined.len);
    relay_buf_dispose(&joined);
    edit_add(chat, m->reasoning_start, m->reasoning_end, off);
  }
  int insert_content = !f->has_content && chat->content.len > 0;
  if (!insert_content && !insert_field[0] && !insert_field[1]) return;
  off = chat->edits_buf.len;
  int members = 0;
  for (int i = 0; i < 2; i++) {
    if (!insert_field[i]) continue;
    if (members++) chat_put(chat, &chat->edits_buf, ",", 1);
    put_key(chat, &chat->edits_buf, o->field[i]);
    put_json_string(chat, &chat->edits_buf, chat->reasoning.data, chat->reasoning.len);
  }
  if (insert_content) {
    if (members++) chat_put(chat, &chat->edits_buf, ",", 1);
    chat_put_str(chat, &chat->edits_buf, "\"content\":");
    put_json_string(chat, &chat->edits_buf, chat->content.data, chat->content.len);
  }
  if (!f->container_empty) chat_put(chat, &chat->edits_buf, ",", 1);
  edit_add(chat, f->container_open + 1, f->container_open + 1, off);
}

/* The script's on_text hook sees each rewritten piece, content and reasoning. */
static void run_text_hook(relay_chat_t *chat, chat_choice_t *c) {
  const relay_chat_opts_t *o = chat->opts;
  if (!o->on_text || chat->text_hook_failed) return;
  if (chat->content.len && o->on_text(o, chat->base.ex, c->index, "content", &chat->content) < 0)
    chat->text_hook_failed = 1;
  if (chat->reasoning.len && !chat->text_hook_failed &&
      o->on_text(o, chat->base.ex, c->index, "reasoning", &chat->reasoning) < 0)
    chat->text_hook_failed = 1;
}

/* Feed one choice's decoded text (and its end, when finished). */
static int run_choice(relay_chat_t *chat, chat_choice_t *c, const char *json,
                      const relay_chat_choice_t *f) {
  relay_buf_reset(&chat->content);
  relay_buf_reset(&chat->reasoning);
  chat->cur = c;
  if (f->has_content && f->content_is_string) {
    relay_buf_reset(&chat->decoded);
    if (relay_json_unescape(json + f->content_start + 1, f->content_end - f->content_start - 2,
                            &chat->decoded) != 0)
      return -1;
    if (!chat->opts->rules) chat_put(chat, &chat->content, chat->decoded.data, chat->decoded.len);
    else if (relay_replacer_feed(&c->r, chat->decoded.data, chat->decoded.len, chat_emit, chat)) return -1;
    /* Text after the choice's finish_reason: what the replacer holds of it
     * is released again at the end, not dropped as already finished. */
    if (chat->decoded.len) c->finished = 0;
  }
  if (f->finished && !c->finished) {
    if (chat->opts->rules) relay_replacer_finish(&c->r, chat_emit, chat);
    c->finished = 1;
  }
  run_text_hook(chat, c);
  return 0;
}

/* relay_chat_find_choices with room that grows up to RELAY_CHAT_MAX_CHOICES_PER_DOC. */
static int find_choices(relay_chat_t *chat, const char *doc, size_t len, const char *container,
                        const char *reasoning_key) {
  for (;;) {
    int n = relay_chat_find_choices(doc, len, container, reasoning_key, chat->found, chat->found_cap);
    if (n != RELAY_ETOOMANY || chat->found_cap >= RELAY_CHAT_MAX_CHOICES_PER_DOC) return n;
    size_t cap = chat->found_cap * 4 > RELAY_CHAT_MAX_CHOICES_PER_DOC ? RELAY_CHAT_MAX_CHOICES_PER_DOC : chat->found_cap * 4;
    relay_chat_choice_t *f = realloc(chat->found, cap * sizeof *f);
    if (!f) return RELAY_ENOMEM;
    chat->found = f;
    f = realloc(chat->found2, cap * sizeof *f);
    if (!f) return RELAY_ENOMEM;
    chat->found2 = f;
    chat_edit_t *e = realloc(chat->edits, 4 * cap * sizeof *e);
    if (!e) return RELAY_ENOMEM;
    chat->edits = e;
    chat->found_cap = cap;
  }
}

/* Consecutive chunks of a stream are byte-identical but for the content
 * string. When an event keeps the last parsed event's bytes before and after
 * that string, and what lies between is a well-formed string body (no bare
 * quote or control byte; escapes are checked when it is decoded), the
 * document has the same structure: the last parse applies with the offsets
 * after the string shifted, and jsmn need not run again. Returns 1, or -1
 * when a full parse is needed. */
static int reuse_last_parse(relay_chat_t *chat, const char *d, size_t len) {
  if (!chat->template_ok) return -1;
  relay_chat_choice_t *f = &chat->found[0];
  const char *prev = chat->last_chunk.data;
  size_t plen = chat->last_chunk.len;
  size_t head = f->content_start + 1, tail = plen - (f->content_end - 1);
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
  size_t old_end = f->content_end;
  f->content_end = len - tail + 1;
  if (f->container_close >= old_end) f->container_close = f->container_close - old_end + f->content_end;
  return 1;
}

/* Tool calls that begin in a document just parsed, for the metrics. */
static void count_tool_calls(relay_chat_t *chat, int n) {
  if (!chat->base.ex) return;
  for (int k = 0; k < n; k++) chat->base.ex->stats.tool_calls += chat->found[k].tool_calls;
}

/* In "both" mode, where the second reasoning field sits (same choices). The
 * document is parsed at k == 0, which every caller reaches for every
 * document; a failed parse leaves no stale offsets in use for later k. */
static const relay_chat_choice_t *second_field(relay_chat_t *chat, const char *doc, size_t len,
                                               const char *container, int n, int k) {
  if (chat->opts->mode != RELAY_MODE_FIELD || !chat->opts->field[1][0]) return NULL;
  if (k == 0)
    chat->found2_ok = relay_chat_find_choices(doc, len, container, chat->opts->field[1], chat->found2,
                                              chat->found_cap) == n;
  return chat->found2_ok ? &chat->found2[k] : NULL;
}

/* Output goes down the chain. A failed write (out of memory, the client
 * gone) means bytes are missing, so nothing more may follow them. */
static int chat_send(relay_chat_t *chat, const char *data, size_t len) {
  if (relay_filter_pass(&chat->base, data, len) == 0) return 0;
  chat->broken = 1;
  return -1;
}

/* One event for the text a choice still held, built from the last chunk so
 * that ids and model match. It is written by the framer's writer, so a line
 * break anywhere in the template (a chunk whose data had several lines)
 * continues the data instead of ending it. */
static void flush_event(relay_chat_t *chat, const chat_choice_t *c) {
  relay_buf_t choices, doc;
  relay_buf_init(&choices);
  relay_buf_init(&doc);
  if (relay_buf_printf(&choices, "[{\"index\":%ld,\"delta\":{", c->index)) chat->broken = 1;
  int reasoning = chat->reasoning.len && chat->opts->mode == RELAY_MODE_FIELD;
  if (reasoning) append_reasoning_members(chat, &choices);
  if (chat->content.len) {
    if (reasoning) chat_put(chat, &choices, ",", 1);
    chat_put_str(chat, &choices, "\"content\":");
    put_json_string(chat, &choices, chat->content.data, chat->content.len);
  }
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

/* Text still held when the stream ends (or the rewrite gives up) without a
 * finish_reason for it goes out in one more event per choice. */
static void flush_all(relay_chat_t *chat) {
  for (size_t i = 0; i < chat->nchoices && !chat->broken; i++) {
    chat_choice_t *c = &chat->choices[i];
    if (c->finished) continue;
    c->finished = 1;
    relay_buf_reset(&chat->content);
    relay_buf_reset(&chat->reasoning);
    if (!chat->opts->rules) continue;
    chat->cur = c;
    relay_replacer_finish(&c->r, chat_emit, chat);
    run_text_hook(chat, c);
    if (chat->content.len == 0 && chat->reasoning.len == 0) continue;
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
  if (changed) {
    send_event_with_data(chat, ev, data, len);
    if (chat->base.ex) chat->base.ex->stats.rewritten_events++;
  } else {
    chat_send(chat, ev->raw, ev->raw_len);
  }
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
  const char *reasoning_key = chat->opts->mode == RELAY_MODE_FIELD ? chat->opts->field[0] : NULL;
  int n = reuse_last_parse(chat, ev->data, ev->data_len);
  if (n < 0) {
    n = find_choices(chat, ev->data, ev->data_len, "delta", reasoning_key);
    count_tool_calls(chat, n);
    const relay_chat_choice_t *f = &chat->found[0];
    chat->template_ok = n == 1 && chat->opts->mode != RELAY_MODE_FIELD && f->has_container &&
                        f->has_content && f->content_is_string && !f->finished;
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
  edit_begin(chat);
  for (int k = 0; k < n && !chat->broken; k++) {
    const relay_chat_choice_t *f = &chat->found[k];
    /* Before any choice is skipped: the second field's parse runs at k == 0. */
    const relay_chat_choice_t *f2 = second_field(chat, ev->data, ev->data_len, "delta", n, k);
    int capped;
    chat_choice_t *c = chat_choice(chat, f->index, &capped);
    if (!c) {
      chat->broken |= !capped;
      continue; /* past the cap: this choice's bytes stay as they came */
    }
    if (run_choice(chat, c, ev->data, f) != 0) chat->broken = 1;
    else edit_choice(chat, f, f2, ev->data);
  }
  if (chat->broken) return;
  if (chat->nedits == 0) { /* nothing to change: the event as it came */
    send_data_event(chat, ev, ev->data, ev->data_len, 0);
    return;
  }
  relay_buf_t *data = &chat->decoded; /* free again: reuse for the new payload */
  relay_buf_reset(data);
  apply_edits(chat, ev->data, ev->data_len, data);
  if (!chat->broken) send_data_event(chat, ev, data->data, data->len, 1);
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

/* The rewrite is over for this response: its buffers and replacers are not
 * needed any more (an event of up to the limit must not stay allocated for
 * the rest of a long stream). Safe to call twice. */
static void chat_drop_state(relay_chat_t *chat) {
  if (chat->opts->rules)
    for (size_t i = 0; i < chat->nchoices; i++) relay_replacer_dispose(&chat->choices[i].r);
  chat->nchoices = 0;
  relay_buf_dispose(&chat->decoded);
  relay_buf_dispose(&chat->content);
  relay_buf_dispose(&chat->reasoning);
  relay_buf_dispose(&chat->out);
  relay_buf_dispose(&chat->edits_buf);
  relay_buf_dispose(&chat->last_chunk);
  chat->template_ok = 0;
}

/* The whole body down the chain; the core sends it with its length. */
static void send_body(relay_chat_t *chat, const char *data, size_t len) { chat_send(chat, data ? data : "", len); }

/* JSON body: rewrite choices[i].message.content of the whole document. Any
 * failure on the way (not a chat document, out of memory) sends the body as
 * it came. */
static void rewrite_body(relay_chat_t *chat, const char *doc, size_t len) {
  const char *reasoning_key = chat->opts->mode == RELAY_MODE_FIELD ? chat->opts->field[0] : NULL;
  int n = find_choices(chat, doc, len, "message", reasoning_key);
  count_tool_calls(chat, n);
  if (n <= 0) {
    send_body(chat, doc, len);
    return;
  }
  edit_begin(chat);
  for (int k = 0; k < n && !chat->broken; k++) {
    relay_chat_choice_t f = chat->found[k];
    const relay_chat_choice_t *f2 = second_field(chat, doc, len, "message", n, k);
    int capped;
    chat_choice_t *c = chat_choice(chat, f.index, &capped);
    f.finished = 1; /* a whole body: every choice ends here */
    if (!c) {
      chat->broken |= !capped;
      continue;
    }
    if (run_choice(chat, c, doc, &f) != 0) chat->broken = 1;
    else edit_choice(chat, &f, f2, doc);
  }
  relay_buf_reset(&chat->out);
  if (!chat->broken) apply_edits(chat, doc, len, &chat->out);
  if (chat->broken) {
    chat->broken = 0;
    send_body(chat, doc, len);
    return;
  }
  send_body(chat, chat->out.data, chat->out.len);
}

/* JSON: the whole body, once. */
static int chat_on_data(relay_filter_t *f, const char *data, size_t len) {
  relay_chat_t *chat = (relay_chat_t *)f;
  rewrite_body(chat, data, len);
  return chat->broken ? -1 : 0;
}

/* Text the replacers still hold goes out (in one more event per choice)
 * at the end of a stream, and before the raw rest when the chain bypasses
 * the filter. A body's work was done in on_data. */
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
  free(chat->choices);
  free(chat->found);
  free(chat->found2);
  free(chat->edits);
  free(chat);
}

/* Only a successful, unencoded JSON or SSE response is rewritten; everything
 * else passes through byte for byte. */
static int chat_on_head(relay_filter_t *f, const relay_response_t *r) {
  relay_chat_t *chat = (relay_chat_t *)f;
  if (!relay_response_is_rewritable(r)) return RELAY_FILTER_SKIP;
  chat->sse = r->media == RELAY_MEDIA_SSE;
  f->unit = chat->sse ? RELAY_UNIT_EVENTS : RELAY_UNIT_BODY;
  return 0;
}

static const relay_filter_ops_t chat_ops = {"chat", chat_on_head, chat_on_data, chat_on_event, chat_on_end,
                                            chat_dispose};

static relay_filter_t *chat_create(const void *opts, struct relay_exchange_s *ex) {
  relay_chat_t *chat = calloc(1, sizeof *chat);
  if (!chat) return NULL;
  chat->base.ops = &chat_ops;
  chat->base.ex = ex;
  chat->opts = opts;
  chat->found_cap = CHAT_FOUND_INITIAL;
  chat->found = malloc(CHAT_FOUND_INITIAL * sizeof *chat->found);
  chat->found2 = malloc(CHAT_FOUND_INITIAL * sizeof *chat->found2);
  chat->edits = malloc(4 * CHAT_FOUND_INITIAL * sizeof *chat->edits);
  if (!chat->found || !chat->found2 || !chat->edits) {
    chat_dispose(&chat->base);
    return NULL;
  }
  return &chat->base;
}

relay_chat_opts_t *relay_chat_opts_new(void) {
  relay_chat_opts_t *o = calloc(1, sizeof *o);
  if (!o) return NULL;
  o->refs = 1;
  o->mode = RELAY_MODE_TAGS;
  strcpy(o->field[0], "reasoning_content");
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
