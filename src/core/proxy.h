/* The proxy of one event loop: the server it answers on, the site in force,
 * the read slabs, and the loggers every finished exchange is reported to.
 * The application makes one per worker thread; nothing here is shared
 * between loops. */
#ifndef RELAY_CORE_PROXY_H
#define RELAY_CORE_PROXY_H

#include <llhttp.h>
#include <uv.h>

#include "exchange.h"
#include "server.h"
#include "site.h"
#include "slab.h"

#define RELAY_MAX_LOGGERS 4

/* Told of every exchange once, as it ends (the access log, metrics). */
typedef void (*relay_exchange_logger_t)(void *ud, const relay_exchange_t *ex);

typedef struct relay_proxy_s {
  uv_loop_t *loop;
  relay_slab_pool_t slabs;
  relay_server_t server;
  llhttp_settings_t resp_settings; /* shared by every upstream connection of the loop */
  relay_site_t *site;              /* in force for new requests; referenced */
  uint64_t next_exchange_id;
  unsigned worker; /* the worker's index (ids made per response mix it in) */
  size_t nupconns; /* open upstream connections, of every site still alive */
  struct {
    relay_exchange_logger_t fn;
    void *ud;
  } loggers[RELAY_MAX_LOGGERS];
  unsigned nloggers;
  /* Called whenever a connection (either side) is freed: the owner may be
   * waiting for the last one to end the loop. */
  void (*on_conn_freed)(void *data);
  void *data;
} relay_proxy_t;

/* Serve site (a reference is taken) on loop. 0 or RELAY_ENOMEM. */
int relay_proxy_init(relay_proxy_t *p, uv_loop_t *loop, relay_site_t *site);
/* A reload: new requests use site; exchanges in flight finish with theirs. */
int relay_proxy_set_site(relay_proxy_t *p, relay_site_t *site);
int relay_proxy_add_logger(relay_proxy_t *p, relay_exchange_logger_t fn, void *ud);
/* Accept on a bound socket. */
int relay_proxy_listen(relay_proxy_t *p, int fd);
/* Shutting down: no new connections, idle ones close, pools empty. */
void relay_proxy_drain(relay_proxy_t *p);
/* Past the deadline: every connection closes now. */
void relay_proxy_close_all(relay_proxy_t *p);
/* Open connections, both sides. */
size_t relay_proxy_open_connections(const relay_proxy_t *p);
/* After the loop has closed every handle. */
void relay_proxy_dispose(relay_proxy_t *p);

#endif
