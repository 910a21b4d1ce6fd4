"""The admin listener over real sockets: off unless RELAY_ADMIN_PORT (or relay.admin{}) turns
it on; GET /healthz (200 while every upstream has a server up, 503 otherwise, naming the
servers and their states); GET /metrics read by Prometheus' own text parser (Debian's
python3-prometheus-client) with every value checked against the requests the test made,
summed over two workers; the proxy port never answers these paths itself."""

import json
import os
import re
import socket
import threading
import time

from chatmock import CHAT_PATH, harmony_text, parse_sse, post_chat, sse_handler, stream_events, tokens
from relaytest import Client, RelayTestCase, free_port, http_exchange, wait_for

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:  # a missing dependency is a failure, not a skip
    raise SystemExit("prometheus_client is missing: apt-get install python3-prometheus-client (%s)" % e)

MODELS = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
NOT_FOUND = b'{"error":"no such thing"}'


def listening_ports(pid):
    """TCP ports the process listens on, from /proc (its socket inodes in LISTEN state)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def scrape(port):
    r = http_exchange(port, "GET", "/metrics")
    assert r.status == 200, r
    assert r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8", r.headers
    text = r.body.decode("utf-8")
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families, family, sample=None, **labels):
    """The one sample of family with exactly these labels (0 when the series is absent:
    request counts appear once non-zero)."""
    found = [s.value for s in families[family].samples
             if s.name == (sample or family) and s.labels == labels]
    assert len(found) <= 1, (family, labels, found)
    return found[0] if found else 0


class AdminCase(RelayTestCase):

    def start(self, **env):
        self.admin = free_port()
        env.setdefault("RELAY_ADMIN_PORT", str(self.admin))
        return self.start_relay(**env)


class AdminListener(AdminCase):

    def test_off_when_unset(self):
        relay = self.start_relay(WORKERS="2")
        self.assertTrue(relay.wait_log(r"admin off"))
        self.assertEqual(listening_ports(relay.pid), {relay.port})

    def test_on_loopback(self):
        relay = self.start(WORKERS="2")
        self.assertEqual(listening_ports(relay.pid), {relay.port, self.admin})
        self.assertTrue(relay.wait_log(r"admin 127\.0\.0\.1:%d" % self.admin))
        with open("/proc/net/tcp") as f:
            rows = [l.split() for l in f.readlines()[1:]]
        local = [r[1] for r in rows if r[3] == "0A" and int(r[1].rsplit(":", 1)[1], 16) == self.admin]
        self.assertEqual(local, ["0100007F:%04X" % self.admin])

    def test_admin_port_taken_stops_start_up(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        self.addCleanup(s.close)
        rc, out, err = self.run_relay(env={"LISTEN_ADDR": "127.0.0.1", "LISTEN_PORT": str(free_port()),
                                           "RELAY_ADMIN_PORT": str(s.getsockname()[1])})
        self.assertEqual(rc, 1)
        self.assertIn("cannot listen on the admin port 127.0.0.1:%d" % s.getsockname()[1], err)

    def test_proxy_port_forwards_these_paths(self):
        relay = self.start()
        for path in ("/healthz", "/metrics"):
            r = http_exchange(relay.port, "GET", path)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["target"], path)  # the mock upstream's echo
        targets = [q.target for q in self.upstream.requests if "health-check" not in (q.header("user-agent") or "")]
        self.assertEqual(targets, ["/healthz", "/metrics"])

    def test_http_details(self):
        self.start()
        with Client(self.admin) as c:
            for method, path, status in (("GET", "/healthz", 200), ("HEAD", "/metrics", 200),
                                         ("GET", "/metrics?x=1", 200), ("GET", "/", 404),
                                         ("POST", "/metrics", 405), ("GET", "/healthz/x", 404)):
                c.request(method, path, body=b"{}" if method == "POST" else None)
                r = c.read_response(method)
                self.assertEqual(r.status, status, (method, path, r))
                self.assertIsNotNone(r.header("content-length"))
                if method == "HEAD":
                    self.assertEqual(r.body, b"")
                if status == 405:
                    self.assertEqual(r.header("allow"), "GET, HEAD")
                if status >= 400:
                    self.assertIn("error", r.json())
        with Client(self.admin) as c:
            c.send(b"NOPE\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 400)
            self.assertClosedSoon(c)


class Healthz(AdminCase):

    def test_each_upstream_needs_a_server_up(self):
        """Two upstreams (Lua, relay.admin{}): 200 while both have a server up; one down
        makes it 503, and the body names every server and its state."""
        other = self.make_upstream()
        script = os.path.join(self.workdir, "two.lua")
        with open(script, "w") as f:
            f.write("""
local relay = require("relay")
relay.listen{addr = "127.0.0.1", port = tonumber(relay.getenv("LISTEN_PORT"))}
relay.admin{addr = "127.0.0.1", port = tonumber(relay.getenv("ADMIN"))}
relay.upstream{name = "chat", host = "127.0.0.1", port = %d, health_interval = 0.2}
relay.upstream{name = "embed", servers = {"127.0.0.1:%d"}, health_interval = 0.2, health_path = "/health"}
relay.route{path = "/v1/embeddings", upstream = "embed"}
""" % (self.upstream.port, other.port))
        admin = free_port()
        self.start_relay(args=["--script", script], ADMIN=str(admin))
        r = http_exchange(admin, "GET", "/healthz")
        self.assertEqual(r.status, 200, r)
        doc = r.json()
        self.assertEqual(doc["status"], "ok")
        self.assertEqual([u["name"] for u in doc["upstreams"]], ["chat", "embed"])
        self.assertTrue(wait_for(lambda: all(s["check"] == "passing" for u in http_exchange(
            admin, "GET", "/healthz").json()["upstreams"] for s in u["servers"]), 5))
        self.assertIn("/health", [q.target for q in other.requests])
        other.stop()
        self.assertTrue(wait_for(lambda: http_exchange(admin, "GET", "/healthz").status == 503, 5))
        doc = http_exchange(admin, "GET", "/healthz").json()
        self.assertEqual(doc["status"], "unavailable")
        chat, embed = doc["upstreams"]
        self.assertEqual((chat["healthy"], embed["healthy"]), (True, False))
        self.assertEqual(chat["servers"][0]["state"], "up")
        self.assertEqual(embed["servers"][0], dict(embed["servers"][0], server="127.0.0.1:%d" % other.port,
                                                   state="down", check="failing"))
        self.assertIn("connection refused", embed["servers"][0]["last_check"])
        # liveness is the relay's own: a dead model is no reason to restart the relay
        r = http_exchange(admin, "GET", "/healthz?live")
        self.assertEqual((r.status, r.json()), (200, {"status": "alive"}))

    def test_stopping_says_503(self):
        relay = self.start(RELAY_SHUTDOWN_TIMEOUT="5")
        # a request in flight keeps the relay draining for a while after SIGTERM
        release = threading.Event()

        def slow(conn, req):
            if req.target == "/slow":
                release.wait(5)
            conn.respond(200, [("Content-Type", "text/plain")], b"ok")

        self.upstream.handler = slow
        c = Client(relay.port, timeout=10)
        self.addCleanup(c.close)
        c.request("GET", "/slow")
        wait_for(lambda: any(q.target == "/slow" for q in self.upstream.requests), 5)
        relay.signal(15)
        self.assertTrue(wait_for(lambda: http_exchange(self.admin, "GET", "/healthz").status == 503, 3))
        self.assertEqual(http_exchange(self.admin, "GET", "/healthz").json()["status"], "stopping")
        release.set()
        self.assertEqual(c.read_response().status, 200)
        self.assertEqual(relay.wait_exit(10), 0)


class Metrics(AdminCase):

    def test_values_match_the_requests(self):
        events = stream_events(tokens(harmony_text("lmstudio")))
        chat = sse_handler(events)
        sent = {"bytes": 0}

        def handler(conn, req):
            if req.target == CHAT_PATH:
                sent["bytes"] += sum(len(e) for e in events)
                return chat(conn, req)
            if req.target == "/v1/models" or req.method == "DELETE":
                if "health-check" not in (req.header("user-agent") or ""):
                    sent["bytes"] += len(MODELS)
                return conn.respond(200, [("Content-Type", "application/json")], MODELS)
            sent["bytes"] += len(NOT_FOUND)
            conn.respond(404, [("Content-Type", "application/json")], NOT_FOUND)

        self.upstream.handler = handler
        relay = self.start(WORKERS="2", RELAY_HEALTH_INTERVAL="0")
        got = 0  # body bytes the clients received
        for _ in range(3):
            r = http_exchange(relay.port, "GET", "/v1/models")
            self.assertEqual(r.status, 200)
            got += len(r.body)
        changed = 0
        req_bytes = 0
        for _ in range(2):
            r, out = post_chat(relay.port)
            self.assertEqual(r.status, 200)
            self.assertTrue(r.complete)
            got += len(out)
            evs, _ = parse_sse(out)
            self.assertEqual(len(evs), len(events))
            changed += sum(1 for e, raw in zip(evs, events) if e.raw != raw)
        r = http_exchange(relay.port, "GET", "/missing")
        self.assertEqual(r.status, 404)
        got += len(r.body)
        r = http_exchange(relay.port, "DELETE", "/v1/models/x")
        self.assertEqual(r.status, 200)
        got += len(r.body)
        with Client(relay.port) as c:
            c.send(b"NOPE\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 400)
            got += len(r.body)
        req_bytes = sum(len(q.body or b"") for q in self.upstream.requests if q.target == CHAT_PATH)
        relay.wait_access(8)

        with Client(relay.port) as idle:  # one client connection open during the scrape
            idle.request("GET", "/v1/models")
            got += len(idle.read_response().body)
            # An exchange is counted as it ends, a moment after its last byte went out, and
            # before its access line is written.
            relay.wait_access(9)
            # the connections of the earlier requests close as the relay reads their EOF
            self.assertTrue(wait_for(lambda: value(scrape(self.admin), "relay_client_connections") == 1, 3))
            m = scrape(self.admin)
            self.assertEqual(value(m, "relay_client_connections"), 1)
        req = lambda route, method, code: value(m, "relay_requests", "relay_requests_total", route=route,
                                                 method=method, code=code)
        self.assertEqual(req("(none)", "GET", "200"), 4)
        self.assertEqual(req("POST /v1/chat/completions", "POST", "200"), 2)
        self.assertEqual(req("(none)", "GET", "404"), 1)
        self.assertEqual(req("(none)", "other", "200"), 1)
        self.assertEqual(req("(none)", "other", "400"), 1)
        total = sum(s.value for s in m["relay_requests"].samples)
        self.assertEqual(total, 9)
        self.assertEqual(value(m, "relay_client_sent_bytes", "relay_client_sent_bytes_total"), got)
        self.assertEqual(value(m, "relay_client_received_bytes", "relay_client_received_bytes_total"), req_bytes)
        self.assertGreater(req_bytes, 0)
        up = {"upstream": "default"}
        self.assertEqual(value(m, "relay_upstream_sent_bytes", "relay_upstream_sent_bytes_total", **up), req_bytes)
        self.assertEqual(value(m, "relay_upstream_received_bytes", "relay_upstream_received_bytes_total", **up),
                         sent["bytes"])
        for h in ("relay_upstream_ttfb_seconds", "relay_upstream_duration_seconds"):
            self.assertEqual(value(m, h, h + "_count", **up), 8)  # every exchange that reached the upstream
            self.assertEqual(value(m, h, h + "_bucket", le="+Inf", **up), 8)
            self.assertGreater(value(m, h, h + "_sum", **up), 0)
            self.assertLess(value(m, h, h + "_sum", **up), 30)
        self.assertGreater(changed, 0)
        self.assertEqual(value(m, "relay_rewritten_events", "relay_rewritten_events_total"), changed)
        self.assertEqual(value(m, "relay_reasoning_blocks", "relay_reasoning_blocks_total"), 2)
        self.assertEqual(value(m, "relay_tool_calls", "relay_tool_calls_total"), 0)
        self.assertEqual(value(m, "relay_open_streams"), 0)
        self.assertEqual(value(m, "relay_script_errors", "relay_script_errors_total"), 0)
        srv = dict(up, server="127.0.0.1:%d" % self.upstream.port)
        self.assertEqual(value(m, "relay_upstream_server_up", **srv), 1)
        self.assertEqual(value(m, "relay_upstream_server_outstanding", **srv), 0)
        self.assertEqual(value(m, "relay_upstream_connect_failures", "relay_upstream_connect_failures_total", **srv), 0)
        # once the idle connection closed, no client connection is left
        self.assertTrue(wait_for(lambda: value(scrape(self.admin), "relay_client_connections") == 0, 3))

    def test_tool_calls_counted(self):
        """Tool calls an upstream already made (OpenAI form) are counted where each begins:
        two in a stream (their later pieces carry no id), two in a whole body."""
        def call(index, cid=None, name=None, args=""):
            tc = {"index": index, "function": {"arguments": args}}
            if cid:
                tc.update(id=cid, type="function")
                tc["function"]["name"] = name
            return tc

        def ev(tcs, finish=None):
            doc = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {"tool_calls": tcs}, "finish_reason": finish}]}
            return ("data: %s\n\n" % json.dumps(doc)).encode()

        events = [ev([call(0, "call_1", "get_weather")]), ev([call(0, args='{"city":')]), ev([call(0, args='"Paris"}')]),
                  ev([call(1, "call_2", "get_time")]), ev([call(1, args="{}")]), b"data: [DONE]\n\n"]
        body = json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [
            {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_3", "type": "function", "function": {"name": "a", "arguments": "{}"}},
                {"id": "call_4", "type": "function", "function": {"name": "b", "arguments": "{}"}}]}}]}).encode()
        stream = sse_handler(events)

        def handler(conn, req):
            if b'"stream": true' in (req.body or b"") or b'"stream":true' in (req.body or b""):
                return stream(conn, req)
            conn.respond(200, [("Content-Type", "application/json")], body)

        self.upstream.handler = handler
        relay = self.start(WORKERS="2", RELAY_HEALTH_INTERVAL="0")
        r, out = post_chat(relay.port, stream=True)
        self.assertTrue(r.complete)
        self.assertEqual(out, b"".join(events))  # passed through unchanged
        r, out = post_chat(relay.port, stream=False)
        self.assertEqual(out, body)
        relay.wait_access(2)
        self.assertEqual(value(scrape(self.admin), "relay_tool_calls", "relay_tool_calls_total"), 4)

    def test_open_streams_and_outstanding(self):
        events = stream_events(["Hello", " world"], usage=False)
        gate = [threading.Event() for _ in events]
        self.upstream.handler = sse_handler(events, handshake=gate, handshake_timeout=10)
        relay = self.start(WORKERS="1", RELAY_HEALTH_INTERVAL="0")
        c = Client(relay.port, timeout=10)
        self.addCleanup(c.close)
        c.request("POST", CHAT_PATH, [("Content-Type", "application/json")],
                  b'{"model":"m","stream":true,"messages":[]}')
        c.read_head()
        m = scrape(self.admin)
        srv = {"upstream": "default", "server": "127.0.0.1:%d" % self.upstream.port}
        self.assertEqual(value(m, "relay_open_streams"), 1)
        self.assertEqual(value(m, "relay_upstream_server_outstanding", **srv), 1)
        for g in gate:
            g.set()
        c.read_until(b"0\r\n\r\n")
        self.assertTrue(wait_for(lambda: value(scrape(self.admin), "relay_open_streams") == 0, 3))
        m = scrape(self.admin)
        self.assertEqual(value(m, "relay_upstream_server_outstanding", **srv), 0)

    def test_reload_keeps_counts_under_their_names(self):
        """A reload that reorders, adds and removes routes and servers: each route's count
        goes on under its own name (a slot is given to a name once), /healthz and the
        server series follow the new servers; the relay then stops cleanly (exit 0, no
        sanitizer report)."""
        b = self.make_upstream()
        script = os.path.join(self.workdir, "reorder.lua")
        admin = free_port()
        head = """
local relay = require("relay")
relay.listen{addr = "127.0.0.1", port = tonumber(relay.getenv("LISTEN_PORT"))}
relay.admin{port = tonumber(relay.getenv("ADMIN"))}
relay.settings{workers = 2}
"""
        with open(script, "w") as f:
            f.write(head + """
relay.upstream{name = "default", servers = {"127.0.0.1:%d"}, health_interval = 0.2}
relay.route{path = "/a"}
relay.route{path = "/b"}
""" % self.upstream.port)
        relay = self.start_relay(args=["--script", script], ADMIN=str(admin))
        for path in ("/a", "/a", "/b"):
            self.assertEqual(http_exchange(relay.port, "GET", path).status, 200)
        with open(script, "w") as f:
            f.write(head + """
relay.upstream{name = "default", servers = {"127.0.0.1:%d", "127.0.0.1:%d"}, health_interval = 0.2}
relay.route{path = "/c"}
relay.route{path = "/a"}
""" % (self.upstream.port, b.port))
        relay.signal(1)
        relay.wait_log("script reloaded", count=2)
        self.assertTrue(wait_for(lambda: len(http_exchange(admin, "GET", "/healthz").json()["upstreams"][0]
                                             ["servers"]) == 2, 5))
        for path in ("/a", "/c", "/b"):
            self.assertEqual(http_exchange(relay.port, "GET", path).status, 200)
        relay.wait_access(6)
        m = scrape(admin)
        req = lambda route: value(m, "relay_requests", "relay_requests_total", route=route, method="GET", code="200")
        self.assertEqual((req("/a"), req("/b"), req("/c"), req("(none)")), (3, 1, 1, 1))
        servers = {s.labels["server"] for s in m["relay_upstream_server_up"].samples}
        self.assertEqual(servers, {"127.0.0.1:%d" % self.upstream.port, "127.0.0.1:%d" % b.port})
        relay.signal(15)
        self.assertEqual(relay.wait_exit(15), 0, relay.stderr_text()[-3000:])

    def test_script_errors_and_connect_failures(self):
        dead = free_port()
        script = os.path.join(self.workdir, "boom.lua")
        with open(script, "w") as f:
            f.write("""
local relay = require("relay")
relay.listen{addr = "127.0.0.1", port = tonumber(relay.getenv("LISTEN_PORT"))}
relay.admin{port = tonumber(relay.getenv("ADMIN"))}
relay.settings{workers = 2}
relay.upstream{name = "default", servers = {"127.0.0.1:%d", "127.0.0.1:%d"}, health_interval = 0}
relay.route{method = "GET", path = "/boom", on_request = function(req) error("boom") end}
""" % (dead, self.upstream.port))
        admin = free_port()
        relay = self.start_relay(args=["--script", script], ADMIN=str(admin))
        for _ in range(3):
            self.assertEqual(http_exchange(relay.port, "GET", "/boom").status, 500)
        for _ in range(4):
            self.assertEqual(http_exchange(relay.port, "GET", "/fine").status, 200)
        relay.wait_access(7)
        m = scrape(admin)
        self.assertEqual(value(m, "relay_script_errors", "relay_script_errors_total"), 3)
        self.assertEqual(value(m, "relay_requests", "relay_requests_total", route="GET /boom", method="GET",
                               code="500"), 3)
        self.assertEqual(value(m, "relay_requests", "relay_requests_total", route="(none)", method="GET",
                               code="200"), 4)
        failures = value(m, "relay_upstream_connect_failures", "relay_upstream_connect_failures_total",
                         upstream="default", server="127.0.0.1:%d" % dead)
        # each worker that took a request tried the dead server once, then backed off (a
        # second try only once a 1 s back-off ran out); every request was answered anyway
        self.assertGreaterEqual(failures, 1)
        self.assertLessEqual(failures, 4)


if __name__ == "__main__":
    import unittest
    unittest.main()
