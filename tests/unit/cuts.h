/* The cut variants streaming tests run a text through: one cut at every
 * position, every pair of positions (texts up to pair_limit bytes), and one
 * byte at a time. A parser fed any of them must give what it gives whole. */
#ifndef RELAY_TEST_CUTS_H
#define RELAY_TEST_CUTS_H

#include <stdlib.h>

typedef void (*cuts_variant_fn)(void *ud, const size_t *cuts, size_t ncuts);

static inline void for_each_cut(size_t len, size_t pair_limit, cuts_variant_fn variant, void *ud) {
  size_t cuts[2];
  for (size_t a = 0; a <= len; a++) {
    cuts[0] = a;
    variant(ud, cuts, 1);
  }
  if (len <= pair_limit) {
    for (size_t a = 0; a <= len; a++)
      for (size_t b = a; b <= len; b++) {
        cuts[0] = a;
        cuts[1] = b;
        variant(ud, cuts, 2);
      }
  }
  size_t *all = malloc((len ? len : 1) * sizeof *all);
  if (!all) abort();
  for (size_t k = 0; k + 1 < len; k++) all[k] = k + 1;
  variant(ud, all, len ? len - 1 : 0);
  free(all);
}

#endif
