/* Writes over a real socket pair: a write the socket takes whole is done at
 * once (no callback, released to the pool); one it takes in part is queued
 * from where the socket stopped; a write behind a queued one waits its turn
 * (the bytes arrive in call order); a failed send releases the write. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "slab.h"

#define BIG (4u << 20)

typedef struct {
  int calls;
  int status;
  size_t bytes;
} done_t;

static void on_done(relay_write_t *w, int status) {
  done_t *d = w->owner;
  d->calls++;
  d->status = status;
  d->bytes = w->bytes;
}

typedef struct {
  int fd;
  size_t want;
  char *got;
  size_t len;
} reader_t;

static void *read_all(void *arg) {
  reader_t *r = arg;
  while (r->len < r->want) {
    ssize_t n = read(r->fd, r->got + r->len, r->want - r->len);
    if (n <= 0) break;
    r->len += (size_t)n;
  }
  return NULL;
}

/* One end as a libuv pipe with small socket buffers, so a large write
 * cannot go out whole. */
static void open_pair(uv_loop_t *loop, uv_pipe_t *p, int fds[2]) {
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  int small = 16 * 1024;
  setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  CHECK(uv_pipe_init(loop, p, 0) == 0);
  CHECK(uv_pipe_open(p, fds[0]) == 0);
}

static void test_whole_write_is_done_at_once(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  relay_slab_pool_t pool;
  relay_slab_pool_init(&pool);
  uv_pipe_t p;
  int fds[2];
  open_pair(&loop, &p, fds);
  done_t d = {0};
  relay_write_t *w = relay_write_new(&pool, on_done, &d);
  relay_write_add_static(w, "HTTP/1.1 200 OK\r\n\r\n", 19);
  CHECK(relay_write_add_copy(w, "hello", 5) == 0);
  size_t queued = 99;
  CHECK(relay_write_send(w, (uv_stream_t *)&p, &queued) == 0);
  CHECK(queued == 0);
  CHECK(pool.nfree_writes == 1); /* released at once */
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK(d.calls == 0);
  char buf[64];
  ssize_t n = read(fds[1], buf, sizeof buf);
  CHECK_MEM(buf, n > 0 ? (size_t)n : 0, "HTTP/1.1 200 OK\r\n\r\nhello", 24);
  uv_close((uv_handle_t *)&p, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  close(fds[1]);
  relay_slab_pool_dispose(&pool);
  CHECK(uv_loop_close(&loop) == 0);
}

/* Pieces copied side by side into the inline area become one buffer (one
 * plain write); pieces elsewhere stay apart. */
static void test_adjacent_pieces_join(void) {
  relay_slab_pool_t pool;
  relay_slab_pool_init(&pool);
  relay_write_t *w = relay_write_new(&pool, NULL, NULL);
  CHECK(relay_write_add_copy(w, "HTTP/1.1 200 OK\r\n\r\n", 19) == 0);
  relay_write_add_chunk_size(w, 300);
  CHECK(relay_write_add_copy(w, "data: x\n\n", 10) == 0);
  CHECK(w->nbufs == 1 && w->bytes == 19 + 5 + 10);
  CHECK_MEM(w->bufs[0].base, w->bufs[0].len, "HTTP/1.1 200 OK\r\n\r\n12c\r\ndata: x\n\n", 34);
  relay_write_add_static(w, "\r\n", 2);
  CHECK(w->nbufs == 2 && w->bytes == 36);
  relay_write_free(w);
  relay_slab_pool_dispose(&pool);
}

static void test_partial_write_queues_the_rest_in_order(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  relay_slab_pool_t pool;
  relay_slab_pool_init(&pool);
  uv_pipe_t p;
  int fds[2];
  open_pair(&loop, &p, fds);
  char *big = malloc(BIG);
  for (size_t i = 0; i < BIG; i++) big[i] = (char)('a' + i % 26);
  /* three buffers, the socket stops inside the second */
  done_t d1 = {0}, d2 = {0};
  relay_write_t *w1 = relay_write_new(&pool, on_done, &d1);
  relay_write_add_static(w1, "<head>", 6);
  relay_write_add_heap(w1, big, BIG);
  relay_write_add_static(w1, "<tail>", 6);
  size_t q1 = 0, q2 = 0;
  CHECK(relay_write_send(w1, (uv_stream_t *)&p, &q1) == 0);
  CHECK(q1 > 0 && q1 < BIG + 12); /* some went at once, the rest queued */
  /* queued behind the first, even though the socket may have room by now */
  relay_write_t *w2 = relay_write_new(&pool, on_done, &d2);
  relay_write_add_static(w2, "<next>", 6);
  CHECK(relay_write_send(w2, (uv_stream_t *)&p, &q2) == 0);
  CHECK(q2 == 6);
  reader_t r = {fds[1], BIG + 18, malloc(BIG + 18), 0};
  pthread_t t;
  pthread_create(&t, NULL, read_all, &r);
  while (d1.calls + d2.calls < 2 && uv_run(&loop, UV_RUN_ONCE)) {
  }
  pthread_join(t, NULL);
  CHECK(d1.calls == 1 && d1.status == 0 && d1.bytes == q1);
  CHECK(d2.calls == 1 && d2.status == 0 && d2.bytes == 6);
  CHECK(r.len == BIG + 18);
  CHECK(memcmp(r.got, "<head>", 6) == 0);
  big = malloc(BIG);
  for (size_t i = 0; i < BIG; i++) big[i] = (char)('a' + i % 26);
  CHECK(memcmp(r.got + 6, big, BIG) == 0);
  CHECK(memcmp(r.got + 6 + BIG, "<tail><next>", 12) == 0);
  free(big);
  free(r.got);
  uv_close((uv_handle_t *)&p, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  close(fds[1]);
  relay_slab_pool_dispose(&pool);
  CHECK(uv_loop_close(&loop) == 0);
}

static void test_failed_send_releases_the_write(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  relay_slab_pool_t pool;
  relay_slab_pool_init(&pool);
  uv_pipe_t p;
  int fds[2];
  open_pair(&loop, &p, fds);
  close(fds[1]);
  done_t d = {0};
  relay_write_t *w = relay_write_new(&pool, on_done, &d);
  CHECK(relay_write_add_copy(w, "lost", 4) == 0);
  size_t queued = 99;
  int rc = relay_write_send(w, (uv_stream_t *)&p, &queued);
  CHECK(rc == UV_EPIPE || rc == UV_ECONNRESET);
  CHECK(queued == 0);
  CHECK(pool.nfree_writes == 1);
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK(d.calls == 0);
  uv_close((uv_handle_t *)&p, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  relay_slab_pool_dispose(&pool);
  CHECK(uv_loop_close(&loop) == 0);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  test_whole_write_is_done_at_once();
  test_adjacent_pieces_join();
  test_partial_write_queues_the_rest_in_order();
  test_failed_send_releases_the_write();
  return check_report("test_slab");
}
