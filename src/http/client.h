/* The client side of HTTP/1: connections to upstream servers. An upstream
 * (one server address with its deadlines and its pool of idle keep-alive
 * connections, per event loop) hands out connections; a connection resolves,
 * connects under a deadline, writes what its owner queues and parses the
 * response with llhttp, reporting each step through the callbacks the owner
 * handed over (h2o's http1client: on_connect, on_head, on_body). The owner
 * pauses and resumes reading for flow control; the connection never calls
 * up by name. */
#ifndef RELAY_HTTP_CLIENT_H
#define RELAY_HTTP_CLIENT_H

#include <llhttp.h>
#include <stdint.h>
#include <uv.h>

#include "head.h"
#include "list.h"
#include "slab.h"

/* Bytes of an upstream response head (and, separately, of its trailers). */
#define RELAY_RESP_HEAD_MAX (1024 * 1024)
#define RELAY_UPSTREAM_NAME_MAX 64
#define RELAY_UPSTREAM_HOST_MAX 256

typedef struct relay_upstream_s relay_upstream_t;
typedef struct relay_upconn_s relay_upconn_t;

/* Deadlines in milliseconds; 0 turns idle and header deadlines off. */
typedef struct relay_upstream_opts_s {
  unsigned long connect_timeout_ms;
  unsigned long idle_timeout_ms;      /* no byte from the server, waiting for or reading a response */
  unsigned long header_timeout_ms;    /* a response head, from its first byte */
  unsigned long keepalive_timeout_ms; /* an idle pooled connection */
} relay_upstream_opts_t;

/* How the owner of a connection hears of it. ud is the owner's pointer. */
typedef struct relay_upconn_handler_s {
  /* Connected (never called synchronously from acquire). */
  void (*on_connected)(void *ud, relay_upconn_t *u);
  /* The connection failed (refused, reset, timed out, malformed response)
   * and is closed: the owner must forget it. timed_out: a deadline fired. */
  void (*on_error)(void *ud, int err, int timed_out);
  /* A response head is complete in the head the owner handed over; p is
   * the parser (status, framing flags). Returns 0 (a body may follow), 1
   * (no body: HEAD, 204, 304, 1xx) or -1 (refuse it: the connection fails
   * with UV_EPROTO). */
  int (*on_head)(void *ud, const llhttp_t *p);
  /* Response body bytes, decoded from their framing; s is the slab they lie
   * in, or NULL. Nonzero fails the connection. */
  int (*on_body)(void *ud, relay_slab_t *s, const char *data, size_t len);
  /* A response message ended inside the parser. Return HPE_PAUSED for the
   * final one (the connection then calls on_done), 0 for an interim one. */
  int (*on_message_end)(void *ud, const llhttp_t *p);
  /* The final response is over, outside the parser: reusable says whether
   * the connection could serve another request. */
  void (*on_done)(void *ud, int reusable);
  /* Around the parsing of one read, so the owner can send what the read
   * produced in one write. */
  void (*on_read_begin)(void *ud);
  void (*on_read_end)(void *ud);
  /* The write queue fell below RELAY_LOW_WATER. */
  void (*on_drained)(void *ud);
  /* A tunnel (after relay_upconn_start_tunnel): bytes, and the end. */
  void (*on_tunnel_data)(void *ud, relay_slab_t *s, const char *data, size_t len);
  void (*on_tunnel_eof)(void *ud);
} relay_upconn_handler_t;

/* One server of an upstream, per loop. Reference counted by the owner and
 * by each open connection: a retired upstream (replaced by a reload) pools
 * nothing more and goes when its last connection closes. */
struct relay_upstream_s {
  uv_loop_t *loop;
  relay_slab_pool_t *slabs;
  const llhttp_settings_t *settings; /* the response callbacks, shared */
  char name[RELAY_UPSTREAM_NAME_MAX];
  char host[RELAY_UPSTREAM_HOST_MAX];
  int port;
  relay_upstream_opts_t opts;
  relay_list_t idle;
  size_t nidle;
  size_t nconns;      /* open connections */
  size_t *open_conns; /* the loop owner's count of open connections, or NULL */
  unsigned refs;
  int retired;
  /* Called whenever a connection's memory is freed (shutdown waits for the
   * last one). */
  void (*on_conn_freed)(void *data);
  void *data;
};

typedef enum {
  RELAY_UPCONN_RESOLVING = 0,
  RELAY_UPCONN_CONNECTING,
  RELAY_UPCONN_BUSY,
  RELAY_UPCONN_IDLE,
  RELAY_UPCONN_CLOSING
} relay_upconn_state_t;

struct relay_upconn_s {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect_req;
  uv_getaddrinfo_t gai;
  relay_upstream_t *upstream; /* referenced */
  relay_list_t link;          /* in the upstream's idle pool while idle */
  const relay_upconn_handler_t *h;
  void *ud;            /* the owner while busy, else NULL */
  relay_head_t *resp;  /* where response heads go: the owner's */
  llhttp_t parser;
  relay_upconn_state_t state;
  int handles_open;
  unsigned reused : 1;
  unsigned reading : 1;
  unsigned gai_pending : 1;
  unsigned in_head : 1;     /* a response head has begun and is not complete */
  unsigned in_trailers : 1; /* response trailers are being parsed (dropped) */
  unsigned tunnel : 1;
  size_t trailer_bytes;
  uint64_t head_deadline;   /* loop time by which the head must be complete */
  uint64_t last_io;         /* loop time the current wait started: the last progress, or the release */
  uint64_t timer_due;       /* loop time the wait timer fires; 0: not armed for the wait */
  int deferred_err;         /* a failure reported on the next loop turn */
  relay_slab_t *cur_slab;   /* slab being parsed, for zero-copy forwarding */
  size_t write_pending;
};

/* The response-side llhttp callbacks, shared by every connection of a loop. */
void relay_upstream_settings_init(llhttp_settings_t *s);
/* A new upstream with one reference. NULL when out of memory. */
relay_upstream_t *relay_upstream_new(uv_loop_t *loop, relay_slab_pool_t *slabs, const llhttp_settings_t *settings,
                                     const char *name, const char *host, int port, const relay_upstream_opts_t *opts);
void relay_upstream_ref(relay_upstream_t *up);
void relay_upstream_unref(relay_upstream_t *up);
/* No more pooling: idle connections close now, busy ones when released. */
void relay_upstream_retire(relay_upstream_t *up);
/* Close the idle connections (shutdown). */
void relay_upstream_close_idle(relay_upstream_t *up);

/* A connection for the owner: a pooled one at once (returns 1, *out set,
 * ready to write) or a new one that calls on_connected or on_error later
 * (returns 0, *out set), or a libuv error. resp receives response heads. */
int relay_upconn_acquire(relay_upstream_t *up, const relay_upconn_handler_t *h, void *ud, relay_head_t *resp,
                         relay_upconn_t **out);
/* Queue bytes; the write is consumed either way. */
int relay_upconn_write(relay_upconn_t *u, relay_write_t *wr);
/* The owner is done: back to the pool if reusable, else closed. */
void relay_upconn_release(relay_upconn_t *u, int reusable);
/* Close at once; the owner hears nothing more. */
void relay_upconn_close(relay_upconn_t *u);
void relay_upconn_read_pause(relay_upconn_t *u);
void relay_upconn_read_resume(relay_upconn_t *u);
/* After a 101: bytes both ways, no parsing, no idle deadline. */
void relay_upconn_start_tunnel(relay_upconn_t *u);

#endif
