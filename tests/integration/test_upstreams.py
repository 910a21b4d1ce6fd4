"""Several servers per upstream, over real loopback sockets: the spread (least outstanding,
ties round robin, a Host field per server), failover of requests none of which was sent
(bodies included), a server killed mid-run with requests and streams in flight, the active
check bringing it back, every server down (502 at once, without waiting for connect
timeouts; /healthz 503), and the configuration (UPSTREAM_SERVERS, relay.upstream{servers=}).

Servers that never answer a connect are listening sockets whose accept queue is full: the
kernel drops the SYN, as with a host that is down."""

import json
import os
import socket
import threading
import time

from relaytest import (Client, MockUpstream, RelayTestCase, free_port, http_exchange, sha256,
                       wait_for)


def is_check(req):
    return "health-check" in (req.header("user-agent") or "")


def proxied(up):
    """Requests the relay forwarded (not its health checks)."""
    with up.lock:
        return [r for r in up.requests if not is_check(r)]


def servers_env(ups):
    return ",".join("127.0.0.1:%d" % (u if isinstance(u, int) else u.port) for u in ups)


class Blackhole:
    """A port whose connects hang: a listener with a full accept queue."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fill = []
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fill.append(c)
        time.sleep(0.1)
        probe = socket.socket()
        probe.settimeout(0.3)
        try:
            probe.connect(("127.0.0.1", self.port))
            hangs = False
        except (socket.timeout, OSError):
            hangs = True
        finally:
            probe.close()
        assert hangs, "could not make a port whose connects hang"

    def close(self):
        for c in self.fill:
            c.close()
        self.sock.close()


def named_handler(name, close=False):
    """200 with a JSON body naming the server and echoing the request id."""
    def handler(conn, req):
        hdrs = [("Content-Type", "application/json")]
        if close:
            hdrs.append(("Connection", "close"))
        body = json.dumps({"server": name, "id": req.header("x-req-id"), "host": req.header("host"),
                           "body_sha256": sha256(req.body or b"")}).encode()
        conn.respond(200, hdrs, body)
        if close:
            conn.close()
    return handler


class UpstreamsCase(RelayTestCase):

    def setUp(self):
        self.upstream = None

    def healthz(self, port):
        r = http_exchange(port, "GET", "/healthz")
        return r.status, json.loads(r.body)

    def server_state(self, port, up):
        _, doc = self.healthz(port)
        for s in doc["upstreams"][0]["servers"]:
            if s["server"] == "127.0.0.1:%d" % up.port:
                return s
        self.fail("server %d not in /healthz: %r" % (up.port, doc))


class Spread(UpstreamsCase):

    def _spread(self, n):
        ups = [self.make_upstream(named_handler("s%d" % i)) for i in range(n)]
        relay = self.start_relay(UPSTREAM_SERVERS=servers_env(ups), WORKERS="1", RELAY_HEALTH_INTERVAL="0")
        for i in range(10 * n):
            r = http_exchange(relay.port, "GET", "/v1/models")
            self.assertEqual(r.status, 200, r)
        counts = [len(proxied(u)) for u in ups]
        # one worker, each request done before the next: strict rotation
        self.assertEqual(counts, [10] * n)
        for u in ups:
            self.assertEqual({r.header("host") for r in proxied(u)}, {"127.0.0.1:%d" % u.port})
        access = relay.wait_access(10 * n)
        self.assertEqual({a["upstream"] for a in access}, {"127.0.0.1:%d" % u.port for u in ups})

    def test_two_servers_take_turns(self):
        self._spread(2)

    def test_three_servers_take_turns(self):
        self._spread(3)

    def test_least_outstanding(self):
        """Requests that stay open spread evenly; a server with fewer open requests gets the next."""
        release = threading.Event()

        def holding(name):
            def h(conn, req):
                if req.target == "/hold":
                    release.wait(10)
                conn.respond(200, [("Content-Type", "text/plain")], name.encode())
            return h

        ups = [self.make_upstream(holding("s%d" % i)) for i in range(3)]
        relay = self.start_relay(UPSTREAM_SERVERS=servers_env(ups), WORKERS="1", RELAY_HEALTH_INTERVAL="0")
        clients = []
        try:
            for i in range(6):
                c = Client(relay.port, timeout=10)
                c.request("GET", "/hold")
                clients.append(c)
                wait_for(lambda: sum(len(proxied(u)) for u in ups) >= i + 1, 5)
            self.assertEqual([len(proxied(u)) for u in ups], [2, 2, 2])
            release.set()
            for c in clients:
                self.assertEqual(c.read_response().status, 200)
        finally:
            release.set()
            for c in clients:
                c.close()


class Failover(UpstreamsCase):

    def test_refused_server_is_skipped_body_and_all(self):
        """A request whose connect is refused goes to the next server with its whole body
        (streamed in while the relay was connecting): nothing lost, nothing sent twice."""
        dead = free_port()
        live = self.make_upstream(named_handler("live"))
        relay = self.start_relay(UPSTREAM_SERVERS=servers_env([dead, live]), WORKERS="1",
                                 RELAY_HEALTH_INTERVAL="0")
        body = os.urandom(1 << 20)
        for i in range(3):
            with Client(relay.port, timeout=10) as c:
                c.request("POST", "/v1/embeddings", [("X-Req-Id", str(i))], body, chunked=True,
                          chunk_sizes=[65536])
                r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["body_sha256"], sha256(body))
        reqs = proxied(live)
        self.assertEqual([r.header("x-req-id") for r in reqs], ["0", "1", "2"])
        self.assertTrue(all(r.body == body for r in reqs))
        # the first request met the refusal; the next ones went straight to the live server
        # (unless the 1 s back-off ran out meanwhile, as it may in a slow build)
        self.assertIn(len(relay.wait_log("server 127.0.0.1:%d failed" % dead)), (1, 2))

    def test_servers_replace_host_and_port(self):
        up = self.make_upstream(named_handler("only"))
        relay = self.start_relay(UPSTREAM_HOST="127.0.0.1", UPSTREAM_PORT=str(free_port()),
                                 UPSTREAM_SERVERS="127.0.0.1:%d" % up.port)
        r = http_exchange(relay.port, "GET", "/v1/models")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["server"], "only")

    def test_killed_mid_run(self):
        """Three servers, two workers, load running: one server dies. Its streams are cut
        visibly; a request failed only if it had gone to that server (connected and sent,
        when the server vanished), never one that had not started; the others go on, and
        /healthz names it down."""
        release = threading.Event()

        def handler(name):
            plain = named_handler(name, close=True)

            def h(conn, req):
                if req.target == "/stream":
                    conn.start_chunked(200, [("Content-Type", "text/event-stream")])
                    conn.chunk(b"data: " + name.encode() + b" first\n\n")
                    release.wait(20)
                    conn.chunk(b"data: " + name.encode() + b" last\n\n")
                    conn.end_chunks()
                else:
                    plain(conn, req)
            return h

        ups = [self.make_upstream(handler(n)) for n in ("a", "b", "c")]
        a = ups[0]
        admin = free_port()
        relay = self.start_relay(UPSTREAM_SERVERS=servers_env(ups), WORKERS="2", RELAY_HEALTH_INTERVAL="0.3",
                                 RELAY_ADMIN_PORT=str(admin))
        streams = []
        try:
            for _ in range(6):
                c = Client(relay.port, timeout=10)
                c.request("GET", "/stream")
                head = c.read_head()
                self.assertIn(b" 200 ", head)
                first = c.read_until(b" first\n\n\r\n")
                streams.append((first.split(b"data: ")[1][:1].decode(), c))
            on = [s for s, _ in streams]
            self.assertIn("a", on)
            self.assertTrue(set(on) - {"a"}, on)

            results, stop, lock = [], threading.Event(), threading.Lock()

            def load(tid):
                k = 0
                while not stop.is_set():
                    rid = "%d-%d" % (tid, k)
                    k += 1
                    try:
                        with Client(relay.port, timeout=10) as c:
                            if k % 2:
                                c.request("POST", "/v1/embeddings?id=" + rid, [("X-Req-Id", rid)], b"x" * 5000)
                            else:
                                c.request("GET", "/v1/models?id=" + rid, [("X-Req-Id", rid)])
                            r = c.read_response()
                        out = (rid, r.status, r.json().get("server") if r.status == 200 else r.json())
                    except Exception as e:  # noqa: BLE001 - recorded and judged below
                        out = (rid, None, repr(e))
                    with lock:
                        results.append(out)

            threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(4)]
            for t in threads:
                t.start()
            wait_for(lambda: len(results) >= 40, 10)
            a.stop()
            t_kill = time.monotonic()
            n_at_kill = len(results)
            wait_for(lambda: len(results) >= n_at_kill + 80, 15)
            stop.set()
            for t in threads:
                t.join(15)

            # streams on the dead server: cut (no terminating chunk), promptly
            for name, c in streams:
                if name != "a":
                    continue
                rest = c.read_until_close(timeout=5)
                self.assertFalse(rest.endswith(b"0\r\n\r\n"), rest)
                self.assertNotIn(b"last", rest)
            self.assertLess(time.monotonic() - t_kill, 10)
            # streams on the others finish cleanly
            release.set()
            for name, c in streams:
                if name == "a":
                    continue
                rest = c.read_until(b"0\r\n\r\n")
                self.assertIn(name.encode() + b" last", rest)

            # A request failed only if it had been sent to the dead server: its access line
            # names that server and says the server broke off (502 upstream_bad_response),
            # at most one per load thread (the one in flight at the kill).
            failed = [x for x in results if x[1] != 200]
            self.assertLessEqual(len(failed), 4, failed)
            access = {l["path"].split("id=")[-1]: l for l in relay.wait_access(len(results) + 6)
                      if "id=" in l["path"]}
            for rid, st, what in failed:
                self.assertEqual(st, 502, (rid, what))
                self.assertEqual(what["error"]["code"], "upstream_bad_response", (rid, what))
                self.assertEqual(access[rid]["upstream"], "127.0.0.1:%d" % a.port, access[rid])
            after = results[n_at_kill + 8:]
            self.assertGreaterEqual(len(after), 60)
            self.assertTrue(all(st == 200 and srv in ("b", "c") for _, st, srv in after),
                            [x for x in after if x[1] != 200 or x[2] not in ("b", "c")][:5])
            # the load kept spreading over the two that are left
            self.assertEqual({srv for _, _, srv in after}, {"b", "c"})
            self.assertTrue(wait_for(lambda: self.server_state(admin, a)["state"] == "down", 5))
            status, doc = self.healthz(admin)
            self.assertEqual(status, 200, doc)
            self.assertEqual(self.server_state(admin, a)["check"], "failing")
        finally:
            release.set()
            for _, c in streams:
                c.close()

    def test_active_check_brings_server_back(self):
        a = self.make_upstream(named_handler("a"))
        b = self.make_upstream(named_handler("b"))
        a_port = a.port
        admin = free_port()
        relay = self.start_relay(UPSTREAM_SERVERS=servers_env([a, b]), WORKERS="2", RELAY_HEALTH_INTERVAL="0.3",
                                 RELAY_ADMIN_PORT=str(admin))
        a.stop()
        self.assertTrue(wait_for(lambda: self.server_state(admin, a)["state"] == "down", 5))
        for i in range(10):
            r = http_exchange(relay.port, "GET", "/v1/models")
            self.assertEqual((r.status, r.json()["server"]), (200, "b"))
        # the same server comes back on the same port: the next check passes and it takes
        # requests again (while its check failed, no request went there to find out)
        a2 = self.make_upstream(named_handler("a2"), port=a_port)
        t0 = time.monotonic()
        self.assertTrue(wait_for(lambda: self.server_state(admin, a2)["state"] == "up", 5),
                        self.healthz(admin))
        self.assertLess(time.monotonic() - t0, 3.0)
        relay.wait_log("server 127.0.0.1:%d passes its health check again" % a_port)
        seen = set()
        for i in range(20):
            seen.add(http_exchange(relay.port, "GET", "/v1/models").json()["server"])
        self.assertEqual(seen, {"a2", "b"})
        self.assertGreaterEqual(len(proxied(a2)), 5)


    def test_failing_check_takes_server_out(self):
        """A server that answers its check with a 5xx takes no requests, although it
        accepts connections; a check answered below 500 (a 401 from a server that wants a
        key) passes, and the server takes requests again."""
        mode = {"check": 503}

        def picky(conn, req):
            if is_check(req):
                return conn.respond(mode["check"], [("Content-Type", "application/json")], b"{}")
            named_handler("a")(conn, req)

        a = self.make_upstream(picky)
        b = self.make_upstream(named_handler("b"))
        admin = free_port()
        relay = self.start_relay(UPSTREAM_SERVERS=servers_env([a, b]), WORKERS="2", RELAY_HEALTH_INTERVAL="0.2",
                                 RELAY_ADMIN_PORT=str(admin))
        self.assertTrue(wait_for(lambda: self.server_state(admin, a)["state"] == "down", 5))
        self.assertEqual(self.server_state(admin, a)["last_check"], "status 503")
        time.sleep(0.3)  # applied by every worker
        n = len(proxied(a))
        for _ in range(10):
            self.assertEqual(http_exchange(relay.port, "GET", "/v1/models").json()["server"], "b")
        self.assertEqual(len(proxied(a)), n)
        mode["check"] = 401
        self.assertTrue(wait_for(lambda: self.server_state(admin, a)["state"] == "up", 5))
        time.sleep(0.3)
        seen = {http_exchange(relay.port, "GET", "/v1/models").json()["server"] for _ in range(10)}
        self.assertEqual(seen, {"a", "b"})


class AllDown(UpstreamsCase):

    def test_refused_all_healthz_503_and_502(self):
        ups = [self.make_upstream(named_handler("a")), self.make_upstream(named_handler("b"))]
        admin = free_port()
        relay = self.start_relay(UPSTREAM_SERVERS=servers_env(ups), RELAY_HEALTH_INTERVAL="0.3",
                                 RELAY_ADMIN_PORT=str(admin))
        self.assertEqual(self.healthz(admin)[0], 200)
        for u in ups:
            u.stop()
        self.assertTrue(wait_for(lambda: self.healthz(admin)[0] == 503, 5), self.healthz(admin))
        status, doc = self.healthz(admin)
        self.assertEqual(doc["status"], "unavailable")
        self.assertFalse(doc["upstreams"][0]["healthy"])
        self.assertEqual({s["state"] for s in doc["upstreams"][0]["servers"]}, {"down"})
        for _ in range(4):
            r = http_exchange(relay.port, "POST", "/v1/chat/completions", body=b'{"model":"m"}')
            self.assertErrorResponse(r, 502, "upstream_error", "upstream_unreachable")

    def test_hanging_servers_known_down_answer_at_once(self):
        """Servers whose connects hang, found down by their checks: a request gets its 502
        at once instead of waiting out the connect timeout on each."""
        holes = [Blackhole(), Blackhole()]
        for h in holes:
            self.addCleanup(h.close)
        admin = free_port()
        relay = self.start_relay(UPSTREAM_SERVERS=servers_env([h.port for h in holes]), RELAY_CONNECT_TIMEOUT="3",
                                 RELAY_HEALTH_INTERVAL="0.2", RELAY_HEALTH_TIMEOUT="0.2",
                                 RELAY_ADMIN_PORT=str(admin))
        self.assertTrue(wait_for(lambda: self.healthz(admin)[0] == 503, 5), self.healthz(admin))
        time.sleep(0.5)  # the workers apply check results within 0.2 s
        for _ in range(4):
            t0 = time.monotonic()
            r = http_exchange(relay.port, "GET", "/v1/models")
            elapsed = time.monotonic() - t0
            self.assertErrorResponse(r, 502, "upstream_error", "upstream_unreachable")
            self.assertLess(elapsed, 1.0, "waited %.2fs: the connect timeout is 3 s" % elapsed)
        self.assertIn("no server of upstream 'default' is up", r.json()["error"]["message"])

    def test_hanging_servers_without_checks(self):
        """Passive health alone: the first request waits out the connect timeout on each
        server (then 504); the next ones get 502 at once while the servers back off."""
        holes = [Blackhole(), Blackhole()]
        for h in holes:
            self.addCleanup(h.close)
        relay = self.start_relay(UPSTREAM_SERVERS=servers_env([h.port for h in holes]), RELAY_CONNECT_TIMEOUT="0.5",
                                 RELAY_HEALTH_INTERVAL="0", WORKERS="1")
        t0 = time.monotonic()
        r = http_exchange(relay.port, "GET", "/v1/models")
        self.assertErrorResponse(r, 504, "upstream_error", "upstream_timeout")
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)  # both servers were tried
        for _ in range(3):
            t0 = time.monotonic()
            r = http_exchange(relay.port, "GET", "/v1/models")
            self.assertErrorResponse(r, 502, "upstream_error", "upstream_unreachable")
            self.assertLess(time.monotonic() - t0, 0.4)


class Config(UpstreamsCase):

    def test_bad_server_lists_stop_start_up(self):
        cases = [
            ("127.0.0.1:80,", "empty entry"),
            ("127.0.0.1", 'missing \\":port\\"'),
            ("http://gpu:8000", "without a scheme"),
            ("a:1,a:1", "repeats server 1"),
            ("::1:8000", "brackets"),
        ]
        for value, msg in cases:
            rc, out, err = self.run_relay(["--check"], env={"UPSTREAM_SERVERS": value})
            self.assertEqual(rc, 1, (value, out, err))
            self.assertIn("UPSTREAM_SERVERS=", err)
            self.assertIn(msg.replace('\\"', '"'), err.replace('\\"', '"'), (value, err))

    def test_check_prints_servers_and_health(self):
        rc, out, err = self.run_relay(["--check"], env={"UPSTREAM_SERVERS": "10.0.0.1:8000, [::1]:8001",
                                                         "RELAY_ADMIN_PORT": "9100"})
        self.assertEqual(rc, 0, err)
        self.assertIn("upstream default 10.0.0.1:8000,[::1]:8001 health=/v1/models every=5000ms", out)
        self.assertIn("admin 127.0.0.1:9100", out)
        rc, out, err = self.run_relay(["--check"], env={})
        self.assertIn("upstream default 127.0.0.1:1234 health=passive", out)
        self.assertIn("admin off", out)

    def test_lua_servers(self):
        a = self.make_upstream(named_handler("a"))
        b = self.make_upstream(named_handler("b"))
        script = os.path.join(self.workdir, "servers.lua")
        with open(script, "w") as f:
            f.write("""
local relay = require("relay")
relay.listen{addr = "127.0.0.1", port = tonumber(relay.getenv("LISTEN_PORT"))}
relay.settings{workers = 1}
relay.upstream{name = "pool", servers = {"127.0.0.1:%d", "127.0.0.1:%d"}, health_interval = 0}
relay.route{path = "/*", upstream = "pool"}
""" % (a.port, b.port))
        relay = self.start_relay(args=["--script", script], WORKERS="1")
        names = [http_exchange(relay.port, "GET", "/v1/models").json()["server"] for _ in range(4)]
        self.assertEqual(names, ["a", "b", "a", "b"])

    def test_lua_errors(self):
        bad = [
            ('relay.upstream{servers = {"a:1"}, host = "a", port = 1}', "not both"),
            ('relay.upstream{servers = {}}', "servers is empty"),
            ('relay.upstream{servers = {"a:1", "a:1"}}', "servers[2] repeats servers[1]"),
            ('relay.upstream{servers = {"a:1,b:2"}}', 'one "host:port" per entry'),
            ('relay.upstream{servers = {"a"}}', 'servers[1]: server 1 "a": missing ":port"'),
            ('relay.upstream{servers = "a:1,b"}', 'server 2 "b": missing ":port"'),
            ('relay.upstream{host = "a", port = 1, health_path = "models"}', "health_path must start with '/'"),
            ('relay.upstream{host = "a", port = 1, health_interval = 0.01}', "health_interval must be 0"),
            ('relay.upstream{host = "a", port = 1, helth_path = "/x"}', "unknown field 'helth_path'"),
            ('relay.upstream{host = "a", port = 1} relay.admin{addr = "localhost", port = 9}', "not an IPv4 or IPv6"),
            ('relay.upstream{host = "a", port = 1} relay.admin{port = 70000}', "port must be an integer"),
        ]
        for i, (code, msg) in enumerate(bad):
            script = os.path.join(self.workdir, "bad%d.lua" % i)
            with open(script, "w") as f:
                f.write('local relay = require("relay")\n' + code + "\n")
            rc, out, err = self.run_relay(["--check", "--script", script])
            self.assertEqual(rc, 1, (code, out, err))
            self.assertIn("bad%d.lua:2:" % i, err)
            self.assertIn(msg, err, code)


if __name__ == "__main__":
    import unittest
    unittest.main()
