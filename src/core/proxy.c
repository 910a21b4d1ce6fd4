/* The proxy of one loop: it installs a site (a peer per server of each
 * upstream, their balancers, the server's limits), answers the server's
 * callbacks with exchanges, applies active check results, and reports
 * finished exchanges to its loggers (the metrics among them). See proxy.h. */
#include "proxy.h"

#include <stdio.h>
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

static void on_open(relay_client_t *c) {
  relay_proxy_t *p = c->server->data;
  if (p->shared.metrics) relay_metrics_gauge_add(p->shared.metrics, RELAY_METRICS_CLIENT_CONNECTIONS, 1);
}

static void on_closed(relay_client_t *c) {
  relay_proxy_t *p = c->server->data;
  if (p->shared.metrics) relay_metrics_gauge_add(p->shared.metrics, RELAY_METRICS_CLIENT_CONNECTIONS, -1);
  if (c->data) {
    relay_exchange__dispose(c->data);
    free(c->data);
    c->data = NULL;
  }
  if (p->on_conn_freed) p->on_conn_freed(p->data);
}

static const relay_server_handler_t proxy_server_handler = {on_request, on_body,  on_body_end, on_tunnel_data,
                                                            on_drained, on_gone,  on_error,    on_closed,
                                                            on_open};

static void upstream_conn_freed(void *data) {
  relay_proxy_t *p = data;
  if (p->on_conn_freed) p->on_conn_freed(p->data);
}

/* ---- servers, their state, and what other threads see of it ---- */

/* This loop's view of one server goes to its metrics cell, where the admin
 * reads it for /healthz and server_up. Only the site in force speaks: a
 * retired site's exchanges finishing must not overwrite the current view. */
void relay_proxy__server_changed(relay_proxy_t *p, const relay_site_t *s, const relay_site_upstream_t *g,
                                 unsigned k) {
  if (!p->shared.metrics || s != p->site || g->slot < 0 || g->server_slot[k] < 0) return;
  relay_metrics_server_down_until(p->shared.metrics, (unsigned)g->slot, (unsigned)g->server_slot[k],
                                  relay_balancer_down_until(&g->balancer, k));
}

static void publish_site(relay_proxy_t *p) {
  for (size_t i = 0; i < RELAY_MAX_UPSTREAMS; i++) {
    relay_site_upstream_t *g = p->site->upstreams[i];
    if (!g) continue;
    for (unsigned k = 0; k < g->nservers; k++) relay_proxy__server_changed(p, p->site, g, k);
  }
}

/* A reload keeps what the loop learnt about servers it still has (same
 * upstream and server name, hence same slots): a server backing off or
 * failing its checks stays so, instead of costing each new site a connect.
 * The old site's outstanding requests stay its own. */
static void carry_health(relay_site_upstream_t *g, const relay_site_t *old) {
  if (!old || g->slot < 0) return;
  for (size_t i = 0; i < RELAY_MAX_UPSTREAMS; i++) {
    const relay_site_upstream_t *o = old->upstreams[i];
    if (!o || o->slot != g->slot) continue;
    for (unsigned k = 0; k < g->nservers; k++) {
      for (unsigned m = 0; m < o->nservers; m++) {
        if (g->server_slot[k] < 0 || o->server_slot[m] != g->server_slot[k]) continue;
        relay_balancer_server_t *to = &g->balancer.servers[k];
        const relay_balancer_server_t *from = &o->balancer.servers[m];
        to->failures = from->failures;
        to->retry_at = from->retry_at;
        to->active_out = from->active_out;
        g->health_seq[k] = o->health_seq[m];
      }
    }
    return;
  }
}

/* One upstream's servers on this loop: a pool and a Host field each, the
 * balancer, and the slots that name them in metrics and health results. */
static int install_upstream(relay_proxy_t *p, relay_site_t *s, size_t i, const relay_site_t *old) {
  const relay_config_t *cfg = &s->cfg;
  const relay_upstream_cfg_t *u = &cfg->upstreams[i];
  relay_upstream_opts_t opts = {cfg->connect_timeout_ms, cfg->idle_timeout_ms, cfg->header_timeout_ms,
                                cfg->keepalive_timeout_ms};
  relay_site_upstream_t *g = calloc(1, sizeof *g);
  if (!g) return RELAY_ENOMEM;
  s->upstreams[i] = g; /* from now on relay_site_unref frees it, whatever happens below */
  /* Active checks bring a server back as soon as it answers, so its passive
   * back-off may grow long; without them only a trial request does, and a
   * short cap keeps a restarted server from being shunned for a minute. */
  uint32_t cap = relay_config_health_interval(cfg, u) ? 0 : RELAY_UNCHECKED_BACKOFF_MAX_MS;
  if (relay_balancer_init(&g->balancer, u->nservers, 0, cap)) return RELAY_EINVAL;
  g->nservers = u->nservers;
  relay_metrics_slots_t *slots = p->shared.slots;
  g->slot = slots ? relay_metrics_slot_upstream(slots, u->name) : (i < RELAY_METRICS_MAX_UPSTREAMS ? (int)i : -1);
  if (g->slot < 0) relay_log_warn("upstream %s: no metrics or health slot left (too many upstream names)", u->name);
  for (unsigned k = 0; k < u->nservers; k++) {
    const relay_server_addr_t *a = &u->servers[k];
    char server[RELAY_HOST_MAX + 16], logname[RELAY_UPSTREAM_NAME_MAX];
    relay_config_server_name(a, server, sizeof server);
    /* Log lines name the upstream and the server: "default 10.0.0.2:8000". */
    if (u->nservers > 1) snprintf(logname, sizeof logname, "%.20s %.42s", u->name, server);
    else snprintf(logname, sizeof logname, "%s", u->name);
    relay_upstream_t *up = relay_upstream_new(p->loop, &p->slabs, &p->resp_settings, logname, a->host, a->port, &opts);
    if (!up) return RELAY_ENOMEM;
    up->open_conns = &p->nupconns;
    up->on_conn_freed = upstream_conn_freed;
    up->data = p;
    g->servers[k] = up;
    relay_config_host_field(a, g->host_field[k], sizeof g->host_field[k]);
    g->server_slot[k] = g->slot < 0 ? -1 : slots ? relay_metrics_slot_server(slots, (unsigned)g->slot, server) : (int)k;
  }
  carry_health(g, old);
  return 0;
}

/* Each configured upstream's servers, for this loop; the routes' metrics
 * slots; the server's limits. */
static int site_install(relay_proxy_t *p, relay_site_t *s, const relay_site_t *old) {
  const relay_config_t *cfg = &s->cfg;
  for (size_t i = 0; i < cfg->nupstreams; i++) {
    if (s->upstreams[i]) continue;
    int rc = install_upstream(p, s, i, old);
    if (rc) return rc;
  }
  for (size_t i = 0; i < s->nroutes; i++) {
    relay_static_route_t *r = &s->routes[i];
    char name[RELAY_ROUTE_NAME_MAX];
    relay_site_route_name(r, name, sizeof name);
    r->metrics_slot = p->shared.slots ? relay_metrics_slot_route(p->shared.slots, name)
                      : i < RELAY_METRICS_STATIC_ROUTES ? (unsigned)i : RELAY_METRICS_ROUTE_OTHER;
  }
  s->server_opts.max_header_size = cfg->max_header_size;
  s->server_opts.header_timeout_ms = cfg->header_timeout_ms;
  s->server_opts.body_timeout_ms = cfg->body_timeout_ms;
  s->server_opts.keepalive_timeout_ms = cfg->keepalive_timeout_ms;
  s->server_opts.send_timeout_ms = cfg->send_timeout_ms;
  return 0;
}

/* Results the admin thread posted and this loop has not applied: each goes
 * to the balancer of the site in force (force: all of them again, for a
 * site just installed). */
static void apply_health(relay_proxy_t *p, int force) {
  const relay_health_board_t *b = p->shared.health;
  if (!b) return;
  uint64_t gen = relay_health_gen(b);
  if (gen == p->health_gen && !force) return;
  p->health_gen = gen;
  for (size_t i = 0; i < RELAY_MAX_UPSTREAMS; i++) {
    relay_site_upstream_t *g = p->site->upstreams[i];
    if (!g || g->slot < 0) continue;
    for (unsigned k = 0; k < g->nservers; k++) {
      if (g->server_slot[k] < 0) continue;
      uint64_t cell = relay_health_cell(b, (unsigned)g->slot, (unsigned)g->server_slot[k]);
      if (cell == 0 || cell >> 1 == g->health_seq[k]) continue;
      g->health_seq[k] = cell >> 1;
      relay_balancer_checked(&g->balancer, k, (int)(cell & 1));
      relay_proxy__server_changed(p, p->site, g, k);
    }
  }
}

void relay_proxy_tick(relay_proxy_t *p) {
  if (p->shared.metrics) relay_metrics_heartbeat(p->shared.metrics, uv_now(p->loop));
  apply_health(p, 0);
}

/* ---- metrics, once per exchange ---- */

/* The exchange's counts go into this loop's cells: the request by route,
 * method class and status; bytes; upstream latencies; what the filters
 * counted; and the stream it may have held open. */
static void metrics_logger(void *ud, const relay_exchange_t *ex) {
  relay_proxy_t *p = ud;
  relay_metrics_t *m = p->shared.metrics;
  int bare = strcmp(ex->log_path, "-") == 0; /* no request line was parsed */
  const char *method = llhttp_method_name(ex->method);
  relay_metrics_method_t mc = bare ? RELAY_METRICS_OTHER_METHOD : relay_metrics_method_class(method, strlen(method));
  relay_metrics_request(m, ex->route.metrics_slot, mc, ex->status);
  relay_metrics_count(m, RELAY_METRICS_CLIENT_RECEIVED_BYTES, ex->bytes_in);
  relay_metrics_count(m, RELAY_METRICS_CLIENT_SENT_BYTES, ex->bytes_out);
  relay_filter_stats_t st = {0, 0, 0};
  if (ex->chain) relay_chain_stats(ex->chain, &st); /* the loggers run before the chain goes */
  relay_metrics_count(m, RELAY_METRICS_REWRITTEN_EVENTS, st.events_rewritten);
  relay_metrics_count(m, RELAY_METRICS_REASONING_BLOCKS, st.reasoning_blocks);
  relay_metrics_count(m, RELAY_METRICS_TOOL_CALLS, st.tool_calls);
  if (ex->stream_counted) relay_metrics_gauge_add(m, RELAY_METRICS_OPEN_STREAMS, -1);
  const relay_site_upstream_t *g =
      ex->site && ex->route.upstream_index < (int)ex->site->cfg.nupstreams ? ex->site->upstreams[ex->route.upstream_index]
                                                                          : NULL;
  if (!ex->t_upstream || !g || g->slot < 0) return;
  relay_metrics_upstream_bytes(m, (unsigned)g->slot, ex->up_body_out, ex->up_body_in);
  if (!ex->t_first_byte) return;
  relay_metrics_observe(m, RELAY_METRICS_TTFB, (unsigned)g->slot, (ex->t_first_byte - ex->t_upstream) / 1000);
  relay_metrics_observe(m, RELAY_METRICS_DURATION, (unsigned)g->slot, (uv_hrtime() - ex->t_upstream) / 1000);
}

int relay_proxy_init(relay_proxy_t *p, uv_loop_t *loop, relay_site_t *site, const relay_proxy_shared_t *shared) {
  memset(p, 0, sizeof *p);
  p->loop = loop;
  if (shared) p->shared = *shared;
  relay_slab_pool_init(&p->slabs);
  relay_upstream_settings_init(&p->resp_settings);
  if (site_install(p, site, NULL)) return RELAY_ENOMEM;
  relay_site_ref(site);
  p->site = site;
  relay_server_init(&p->server, loop, &p->slabs, &site->server_opts, &proxy_server_handler, p);
  if (p->shared.metrics) {
    relay_proxy_add_logger(p, metrics_logger, p);
    relay_metrics_heartbeat(p->shared.metrics, uv_now(loop));
  }
  apply_health(p, 1);
  publish_site(p);
  return 0;
}

/* The old site stays alive while exchanges routed with it run; its peers
 * pool nothing from now on (relay_site_unref retires them). */
int relay_proxy_set_site(relay_proxy_t *p, relay_site_t *site) {
  if (site_install(p, site, p->site)) return RELAY_ENOMEM;
  relay_site_ref(site);
  relay_site_t *old = p->site;
  p->site = site;
  p->server.opts = &site->server_opts;
  relay_site_unref(old);
  apply_health(p, 1);
  publish_site(p);
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
    relay_site_upstream_t *g = p->site->upstreams[i];
    if (!g) continue;
    for (unsigned k = 0; k < g->nservers; k++) {
      relay_upstream_t *up = g->servers[k];
      if (!up) continue;
      if (retire) relay_upstream_retire(up);
      else relay_upstream_close_idle(up);
    }
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
