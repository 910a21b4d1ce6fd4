/* One exchange: a client request, the route the site chose for it, the
 * upstream connection it went to and the response coming back through the
 * route's filter chain. Filters, the script layer and loggers read it; only
 * the core changes it. */
#ifndef RELAY_CORE_EXCHANGE_H
#define RELAY_CORE_EXCHANGE_H

#include <llhttp.h>
#include <stdint.h>

#include "client.h"
#include "encode.h"
#include "filter.h"
#include "head.h"
#include "relay/buf.h"
#include "server.h"
#include "site.h"

/* Interim (1xx) responses accepted before the final one: 100 Continue and a
 * few 103 Early Hints are normal; an endless stream of them is an attack. */
#define RELAY_MAX_INTERIM 16
/* Room for the request target in log lines. */
#define RELAY_LOG_PATH_MAX 512

struct relay_proxy_s;

/* Where the exchange is. */
typedef enum {
  RELAY_EX_IDLE = 0,   /* none */
  RELAY_EX_ROUTING,    /* waiting for a request body the route's hook reads */
  RELAY_EX_CONNECTING, /* waiting for an upstream connection */
  RELAY_EX_STREAMING,  /* request going up, response coming down */
  RELAY_EX_TUNNEL,     /* after 101: bytes both ways */
  RELAY_EX_DONE        /* logged and released; the request may still be arriving */
} relay_exchange_state_t;

/* Where the response to the client is. */
typedef enum {
  RELAY_RESP_WAITING = 0, /* no final head yet */
  RELAY_RESP_HELD,        /* the head is in but waits for the whole (filtered) body */
  RELAY_RESP_SENDING,     /* the head went out; the body follows */
  RELAY_RESP_DONE         /* complete */
} relay_resp_state_t;

/* What the site decided for one request. */
typedef struct relay_route_s {
  int upstream_index;
  unsigned metrics_slot; /* the route's slot in the request counts */
  /* The response filters: the static route's, or own ones made by a hook. */
  const relay_filter_spec_t *filters;
  unsigned nfilters;
  relay_filter_spec_t own_filters[RELAY_ROUTE_MAX_FILTERS];
  unsigned nown;
  /* The route's front end (the static route's), and its per-exchange state
   * once the request went through it. */
  relay_frontend_spec_t frontend;
  void *frontend_state;
  int hook; /* the request hook that applies, or 0 */
  int hook_wants_body;
  /* A response the site made itself instead of asking an upstream. */
  int local_status;
  relay_head_t local_head; /* its fields (the reason phrase is added when it is sent) */
  relay_buf_t local_body;
  /* Request edits. */
  relay_buf_t new_target;   /* non-empty: replaces the request target */
  relay_buf_t header_edits; /* "name\0value\0" pairs; value "\x01" removes */
  relay_buf_t new_body;     /* replaces the request body */
  int body_replaced;
  int script_ctx; /* the site's per-exchange state (a script's context), or 0 */
} relay_route_t;

typedef struct relay_exchange_s {
  relay_exchange_state_t state;
  relay_resp_state_t resp_state;
  struct relay_proxy_s *proxy;
  relay_client_t *client;
  relay_upconn_t *up;
  relay_site_t *site; /* routed with, referenced until the exchange ends */
  relay_route_t route;
  uint64_t id;

  /* Request. */
  llhttp_method_t method;
  int http_major, http_minor;
  relay_frame_t req_framing; /* how the body goes upstream: NONE, LENGTH or CHUNKED */
  uint64_t req_length;       /* LENGTH: llhttp's count, taken at head time */
  unsigned client_keep_alive : 1; /* the client allows reuse after this exchange */
  unsigned req_complete : 1;      /* the whole request body was read */
  unsigned req_upgrade : 1;
  unsigned retryable : 1;         /* idempotent, and nothing of it went to a reused connection */
  unsigned buffer_request : 1;    /* the route's hook reads the whole body first */
  unsigned expect_answered : 1;   /* the relay sent 100 Continue itself */
  unsigned batching : 1;          /* an upstream read is being parsed */
  unsigned identity : 1;          /* a filter reads the body: ask for it unencoded */
  unsigned ending : 1;            /* the filter chain is finishing a held body */
  unsigned ended_early : 2;       /* 1: a filter made the whole response before the upstream
                                     ended it; 2: ... and the upstream's message ended too */
  relay_buf_t up_head;    /* request head for the upstream, kept for a retry */
  relay_buf_t up_pending; /* body bytes read before the upstream was ready */
  relay_buf_t req_body;   /* the whole body, when the hook reads it */
  uint64_t bytes_in;
  int retries;

  /* The server of the upstream: chosen by the upstream's balancer when the
   * request goes out, and moved to another one only while nothing of it was
   * sent (its connect failed). */
  int server;                 /* index in the upstream's servers, when has_server */
  uint32_t servers_failed;    /* bit i: a connect to server i failed for this request */
  unsigned has_server : 1;
  unsigned outstanding : 1;   /* counted by the balancer until the exchange lets go */
  unsigned stream_counted : 1; /* counted in the open streams gauge */
  uint64_t up_body_out, up_body_in; /* body bytes to and from the upstream */

  /* Response. */
  relay_head_t resp;
  int status;
  int interim;               /* 1xx responses seen so far */
  relay_frame_t resp_framing; /* how the body goes to the client */
  uint64_t bytes_out;
  relay_chain_t *chain;      /* the route's filters that took part, or NULL */
  relay_buf_t held;          /* a held body's filtered output, sent with its length */
  /* Small body pieces produced while one upstream read is parsed go out as
   * one write (one chunk) at the end of that read: hundreds of SSE events in
   * a read cost one syscall, and nothing waits longer than the read itself. */
  relay_buf_t batch;
  size_t batch_framed;     /* the batch's first bytes are heads (and bodies sent with them), framed */
  unsigned batch_last : 1; /* the last chunk ends the batch's write */

  /* Timing for the access log and metrics, in ns from uv_hrtime: the
   * request head, the request first going towards an upstream, the
   * response head. */
  uint64_t t_start, t_upstream, t_first_byte;
  char log_path[RELAY_LOG_PATH_MAX];
} relay_exchange_t;

/* The configuration the exchange runs under: its site's. */
static inline const relay_config_t *relay_exchange_config(const relay_exchange_t *ex) { return &ex->site->cfg; }
/* Has the response head gone to the client? */
static inline int relay_exchange_head_sent(const relay_exchange_t *ex) { return ex->resp_state >= RELAY_RESP_SENDING; }
/* The upstream the exchange was routed to, or NULL (not routed, or
 * answered by the site itself). */
const relay_upstream_cfg_t *relay_exchange_upstream(const relay_exchange_t *ex);
/* The server of that upstream the request went to (or tried last), or NULL. */
const relay_server_addr_t *relay_exchange_server(const relay_exchange_t *ex);

#endif
