/* What exchange.c, response.c and proxy.c share inside the core. */
#ifndef RELAY_CORE_INTERNAL_H
#define RELAY_CORE_INTERNAL_H

#include "exchange.h"
#include "proxy.h"

/* exchange.c: the request side and the upstream connection's callbacks. */
extern const relay_upconn_handler_t relay_exchange__upstream_handler;
void relay_exchange__init(relay_exchange_t *ex, relay_proxy_t *p, relay_client_t *c);
void relay_exchange__dispose(relay_exchange_t *ex);
void relay_exchange__begin(relay_exchange_t *ex);
/* An exchange for an error found before any request was routed. */
void relay_exchange__begin_bare(relay_exchange_t *ex);
int relay_exchange__on_request_body(relay_exchange_t *ex, relay_slab_t *s, const char *data, size_t len);
void relay_exchange__on_request_complete(relay_exchange_t *ex);
void relay_exchange__on_tunnel_data(relay_exchange_t *ex, relay_slab_t *s, const char *data, size_t len);
void relay_exchange__on_client_gone(relay_exchange_t *ex);
void relay_exchange__on_client_drained(relay_exchange_t *ex);
/* Log it, release what it holds, and tell the loggers: once per exchange. */
void relay_exchange__finish(relay_exchange_t *ex);

/* proxy.c: a server's state changed in this loop's balancer (g of site s):
 * its metrics cell follows, when s is the site in force. */
void relay_proxy__server_changed(relay_proxy_t *p, const relay_site_t *s, const relay_site_upstream_t *g,
                                 unsigned k);

/* response.c: everything that goes to the client. */
/* A response the relay makes itself, in the OpenAI error shape; the
 * connection closes after it. Works before any exchange began too. */
void relay_exchange__send_error(relay_exchange_t *ex, int status, const char *type, const char *code,
                                const char *message);
/* An error after routing: a cut if the response has begun, else the error. */
void relay_exchange__fail(relay_exchange_t *ex, int status, const char *type, const char *code, const char *message);
/* The site's own answer (route.local_*); keep-alive allowed. */
void relay_exchange__respond_local(relay_exchange_t *ex);
int relay_exchange__on_response_head(relay_exchange_t *ex, const llhttp_t *p);
int relay_exchange__on_response_body(relay_exchange_t *ex, relay_slab_t *s, const char *data, size_t len);
int relay_exchange__on_response_end(relay_exchange_t *ex, const llhttp_t *p);
/* The upstream cut the response after its head went out: what was made so
 * far goes out, then the visible cut. */
void relay_exchange__cut_response(relay_exchange_t *ex);
void relay_exchange__batch_begin(relay_exchange_t *ex);
void relay_exchange__batch_end(relay_exchange_t *ex);
int relay_exchange__send_down(relay_exchange_t *ex, relay_slab_t *slab, const char *data, size_t len);

#endif
