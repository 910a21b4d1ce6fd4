/* A worker: one event loop, its own script and proxy, accepting on a shared
 * port (SO_REUSEPORT). The main thread asks for a reload or a shutdown
 * through an async handle; nothing mutable is shared between workers. */
#ifndef RELAY_APP_WORKER_H
#define RELAY_APP_WORKER_H

#include <uv.h>

#include "proxy.h"
#include "script.h"

typedef struct relay_worker_s {
  uv_loop_t loop;
  int index;
  relay_script_t *script;   /* in force; the proxy holds its site */
  const char *script_path;  /* NULL = the stock script */
  relay_proxy_t proxy;
  uv_async_t wakeup;        /* from the main thread: shutdown, reload */
  int shutdown_requested;   /* set by the main thread, read on wakeup */
  int reload_requested;
  uv_timer_t shutdown_timer;
  uv_timer_t health_timer;  /* applies the admin thread's check results */
  int shutting_down;
} relay_worker_t;

/* A worker serving script (its reference passes to the worker), with what
 * it shares with the other threads (its metrics cells, the slots, the
 * health board; see relay_proxy_shared_t). */
int relay_worker_init(relay_worker_t *w, int index, relay_script_t *script, const char *script_path,
                      const relay_proxy_shared_t *shared);
/* Accept on a bound socket. */
int relay_worker_listen(relay_worker_t *w, int fd);
/* Main thread: ask every worker to stop, or to reload its script. */
void relay_workers_signal(relay_worker_t *ws, int n, int reload);
/* After the loop returned: close what is left and free. */
void relay_worker_dispose(relay_worker_t *w);

#endif
