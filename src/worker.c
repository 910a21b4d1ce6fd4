/* A worker: one event loop with its own script state, accepting on a shared
 * port. Shutdown and reload arrive from the main thread through an async
 * handle; nothing mutable is shared between workers. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxy.h"
#include "script.h"

void relay_server_init_settings(llhttp_settings_t *s);

static void worker_close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void worker_walk_close(uv_handle_t *h, void *arg) { worker_close_handle(h); }

/* Past the deadline every connection goes, finished or not. */
static void shutdown_deadline_cb(uv_timer_t *t) {
  relay_worker_t *w = t->data;
  relay_log_warn("worker %d: shutdown deadline reached; closing %zu connection(s)", w->index, w->nclients);
  relay_list_t *l = w->clients.next;
  while (l != &w->clients) {
    relay_client_t *c = relay_container_of(l, relay_client_t, link);
    l = l->next;
    relay_client_close(c);
  }
  relay_upstream_close_pool(w);
}

void relay_worker_begin_shutdown(relay_worker_t *w) {
  if (w->shutting_down) return;
  w->shutting_down = 1;
  relay_server_stop_accepting(w);
  relay_server_close_idle(w);
  relay_upstream_close_pool(w);
  /* Cannot fail: an initialised timer and a callback. */
  uv_timer_start(&w->shutdown_timer, shutdown_deadline_cb, w->cfg->shutdown_timeout_ms, 0);
  relay_worker_maybe_finish(w);
}

/* The loop ends by itself once its last handle is closed. */
void relay_worker_maybe_finish(relay_worker_t *w) {
  if (!w->shutting_down || w->nclients > 0) return;
  relay_upstream_close_pool(w);
  if (w->nupconns > 0) return;
  worker_close_handle((uv_handle_t *)&w->shutdown_timer);
  worker_close_handle((uv_handle_t *)&w->wakeup);
}

/* A new script replaces the running one only once it has loaded: a script
 * with an error keeps the old one serving. Pooled connections go, since the
 * upstream table may have changed. */
static void worker_reload(relay_worker_t *w) {
  char err[1024];
  relay_script_t *s = relay_script_new(w->script_path, err, sizeof err);
  if (!s) {
    relay_log_error("worker %d: reload failed, keeping the running script: %s", w->index, err);
    return;
  }
  relay_upstream_close_pool(w);
  relay_script_t *old = w->script;
  w->script = s;
  w->cfg = &s->cfg;
  w->generation++;
  relay_script_unref(old);
  relay_log_info("worker %d: script reloaded (%s)", w->index, w->script_path ? w->script_path : "stock");
}

static void worker_wakeup_cb(uv_async_t *a) {
  relay_worker_t *w = a->data;
  if (__atomic_exchange_n(&w->reload_requested, 0, __ATOMIC_ACQ_REL) && !w->shutting_down) worker_reload(w);
  if (__atomic_load_n(&w->shutdown_requested, __ATOMIC_ACQUIRE)) relay_worker_begin_shutdown(w);
}

void relay_workers_signal(relay_worker_t *ws, int n, int reload) {
  for (int i = 0; i < n; i++) {
    if (reload) __atomic_store_n(&ws[i].reload_requested, 1, __ATOMIC_RELEASE);
    else __atomic_store_n(&ws[i].shutdown_requested, 1, __ATOMIC_RELEASE);
    uv_async_send(&ws[i].wakeup);
  }
}

int relay_worker_init(relay_worker_t *w, int index, struct relay_script_s *script, const char *script_path) {
  memset(w, 0, sizeof *w);
  int rc = uv_loop_init(&w->loop);
  if (rc) return rc;
  w->index = index;
  w->script = script;
  w->cfg = &script->cfg;
  w->script_path = script_path;
  rc = uv_async_init(&w->loop, &w->wakeup, worker_wakeup_cb); /* an eventfd: may hit EMFILE */
  if (rc) {
    uv_loop_close(&w->loop);
    return rc;
  }
  w->wakeup.data = w;
  relay_slab_pool_init(&w->slabs);
  for (size_t i = 0; i < RELAY_MAX_UPSTREAMS; i++) relay_list_init(&w->pools[i].idle);
  relay_list_init(&w->clients);
  relay_server_init_settings(&w->req_settings);
  relay_upstream_init_settings(&w->resp_settings);
  uv_timer_init(&w->loop, &w->shutdown_timer);
  w->shutdown_timer.data = w;
  return 0;
}

void relay_worker_close(relay_worker_t *w) {
  uv_walk(&w->loop, worker_walk_close, NULL);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  uv_loop_close(&w->loop);
  relay_slab_pool_close(&w->slabs);
  relay_script_unref(w->script);
  w->script = NULL;
}
