/* The server choice for one upstream with several servers, in one worker:
 * least outstanding requests, ties round robin, with passive and active
 * health. Pure: no sockets, no libuv, the clock is passed in (milliseconds,
 * e.g. uv_now). Single-threaded like everything a worker owns.
 *
 * A server is in one of these states:
 *   up          no recent connect failure; takes requests.
 *   backing off a connect failed (refused or timed out) less than its back-off
 *               ago; takes nothing. The back-off is 1 s, 2 s, 4 s ... after
 *               consecutive failures, capped, and reset by a success.
 *   trial       the back-off has passed: it takes ONE request at a time (only
 *               while nothing is outstanding on it), so that a dead server
 *               costs one connect, not a burst of them. Its outcome either
 *               brings the server up or starts a longer back-off.
 *   out         the last active check failed: takes nothing until a check
 *               passes. A passing check also ends a back-off at once.
 * When no server can take the request, relay_balancer_pick says so at once
 * and the caller answers 502 without waiting for any connect. */
#ifndef RELAY_BALANCER_H
#define RELAY_BALANCER_H

#include <stddef.h>
#include <stdint.h>

#include "relay/error.h"

#define RELAY_BALANCER_MAX_SERVERS 16
/* As RELAY_HOST_MAX in config.h. */
#define RELAY_BALANCER_HOST_MAX 256

#define RELAY_BALANCER_BACKOFF_MIN_MS 1000
#define RELAY_BALANCER_BACKOFF_MAX_MS 60000

typedef struct relay_balancer_server_s {
  uint32_t outstanding; /* requests picked and not yet done */
  uint32_t failures;    /* consecutive passive failures; 0 = no back-off */
  uint64_t retry_at;    /* ms: the back-off ends (when failures > 0) */
  int active_out;       /* the last active check failed */
} relay_balancer_server_t;

typedef struct relay_balancer_s {
  relay_balancer_server_t servers[RELAY_BALANCER_MAX_SERVERS];
  unsigned n;
  unsigned next; /* round-robin cursor: ties go to the first at or after it */
  uint32_t backoff_min_ms, backoff_max_ms;
} relay_balancer_t;

/* nservers in 1..RELAY_BALANCER_MAX_SERVERS; back-off bounds in ms (0 = the
 * defaults above). Returns 0 or RELAY_EINVAL. */
int relay_balancer_init(relay_balancer_t *b, unsigned nservers, uint32_t backoff_min_ms, uint32_t backoff_max_ms);

/* Choose a server for a new request and count it outstanding. `exclude` has
 * bit i set for servers this request already failed on. Returns the index,
 * or RELAY_ENOSERVER at once when none can take it. */
int relay_balancer_pick(relay_balancer_t *b, uint64_t now_ms, uint32_t exclude);
/* The picked request is finished (answered, failed or abandoned). */
void relay_balancer_done(relay_balancer_t *b, unsigned server);

/* Passive health. A connect established: the server is up, its back-off
 * forgotten. A connect refused or timed out: back off; a failure reported
 * while the server is already backing off (other requests of the same
 * outage) does not lengthen the back-off. */
void relay_balancer_connected(relay_balancer_t *b, unsigned server);
void relay_balancer_failed(relay_balancer_t *b, unsigned server, uint64_t now_ms);

/* Active health: a check passed (the server is up, any back-off ends) or
 * failed (the server is out until a check passes). */
void relay_balancer_checked(relay_balancer_t *b, unsigned server, int up);

/* Whether the server counts as up for /healthz and the server_up gauge: not
 * out, and not backing off (a server in trial counts as up). */
int relay_balancer_is_up(const relay_balancer_t *b, unsigned server, uint64_t now_ms);
/* Until when (ms) the server counts as down: 0 when it is up now (or once
 * its back-off has passed), UINT64_MAX while an active check has it out. A
 * time rather than a state, so that another thread can tell up from down at
 * any moment without the balancer being touched when a back-off runs out. */
uint64_t relay_balancer_down_until(const relay_balancer_t *b, unsigned server);
/* Whether at least one server is up in that sense. */
int relay_balancer_any_up(const relay_balancer_t *b, uint64_t now_ms);
/* The back-off after `failures` consecutive failures (0 for none). */
uint64_t relay_balancer_backoff_ms(const relay_balancer_t *b, uint32_t failures);

/* One entry of a server list. host has no brackets ("::1" for "[::1]:80");
 * ipv6 says it needs them again in a Host header or a log line. */
typedef struct relay_server_addr_s {
  char host[RELAY_BALANCER_HOST_MAX];
  int port;
  int ipv6;
} relay_server_addr_t;

/* Parse "host:port,host:port,[v6]:port" (blanks around entries allowed).
 * Returns the number of servers (1..max), or RELAY_EINVAL with a
 * message such as `server 2 "10.0.0.1": missing ":port"` in err. */
int relay_balancer_parse_servers(const char *list, relay_server_addr_t *out, size_t max, char *err,
                                 size_t errlen);

#endif
