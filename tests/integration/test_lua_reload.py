"""SIGHUP reload over real sockets: a changed script takes over in every worker (including
on connections kept alive across the reload); a broken script keeps the running one and
logs "reload failed"; an exchange in flight finishes with the script it started with;
pooled upstream connections follow the new upstream table. The script is
tests/integration/scripts/reload.lua, copied and edited by the tests."""

import json
import os
import signal
import socket
import threading
import time
import unittest

from chatmock import A, F, CHAT_PATH, StreamCheck, StreamResponse, chat_request, harmony_text, sse_handler, \
    stream_events, tokens
from relaytest import Client, http_exchange, status_head
from test_lua_routing import LuaTestCase, script_path


class Reload(LuaTestCase):

    def write_script(self, version, upstream_var="UPSTREAM_PORT", broken=None):
        with open(script_path("reload.lua")) as f:
            src = f.read()
        src = src.replace("local VERSION = 1", "local VERSION = %d" % version, 1)
        src = src.replace('local UPSTREAM_VAR = "UPSTREAM_PORT"', 'local UPSTREAM_VAR = "%s"' % upstream_var, 1)
        if broken == "syntax":
            src += "\nthis is not lua\n"
        elif broken == "runtime":
            src += '\nerror("broken on purpose")\n'
        tmp = self.script + ".tmp"
        with open(tmp, "w") as f:
            f.write(src)
        os.replace(tmp, self.script)

    def start(self, workers):
        self.script = os.path.join(self.workdir, "reload-test.lua")
        self.write_script(1)
        self.relay = self.start_script(None, path=self.script, WORKERS=str(workers))
        self.port = self.relay.port
        self.workers = workers

    def hup(self, expect, count):
        """SIGHUP and wait until every worker logged `expect` (cumulative count)."""
        self.relay.signal(signal.SIGHUP)
        lines = self.relay.wait_log(expect, timeout=5, count=count)
        self.assertGreaterEqual(len(lines), count, "want %d %r lines; stderr:\n%s"
                                % (count, expect, self.relay.stderr_text()[-3000:]))
        return lines

    def version(self, client=None):
        if client is None:
            r = http_exchange(self.port, "GET", "/version")
        else:
            client.request("GET", "/version")
            r = client.read_response()
        self.assertEqual(r.status, 200)
        return r.json()["version"]

    def test_reload_new_behaviour_then_broken_keeps_old(self):
        self.start(workers=2)
        self.assertEqual({self.version() for _ in range(6)}, {1})
        kept = Client(self.port)
        self.addCleanup(kept.close)
        self.assertEqual(self.version(kept), 1)

        self.write_script(2)
        self.hup("script reloaded", count=self.workers)
        self.assertEqual({self.version() for _ in range(12)}, {2})
        # the connection kept alive across the reload uses the new script for its next request
        self.assertEqual(self.version(kept), 2)
        r = http_exchange(self.port, "GET", "/proxied")
        self.assertEqual(r.status, 200)
        self.assertEqual(self.upstream.wait_requests(1)[-1].header("x-version"), "2")

        for n, kind in ((1, "syntax"), (2, "runtime")):
            self.write_script(3, broken=kind)
            lines = self.hup("reload failed", count=self.workers * n)
            self.assertTrue(any("reload-test.lua:" in l for l in lines), lines)
            self.assertEqual(len([l for l in self.relay.stderr_text().splitlines() if "script reloaded" in l]),
                             self.workers, "a broken script must not count as reloaded")
            self.assertEqual({self.version() for _ in range(8)}, {2})
            self.assertEqual(self.version(kept), 2)
            self.assertIsNone(self.relay.proc.poll())

        # fixed again: the next SIGHUP loads it
        self.write_script(4)
        self.hup("script reloaded", count=2 * self.workers)
        self.assertEqual({self.version() for _ in range(8)}, {4})
        self.assertEqual(self.version(kept), 4)

    def test_exchange_in_flight_keeps_its_script(self):
        self.start(workers=1)
        events = stream_events(tokens(harmony_text("lmstudio")))
        gates = [threading.Event() for _ in events]
        self.upstream.handler = sse_handler(events, handshake=gates)
        headers, body = chat_request(True)
        sr = StreamResponse(self.port, "POST", CHAT_PATH, headers, body)
        self.addCleanup(sr.close)
        pieces = sr.pieces()
        got = [next(pieces)]            # the first event is through
        self.write_script(2)
        self.hup("script reloaded", count=1)
        self.assertEqual(self.version(), 2)
        for g in gates:
            g.set()
        got.extend(pieces)
        self.assertTrue(sr.complete)
        out = b"".join(got)
        self.assertEqual(StreamCheck(self, events, out).text(), "<v1>" + A + "</v1>" + F)
        line = self.relay.wait_log("reload-test on_end")
        self.assertIn("version=1 complete=true", line[-1])
        # the next exchange runs the new script
        self.upstream.handler = sse_handler(events)
        sr2 = StreamResponse(self.port, "POST", CHAT_PATH, headers, body)
        self.addCleanup(sr2.close)
        out2 = sr2.body()
        self.assertEqual(StreamCheck(self, events, out2).text(), "<v2>" + A + "</v2>" + F)
        self.assertIn("version=2 complete=true", self.relay.wait_log("on_end version=2")[-1])

    def test_pooled_connection_follows_new_upstream(self):
        # version 2 points "main" at the second upstream; a connection to the first one
        # that was busy during the reload must not be reused for it afterwards
        self.start(workers=1)
        gate = threading.Event()

        def slow(conn, req):
            gate.wait(5)
            conn.respond(200, [("Content-Type", "text/plain")], b"from-a")

        def fast_a(conn, req):
            conn.respond(200, [("Content-Type", "text/plain")], b"from-a")

        def fast_b(conn, req):
            conn.respond(200, [("Content-Type", "text/plain")], b"from-b")

        self.upstream.handler = slow
        self.upstream_b.handler = fast_b
        c = Client(self.port)
        self.addCleanup(c.close)
        c.request("GET", "/slow")
        self.upstream.wait_requests(1)
        self.write_script(2, upstream_var="UPSTREAM_B_PORT")
        self.hup("script reloaded", count=1)
        gate.set()
        r = c.read_response()
        self.assertEqual(r.body, b"from-a")
        self.upstream.handler = fast_a
        for target in ("/after-1", "/after-2"):
            r = http_exchange(self.port, "GET", target)
            self.assertEqual(r.body, b"from-b", "%s after the reload went to the old upstream" % target)
        self.assertEqual([q.target for q in self.upstream_b.requests], ["/after-1", "/after-2"])
        self.assertEqual([q.target for q in self.upstream.requests], ["/slow"])

    def test_signal_as_soon_as_it_accepts(self):
        # With several workers the first one listens while the others still load
        # their script; a SIGHUP or SIGTERM in that window (a supervisor that
        # reloads as soon as the port answers) used to kill the relay outright.
        self.script = os.path.join(self.workdir, "reload-test.lua")
        self.write_script(1)
        for sig in (signal.SIGHUP, signal.SIGHUP, signal.SIGHUP, signal.SIGTERM):
            relay = self.start_relay(args=["--script", self.script], wait=False, WORKERS="8",
                                     UPSTREAM_B_PORT=str(self.upstream_b.port))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and relay.proc.poll() is None:
                s = socket.socket()
                try:
                    if s.connect_ex(("127.0.0.1", relay.port)) == 0:
                        break
                finally:
                    s.close()
            relay.signal(sig)
            if sig == signal.SIGHUP:
                relay.wait_log("script reloaded", count=8, timeout=10)
                self.assertIsNone(relay.proc.poll(), "the relay died of an early SIGHUP (exit %s)"
                                  % relay.proc.returncode)
                self.assertEqual(http_exchange(relay.port, "GET", "/version").status, 200)
            else:
                self.assertEqual(relay.wait_exit(10), 0, "an early SIGTERM is a clean stop")
            relay.kill()


if __name__ == "__main__":
    unittest.main()
