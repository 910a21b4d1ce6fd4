/* access method=POST path=/v1/chat/completions status=200 bytes_in=… bytes_out=…
 * duration_ms=… ttfb_ms=… upstream=127.0.0.1:1234 client=127.0.0.1 */
#include "access_log.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "log.h"

void relay_access_log(void *ud, const relay_exchange_t *ex) {
  if (!relay_log_enabled(RELAY_LOG_INFO)) return;
  uint64_t now = uv_hrtime();
  char ttfb[32] = "-";
  if (ex->t_first_byte) snprintf(ttfb, sizeof ttfb, "%.3f", (double)(ex->t_first_byte - ex->t_start) / 1e6);
  /* Only an exchange that went to (or towards) an upstream names it. */
  char upstream[RELAY_HOST_MAX + 16] = "-";
  const relay_server_addr_t *a = relay_exchange_server(ex);
  if (a && (ex->t_first_byte || ex->state == RELAY_EX_STREAMING || ex->state == RELAY_EX_TUNNEL ||
            ex->state == RELAY_EX_CONNECTING))
    relay_config_server_name(a, upstream, sizeof upstream);
  int bare = strcmp(ex->log_path, "-") == 0; /* no request line was parsed */
  relay_log_info("access method=%s path=%s status=%d bytes_in=%llu bytes_out=%llu duration_ms=%.3f ttfb_ms=%s "
                 "upstream=%s client=%s",
                 bare ? "-" : llhttp_method_name(ex->method), ex->log_path, ex->status,
                 (unsigned long long)ex->bytes_in, (unsigned long long)ex->bytes_out,
                 (double)(now - ex->t_start) / 1e6, ttfb, upstream, ex->client->peer);
}
