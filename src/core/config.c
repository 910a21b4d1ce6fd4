#include "config.h"

#include <stdio.h>
#include <string.h>

/* Defaults suit LLM servers: a model may think for minutes before its first
 * byte, so the idle timeout is generous while connect stays short. */
void relay_config_defaults(relay_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  strcpy(cfg->listen_addr, "0.0.0.0");
  cfg->listen_port = 8080;
  /* Loopback unless said otherwise: metrics name routes and servers. */
  strcpy(cfg->admin_addr, "127.0.0.1");
  cfg->admin_port = 0;
  cfg->connect_timeout_ms = 10 * 1000;
  cfg->header_timeout_ms = 30 * 1000;
  cfg->idle_timeout_ms = 600 * 1000;
  cfg->body_timeout_ms = 60 * 1000;
  cfg->send_timeout_ms = 60 * 1000;
  cfg->keepalive_timeout_ms = 75 * 1000;
  cfg->shutdown_timeout_ms = 30 * 1000;
  cfg->max_header_size = RELAY_DEFAULT_MAX_HEADER;
  cfg->max_body_buffer = RELAY_DEFAULT_MAX_BODY;
  cfg->workers = 0;
  /* A hook runs per request or per event: a second is far beyond any sane
   * one, and short enough that a stuck worker comes back before clients and
   * SIGTERM give up. 256 MiB holds a whole max_body_buffer body decoded by
   * cjson several times over; it is a cap, not a reservation. */
  cfg->script_timeout_ms = 1000;
  cfg->script_memory = RELAY_DEFAULT_SCRIPT_MEMORY;
}

int relay_config_find_upstream(const relay_config_t *cfg, const char *name) {
  for (size_t i = 0; i < cfg->nupstreams; i++)
    if (strcmp(cfg->upstreams[i].name, name) == 0) return (int)i;
  return -1;
}

void relay_config_upstream_defaults(relay_upstream_cfg_t *u) {
  strcpy(u->health_path, RELAY_DEFAULT_HEALTH_PATH);
  u->health_interval_ms = RELAY_HEALTH_INTERVAL_UNSET;
  u->health_timeout_ms = RELAY_DEFAULT_HEALTH_TIMEOUT_MS;
}

unsigned long relay_config_health_interval(const relay_config_t *cfg, const relay_upstream_cfg_t *u) {
  if (u->health_interval_ms != RELAY_HEALTH_INTERVAL_UNSET) return u->health_interval_ms;
  return u->nservers > 1 || cfg->admin_port > 0 ? RELAY_DEFAULT_HEALTH_INTERVAL_MS : 0;
}

void relay_config_server_name(const relay_server_addr_t *a, char *out, size_t len) {
  snprintf(out, len, a->ipv6 ? "[%s]:%d" : "%s:%d", a->host, a->port);
}

void relay_config_host_field(const relay_server_addr_t *a, char *out, size_t len) {
  if (a->port == 80) snprintf(out, len, a->ipv6 ? "[%s]" : "%s", a->host);
  else relay_config_server_name(a, out, len);
}
