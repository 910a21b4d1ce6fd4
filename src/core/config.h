/* The configuration a script produces: where to listen, the named upstreams
 * (each with one or more servers and its health checks), the admin port,
 * limits and timeouts. Filled by the Lua layer, read-only once serving
 * starts. */
#ifndef RELAY_CONFIG_H
#define RELAY_CONFIG_H

#include <stddef.h>

#include "balancer.h"

#define RELAY_MAX_UPSTREAMS 32
#define RELAY_NAME_MAX 64
#define RELAY_HOST_MAX 256
/* Servers of one upstream (the balancer's limit). */
#define RELAY_MAX_SERVERS RELAY_BALANCER_MAX_SERVERS
#define RELAY_HEALTH_PATH_MAX 256
/* Defaults of the limits (relay.settings, and the stock script's env vars). */
#define RELAY_DEFAULT_MAX_HEADER (64 * 1024)
#define RELAY_DEFAULT_MAX_BODY (16 * 1024 * 1024)
#define RELAY_DEFAULT_SCRIPT_MEMORY ((size_t)256 * 1024 * 1024)
/* Active health checks: an upstream with several servers (or any upstream
 * while the admin port is on) is checked this often unless its
 * health_interval says otherwise (0 turns checks off). */
#define RELAY_DEFAULT_HEALTH_INTERVAL_MS 5000
#define RELAY_DEFAULT_HEALTH_TIMEOUT_MS 2000
#define RELAY_DEFAULT_HEALTH_PATH "/v1/models"
/* The longest passive back-off of a server no active check watches. */
#define RELAY_UNCHECKED_BACKOFF_MAX_MS 8000
/* health_interval not given: the default above applies where checks are
 * useful (see relay_config_health_interval). */
#define RELAY_HEALTH_INTERVAL_UNSET ((unsigned long)-1)

typedef struct relay_upstream_cfg_s {
  char name[RELAY_NAME_MAX];
  relay_server_addr_t servers[RELAY_MAX_SERVERS]; /* host without brackets; ipv6 says it needs them */
  unsigned nservers;
  char health_path[RELAY_HEALTH_PATH_MAX];
  unsigned long health_interval_ms; /* RELAY_HEALTH_INTERVAL_UNSET, 0 = off */
  unsigned long health_timeout_ms;  /* one whole check: connect, request, response */
} relay_upstream_cfg_t;

typedef struct relay_config_s {
  char listen_addr[RELAY_HOST_MAX];
  int listen_port;
  /* The admin listener (/healthz, /metrics): off while admin_port is 0. */
  char admin_addr[RELAY_HOST_MAX];
  int admin_port;
  relay_upstream_cfg_t upstreams[RELAY_MAX_UPSTREAMS];
  size_t nupstreams;
  /* Timeouts in milliseconds. */
  unsigned long connect_timeout_ms;
  unsigned long header_timeout_ms;
  unsigned long idle_timeout_ms;
  unsigned long body_timeout_ms;  /* between bytes of a request body */
  unsigned long send_timeout_ms;  /* without progress writing to a client that stopped reading */
  unsigned long keepalive_timeout_ms;
  unsigned long shutdown_timeout_ms;
  size_t max_header_size;
  size_t max_body_buffer; /* request bodies a route asks to see, and JSON bodies rewritten */
  int workers;            /* 0 = number of CPUs */
  /* Each Lua state: time per call from C into a script, bytes it may hold. */
  unsigned long script_timeout_ms;
  size_t script_memory;
} relay_config_t;

void relay_config_defaults(relay_config_t *cfg);
/* Index of the upstream called name, or -1. */
int relay_config_find_upstream(const relay_config_t *cfg, const char *name);
/* A new upstream's health settings at their defaults. */
void relay_config_upstream_defaults(relay_upstream_cfg_t *u);
/* How often the upstream is checked, in ms (0 = never): as set, else the
 * default for an upstream with several servers or while the admin port is
 * on (someone reads /healthz), else none, so that a plain one-server relay
 * sends its server nothing it was not asked to. */
unsigned long relay_config_health_interval(const relay_config_t *cfg, const relay_upstream_cfg_t *u);
/* "host:port", "[v6]:port": a server as logs and labels name it. */
void relay_config_server_name(const relay_server_addr_t *a, char *out, size_t len);
/* The Host field for a server: the port is left out when it is 80. */
void relay_config_host_field(const relay_server_addr_t *a, char *out, size_t len);

#endif
