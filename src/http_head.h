/* One HTTP message head as llhttp delivers it: the request target (or reason
 * phrase) and the header fields in arrival order, repeats kept. Field names
 * and values are copied into one buffer because llhttp may hand them over in
 * pieces across reads. */
#ifndef RELAY_HTTP_HEAD_H
#define RELAY_HTTP_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "relay/buf.h"

#define RELAY_HEAD_ENOMEM -1
#define RELAY_HEAD_ETOOBIG -2

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
void relay_head_close(relay_head_t *h);

int relay_head_on_target(relay_head_t *h, const char *at, size_t len);
int relay_head_on_field(relay_head_t *h, const char *at, size_t len);
int relay_head_on_value(relay_head_t *h, const char *at, size_t len);
/* Add a complete field (used for synthesized heads). */
int relay_head_add(relay_head_t *h, const char *name, const char *value, size_t value_len);

static inline const char *relay_head_name(const relay_head_t *h, size_t i) {
  return h->bytes.data + h->hdrs[i].name_off;
}
static inline const char *relay_head_value(const relay_head_t *h, size_t i) {
  return h->bytes.data + h->hdrs[i].value_off;
}
static inline const char *relay_head_target(const relay_head_t *h) {
  return h->bytes.data ? h->bytes.data + h->target_off : "";
}

/* Index of the first field called name (case-insensitive), from index `from`; -1 if none. */
int relay_head_find(const relay_head_t *h, const char *name, size_t from);
/* Does a comma-separated field value list contain token (case-insensitive)? */
int relay_head_value_has_token(const char *value, size_t len, const char *token);
/* Is field i hop-by-hop for this message: a fixed hop-by-hop name, or named
 * by a Connection field of the message (RFC 9110 section 7.6.1)? */
int relay_head_is_hop_by_hop(const relay_head_t *h, size_t i);

int relay_name_eq(const char *a, size_t alen, const char *b);

#endif
