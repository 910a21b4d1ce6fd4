#include "slab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void relay_slab_pool_init(relay_slab_pool_t *p) {
  p->free = NULL;
  p->nfree = 0;
  p->live = 0;
  p->free_writes = NULL;
  p->nfree_writes = 0;
}

void relay_slab_pool_dispose(relay_slab_pool_t *p) {
  while (p->free) {
    relay_slab_t *s = p->free;
    p->free = s->next;
    free(s);
  }
  p->nfree = 0;
  while (p->free_writes) {
    relay_write_t *w = p->free_writes;
    p->free_writes = w->next_free;
    free(w);
  }
  p->nfree_writes = 0;
}

relay_slab_t *relay_slab_get(relay_slab_pool_t *p) {
  relay_slab_t *s = p->free;
  if (s) {
    p->free = s->next;
    p->nfree--;
  } else {
    s = malloc(sizeof *s);
    if (!s) return NULL;
  }
  s->next = NULL;
  s->refs = 1;
  p->live++;
  return s;
}

/* Keep a bounded number of slabs for reuse so a burst does not pin memory. */
void relay_slab_unref(relay_slab_pool_t *p, relay_slab_t *s) {
  if (!s || --s->refs > 0) return;
  p->live--;
  if (p->nfree < RELAY_SLAB_POOL_MAX) {
    s->next = p->free;
    p->free = s;
    p->nfree++;
  } else {
    free(s);
  }
}

relay_write_t *relay_write_new(relay_slab_pool_t *pool, relay_write_cb cb, void *owner) {
  relay_write_t *w = pool->free_writes;
  if (w) {
    pool->free_writes = w->next_free;
    pool->nfree_writes--;
  } else {
    w = malloc(sizeof *w);
    if (!w) return NULL;
  }
  w->inline_used = 0;
  w->pool = pool;
  w->slab = NULL;
  w->heap = NULL;
  w->bytes = 0;
  w->cb = cb;
  w->owner = owner;
  w->nbufs = 0;
  w->req.data = w;
  return w;
}

/* Bytes that continue the last buffer extend it: a head and a body copied
 * side by side into the inline area go out in one plain write, not a writev. */
static void relay_write_push(relay_write_t *w, const char *data, size_t len) {
  if (len == 0) return;
  w->bytes += len;
  if (w->nbufs && w->bufs[w->nbufs - 1].base + w->bufs[w->nbufs - 1].len == data) {
    w->bufs[w->nbufs - 1].len += (unsigned)len;
    return;
  }
  if (w->nbufs == RELAY_WRITE_MAX_BUFS) abort(); /* a programming error, not input */
  w->bufs[w->nbufs++] = uv_buf_init((char *)data, (unsigned)len);
}

void relay_write_add_slab(relay_write_t *w, relay_slab_t *s, const char *data, size_t len) {
  if (len == 0) return;
  if (w->slab != s) {
    if (w->slab) abort();
    w->slab = s;
    relay_slab_ref(s);
  }
  relay_write_push(w, data, len);
}

void relay_write_add_static(relay_write_t *w, const char *data, size_t len) {
  relay_write_push(w, data, len);
}

void relay_write_add_heap(relay_write_t *w, char *data, size_t len) {
  if (w->heap) abort();
  w->heap = data;
  relay_write_push(w, data, len);
}

/* "%zx\r\n" by hand: this runs once per forwarded chunk. */
void relay_write_add_chunk_size(relay_write_t *w, size_t len) {
  static const char hex[] = "0123456789abcdef";
  char tmp[20];
  size_t n = sizeof tmp;
  tmp[--n] = '\n';
  tmp[--n] = '\r';
  do {
    tmp[--n] = hex[len & 15];
    len >>= 4;
  } while (len);
  char *p = w->inline_buf + w->inline_used;
  memcpy(p, tmp + n, sizeof tmp - n);
  w->inline_used += sizeof tmp - n;
  relay_write_push(w, p, sizeof tmp - n);
}

int relay_write_add_copy(relay_write_t *w, const char *data, size_t len) {
  if (len == 0) return 0;
  if (len <= RELAY_WRITE_INLINE - w->inline_used - 24) {
    char *p = w->inline_buf + w->inline_used;
    memcpy(p, data, len);
    w->inline_used += len;
    relay_write_push(w, p, len);
    return 0;
  }
  char *copy = malloc(len);
  if (!copy) return UV_ENOMEM;
  memcpy(copy, data, len);
  relay_write_add_heap(w, copy, len);
  return 0;
}

const char *relay_write_take(relay_write_t *w, relay_buf_t *b) {
  if (b->len <= RELAY_WRITE_INLINE - w->inline_used - 24) {
    char *p = w->inline_buf + w->inline_used;
    if (b->len) memcpy(p, b->data, b->len);
    w->inline_used += b->len;
    relay_buf_reset(b);
    return p;
  }
  if (w->heap) abort(); /* a programming error, not input */
  w->heap = relay_buf_steal(b, NULL);
  return w->heap;
}

void relay_write_free(relay_write_t *w) {
  if (w->slab) relay_slab_unref(w->pool, w->slab);
  free(w->heap);
  relay_slab_pool_t *p = w->pool;
  if (p->nfree_writes < RELAY_WRITE_POOL_MAX) {
    w->next_free = p->free_writes;
    p->free_writes = w;
    p->nfree_writes++;
  } else {
    free(w);
  }
}

static void relay_write_done(uv_write_t *req, int status) {
  relay_write_t *w = req->data;
  if (w->cb) w->cb(w, status);
  relay_write_free(w);
}

/* Drop the first n bytes of the write's buffers: what went out at once. */
static void relay_write_skip(relay_write_t *w, size_t n) {
  unsigned i = 0;
  while (i < w->nbufs && n >= w->bufs[i].len) n -= w->bufs[i++].len;
  if (i < w->nbufs) {
    w->bufs[i].base += n;
    w->bufs[i].len -= (unsigned)n;
  }
  memmove(w->bufs, w->bufs + i, (w->nbufs - i) * sizeof w->bufs[0]);
  w->nbufs -= i;
}

/* Nothing queued on the stream: write now, and only queue what the socket
 * did not take. A uv_write that completes at once still arms POLLOUT and
 * disarms it on the next turn, one epoll_ctl per write; most writes (a
 * response, one read's events) fit the socket buffer and need no request at
 * all. libuv refuses the direct write while a queued one is pending, so the
 * byte order on the wire stays the order of the calls. */
int relay_write_send(relay_write_t *w, uv_stream_t *stream, size_t *queued) {
  *queued = 0;
  int n = uv_try_write(stream, w->bufs, w->nbufs);
  if (n < 0 && n != UV_EAGAIN) {
    relay_write_free(w);
    return n;
  }
  if (n > 0) {
    if ((size_t)n == w->bytes) {
      relay_write_free(w);
      return 0;
    }
    relay_write_skip(w, (size_t)n);
    w->bytes -= (size_t)n;
  }
  int rc = uv_write(&w->req, stream, w->bufs, w->nbufs, relay_write_done);
  if (rc) {
    relay_write_free(w);
    return rc;
  }
  *queued = w->bytes;
  return 0;
}
