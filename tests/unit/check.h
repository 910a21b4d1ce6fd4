/* Minimal assertion helpers for the C unit tests: each failure prints where it
 * happened and the test exits non-zero at the end with a "N passed, N failed" line. */
#ifndef RELAY_TEST_CHECK_H
#define RELAY_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (cond) {                                                            \
      check_passed++;                                                      \
    } else {                                                               \
      check_failed++;                                                      \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                      \
  } while (0)

/* Compare two byte strings and show both on failure. */
#define CHECK_MEM(a, alen, b, blen)                                              \
  do {                                                                           \
    size_t la_ = (alen), lb_ = (blen);                                           \
    if (la_ == lb_ && memcmp((a), (b), la_) == 0) {                              \
      check_passed++;                                                            \
    } else {                                                                     \
      check_failed++;                                                            \
      fprintf(stderr, "%s:%d: mismatch:\n  got      [%.*s] (%zu)\n  expected [%.*s] (%zu)\n", \
              __FILE__, __LINE__, (int)la_, (const char *)(a), la_, (int)lb_,    \
              (const char *)(b), lb_);                                           \
    }                                                                            \
  } while (0)

#define CHECK_STR(a, alen, s) CHECK_MEM(a, alen, s, strlen(s))

static inline int check_report(const char *name) {
  printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
  return check_failed ? 1 : 0;
}

#endif
