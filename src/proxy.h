/* The proxy core's internal contract: one worker (event loop + script), its
 * client connections, its upstream connections and pool, and the exchange that
 * joins one request to one upstream response. server.c owns clients,
 * upstream.c owns upstream connections, proxy.c owns exchanges. */
#ifndef RELAY_PROXY_H
#define RELAY_PROXY_H

#include <llhttp.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "http_head.h"
#include "io.h"
#include "relay/buf.h"
#include "route.h"

/* Flow control: a direction stops reading when this many bytes wait to be
 * written on the other side, and resumes below the low mark. With 64 KiB read
 * slabs the bytes held per direction stay under high + one slab. */
#define RELAY_HIGH_WATER (256 * 1024)
#define RELAY_LOW_WATER (64 * 1024)
/* Pipelined request bytes read ahead while a response is in progress. */
#define RELAY_PIPELINE_MAX (64 * 1024)
/* Interim (1xx) responses accepted before the final one: 100 Continue and a
 * few 103 Early Hints are normal; an endless stream of them is an attack. */
#define RELAY_MAX_INTERIM 16
/* Bytes of an upstream response head (and, separately, of its trailers). */
#define RELAY_RESP_HEAD_MAX (1024 * 1024)

typedef struct relay_worker_s relay_worker_t;
typedef struct relay_client_s relay_client_t;
typedef struct relay_upconn_s relay_upconn_t;
typedef struct relay_exchange_s relay_exchange_t;
struct relay_script_s;
struct relay_route_s;

/* A response body filter (the chat rewrite plugs in here). It receives the
 * decoded body bytes and produces the bytes to send; `emit` copies. */
typedef struct relay_filter_s relay_filter_t;
typedef struct relay_filter_vtable_s {
  /* Body bytes from the upstream. */
  int (*on_data)(relay_filter_t *f, const char *data, size_t len);
  /* End of body (complete = 1) or upstream cut (0). */
  int (*on_end)(relay_filter_t *f, int complete);
  void (*destroy)(relay_filter_t *f);
} relay_filter_vtable_t;

struct relay_filter_s {
  const relay_filter_vtable_t *vt;
  relay_exchange_t *ex;
  /* Set by the filter: 1 = it needs the whole body before the head can go out
   * (the body will get a new Content-Length), 0 = it streams. */
  int buffers_body;
  /* Set by the filter: the body could not be produced (a script hook failed
   * before the response started); the client gets a 500. */
  int failed;
};

/* Filter output: append to the exchange's response. */
int relay_exchange_emit(relay_exchange_t *ex, const char *data, size_t len);
/* A buffering filter changes its mind: send the head, stream from now on. */
void relay_exchange_unbuffer(relay_exchange_t *ex);

typedef struct relay_list_s {
  struct relay_list_s *prev, *next;
} relay_list_t;

static inline void relay_list_init(relay_list_t *l) { l->prev = l->next = l; }
static inline int relay_list_empty(const relay_list_t *l) { return l->next == l; }
static inline void relay_list_push(relay_list_t *head, relay_list_t *n) {
  n->next = head;
  n->prev = head->prev;
  head->prev->next = n;
  head->prev = n;
}
static inline void relay_list_remove(relay_list_t *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  relay_list_init(n);
}
#define relay_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

typedef enum {
  RELAY_EX_IDLE = 0,    /* no exchange */
  RELAY_EX_ROUTING,     /* waiting for a request body the route asked to see */
  RELAY_EX_CONNECTING,  /* waiting for an upstream connection */
  RELAY_EX_STREAMING,   /* request going up, response coming down */
  RELAY_EX_TUNNEL,      /* after 101: bytes both ways */
  RELAY_EX_DONE
} relay_exchange_state_t;

struct relay_exchange_s {
  relay_exchange_state_t state;
  relay_client_t *client;
  relay_upconn_t *up;
  int upstream_index;
  uint64_t id;

  /* Request. */
  llhttp_method_t method;
  int http_major, http_minor;
  int client_keep_alive;   /* the client allows reuse after this exchange */
  int req_chunked;         /* forward the request body chunked */
  int req_has_length;      /* the client framed the body with Content-Length */
  uint64_t req_length;     /* ... of this many bytes (llhttp's count, taken at head time) */
  int req_has_body;
  int req_complete;        /* the whole request body was read from the client */
  int req_upgrade;         /* Upgrade requested */
  int retryable;           /* nothing of the body went to a (reused) upstream yet */
  int buffer_request;      /* the route wants the whole body before routing */
  int expect_answered;     /* we sent 100 Continue ourselves */
  relay_buf_t up_head;     /* request head for the upstream, kept for a retry */
  relay_buf_t up_pending;  /* body bytes read before the upstream was ready */
  relay_buf_t req_body;    /* whole body when buffer_request */
  uint64_t bytes_in;
  int retries;

  /* Response. */
  relay_head_t resp;
  int status;
  int resp_head_sent;      /* the final head went to the client */
  int resp_out_chunked;    /* we frame the body chunked for the client */
  int resp_out_close;      /* the body ends by closing the client connection */
  int resp_no_body;        /* HEAD, 204, 304 */
  int resp_complete;
  int resp_failed;         /* a filter failed before the head went out: 500 */
  int interim;             /* 1xx responses seen so far */
  uint64_t bytes_out;
  relay_filter_t *filter;
  relay_buf_t filtered;    /* a buffering filter's output */
  /* Small body pieces produced while one upstream read is parsed go out as
   * one write (one chunk) at the end of that read: hundreds of SSE events in
   * a read cost one syscall, and nothing waits longer than the read itself. */
  relay_buf_t batch;
  int batching;

  /* Routing result, made with `script` (held until the exchange ends). */
  struct relay_script_s *script;
  relay_route_t route;
  int routed;

  /* Timing for the access log, in ns from uv_hrtime. */
  uint64_t t_start, t_first_byte;
  char log_path[512];
};

struct relay_client_s {
  uv_tcp_t tcp;
  uv_timer_t timer;
  relay_worker_t *w;
  relay_list_t link;
  llhttp_t parser;
  relay_head_t req;
  relay_exchange_t ex;
  uv_timer_t send_timer;   /* the client stopped reading what we write */
  relay_buf_t pipelined;   /* bytes read while a response was in progress */
  relay_slab_t *cur_slab;  /* slab being parsed, for zero-copy forwarding */
  size_t write_pending;    /* bytes queued to the client */
  char peer[64];
  int handles_open;
  int reading;
  int closing;
  int shutting;        /* shutdown queued: no more writes */
  int parser_paused;
  int close_after;         /* close once the current response is written */
  int read_eof;
  int head_too_big;
  int in_request;       /* bytes of a request arrived since the last exchange */
  int keepalive_wait;   /* the timer runs the keep-alive timeout */
  int in_body;          /* the request head is in, its body is not: the body timer runs */
  int in_trailers;      /* llhttp is delivering chunked trailers: never head fields */
  size_t trailer_bytes;
  int send_waiting;     /* the send timer runs: the write queue is over the high-water mark */
  int deferred_err;     /* a failure that closes the connection on the next loop turn */
};

typedef enum {
  RELAY_UP_RESOLVING = 0,
  RELAY_UP_CONNECTING,
  RELAY_UP_BUSY,
  RELAY_UP_IDLE,
  RELAY_UP_CLOSING
} relay_upconn_state_t;

struct relay_upconn_s {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect_req;
  uv_getaddrinfo_t gai;
  relay_worker_t *w;
  relay_list_t link;       /* in the worker's idle pool while idle */
  relay_exchange_t *ex;    /* owner while busy */
  llhttp_t parser;
  relay_upconn_state_t state;
  int upstream_index;
  int handles_open;
  int tcp_inited;
  int reused;
  int reading;
  int gai_pending;
  int in_head;             /* a response head has begun and is not complete */
  int in_trailers;         /* response trailers are being parsed (dropped) */
  size_t trailer_bytes;
  uint64_t head_deadline;  /* loop time by which the head must be complete */
  int deferred_err;        /* a failure reported on the next loop turn */
  /* The script whose configuration this connection was made for (held):
   * its address, timeouts and pool. Never handed to an exchange routed by
   * another script. */
  struct relay_script_s *script;
  const relay_config_t *cfg;
  relay_slab_t *cur_slab;  /* slab being parsed, for zero-copy forwarding */
  size_t write_pending;
  uint64_t responses;
};

typedef struct relay_upstream_pool_s {
  relay_list_t idle;
  size_t nidle;
} relay_upstream_pool_t;

struct relay_worker_s {
  uv_loop_t loop;
  int index;
  const relay_config_t *cfg;
  struct relay_script_s *script;
  uv_tcp_t listener;
  int listener_open;
  uv_async_t wakeup;        /* from the main thread: shutdown, reload */
  int shutdown_requested;   /* set by the main thread, read on wakeup */
  int reload_requested;
  const char *script_path;
  uv_timer_t shutdown_timer;
  relay_slab_pool_t slabs;
  relay_upstream_pool_t pools[RELAY_MAX_UPSTREAMS];
  relay_list_t clients;
  size_t nclients;
  size_t nupconns;
  int shutting_down;
  unsigned generation;       /* bumped by each script reload */
  uint64_t next_exchange_id;
  llhttp_settings_t req_settings;
  llhttp_settings_t resp_settings;
};

/* server.c */
int relay_server_listen(relay_worker_t *w, int fd);
void relay_server_stop_accepting(relay_worker_t *w);
void relay_client_close(relay_client_t *c);
/* Write bytes to the client; the buffers are described by a prepared write. */
int relay_client_write(relay_client_t *c, relay_write_t *wr);
void relay_client_exchange_done(relay_client_t *c);
void relay_client_read_resume(relay_client_t *c);
void relay_client_read_pause(relay_client_t *c);
/* Abort: close the connection at once, no more bytes (a cut response). */
void relay_client_abort(relay_client_t *c);
void relay_server_close_idle(relay_worker_t *w);

/* upstream.c */
void relay_upstream_init_settings(llhttp_settings_t *s);
/* Get a pooled or new connection for ex; calls relay_exchange_on_connected or
 * relay_exchange_on_upstream_error later (never synchronously). */
int relay_upstream_acquire(relay_worker_t *w, relay_exchange_t *ex, int upstream_index);
int relay_upstream_write(relay_upconn_t *u, relay_write_t *wr);
/* The exchange is finished with u: back to the pool if reusable, else closed. */
void relay_upstream_release(relay_upconn_t *u, int reusable);
void relay_upstream_close(relay_upconn_t *u);
void relay_upstream_read_pause(relay_upconn_t *u);
void relay_upstream_read_resume(relay_upconn_t *u);
void relay_upstream_restart_idle_timer(relay_upconn_t *u);
void relay_upstream_close_pool(relay_worker_t *w);

/* proxy.c: called by server.c */
void relay_exchange_begin(relay_client_t *c);                 /* request head complete */
int relay_exchange_on_request_body(relay_exchange_t *ex, const char *data, size_t len);
void relay_exchange_on_request_complete(relay_exchange_t *ex);
void relay_exchange_on_client_gone(relay_exchange_t *ex);
void relay_exchange_on_client_drained(relay_exchange_t *ex);
void relay_exchange_on_tunnel_data(relay_exchange_t *ex, relay_slab_t *s, const char *data, size_t len);
/* A response the relay makes itself; closes the connection after it. */
void relay_exchange_fail(relay_exchange_t *ex, int status, const char *type, const char *code,
                         const char *message);
/* Send the script's own response (route.local_*); keep-alive allowed. */
void relay_exchange_respond_local(relay_exchange_t *ex);
void relay_send_error(relay_client_t *c, int status, const char *type, const char *code,
                      const char *message);

/* proxy.c: called by upstream.c */
void relay_exchange_on_connected(relay_exchange_t *ex, relay_upconn_t *u);
void relay_exchange_on_upstream_error(relay_exchange_t *ex, int err, int timed_out);
int relay_exchange_on_response_head(relay_exchange_t *ex, llhttp_t *p);
int relay_exchange_on_response_body(relay_exchange_t *ex, relay_slab_t *s, const char *data,
                                    size_t len);
int relay_exchange_on_response_complete(relay_exchange_t *ex, llhttp_t *p);
void relay_exchange_on_upstream_drained(relay_exchange_t *ex);
/* Around parsing one upstream read: collect, then send what was collected. */
void relay_exchange_batch_begin(relay_exchange_t *ex);
void relay_exchange_batch_end(relay_exchange_t *ex);
void relay_exchange_on_upstream_eof_tunnel(relay_exchange_t *ex);
void relay_exchange_on_tunnel_upstream_data(relay_exchange_t *ex, relay_slab_t *s, const char *data,
                                            size_t len);
/* Called outside the parser once a final response is complete. */
void relay_exchange_on_response_done(relay_exchange_t *ex, int upstream_reusable);

/* worker.c */
int relay_worker_init(relay_worker_t *w, int index, struct relay_script_s *script, const char *script_path);
/* Main thread: ask every worker to stop, or to reload its script. */
void relay_workers_signal(relay_worker_t *ws, int n, int reload);
void relay_worker_close(relay_worker_t *w);
void relay_worker_begin_shutdown(relay_worker_t *w);
void relay_worker_maybe_finish(relay_worker_t *w);

#endif
