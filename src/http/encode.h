/* The heads the relay writes: the request head for the upstream and the
 * response head for the client, rebuilt from what llhttp parsed. Pure (no
 * libuv, no Lua), printf-free, so the fuzz targets and unit tests link it
 * alone.
 *
 * Framing is the relay's own in both directions: a peer's Content-Length and
 * Transfer-Encoding are never copied; the encoder writes the framing the
 * caller derived from the parser's state. A Connection listing removes the
 * fields it names, except the framing fields and those the relay sets itself
 * (Host, X-Forwarded-For, X-Forwarded-Proto), which it cannot remove. */
#ifndef RELAY_HTTP_ENCODE_H
#define RELAY_HTTP_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "head.h"
#include "relay/buf.h"
#include "relay/error.h"

/* How a body is delimited on the wire. */
typedef enum {
  RELAY_FRAME_NONE = 0, /* no body and no framing field (1xx, 101, 204, bodyless request) */
  RELAY_FRAME_LENGTH,   /* Content-Length: length (also HEAD/304 announcing a length) */
  RELAY_FRAME_CHUNKED,  /* Transfer-Encoding: chunked */
  RELAY_FRAME_CLOSE     /* no field: the body ends when the connection closes */
} relay_frame_t;

/* Request flags. */
#define RELAY_REQ_UPGRADE 1u       /* keep Upgrade, send Connection: upgrade */
#define RELAY_REQ_DROP_EXPECT 2u   /* the relay answered Expect: 100-continue itself */
#define RELAY_REQ_IDENTITY 4u      /* ask for an unencoded body (the rewrite reads it) */

typedef struct relay_request_spec_s {
  const char *method;
  const relay_target_t *target; /* path and query, from relay_target_split */
  const char *host;             /* the Host value for the upstream */
  size_t host_len;
  const char *peer;             /* the client address, appended to X-Forwarded-For */
  size_t peer_len;
  /* Header edits from the route: "name\0value\0" pairs, value "\x01" removes.
   * Edits of framing and hop-by-hop names, Host and X-Forwarded-* are
   * ignored: the core frames and sets those (one Host, always). */
  const char *edits;
  size_t edits_len;
  relay_frame_t framing; /* NONE, LENGTH or CHUNKED */
  uint64_t length;
  unsigned flags;
} relay_request_spec_t;

/* Appends the whole request head (through the empty line). 0, or
 * RELAY_ETOKENS (the client listed too many Connection options: 400),
 * or RELAY_ENOMEM. On error out holds a partial head. */
int relay_encode_request_head(relay_buf_t *out, const relay_head_t *h, const relay_request_spec_t *spec);

typedef enum {
  RELAY_CONN_NONE = 0, /* no Connection field (HTTP/1.1 keep-alive, 1xx) */
  RELAY_CONN_CLOSE,
  RELAY_CONN_KEEP_ALIVE, /* an HTTP/1.0 client's keep-alive */
  RELAY_CONN_UPGRADE     /* 101: keep Upgrade */
} relay_conn_t;

typedef struct relay_response_spec_s {
  int status;            /* 100..599 */
  relay_frame_t framing;
  uint64_t length;
  relay_conn_t connection;
} relay_response_spec_t;

/* Appends "HTTP/1.1 NNN reason" (the reason from h), the upstream's fields
 * less hop-by-hop and framing ones, the spec's framing and Connection, and
 * the empty line. 0, RELAY_ETOKENS (502) or RELAY_ENOMEM. */
int relay_encode_response_head(relay_buf_t *out, const relay_head_t *h, const relay_response_spec_t *spec);

/* How the response body goes to the client, from what llhttp parsed of the
 * upstream's head. no_body: HEAD, 204, 304 (and 1xx). parsed_length: the
 * upstream gave a Content-Length and no chunked coding, of `length` bytes.
 * transformed: a filter changes the body (its length is unknown now).
 * client_11: the client speaks HTTP/1.1 (chunked allowed). */
relay_frame_t relay_response_framing(int status, int no_body, int parsed_length, int transformed, int client_11);

/* Decimal digits of v into p (at least 20 bytes); returns the count. */
size_t relay_u64_to_dec(char *p, uint64_t v);

#endif
