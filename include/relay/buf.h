/* Growable byte buffer shared by the core modules. */
#ifndef RELAY_BUF_H
#define RELAY_BUF_H

#include <stddef.h>

#include "relay/error.h"

typedef struct relay_buf_s {
  char *data;
  size_t len;
  size_t cap;
} relay_buf_t;

void relay_buf_init(relay_buf_t *b);
/* Ensure room for `extra` more bytes. 0 or RELAY_ENOMEM. */
int relay_buf_reserve(relay_buf_t *b, size_t extra);
int relay_buf_append(relay_buf_t *b, const void *data, size_t len);
int relay_buf_append_str(relay_buf_t *b, const char *s);
int relay_buf_printf(relay_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void relay_buf_reset(relay_buf_t *b);
/* Hand the storage over to the caller; the buffer is left empty. */
char *relay_buf_steal(relay_buf_t *b, size_t *len);
void relay_buf_dispose(relay_buf_t *b);

#endif
