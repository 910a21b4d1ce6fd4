/* The proxy of one loop: it installs a site (a peer per upstream, the
 * server's limits), answers the server's callbacks with exchanges, and
 * reports finished exchanges to its loggers. See proxy.h. */
#include "proxy.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"

/* The exchange of a connection, made on its first request (an idle
 * connection holds none). NULL when out of memory. */
static relay_exchange_t *client_exchange(relay_client_t *c) {
  if (!c->data) {
    relay_exchange_t *ex = malloc(sizeof *ex);
    if (!ex) return NULL;
    relay_exchange__init(ex, c->server->data, c);
    c->data = ex;
  }
  return c->data;
}

static void on_request(relay_client_t *c) {
  relay_exchange_t *ex = client_exchange(c);
  if (!ex) {
    relay_client_close(c);
    return;
  }
  relay_exchange__begin(ex);
}

static int on_body(relay_client_t *c, relay_slab_t *s, const char *data, size_t len) {
  return relay_exchange__on_request_body(c->data, s, data, len);
}

static void on_body_end(relay_client_t *c) { relay_exchange__on_request_complete(c->data); }

static void on_tunnel_data(relay_client_t *c, relay_slab_t *s, const char *data, size_t len) {
  relay_exchange__on_tunnel_data(c->data, s, data, len);
}

static void on_drained(relay_client_t *c) { relay_exchange__on_client_drained(c->data); }

static void on_gone(relay_client_t *c) {
  if (c->data) relay_exchange__on_client_gone(c->data);
}

/* The server could not go on with a request: an error of the relay's own,
 * or a cut when the response has begun. */
static void on_error(relay_client_t *c, int status, const char *code, const char *message) {
  relay_exchange_t *ex = client_exchange(c);
  if (!ex) {
    relay_client_close(c);
    return;
  }
  if (ex->state == RELAY_EX_IDLE || ex->state == RELAY_EX_DONE)
    relay_exchange__send_error(ex, status, "invalid_request_error", code, message);
  else
    relay_exchange__fail(ex, status, "invalid_request_error", code, message);
}

static void on_closed(relay_client_t *c) {
  relay_proxy_t *p = c->server->data;
  if (c->data) {
    relay_exchange__dispose(c->data);
    free(c->data);
    c->data = NULL;
  }
  if (p->on_conn_freed) p->on_conn_freed(p->data);
}

static const relay_server_handler_t proxy_server_handler = {on_request, on_body,  on_body_end, on_tunnel_data,
                                                            on_drained, on_gone,  on_error,    on_closed};

static void upstream_conn_freed(void *data) {
  relay_proxy_t *p = data;
  if (p->on_conn_freed) p->on_conn_freed(p->data);
}

/* A peer per configured upstream, for this loop, and the server's limits. */
static int site_install(relay_proxy_t *p, relay_site_t *s) {
  const relay_config_t *cfg = &s->cfg;
  relay_upstream_opts_t opts = {cfg->connect_timeout_ms, cfg->idle_timeout_ms, cfg->header_timeout_ms,
                                cfg->keepalive_timeout_ms};
  for (size_t i = 0; i < cfg->nupstreams; i++) {
    if (s->upstreams[i]) continue;
    const relay_upstream_cfg_t *u = &cfg->upstreams[i];
    relay_upstream_t *up =
        relay_upstream_new(p->loop, &p->slabs, &p->resp_settings, u->name, u->host, u->port, &opts);
    if (!up) return RELAY_ENOMEM;
    up->open_conns = &p->nupconns;
    up->on_conn_freed = upstream_conn_freed;
    up->data = p;
    s->upstreams[i] = up;
  }
  s->server_opts.max_header_size = cfg->max_header_size;
  s->server_opts.header_timeout_ms = cfg->header_timeout_ms;
  s->server_opts.body_timeout_ms = cfg->body_timeout_ms;
  s->server_opts.keepalive_timeout_ms = cfg->keepalive_timeout_ms;
  s->server_opts.send_timeout_ms = cfg->send_timeout_ms;
  return 0;
}

int relay_proxy_init(relay_proxy_t *p, uv_loop_t *loop, relay_site_t *site) {
  memset(p, 0, sizeof *p);
  p->loop = loop;
  relay_slab_pool_init(&p->slabs);
  relay_upstream_settings_init(&p->resp_settings);
  if (site_install(p, site)) return RELAY_ENOMEM;
  relay_site_ref(site);
  p->site = site;
  relay_server_init(&p->server, loop, &p->slabs, &site->server_opts, &proxy_server_handler, p);
  return 0;
}

/* The old site stays alive while exchanges routed with it run; its peers
 * pool nothing from now on (relay_site_unref retires them). */
int relay_proxy_set_site(relay_proxy_t *p, relay_site_t *site) {
  if (site_install(p, site)) return RELAY_ENOMEM;
  relay_site_ref(site);
  relay_site_t *old = p->site;
  p->site = site;
  p->server.opts = &site->server_opts;
  relay_site_unref(old);
  return 0;
}

int relay_proxy_add_logger(relay_proxy_t *p, relay_exchange_logger_t fn, void *ud) {
  if (p->nloggers == RELAY_MAX_LOGGERS) return RELAY_ETOOMANY;
  p->loggers[p->nloggers].fn = fn;
  p->loggers[p->nloggers].ud = ud;
  p->nloggers++;
  return 0;
}

int relay_proxy_listen(relay_proxy_t *p, int fd) { return relay_server_listen(&p->server, fd); }

static void close_idle_upstreams(relay_proxy_t *p, int retire) {
  for (size_t i = 0; i < RELAY_MAX_UPSTREAMS; i++) {
    relay_upstream_t *up = p->site->upstreams[i];
    if (!up) continue;
    if (retire) relay_upstream_retire(up);
    else relay_upstream_close_idle(up);
  }
}

void relay_proxy_drain(relay_proxy_t *p) {
  relay_server_stop_accepting(&p->server);
  relay_server_drain(&p->server);
  close_idle_upstreams(p, 1);
}

void relay_proxy_close_all(relay_proxy_t *p) {
  relay_server_close_all(&p->server);
  close_idle_upstreams(p, 1);
}

size_t relay_proxy_open_connections(const relay_proxy_t *p) { return p->server.nclients + p->nupconns; }

void relay_proxy_dispose(relay_proxy_t *p) {
  relay_site_unref(p->site);
  p->site = NULL;
  relay_slab_pool_dispose(&p->slabs);
}
