/* Sites: reference counting and route matching. See site.h. */
#include "site.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void relay_site_init(relay_site_t *s, const relay_site_ops_t *ops) {
  memset(s, 0, sizeof *s);
  s->ops = ops;
  s->refs = 1;
  relay_config_defaults(&s->cfg);
}

void relay_site_ref(relay_site_t *s) { s->refs++; }

/* The upstreams of a site that nobody routes with any more pool nothing:
 * their idle connections close now, busy ones when their exchange ends. */
void relay_site_unref(relay_site_t *s) {
  if (!s || --s->refs > 0) return;
  for (size_t i = 0; i < RELAY_MAX_UPSTREAMS; i++) {
    relay_site_upstream_t *g = s->upstreams[i];
    if (!g) continue;
    for (unsigned k = 0; k < g->nservers; k++) {
      if (!g->servers[k]) continue;
      relay_upstream_retire(g->servers[k]);
      relay_upstream_unref(g->servers[k]);
    }
    free(g);
    s->upstreams[i] = NULL;
  }
  s->ops->dispose(s);
}

void relay_site_release_routes(relay_site_t *s) {
  for (size_t i = 0; i < s->nroutes; i++) {
    relay_static_route_t *r = &s->routes[i];
    for (unsigned k = 0; k < r->nfilters; k++)
      if (r->filters[k].type->opts_unref) r->filters[k].type->opts_unref(r->filters[k].opts);
    r->nfilters = 0;
    if (r->frontend.type && r->frontend.type->opts_unref) r->frontend.type->opts_unref(r->frontend.opts);
    r->frontend.type = NULL;
  }
  s->nroutes = 0;
}

void relay_site_route_name(const relay_static_route_t *r, char *out, size_t len) {
  if (r->method[0]) snprintf(out, len, "%s %s", r->method, r->path);
  else snprintf(out, len, "%s", r->path);
}

static int path_matches(const char *pattern, const char *path, size_t len) {
  size_t plen = strlen(pattern);
  if (plen && pattern[plen - 1] == '*') return len >= plen - 1 && memcmp(pattern, path, plen - 1) == 0;
  return len == plen && memcmp(pattern, path, len) == 0;
}

const relay_static_route_t *relay_site_match(const relay_site_t *s, const char *method, const char *path,
                                             size_t path_len) {
  for (size_t i = 0; i < s->nroutes; i++) {
    const relay_static_route_t *r = &s->routes[i];
    if (r->method[0] && strcmp(r->method, method) != 0) continue;
    if (path_matches(r->path, path, path_len)) return r;
  }
  return NULL;
}
