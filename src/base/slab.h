/* Read buffers and writes shared by both sides of the proxy.
 *
 * Reads land in 64 KiB slabs from a per-worker free list. A slab is reference
 * counted: body bytes are forwarded by pointing a write at the slab instead of
 * copying them, and the slab goes back to the free list when the last write
 * that points into it completes. An idle connection holds no slab at all. */
#ifndef RELAY_SLAB_H
#define RELAY_SLAB_H

#include <stddef.h>
#include <uv.h>

#include "relay/buf.h"

#define RELAY_SLAB_SIZE (64 * 1024)
#define RELAY_SLAB_POOL_MAX 64

/* Flow control, the same on both sides: a direction stops reading when this
 * many bytes wait to be written on the other side, and resumes below the low
 * mark. With one slab in flight the bytes held per direction stay under
 * high + one slab, whatever the size of the body. */
#define RELAY_HIGH_WATER (256 * 1024)
#define RELAY_LOW_WATER (64 * 1024)

typedef struct relay_slab_s {
  struct relay_slab_s *next;
  unsigned refs;
  char data[RELAY_SLAB_SIZE];
} relay_slab_t;

struct relay_write_s;

typedef struct relay_slab_pool_s {
  relay_slab_t *free;
  size_t nfree;
  size_t live; /* slabs handed out and not yet returned */
  /* Write requests are recycled too: a stream of small events costs no
   * malloc per event once the pool is warm. */
  struct relay_write_s *free_writes;
  size_t nfree_writes;
} relay_slab_pool_t;

void relay_slab_pool_init(relay_slab_pool_t *p);
void relay_slab_pool_dispose(relay_slab_pool_t *p);
relay_slab_t *relay_slab_get(relay_slab_pool_t *p);
void relay_slab_unref(relay_slab_pool_t *p, relay_slab_t *s);
static inline void relay_slab_ref(relay_slab_t *s) { s->refs++; }

struct relay_write_s;
typedef void (*relay_write_cb)(struct relay_write_s *w, int status);

#define RELAY_WRITE_MAX_BUFS 6
#define RELAY_WRITE_INLINE 1024 /* small payloads (one SSE event) are copied here */
#define RELAY_WRITE_POOL_MAX 256

/* One write with everything it keeps alive: slab references, an owned heap
 * block and a small inline area for chunk-size lines and small payloads. It
 * goes out at once when the socket takes it (relay_write_send), else as a
 * uv_write of what is left. */
typedef struct relay_write_s {
  uv_write_t req;
  relay_slab_pool_t *pool;
  relay_slab_t *slab;
  char *heap;
  size_t bytes;
  relay_write_cb cb;
  void *owner;
  uv_buf_t bufs[RELAY_WRITE_MAX_BUFS];
  unsigned nbufs;
  struct relay_write_s *next_free;
  size_t inline_used;
  char inline_buf[RELAY_WRITE_INLINE];
} relay_write_t;

relay_write_t *relay_write_new(relay_slab_pool_t *pool, relay_write_cb cb, void *owner);
/* Add a buffer that lives in slab s (taking a reference), in the write's own
 * heap block, or in static memory. */
void relay_write_add_slab(relay_write_t *w, relay_slab_t *s, const char *data, size_t len);
void relay_write_add_static(relay_write_t *w, const char *data, size_t len);
/* Take ownership of a malloc'd block. At most one per write. */
void relay_write_add_heap(relay_write_t *w, char *data, size_t len);
/* Format "%zx\r\n" into the inline area. */
void relay_write_add_chunk_size(relay_write_t *w, size_t len);
/* Copy data into the write: inline when it fits, else one heap block.
 * Returns 0 or UV_ENOMEM. */
int relay_write_add_copy(relay_write_t *w, const char *data, size_t len);
/* The write takes b's bytes, to be added in pieces with
 * relay_write_add_static: copied into its inline area when they fit (b is
 * emptied and keeps its storage), else b's storage itself, which the write
 * then owns (b is left as new; the write holds no other heap block).
 * Returns where the bytes now are. */
const char *relay_write_take(relay_write_t *w, relay_buf_t *b);
/* Send on stream: what the socket takes at once goes now, the rest is
 * queued. *queued is the number of bytes left queued: 0 means the write is
 * done and already released (its callback is never called); otherwise the
 * callback comes when they are written, with w->bytes equal to *queued. On
 * an error the write is released and the error returned. */
int relay_write_send(relay_write_t *w, uv_stream_t *stream, size_t *queued);
void relay_write_free(relay_write_t *w);

#endif
