#include "http_head.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void relay_head_init(relay_head_t *h, size_t limit) {
  memset(h, 0, sizeof *h);
  relay_buf_init(&h->bytes);
  h->limit = limit;
}

/* Keep the storage: a keep-alive connection parses many heads. */
void relay_head_reset(relay_head_t *h) {
  relay_buf_reset(&h->bytes);
  h->n = 0;
  h->target_off = h->target_len = 0;
  h->in_value = 0;
}

void relay_head_close(relay_head_t *h) {
  relay_buf_close(&h->bytes);
  free(h->hdrs);
  h->hdrs = NULL;
  h->n = h->cap = 0;
}

/* Every byte of the head counts against one limit so that a client cannot
 * make the relay buffer an unbounded head (431). */
static int relay_head_append(relay_head_t *h, const char *at, size_t len) {
  if (h->bytes.len + len > h->limit) return RELAY_HEAD_ETOOBIG;
  return relay_buf_append(&h->bytes, at, len) ? RELAY_HEAD_ENOMEM : 0;
}

int relay_head_on_target(relay_head_t *h, const char *at, size_t len) {
  if (h->target_len == 0) h->target_off = (uint32_t)h->bytes.len;
  int rc = relay_head_append(h, at, len);
  if (rc == 0) h->target_len += (uint32_t)len;
  return rc;
}

static int relay_head_grow(relay_head_t *h) {
  if (h->n < h->cap) return 0;
  size_t cap = h->cap ? h->cap * 2 : 16;
  relay_header_t *p = realloc(h->hdrs, cap * sizeof *p);
  if (!p) return RELAY_HEAD_ENOMEM;
  h->hdrs = p;
  h->cap = cap;
  return 0;
}

/* A name piece after a value starts a new field; otherwise it continues the
 * name llhttp split across two reads. */
int relay_head_on_field(relay_head_t *h, const char *at, size_t len) {
  if (h->n == 0 || h->in_value) {
    if (relay_head_grow(h)) return RELAY_HEAD_ENOMEM;
    relay_header_t *f = &h->hdrs[h->n++];
    f->name_off = (uint32_t)h->bytes.len;
    f->name_len = 0;
    f->value_off = 0;
    f->value_len = 0;
    h->in_value = 0;
  }
  int rc = relay_head_append(h, at, len);
  if (rc == 0) h->hdrs[h->n - 1].name_len += (uint32_t)len;
  return rc;
}

int relay_head_on_value(relay_head_t *h, const char *at, size_t len) {
  if (h->n == 0) return 0;
  relay_header_t *f = &h->hdrs[h->n - 1];
  if (!h->in_value) {
    f->value_off = (uint32_t)h->bytes.len;
    h->in_value = 1;
  }
  int rc = relay_head_append(h, at, len);
  if (rc == 0) f->value_len += (uint32_t)len;
  return rc;
}

int relay_head_add(relay_head_t *h, const char *name, const char *value, size_t value_len) {
  if (relay_head_grow(h)) return RELAY_HEAD_ENOMEM;
  relay_header_t *f = &h->hdrs[h->n++];
  size_t name_len = strlen(name);
  f->name_off = (uint32_t)h->bytes.len;
  f->name_len = (uint32_t)name_len;
  f->value_off = (uint32_t)(h->bytes.len + name_len);
  f->value_len = (uint32_t)value_len;
  h->in_value = 1;
  int rc = relay_head_append(h, name, name_len);
  return rc ? rc : relay_head_append(h, value, value_len);
}

int relay_name_eq(const char *a, size_t alen, const char *b) {
  size_t blen = strlen(b);
  return alen == blen && strncasecmp(a, b, alen) == 0;
}

int relay_head_find(const relay_head_t *h, const char *name, size_t from) {
  for (size_t i = from; i < h->n; i++)
    if (relay_name_eq(relay_head_name(h, i), h->hdrs[i].name_len, name)) return (int)i;
  return -1;
}

int relay_head_value_has_token(const char *value, size_t len, const char *token) {
  size_t tlen = strlen(token);
  size_t i = 0;
  while (i < len) {
    while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ',')) i++;
    size_t start = i;
    while (i < len && value[i] != ',') i++;
    size_t end = i;
    while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t')) end--;
    if (end - start == tlen && strncasecmp(value + start, token, tlen) == 0) return 1;
  }
  return 0;
}

static const char *const relay_hop_by_hop[] = {
    "connection", "keep-alive", "proxy-connection", "te", "transfer-encoding",
    "upgrade",    "trailer",    NULL};

int relay_head_is_hop_by_hop(const relay_head_t *h, size_t i) {
  const char *name = relay_head_name(h, i);
  size_t len = h->hdrs[i].name_len;
  for (const char *const *p = relay_hop_by_hop; *p; p++)
    if (relay_name_eq(name, len, *p)) return 1;
  char tok[128];
  if (len >= sizeof tok) return 0;
  memcpy(tok, name, len);
  tok[len] = 0;
  for (int c = relay_head_find(h, "connection", 0); c >= 0;
       c = relay_head_find(h, "connection", (size_t)c + 1)) {
    if (relay_head_value_has_token(relay_head_value(h, (size_t)c), h->hdrs[c].value_len, tok))
      return 1;
  }
  return 0;
}
