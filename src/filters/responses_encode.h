/* The response side of the Responses bridge: a pure streaming encoder that
 * turns the typed pieces of one chat choice (chat_chunk.h) into Responses
 * API output, either the documented SSE events or, for a non-streaming
 * request, the one final Response object.
 *
 * Streaming output, in order (captures/ and NOTES.md of the Codex research;
 * the openai SDK's ResponseStream accumulator):
 *   response.created, response.in_progress           (relay_resp_enc_start)
 *   per output item, in output_index order:
 *     reasoning: output_item.added {summary:[],content:[]},
 *       content_part.added {reasoning_text}, reasoning_text.delta...,
 *       reasoning_text.done, content_part.done, output_item.done
 *     message: output_item.added, content_part.added {output_text},
 *       output_text.delta..., output_text.done, content_part.done,
 *       output_item.done
 *     function_call: output_item.added {arguments:""},
 *       function_call_arguments.delta..., function_call_arguments.done,
 *       output_item.done
 *     custom_tool_call: output_item.added {input:""},
 *       custom_tool_call_input.delta, custom_tool_call_input.done,
 *       output_item.done
 *   response.completed | response.incomplete (finish_reason "length":
 *     incomplete_details.reason "max_output_tokens"; "content_filter") |
 *     response.failed (an upstream error, a cut stream, the output limit)
 * Each event is "event: <type>\ndata: <json>\n\n", its data's first members
 * "type" and "sequence_number" (0, 1, 2, ...). The terminal event's
 * `response` holds every output item and `usage`: the SDK's final response
 * is exactly that object.
 *
 * Items: reasoning text opens a reasoning item, content text a message;
 * either closes the items open before it. Tool calls stay open together
 * (chat streams may interleave their arguments by index) until text, the
 * end, or TOOL_END. A custom tool call's arguments are held until it closes,
 * then its {"input": ...} (or, if the model sent no such object, the whole
 * arguments text) becomes the raw input, in one delta. Names offered
 * upstream as "<namespace>__<name>" come back as name + namespace, custom
 * tools as custom_tool_call (relay_resp_req_tool()). On failure, open items
 * get no .done event (a cut tool call must not run) and appear in the
 * final output with status "incomplete".
 *
 * Text is made valid UTF-8 (a sequence split between two deltas is joined,
 * invalid bytes become U+FFFD) and escaped with relay_json_escape(). Ids:
 * resp_<seed>, then rs_ / msg_ / fc_ / ctc_<seed>_<n>, unique per response
 * for a seed that is unique per response (the caller's; no global state).
 * call_id is the chat tool call's id (call_<seed>_<n> when it has none).
 *
 * Limits: at most RELAY_RESP_MAX_ITEMS output items and opts.max_output
 * bytes of item text; past them the response fails (response.failed) and
 * later pieces are ignored. Memory is the text of the response (the final
 * event repeats it all, as the API does) plus a constant; work per piece is
 * linear in the piece, plus the items open at once for a tool call lookup.
 */
#ifndef RELAY_FILTERS_RESPONSES_ENCODE_H
#define RELAY_FILTERS_RESPONSES_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "chat_chunk.h"
#include "relay/buf.h"
#include "relay/utf8.h"
#include "responses_request.h"

#define RELAY_RESP_ENC_ENOMEM -2

/* Output items per response. A turn of Codex has a handful. */
#define RELAY_RESP_MAX_ITEMS 256
/* Default bytes of text held for one response (what the final event
 * repeats): the size of the relay's largest JSON body. */
#define RELAY_RESP_MAX_OUTPUT (16 * 1024 * 1024)

typedef struct relay_resp_enc_opts_s {
  uint64_t seed;      /* makes the ids; unique per response */
  int64_t created_at; /* unix seconds */
  int stream;         /* SSE events; else one JSON object at the end */
  size_t max_output;  /* 0: RELAY_RESP_MAX_OUTPUT */
} relay_resp_enc_opts_t;

typedef enum relay_resp_item_kind_e {
  RELAY_RESP_ITEM_REASONING = 1,
  RELAY_RESP_ITEM_MESSAGE,
  RELAY_RESP_ITEM_FUNCTION_CALL,
  RELAY_RESP_ITEM_CUSTOM_TOOL_CALL
} relay_resp_item_kind_t;

/* One output item (internal to the encoder). */
typedef struct relay_resp_item_s {
  relay_resp_item_kind_t kind;
  int open;                 /* not closed yet */
  int announced;            /* output_item.added went out (tool calls wait for a name) */
  int id_given;             /* call_id came from the upstream (else made up) */
  long tool_index;          /* chat tool call index */
  const relay_resp_tool_t *tool; /* the tool offered upstream, or NULL */
  relay_buf_t text;         /* decoded text / arguments so far (freed when closed) */
  size_t streamed;          /* bytes of text already sent as deltas */
  relay_buf_t name;         /* the chat name, then the name reported */
  relay_buf_t call_id;
  relay_buf_t json;         /* the item as it goes in the final output */
  relay_utf8_tail_t tail;   /* a UTF-8 sequence split at the end of a delta */
} relay_resp_item_t;

typedef struct relay_resp_enc_s {
  const relay_resp_req_t *req;
  relay_resp_enc_opts_t opts;
  char seed_hex[17];
  uint64_t seq;             /* next sequence_number */
  int started;              /* created + in_progress sent */
  int ended;                /* the terminal event (or object) was written */
  relay_resp_item_t *items;
  size_t nitems, cap;
  size_t text_bytes;        /* item text held, for max_output */
  char finish[24];          /* the last finish_reason */
  relay_chat_usage_t usage;
  int has_usage;
  relay_buf_t scratch;
  relay_buf_t err_message;  /* a failure's message */
  char err_code[48];
  int failed;               /* failure recorded; the end writes response.failed */
  int status;               /* HTTP status the failure suggests (non-streaming) */
} relay_resp_enc_t;

/* req must outlive the encoder. */
void relay_resp_enc_init(relay_resp_enc_t *e, const relay_resp_req_t *req, const relay_resp_enc_opts_t *opts);
void relay_resp_enc_dispose(relay_resp_enc_t *e);

/* Streaming: append response.created and response.in_progress to out (once;
 * every other call does it first if needed). JSON mode: nothing. */
int relay_resp_enc_start(relay_resp_enc_t *e, relay_buf_t *out);
/* One piece of chat choice 0. Appends events (streaming) to out. An ERROR
 * piece ends the response with response.failed. Returns 0, or
 * RELAY_RESP_ENC_ENOMEM; pieces after the end are ignored. */
int relay_resp_enc_feed(relay_resp_enc_t *e, const relay_chat_piece_t *piece, relay_buf_t *out);
/* The upstream finished cleanly ([DONE] or the end of a JSON body): close
 * the open items, then response.completed / response.incomplete (or the
 * Response object in JSON mode). */
int relay_resp_enc_end(relay_resp_enc_t *e, relay_buf_t *out);
/* The upstream went away mid-response: response.failed (or a failed
 * Response object). The connection to the client should then be closed. */
int relay_resp_enc_cut(relay_resp_enc_t *e, relay_buf_t *out);
/* A failure found by the caller (an upstream status, an unreadable chunk):
 * response.failed with this message and code (NULL: "server_error"). */
int relay_resp_enc_fail(relay_resp_enc_t *e, const char *code, const char *message, size_t len, relay_buf_t *out);

/* The response is over (a terminal event or the object was written). */
int relay_resp_enc_ended(const relay_resp_enc_t *e);
/* JSON mode: the HTTP status for the object written: 200, or for a failed
 * response the upstream's error status (502 when it had none). */
int relay_resp_enc_http_status(const relay_resp_enc_t *e);

#endif
