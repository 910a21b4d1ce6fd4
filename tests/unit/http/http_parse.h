/* Test helper: parse one HTTP/1 message with llhttp into a relay_head_t the way
 * server.c and upstream.c do (trailers kept out of the head), recording what
 * the parser knew at the end of the head. Shared by the unit tests and the
 * HTTP fuzz targets. */
#ifndef RELAY_TEST_HTTP_PARSE_H
#define RELAY_TEST_HTTP_PARSE_H

#include <llhttp.h>
#include <stdint.h>
#include <string.h>

#include "head.h"

typedef struct tp_msg_s {
  llhttp_t parser;
  llhttp_settings_t settings;
  relay_head_t head;
  int head_error;      /* a relay_head_* call failed */
  int headers_done;    /* the head is complete; the fields below are set */
  int in_trailers;
  int message_done;
  int skip_body;       /* response to HEAD: no body (on_headers_complete returns 1) */
  int method, status, http_major, http_minor, upgrade;
  unsigned flags;
  uint64_t content_length;
  size_t body_len;
  /* Field counts by kind in the head (not in trailers). */
  int host_fields, length_fields, te_fields, connection_fields;
} tp_msg_t;

static tp_msg_t *tp_of(llhttp_t *p) { return (tp_msg_t *)p->data; }

static int tp_on_url(llhttp_t *p, const char *at, size_t len) {
  if (relay_head_on_target(&tp_of(p)->head, at, len)) tp_of(p)->head_error = 1;
  return 0;
}

static int tp_on_field(llhttp_t *p, const char *at, size_t len) {
  tp_msg_t *m = tp_of(p);
  if (!m->in_trailers && relay_head_on_field(&m->head, at, len)) m->head_error = 1;
  return 0;
}

static int tp_on_value(llhttp_t *p, const char *at, size_t len) {
  tp_msg_t *m = tp_of(p);
  if (!m->in_trailers && relay_head_on_value(&m->head, at, len)) m->head_error = 1;
  return 0;
}

static int tp_on_headers_complete(llhttp_t *p) {
  tp_msg_t *m = tp_of(p);
  m->headers_done = 1;
  m->in_trailers = 1;
  m->method = p->method;
  m->status = p->status_code;
  m->http_major = p->http_major;
  m->http_minor = p->http_minor;
  m->upgrade = p->upgrade;
  m->flags = p->flags;
  m->content_length = p->content_length;
  const relay_head_t *h = &m->head;
  for (size_t i = 0; i < h->n; i++) {
    relay_field_kind_t k = relay_field_kind(relay_head_name(h, i), h->hdrs[i].name_len);
    m->host_fields += k == RELAY_FIELD_HOST;
    m->length_fields += k == RELAY_FIELD_CONTENT_LENGTH;
    m->te_fields += k == RELAY_FIELD_TRANSFER_ENCODING;
    m->connection_fields += k == RELAY_FIELD_CONNECTION;
  }
  return m->skip_body ? 1 : 0;
}

static int tp_on_body(llhttp_t *p, const char *at, size_t len) {
  tp_of(p)->body_len += len;
  return 0;
}

static int tp_on_message_complete(llhttp_t *p) {
  tp_of(p)->message_done = 1;
  return HPE_PAUSED; /* one message */
}

static void tp_init(tp_msg_t *m, llhttp_type_t type, int skip_body) {
  memset(m, 0, sizeof *m);
  relay_head_init(&m->head, 16 * 1024 * 1024);
  llhttp_settings_init(&m->settings);
  m->settings.on_url = tp_on_url;
  m->settings.on_status = tp_on_url; /* the reason phrase takes the target's place */
  m->settings.on_header_field = tp_on_field;
  m->settings.on_header_value = tp_on_value;
  m->settings.on_headers_complete = tp_on_headers_complete;
  m->settings.on_body = tp_on_body;
  m->settings.on_message_complete = tp_on_message_complete;
  llhttp_init(&m->parser, type, &m->settings);
  m->parser.data = m;
  m->skip_body = skip_body;
}

static void tp_close(tp_msg_t *m) { relay_head_dispose(&m->head); }

/* Parse data; returns llhttp's result (HPE_OK, HPE_PAUSED after one message,
 * HPE_PAUSED_UPGRADE, or an error). */
static llhttp_errno_t tp_parse(tp_msg_t *m, const char *data, size_t len) {
  return llhttp_execute(&m->parser, data, len);
}

/* Is the parser fine with what it saw (complete or waiting for more)? */
static int tp_ok(llhttp_errno_t e) { return e == HPE_OK || e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE; }

#endif
