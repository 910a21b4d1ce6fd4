/* Balancer tests with a fake clock: spread by least outstanding with round
 * robin ties, passive back-off growth, cap and reset, the one-request trial
 * after a back-off, active checks, "no server" at once, and server lists. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "balancer.h"

/* Equal servers, each request done before the next: strict rotation. */
static void test_round_robin(void) {
  relay_balancer_t b;
  CHECK(relay_balancer_init(&b, 3, 0, 0) == 0);
  int bad = 0, count[3] = {0};
  for (int i = 0; i < 3000; i++) {
    int s = relay_balancer_pick(&b, 0, 0);
    if (s != i % 3) bad++;
    if (s >= 0) count[s]++, relay_balancer_done(&b, (unsigned)s);
  }
  CHECK(bad == 0);
  CHECK(count[0] == 1000 && count[1] == 1000 && count[2] == 1000);
}

/* Requests that stay open: each pick goes to a least loaded server, so the
 * loads never differ by more than one. */
static void test_least_outstanding(void) {
  relay_balancer_t b;
  relay_balancer_init(&b, 4, 0, 0);
  int spread_bad = 0;
  for (int i = 0; i < 400; i++) {
    int s = relay_balancer_pick(&b, 0, 0);
    CHECK(s >= 0);
    uint32_t lo = UINT32_MAX, hi = 0;
    for (unsigned k = 0; k < 4; k++) {
      if (b.servers[k].outstanding < lo) lo = b.servers[k].outstanding;
      if (b.servers[k].outstanding > hi) hi = b.servers[k].outstanding;
    }
    if (hi - lo > 1) spread_bad++;
  }
  CHECK(spread_bad == 0);
  CHECK(b.servers[0].outstanding == 100 && b.servers[3].outstanding == 100);
  /* Server 2 finishes 30 requests: the next 30 picks all go to it. */
  for (int i = 0; i < 30; i++) relay_balancer_done(&b, 2);
  int to2 = 0;
  for (int i = 0; i < 30; i++) to2 += relay_balancer_pick(&b, 0, 0) == 2;
  CHECK(to2 == 30);
  /* Then the four are level again and rotation resumes after server 2. */
  CHECK(relay_balancer_pick(&b, 0, 0) == 3);
  CHECK(relay_balancer_pick(&b, 0, 0) == 0);
  /* A slow server (many outstanding) gets nothing until it catches up. */
  relay_balancer_t c;
  relay_balancer_init(&c, 2, 0, 0);
  for (int i = 0; i < 10; i++) relay_balancer_pick(&c, 0, 0);
  for (int i = 0; i < 5; i++) relay_balancer_done(&c, 1); /* 0 has 5, 1 has 0 */
  int to1 = 0;
  for (int i = 0; i < 5; i++) to1 += relay_balancer_pick(&c, 0, 0) == 1;
  CHECK(to1 == 5);
  /* done past zero stays at zero; bad indexes are ignored. */
  relay_balancer_t d;
  relay_balancer_init(&d, 1, 0, 0);
  relay_balancer_done(&d, 0);
  relay_balancer_done(&d, 7);
  CHECK(d.servers[0].outstanding == 0);
}

static void test_init(void) {
  relay_balancer_t b;
  CHECK(relay_balancer_init(&b, 0, 0, 0) == RELAY_EINVAL);
  CHECK(relay_balancer_init(&b, RELAY_BALANCER_MAX_SERVERS + 1, 0, 0) == RELAY_EINVAL);
  CHECK(relay_balancer_init(&b, RELAY_BALANCER_MAX_SERVERS, 0, 0) == 0);
  CHECK(b.backoff_min_ms == 1000 && b.backoff_max_ms == 60000);
  CHECK(relay_balancer_init(&b, 1, 500, 100) == 0);
  CHECK(b.backoff_max_ms == 500);
}

/* 1 s, 2 s, 4 s ... 32 s, then 60 s however many more failures. */
static void test_backoff_growth(void) {
  relay_balancer_t b;
  relay_balancer_init(&b, 2, 0, 0);
  static const uint64_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};
  uint64_t now = 1000000;
  int bad = 0;
  for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
    /* The trial request goes to server 0 (server 1 excluded), whose connect fails. */
    int s = relay_balancer_pick(&b, now, 1u << 1);
    if (s != 0) {
      bad++;
      break;
    }
    relay_balancer_failed(&b, 0, now);
    relay_balancer_done(&b, 0);
    if (b.servers[0].retry_at != now + want[k]) bad++;
    /* Down for exactly the back-off: never picked before, picked at the end. */
    for (int i = 0; i < 4; i++) {
      int p = relay_balancer_pick(&b, now + want[k] - 1, 0);
      if (p != 1) bad++;
      relay_balancer_done(&b, 1);
    }
    if (relay_balancer_is_up(&b, 0, now + want[k] - 1)) bad++;
    if (!relay_balancer_is_up(&b, 0, now + want[k])) bad++;
    now += want[k];
  }
  CHECK(bad == 0);
  CHECK(relay_balancer_backoff_ms(&b, 0) == 0);
  CHECK(relay_balancer_backoff_ms(&b, 1) == 1000);
  CHECK(relay_balancer_backoff_ms(&b, 7) == 60000);
  CHECK(relay_balancer_backoff_ms(&b, UINT32_MAX) == 60000);
  /* A connect that succeeds resets it: the next failure is 1 s again. */
  int s = relay_balancer_pick(&b, now, 2); /* server 1 excluded: the trial goes to 0 */
  CHECK(s == 0);
  relay_balancer_connected(&b, 0);
  relay_balancer_done(&b, 0);
  CHECK(b.servers[0].failures == 0);
  relay_balancer_failed(&b, 0, now);
  CHECK(b.servers[0].retry_at == now + 1000);
}

/* Failures of requests already in flight when the server died are one
 * outage: the back-off does not grow with the number of them. */
static void test_overlapping_failures(void) {
  relay_balancer_t b;
  relay_balancer_init(&b, 2, 0, 0);
  for (int i = 0; i < 6; i++) relay_balancer_pick(&b, 0, 0); /* three each */
  relay_balancer_failed(&b, 0, 100);
  relay_balancer_failed(&b, 0, 150);
  relay_balancer_failed(&b, 0, 300);
  CHECK(b.servers[0].failures == 1);
  CHECK(b.servers[0].retry_at == 1100);
}

/* After a back-off only one request at a time may try the server. */
static void test_trial(void) {
  relay_balancer_t b;
  relay_balancer_init(&b, 2, 0, 0);
  relay_balancer_failed(&b, 0, 0);
  uint64_t t = 1000;
  int first = relay_balancer_pick(&b, t, 0); /* 0 has no outstanding: least loaded */
  CHECK(first == 0);
  int others0 = 0;
  for (int i = 0; i < 10; i++) others0 += relay_balancer_pick(&b, t + 1, 0) == 0;
  CHECK(others0 == 0); /* all ten went to server 1 while the trial runs */
  relay_balancer_connected(&b, 0);
  CHECK(relay_balancer_pick(&b, t + 2, 0) == 0); /* up again: 1 vs 10 outstanding */
  CHECK(relay_balancer_pick(&b, t + 2, 0) == 0);

  /* A single server in trial with a request on it: "no server" at once. */
  relay_balancer_t one;
  relay_balancer_init(&one, 1, 0, 0);
  relay_balancer_failed(&one, 0, 0);
  CHECK(relay_balancer_pick(&one, 999, 0) == RELAY_ENOSERVER);
  CHECK(relay_balancer_pick(&one, 1000, 0) == 0);
  CHECK(relay_balancer_pick(&one, 1001, 0) == RELAY_ENOSERVER);
  CHECK(relay_balancer_is_up(&one, 0, 1001)); /* in trial: counts as up for /healthz */
  /* The trial abandoned (client gone) before its connect finished: the next may try. */
  relay_balancer_done(&one, 0);
  CHECK(relay_balancer_pick(&one, 1002, 0) == 0);
  relay_balancer_failed(&one, 0, 1500);
  CHECK(one.servers[0].failures == 2 && one.servers[0].retry_at == 3500);
}

/* Active checks take servers out and bring them back, back-off or not. */
static void test_active(void) {
  relay_balancer_t b;
  relay_balancer_init(&b, 3, 0, 0);
  relay_balancer_checked(&b, 1, 0);
  int bad = 0;
  for (int i = 0; i < 30; i++) {
    int s = relay_balancer_pick(&b, 0, 0);
    if (s == 1 || s < 0) bad++;
    if (s >= 0) relay_balancer_done(&b, (unsigned)s);
  }
  CHECK(bad == 0);
  CHECK(!relay_balancer_is_up(&b, 1, 0));
  /* Out stays out past any back-off; a connect success does not undo it. */
  relay_balancer_connected(&b, 1);
  CHECK(!relay_balancer_is_up(&b, 1, 1000000));
  relay_balancer_checked(&b, 1, 1);
  CHECK(relay_balancer_is_up(&b, 1, 0));
  int to1 = 0;
  for (int i = 0; i < 30; i++) {
    int s = relay_balancer_pick(&b, 0, 0);
    to1 += s == 1;
    if (s >= 0) relay_balancer_done(&b, (unsigned)s);
  }
  CHECK(to1 == 10);
  /* A passing check ends a long back-off at once. */
  for (int i = 0; i < 6; i++) relay_balancer_failed(&b, 2, (uint64_t)i * 100000);
  CHECK(b.servers[2].failures == 6);
  CHECK(!relay_balancer_is_up(&b, 2, 500001));
  relay_balancer_checked(&b, 2, 1);
  CHECK(relay_balancer_is_up(&b, 2, 500001));
  CHECK(b.servers[2].failures == 0);
  /* The trial rule no longer applies: several requests at once. */
  int to2 = 0;
  for (int i = 0; i < 6; i++) to2 += relay_balancer_pick(&b, 500002, 0) == 2;
  CHECK(to2 == 2);
  relay_balancer_checked(&b, 9, 0); /* bad index: ignored */
}

/* Every server down or out: reported at once, and each coming back counts. */
static void test_all_down(void) {
  relay_balancer_t b;
  relay_balancer_init(&b, 3, 0, 0);
  CHECK(relay_balancer_any_up(&b, 0));
  relay_balancer_failed(&b, 0, 0);
  relay_balancer_failed(&b, 1, 0);
  relay_balancer_checked(&b, 2, 0);
  CHECK(!relay_balancer_any_up(&b, 10));
  CHECK(relay_balancer_pick(&b, 10, 0) == RELAY_ENOSERVER);
  CHECK(b.servers[0].outstanding == 0 && b.servers[1].outstanding == 0 && b.servers[2].outstanding == 0);
  CHECK(relay_balancer_any_up(&b, 1000)); /* 0 and 1 in trial */
  relay_balancer_checked(&b, 2, 1);
  CHECK(relay_balancer_pick(&b, 10, 0) == 2);
  /* Excluding the servers a request already failed on. */
  relay_balancer_t c;
  relay_balancer_init(&c, 2, 0, 0);
  CHECK(relay_balancer_pick(&c, 0, 1u) == 1);
  CHECK(relay_balancer_pick(&c, 0, 2u) == 0);
  CHECK(relay_balancer_pick(&c, 0, 3u) == RELAY_ENOSERVER);
  CHECK(relay_balancer_pick(&c, 0, 0xFFFFFFFCu) >= 0); /* bits past n mean nothing */
  /* The failover path: a refused connect, then the same request elsewhere. */
  int s = relay_balancer_pick(&c, 5, 0);
  relay_balancer_failed(&c, (unsigned)s, 5);
  relay_balancer_done(&c, (unsigned)s);
  int s2 = relay_balancer_pick(&c, 5, 1u << s);
  CHECK(s2 >= 0 && s2 != s);
  relay_balancer_failed(&c, (unsigned)s2, 6);
  relay_balancer_done(&c, (unsigned)s2);
  CHECK(relay_balancer_pick(&c, 6, 0) == RELAY_ENOSERVER);
  CHECK(relay_balancer_is_up(&c, 5, 0) == 0);
}

/* ---- Server lists ---- */

static int parse(const char *list, relay_server_addr_t *out, size_t max, char *err) {
  return relay_balancer_parse_servers(list, out, max, err, 256);
}

static void test_parse_good(void) {
  relay_server_addr_t a[RELAY_BALANCER_MAX_SERVERS];
  char err[256];
  CHECK(parse("127.0.0.1:1234", a, 16, err) == 1);
  CHECK(strcmp(a[0].host, "127.0.0.1") == 0 && a[0].port == 1234 && !a[0].ipv6);
  CHECK(parse("gpu-1.lan:8000,gpu_2:8001,[::1]:9000", a, 16, err) == 3);
  CHECK(strcmp(a[0].host, "gpu-1.lan") == 0 && a[0].port == 8000);
  CHECK(strcmp(a[1].host, "gpu_2") == 0 && a[1].port == 8001);
  CHECK(strcmp(a[2].host, "::1") == 0 && a[2].port == 9000 && a[2].ipv6);
  CHECK(parse(" a:1 ,\tb:2\t, [fe80::1%eth0]:65535 ", a, 16, err) == 3);
  CHECK(strcmp(a[0].host, "a") == 0 && strcmp(a[1].host, "b") == 0);
  CHECK(strcmp(a[2].host, "fe80::1%eth0") == 0 && a[2].port == 65535);
  CHECK(parse("[::ffff:10.0.0.1]:1,[2001:DB8::A]:00080", a, 16, err) == 2);
  CHECK(strcmp(a[0].host, "::ffff:10.0.0.1") == 0 && a[1].port == 80);
  CHECK(parse("a:1,b:1,a:2", a, 3, err) == 3);
  char big[300];
  memset(big, 'h', 255);
  strcpy(big + 255, ":80");
  CHECK(parse(big, a, 16, err) == 1 && strlen(a[0].host) == 255);
}

/* Each bad list fails with a message that names the entry and the fault. */
static void test_parse_bad(void) {
  static const struct {
    const char *list;
    const char *msg;
  } cases[] = {
      {"", "the server list is empty"},
      {"  \t ", "the server list is empty"},
      {"a:1,,b:2", "server 2 \"\": empty entry"},
      {"a:1,", "server 2 \"\": empty entry"},
      {",a:1", "server 1 \"\": empty entry"},
      {"10.0.0.1", "server 1 \"10.0.0.1\": missing \":port\""},
      {"a:1,b", "server 2 \"b\": missing \":port\""},
      {"a:", "server 1 \"a:\": missing port after ':'"},
      {":80", "server 1 \":80\": missing host before ':'"},
      {"a:0", "port is not a number 1-65535"},
      {"a:65536", "port is not a number 1-65535"},
      {"a:99999999999999999999", "port is not a number 1-65535"},
      {"a:-1", "port is not a number 1-65535"},
      {"a:+80", "port is not a number 1-65535"},
      {"a:80x", "port is not a number 1-65535"},
      {"a:8 0", "port is not a number 1-65535"},
      {"::1:80", "an IPv6 address needs brackets"},
      {"[::1]", "server 1 \"[::1]\": missing \":port\""},
      {"[::1]80", "expected \":port\" after ']'"},
      {"[::1:80", "missing ']'"},
      {"[]:80", "not an IPv6 address in brackets"},
      {"[10.0.0.1]:80", "not an IPv6 address in brackets"},
      {"[::g]:80", "not an IPv6 address in brackets"},
      {"[fe80::1%]:80", "not an IPv6 address in brackets"},
      {"[fe80::1%e/0]:80", "not an IPv6 address in brackets"},
      {"exa mple:80", "the host may only hold"},
      {"a/b:80", "the host may only hold"},
      {"http://a:80", "server 1 \"http://a:80\": write host:port, without a scheme"},
      {"a:1,http://b", "server 2 \"http://b\": write host:port, without a scheme"},
      {"a\x01:80", "server 1 \"a?:80\": the host may only hold"},
      {"a:1,A:1", "server 2 \"A:1\": repeats server 1"},
      {"[::1]:1,[::1]:1", "repeats server 1"},
      {"a:1,b:2,c:3", "server 3 \"c:3\": more than 2 servers"},
  };
  relay_server_addr_t a[2];
  char err[256];
  int bad = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    strcpy(err, "unset");
    int rc = parse(cases[i].list, a, 2, err);
    if (rc != RELAY_EINVAL || !strstr(err, cases[i].msg)) {
      fprintf(stderr, "case %zu [%s]: rc %d err [%s], want [%s]\n", i, cases[i].list, rc, err, cases[i].msg);
      bad++;
    }
  }
  CHECK(bad == 0);
  /* A host one byte too long; a long entry is cut in the message. */
  char big[400];
  memset(big, 'h', 256);
  strcpy(big + 256, ":80");
  CHECK(parse(big, a, 2, err) == RELAY_EINVAL);
  CHECK(strstr(err, "host longer than 255 bytes") != NULL);
  CHECK(strstr(err, "hhhh...\"") != NULL && strlen(err) < 160);
  /* A tiny error buffer is cut, not overrun; none at all is allowed. */
  char small[8];
  memset(small, 'x', sizeof small);
  CHECK(relay_balancer_parse_servers("bad", a, 2, small, sizeof small) == RELAY_EINVAL);
  CHECK(small[7] == 0);
  CHECK(relay_balancer_parse_servers("bad", a, 2, NULL, 0) == RELAY_EINVAL);
}

/* "Down until": 0 while up, the back-off's end while backing off (so that
 * a reader elsewhere sees it run out without an update), the maximum while
 * a check has the server out. */
static void test_down_until(void) {
  relay_balancer_t b;
  relay_balancer_init(&b, 2, 1000, 8000);
  CHECK(relay_balancer_down_until(&b, 0) == 0);
  relay_balancer_failed(&b, 0, 5000);
  CHECK(relay_balancer_down_until(&b, 0) == 6000);
  CHECK(!relay_balancer_is_up(&b, 0, 5999) && relay_balancer_is_up(&b, 0, 6000));
  relay_balancer_failed(&b, 0, 6000); /* the trial failed: 2 s */
  CHECK(relay_balancer_down_until(&b, 0) == 8000);
  for (int i = 0; i < 10; i++) relay_balancer_failed(&b, 0, 100000 + i * 100000);
  CHECK(relay_balancer_down_until(&b, 0) == 1000000 + 8000); /* capped at 8 s */
  relay_balancer_checked(&b, 1, 0);
  CHECK(relay_balancer_down_until(&b, 1) == UINT64_MAX);
  relay_balancer_checked(&b, 1, 1);
  CHECK(relay_balancer_down_until(&b, 1) == 0);
  relay_balancer_connected(&b, 0);
  CHECK(relay_balancer_down_until(&b, 0) == 0);
  CHECK(relay_balancer_down_until(&b, 7) == UINT64_MAX); /* no such server */
}

int main(void) {
  test_init();
  test_down_until();
  test_round_robin();
  test_least_outstanding();
  test_backoff_growth();
  test_overlapping_failures();
  test_trial();
  test_active();
  test_all_down();
  test_parse_good();
  test_parse_bad();
  return check_report("test_balancer");
}
