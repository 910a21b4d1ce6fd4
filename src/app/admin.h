/* The admin thread: one event loop of its own, beside the workers, that
 *   - runs the active health checks of every upstream (one check per server
 *     per interval for the whole process, not one per worker) and posts
 *     each result to the workers through the health board;
 *   - serves the admin listener, when configured: GET /healthz and GET
 *     /metrics (the workers' metrics summed at scrape time).
 * It reads the workers' metrics cells and nothing else of theirs: its own
 * copy of the configuration (reloaded from the script on SIGHUP, never read
 * from a worker's live script) names upstreams, servers and checks. A slow
 * scrape, a slow check or a script reload here never stalls a worker. */
#ifndef RELAY_APP_ADMIN_H
#define RELAY_APP_ADMIN_H

#include <stddef.h>

#include "config.h"
#include "health.h"
#include "metrics.h"

typedef struct relay_admin_s relay_admin_t;

typedef struct relay_admin_opts_s {
  const char *script_path;       /* NULL = the stock script; read again on reload */
  const relay_config_t *cfg;     /* the configuration at start (copied) */
  relay_metrics_t *const *metrics; /* one per worker, or NULL when the admin listener is off */
  size_t nworkers;
  relay_metrics_slots_t *slots;
  relay_health_board_t *board;
  int listen_fd; /* the admin listener, bound (relay_admin_bind), or -1 */
} relay_admin_opts_t;

/* Bind the admin listener of cfg (admin_addr:admin_port); a bound socket,
 * or -1 with a message in err. Start-up fails on it, like the proxy port. */
int relay_admin_bind(const relay_config_t *cfg, char *err, size_t errlen);
/* Ready to run: NULL with a message on error. */
relay_admin_t *relay_admin_new(const relay_admin_opts_t *o, char *err, size_t errlen);
int relay_admin_start(relay_admin_t *a);
/* From the main thread: load the script again (checks follow the new
 * servers); the relay is stopping (/healthz answers 503). */
void relay_admin_reload(relay_admin_t *a);
void relay_admin_draining(relay_admin_t *a);
/* From the main thread, after the workers ended: stop, join and free. */
void relay_admin_stop(relay_admin_t *a);

#endif
