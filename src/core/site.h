/* A site: one loaded configuration as the core serves it — the settings, the
 * named upstreams (and, once installed on a loop, a peer per server with
 * its keep-alive pool and the balancer that chooses between them), and the
 * routes.
 * A script layer fills it and hands down, in ops, what only it can do:
 * run a request hook, let go of per-exchange state, free itself. A reload
 * makes a new site; exchanges routed with the old one keep a reference and
 * finish with it. */
#ifndef RELAY_CORE_SITE_H
#define RELAY_CORE_SITE_H

#include <stddef.h>

#include "balancer.h"
#include "client.h"
#include "server.h"
#include "config.h"
#include "filter.h"
#include "frontend.h"

#define RELAY_MAX_ROUTES 64
/* Filters one route may name. */
#define RELAY_ROUTE_MAX_FILTERS 4
#define RELAY_ROUTE_METHOD_MAX 16
#define RELAY_ROUTE_PATH_MAX 256

struct relay_exchange_s;
typedef struct relay_site_s relay_site_t;

/* A route declared once and matched in C, with no script call per request. */
typedef struct relay_static_route_s {
  char method[RELAY_ROUTE_METHOD_MAX]; /* "" = any */
  char path[RELAY_ROUTE_PATH_MAX];     /* exact path, or a prefix when it ends in '*' */
  int upstream_index;                  /* -1 = the default (first) upstream */
  relay_filter_spec_t filters[RELAY_ROUTE_MAX_FILTERS];
  unsigned nfilters;
  relay_frontend_spec_t frontend; /* type NULL: the client speaks the upstream's protocol */
  int hook;            /* this route's request hook (an id of the site's), or 0 */
  int hook_wants_body; /* the hook reads the whole request body */
  unsigned metrics_slot; /* set when the site is installed */
} relay_static_route_t;

/* Room for a route's name in labels: "POST /v1/chat/completions". */
#define RELAY_ROUTE_NAME_MAX (RELAY_ROUTE_METHOD_MAX + RELAY_ROUTE_PATH_MAX + 2)

/* One configured upstream on one loop: a peer (pool) per server, the
 * balancer, and where its servers sit in the process-wide slots (metrics,
 * health results). Owned by the site, made when the site is installed. */
typedef struct relay_site_upstream_s {
  unsigned nservers;
  relay_upstream_t *servers[RELAY_MAX_SERVERS];
  char host_field[RELAY_MAX_SERVERS][RELAY_HOST_MAX + 16]; /* the Host header for each server */
  relay_balancer_t balancer;
  int slot;                            /* the upstream's slot, or -1 (none left) */
  int server_slot[RELAY_MAX_SERVERS];  /* each server's slot, or -1 */
  uint64_t health_seq[RELAY_MAX_SERVERS]; /* the last active check result applied */
} relay_site_upstream_t;

typedef struct relay_site_ops_s {
  /* Run the exchange's request hook (ex->route.hook): it may edit the route,
   * answer locally or fail. with_body: the body is in ex->req_body. Returns
   * 0, or a negative error with a message in err. */
  int (*run_hook)(relay_site_t *s, struct relay_exchange_s *ex, int with_body, char *err, size_t errlen);
  /* The exchange is over: the site's per-exchange state goes (after any
   * end hook it runs). */
  void (*exchange_end)(relay_site_t *s, struct relay_exchange_s *ex);
  /* The last reference went. */
  void (*dispose)(relay_site_t *s);
} relay_site_ops_t;

struct relay_site_s {
  const relay_site_ops_t *ops;
  unsigned refs;
  relay_config_t cfg;
  relay_static_route_t routes[RELAY_MAX_ROUTES];
  size_t nroutes;
  int hook;            /* the request hook of requests no route names, or 0 */
  int hook_wants_body;
  /* Per loop, once installed: each configured upstream's servers. */
  relay_site_upstream_t *upstreams[RELAY_MAX_UPSTREAMS];
  relay_server_opts_t server_opts;
};

/* An empty site with the default configuration and one reference. */
void relay_site_init(relay_site_t *s, const relay_site_ops_t *ops);
void relay_site_ref(relay_site_t *s);
/* The last unref retires the site's upstreams and calls ops->dispose. */
void relay_site_unref(relay_site_t *s);
/* Release what the routes hold (filter and front-end options); the script
 * layer calls it from its dispose. */
void relay_site_release_routes(relay_site_t *s);
/* "METHOD path", or the path alone for a route of any method. */
void relay_site_route_name(const relay_static_route_t *r, char *out, size_t len);
/* The first route matching method and path, or NULL. */
const relay_static_route_t *relay_site_match(const relay_site_t *s, const char *method, const char *path,
                                             size_t path_len);

#endif
