"""What the rewrite must leave alone: error statuses, compressed bodies, other content
types, invalid JSON in an event, other routes and methods. And the request the upstream
sees on the chat route asks for identity encoding."""

import gzip
import json
import unittest

from chatmock import (ChatTestCase, A, F, DONE, USAGE_CHUNK, CHAT_PATH, StreamResponse, chat_request,
                      chunk, completion_body, harmony_text, json_handler, post_chat, sse, sse_handler,
                      stream_events, tokens)

LMSTUDIO = harmony_text("lmstudio")
THINK = "<think>" + A + "</think>" + F


class ErrorStatus(ChatTestCase):

    def _exact(self, status, body, content_type="application/json", stream=False):
        h = json_handler(body, status=status, content_type=content_type)
        relay = self.relay_for(h)
        r, got = post_chat(relay.port, stream=stream)
        self.assertEqual(r.status, status)
        self.assertEqual(r.header("content-type"), content_type)
        self.assertEqual(r.header("content-length"), str(len(body)))
        self.assertBodyEqual(got, body)

    def test_400_json_with_markers_unchanged(self):
        body = ('{"error":{"message":"bad prompt: %s","type":"invalid_request_error","param":null,'
                '"code":null,"n":1.0000000000000002,"x":[]}}' % LMSTUDIO.replace('"', '\\"')).encode()
        self._exact(400, body)

    def test_500_completion_shaped_body_unchanged(self):
        self._exact(500, completion_body([LMSTUDIO]))

    def test_500_event_stream_unchanged(self):
        evs = stream_events(tokens(LMSTUDIO))
        h = sse_handler(evs, status=500)
        relay = self.relay_for(h)
        r, got = post_chat(relay.port, stream=True)
        self.assertEqual(r.status, 500)
        self.assertBodyEqual(got, b"".join(evs))

    def test_404_unchanged(self):
        self._exact(404, b'{"detail":"<|channel|>analysis<|message|>Not Found"}')


class Encoded(ChatTestCase):

    def test_gzip_json_body_passed_unchanged(self):
        body = gzip.compress(completion_body([LMSTUDIO]), mtime=0)
        h = json_handler(body, headers=[("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")])
        relay = self.relay_for(h)
        r, got = post_chat(relay.port, stream=False, extra_headers=[("Accept-Encoding", "gzip")])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-encoding"), "gzip")
        self.assertEqual(r.header("content-length"), str(len(body)))
        self.assertBodyEqual(got, body)
        self.assertEqual(json.loads(gzip.decompress(got))["choices"][0]["message"]["content"], LMSTUDIO)

    def test_gzip_event_stream_passed_unchanged(self):
        raw = b"".join(stream_events(tokens(LMSTUDIO)))
        body = gzip.compress(raw, mtime=0)
        pieces = [body[i:i + 50] for i in range(0, len(body), 50)]
        h = sse_handler([body], pieces=pieces, headers=[("Content-Encoding", "gzip")])
        relay = self.relay_for(h)
        r, got = post_chat(relay.port, stream=True)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-encoding"), "gzip")
        self.assertBodyEqual(got, body)
        self.assertEqual(gzip.decompress(got), raw)

    def test_identity_encoding_is_rewritten(self):
        evs = stream_events(tokens(LMSTUDIO))
        _, _, sc, _ = self.stream(evs, headers=[("Content-Encoding", "identity")])
        self.assertEqual(sc.text(), THINK)

    def test_upstream_asked_for_identity(self):
        evs = stream_events(tokens(LMSTUDIO))
        _, _, sc, script = self.stream(evs, extra_headers=[("Accept-Encoding", "gzip, deflate, br, zstd")])
        self.assertEqual(len(script.requests), 1)
        req = script.requests[0]
        self.assertEqual(req.method, "POST")
        self.assertEqual(req.target, CHAT_PATH)
        self.assertEqual(req.header_all("accept-encoding"), ["identity"])
        self.assertEqual(sc.text(), THINK)

    def test_upstream_asked_for_identity_without_client_header(self):
        body = completion_body([LMSTUDIO])
        _, got, script = self.body(body)
        self.assertEqual(script.requests[0].header_all("accept-encoding"), ["identity"])
        # and the request body reached the upstream as the client sent it
        headers, sent = chat_request(False)
        self.assertEqual(script.requests[0].body, sent)

    def test_other_route_keeps_accept_encoding(self):
        h = json_handler(b'{"data":[]}')
        relay = self.relay_for(h)
        r = StreamResponse(relay.port, "POST", "/v1/completions",
                           [("Accept-Encoding", "gzip, br"), ("Content-Type", "application/json")], b"{}")
        self.addCleanup(r.close)
        r.body()
        self.assertEqual(script_of(h).requests[0].header_all("accept-encoding"), ["gzip, br"])


def script_of(h):
    return h.script


class OtherContent(ChatTestCase):

    def _unchanged(self, body, content_type, stream=True, method="POST", path=CHAT_PATH):
        h = sse_handler([body], content_type=content_type, framing="length")
        relay = self.relay_for(h)
        headers, req_body = chat_request(stream)
        r = StreamResponse(relay.port, method, path, headers, req_body if method == "POST" else None)
        self.addCleanup(r.close)
        got = r.body()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-type"), content_type)
        self.assertBodyEqual(got, body)

    def test_text_plain_unchanged(self):
        self._unchanged(LMSTUDIO.encode(), "text/plain; charset=utf-8")

    def test_ndjson_unchanged(self):
        # Ollama's native streaming format is not SSE
        body = b"".join(('{"message":{"content":%s}}\n' % json.dumps(t)).encode() for t in tokens(LMSTUDIO))
        self._unchanged(body, "application/x-ndjson")

    def test_html_unchanged(self):
        self._unchanged(b"<html>" + b"".join(stream_events(tokens(LMSTUDIO))) + b"</html>", "text/html")

    def test_json_lookalike_type_unchanged(self):
        self._unchanged(completion_body([LMSTUDIO]), "application/jsonl")

    def test_no_content_type_unchanged(self):
        body = completion_body([LMSTUDIO])
        h = sse_handler([body], content_type=None, framing="length")
        relay = self.relay_for(h)
        r, got = post_chat(relay.port, stream=False)
        self.assertEqual(r.header("content-type"), None)
        self.assertBodyEqual(got, body)

    def test_get_on_chat_path_unchanged(self):
        self._unchanged(b"".join(stream_events(tokens(LMSTUDIO))), "text/event-stream", method="GET")

    def test_other_path_unchanged(self):
        self._unchanged(b"".join(stream_events(tokens(LMSTUDIO))), "text/event-stream", path="/v1/completions")

    def test_content_type_with_parameters_is_rewritten(self):
        evs = stream_events(tokens(LMSTUDIO))
        _, _, sc, _ = self.stream(evs, content_type="text/event-stream; charset=utf-8")
        self.assertEqual(sc.text(), THINK)

    def test_json_content_type_case_insensitive(self):
        body = completion_body([LMSTUDIO])
        r, got, _ = self.body(body, content_type="Application/JSON; charset=UTF-8")
        self.assertEqual(json.loads(got)["choices"][0]["message"]["content"], THINK)


class InvalidJson(ChatTestCase):

    def test_invalid_events_passed_unchanged(self):
        toks = tokens(LMSTUDIO)
        bad = [b'data: {"choices":[{"index":0,"delta":{"content":"<|channel|>"}}]\n\n',   # truncated
               b"data: not json <|channel|>analysis<|message|>\n\n",
               b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]} trailing\n\n',
               b'data: {"choices":{"index":0}}\n\n',
               b'data: ["<|channel|>analysis<|message|>"]\n\n',
               b'data: {"choices":[{"index":0,"delta":{"content":"\\q bad escape"}}]}\n\n',
               b"data: \n\n",
               b"data: {}\n\n"]
        evs = [sse(chunk("", role="assistant"))]
        for k, t in enumerate(toks):
            evs.append(sse(chunk(t)))
            if k < len(bad):
                evs.append(bad[k])
        evs += [sse(chunk(finish="stop", delta_raw="{}")), sse(USAGE_CHUNK), DONE]
        _, out, sc, _ = self.stream(evs)
        for b in bad:
            self.assertIn(b, out)
        self.assertEqual(sc.text(), THINK)

    def test_invalid_json_body_unchanged(self):
        body = b'{"choices":[{"index":0,"message":{"content":"<|channel|>analysis<|message|>x"}}],}'
        r, got, _ = self.body(body)
        self.assertBodyEqual(got, body)

    def test_body_without_choices_unchanged(self):
        body = b'{"object":"list","data":[],"note":"<|channel|>analysis<|message|>","n":1.0000000000000002}'
        r, got, _ = self.body(body)
        self.assertBodyEqual(got, body)


if __name__ == "__main__":
    unittest.main()
