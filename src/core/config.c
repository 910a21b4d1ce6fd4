#include "config.h"

#include <string.h>

/* Defaults suit LLM servers: a model may think for minutes before its first
 * byte, so the idle timeout is generous while connect stays short. */
void relay_config_defaults(relay_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  strcpy(cfg->listen_addr, "0.0.0.0");
  cfg->listen_port = 8080;
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
