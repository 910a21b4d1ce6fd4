"""Errors the relay makes itself (400, 431, 502, 504 with JSON bodies), configuration
validation and the command line."""

import os
import socket
import time
import unittest

from relaytest import (RelayTestCase, Client, http_exchange, free_port, connection_tokens)


class ClientErrors(RelayTestCase):
    """Malformed requests: 400 / 431, the connection is closed, nothing reaches the upstream."""

    def _bad(self, raw, status=400, code="bad_request", relay=None):
        relay = relay or self.start_relay()
        with Client(relay.port) as c:
            try:
                c.send(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass
            r = c.read_response()
            self.assertErrorResponse(r, status, "invalid_request_error", code)
            self.assertClosedSoon(c, 2.0, "client connection after %d" % status)
        return r

    def test_garbage_request_line(self):
        self._bad(b"this is not http\r\n\r\n")
        self.assertEqual(self.upstream.requests, [])

    def test_binary_garbage(self):
        self._bad(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n")
        self.assertEqual(self.upstream.connection_count, 0)

    def test_bad_http_version(self):
        self._bad(b"GET / HTTP/9.7\r\nHost: x\r\n\r\n")
        self.assertEqual(self.upstream.requests, [])

    def test_content_length_and_transfer_encoding_both(self):
        # request smuggling shape: must be refused, not forwarded
        self._bad(b"POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        self.assertEqual(self.upstream.requests, [])

    def test_duplicate_differing_content_length(self):
        self._bad(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
        time.sleep(0.2)
        self.assertEqual(self.upstream.requests, [])

    def test_bad_chunk_size(self):
        self._bad(b"POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"zz\r\nhello\r\n0\r\n\r\n")

    def test_bad_chunk_size_after_good_chunks(self):
        self._bad(b"POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n5\r\nworld\r\n-3\r\nabc\r\n0\r\n\r\n")

    def test_header_without_colon(self):
        self._bad(b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n")

    def test_transfer_encoding_not_chunked(self):
        # RFC 9112 6.3: a request whose final transfer coding is not chunked has no
        # determinable length: 400
        self._bad(b"POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc")
        time.sleep(0.2)
        self.assertEqual(self.upstream.requests, [])

    def test_whitespace_before_colon(self):
        # RFC 9112 5.1: must be rejected with 400 (a smuggling vector through lax proxies)
        self._bad(b"POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc")
        time.sleep(0.2)
        self.assertEqual(self.upstream.requests, [])

    def test_pipelined_good_then_bad(self):
        relay = self.start_relay()
        with Client(relay.port) as c:
            c.send(b"GET /good1 HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"GET /good2 HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"BAD REQUEST LINE\r\n\r\n"
                   b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(c.read_response().json()["target"], "/good1")
            self.assertEqual(c.read_response().json()["target"], "/good2")
            self.assertErrorResponse(c.read_response(), 400, "invalid_request_error", "bad_request")
            self.assertClosedSoon(c, 2.0)
        self.assertEqual([q.target for q in self.upstream.requests], ["/good1", "/good2"])

    def test_huge_header_default_limit(self):
        relay = self.start_relay()
        # just under the default 64 KiB head: served
        ok = http_exchange(relay.port, "GET", "/big-ok", headers=[("X-Big", "a" * 60000)])
        self.assertEqual(ok.status, 200, ok)
        q = self.upstream.wait_requests(1)[0]
        self.assertEqual(q.header("x-big"), "a" * 60000)
        # over it: 431
        self._bad(b"GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70000 + b"\r\n\r\n",
                  431, "headers_too_large", relay=relay)
        self.assertEqual(len(self.upstream.requests), 1)

    def test_many_headers_over_configured_limit(self):
        relay = self.start_relay(RELAY_MAX_HEADER_SIZE=2048)
        hdrs = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 40) for i in range(60))  # ~3 KB
        self._bad(b"GET /many HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n", 431, "headers_too_large", relay=relay)
        ok = http_exchange(relay.port, "GET", "/small", headers=[("X-Small", "v" * 1000)])
        self.assertEqual(ok.status, 200, ok)
        self.assertEqual([q.target for q in self.upstream.requests], ["/small"])

    def test_huge_request_line_is_431_or_414(self):
        # a long target counts against the request head bound
        relay = self.start_relay(RELAY_MAX_HEADER_SIZE=4096)
        with Client(relay.port) as c:
            c.send(b"GET /" + b"p" * 8000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.read_response()
        self.assertIn(r.status, (414, 431), r)
        self.assertEqual(r.json()["error"]["type"], "invalid_request_error")
        self.assertEqual(self.upstream.requests, [])

    def test_relay_keeps_serving_after_bad_requests(self):
        relay = self.start_relay()
        for _ in range(3):
            self._bad(b"NOPE\r\n\r\n", relay=relay)
        r = http_exchange(relay.port, "GET", "/fine")
        self.assertEqual(r.status, 200, r)


class UpstreamErrors(RelayTestCase):

    def test_502_nothing_listening(self):
        relay = self.start_relay(UPSTREAM_PORT=free_port())
        t0 = time.monotonic()
        r = http_exchange(relay.port, "POST", "/v1/chat/completions", body=b'{"model":"m"}')
        self.assertErrorResponse(r, 502, "upstream_error", "upstream_unreachable")
        self.assertLess(time.monotonic() - t0, 3.0)
        # a 502 is a complete response: the connection either stays usable or says it closes
        with Client(relay.port) as c:
            c.request("GET", "/a")
            r = c.read_response()
            self.assertErrorResponse(r, 502, "upstream_error", "upstream_unreachable")
            if "close" in connection_tokens(r.headers):
                self.assertClosedSoon(c, 2.0)
            else:
                c.request("GET", "/b")
                self.assertErrorResponse(c.read_response(), 502, "upstream_error", "upstream_unreachable")

    def test_502_dns_failure(self):
        relay = self.start_relay(UPSTREAM_HOST="no-such-host.invalid")
        r = http_exchange(relay.port, "GET", "/v1/models", timeout=10)
        self.assertErrorResponse(r, 502, "upstream_error", "upstream_unreachable")

    def test_502_upstream_sends_garbage(self):
        def handler(conn, req):
            conn.send(b"SSH-2.0-OpenSSH_9.2\r\nthis is not http at all\r\n\r\n")
            conn.close()
        self.upstream.handler = handler
        relay = self.start_relay()
        r = http_exchange(relay.port, "GET", "/v1/models")
        self.assertErrorResponse(r, 502, "upstream_error", "upstream_bad_response")

    def test_502_upstream_garbage_without_closing(self):
        def handler(conn, req):
            conn.send(b"HTTP/1.1 2x0 Broken\r\nContent-Length: 2\r\n\r\nok")
            conn.wait_peer_closed(5)
        self.upstream.handler = handler
        relay = self.start_relay()
        r = http_exchange(relay.port, "GET", "/v1/models")
        self.assertErrorResponse(r, 502, "upstream_error", "upstream_bad_response")
        conn = self.upstream.wait_conns(1)[0]
        self.assertTrue(conn.peer_closed.wait(2), "relay kept the broken upstream connection open")

    def test_502_upstream_closes_without_response(self):
        def handler(conn, req):
            conn.close()
        self.upstream.handler = handler
        relay = self.start_relay()
        r = http_exchange(relay.port, "POST", "/v1/completions", body=b"{}")
        self.assertErrorResponse(r, 502, "upstream_error", "upstream_bad_response")

    def test_502_upstream_closes_mid_head(self):
        def handler(conn, req):
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: appl")
            conn.close()
        self.upstream.handler = handler
        relay = self.start_relay()
        r = http_exchange(relay.port, "GET", "/v1/models")
        self.assertErrorResponse(r, 502, "upstream_error", "upstream_bad_response")

    def test_504_upstream_never_answers(self):
        def handler(conn, req):
            conn.wait_peer_closed(10)
        self.upstream.handler = handler
        relay = self.start_relay(RELAY_IDLE_TIMEOUT=0.5)
        t0 = time.monotonic()
        r = http_exchange(relay.port, "POST", "/v1/chat/completions", body=b'{"model":"m"}', timeout=8)
        dt = time.monotonic() - t0
        self.assertErrorResponse(r, 504, "upstream_error", "upstream_timeout")
        self.assertGreaterEqual(dt, 0.4, "timed out before RELAY_IDLE_TIMEOUT")
        self.assertLess(dt, 3.0)
        conn = self.upstream.wait_conns(1)[0]
        self.assertTrue(conn.peer_closed.wait(2), "relay did not close the timed-out upstream connection")

    def test_504_connect_timeout(self):
        # A listener with a full accept queue drops SYNs, so connect() hangs.
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(lst.close)
        lst.bind(("127.0.0.1", 0))
        lst.listen(0)
        port = lst.getsockname()[1]
        fillers = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
            self.addCleanup(s.close)
        time.sleep(0.1)
        probe = socket.socket()
        self.addCleanup(probe.close)
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", port))
            self.skipTest("cannot produce a hanging connect on this loopback")
        except socket.timeout:
            pass
        except OSError as e:
            self.skipTest("cannot produce a hanging connect on this loopback: %r" % e)
        relay = self.start_relay(UPSTREAM_PORT=port, RELAY_CONNECT_TIMEOUT=0.5, RELAY_IDLE_TIMEOUT=30)
        t0 = time.monotonic()
        r = http_exchange(relay.port, "GET", "/v1/models", timeout=8)
        dt = time.monotonic() - t0
        self.assertErrorResponse(r, 504, "upstream_error", "upstream_timeout")
        self.assertGreaterEqual(dt, 0.4)
        self.assertLess(dt, 3.0)

    def test_error_access_lines(self):
        relay = self.start_relay(UPSTREAM_PORT=free_port())
        r = http_exchange(relay.port, "GET", "/v1/models?err=1")
        self.assertEqual(r.status, 502)
        lines = relay.wait_access(1)
        self.assertEqual(len(lines), 1, relay.stderr_text())
        a = lines[0]
        self.assertEqual(a.get("method"), "GET", a)
        self.assertEqual(a.get("path"), "/v1/models?err=1", a)
        self.assertEqual(a.get("status"), "502", a)
        self.assertEqual(a.get("ttfb_ms"), "-", a)
        self.assertEqual(a.get("bytes_out"), str(len(r.body)), a)


class Configuration(RelayTestCase):

    def setUp(self):
        super().setUp()
        self.base = self.relay_env(LISTEN_PORT=free_port())

    def _rejected(self, var, value):
        env = dict(self.base)
        env[var] = value
        t0 = time.monotonic()
        rc, out, err = self.run_relay(env=env, timeout=10)
        self.assertNotEqual(rc, 0, "%s=%r accepted; stderr=%r" % (var, value, err))
        self.assertIn(var, err, "stderr does not name %s: %r" % (var, err))
        self.assertLess(time.monotonic() - t0, 5)

    def test_invalid_ports_rejected(self):
        for var in ("LISTEN_PORT", "UPSTREAM_PORT"):
            for value in ("0", "99999", "65536", "abc", "-1", "80x"):
                with self.subTest(var=var, value=value):
                    self._rejected(var, value)

    def test_invalid_timeouts_rejected(self):
        for var in ("RELAY_CONNECT_TIMEOUT", "RELAY_HEADER_TIMEOUT", "RELAY_IDLE_TIMEOUT",
                    "RELAY_KEEPALIVE_TIMEOUT", "RELAY_SHUTDOWN_TIMEOUT"):
            for value in ("abc", "-1", "1s"):
                with self.subTest(var=var, value=value):
                    self._rejected(var, value)

    def test_invalid_max_header_size_rejected(self):
        for value in ("abc", "-5"):
            with self.subTest(value=value):
                self._rejected("RELAY_MAX_HEADER_SIZE", value)

    def test_port_in_use_fails(self):
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        env = dict(self.base, LISTEN_PORT=str(busy.getsockname()[1]))
        rc, out, err = self.run_relay(env=env, timeout=10)
        self.assertNotEqual(rc, 0, err)

    def test_decimal_timeouts_and_defaults_accepted(self):
        relay = self.start_relay(RELAY_CONNECT_TIMEOUT="2.5", RELAY_HEADER_TIMEOUT="0.75",
                                 RELAY_IDLE_TIMEOUT="10.0", RELAY_KEEPALIVE_TIMEOUT="1.5",
                                 RELAY_SHUTDOWN_TIMEOUT="3", RELAY_MAX_HEADER_SIZE="16384",
                                 LOG_LEVEL="debug")
        self.assertEqual(http_exchange(relay.port, "GET", "/").status, 200)

    def test_listening_line_and_default_listen_addr(self):
        relay = self.start_relay()
        lines = relay.wait_log(r"listening on 127\.0\.0\.1:%d\b" % relay.port)
        self.assertTrue(lines, relay.stderr_text())
        env = dict(LISTEN_PORT=free_port())
        r2 = self.start_relay(**env, LISTEN_ADDR="0.0.0.0")
        self.assertTrue(r2.wait_log(r"listening on 0\.0\.0\.0:%d\b" % r2.port), r2.stderr_text())
        self.assertEqual(http_exchange(r2.port, "GET", "/").status, 200)

    def test_log_level_error_is_quiet(self):
        relay = self.start_relay(LOG_LEVEL="error")
        self.assertEqual(http_exchange(relay.port, "GET", "/quiet").status, 200)
        time.sleep(0.3)
        text = relay.stderr_text()
        self.assertNotIn("access ", text)
        self.assertNotIn("listening on", text)


class CommandLine(RelayTestCase):

    def setUp(self):
        self.upstream = None

    def test_version(self):
        rc, out, err = self.run_relay(["--version"])
        self.assertEqual(rc, 0, err)
        self.assertRegex(out + err, r"\d+\.\d+\.\d+")

    def test_help(self):
        rc, out, err = self.run_relay(["--help"])
        self.assertEqual(rc, 0, err)
        self.assertIn("--script", out + err)

    def test_unknown_option(self):
        rc, out, err = self.run_relay(["--no-such-option"])
        self.assertNotEqual(rc, 0)

    def test_check_reports_script_error_with_line(self):
        path = os.path.join(self.workdir, "broken.lua")
        with open(path, "w") as f:
            f.write("-- a comment\nlocal x = 1\nlocal y = = 2\n")
        rc, out, err = self.run_relay(["--check", "--script", path])
        self.assertNotEqual(rc, 0)
        self.assertRegex(out + err, r"broken\.lua:3:")

    def test_check_stock_script_ok(self):
        rc, out, err = self.run_relay(["--check"], env={"LISTEN_PORT": str(free_port())})
        self.assertEqual(rc, 0, err)

    def test_missing_script_file(self):
        rc, out, err = self.run_relay(["--script", os.path.join(self.workdir, "nope.lua")])
        self.assertNotEqual(rc, 0)
        self.assertIn("nope.lua", out + err)


if __name__ == "__main__":
    unittest.main()
