/* Front ends: a route whose client speaks another protocol than the upstream
 * (the Responses API over a chat-completions server). The core knows none by
 * name; a route carries a front-end type and its options, and the core calls
 * the type at three points:
 *   - the whole request body is in (at most max_body_buffer): on_request
 *     translates it — a new target and body for the upstream and the state
 *     the response side needs — or refuses it with a status and a JSON body;
 *   - the upstream's final response head is in: on_response may set what the
 *     client gets (status, Content-Type) and what the filters read (media);
 *   - the filter chain is built: the type's own filter goes last, after the
 *     route's, whatever a request hook did to the route's filters.
 * The state lives as long as the exchange (its filter may point into it) and
 * goes with state_free. */
#ifndef RELAY_CORE_FRONTEND_H
#define RELAY_CORE_FRONTEND_H

#include <stddef.h>

#include "filter.h"
#include "relay/buf.h"

/* One request through a front end's on_request. */
typedef struct relay_frontend_request_s {
  /* In. */
  const char *body; /* the client's whole body ("" when it had none) */
  size_t len;
  const char *log_name; /* the request as log lines name it, e.g. "POST /v1/responses" */
  /* Out, when it goes upstream. */
  relay_buf_t *target; /* the upstream request target (empty: the client's) */
  relay_buf_t *new_body; /* the upstream body (empty on entry) */
  void *state;           /* for on_response and the type's filter; freed with state_free */
  /* Out, when it is refused: the status (>= 400) and a JSON body. */
  int status;
  relay_buf_t *answer;
} relay_frontend_request_t;

typedef struct relay_frontend_type_s {
  const char *name;
  /* 0 (go upstream, or the request was refused: status set), or a negative
   * error (the client gets a 500). state may be set either way. */
  int (*on_request)(const void *opts, relay_frontend_request_t *rq);
  /* Before the filters are asked: r->status, r->media and r->content_type
   * may change (see relay_response_t). NULL: nothing changes. */
  void (*on_response)(void *state, relay_response_t *r);
  void (*state_free)(void *state);
  /* Made with the front end's options; last on the chain. NULL: none. */
  const relay_filter_type_t *filter;
  void (*opts_ref)(void *opts);
  void (*opts_unref)(void *opts);
} relay_frontend_type_t;

typedef struct relay_frontend_spec_s {
  const relay_frontend_type_t *type; /* NULL: the route has none */
  void *opts;
} relay_frontend_spec_t;

#endif
