/* The proxy of one event loop: the server it answers on, the site in force,
 * the read slabs, and the loggers every finished exchange is reported to.
 * The application makes one per worker thread; nothing here is shared
 * between loops. */
#ifndef RELAY_CORE_PROXY_H
#define RELAY_CORE_PROXY_H

#include <llhttp.h>
#include <uv.h>

#include "exchange.h"
#include "health.h"
#include "metrics.h"
#include "server.h"
#include "site.h"
#include "slab.h"

#define RELAY_MAX_LOGGERS 4

/* Told of every exchange once, as it ends (the access log, metrics). */
typedef void (*relay_exchange_logger_t)(void *ud, const relay_exchange_t *ex);

/* What the loops of one process share; each part is optional. Only the
 * admin thread reads a loop's metrics, and only the admin thread writes the
 * health board; a loop reads the board's generation on a timer, never per
 * request. */
typedef struct relay_proxy_shared_s {
  relay_metrics_t *metrics;           /* this loop's cells, or NULL: metrics off, nothing counted */
  relay_metrics_slots_t *slots;       /* names to slots, or NULL: slots in configuration order */
  const relay_health_board_t *health; /* active check results, or NULL: passive health only */
} relay_proxy_shared_t;

typedef struct relay_proxy_s {
  uv_loop_t *loop;
  relay_proxy_shared_t shared;
  uint64_t health_gen; /* the board's generation last applied */
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

/* Serve site (a reference is taken) on loop; shared may be NULL. 0 or
 * RELAY_ENOMEM. */
int relay_proxy_init(relay_proxy_t *p, uv_loop_t *loop, relay_site_t *site, const relay_proxy_shared_t *shared);
/* A reload: new requests use site; exchanges in flight finish with theirs. */
int relay_proxy_set_site(relay_proxy_t *p, relay_site_t *site);
int relay_proxy_add_logger(relay_proxy_t *p, relay_exchange_logger_t fn, void *ud);
/* Call from a timer, a few times a second: applies the active check results
 * posted since the last call to the balancers of the site in force, and
 * marks the loop alive (its heartbeat, for /healthz). */
void relay_proxy_tick(relay_proxy_t *p);
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
