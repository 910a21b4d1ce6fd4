/* Streaming UTF-8 cleaning: each case fed whole, cut at every byte and one
 * byte at a time must give the same output; valid text passes unchanged,
 * each maximal invalid subpart becomes one U+FFFD, a cut end becomes one. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "relay/utf8.h"

#define FFFD "\xEF\xBF\xBD"

/* Feed in pieces of at most step bytes, the first cut at cut. */
static void run(const char *in, size_t n, size_t cut, size_t step, relay_buf_t *out) {
  relay_utf8_tail_t tail = {{0}, 0};
  size_t i = 0;
  if (cut > 0 && cut < n) {
    CHECK(relay_utf8_clean(&tail, in, cut, out) == 0);
    i = cut;
  }
  while (i < n) {
    size_t k = n - i < step ? n - i : step;
    CHECK(relay_utf8_clean(&tail, in + i, k, out) == 0);
    i += k;
  }
  CHECK(relay_utf8_finish(&tail, out) == 0);
  CHECK(tail.n == 0);
}

static void expect(const char *in, size_t n, const char *want) {
  relay_buf_t whole;
  relay_buf_init(&whole);
  CHECK(relay_utf8_clean_all(in, n, &whole) == 0);
  CHECK_STR(whole.data ? whole.data : "", whole.len, want);
  CHECK(relay_utf8_valid(whole.data ? whole.data : "", whole.len));
  CHECK(relay_utf8_valid(in, n) == (strlen(want) == n && memcmp(in, want, n) == 0));
  for (size_t cut = 0; cut <= n; cut++) {
    for (size_t step = 1; step <= 2; step++) {
      relay_buf_t out;
      relay_buf_init(&out);
      run(in, n, cut, step == 1 ? 1 : n + 1, &out);
      CHECK_MEM(out.data ? out.data : "", out.len, whole.data ? whole.data : "", whole.len);
      relay_buf_dispose(&out);
    }
  }
  relay_buf_dispose(&whole);
}

#define EXPECT(in, want) expect(in, sizeof(in) - 1, want)

int main(void) {
  EXPECT("", "");
  EXPECT("plain ascii", "plain ascii");
  EXPECT("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x8C\xA4", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x8C\xA4");
  EXPECT("\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF");                 /* U+10FFFF, the last */
  EXPECT("a\x80" "b", "a" FFFD "b");                              /* lone continuation */
  EXPECT("\xC0\xAF", FFFD FFFD);                                  /* overlong: C0 never starts */
  EXPECT("\xE0\x80\x80", FFFD FFFD FFFD);                         /* overlong 3-byte */
  EXPECT("\xED\xA0\x80", FFFD FFFD FFFD);                         /* a surrogate */
  EXPECT("\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD);                /* past U+10FFFF */
  EXPECT("\xE2\x82" "x", FFFD "x");                               /* maximal subpart: one U+FFFD */
  EXPECT("\xF0\x9F\x8C" "\xC3\xA9", FFFD "\xC3\xA9");
  EXPECT("a\xE2\x82", "a" FFFD);                                  /* cut at the end of the text */
  EXPECT("\xFF\xFE", FFFD FFFD);
  return check_report("test_utf8");
}
