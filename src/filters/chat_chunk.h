/* Reading one chat-completions document (an SSE chunk's data, or a whole
 * JSON body) as typed pieces of choice 0, in the order a Responses encoder
 * needs them: reasoning text, content text, tool calls (begin, arguments,
 * end), finish_reason, usage, or an upstream error object.
 *
 * The document is checked and tokenized with jsmn (see jdoc.h); strings are
 * decoded with relay_json_unescape() and handed over as bytes, never
 * re-encoded JSON. No socket, no clock, no global state: a reader is one
 * struct of scratch buffers, reused from chunk to chunk so that a stream
 * does not allocate per chunk once they have grown.
 */
#ifndef RELAY_FILTERS_CHAT_CHUNK_H
#define RELAY_FILTERS_CHAT_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "relay/buf.h"
#include "jdoc.h"

#define RELAY_CHAT_CHUNK_EINVAL -1 /* not JSON, or not an object */
#define RELAY_CHAT_CHUNK_ENOMEM -2
#define RELAY_CHAT_CHUNK_ETOOBIG -3 /* more than RELAY_CHAT_CHUNK_MAX_TOKENS values */

/* A chunk has tens of values; a whole body with a long answer and many tool
 * calls a few thousand (one per tool call member, not per byte of text). */
#define RELAY_CHAT_CHUNK_MAX_TOKENS (1 << 20)

typedef enum relay_chat_piece_kind_e {
  RELAY_CHAT_PIECE_REASONING = 1, /* text: reasoning delta */
  RELAY_CHAT_PIECE_CONTENT,       /* text: content delta */
  RELAY_CHAT_PIECE_TOOL_BEGIN,    /* index, id, name (either may be empty) */
  RELAY_CHAT_PIECE_TOOL_ARGS,     /* index, text: a piece of the arguments */
  RELAY_CHAT_PIECE_TOOL_END,      /* index: the call is complete (JSON bodies) */
  RELAY_CHAT_PIECE_FINISH,        /* text: finish_reason ("stop", "length", ...) */
  RELAY_CHAT_PIECE_USAGE,         /* usage */
  RELAY_CHAT_PIECE_ERROR          /* status, code, text: an upstream error object */
} relay_chat_piece_kind_t;

typedef struct relay_chat_usage_s {
  int64_t prompt_tokens;
  int64_t completion_tokens;
  int64_t reasoning_tokens; /* completion_tokens_details.reasoning_tokens */
  int64_t cached_tokens;    /* prompt_tokens_details.cached_tokens */
} relay_chat_usage_t;

/* All pointers are valid during the callback only. Text is decoded (raw
 * bytes, as the upstream meant them), not NUL-terminated. */
typedef struct relay_chat_piece_s {
  relay_chat_piece_kind_t kind;
  const char *text;
  size_t len;
  long index;            /* tool call index */
  const char *id;        /* TOOL_BEGIN */
  size_t id_len;
  const char *name;      /* TOOL_BEGIN */
  size_t name_len;
  relay_chat_usage_t usage;
  int status;            /* ERROR: a numeric "code" (llama.cpp), else 0 */
  const char *code;      /* ERROR: a string "code" (OpenAI), else NULL */
  size_t code_len;
  const char *type;      /* ERROR: "type", else NULL */
  size_t type_len;
} relay_chat_piece_t;

/* Return 0 to go on, or a negative value to stop reading (it is returned by
 * relay_chat_chunk_read()). */
typedef int (*relay_chat_piece_cb)(void *ud, const relay_chat_piece_t *piece);

typedef struct relay_chat_chunk_s {
  const char *reasoning_key; /* NULL: "reasoning_content" */
  relay_jdoc_t doc;
  relay_buf_t text;          /* decoded strings of the current piece */
} relay_chat_chunk_t;

/* reasoning_key: the delta/message member with the reasoning text; when it
 * is absent, "reasoning" (vLLM, Ollama, OpenRouter) is read instead. The
 * string is not copied. */
void relay_chat_chunk_init(relay_chat_chunk_t *r, const char *reasoning_key);
void relay_chat_chunk_dispose(relay_chat_chunk_t *r);

/* Deliver the pieces of choices[] element with index 0 (or, without an
 * "index", the first element) of one document, in this order: reasoning,
 * content, each tool_calls[] element (TOOL_BEGIN when it has an id or a
 * name, TOOL_ARGS when its arguments are not empty, and in a body TOOL_END),
 * FINISH, then USAGE when the document has a usage object; a document with a
 * top-level "error" object gives only ERROR. body: the document is a whole
 * chat.completion ("message", tool call positions as indexes) instead of a
 * chunk ("delta"). Empty strings and nulls give no piece. Members of another
 * type than expected are skipped; a document that is not a JSON object is
 * RELAY_CHAT_CHUNK_EINVAL. Returns 0, a negative code, or what cb returned to
 * stop. Linear in the document. */
int relay_chat_chunk_read(relay_chat_chunk_t *r, const char *json, size_t len, int body,
                          relay_chat_piece_cb cb, void *ud);

#endif
