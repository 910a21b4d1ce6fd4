#include "relay/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void relay_buf_init(relay_buf_t *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

/* Grow geometrically so that appending byte by byte stays linear. */
int relay_buf_reserve(relay_buf_t *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  size_t need = b->len + extra;
  if (need < b->len) return RELAY_ENOMEM;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) {
    if (cap > ((size_t)-1) / 2) return RELAY_ENOMEM;
    cap *= 2;
  }
  char *p = realloc(b->data, cap);
  if (!p) return RELAY_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int relay_buf_append(relay_buf_t *b, const void *data, size_t len) {
  if (len == 0) return 0;
  if (relay_buf_reserve(b, len)) return RELAY_ENOMEM;
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

int relay_buf_append_str(relay_buf_t *b, const char *s) {
  return relay_buf_append(b, s, strlen(s));
}

int relay_buf_printf(relay_buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return RELAY_ENOMEM;
  if (relay_buf_reserve(b, (size_t)n + 1)) return RELAY_ENOMEM;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}


void relay_buf_reset(relay_buf_t *b) { b->len = 0; }

char *relay_buf_steal(relay_buf_t *b, size_t *len) {
  char *p = b->data;
  if (len) *len = b->len;
  relay_buf_init(b);
  return p;
}

void relay_buf_dispose(relay_buf_t *b) {
  free(b->data);
  relay_buf_init(b);
}
