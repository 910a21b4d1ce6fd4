"""The Responses bridge (issue 12) over real sockets, through the stock script: POST
/v1/responses translated to /v1/chat/completions on a chat-only mock upstream speaking
each server's dialect (dialects.py: llama.cpp's reasoning_content and parsed tool calls,
raw harmony in content, vLLM / LM Studio / Ollama's reasoning), streamed and not, every
output item kind (reasoning, message, function_call with and without a namespace,
custom_tool_call), usage, incomplete; the errors issue 12 names (malformed JSON and
unsupported values 400, previous_response_id 400, the upstream's error status with its
message, an upstream cut mid-stream: response.failed and the connection closed) and the
hostile ones (encoded bodies, events over the limit, error objects in a 200);
RELAY_RESPONSES=passthrough; the Lua route option (scripts/responses.lua)."""

import gzip
import json
import os
import socket
import time
import unittest

import dialects as D
from chatmock import json_handler, sse_handler
from relaytest import Client, RelayTestCase, RssSampler, build_request
from test_lua_routing import LuaTestCase
from responses import (CUSTOM_TOOL, NAMESPACE_TOOL, NEEDS_ISSUE_11, RESP_PATH, WEATHER_TOOL, WEB_SEARCH, events_of,
                       expected_items, harmony_tool_calls_landed, item_texts, post_responses, read_stream,
                       responses_body)

HERE = os.path.dirname(os.path.abspath(__file__))
# llama-server --reasoning-format none ("<|channel|>analysis<|message|>A<|end|>F", the
# final header eaten) needs the harmony parser that comes with issue 11: the older
# harmony rules have no analysis -> final transition on a bare <|end|>, so the chat
# rewrite itself keeps F inside the reasoning (on the chat route too). Until then it is
# left out; that is the reasoning rules' business, not the bridge's.
NONE = ("llamacpp_none",) if harmony_tool_calls_landed() else ()
DIALECTS = sorted(d for d in D.DIALECTS if d != "llamacpp_none" or NONE)
PARSED = ("llamacpp", "vllm", "vllm_mirror", "vllm_010", "ollama", "lmstudio") + NONE
HARMONY = ("harmony", "mlx")
CALL_ANSWER = D.Answer(content="", tool_calls=[D.WEATHER_CALL])
PREAMBLE_ANSWER = D.Answer(content="Let me check the weather.", tool_calls=[D.WEATHER_CALL])


def norm(items):
    """Items with JSON arguments compared as values (servers re-dump them)."""
    out = []
    for it in items:
        if it[0] == "function_call":
            it = it[:3] + (json.loads(it[3]),) + it[4:]
        out.append(it)
    return out


def upstream_call_ids(dialect, answer, stream):
    d = D.dialect(dialect)
    chs = D.collect_stream(d.events([answer]))[0] if stream else D.collect_body(d.body([answer]))
    return [c["id"] for c in chs[0].calls()]


class Bridge(RelayTestCase):
    """One relay (the stock script) per test, in front of self.upstream."""

    def relay(self, handler, **env):
        self.upstream.handler = handler
        env.setdefault("WORKERS", "1")
        self.r = self.start_relay(**env)
        return self.r.port

    def request_json(self, n=0):
        reqs = self.upstream.wait_requests(n + 1)
        return json.loads(reqs[n].body.decode("utf-8"))

    def roundtrip(self, dialect, answer, stream, tools=(WEATHER_TOOL,), **env):
        port = self.relay(D.chat_handler(dialect, [answer]), **env)
        resp = post_responses(port, stream=stream, tools=tools)
        self.assertEqual(resp.status, 200, resp)
        if stream:
            self.assertEqual(resp.header("content-type"), "text/event-stream")
            self.assertEqual(resp.framing, "chunked")
            self.assertTrue(resp.complete, resp)
            final, items = read_stream(self, resp.body)
        else:
            self.assertEqual(resp.header("content-type"), "application/json")
            self.assertEqual(resp.framing, "length")
            final = resp.json()
            items = final["output"]
        self.assertEqual(final["object"], "response")
        return final, items


class Items(Bridge):
    """Every item kind from every dialect, streamed and as one object."""

    def check(self, dialect, answer, stream, names=None, tools=(WEATHER_TOOL,), **env):
        final, items = self.roundtrip(dialect, answer, stream, tools=tools, **env)
        want = expected_items(answer, upstream_call_ids(dialect, answer, stream), names)
        self.assertEqual(norm(item_texts(items)), norm(want))
        self.assertEqual(final["status"], "completed")
        for it in items:
            self.assertEqual(it.get("status", "completed"), "completed")
        ids = [it["id"] for it in items]
        self.assertEqual(len(set(ids)), len(ids), "item ids are unique")
        return final, items

    def test_reasoning_and_message_from_every_dialect(self):
        for dialect in DIALECTS:
            for stream in (True, False):
                with self.subTest(dialect=dialect, stream=stream):
                    self.check(dialect, D.Answer(), stream)

    def test_function_call_from_servers_that_parse_calls(self):
        for dialect in PARSED:
            for answer in (CALL_ANSWER, PREAMBLE_ANSWER):
                for stream in (True, False):
                    with self.subTest(dialect=dialect, preamble=bool(answer.content), stream=stream):
                        final, items = self.check(dialect, answer, stream)
                        fc = items[-1]
                        self.assertEqual(fc["type"], "function_call")
                        self.assertNotIn("namespace", fc)

    @unittest.skipUnless(harmony_tool_calls_landed(), NEEDS_ISSUE_11)
    def test_function_call_from_raw_harmony(self):
        """The call is harmony text in content (LM Studio before 0.3.23, mlx_lm): the
        chat rewrite turns it into tool_calls, the bridge into a function_call item."""
        for dialect in HARMONY:
            for answer in (CALL_ANSWER, PREAMBLE_ANSWER):
                for stream in (True, False):
                    with self.subTest(dialect=dialect, preamble=bool(answer.content), stream=stream):
                        final, items = self.roundtrip(dialect, answer, stream, tools=(WEATHER_TOOL,))
                        got = norm(item_texts(items))
                        want = norm(expected_items(answer))
                        self.assertEqual([g[:4] for g in got], [w[:4] for w in want])
                        self.assertTrue(items[-1]["call_id"], "a call id made up for the call")
                        self.assertEqual(final["status"], "completed")

    def test_namespaced_call_comes_back_with_its_namespace(self):
        call = D.ToolCall("multi_agent_v1__close_agent", '{"id":"agent-7"}')
        names = {"multi_agent_v1__close_agent": ("multi_agent_v1", "close_agent", "function_call")}
        for stream in (True, False):
            with self.subTest(stream=stream):
                self.check("llamacpp", D.Answer(content="", tool_calls=[call]), stream, names=names,
                           tools=(NAMESPACE_TOOL,))
                sent = self.request_json()
                self.assertEqual([t["function"]["name"] for t in sent["tools"]], ["multi_agent_v1__close_agent"])

    def test_custom_tool_call(self):
        patch = "*** Begin Patch\n*** Add File: hello.txt\n+hi \"there\" \u00e9\n*** End Patch\n"
        call = D.ToolCall("apply_patch", json.dumps({"input": patch}))
        names = {"apply_patch": (None, "apply_patch", "custom_tool_call")}
        for stream in (True, False):
            with self.subTest(stream=stream):
                final, items = self.check("llamacpp", D.Answer(content="", tool_calls=[call]), stream, names=names,
                                          tools=(CUSTOM_TOOL, WEATHER_TOOL))
                self.assertEqual(items[-1]["input"], patch)
                sent = self.request_json()
                fn = [t["function"] for t in sent["tools"] if t["function"]["name"] == "apply_patch"][0]
                self.assertEqual(list(fn["parameters"]["properties"]), ["input"])

    def test_two_calls_in_one_turn(self):
        calls = [D.WEATHER_CALL, D.ToolCall("get_weather", '{"location":"Rome"}')]
        for stream in (True, False):
            with self.subTest(stream=stream):
                self.check("vllm", D.Answer(content="", tool_calls=calls), stream)

    def test_reasoning_in_tags_mode_is_still_a_reasoning_item(self):
        """RELAY_MODE configures chat clients; a Responses client always gets items."""
        for mode in ("tags", "strip", "field"):
            for stream in (True, False):
                with self.subTest(mode=mode, stream=stream):
                    self.check("harmony", D.Answer(), stream, RELAY_MODE=mode, RELAY_REASONING_FIELD="reasoning")

    def test_usage_is_mapped(self):
        final, _ = self.roundtrip("llamacpp", D.Answer(), True)
        self.assertEqual(final["usage"]["input_tokens"], 112)
        self.assertEqual(final["usage"]["output_tokens"], 57)
        self.assertEqual(final["usage"]["total_tokens"], 169)
        final, _ = self.roundtrip("ollama", D.Answer(), False)
        self.assertEqual((final["usage"]["input_tokens"], final["usage"]["output_tokens"]), (80, 40))

    def test_length_gives_incomplete(self):
        for stream in (True, False):
            with self.subTest(stream=stream):
                final, items = self.roundtrip("llamacpp", D.Answer(finish="length"), stream)
                self.assertEqual(final["status"], "incomplete")
                self.assertEqual(final["incomplete_details"], {"reason": "max_output_tokens"})
                self.assertEqual(item_texts(items), [("reasoning", D.REASONING), ("message", D.CONTENT)])

    def test_stream_cut_at_every_few_bytes(self):
        """TCP writes that split events, lines, UTF-8 and escapes change nothing."""
        for cuts in (1, 7, 64):
            with self.subTest(cuts=cuts):
                port = self.relay(D.chat_handler("llamacpp", [PREAMBLE_ANSWER], cuts=cuts, delay=0))
                resp = post_responses(port, stream=True, tools=[WEATHER_TOOL])
                final, items = read_stream(self, resp.body)
                want = expected_items(PREAMBLE_ANSWER, upstream_call_ids("llamacpp", PREAMBLE_ANSWER, True))
                self.assertEqual(norm(item_texts(items)), norm(want))

    def test_n2_upstream_gives_choice_0(self):
        answers = [D.Answer(), D.second(D.Answer())]
        for stream in (True, False):
            with self.subTest(stream=stream):
                port = self.relay(D.chat_handler("llamacpp", answers))
                resp = post_responses(port, stream=stream)
                items = read_stream(self, resp.body)[1] if stream else resp.json()["output"]
                self.assertEqual(item_texts(items), [("reasoning", D.REASONING), ("message", D.CONTENT)])


class Request(Bridge):
    """What the upstream gets."""

    def test_translated_request(self):
        port = self.relay(D.chat_handler("llamacpp", [D.Answer()]))
        body = responses_body(
            stream=True, instructions="Be brief.", tools=[WEATHER_TOOL, NAMESPACE_TOOL, WEB_SEARCH],
            input_=[{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Dev."}]},
                    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"},
                                                                      {"type": "input_text", "text": "there"}]}],
            reasoning={"effort": "high", "summary": "auto"}, max_output_tokens=300, store=False,
            include=["reasoning.encrypted_content"], prompt_cache_key="k", client_metadata={"a": "b"})
        resp = post_responses(port, body=body)
        self.assertEqual(resp.status, 200, resp)
        req = self.upstream.wait_requests(1)[0]
        self.assertEqual((req.method, req.target), ("POST", "/v1/chat/completions"))
        self.assertEqual(req.header("accept-encoding"), "identity")
        doc = json.loads(req.body)
        self.assertEqual(doc["messages"], [{"role": "system", "content": "Be brief.\n\nDev."},
                                           {"role": "user", "content": "Hi\n\nthere"}])
        self.assertEqual([t["function"]["name"] for t in doc["tools"]], ["get_weather", "multi_agent_v1__close_agent"])
        self.assertEqual(doc["reasoning_effort"], "high")
        self.assertEqual(doc["chat_template_kwargs"], {"reasoning_effort": "high"}, "the stock request hook ran")
        self.assertEqual(doc["max_tokens"], 300)
        self.assertIs(doc["stream"], True)
        self.assertEqual(doc["stream_options"], {"include_usage": True})
        self.assertEqual(int(req.header("content-length")), len(req.body))

    def test_history_round_trip(self):
        """A second turn: reasoning item, function_call and its output become an assistant
        message with reasoning_content and tool_calls, then a tool message."""
        port = self.relay(D.chat_handler("llamacpp", [D.Answer()]))
        items = [{"type": "message", "role": "user", "content": "Weather in Paris?"},
                 {"type": "reasoning", "id": "rs_1", "summary": [],
                  "content": [{"type": "reasoning_text", "text": "Call the tool."}], "encrypted_content": None},
                 {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "get_weather",
                  "arguments": "{\"location\":\"Paris\"}", "status": "completed"},
                 {"type": "function_call_output", "call_id": "call_9", "output": "18 C"}]
        resp = post_responses(port, body=responses_body(stream=False, input_=items, tools=[WEATHER_TOOL]))
        self.assertEqual(resp.status, 200, resp)
        msgs = self.request_json()["messages"]
        self.assertEqual(msgs[1]["role"], "assistant")
        self.assertEqual(msgs[1]["reasoning_content"], "Call the tool.")
        self.assertEqual(msgs[1]["tool_calls"][0]["id"], "call_9")
        self.assertEqual(msgs[2], {"role": "tool", "tool_call_id": "call_9", "content": "18 C"})

    def test_expect_100_continue(self):
        port = self.relay(D.chat_handler("llamacpp", [D.Answer()]))
        body = responses_body(stream=False)
        with Client(port) as c:
            c.send(build_request("POST", RESP_PATH, [("Content-Type", "application/json"),
                                                     ("Expect", "100-continue")], None)[:-2] +
                   b"Content-Length: %d\r\n\r\n" % len(body))
            head = c.read_head()
            self.assertTrue(head.startswith(b"HTTP/1.1 100"), head)
            c.send(body)
            resp = c.read_response("POST")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json()["status"], "completed")


class Errors(Bridge):
    """Refusals, upstream errors, cuts."""

    def assertRefused(self, resp, needle=None, param=None):
        err = self.assertErrorResponse(resp, 400, "invalid_request_error", None)
        if needle:
            self.assertIn(needle, err["message"])
        if param is not None:
            self.assertEqual(err["param"], param)
        return err

    def test_malformed_and_unsupported_bodies_get_400_and_never_go_upstream(self):
        port = self.relay(D.chat_handler("llamacpp", [D.Answer()]))
        cases = [
            (b'{"model": "m", "input": [', "not valid JSON", None),
            (b'[1, 2]', "must be a JSON object", None),
            (b'', "not valid JSON", None),
            (json.dumps({"model": "m", "input": 5}).encode(), None, "input"),
            (json.dumps({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}).encode(), None, None),
            (json.dumps({"model": "m", "input": "hi", "tool_choice": {"type": "function"}}).encode(), None, None),
            (json.dumps({"model": "m", "input": "hi", "temperature": "hot"}).encode(), None, "temperature"),
        ]
        for body, needle, param in cases:
            with self.subTest(body=body[:60]):
                self.assertRefused(post_responses(port, body=body), needle, param)
        self.assertEqual(self.upstream.requests, [], "nothing refused reaches the upstream")
        lines = self.r.wait_access(len(cases))
        self.assertEqual({l["status"] for l in lines}, {"400"})

    def test_previous_response_id_is_refused_as_stateless(self):
        port = self.relay(D.chat_handler("llamacpp", [D.Answer()]))
        for stream in (True, False):
            resp = post_responses(port, stream=stream, previous_response_id="resp_123")
            err = self.assertRefused(resp, "stateless", "previous_response_id")
        self.assertEqual(self.upstream.requests, [])

    def test_refusal_keeps_the_connection(self):
        port = self.relay(D.chat_handler("llamacpp", [D.Answer()]))
        with Client(port) as c:
            for body in (b"{", responses_body(stream=False)):
                c.request("POST", RESP_PATH, [("Content-Type", "application/json")], body)
                resp = c.read_response("POST")
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.json()["status"], "completed")

    def test_upstream_error_status_with_its_message(self):
        body = json.dumps({"error": {"code": 400, "message": "the request exceeds the available context size, "
                                     "try increasing it", "type": "exceed_context_size_error",
                                     "n_prompt_tokens": 9000, "n_ctx": 4096}}).encode()
        for stream in (True, False):
            with self.subTest(stream=stream):
                port = self.relay(json_handler(body, status=400))
                resp = post_responses(port, stream=stream)
                err = self.assertErrorResponse(resp, 400, "exceed_context_size_error", "context_length_exceeded")
                self.assertEqual(err["message"], "the request exceeds the available context size, try increasing it")

    def test_upstream_openai_error_keeps_type_and_code(self):
        body = json.dumps({"error": {"message": "model 'x' not found", "type": "invalid_request_error",
                                     "code": "model_not_found", "param": None}}).encode()
        port = self.relay(json_handler(body, status=404))
        resp = post_responses(port, stream=True)
        err = self.assertErrorResponse(resp, 404, "invalid_request_error", "model_not_found")
        self.assertEqual(err["message"], "model 'x' not found")
        self.assertEqual(self.upstream.wait_requests(1)[0].target, "/v1/chat/completions")

    def test_upstream_error_page_gets_a_generic_message(self):
        port = self.relay(json_handler(b"<html><body>Bad gateway</body></html>", status=503,
                                       content_type="text/html"))
        for stream in (True, False):
            resp = post_responses(port, stream=stream)
            err = self.assertErrorResponse(resp, 503, "upstream_error", None)
            self.assertIn("status 503", err["message"])

    def test_upstream_unreachable(self):
        self.upstream.stop()
        port = self.relay(None)
        resp = post_responses(port, stream=True)
        self.assertErrorResponse(resp, 502, "upstream_error", "upstream_unreachable")

    def test_error_object_in_a_200_body(self):
        body = json.dumps({"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}).encode()
        port = self.relay(json_handler(body))
        resp = post_responses(port, stream=False)
        self.assertEqual(resp.status, 503, resp)
        doc = resp.json()
        self.assertEqual(doc["status"], "failed")
        self.assertEqual(doc["error"]["message"], "Loading model")
        # A stream answered with a JSON body: a failed response, as events.
        resp = post_responses(port, stream=True)
        self.assertEqual(resp.status, 200)
        final, _ = read_stream(self, resp.body)
        self.assertEqual(final["status"], "failed")

    def test_error_event_mid_stream(self):
        err = b'data: {"error":{"code":500,"message":"llama_decode failed","type":"server_error"}}\n\n'
        evs = D.dialect("llamacpp").events([D.Answer()])[:12] + [err]
        port = self.relay(sse_handler(evs))
        resp = post_responses(port, stream=True)
        self.assertTrue(resp.complete, "the upstream ended cleanly: so does the response")
        final, items = read_stream(self, resp.body)
        self.assertEqual(final["status"], "failed")
        self.assertEqual(final["error"]["message"], "llama_decode failed")
        self.assertEqual([it["status"] for it in final["output"]], ["incomplete"])

    def test_failure_ends_the_stream_and_stops_the_upstream(self):
        """After response.failed the stream is over: the client gets its end at once
        and keeps its connection; the upstream, still generating, is closed."""
        err = b'data: {"error":{"code":500,"message":"llama_decode failed","type":"server_error"}}\n\n'
        evs = D.dialect("llamacpp").events([D.Answer()])
        h = sse_handler(evs[:8] + [err] + evs[8:] * 3, delay=0.1)  # 10 s more of upstream
        port = self.relay(h)
        with Client(port) as c:
            t0 = time.monotonic()
            c.request("POST", RESP_PATH, [("Content-Type", "application/json")], responses_body(stream=True))
            resp = c.read_response("POST")
            took = time.monotonic() - t0
            self.assertTrue(resp.complete, resp)
            final, _ = read_stream(self, resp.body)
            self.assertEqual(final["status"], "failed")
            self.assertLess(took, 3.0, "the stream ended with response.failed, not with the upstream (%.1f s)" % took)
            conn = self.upstream.wait_conns(1)[0]
            self.assertTrue(conn.peer_closed.wait(2.0), "the relay closed the upstream connection")
            self.assertFalse(h.script.done, "the mock had more to send")
            # the client's connection goes on
            self.upstream.handler = D.chat_handler("llamacpp", [D.Answer()])
            c.request("POST", RESP_PATH, [("Content-Type", "application/json")], responses_body(stream=True))
            final, _ = read_stream(self, c.read_response("POST").body)
            self.assertEqual(final["status"], "completed")

    def test_upstream_cut_mid_stream(self):
        """The upstream dies mid-stream: response.failed, then the connection closes."""
        evs = D.dialect("llamacpp").events([PREAMBLE_ANSWER])
        for keep in (3, 30, len(evs) - 3):
            with self.subTest(keep=keep):
                port = self.relay(sse_handler(evs[:keep], end=False))
                with Client(port) as c:
                    c.request("POST", RESP_PATH, [("Content-Type", "application/json")],
                              responses_body(stream=True, tools=[WEATHER_TOOL]))
                    resp = c.read_response("POST")
                    self.assertFalse(resp.complete, "no clean end after a cut")
                    self.assertClosedSoon(c)
                final, items = read_stream(self, resp.body)
                self.assertEqual(final["status"], "failed")
                self.assertIn("closed the stream", final["error"]["message"])
                for it in final["output"]:
                    self.assertIn(it.get("status", "completed"), ("completed", "incomplete"))
                done_calls = [it for it in items if it["type"] == "function_call"]
                self.assertEqual(done_calls, [], "a cut call never gets .done (Codex would run it)")

    def test_stream_that_ends_without_its_end(self):
        """A clean end of the body with no finish_reason and no [DONE]: failed, closed."""
        evs = D.dialect("llamacpp").events([D.Answer()])[:20]
        port = self.relay(sse_handler(evs))
        with Client(port) as c:
            c.request("POST", RESP_PATH, [("Content-Type", "application/json")], responses_body(stream=True))
            resp = c.read_response("POST")
            self.assertClosedSoon(c)
        final, _ = read_stream(self, resp.body)
        self.assertEqual(final["status"], "failed")

    def test_finish_without_done_completes(self):
        evs = [e for e in D.dialect("llamacpp").events([D.Answer()]) if e != D.DONE]
        port = self.relay(sse_handler(evs))
        resp = post_responses(port, stream=True)
        self.assertTrue(resp.complete)
        final, items = read_stream(self, resp.body)
        self.assertEqual(final["status"], "completed")
        self.assertEqual(item_texts(items), [("reasoning", D.REASONING), ("message", D.CONTENT)])

    def test_last_event_without_its_empty_line(self):
        """The stream's last event may lack its empty line: it still counts, and no chat
        byte reaches the client."""
        evs = D.dialect("llamacpp").events([D.Answer()], usage=False)
        self.assertEqual(evs[-1], D.DONE)
        cases = {"[DONE] cut short": b"".join(evs[:-1]) + b"data: [DONE]",
                 "finish chunk cut short, no [DONE]": b"".join(evs[:-1])[:-2]}
        for name, stream in cases.items():
            with self.subTest(name):
                port = self.relay(sse_handler([stream]))
                resp = post_responses(port, stream=True)
                self.assertTrue(resp.complete, resp)
                final, items = read_stream(self, resp.body)
                self.assertEqual(final["status"], "completed")
                self.assertEqual(item_texts(items), [("reasoning", D.REASONING), ("message", D.CONTENT)])
                self.assertNotIn(b"[DONE]", resp.body)
                self.assertNotIn(b"chat.completion", resp.body)

    def test_encoded_body_is_an_error(self):
        body = gzip.compress(D.dialect("llamacpp").body([D.Answer()]))
        port = self.relay(json_handler(body, headers=[("Content-Encoding", "gzip")]))
        for stream in (True, False):
            resp = post_responses(port, stream=stream)
            self.assertErrorResponse(resp, 502, "upstream_error", None)
            self.assertIsNone(resp.header("content-encoding"))

    def test_event_over_the_limit_fails_the_response(self):
        big = D.Answer(content="x" * 5000)
        evs = [D.sse('{"choices":[{"index":0,"delta":{"content":"%s"}}]}' % ("y" * 5000))] + \
            D.dialect("llamacpp").events([big])
        port = self.relay(sse_handler(evs), RELAY_MAX_BODY_BUFFER=4096)
        resp = post_responses(port, stream=True)
        final, _ = read_stream(self, resp.body)
        self.assertEqual(final["status"], "failed")
        self.assertNotIn(b"chat.completion", resp.body)

    def test_body_over_the_limit(self):
        port = self.relay(D.chat_handler("llamacpp", [D.Answer()]), RELAY_MAX_BODY_BUFFER=2048)
        resp = post_responses(port, body=responses_body(stream=False, input_="x" * 4000))
        self.assertErrorResponse(resp, 413, "invalid_request_error", "request_too_large")
        self.assertEqual(self.upstream.requests, [])
        # An upstream body over the limit cannot be translated: a 502, never the chat body.
        port2 = self.relay(D.chat_handler("llamacpp", [D.Answer(content="z" * 5000)]), RELAY_MAX_BODY_BUFFER=2048)
        resp = post_responses(port2, stream=False)
        self.assertEqual(resp.status, 502, resp)
        self.assertNotIn(b"chat.completion", resp.body)

    def test_endless_tool_calls_and_text_are_bounded(self):
        """A hostile upstream: a new tool call index with every event, then megabytes of
        text. The response fails at the item limit (256) and the rest is ignored, in
        bounded CPU and memory."""
        calls = [D.sse('{"choices":[{"index":0,"delta":{"tool_calls":[{"index":%d,"id":"c%d","type":"function",'
                       '"function":{"name":"get_weather","arguments":"{}"}}]}}]}' % (k, k)) for k in range(20000)]
        text = [D.sse('{"choices":[{"index":0,"delta":{"content":"%s"}}]}' % ("x" * 4000))] * 2000
        whole = b"".join(calls + text + [D.DONE])
        port = self.relay(sse_handler([whole[i:i + 65536] for i in range(0, len(whole), 65536)], delay=0))
        cpu0 = self.r.cpu_seconds()
        sampler = RssSampler(self.r)
        resp = post_responses(port, stream=True, tools=[WEATHER_TOOL])
        peak = sampler.stop()
        final, items = read_stream(self, resp.body)
        self.assertEqual(final["status"], "failed")
        self.assertLessEqual(len(final["output"]), 256)
        self.assertLess(len(resp.body), 4 << 20, "the text after the failure is not sent")
        cpu = self.r.cpu_seconds() - cpu0
        if os.environ.get("RELAY_TEST_VERBOSE"):
            print("cpu %.3f s, peak RSS %d KiB, %d bytes out" % (cpu, peak, len(resp.body)))
        self.assertLess(cpu, 5.0)
        self.assertLess(peak, 200 * 1024, "peak RSS %d KiB" % peak)

    def test_non_json_events_are_skipped(self):
        evs = [b": keep-alive\n\n", b"data: not json\n\n"] + D.dialect("llamacpp").events([D.Answer()])
        port = self.relay(sse_handler(evs))
        resp = post_responses(port, stream=True)
        final, items = read_stream(self, resp.body)
        self.assertEqual(final["status"], "completed")
        self.assertEqual(item_texts(items), [("reasoning", D.REASONING), ("message", D.CONTENT)])


class LuaRoute(LuaTestCase):
    """relay.route{frontend = ...} in a script (scripts/responses.lua)."""

    def test_hook_sees_the_translated_request_and_tags_mode_is_overridden(self):
        self.upstream.handler = D.chat_handler("harmony", [D.Answer()])
        r = self.start_script("responses.lua")
        body = responses_body(stream=True, instructions="Be brief.",
                              input_=[{"role": "developer", "content": "Dev."}, {"role": "user", "content": "Hi"}])
        resp = post_responses(r.port, body=body)
        self.assertEqual(resp.status, 200, resp)
        final, items = read_stream(self, resp.body)
        self.assertEqual(item_texts(items), [("reasoning", D.REASONING), ("message", D.CONTENT)],
                         "mode = tags on a front-end route still gives a reasoning item")
        req = self.upstream.wait_requests(1)[0]
        self.assertEqual(req.target, "/v1/chat/completions")
        self.assertEqual(req.header("x-seen-path"), "/v1/chat/completions")
        self.assertEqual(req.header("x-seen-frontend"), "responses")
        self.assertEqual(req.header("x-seen-messages"), "2")
        self.assertEqual(req.header("x-seen-first-role"), "system")

    def test_frontend_options(self):
        self.upstream.handler = D.chat_handler("vllm", [D.Answer()])
        r = self.start_script("responses.lua")
        items = [{"role": "developer", "content": "Dev."},
                 {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "R"}]},
                 {"role": "assistant", "content": "A"}, {"role": "user", "content": "Q"}]
        resp = post_responses(r.port, path="/alt/responses?x=1", body=responses_body(stream=False, input_=items))
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(item_texts(resp.json()["output"]), [("reasoning", D.REASONING), ("message", D.CONTENT)])
        req = self.upstream.wait_requests(1)[0]
        self.assertEqual(req.target, "/alt/chat?x=1", "the chat path, with the client's query")
        msgs = json.loads(req.body)["messages"]
        self.assertEqual(msgs[0], {"role": "developer", "content": "Dev."})
        self.assertEqual(msgs[1]["reasoning"], "R")
        self.assertNotIn("reasoning_content", msgs[1])

    def test_refusal_comes_before_the_hook(self):
        r = self.start_script("responses.lua")
        resp = post_responses(r.port, path="/local/responses", body=b"{nope")
        self.assertErrorResponse(resp, 400, "invalid_request_error", None)
        resp = post_responses(r.port, path="/local/responses", stream=False)
        self.assertEqual((resp.status, resp.json()), (200, {"seen": "/v1/chat/completions"}))
        self.assertEqual(self.upstream.requests, [])

    def test_bad_frontend_options_are_load_errors(self):
        cases = [('frontend = "nope"', "unknown frontend 'nope'"),
                 ('frontend = 5', "frontend must be a string or a table"),
                 ('frontend = {}', "frontend needs a type"),
                 ('frontend = {type = "responses", chat_path = "chat"}', "chat_path must start with '/'"),
                 ('frontend = {type = "responses", chat_path = "/a b"}', "space or control byte"),
                 ('frontend = {type = "responses", reasoning_field = "a\\"b"}', "not a usable JSON key"),
                 ('frontend = {type = "responses", developer_role = "boss"}', "developer_role"),
                 ('frontend = {type = "responses", colour = "red"}', "unknown option 'colour'")]
        for opt, msg in cases:
            with self.subTest(opt):
                path = os.path.join(self.workdir, "bad.lua")
                with open(path, "w") as f:
                    f.write('local relay = require("relay")\n'
                            'relay.upstream({ name = "default", host = "127.0.0.1", port = 1 })\n'
                            'relay.route({ method = "POST", path = "/v1/responses", %s })\n' % opt)
                rc, out, err = self.run_relay(["--check", "--script", path])
                self.assertNotEqual(rc, 0, err)
                self.assertIn(msg, err)
                self.assertIn("bad.lua:3:", err)


class Passthrough(RelayTestCase):

    def test_passthrough_forwards_unchanged(self):
        answer = b'event: response.created\ndata: {"type":"response.created"}\n\n'
        self.upstream.handler = sse_handler([answer])
        r = self.start_relay(RELAY_RESPONSES="passthrough")
        body = responses_body(stream=True, previous_response_id="resp_1")
        resp = post_responses(r.port, body=body)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, answer)
        req = self.upstream.wait_requests(1)[0]
        self.assertEqual((req.target, req.body), ("/v1/responses", body))

    def test_bad_value_is_a_start_up_error(self):
        rc, out, err = self.run_relay(["--check"], env={"RELAY_RESPONSES": "maybe"})
        self.assertNotEqual(rc, 0)
        self.assertIn("RELAY_RESPONSES", err)


if __name__ == "__main__":
    unittest.main()
