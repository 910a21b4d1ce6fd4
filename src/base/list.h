/* Intrusive doubly linked lists (as in the Linux kernel and libuv's queue):
 * the links live inside the listed structs, so listing never allocates. */
#ifndef RELAY_LIST_H
#define RELAY_LIST_H

#include <stddef.h>

typedef struct relay_list_s {
  struct relay_list_s *prev, *next;
} relay_list_t;

static inline void relay_list_init(relay_list_t *l) { l->prev = l->next = l; }
static inline int relay_list_empty(const relay_list_t *l) { return l->next == l; }

/* Append n at the tail of the list headed by head. */
static inline void relay_list_push(relay_list_t *head, relay_list_t *n) {
  n->next = head;
  n->prev = head->prev;
  head->prev->next = n;
  head->prev = n;
}

/* Unlink n; it is left as an empty list, so removing it twice is harmless. */
static inline void relay_list_remove(relay_list_t *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  relay_list_init(n);
}

#define relay_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
