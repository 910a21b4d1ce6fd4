/* The configuration a script produces: where to listen, the named upstreams,
 * limits and timeouts. Filled by lua_api.c, read-only once serving starts. */
#ifndef RELAY_CONFIG_H
#define RELAY_CONFIG_H

#include <stddef.h>

#define RELAY_MAX_UPSTREAMS 32
#define RELAY_NAME_MAX 64
#define RELAY_HOST_MAX 256
/* Defaults of the limits (relay.settings, and the stock script's env vars). */
#define RELAY_DEFAULT_MAX_HEADER (64 * 1024)
#define RELAY_DEFAULT_MAX_BODY (16 * 1024 * 1024)
#define RELAY_DEFAULT_SCRIPT_MEMORY ((size_t)256 * 1024 * 1024)

typedef struct relay_upstream_cfg_s {
  char name[RELAY_NAME_MAX];
  char host[RELAY_HOST_MAX];
  int port;
  char host_field[RELAY_HOST_MAX + 16]; /* the Host header value: host[:port], [v6]:port */
} relay_upstream_cfg_t;

typedef struct relay_config_s {
  char listen_addr[RELAY_HOST_MAX];
  int listen_port;
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

#endif
