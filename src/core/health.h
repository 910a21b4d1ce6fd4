/* The results of active health checks, posted by the one thread that runs
 * them (the admin thread) to every worker. Cells are indexed by the slots of
 * relay_metrics_slots_t (upstream, server), which keep their meaning across
 * reloads, so a worker that reloaded a moment before or after the checker
 * still applies each result to the server it was made for.
 *
 * One writer, any number of readers, no lock: the writer stores a cell
 * (a sequence number and the verdict in one 64-bit atomic, so a reader never
 * sees one without the other), then bumps the board's generation with a
 * release store; a reader that sees a new generation (acquire) walks its
 * servers and applies every cell whose sequence it has not applied yet. A
 * worker reads one generation per poll, not per request. */
#ifndef RELAY_CORE_HEALTH_H
#define RELAY_CORE_HEALTH_H

#include <stdatomic.h>
#include <stdint.h>

#include "metrics.h"

typedef struct relay_health_board_s {
  _Atomic(uint64_t) gen;
  /* (seq << 1) | passed; 0 = no result yet. */
  _Atomic(uint64_t) cell[RELAY_METRICS_MAX_UPSTREAMS][RELAY_METRICS_MAX_SERVERS];
} relay_health_board_t;

/* Writer: one check's result. */
static inline void relay_health_post(relay_health_board_t *b, unsigned upstream, unsigned server, int passed) {
  if (upstream >= RELAY_METRICS_MAX_UPSTREAMS || server >= RELAY_METRICS_MAX_SERVERS) return;
  _Atomic(uint64_t) *c = &b->cell[upstream][server];
  uint64_t seq = (atomic_load_explicit(c, memory_order_relaxed) >> 1) + 1;
  atomic_store_explicit(c, seq << 1 | (passed ? 1u : 0u), memory_order_relaxed);
  atomic_store_explicit(&b->gen, atomic_load_explicit(&b->gen, memory_order_relaxed) + 1, memory_order_release);
}

static inline uint64_t relay_health_gen(const relay_health_board_t *b) {
  return atomic_load_explicit((_Atomic(uint64_t) *)&b->gen, memory_order_acquire);
}

/* Reader: the cell (0 = no result yet). */
static inline uint64_t relay_health_cell(const relay_health_board_t *b, unsigned upstream, unsigned server) {
  if (upstream >= RELAY_METRICS_MAX_UPSTREAMS || server >= RELAY_METRICS_MAX_SERVERS) return 0;
  return atomic_load_explicit((_Atomic(uint64_t) *)&b->cell[upstream][server], memory_order_relaxed);
}

#endif
