#include "encode.h"

#include <string.h>
#include <strings.h>

size_t relay_u64_to_dec(char *p, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
  return n;
}

/* "Name: value\r\n" without printf: heads are built once per exchange per
 * direction, field by field. */
static int put_field(relay_buf_t *b, const char *name, size_t nlen, const char *value, size_t vlen) {
  if (relay_buf_reserve(b, nlen + vlen + 4)) return RELAY_ENOMEM;
  char *p = b->data + b->len;
  memcpy(p, name, nlen);
  p[nlen] = ':';
  p[nlen + 1] = ' ';
  memcpy(p + nlen + 2, value, vlen);
  p[nlen + 2 + vlen] = '\r';
  p[nlen + 3 + vlen] = '\n';
  b->len += nlen + vlen + 4;
  return 0;
}

static int put(relay_buf_t *b, const char *s, size_t len) {
  return relay_buf_append(b, s, len) ? RELAY_ENOMEM : 0;
}

static int put_framing(relay_buf_t *b, relay_frame_t framing, uint64_t length) {
  if (framing == RELAY_FRAME_CHUNKED) return put(b, "Transfer-Encoding: chunked\r\n", 28);
  if (framing != RELAY_FRAME_LENGTH) return 0;
  char num[24];
  size_t n = relay_u64_to_dec(num, length);
  return put_field(b, "Content-Length", 14, num, n);
}

/* An edit is "name\0value\0"; the walk stays inside the buffer even if the
 * last pair lacks its terminators. */
typedef struct edit_s {
  const char *name, *value;
  size_t nlen, vlen;
  int remove;
} edit_t;

static int next_edit(const char **pp, const char *end, edit_t *e) {
  const char *p = *pp;
  if (!p || p >= end) return 0;
  const char *z = memchr(p, 0, (size_t)(end - p));
  if (!z) return 0;
  e->name = p;
  e->nlen = (size_t)(z - p);
  p = z + 1;
  z = p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
  if (!z) return 0;
  e->value = p;
  e->vlen = (size_t)(z - p);
  e->remove = e->vlen == 1 && p[0] == '\x01';
  *pp = z + 1;
  return 1;
}

static int edits_name(const relay_request_spec_t *s, const char *name, size_t len) {
  const char *p = s->edits, *end = s->edits + s->edits_len;
  edit_t e;
  while (next_edit(&p, end, &e))
    if (e.nlen == len && strncasecmp(e.name, name, len) == 0) return 1;
  return 0;
}

/* Names an edit cannot touch: framing and hop-by-hop fields, and those the
 * relay sets itself. (The script layer refuses them already; the encoder
 * holds the line on its own.) */
static int edit_ignored(const relay_request_spec_t *s, relay_field_kind_t k) {
  if (relay_field_kind_is_hop_by_hop(k)) return 1;
  switch (k) {
    case RELAY_FIELD_CONTENT_LENGTH:
    case RELAY_FIELD_HOST:
    case RELAY_FIELD_X_FORWARDED_FOR:
    case RELAY_FIELD_X_FORWARDED_PROTO: return 1;
    case RELAY_FIELD_ACCEPT_ENCODING: return (s->flags & RELAY_REQ_IDENTITY) != 0;
    default: return 0;
  }
}

/* Script edits go out after the client's fields. */
static int put_edits(relay_buf_t *b, const relay_request_spec_t *s) {
  const char *p = s->edits, *end = s->edits + s->edits_len;
  edit_t e;
  while (next_edit(&p, end, &e)) {
    if (e.remove || edit_ignored(s, relay_field_kind(e.name, e.nlen))) continue;
    if (put_field(b, e.name, e.nlen, e.value, e.vlen)) return RELAY_ENOMEM;
  }
  return 0;
}

/* X-Forwarded-For: the client's own values in order, then the peer, as one
 * field (a second pass over the fields; no temporary buffer). */
static int put_xff(relay_buf_t *b, const relay_head_t *h, const relay_request_spec_t *s) {
  if (put(b, "X-Forwarded-For: ", 17)) return RELAY_ENOMEM;
  for (size_t i = 0; i < h->n; i++) {
    if (relay_field_kind(relay_head_name(h, i), h->hdrs[i].name_len) != RELAY_FIELD_X_FORWARDED_FOR) continue;
    if (put(b, relay_head_value(h, i), h->hdrs[i].value_len) || put(b, ", ", 2)) return RELAY_ENOMEM;
  }
  if (put(b, s->peer, s->peer_len) || put(b, "\r\n", 2)) return RELAY_ENOMEM;
  return 0;
}

/* Does a client field go upstream as it came? */
static int request_field_kept(const relay_request_spec_t *s, const relay_conn_tokens_t *ct,
                              const char *name, size_t nlen) {
  relay_field_kind_t k = relay_field_kind(name, nlen);
  switch (k) {
    case RELAY_FIELD_CONTENT_LENGTH:
    case RELAY_FIELD_HOST:
    case RELAY_FIELD_X_FORWARDED_FOR:
    case RELAY_FIELD_X_FORWARDED_PROTO: return 0; /* the relay's own */
    case RELAY_FIELD_UPGRADE: return (s->flags & RELAY_REQ_UPGRADE) != 0;
    case RELAY_FIELD_EXPECT:
      if (s->flags & RELAY_REQ_DROP_EXPECT) return 0;
      break;
    case RELAY_FIELD_ACCEPT_ENCODING:
      if (s->flags & RELAY_REQ_IDENTITY) return 0;
      break;
    default:
      if (relay_field_kind_is_hop_by_hop(k)) return 0;
      break;
  }
  if (relay_conn_tokens_has(ct, name, nlen)) return 0;
  return !s->edits_len || !edits_name(s, name, nlen);
}

int relay_encode_request_head(relay_buf_t *b, const relay_head_t *h, const relay_request_spec_t *s) {
  relay_conn_tokens_t ct;
  if (relay_conn_tokens_collect(&ct, h)) return RELAY_ETOKENS;
  const relay_target_t *t = s->target;
  if (put(b, s->method, strlen(s->method)) || put(b, " ", 1) || put(b, t->path, t->path_len))
    return RELAY_ENOMEM;
  if (t->has_query && (put(b, "?", 1) || put(b, t->query, t->query_len))) return RELAY_ENOMEM;
  if (put(b, " HTTP/1.1\r\n", 11)) return RELAY_ENOMEM;
  for (size_t i = 0; i < h->n; i++) {
    const char *name = relay_head_name(h, i);
    size_t nlen = h->hdrs[i].name_len;
    if (!request_field_kept(s, &ct, name, nlen)) continue;
    if (put_field(b, name, nlen, relay_head_value(h, i), h->hdrs[i].value_len)) return RELAY_ENOMEM;
  }
  if (s->edits_len && put_edits(b, s)) return RELAY_ENOMEM;
  if ((s->flags & RELAY_REQ_IDENTITY) && put(b, "Accept-Encoding: identity\r\n", 27)) return RELAY_ENOMEM;
  if (put_field(b, "Host", 4, s->host, s->host_len) || put_xff(b, h, s) ||
      put(b, "X-Forwarded-Proto: http\r\n", 25))
    return RELAY_ENOMEM;
  if (put_framing(b, s->framing, s->length)) return RELAY_ENOMEM;
  if ((s->flags & RELAY_REQ_UPGRADE) && put(b, "Connection: upgrade\r\n", 21)) return RELAY_ENOMEM;
  return put(b, "\r\n", 2);
}

/* Does an upstream field go to the client as it came? */
static int response_field_kept(const relay_response_spec_t *s, const relay_conn_tokens_t *ct,
                               const char *name, size_t nlen) {
  relay_field_kind_t k = relay_field_kind(name, nlen);
  if (k == RELAY_FIELD_CONTENT_LENGTH) return 0;
  if (k == RELAY_FIELD_UPGRADE) return s->connection == RELAY_CONN_UPGRADE;
  if (relay_field_kind_is_hop_by_hop(k)) return 0;
  return !relay_conn_tokens_has(ct, name, nlen);
}

int relay_encode_response_head(relay_buf_t *b, const relay_head_t *h, const relay_response_spec_t *s) {
  relay_conn_tokens_t ct;
  if (relay_conn_tokens_collect(&ct, h)) return RELAY_ETOKENS;
  char line[13] = "HTTP/1.1 000 ";
  line[9] = (char)('0' + s->status / 100 % 10);
  line[10] = (char)('0' + s->status / 10 % 10);
  line[11] = (char)('0' + s->status % 10);
  if (put(b, line, 13) || put(b, relay_head_target(h), h->target_len) || put(b, "\r\n", 2))
    return RELAY_ENOMEM;
  for (size_t i = 0; i < h->n; i++) {
    const char *name = relay_head_name(h, i);
    size_t nlen = h->hdrs[i].name_len;
    if (!response_field_kept(s, &ct, name, nlen)) continue;
    if (put_field(b, name, nlen, relay_head_value(h, i), h->hdrs[i].value_len)) return RELAY_ENOMEM;
  }
  if (put_framing(b, s->framing, s->length)) return RELAY_ENOMEM;
  switch (s->connection) {
    case RELAY_CONN_CLOSE:
      if (put(b, "Connection: close\r\n", 19)) return RELAY_ENOMEM;
      break;
    case RELAY_CONN_KEEP_ALIVE:
      if (put(b, "Connection: keep-alive\r\n", 24)) return RELAY_ENOMEM;
      break;
    case RELAY_CONN_UPGRADE:
      if (put(b, "Connection: upgrade\r\n", 21)) return RELAY_ENOMEM;
      break;
    default: break;
  }
  return put(b, "\r\n", 2);
}

/* The length is kept only when the body passes unchanged; HEAD and 304 keep
 * the length they announce (no body follows), 204 and 1xx have none. */
relay_frame_t relay_response_framing(int status, int no_body, int parsed_length, int transformed, int client_11) {
  if (status < 200 || status == 204) return RELAY_FRAME_NONE;
  if (no_body) return parsed_length ? RELAY_FRAME_LENGTH : RELAY_FRAME_NONE;
  if (parsed_length && !transformed) return RELAY_FRAME_LENGTH;
  return client_11 ? RELAY_FRAME_CHUNKED : RELAY_FRAME_CLOSE;
}
