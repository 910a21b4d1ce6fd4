"""The Lua layer's request side over real sockets: routes by path / method / JSON "model"
to two mock upstreams, answers made by the script (keep-alive, HEAD, pipelining after
them), request header set / remove, path rewrite, body replacement with lossless JSON
edits. The script is tests/integration/scripts/routes.lua."""

import json
import os
import unittest

from relaytest import Client, RelayTestCase, http_exchange, build_request, encode_chunked

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "scripts")


def script_path(name):
    return os.path.join(SCRIPTS, name)


class LuaTestCase(RelayTestCase):
    """RelayTestCase for relays that run a test script; every relay started with
    start_script must still be running when the test ends."""

    def setUp(self):
        super().setUp()
        self.upstream_b = self.make_upstream()

    def tearDown(self):
        for r in getattr(self, "relays", []):
            if getattr(r, "expect_alive", False):
                self.assertIsNone(r.proc.poll(), "relay exited (%s) during the test; stderr:\n%s"
                                  % (r.proc.returncode, r.stderr_text()[-4000:]))
        super().tearDown()

    def start_script(self, name, path=None, **env):
        env.setdefault("WORKERS", "1")
        env.setdefault("UPSTREAM_B_PORT", str(self.upstream_b.port))
        r = self.start_relay(args=["--script", path or script_path(name)], **env)
        r.expect_alive = True
        return r


def upstream_json(resp):
    """The echo handler's JSON summary of what the upstream received."""
    return resp.json()


class Routing(LuaTestCase):

    def setUp(self):
        super().setUp()
        self.relay = self.start_script("routes.lua")
        self.port = self.relay.port

    def get(self, target, method="GET", headers=None, body=None):
        return http_exchange(self.port, method, target, headers, body)

    def test_prefix_route_goes_to_b_and_the_rest_to_a(self):
        for target, want in [("/b/x", "b"), ("/b/", "b"), ("/b/deep/er?q=1", "b"),
                             ("/bx", "a"), ("/b", "a"), ("/other", "a"), ("/", "a"),
                             ("/a-explicit/1", "a")]:
            r = self.get(target)
            self.assertEqual(r.status, 200, (target, r))
            up = self.upstream if want == "a" else self.upstream_b
            other = self.upstream_b if want == "a" else self.upstream
            n_other = len(other.requests)
            reqs = up.wait_requests(1)
            self.assertTrue(any(q.target == target for q in reqs), "%s did not reach %s" % (target, want))
            self.assertEqual(len(other.requests), n_other)
        self.assertEqual(sorted(q.target for q in self.upstream_b.requests), ["/b/", "/b/deep/er?q=1", "/b/x"])

    def test_method_route(self):
        r = self.get("/post-b", "POST", body=b"{}")
        self.assertEqual(r.status, 200)
        self.assertEqual([q.method for q in self.upstream_b.requests], ["POST"])
        self.assertEqual(self.upstream_b.requests[0].body, b"{}")
        r = self.get("/post-b", "GET")
        self.assertEqual(r.status, 200)
        self.assertEqual([(q.method, q.target) for q in self.upstream.requests], [("GET", "/post-b")])
        self.assertEqual(len(self.upstream_b.requests), 1)

    def test_exact_route_ignores_query_but_not_longer_paths(self):
        self.assertEqual(self.get("/exact-b?x=1").status, 200)
        self.assertEqual(self.get("/exact-b/more").status, 200)
        self.assertEqual(self.get("/exact-bb").status, 200)
        self.assertEqual([q.target for q in self.upstream_b.requests], ["/exact-b?x=1"])
        self.assertEqual(sorted(q.target for q in self.upstream.requests), ["/exact-b/more", "/exact-bb"])

    def test_route_by_model_in_json_body(self):
        body_b = b'{"model":"model-b","prompt":"hi \\u00e9","n":1.50}'
        body_a = b'{"prompt":"x","model":"model-a"}'
        with Client(self.port) as c:
            # both on one keep-alive connection, the second chunked
            c.request("POST", "/v1/completions", [("Content-Type", "application/json")], body_b)
            r1 = c.read_response("POST")
            c.request("POST", "/v1/completions", [("Content-Type", "application/json")], body_a,
                      chunked=True, chunk_sizes=[5, 3])
            r2 = c.read_response("POST")
        self.assertEqual((r1.status, r2.status), (200, 200))
        self.assertEqual(len(self.upstream_b.requests), 1)
        self.assertEqual(len(self.upstream.requests), 1)
        qb, qa = self.upstream_b.requests[0], self.upstream.requests[0]
        self.assertEqual(qb.body, body_b)
        self.assertEqual(qb.header("content-length"), str(len(body_b)))
        self.assertEqual(qa.body, body_a)
        # the buffered chunked body goes up with a known length
        self.assertFalse(qa.chunked)
        self.assertEqual(qa.header("content-length"), str(len(body_a)))
        self.assertIsNone(qa.header("transfer-encoding"))
        # unknown model: the script answers itself
        r = self.get("/v1/completions", "POST", [("Content-Type", "application/json")], b'{"model":"zzz"}')
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["error"]["code"], "model_not_found")
        self.assertEqual(len(self.upstream.requests) + len(self.upstream_b.requests), 2)

    def test_global_on_request(self):
        r = self.get("/global/to-b?z=9")
        self.assertEqual(r.status, 200)
        q = self.upstream_b.wait_requests(1)[0]
        self.assertEqual((q.target, q.header("x-global")), ("/global/to-b?z=9", "1"))
        # a matched route without its own hook still runs the global one
        r = self.get("/b/secret", headers=[("X-Deny", "1")])
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json()["error"]["code"], "denied")
        self.assertEqual(len(self.upstream_b.requests), 1)
        # a route with its own hook does not run the global one
        r = self.get("/local/text", headers=[("X-Deny", "1")])
        self.assertEqual(r.status, 201)


class LocalAnswers(LuaTestCase):

    def setUp(self):
        super().setUp()
        self.relay = self.start_script("routes.lua")
        self.port = self.relay.port

    def test_json_answer_status_headers_body(self):
        r = http_exchange(self.port, "GET", "/local/json?a=1&b=%20")
        self.assertEqual(r.status, 418)
        self.assertEqual(r.header("x-local"), "yes")
        self.assertEqual(r.header("cache-control"), "no-store")
        self.assertTrue((r.header("content-type") or "").startswith("application/json"), r.headers)
        self.assertEqual(int(r.header("content-length")), len(r.body))
        self.assertEqual(r.json(), {"ok": True, "method": "GET", "path": "/local/json", "query": "a=1&b=%20"})
        self.assertEqual(len(self.upstream.requests) + len(self.upstream_b.requests), 0)
        self.assertEqual(self.upstream.connection_count + self.upstream_b.connection_count, 0)

    def test_text_answer(self):
        r = http_exchange(self.port, "POST", "/local/text", body=b"ignored")
        self.assertEqual(r.status, 201)
        self.assertEqual(r.header("content-type"), "text/plain; charset=utf-8")
        self.assertEqual(r.body, b"created POST\n")
        self.assertEqual(r.header("content-length"), str(len(b"created POST\n")))

    def test_keep_alive_after_local_answers(self):
        with Client(self.port) as c:
            c.request("GET", "/local/json")
            r1 = c.read_response()
            # a request body the script never read must be skipped, both framings
            c.request("POST", "/local/text", body=b"x" * 70000)
            r2 = c.read_response("POST")
            c.request("POST", "/local/text", body=b"y" * 1000, chunked=True, chunk_sizes=[7, 300])
            r3 = c.read_response("POST")
            c.request("GET", "/b/after")
            r4 = c.read_response()
            c.request("GET", "/local/empty")
            r5 = c.read_response()
            c.request("GET", "/plain")
            r6 = c.read_response()
        self.assertEqual([r.status for r in (r1, r2, r3, r4, r5, r6)], [418, 201, 201, 200, 204, 200])
        self.assertEqual(r2.body, b"created POST\n")
        self.assertEqual(r3.body, b"created POST\n")
        self.assertEqual(json.loads(r4.body)["target"], "/b/after")
        self.assertEqual(r5.body, b"")
        self.assertEqual(json.loads(r6.body)["target"], "/plain")
        self.assertEqual([q.target for q in self.upstream_b.requests], ["/b/after"])
        self.assertEqual([q.target for q in self.upstream.requests], ["/plain"])

    def test_head_gets_no_body(self):
        get = http_exchange(self.port, "GET", "/local/json")
        with Client(self.port) as c:
            c.request("HEAD", "/local/json")
            h = c.read_response("HEAD")
            c.request("GET", "/local/text")
            after = c.read_response()
            # nothing stray after the second response
            self.assertEqual(c.read_some(timeout=0.2), b"")
        self.assertEqual(h.status, 418)
        self.assertEqual(h.header("x-local"), "yes")
        # the body it would have had: the same JSON with "HEAD" for "GET"
        self.assertEqual(int(h.header("content-length")), int(get.header("content-length")) + 1)
        self.assertEqual(after.status, 201)
        self.assertEqual(after.body, b"created GET\n")

    def test_pipelined_local_and_proxied(self):
        with Client(self.port) as c:
            c.send(build_request("GET", "/local/json") + build_request("HEAD", "/local/text")
                   + build_request("POST", "/local/text", body=b"abc")
                   + build_request("GET", "/b/p") + build_request("GET", "/local/text"))
            rs = [c.read_response(m) for m in ("GET", "HEAD", "POST", "GET", "GET")]
        self.assertEqual([r.status for r in rs], [418, 201, 201, 200, 201])
        self.assertEqual(rs[1].body, b"")
        self.assertEqual(rs[2].body, b"created POST\n")
        self.assertEqual(json.loads(rs[3].body)["target"], "/b/p")
        self.assertEqual(rs[4].body, b"created GET\n")

    def test_http10_local_answer_closes(self):
        with Client(self.port) as c:
            c.request("GET", "/local/text", version="HTTP/1.0")
            r = c.read_response()
            self.assertEqual(r.status, 201)
            self.assertEqual(r.body, b"created GET\n")
            self.assertClosedSoon(c)

    def test_access_line_for_local_answer(self):
        http_exchange(self.port, "GET", "/local/text")
        lines = self.relay.wait_access(1)
        self.assertEqual(lines[-1]["status"], "201")
        self.assertEqual(lines[-1]["path"], "/local/text")
        self.assertEqual(lines[-1].get("upstream"), "-")


class RequestEdits(LuaTestCase):

    def setUp(self):
        super().setUp()
        self.relay = self.start_script("routes.lua")
        self.port = self.relay.port

    def test_header_set_and_remove(self):
        r = http_exchange(self.port, "GET", "/hdr", [
            ("User-Agent", "client/9"), ("X-Remove-Me", "secret"), ("X-Multi", "one"),
            ("X-Keep", "kept"), ("x-REMOVE-me", "again"), ("X-Multi", "two"), ("X-Added", "from-client")])
        self.assertEqual(r.status, 200)
        q = self.upstream.wait_requests(1)[0]
        self.assertEqual(q.header_all("x-remove-me"), [])
        self.assertEqual(q.header_all("user-agent"), ["relay-test/1"])
        self.assertEqual(q.header_all("x-added"), ["added-value"])
        self.assertEqual(q.header_all("x-keep"), ["kept"])
        self.assertEqual(q.header_all("x-multi"), ["one", "two"])
        self.assertEqual(q.header_all("x-seen-multi"), ["one, two"])
        self.assertEqual(q.header_all("x-seen-client"), ["127.0.0.1"])
        self.assertEqual(q.header_all("host"), ["127.0.0.1:%d" % self.upstream.port])

    def test_path_rewrite_keeps_query(self):
        r = http_exchange(self.port, "GET", "/old/a/b%2Fc?x=1&y=%20z&&w")
        self.assertEqual(r.status, 200)
        q = self.upstream.wait_requests(1)[0]
        self.assertEqual(q.header("x-orig-query"), "x=1&y=%20z&&w")
        self.assertEqual(q.target, "/new/a/b%2Fc?x=1&y=%20z&&w")
        r = http_exchange(self.port, "GET", "/old/noquery")
        self.assertEqual(r.status, 200)
        self.assertEqual(self.upstream.wait_requests(2)[1].target, "/new/noquery")

    def test_path_with_query_from_script(self):
        r = http_exchange(self.port, "GET", "/full/x?k=v%21")
        self.assertEqual(r.status, 200)
        q = self.upstream_b.wait_requests(1)[0]
        self.assertTrue(q.target.startswith("/rebuilt?k=v%21&added=1"), q.target)

    LOSSY = (b'{"model":"orig","temperature":1.0000000000000002,"top_p":1e-07,"penalty":-0.0,'
             b'"seed":12345678901234567890,"stop":[],"tools":[ ],"drop_me":{"a":[1,2]},'
             b'"messages":[{"role":"user","content":"a\\/b \\u00e9 \xc3\xa9"}],"n":1.50}')

    def test_body_replaced_losslessly(self):
        r = http_exchange(self.port, "POST", "/v1/edit", [("Content-Type", "application/json")], self.LOSSY)
        self.assertEqual(r.status, 200)
        q = self.upstream.wait_requests(1)[0]
        want = (b'{"model":"rewritten/model","temperature":1.0000000000000002,"top_p":1e-07,"penalty":-0.0,'
                b'"seed":12345678901234567890,"stop":[],"tools":[ ],'
                b'"messages":[{"role":"user","content":"a\\/b \\u00e9 \xc3\xa9"}],"n":1.50,'
                b'"max_tokens":4096,"metadata":{"via": "relay" , "list":[ ]}}')
        self.assertBodyEqual(q.body, want, "upstream body")
        self.assertEqual(q.header_all("content-length"), [str(len(want))])
        self.assertEqual(q.header("x-original-length"), str(len(self.LOSSY)))
        self.assertIsNone(q.header("transfer-encoding"))

    def test_body_replaced_from_chunked_request(self):
        r = http_exchange(self.port, "POST", "/v1/edit", [("Content-Type", "application/json")], self.LOSSY,
                          chunked=True, chunk_sizes=[1, 10, 100])
        self.assertEqual(r.status, 200)
        q = self.upstream.wait_requests(1)[0]
        self.assertFalse(q.chunked)
        self.assertIsNone(q.header("transfer-encoding"))
        self.assertEqual(int(q.header("content-length")), len(q.body))
        self.assertTrue(q.body.startswith(b'{"model":"rewritten/model","temperature":1.0000000000000002,'), q.body)

    def test_body_replaced_with_other_sizes(self):
        with Client(self.port) as c:
            c.request("POST", "/v1/replace", [("Content-Type", "application/json")], b"x" * 100000)
            r1 = c.read_response("POST")
            c.request("POST", "/v1/empty-body", [("Content-Type", "application/json")], b'{"a":1}')
            r2 = c.read_response("POST")
            c.request("POST", "/v1/replace", [("Content-Type", "application/json")], b"")
            r3 = c.read_response("POST")
        self.assertEqual([r.status for r in (r1, r2, r3)], [200, 200, 200])
        q1, q2, q3 = self.upstream.wait_requests(3)
        self.assertEqual(q1.body, b"plain replacement: 100000 bytes")
        self.assertEqual(q1.header_all("content-length"), [str(len(q1.body))])
        self.assertEqual(q1.header_all("content-type"), ["text/plain"])
        self.assertEqual(q2.body, b"")
        self.assertEqual(q2.header_all("content-length"), ["0"])
        self.assertEqual(q3.body, b"plain replacement: 0 bytes")


if __name__ == "__main__":
    unittest.main()
