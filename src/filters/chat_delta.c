/* The chat rewrite's output writer for one choice (see chat_delta.h). */
#include "chat_delta.h"

#include <string.h>

#include "relay/json_splice.h"

void relay_delta_state_init(relay_delta_state_t *st) { memset(st, 0, sizeof *st); }

void relay_delta_out_init(relay_delta_out_t *o) {
  memset(o, 0, sizeof *o);
  relay_buf_init(&o->content);
  relay_buf_init(&o->reasoning);
  relay_buf_init(&o->calls);
}

void relay_delta_out_dispose(relay_delta_out_t *o) {
  relay_buf_dispose(&o->content);
  relay_buf_dispose(&o->reasoning);
  relay_buf_dispose(&o->calls);
}

void relay_delta_begin(relay_delta_out_t *o) {
  relay_buf_reset(&o->content);
  relay_buf_reset(&o->reasoning);
  relay_buf_reset(&o->calls);
  o->entries = 0;
  o->entry_open = 0;
  o->err = 0;
}

/* Appends that remember a failure, so a writer runs to its end and its
 * caller looks at o->err once. */
static void put(relay_delta_out_t *o, relay_buf_t *b, const char *s, size_t n) {
  if (n == 0) return;
  if (n <= b->cap - b->len) { /* the usual case: no call to grow */
    memcpy(b->data + b->len, s, n);
    b->len += n;
  } else if (relay_buf_append(b, s, n)) {
    o->err = 1;
  }
}

static void put_str(relay_delta_out_t *o, relay_buf_t *b, const char *s) { put(o, b, s, strlen(s)); }

static void put_escaped(relay_delta_out_t *o, relay_buf_t *b, const char *s, size_t n) {
  if (n && relay_json_escape(b, s, n)) o->err = 1;
}

/* "index":N, without printf (it costs more than the rest of an entry). */
static void put_index(relay_delta_out_t *o, unsigned v) {
  char num[24];
  size_t at = sizeof num;
  num[--at] = ',';
  do {
    num[--at] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  put_str(o, &o->calls, "\"index\":");
  put(o, &o->calls, num + at, sizeof num - at);
}

/* Leave a reasoning block: the close tag goes into content in tags mode. */
static void close_block(const relay_delta_cfg_t *c, relay_delta_state_t *st, relay_delta_out_t *o) {
  if (!st->open) return;
  st->open = 0;
  if (c->mode == RELAY_MODE_TAGS) put(o, &o->content, c->close_tag, c->close_len);
}

void relay_delta_reasoning(const relay_delta_cfg_t *c, relay_delta_state_t *st, relay_delta_out_t *o,
                           const char *s, size_t n) {
  if (n == 0) return;
  if (!st->open) {
    st->open = 1;
    st->blocks++;
    if (c->mode == RELAY_MODE_TAGS) put(o, &o->content, c->open_tag, c->open_len);
  }
  if (c->mode == RELAY_MODE_TAGS) put(o, &o->content, s, n);
  else if (c->mode == RELAY_MODE_FIELD) put(o, &o->reasoning, s, n);
}

void relay_delta_content(const relay_delta_cfg_t *c, relay_delta_state_t *st, relay_delta_out_t *o,
                         const char *s, size_t n) {
  if (n == 0) return;
  close_block(c, st, o);
  put(o, &o->content, s, n);
}

void relay_delta_raw(const relay_delta_cfg_t *c, relay_delta_state_t *st, relay_delta_out_t *o, const char *s,
                     size_t n) {
  relay_delta_content(c, st, o, s, n);
}

void relay_delta_close(const relay_delta_cfg_t *c, relay_delta_state_t *st, relay_delta_out_t *o) {
  close_block(c, st, o);
}

/* The arguments string of the last entry ends, and the entry with it. */
static void end_entry(relay_delta_out_t *o) {
  if (!o->entry_open) return;
  o->entry_open = 0;
  put_str(o, &o->calls, "\"}}");
}

/* A new entry; the caller writes what follows "{". */
static void new_entry(relay_delta_out_t *o) {
  end_entry(o);
  if (o->entries++) put_str(o, &o->calls, ",");
  put_str(o, &o->calls, "{");
}

void relay_delta_call_begin(const relay_delta_cfg_t *c, relay_delta_state_t *st, relay_delta_out_t *o,
                            const char *name, size_t name_len, const char *id, const char *header,
                            size_t header_len) {
  close_block(c, st, o);
  st->in_call = 1;
  if (!c->tool_calls) {
    put(o, &o->content, header, header_len);
    put_str(o, &o->content, "<|message|>");
    return;
  }
  unsigned index = st->calls++;
  new_entry(o);
  if (c->stream) put_index(o, index);
  put_str(o, &o->calls, "\"id\":\"");
  put_str(o, &o->calls, id);
  put_str(o, &o->calls, "\",\"type\":\"function\",\"function\":{\"name\":\"");
  put_escaped(o, &o->calls, name, name_len);
  put_str(o, &o->calls, "\",\"arguments\":\"");
  o->entry_open = 1;
}

void relay_delta_call_args(const relay_delta_cfg_t *c, relay_delta_state_t *st, relay_delta_out_t *o,
                           const char *s, size_t n) {
  if (n == 0) return;
  if (!c->tool_calls || !st->in_call || st->calls == 0) {
    /* kept as text (or arguments with no call, which the parser never gives) */
    relay_delta_content(c, st, o, s, n);
    return;
  }
  if (!o->entry_open) {
    /* the call began in an earlier event: a piece of its arguments */
    new_entry(o);
    if (c->stream) put_index(o, st->calls - 1);
    put_str(o, &o->calls, "\"function\":{\"arguments\":\"");
    o->entry_open = 1;
  }
  put_escaped(o, &o->calls, s, n);
}

void relay_delta_call_end(const relay_delta_cfg_t *c, relay_delta_state_t *st, relay_delta_out_t *o,
                          int complete) {
  if (!st->in_call) return;
  st->in_call = 0;
  if (!c->tool_calls) {
    if (complete) put_str(o, &o->content, "<|call|>");
    return;
  }
  end_entry(o);
}

void relay_delta_end(relay_delta_out_t *o) { end_entry(o); }
