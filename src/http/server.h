/* The server side of HTTP/1: the listening socket and client connections.
 * A connection reads into slabs, parses requests with llhttp, holds a head
 * to its limit and every wait to a deadline, and keeps pipelined requests in
 * order by pausing the parser after each one. What a request means is not
 * its business: each one goes to the handler its owner installed (h2o's
 * on_req), which answers through relay_client_write() and says when the
 * exchange is over with relay_client_exchange_done(). */
#ifndef RELAY_HTTP_SERVER_H
#define RELAY_HTTP_SERVER_H

#include <llhttp.h>
#include <stdint.h>
#include <uv.h>

#include "head.h"
#include "list.h"
#include "relay/buf.h"
#include "slab.h"

/* Pipelined request bytes read ahead while a response is in progress. */
#define RELAY_PIPELINE_MAX (64 * 1024)
/* Room for a peer address in text: an IPv6 address with its zone. */
#define RELAY_PEER_MAX 64
/* Connections the kernel queues before they are accepted (per worker). */
#define RELAY_LISTEN_BACKLOG 1024

typedef struct relay_server_s relay_server_t;
typedef struct relay_client_s relay_client_t;

/* Limits and deadlines, in milliseconds; 0 turns the body and send
 * deadlines off. The owner may point the server at new options (a reload):
 * connections read them afresh at each wait. */
typedef struct relay_server_opts_s {
  size_t max_header_size;
  unsigned long header_timeout_ms;    /* a whole request head, from its first byte */
  unsigned long body_timeout_ms;      /* a request body that stops moving */
  unsigned long keepalive_timeout_ms; /* an idle connection between requests */
  unsigned long send_timeout_ms;      /* a client that stops reading what it gets */
} relay_server_opts_t;

/* How the owner hears of a connection's requests. Each callback gets the
 * connection; c->data is the owner's. */
typedef struct relay_server_handler_s {
  /* A request head is complete: c->req and c->parser describe it. The
   * exchange this starts ends with relay_client_exchange_done(). */
  void (*on_request)(relay_client_t *c);
  /* Request body bytes, decoded from their framing; s is the slab they lie
   * in, or NULL. Nonzero stops parsing (the handler has answered). */
  int (*on_body)(relay_client_t *c, relay_slab_t *s, const char *data, size_t len);
  /* The request message is complete (the whole body was read). */
  void (*on_body_end)(relay_client_t *c);
  /* Bytes from the client of a tunnel (after relay_client_start_tunnel). */
  void (*on_tunnel_data)(relay_client_t *c, relay_slab_t *s, const char *data, size_t len);
  /* The client's write queue fell below RELAY_LOW_WATER. */
  void (*on_drained)(relay_client_t *c);
  /* The connection goes while an exchange is in progress (the client
   * closed, reset or stopped reading): the exchange must let go now. */
  void (*on_gone)(relay_client_t *c);
  /* The server cannot go on with this request and the handler answers for
   * it: status 400 (malformed), 408 (head or body not in time) or 431 (head
   * too large); code and message say why. The connection closes after. */
  void (*on_error)(relay_client_t *c, int status, const char *code, const char *message);
  /* The connection's memory is about to be freed; c->data must go. */
  void (*on_closed)(relay_client_t *c);
  /* A connection is being accepted (optional): on_closed follows it in
   * every case, so the two can keep a count. Nothing may be written or
   * closed from here. */
  void (*on_open)(relay_client_t *c);
} relay_server_handler_t;

struct relay_server_s {
  uv_loop_t *loop;
  uv_tcp_t listener;
  int listening;
  relay_slab_pool_t *slabs;
  const relay_server_opts_t *opts;
  const relay_server_handler_t *handler;
  void *data; /* the owner's */
  llhttp_settings_t settings;
  relay_list_t clients;
  size_t nclients;
  int draining; /* shutting down: no new request on a kept-alive connection */
};

/* Where a connection is in its life. */
typedef enum {
  RELAY_CLIENT_IDLE = 0,  /* between requests (keep-alive), or nothing read yet */
  RELAY_CLIENT_HEAD,      /* a request head is arriving */
  RELAY_CLIENT_EXCHANGE,  /* the handler owns a request and its response */
  RELAY_CLIENT_TUNNEL     /* after 101: bytes both ways, no parsing */
} relay_client_phase_t;

struct relay_client_s {
  uv_tcp_t tcp;
  uv_timer_t timer;      /* the head, body or keep-alive deadline (see client_deadline) */
  uv_timer_t send_timer; /* the client stopped reading; also deferred failures */
  relay_server_t *server;
  relay_list_t link;
  llhttp_t parser;
  relay_head_t req;
  void *data; /* the handler's per-connection state */
  relay_client_phase_t phase;
  relay_buf_t pipelined;  /* bytes read while a response was in progress */
  relay_slab_t *cur_slab; /* slab being parsed, for zero-copy forwarding */
  size_t write_pending;   /* bytes queued to the client */
  char peer[RELAY_PEER_MAX];
  int handles_open;
  unsigned reading : 1;
  unsigned closing : 1;
  unsigned shutting : 1;      /* shutdown queued: no more writes */
  unsigned parser_paused : 1; /* a request is complete; the next waits */
  unsigned close_after : 1;   /* close once the current response is written */
  unsigned read_eof : 1;
  unsigned head_too_big : 1;
  unsigned keepalive_wait : 1; /* the timer runs the keep-alive deadline */
  unsigned in_body : 1;        /* the body deadline runs */
  unsigned in_trailers : 1;    /* llhttp delivers chunked trailers: never head fields */
  unsigned send_waiting : 1;   /* the write queue is over the high-water mark */
  unsigned answered : 1;       /* the exchange ended before its request did: the rest is dropped */
  size_t trailer_bytes;
  int deferred_err; /* a failure that closes the connection on the next loop turn */
  uint64_t wait_start; /* loop time the current wait (head, body, keep-alive) started */
  uint64_t timer_due;  /* loop time the timer fires; 0: not armed */
};

/* Prepare a server on loop; nothing is open until relay_server_listen. */
void relay_server_init(relay_server_t *s, uv_loop_t *loop, relay_slab_pool_t *slabs,
                       const relay_server_opts_t *opts, const relay_server_handler_t *handler, void *data);
/* Accept on an already bound socket. 0 or a libuv error. */
int relay_server_listen(relay_server_t *s, int fd);
void relay_server_stop_accepting(relay_server_t *s);
/* Shutting down: idle connections close now, busy ones after their exchange. */
void relay_server_drain(relay_server_t *s);
/* Past the shutdown deadline: every connection closes now. */
void relay_server_close_all(relay_server_t *s);

/* Queue bytes to the client; the write is consumed either way. 0 or an
 * error (the connection then fails on the next loop turn). */
int relay_client_write(relay_client_t *c, relay_write_t *wr);
/* The exchange is over: close, or go on with the next (pipelined) request. */
void relay_client_exchange_done(relay_client_t *c);
/* From now on the client's bytes go to on_tunnel_data unparsed. */
void relay_client_start_tunnel(relay_client_t *c);
void relay_client_read_pause(relay_client_t *c);
void relay_client_read_resume(relay_client_t *c);
/* Cut: what is queued still goes out, then the connection closes without
 * any more bytes, so the client sees an incomplete response. */
void relay_client_abort(relay_client_t *c);
/* Close at once. */
void relay_client_close(relay_client_t *c);

#endif
