"""Script faults over real sockets: a load error stops start-up with "file:line: message"
(and --check reports the same without serving); a runtime error in on_request fails that
exchange with a 500 JSON error and one log line, and the relay keeps serving. Scripts:
tests/integration/scripts/load_*.lua and faults.lua."""

import os
import shutil
import socket
import unittest

from relaytest import Client, free_port, http_exchange
from test_lua_routing import LuaTestCase, script_path


def error_line(path):
    """1-based number of the line marked ERROR-LINE."""
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if "ERROR-LINE" in line and not line.lstrip().startswith("--"):
                return n
    raise AssertionError("no ERROR-LINE in %s" % path)


LOAD_ERRORS = [
    ("load_syntax_error.lua", "unexpected symbol near '='"),
    ("load_runtime_error.lua", "the test configuration is missing"),
    ("load_api_error.lua", "unknown upstream 'nope' (declare it first)"),
    ("load_env_error.lua", 'LUA_TEST_BAD_PORT="abc" is not a valid port'),
]


class LoadErrors(LuaTestCase):

    def env(self, port):
        return {"LISTEN_PORT": str(port), "UPSTREAM_PORT": str(self.upstream.port),
                "LUA_TEST_BAD_PORT": "abc", "LOG_LEVEL": "info"}

    def assertNotListening(self, port):
        s = socket.socket()
        s.settimeout(0.5)
        try:
            self.assertNotEqual(s.connect_ex(("127.0.0.1", port)), 0, "something listens on %d" % port)
        finally:
            s.close()

    def test_start_up_stops_with_file_line_message(self):
        for name, msg in LOAD_ERRORS:
            path = script_path(name)
            port = free_port()
            rc, out, err = self.run_relay(["--script", path], env=self.env(port))
            self.assertNotEqual(rc, 0, name)
            want = "%s:%d: %s" % (path, error_line(path), msg)
            self.assertIn(want, err, "%s: stderr %r" % (name, err))
            self.assertEqual(len([l for l in err.splitlines() if want in l]), 1, err)
            self.assertNotListening(port)
        self.assertEqual(self.upstream.connection_count, 0)

    def test_check_reports_the_same(self):
        for name, msg in LOAD_ERRORS:
            path = script_path(name)
            port = free_port()
            _, _, start_err = self.run_relay(["--script", path], env=self.env(port))
            rc, out, err = self.run_relay(["--check", "--script", path], env=self.env(port))
            self.assertNotEqual(rc, 0, name)
            want = "%s:%d: %s" % (path, error_line(path), msg)
            self.assertIn(want, err, "%s: --check stderr %r" % (name, err))
            self.assertEqual(err.strip(), start_err.strip(), "--check and start-up differ for " + name)
            self.assertNotIn("OK", out)
        # RELAY_SCRIPT instead of --script
        path = script_path("load_syntax_error.lua")
        env = self.env(free_port())
        env["RELAY_SCRIPT"] = path
        rc, _, err = self.run_relay(["--check"], env=env)
        self.assertNotEqual(rc, 0)
        self.assertIn("%s:%d:" % (path, error_line(path)), err)

    def test_check_ok_does_not_serve(self):
        port = free_port()
        path = script_path("load_ok.lua")
        rc, out, err = self.run_relay(["--check", "--script", path], env=self.env(port))
        self.assertEqual(rc, 0, err)
        self.assertIn(path + ": OK", out)
        self.assertIn("upstream b 127.0.0.1:10", out)
        self.assertNotListening(port)

    def test_relative_path_and_missing_file(self):
        shutil.copy(script_path("load_runtime_error.lua"), os.path.join(self.workdir, "rel.lua"))
        rc, _, err = self.run_relay(["--script", "rel.lua"], env=self.env(free_port()))
        self.assertNotEqual(rc, 0)
        self.assertIn("rel.lua:%d: the test configuration is missing"
                      % error_line(script_path("load_runtime_error.lua")), err)
        rc, _, err = self.run_relay(["--script", "does-not-exist.lua"], env=self.env(free_port()))
        self.assertNotEqual(rc, 0)
        self.assertIn("does-not-exist.lua", err)


# path -> words the log line must contain
RUNTIME_ERRORS = {
    "/boom": "boom in on_request",
    "/boom-table": "error object is not a string",
    "/bad-return": "must return a table or nil",
    "/bad-upstream": "unknown upstream 'nope'",
    "/bad-status": "status 99 out of range",
    "/bad-header-name": "bad header name",
    "/bad-header-value": "line break",
    "/bad-path": "path must start with '/'",
    "/bad-path-space": "space or control byte",
    "/bad-rewrite": "rewrite mode 'weird'",
    "/bad-respond-header": "has a line break",
    "/bad-body-type": "'body' must be a string",
    "/nil-index": "attempt to index",
}


class RuntimeErrors(LuaTestCase):

    def setUp(self):
        super().setUp()
        self.relay = self.start_script("faults.lua")
        self.port = self.relay.port

    def script_error_lines(self):
        return [l for l in self.relay.stderr_text().splitlines() if "script error" in l]

    def test_each_error_is_a_500_and_the_next_request_works(self):
        n = 0
        for path, words in RUNTIME_ERRORS.items():
            with Client(self.port) as c:
                c.request("GET", path + "?q=1")
                r = c.read_response()
                self.assertErrorResponse(r, 500, "server_error", "script_error")
                n += 1
                lines = self.relay.wait_log("script error", count=n)
                self.assertEqual(len(self.script_error_lines()), n, "one line per failed exchange")
                self.assertIn(words, lines[-1], path)
                self.assertIn(path, lines[-1])
                # nothing half-applied leaks into the upstream
                self.assertEqual([q.target for q in self.upstream.requests if q.target != "/fine"], [], path)
                if "close" not in (r.header("connection") or "").lower():
                    c.request("GET", "/fine")
                    r2 = c.read_response()
                    self.assertEqual(r2.status, 200, path)
            r3 = http_exchange(self.port, "GET", "/fine")
            self.assertEqual(r3.status, 200, path)
            self.assertIsNone(self.relay.proc.poll(), "relay died after " + path)
        self.assertTrue(all(q.target == "/fine" for q in self.upstream.requests))
        # the location of the error is in the line
        boom = [l for l in self.script_error_lines() if "boom in on_request" in l][0]
        self.assertRegex(boom, r"faults\.lua:\d+: boom in on_request")

    def test_error_with_unread_request_body(self):
        with Client(self.port) as c:
            c.request("POST", "/boom", body=b"z" * 100000)
            r = c.read_response("POST")
            self.assertErrorResponse(r, 500, "server_error", "script_error")
            if "close" not in (r.header("connection") or "").lower():
                # the unread body must not be taken for the next request
                c.request("GET", "/fine")
                r2 = c.read_response()
                self.assertEqual(r2.status, 200)
                self.assertEqual(self.upstream.wait_requests(1)[0].target, "/fine")
        with Client(self.port) as c:
            c.request("POST", "/boom", body=b"z" * 3000, chunked=True, chunk_sizes=[100])
            r = c.read_response("POST")
            self.assertErrorResponse(r, 500, "server_error", "script_error")
        self.assertEqual(http_exchange(self.port, "GET", "/fine").status, 200)

    def test_invalid_json_body(self):
        with Client(self.port) as c:
            c.request("POST", "/json", [("Content-Type", "application/json")], b'{"model": nope')
            r = c.read_response("POST")
            self.assertErrorResponse(r, 500, "server_error", "script_error")
            line = self.relay.wait_log("script error")[-1]
            self.assertIn("body is not valid JSON", line)
            if "close" not in (r.header("connection") or "").lower():
                c.request("POST", "/json", [("Content-Type", "application/json")], b'{"model":"m1"}')
                r2 = c.read_response("POST")
                self.assertEqual(r2.status, 200)
        r = http_exchange(self.port, "POST", "/json", [("Content-Type", "application/json")], b'{"model":"m2"}')
        self.assertEqual(r.status, 200)
        self.assertEqual(self.upstream.requests[-1].header("x-model"), "m2")

    def test_many_errors_do_not_grow_or_crash(self):
        # a few hundred failing exchanges on keep-alive connections, then normal service
        for _ in range(4):
            with Client(self.port) as c:
                for i in range(60):
                    c.request("GET", "/boom" if i % 2 else "/nil-index")
                    r = c.read_response()
                    self.assertEqual(r.status, 500)
                    if "close" in (r.header("connection") or "").lower():
                        break
        self.assertEqual(http_exchange(self.port, "GET", "/fine").status, 200)


if __name__ == "__main__":
    unittest.main()
