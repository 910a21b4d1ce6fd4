/* One HTTP message head as llhttp delivers it: the request target (or reason
 * phrase) and the header fields in arrival order, repeats kept. Field names
 * and values are copied into one buffer because llhttp may hand them over in
 * pieces across reads. */
#ifndef RELAY_HTTP_HEAD_H
#define RELAY_HTTP_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "relay/buf.h"
#include "relay/error.h"

/* Errors (relay/error.h): RELAY_ENOMEM; RELAY_ETOOBIG (a head over its limit:
 * 431 or 502); RELAY_ETOKENS (more Connection options than tracked). */

typedef struct relay_header_s {
  uint32_t name_off, name_len;
  uint32_t value_off, value_len;
} relay_header_t;

typedef struct relay_head_s {
  relay_buf_t bytes;
  relay_header_t *hdrs;
  size_t n, cap;
  uint32_t target_off, target_len; /* request target, or response reason phrase */
  int in_value;                    /* the last piece delivered was a value */
  size_t limit;                    /* max bytes of target + fields + values */
} relay_head_t;

void relay_head_init(relay_head_t *h, size_t limit);
void relay_head_reset(relay_head_t *h);
void relay_head_dispose(relay_head_t *h);

int relay_head_on_target(relay_head_t *h, const char *at, size_t len);
int relay_head_on_field(relay_head_t *h, const char *at, size_t len);
int relay_head_on_value(relay_head_t *h, const char *at, size_t len);
/* Add a complete field (used for synthesized heads). */
int relay_head_add(relay_head_t *h, const char *name, const char *value, size_t value_len);

/* bytes is allocated whenever there is a field (relay_head_grow). */
static inline const char *relay_head_name(const relay_head_t *h, size_t i) {
  return h->bytes.data + h->hdrs[i].name_off;
}
static inline const char *relay_head_value(const relay_head_t *h, size_t i) {
  return h->bytes.data + h->hdrs[i].value_off;
}
static inline const char *relay_head_target(const relay_head_t *h) {
  return h->bytes.data ? h->bytes.data + h->target_off : "";
}

/* What a request target means to the relay: the path and query it goes
 * upstream with, and what scripts and routes see. An absolute-form target
 * ("http://host/p?q", any scheme, any case) loses its scheme and authority:
 * the upstream is the configuration's, never the request's. A #fragment is
 * dropped. The path is never empty ("http://h?x" is "/?x"). path and query
 * point into the target (or at a static "/"). */
typedef struct relay_target_s {
  const char *path;
  size_t path_len;
  const char *query; /* after the '?', up to a '#' or the end */
  size_t query_len;
  int has_query;
} relay_target_t;

void relay_target_split(const char *target, size_t len, relay_target_t *out);

/* Field names the relay treats specially. relay_field_kind maps a name to one
 * of these (case-insensitive) in a few comparisons, so a head is filtered in
 * one pass. */
typedef enum {
  RELAY_FIELD_OTHER = 0,
  RELAY_FIELD_CONTENT_LENGTH,
  RELAY_FIELD_TRANSFER_ENCODING,
  RELAY_FIELD_HOST,
  RELAY_FIELD_X_FORWARDED_FOR,
  RELAY_FIELD_X_FORWARDED_PROTO,
  RELAY_FIELD_CONNECTION,
  RELAY_FIELD_KEEP_ALIVE,
  RELAY_FIELD_PROXY_CONNECTION,
  RELAY_FIELD_TE,
  RELAY_FIELD_TRAILER,
  RELAY_FIELD_UPGRADE,
  RELAY_FIELD_EXPECT,
  RELAY_FIELD_ACCEPT_ENCODING
} relay_field_kind_t;

relay_field_kind_t relay_field_kind(const char *name, size_t len);
/* Fields that are hop-by-hop whatever Connection says (RFC 9110 7.6.1);
 * Upgrade is one outside a tunnel. */
int relay_field_kind_is_hop_by_hop(relay_field_kind_t k);

/* The options of a message's Connection fields, collected once per head so
 * that filtering stays linear in the number of fields. Names the relay owns
 * (framing, Host, X-Forwarded-*) and the fixed hop-by-hop names are not kept:
 * a Connection listing never removes a field the relay frames or sets. At
 * most RELAY_CONN_TOKENS_MAX distinct other names; more is an error, so the
 * check per field is bounded by a constant. */
#define RELAY_CONN_TOKENS_MAX 32

typedef struct relay_conn_tokens_s {
  size_t n;
  struct {
    const char *p;
    size_t len;
  } tok[RELAY_CONN_TOKENS_MAX];
  int close, keep_alive, upgrade; /* the connection options named */
} relay_conn_tokens_t;

/* 0, or RELAY_ETOKENS when more distinct names are listed than allowed.
 * The tokens point into h, valid until h changes. */
int relay_conn_tokens_collect(relay_conn_tokens_t *ct, const relay_head_t *h);
/* Does the Connection list name this field? */
int relay_conn_tokens_has(const relay_conn_tokens_t *ct, const char *name, size_t len);

/* Index of the first field called name (case-insensitive), from index `from`; -1 if none. */
int relay_head_find(const relay_head_t *h, const char *name, size_t from);
/* Does a comma-separated field value list contain token (case-insensitive)? */
int relay_head_value_has_token(const char *value, size_t len, const char *token);

int relay_name_eq(const char *a, size_t alen, const char *b);

/* Is every Transfer-Encoding field of h, taken together, exactly "chunked"
 * (or are there none)? The relay frames bodies itself and can only undo
 * chunked: any other coding (gzip, chunked) would be forwarded mislabelled. */
int relay_head_te_is_chunked_only(const relay_head_t *h);

#endif
