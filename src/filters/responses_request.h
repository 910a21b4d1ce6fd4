/* The request side of the Responses bridge: a `POST /v1/responses` body
 * (JSON text) translated into a `/v1/chat/completions` body, plus the small
 * per-exchange state the response side needs (relay_resp_req_t).
 *
 * The body is checked and tokenized with jsmn (jdoc.h); values that pass
 * through (a tool's `parameters`, `function_call.arguments`, message text,
 * `tool_choice` echoed back) are copied as the raw bytes the client sent,
 * strings as their encoded bodies; new strings are encoded with
 * relay_json_escape(). Nothing is decoded and re-serialised, so the output
 * is valid JSON whenever the input was. Pure: no socket, no clock, no
 * global state. Work is linear in the body (plus the sort of at most
 * RELAY_RESP_MAX_TOOLS names); memory is the output, the token array (at
 * most RELAY_RESP_MAX_TOKENS) and the tool names.
 *
 * What is translated, and the decisions taken:
 * - `model` (string) is copied. `instructions` (string) becomes the first
 *   system message.
 * - `input`: a string is one user message. Items: `message` (also without
 *   `type` when it has a `role`) with role user, assistant, system or
 *   developer, content a string or parts `input_text`, `output_text`,
 *   `text`, `refusal` (joined with a blank line), `input_image` (an image_url
 *   part, user messages only, by URL: `file_id` needs the Files API and is
 *   a 400); `function_call` and `custom_tool_call` (tool_calls of one
 *   assistant message while they follow each other, together with the
 *   assistant message just before them); `function_call_output` and
 *   `custom_tool_call_output` (tool messages; text parts of an array output
 *   joined, images replaced by a note); `reasoning` (its `content` text, else
 *   its `summary` text, set as the reasoning field of the next assistant
 *   message; dropped when no assistant message follows, or when the field is
 *   ""; `encrypted_content` is ignored). Developer messages go upstream as
 *   role "system" unless opts say otherwise; consecutive system messages
 *   (instructions included) are merged into one with a blank line between,
 *   because chat templates (gpt-oss among them) honour only one. Any other
 *   item type (`item_reference`, `additional_tools`, hosted tool calls) is a
 *   400.
 * - `tools`: `function` flattened into {"type":"function","function":{...}};
 *   `namespace` groups flattened as "<namespace>__<name>"; `custom` freeform
 *   tools offered as a function with one string argument `input` (the
 *   grammar, if any, in that argument's description); every other type
 *   (`web_search`, `file_search`, `tool_search`, `image_generation`, ...) is
 *   left out and named in `notes`. The names offered upstream are kept
 *   (relay_resp_req_tool()) to map calls back to name + namespace, and to
 *   custom_tool_call.
 * - `tool_choice` "auto" / "none" / "required", {"type":"function"|"custom",
 *   "name", "namespace"?}; `parallel_tool_calls`; `reasoning.effort` as
 *   `reasoning_effort`; `max_output_tokens` as `max_tokens` (the name
 *   llama.cpp, vLLM, Ollama and LM Studio all accept); `temperature`,
 *   `top_p`; `stream` (with `stream_options.include_usage`);
 *   `text.format` json_schema / json_object as `response_format`. Without a
 *   tool left to offer, tools, tool_choice and parallel_tool_calls are left
 *   out.
 * - Accepted and ignored: `store`, `include`, `prompt_cache_key`,
 *   `client_metadata`, `metadata`, `user`, `service_tier`, `truncation`,
 *   `text.verbosity`, `reasoning.summary`, `id` and `status` of items, and
 *   any member not named here (listed in `notes`).
 * - 400 with an OpenAI-shaped error: malformed JSON, a value of the wrong
 *   type, an unsupported value, `previous_response_id` or `conversation`
 *   (the relay is stateless), `background`, `prompt`; over the limits below.
 */
#ifndef RELAY_FILTERS_RESPONSES_REQUEST_H
#define RELAY_FILTERS_RESPONSES_REQUEST_H

#include <stddef.h>

#include "relay/buf.h"

#define RELAY_RESP_EINVAL -1 /* the request is refused: status and message in the state */
#define RELAY_RESP_ENOMEM -2

/* Tools offered upstream (functions, namespace members and custom tools
 * together). Codex offers about 15. */
#define RELAY_RESP_MAX_TOOLS 512
/* Bytes of a tool name as offered upstream, namespace included. */
#define RELAY_RESP_MAX_NAME 256
/* JSON values (keys included) in a request body: the first turn of Codex
 * has about 750, and each turn of history adds a few dozen; this bounds
 * the token array at 20 MiB whatever the body. */
#define RELAY_RESP_MAX_TOKENS (1 << 20)

typedef struct relay_resp_req_opts_s {
  /* The assistant message member that carries reasoning upstream. NULL:
   * "reasoning_content". "": reasoning items are dropped. */
  const char *reasoning_field;
  /* The role developer messages get upstream. NULL: "system". */
  const char *developer_role;
} relay_resp_req_opts_t;

typedef enum relay_resp_tool_kind_e {
  RELAY_RESP_TOOL_FUNCTION = 0,
  RELAY_RESP_TOOL_CUSTOM = 1 /* freeform: arguments {"input": text} */
} relay_resp_tool_kind_t;

/* A tool as offered upstream. Names are decoded bytes in the state's
 * `names` buffer; use relay_resp_req_name() to get at them. */
typedef struct relay_resp_tool_s {
  relay_resp_tool_kind_t kind;
  size_t chat_off, chat_len; /* the name upstream: "<namespace>__<name>" or name */
  size_t name_off, name_len; /* the tool's own name */
  size_t ns_off, ns_len;     /* its namespace; ns_len 0: none */
} relay_resp_tool_t;

/* The per-exchange state: what the response side needs, what was left out
 * (for a debug log), and the error when the request is refused. */
typedef struct relay_resp_req_s {
  int stream;                /* "stream": true */
  int parallel_tool_calls;   /* as requested; 1 when absent */
  relay_buf_t model;         /* encoded string body of "model" ("" when absent) */
  relay_buf_t tool_choice;   /* raw JSON of "tool_choice" as sent ("auto" when absent) */
  relay_buf_t temperature;   /* raw JSON numbers as sent; empty when absent */
  relay_buf_t top_p;
  relay_buf_t max_output_tokens;
  relay_resp_tool_t *tools;  /* sorted by chat name */
  size_t ntools;
  relay_buf_t names;         /* storage of the tool names */
  /* Counts, for logs and tests. */
  size_t n_items;            /* input items read */
  size_t n_messages;         /* chat messages written */
  size_t n_tool_calls;       /* function_call and custom_tool_call items */
  size_t n_dropped_tools;    /* tools not offered upstream */
  size_t n_reasoning;        /* reasoning items handed upstream */
  size_t n_reasoning_dropped;
  relay_buf_t notes;         /* "dropped tool web_search; ignored member foo; ...",
                                NUL-terminated when not empty */
  /* Set when relay_resp_req_translate() returns RELAY_RESP_EINVAL. */
  int err_status;            /* 400 */
  char err_message[320];
  char err_param[96];        /* "input[3].content[0].type", or "" */
} relay_resp_req_t;

void relay_resp_req_init(relay_resp_req_t *r);
void relay_resp_req_dispose(relay_resp_req_t *r);

/* Translate a Responses request body into a chat-completions body appended
 * to out, and fill r (which must be freshly initialised). opts may be NULL.
 * Returns 0, RELAY_RESP_EINVAL (out is left as it was; r->err_* say why) or
 * RELAY_RESP_ENOMEM. */
int relay_resp_req_translate(relay_resp_req_t *r, const relay_resp_req_opts_t *opts,
                             const char *body, size_t len, relay_buf_t *out);

/* The tool offered upstream under this (decoded) chat name, or NULL: a
 * binary search. */
const relay_resp_tool_t *relay_resp_req_tool(const relay_resp_req_t *r, const char *chat_name,
                                             size_t len);
/* The bytes of one of a tool's names (off/len from relay_resp_tool_t). */
const char *relay_resp_req_name(const relay_resp_req_t *r, size_t off);

/* Append an OpenAI-shaped error body:
 * {"error":{"message":..,"type":..,"param":..,"code":..}}; type, param and
 * code may be NULL (type then "invalid_request_error", the others null). */
int relay_resp_error_json(relay_buf_t *out, const char *message, size_t message_len, const char *type,
                          const char *param, const char *code);
/* The error body of a refused request. */
int relay_resp_req_error_json(const relay_resp_req_t *r, relay_buf_t *out);

#endif
