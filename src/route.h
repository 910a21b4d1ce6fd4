/* The routing step: what the script decides for one request. */
#ifndef RELAY_ROUTE_H
#define RELAY_ROUTE_H

#include <stddef.h>

#include "relay/buf.h"
#include "script.h"

struct relay_worker_s;
struct relay_exchange_s;

typedef struct relay_route_s {
  int upstream_index;
  /* Chat-completions rewrite of the response, or NULL for plain proxying. */
  const relay_chat_opts_t *chat;
  relay_chat_opts_t chat_owned; /* a rewrite the Lua route built for this request */
  int has_chat_owned;
  /* Set by the script: a response made locally instead of contacting an upstream. */
  int local_status;
  relay_buf_t local_head; /* extra header lines "Name: value\r\n" */
  relay_buf_t local_body;
  /* Request edits. */
  relay_buf_t new_target;   /* non-empty: replaces the request target */
  relay_buf_t header_edits; /* "name\0value\0" pairs; value "\x01" removes */
  relay_buf_t new_body;     /* body replacement when the route saw the body */
  int body_replaced;
  /* Per-request Lua context (registry reference), or LUA_NOREF. */
  int ctx_ref;
  /* The request hook that applies (the route's, else the global one). */
  int on_request_ref;
  int on_request_wants_body;
  int hook_error_logged; /* bit per response hook that failed: logged once, then skipped */
} relay_route_t;

/* Decide at head time. Returns 0, 1 if the route wants the request body
 * first (call relay_route_with_body later), or a negative error (500). */
int relay_route_head(struct relay_worker_s *w, struct relay_exchange_s *ex, char *err, size_t errlen);
int relay_route_with_body(struct relay_worker_s *w, struct relay_exchange_s *ex, char *err,
                          size_t errlen);
void relay_route_init(relay_route_t *r);
void relay_route_release(struct relay_script_s *s, relay_route_t *r);

#endif
