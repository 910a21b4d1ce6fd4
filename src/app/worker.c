/* Workers: a loop, a script and a proxy each; reload and graceful shutdown.
 * See worker.h. */
#include "worker.h"

#include <stdlib.h>
#include <string.h>

#include "access_log.h"
#include "log.h"

static void worker_close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void worker_walk_close(uv_handle_t *h, void *arg) { worker_close_handle(h); }

/* The loop ends by itself once its last handle is closed: after shutdown
 * began and the last connection (either side) went. */
static void worker_maybe_finish(void *data) {
  relay_worker_t *w = data;
  if (!w->shutting_down || relay_proxy_open_connections(&w->proxy) > 0) return;
  worker_close_handle((uv_handle_t *)&w->shutdown_timer);
  worker_close_handle((uv_handle_t *)&w->health_timer);
  worker_close_handle((uv_handle_t *)&w->wakeup);
}

/* How often a worker looks at the health board (one atomic load when
 * nothing was posted; checks run every few seconds, a result is applied
 * within this) and marks itself alive for /healthz. */
#define WORKER_HEALTH_POLL_MS 200

static void health_poll_cb(uv_timer_t *t) {
  relay_worker_t *w = t->data;
  relay_proxy_tick(&w->proxy);
}

/* Past the deadline every connection goes, finished or not. */
static void shutdown_deadline_cb(uv_timer_t *t) {
  relay_worker_t *w = t->data;
  relay_log_warn("worker %d: shutdown deadline reached; closing %zu connection(s)", w->index,
                 relay_proxy_open_connections(&w->proxy));
  relay_proxy_close_all(&w->proxy);
}

static void worker_begin_shutdown(relay_worker_t *w) {
  if (w->shutting_down) return;
  w->shutting_down = 1;
  relay_proxy_drain(&w->proxy);
  /* Cannot fail: an initialised timer and a callback. */
  uv_timer_start(&w->shutdown_timer, shutdown_deadline_cb, w->script->site.cfg.shutdown_timeout_ms, 0);
  worker_maybe_finish(w);
}

/* A new script replaces the running one only once it has loaded: a script
 * with an error keeps the old one serving. Exchanges in flight finish with
 * the site they were routed with. */
static void worker_reload(relay_worker_t *w) {
  char err[1024];
  relay_script_t *s = relay_script_new(w->script_path, err, sizeof err);
  if (!s) {
    relay_log_error("worker %d: reload failed, keeping the running script: %s", w->index, err);
    return;
  }
  if (relay_proxy_set_site(&w->proxy, &s->site)) {
    relay_log_error("worker %d: reload failed, keeping the running script: out of memory", w->index);
    relay_site_unref(&s->site);
    return;
  }
  relay_site_unref(&s->site); /* the proxy holds it now */
  w->script = s;
  relay_log_info("worker %d: script reloaded (%s)", w->index, w->script_path ? w->script_path : "stock");
}

static void worker_wakeup_cb(uv_async_t *a) {
  relay_worker_t *w = a->data;
  if (__atomic_exchange_n(&w->reload_requested, 0, __ATOMIC_ACQ_REL) && !w->shutting_down) worker_reload(w);
  if (__atomic_load_n(&w->shutdown_requested, __ATOMIC_ACQUIRE)) worker_begin_shutdown(w);
}

void relay_workers_signal(relay_worker_t *ws, int n, int reload) {
  for (int i = 0; i < n; i++) {
    if (reload) __atomic_store_n(&ws[i].reload_requested, 1, __ATOMIC_RELEASE);
    else __atomic_store_n(&ws[i].shutdown_requested, 1, __ATOMIC_RELEASE);
    uv_async_send(&ws[i].wakeup);
  }
}

int relay_worker_init(relay_worker_t *w, int index, relay_script_t *script, const char *script_path,
                      const relay_proxy_shared_t *shared) {
  memset(w, 0, sizeof *w);
  int rc = uv_loop_init(&w->loop);
  if (rc) return rc;
  w->index = index;
  w->script = script;
  w->script_path = script_path;
  rc = uv_async_init(&w->loop, &w->wakeup, worker_wakeup_cb); /* an eventfd: may hit EMFILE */
  if (rc) {
    uv_loop_close(&w->loop);
    return rc;
  }
  w->wakeup.data = w;
  uv_timer_init(&w->loop, &w->shutdown_timer);
  w->shutdown_timer.data = w;
  uv_timer_init(&w->loop, &w->health_timer);
  w->health_timer.data = w;
  rc = relay_proxy_init(&w->proxy, &w->loop, &script->site, shared);
  if (rc) return rc;
  if (shared && (shared->health || shared->metrics)) {
    uv_timer_start(&w->health_timer, health_poll_cb, WORKER_HEALTH_POLL_MS, WORKER_HEALTH_POLL_MS);
    uv_unref((uv_handle_t *)&w->health_timer); /* never what keeps the loop alive */
  }
  relay_site_unref(&script->site); /* the proxy holds it now */
  w->proxy.worker = (unsigned)index;
  w->proxy.on_conn_freed = worker_maybe_finish;
  w->proxy.data = w;
  relay_proxy_add_logger(&w->proxy, relay_access_log, NULL);
  return 0;
}

int relay_worker_listen(relay_worker_t *w, int fd) { return relay_proxy_listen(&w->proxy, fd); }

void relay_worker_dispose(relay_worker_t *w) {
  uv_walk(&w->loop, worker_walk_close, NULL);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  uv_loop_close(&w->loop);
  relay_proxy_dispose(&w->proxy);
  w->script = NULL;
}
