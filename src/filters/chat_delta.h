/* The output side of the chat rewrite, for one choice: typed pieces in
 * (reasoning, content, the text of a replacer that already wrote its tags, a
 * harmony tool call's begin / arguments / end, "something that ends the
 * reasoning"), and what the choice's delta or message gets out, by output
 * mode: the text of `content`, the text of the reasoning field(s), and
 * tool_calls entries as JSON. Whatever the upstream form was (markers in
 * content, a reasoning field, a parsed call), the same writer decides where
 * each piece goes, so tags open and close at the same places for all of them:
 * the open tag with the first reasoning piece, the close tag with the first
 * content piece, tool call or finish after it.
 *
 * Pure (no JSON parsing, no I/O): the chat filter splices the result into
 * the upstream's document. */
#ifndef RELAY_FILTERS_CHAT_DELTA_H
#define RELAY_FILTERS_CHAT_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "relay/buf.h"
#include "relay/reasoning.h"

typedef struct relay_delta_cfg_s {
  relay_mode_t mode;
  const char *open_tag, *close_tag; /* tags mode */
  size_t open_len, close_len;
  /* 1: harmony calls become tool_calls entries; 0: their text (header,
   * <|message|>, arguments, <|call|>) stays in content. */
  int tool_calls;
  /* 1: entries for a stream's delta ({"index":i,...}, the arguments in
   * pieces); 0: for a body's message (whole calls, no index). */
  int stream;
} relay_delta_cfg_t;

/* What one choice keeps from event to event. */
typedef struct relay_delta_state_s {
  int open;        /* inside a reasoning block (tags mode: the open tag went out) */
  int in_call;     /* a harmony call is open: arguments may follow */
  unsigned calls;  /* harmony calls made: the tool_calls index of the next one */
  uint64_t blocks; /* reasoning blocks opened */
} relay_delta_state_t;

/* One event's (or one body's) output for one choice. */
typedef struct relay_delta_out_s {
  relay_buf_t content;   /* the new text of content */
  relay_buf_t reasoning; /* field mode: the text of the reasoning field(s) */
  relay_buf_t calls;     /* tool_calls entries, comma-separated, without [ ] */
  unsigned entries;      /* how many */
  int entry_open;        /* the last entry's arguments string is still open */
  int err;               /* out of memory: the output is incomplete */
} relay_delta_out_t;

void relay_delta_state_init(relay_delta_state_t *st);
void relay_delta_out_init(relay_delta_out_t *o);
void relay_delta_out_dispose(relay_delta_out_t *o);
/* Empty the output for the next choice or event (keeps its memory). */
void relay_delta_begin(relay_delta_out_t *o);

/* Reasoning text: in tags mode into content (the open tag first when no
 * block is open), in field mode into the reasoning text, in strip mode
 * nowhere. */
void relay_delta_reasoning(const relay_delta_cfg_t *c, relay_delta_state_t *st, relay_delta_out_t *o,
                           const char *s, size_t n);
/* Answer text: into content, after the close tag when a block is open. */
void relay_delta_content(const relay_delta_cfg_t *c, relay_delta_state_t *st, relay_delta_out_t *o,
                         const char *s, size_t n);
/* Text that goes into content as it is (a replacer's output in tags mode,
 * tags included): a block this writer opened is closed first. */
void relay_delta_raw(const relay_delta_cfg_t *c, relay_delta_state_t *st, relay_delta_out_t *o, const char *s,
                     size_t n);
/* What ends a reasoning block without text of its own: a tool call the
 * upstream parsed, the choice's finish, the end of the stream. */
void relay_delta_close(const relay_delta_cfg_t *c, relay_delta_state_t *st, relay_delta_out_t *o);
/* A harmony call begins: name (any bytes; escaped here), id (a JSON-safe
 * string, e.g. from relay_harmony_call_id), header as written (for
 * tool_calls = 0). */
void relay_delta_call_begin(const relay_delta_cfg_t *c, relay_delta_state_t *st, relay_delta_out_t *o,
                            const char *name, size_t name_len, const char *id, const char *header,
                            size_t header_len);
/* A piece of the open call's arguments, as written (valid JSON or not). */
void relay_delta_call_args(const relay_delta_cfg_t *c, relay_delta_state_t *st, relay_delta_out_t *o,
                           const char *s, size_t n);
/* The open call ends (complete: a marker closed it). */
void relay_delta_call_end(const relay_delta_cfg_t *c, relay_delta_state_t *st, relay_delta_out_t *o,
                          int complete);
/* The event's output is complete: an open entry is closed. */
void relay_delta_end(relay_delta_out_t *o);

#endif
