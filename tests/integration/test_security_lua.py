"""What a hostile or buggy script can do to the relay, over real sockets (issue 8).

- Request-hook header edits cannot touch framing (Content-Length, Transfer-Encoding,
  the connection fields) nor what the relay sets itself (Host, X-Forwarded-*); names
  must be tokens and values free of control bytes: else the exchange is a 500
  script_error and a log line names the field, and nothing reaches the upstream.
- A body replaced by a hook that never read the client's replaces it whole.
- Local answers: token names, no control bytes, framing fields ignored, no body on
  204/304 (and no Content-Length on them).

Scripts: tests/integration/scripts/security_lua.lua (and the limits scripts below)."""

import socket
import time
import unittest

from relaytest import Client, build_request, encode_chunked, http_exchange
from test_lua_routing import LuaTestCase


def hexs(b):
    if isinstance(b, str):
        b = b.encode("latin-1")
    return b.hex()


# framing fields and the fields the relay sets itself, in several spellings
RELAY_OWNED = ["Content-Length", "content-length", "CONTENT-LENGTH", "Transfer-Encoding", "transfer-encoding",
               "Connection", "Keep-Alive", "Proxy-Connection", "TE", "te", "Trailer", "Upgrade", "Host", "HOST",
               "X-Forwarded-For", "x-forwarded-for", "X-Forwarded-Proto"]
# what each would try to do
OWNED_VALUES = {"content-length": "0", "transfer-encoding": "chunked", "connection": "keep-alive, Content-Length",
                "keep-alive": "timeout=5", "proxy-connection": "keep-alive", "te": "trailers", "trailer": "X-T",
                "upgrade": "websocket", "host": "evil.example", "x-forwarded-for": "10.6.6.6",
                "x-forwarded-proto": "https"}
BAD_NAMES = ["X Bad", "X\tBad", "X:Bad", "X(A)", "X,A", "X;A", "X/A", "X@A", "X=A", "{X}", "[X]", 'X"A', "X?A",
             "X\\A", "X\x00A", "X\x7fA", "X\xe9A", "X\rA", "X\nA", ""]
BAD_VALUES = ["a\x00b", "\x00", "a\x01", "a\x08b", "a\x0bb", "a\x0cb", "a\x1bb", "a\x1fb", "a\x7fb", "a\rb",
              "a\nb", "a\r\nX-Injected: 1", "\r", "\n"]
GOOD_NAMES = ["X-Token!#$%&'*+-.^_`|~09azAZ", "x", "X-A"]
GOOD_VALUES = ["tab\there", "caf\xe9 \xff obs-text", "", "  spaced  inside  ", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"]


class ScriptCase(LuaTestCase):

    def setUp(self):
        super().setUp()
        self.relay = self.start_script("security_lua.lua")
        self.port = self.relay.port

    def script_errors(self):
        return [l for l in self.relay.stderr_text().splitlines() if "script error" in l]

    def assertScriptError(self, r, n_before, *words):
        """r is the relay's 500 script_error; exactly one new log line, with words in it."""
        self.assertErrorResponse(r, 500, "server_error", "script_error")
        lines = self.relay.wait_log("script error", count=n_before + 1)
        time.sleep(0.02)
        lines = self.script_errors()
        self.assertEqual(len(lines), n_before + 1, lines[n_before:])
        for w in words:
            self.assertIn(w, lines[-1])
        return lines[-1]


class RequestHeaderEdits(ScriptCase):

    def test_relay_owned_fields_are_a_script_error(self):
        n = 0
        for name in RELAY_OWNED:
            for value in (OWNED_VALUES[name.lower()], None):
                q = "%s=%s" % (hexs(name), "-" if value is None else hexs(value))
                with Client(self.port) as c:
                    # a body the field would re-frame: Content-Length 0 or chunked would let
                    # "GET /smuggled" reach the upstream as a request of its own
                    smuggled = build_request("GET", "/smuggled", host="victim")
                    c.request("POST", "/set-header?" + q, body=smuggled)
                    r = c.read_response("POST")
                    line = self.assertScriptError(r, n, "/set-header", "'%s'" % name, "set by the relay")
                    n += 1
            self.assertEqual(self.upstream.requests, [], name)
        self.assertEqual(self.upstream.connection_count, 0)
        # and the relay serves on
        r = http_exchange(self.port, "GET", "/plain")
        self.assertEqual(r.status, 200)
        self.assertEqual([q.target for q in self.upstream.wait_requests(1)], ["/plain"])

    def test_bad_names_and_values_are_a_script_error(self):
        n = 0
        cases = [(nm, "v", "bad header name") for nm in BAD_NAMES]
        cases += [("X-Val", v, "line break" if ("\r" in v or "\n" in v) else "control byte") for v in BAD_VALUES]
        for name, value, words in cases:
            r = http_exchange(self.port, "GET", "/set-header?%s=%s" % (hexs(name), hexs(value)))
            line = self.assertScriptError(r, n, words)
            n += 1
            # the log line itself carries no raw control byte of the script's
            self.assertFalse(any(ord(ch) < 0x20 and ch != "\t" for ch in line), repr(line))
        self.assertEqual(self.upstream.requests, [])

    def test_good_names_and_values_pass(self):
        for k, name in enumerate(GOOD_NAMES):
            for value in GOOD_VALUES:
                r = http_exchange(self.port, "GET", "/set-header?%s=%s" % (hexs(name), hexs(value)))
                self.assertEqual(r.status, 200, (name, value))
                q = self.upstream.requests[-1]
                line = [l for l in q.raw_head.split(b"\r\n") if l.lower().startswith(name.lower().encode() + b":")]
                self.assertEqual(line, [(name + ": " + value).encode("latin-1")], (name, value))
        self.assertEqual(self.script_errors(), [])


class ReplacedBody(ScriptCase):
    """on_request returns body = ... on a route without body = true."""

    def check(self, method, body, new=b"NEW", **kw):
        target = "/replace-body" + ("?" + hexs(new) if new != b"NEW" else "")
        with Client(self.port) as c:
            c.request(method, target, body=body, **kw)
            r = c.read_response(method)
            self.assertEqual(r.status, 200)
            # the same connection goes on: the client's body was read to its end
            c.request("GET", "/after")
            r2 = c.read_response()
            self.assertEqual(r2.status, 200)
        reqs = self.upstream.wait_requests(2)
        time.sleep(0.05)
        reqs = list(self.upstream.requests)
        self.assertEqual([(q.method, q.target) for q in reqs], [(method, target), ("GET", "/after")],
                         "the upstream saw other requests: %r" % reqs)
        q = reqs[0]
        self.assertEqual(q.body, new)
        self.assertEqual(q.header_all("content-length"), [str(len(new))])
        self.assertEqual(q.header_all("transfer-encoding"), [])
        self.assertEqual(q.header("x-replaced"), "1")
        self.assertEqual(reqs[1].body, b"")
        self.assertEqual(self.upstream.errors, [])
        self.upstream.requests.clear()

    def test_replaces_a_length_body(self):
        smuggled = build_request("GET", "/smuggled", host="victim")
        self.check("POST", smuggled)
        self.check("PUT", b"x" * 10)
        self.check("POST", b"y" * 300000)  # over the flow-control marks
        self.check("POST", b"z" * 100, new=b"")

    def test_replaces_a_chunked_body(self):
        smuggled = build_request("GET", "/smuggled", host="victim")
        self.check("POST", smuggled, chunked=True, chunk_sizes=[5, 50])
        self.check("POST", b"w" * 200000, chunked=True, chunk_sizes=[1000, 7])
        self.check("POST", b"v" * 10, new=b"", chunked=True)
        self.check("POST", b"", new=b"abc", chunked=True)

    def test_gives_a_body_to_a_request_without_one(self):
        self.check("GET", None)
        self.check("POST", b"", new=b"{\"a\":1}")

    def test_body_sent_late(self):
        # the body arrives after the upstream got the request: still dropped
        with Client(self.port) as c:
            c.send(b"POST /replace-body HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n")
            self.upstream.wait_requests(1)
            time.sleep(0.1)
            r = c.read_response("POST")
            self.assertEqual(r.status, 200)
            # the answer went out before the body came: the connection is not reused
            try:
                c.send(build_request("GET", "/smuggled", host="v")[:30])
            except OSError:
                pass
            self.assertClosedSoon(c)
        http_exchange(self.port, "GET", "/after")
        time.sleep(0.05)
        self.assertEqual([q.target for q in self.upstream.requests], ["/replace-body", "/after"])
        self.assertEqual(self.upstream.requests[0].body, b"NEW")


class LocalAnswers(ScriptCase):

    def test_bad_names_and_values_are_a_script_error(self):
        n = 0
        cases = [(nm, "v", "bad header name") for nm in BAD_NAMES]
        cases += [("X-Val", v, "line break" if ("\r" in v or "\n" in v) else "control byte") for v in BAD_VALUES]
        for name, value, words in cases:
            with Client(self.port) as c:
                c.request("GET", "/respond-header?%s=%s" % (hexs(name), hexs(value)))
                r = c.read_response()
                self.assertScriptError(r, n, "respond:", words)
                n += 1
                self.assertNotIn(b"local body", r.body)
        self.assertEqual(self.upstream.connection_count, 0)

    def test_good_names_and_values_pass(self):
        for name in GOOD_NAMES:
            for value in GOOD_VALUES:
                with Client(self.port) as c:
                    c.request("GET", "/respond-header?%s=%s" % (hexs(name), hexs(value)))
                    r = c.read_response()
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body, b"local body")
                want = (name + ": " + value).encode("latin-1")
                self.assertIn(want, r.raw_head.split(b"\r\n"), (name, value))

    def test_framing_fields_are_ignored(self):
        for name in RELAY_OWNED:
            if name.lower() in ("host", "x-forwarded-for", "x-forwarded-proto"):
                continue
            with Client(self.port) as c:
                c.request("GET", "/respond-header?%s=%s" % (hexs(name), hexs(OWNED_VALUES[name.lower()])))
                r = c.read_response()
                c.request("GET", "/respond-status?200=" + hexs("second"))
                r2 = c.read_response()
            self.assertEqual(r.status, 200, name)
            self.assertEqual(r.body, b"local body", name)
            self.assertEqual(r.header_all("content-length"), [str(len(b"local body"))], name)
            self.assertEqual(r.header("x-other"), "kept")
            for f in ("transfer-encoding", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"):
                self.assertEqual(r.header_all(f), [], (name, r.headers))
            self.assertNotIn("content-length", [t.strip().lower() for v in r.header_all("connection")
                                                 for t in v.split(",")])
            self.assertEqual(r2.body, b"second", name)
        self.assertEqual(self.script_errors(), [])

    def raw_exchange(self, target, method="GET"):
        """The raw bytes of one answer followed by a pipelined GET's answer."""
        with Client(self.port) as c:
            c.send(build_request(method, target) + build_request("GET", "/respond-status?200=" + hexs("next")))
            first = c.read_response(method)
            second = c.read_response()
            self.assertEqual(c.read_some(timeout=0.1), b"")
        return first, second

    def test_no_body_on_204_and_304(self):
        n = 0
        for status in (204, 304, 205):
            for body in ("x", "hello world", "\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nforged"):
                with Client(self.port) as c:
                    c.send(build_request("GET", "/respond-status?%d=%s" % (status, hexs(body)))
                           + build_request("GET", "/respond-status?200=" + hexs("next")))
                    self.assertScriptError(c.read_response(), n, "cannot have a body")
                    n += 1
                    # the error closes the connection; nothing else was written
                    rest = c.read_until_close(timeout=2)
                    self.assertNotIn(b"forged", rest)
                    self.assertNotIn(b"HTTP/1.1", rest)
            with Client(self.port) as c:
                c.request("GET", "/respond-json?%d" % status)
                self.assertScriptError(c.read_response(), n, "cannot have a body")
                n += 1

    def test_204_and_304_without_body(self):
        for status in (204, 304):
            for method in ("GET", "HEAD", "POST"):
                first, second = self.raw_exchange("/respond-status?%d=" % status, method)
                self.assertEqual(first.status, status)
                self.assertEqual(first.header_all("content-length"), [], first.raw_head)
                self.assertEqual(first.header_all("transfer-encoding"), [])
                self.assertEqual(second.status, 200)
                self.assertEqual(second.body, b"next")
        first, second = self.raw_exchange("/respond-status?205=")
        self.assertEqual(first.status, 205)
        self.assertEqual(first.header_all("content-length"), ["0"])
        self.assertEqual(second.body, b"next")
        # HEAD: the length the body would have had, no body
        first, second = self.raw_exchange("/respond-status?200=" + hexs("abc"), "HEAD")
        self.assertEqual(first.header_all("content-length"), ["3"])
        self.assertEqual(second.body, b"next")
        self.assertEqual(self.script_errors(), [])


if __name__ == "__main__":
    unittest.main()
