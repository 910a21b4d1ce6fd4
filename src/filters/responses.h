/* The Responses bridge as a front end (core/frontend.h): a route that serves
 * `POST /v1/responses` over an upstream that only has chat completions.
 *
 * Request: the whole body is translated (responses_request.h) into a chat
 * body for `chat_path`; a body the translation refuses (malformed JSON, an
 * unsupported value, previous_response_id) is answered 400 with an
 * OpenAI-shaped error and never reaches the upstream. The translation's state
 * (the tools offered upstream, the stream flag) is the exchange's front-end
 * state.
 *
 * Response: the route's own filters run first (the chat rewrite, which the
 * script layer sets to field mode with RELAY_RESPONSES_REASONING_KEY, so that
 * harmony reasoning in `content` arrives as that member), then this front
 * end's filter, the encoder, turns chat choice 0 into Responses output:
 *   - 2xx event stream for a streaming request: the bytes are framed here
 *     (unit BYTES, so no chat byte can reach the client past the encoder) and
 *     each chunk read (chat_chunk.h) and fed to the encoder
 *     (responses_encode.h); [DONE] ends the response; an end of the body
 *     after a finish_reason ends it too; an end without one, or an upstream
 *     that dies, gives response.failed and the client connection is closed;
 *   - any other 2xx JSON or SSE body: held whole (unit BODY), then one
 *     Response object (or, for a streaming request, all its events at once);
 *     the status is the encoder's (an upstream error object in a 200 gives
 *     its status, or 502);
 *   - an error status, an encoded body or one of another type: held whole,
 *     answered with the status kept (502 for a 2xx) and an OpenAI-shaped
 *     error carrying the upstream's message when its body has one.
 * The client gets text/event-stream for a readable 2xx to a streaming
 * request, application/json otherwise (on_response sets it).
 *
 * Each response gets its own id seed: the exchange id (per loop) mixed with
 * the worker's index and the monotonic clock. No global state.
 */
#ifndef RELAY_FILTERS_RESPONSES_H
#define RELAY_FILTERS_RESPONSES_H

#include <stdint.h>

#include "filter.h"
#include "frontend.h"
#include "responses_request.h"

/* The delta/message member the encoder reads reasoning from: what the chat
 * filter of a Responses route must write (field mode). */
#define RELAY_RESPONSES_REASONING_KEY "reasoning_content"
#define RELAY_RESPONSES_FIELD_MAX 32
#define RELAY_RESPONSES_PATH_MAX 256

/* A route's options; shared by its exchanges, freed with the last reference. */
typedef struct relay_responses_opts_s {
  unsigned refs;
  char chat_path[RELAY_RESPONSES_PATH_MAX];            /* default "/v1/chat/completions" */
  char reasoning_field[RELAY_RESPONSES_FIELD_MAX];     /* reasoning items upstream; "" drops them */
  char developer_role[RELAY_RESPONSES_FIELD_MAX];      /* developer messages upstream; "system" */
} relay_responses_opts_t;

extern const relay_frontend_type_t relay_responses_frontend;
extern const relay_filter_type_t relay_responses_filter_type;

/* New options with one reference and the defaults; NULL when out of memory. */
relay_responses_opts_t *relay_responses_opts_new(void);
void relay_responses_opts_ref(relay_responses_opts_t *o);
void relay_responses_opts_unref(relay_responses_opts_t *o);

/* The encoder filter over a translated request, without an exchange (unit
 * tests): ids from seed, created_at as given. req must outlive it. */
relay_filter_t *relay_responses_filter_new(const relay_resp_req_t *req, uint64_t seed, int64_t created_at);

#endif
