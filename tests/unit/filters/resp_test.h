/* Helpers of the Responses bridge unit tests: fixtures, JSON lookups by a
 * dotted path ("messages.3.tool_calls.0.function.name"), validity checks
 * (jsmn, through relay_json_find's strict check) and an SSE event splitter. */
#ifndef RELAY_TEST_RESP_TEST_H
#define RELAY_TEST_RESP_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "relay/buf.h"
#include "relay/json_splice.h"

#define RT_MAX_SEGS 16

/* A fixture from tests/unit/filters/data, NUL-terminated; aborts if absent. */
static char *rt_fixture(const char *name, size_t *len) {
  char path[512];
  snprintf(path, sizeof path, "%s/data/%s", RELAY_TEST_DIR, name);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open fixture %s\n", path);
    exit(2);
  }
  relay_buf_t b;
  relay_buf_init(&b);
  char tmp[4096];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) relay_buf_append(&b, tmp, n);
  fclose(f);
  relay_buf_append(&b, "", 1);
  *len = b.len - 1;
  return b.data;
}

/* Whole document is valid JSON (jsmn tokens + the strict separator check). */
static int rt_valid(const char *js, size_t len) {
  size_t s, e;
  return relay_json_find(js, len, NULL, 0, &s, &e) == 0;
}

/* Bytes are valid UTF-8 (no overlongs, no surrogates). */
static int rt_utf8(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    unsigned c = u[i];
    size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!len || i + len > n) return 0;
    for (size_t k = 1; k < len; k++)
      if ((u[i + k] & 0xC0) != 0x80) return 0;
    if (len == 3 && c == 0xE0 && u[i + 1] < 0xA0) return 0;
    if (len == 3 && c == 0xED && u[i + 1] > 0x9F) return 0;
    if (len == 4 && c == 0xF0 && u[i + 1] < 0x90) return 0;
    if (len == 4 && c == 0xF4 && u[i + 1] > 0x8F) return 0;
    i += len;
  }
  return 1;
}

/* Split "a.0.b" into path segments (numbers are array positions). */
static size_t rt_path(const char *path, relay_json_path_seg_t *segs, char *store, size_t cap) {
  size_t n = 0;
  snprintf(store, cap, "%s", path);
  char *p = store;
  while (*p && n < RT_MAX_SEGS) {
    char *dot = strchr(p, '.');
    if (dot) *dot = 0;
    char *end;
    long idx = strtol(p, &end, 10);
    if (*p && *end == 0) {
      segs[n].key = NULL;
      segs[n].key_len = 0;
      segs[n].index = idx;
    } else {
      segs[n].key = p;
      segs[n].key_len = strlen(p);
      segs[n].index = 0;
    }
    n++;
    if (!dot) break;
    p = dot + 1;
  }
  return n;
}

/* The raw text of the value at path, NUL-terminated in a rotating static
 * buffer; "<missing>" when there is none. */
static const char *rt_raw(const char *js, size_t len, const char *path) {
  static char bufs[8][65536];
  static int next;
  relay_json_path_seg_t segs[RT_MAX_SEGS];
  char store[256];
  size_t s, e, depth = path && *path ? rt_path(path, segs, store, sizeof store) : 0;
  if (relay_json_find(js, len, segs, depth, &s, &e) != 0) return "<missing>";
  char *b = bufs[next++ % 8];
  size_t n = e - s < 65535 ? e - s : 65535;
  memcpy(b, js + s, n);
  b[n] = 0;
  return b;
}

/* The decoded string at path, or "<missing>" / "<not a string>". */
static const char *rt_str(const char *js, size_t len, const char *path) {
  static char bufs[8][65536];
  static int next;
  const char *raw = rt_raw(js, len, path);
  if (strcmp(raw, "<missing>") == 0) return raw;
  size_t n = strlen(raw);
  if (n < 2 || raw[0] != '"') return "<not a string>";
  relay_buf_t out;
  relay_buf_init(&out);
  if (relay_json_unescape(raw + 1, n - 2, &out)) return "<bad escape>";
  char *b = bufs[next++ % 8];
  size_t m = out.len < 65535 ? out.len : 65535;
  if (m) memcpy(b, out.data, m);
  b[m] = 0;
  relay_buf_dispose(&out);
  return b;
}

#define RAW(js, path) rt_raw((js).data, (js).len, path)
#define STR(js, path) rt_str((js).data, (js).len, path)
#define CHECK_EQ_STR(got, want)                                                          \
  do {                                                                                   \
    const char *g_ = (got), *w_ = (want);                                                \
    if (strcmp(g_, w_) == 0) {                                                           \
      check_passed++;                                                                    \
    } else {                                                                             \
      check_failed++;                                                                    \
      fprintf(stderr, "%s:%d: got [%s]\n    expected [%s]\n", __FILE__, __LINE__, g_, w_); \
    }                                                                                    \
  } while (0)
#define CHECK_HAS(hay, needle)                                                             \
  do {                                                                                     \
    const char *h_ = (hay), *n_ = (needle);                                                \
    if (strstr(h_, n_)) {                                                                  \
      check_passed++;                                                                      \
    } else {                                                                               \
      check_failed++;                                                                      \
      fprintf(stderr, "%s:%d: [%s] not found in [%.400s]\n", __FILE__, __LINE__, n_, h_); \
    }                                                                                      \
  } while (0)

/* Number of elements of the array (or members of the object) at path. */
static long rt_count(const char *js, size_t len, const char *path) {
  char p[256];
  long n = 0;
  for (;; n++) {
    snprintf(p, sizeof p, "%s%s%ld", path, *path ? "." : "", n);
    if (strcmp(rt_raw(js, len, p), "<missing>") == 0) return n;
  }
}
#define COUNT(js, path) rt_count((js).data, (js).len, path)

#endif
