"""Self-tests of the dialect mocks (dialects.py): each server's stream parses as SSE and
ends as that server ends it, its bodies parse as JSON, the reasoning, content and tool
calls read back give the scripted text, and each server's own marks are there (role
chunks, escapes, spacing, where the tool call comes). The last class drives them through
MockUpstream over a real socket, as the relay will see them. No relay is involved."""

import json
import unittest

import dialects as D
from chatmock import parse_sse
from relaytest import Client, MockUpstream

CALL = D.WEATHER_CALL
SCRIPTS = {
    "reasoning+content": [D.Answer()],
    "reasoning+call": [D.Answer(content="", tool_calls=[CALL])],
    "reasoning+preamble+call": [D.Answer(content="Let me check.", tool_calls=[CALL])],
    "content only": [D.Answer(reasoning="", content="Just text, no markers.")],
    "n=2": [D.Answer(), D.second(D.Answer(content="", tool_calls=[CALL]))],
}


ALL = dict(D.DIALECTS, **D.VARIANTS)


class Streams(unittest.TestCase):

    def each(self):
        return [(name, d, sname, answers) for name, d in ALL.items() for sname, answers in SCRIPTS.items()]

    def test_events_are_whole_sse_events_ending_with_done(self):
        for name, d, sname, answers in self.each():
            with self.subTest(dialect=name, script=sname):
                evs = d.events(answers)
                for e in evs:
                    parsed, rest = parse_sse(e)
                    self.assertEqual((len(parsed), rest), (1, b""), "one write is one event: %r" % e)
                parsed, rest = parse_sse(b"".join(evs))
                self.assertEqual(rest, b"")
                self.assertEqual(parsed[-1].data, b"[DONE]")
                self.assertEqual(sum(1 for p in parsed if p.is_done), 1)
                for p in parsed[:-1]:
                    if p.data is None:
                        self.assertTrue(p.raw.startswith(b":"), "only comments have no data: %r" % p.raw)
                        continue
                    doc = json.loads(p.data.decode("utf-8"))
                    self.assertIsInstance(doc, dict)
                    self.assertIsInstance(doc["choices"], list, p.raw)

    def test_read_back_gives_the_scripted_text(self):
        for name, d, sname, answers in self.each():
            with self.subTest(dialect=name, script=sname):
                chs, info = D.collect_stream(d.events(answers))
                self.assertTrue(info["done"])
                want = d.answers(answers)
                self.assertEqual(sorted(chs), list(range(len(want))), "one choice per answer the server supports")
                for i, a in enumerate(want):
                    ch = chs[i]
                    content, reasoning = d.scripted(a)
                    self.assertEqual(ch.content or "", content)
                    for f in d.reasoning_fields:
                        self.assertEqual(ch.text(f), reasoning, "%s of choice %d" % (f, i))
                    if d.harmony_in_content and a.reasoning:
                        self.assertIn("<|channel|>analysis<|message|>" + a.reasoning, ch.content)
                    self.assertEqual(ch.finish_reason, d.finish(a))
                    self.assertIn("assistant", ch.roles, "a role for choice %d (the SDK needs one)" % i)
                    parsed = [c for c in ch.calls()]
                    if d.name in ("harmony", "mlx"):
                        self.assertEqual(parsed, [], "harmony left in content: the call is text")
                        for c in a.tool_calls:
                            self.assertIn("to=functions." + c.name, ch.content)
                    else:
                        self.assertEqual([c["name"] for c in parsed], [c.name for c in a.tool_calls])
                        for got, c in zip(parsed, a.tool_calls):
                            self.assertEqual(json.loads(got["arguments"]), json.loads(c.arguments))
                            self.assertEqual(got["type"], "function")
                            self.assertTrue(got["id"])

    def test_bodies_parse_and_read_back(self):
        for name, d, sname, answers in self.each():
            with self.subTest(dialect=name, script=sname):
                body = d.body(answers)
                doc = json.loads(body.decode("utf-8"))
                self.assertEqual(doc["object"], "chat.completion")
                chs = D.collect_body(body)
                want = d.answers(answers)
                self.assertEqual(sorted(chs), list(range(len(want))))
                for i, a in enumerate(want):
                    content, reasoning = d.scripted(a)
                    self.assertEqual(chs[i].content or "", content)
                    for f in d.reasoning_fields:
                        self.assertEqual(chs[i].text(f), reasoning)
                    if not d.harmony_in_content:
                        self.assertEqual([c["name"] for c in chs[i].calls()], [c.name for c in a.tool_calls])
                        for got, c in zip(chs[i].calls(), a.tool_calls):
                            self.assertEqual(json.loads(got["arguments"]), json.loads(c.arguments))

    def test_usage_chunk_when_asked(self):
        for name, d in D.DIALECTS.items():
            with self.subTest(dialect=name):
                chs, info = D.collect_stream(d.events([D.Answer()], usage=True))
                self.assertIsNotNone(info["usage"])
                last = [e for e in info["events"] if e.data and not e.is_done][-1].json()
                self.assertEqual(last["choices"], [])
                chs, info = D.collect_stream(d.events([D.Answer()], usage=False))
                self.assertIsNone(info["usage"])
                self.assertTrue(d.wants_usage({"stream_options": {"include_usage": True}}))
                self.assertFalse(d.wants_usage({}))
                self.assertEqual(d.wants_usage({"stream_options": {}}), name.startswith("vllm"),
                                 "vLLM's StreamOptions.include_usage defaults to true")


class Marks(unittest.TestCase):
    """What tells each server apart on the wire."""

    def docs(self, d, answers=None, usage=False):
        evs = d.events(answers or [D.Answer(content="", tool_calls=[CALL])], usage=usage)
        return [e for e in parse_sse(b"".join(evs))[0]]

    def test_llamacpp(self):
        d = D.DIALECTS["llamacpp"]
        evs = self.docs(d)
        first = evs[0].data.decode()
        self.assertTrue(first.startswith('{"choices":[{"finish_reason":null,"index":0,"delta":'
                                         '{"role":"assistant","content":null}}],"created":'), first)
        for e in evs[1:-1]:
            delta = e.json()["choices"][0]["delta"]
            self.assertNotIn("content", delta, "a reasoning or tool delta has no content key")
            self.assertLessEqual(len(delta), 1, "one part per diff")
        calls = [e.json()["choices"][0]["delta"]["tool_calls"][0] for e in evs[1:-1]
                 if "tool_calls" in e.json()["choices"][0]["delta"]]
        self.assertEqual(list(calls[0]), ["index", "id", "type", "function"])
        self.assertEqual(calls[0]["function"], {"name": "get_weather"}, "no arguments key in the first delta")
        self.assertRegex(calls[0]["id"], r"^[0-9A-Za-z]{32}$")
        self.assertEqual(evs[-2].json()["choices"][0], {"finish_reason": "tool_calls", "index": 0, "delta": {}})
        self.assertIn(b'"timings":', evs[-2].raw)
        self.assertNotIn(b'"timings":', evs[-3].raw)
        self.assertIn("\u00b0C".encode(), b"".join(e.raw for e in evs), "raw UTF-8")
        every = self.docs(D.LlamaCpp(timings="every"))
        self.assertTrue(all(b'"timings":' in e.raw for e in every[:-1]))
        peg = self.docs(D.LlamaCpp(first_args="{"))
        first_call = [e.json()["choices"][0]["delta"] for e in peg[:-1] if "tool_calls" in e.json()["choices"][0]["delta"]][0]
        self.assertEqual(first_call["tool_calls"][0]["function"], {"name": "get_weather", "arguments": "{"})
        body = json.loads(d.body([D.Answer(content="", tool_calls=[CALL])]))
        self.assertIsNone(body["choices"][0]["message"]["content"])
        self.assertEqual(list(body["choices"][0]["message"]["tool_calls"][0]), ["type", "function", "id"])
        self.assertEqual(json.loads(D.LlamaCpp(empty_content="empty").body([D.Answer(content="")]))
                         ["choices"][0]["message"]["content"], "")
        n2 = self.docs(d, [D.Answer(), D.second(D.Answer())])
        roles = [e.json()["choices"][0]["index"] for e in n2[:-1]
                 if e.json()["choices"][0]["delta"].get("role") == "assistant"]
        self.assertEqual(roles, [0, 1], "a role chunk per choice")

    def test_llamacpp_none(self):
        d = D.DIALECTS["llamacpp_none"]
        chs, _ = D.collect_stream(d.events([D.Answer()]))
        self.assertEqual(chs[0].content, "<|channel|>analysis<|message|>" + D.REASONING + "<|end|>" + D.CONTENT,
                         "the final header is eaten")
        chs, _ = D.collect_stream(d.events([D.Answer(content="", tool_calls=[CALL])]))
        self.assertEqual(chs[0].content, "<|channel|>analysis<|message|>" + D.REASONING + "<|end|>")
        self.assertEqual(chs[0].calls()[0]["name"], "get_weather", "calls still parsed")

    def test_vllm(self):
        d = D.DIALECTS["vllm"]
        evs = self.docs(d, usage=True)
        self.assertEqual(evs[0].json()["choices"][0],
                         {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                          "finish_reason": None})
        self.assertEqual(list(evs[1].json()["choices"][0]), ["index", "delta", "logprobs", "finish_reason", "token_ids"])
        self.assertEqual(evs[1].json()["choices"][0]["delta"], {"reasoning": "The"})
        opening = [e.json()["choices"][0]["delta"]["tool_calls"][0] for e in evs[:-1]
                   if "tool_calls" in (e.json()["choices"] or [{}])[0].get("delta", {})][0]
        self.assertEqual(list(opening), ["id", "type", "index", "function"])
        self.assertRegex(opening["id"], r"^chatcmpl-tool-[0-9a-f]{32}$")
        self.assertEqual(opening["function"]["arguments"], "")
        self.assertEqual(list(evs[-2].json()["usage"]), ["prompt_tokens", "total_tokens", "completion_tokens"])
        body = json.loads(d.body([D.Answer(content="", tool_calls=[CALL])]))
        msg = body["choices"][0]["message"]
        self.assertEqual(msg["tool_calls"][0]["function"]["arguments"], '{"location": "Paris", "unit": "\\u00b0C"}',
                         "json.dumps(json.loads(args)): spaced and ASCII")
        self.assertNotIn("reasoning_content", msg)
        self.assertEqual(json.loads(d.body([D.Answer()]))["choices"][0]["message"]["tool_calls"], [])
        n2 = self.docs(d, [D.Answer(), D.second(D.Answer())])
        self.assertTrue(all(len(e.json()["choices"]) == 1 for e in n2[:-1]), "one choice per chunk")
        self.assertEqual({e.json()["choices"][0]["index"] for e in n2[:-1]}, {0, 1})

    def test_vllm_mirror_and_010(self):
        m = self.docs(D.DIALECTS["vllm_mirror"], [D.Answer()])
        for e in m[1:-1]:
            delta = e.json()["choices"][0]["delta"]
            self.assertIn("reasoning_content", delta, "every delta carries the mirror")
            if "reasoning" in delta:
                self.assertEqual(delta["reasoning"], delta["reasoning_content"])
            else:
                self.assertIsNone(delta["reasoning_content"])
        self.assertEqual(m[1].json()["choices"][0]["delta"], {"reasoning": "The", "reasoning_content": "The"})
        old = self.docs(D.DIALECTS["vllm_010"], [D.Answer()])
        self.assertEqual(old[1].json()["choices"][0]["delta"], {"reasoning_content": "The"})
        msg = json.loads(D.DIALECTS["vllm_mirror"].body([D.Answer()]))["choices"][0]["message"]
        self.assertEqual(msg["reasoning"], msg["reasoning_content"])

    def test_ollama(self):
        d = D.DIALECTS["ollama"]
        evs = self.docs(d, [D.Answer(tool_calls=[CALL])], usage=True)
        raw = b"".join(e.raw for e in evs)
        self.assertIn(b"\\u003c", raw)
        self.assertIn(b"\\u0026", raw)
        self.assertNotIn(b"<", raw.replace(b"data: ", b""), "Go escapes every <")
        self.assertEqual(evs[0].json()["choices"][0]["delta"], {"role": "assistant", "content": "", "reasoning": "The"})
        for e in evs[:-2]:
            delta = e.json()["choices"][0]["delta"]
            self.assertEqual(delta["role"], "assistant")
            self.assertIn("content", delta)
        calls = [e for e in evs[:-1] if e.json()["choices"] and "tool_calls" in e.json()["choices"][0]["delta"]]
        self.assertEqual(len(calls), 1, "the call comes whole, once")
        self.assertIs(calls[0], evs[-3], "in the last chunk")
        c = calls[0].json()["choices"][0]
        self.assertEqual(c["finish_reason"], "tool_calls")
        self.assertEqual(list(c["delta"]["tool_calls"][0]), ["id", "index", "type", "function"])
        self.assertRegex(c["delta"]["tool_calls"][0]["id"], r"^call_[a-z0-9]{8}$")
        self.assertEqual(c["delta"]["tool_calls"][0]["function"]["arguments"], D.compact(CALL.arguments))
        self.assertEqual(evs[-2].json()["choices"], [])
        body = d.body([D.Answer()])
        self.assertTrue(body.endswith(b"}\n"), "json.NewEncoder's newline")
        self.assertEqual(D.collect_stream(d.events([D.Answer(), D.Answer()]))[0].keys(), {0}, "no n")

    def test_lmstudio(self):
        d = D.DIALECTS["lmstudio"]
        evs = self.docs(d, [D.Answer(tool_calls=[CALL])])
        self.assertEqual(evs[0].json()["choices"][0]["delta"], {"role": "assistant", "reasoning": "The"})
        self.assertEqual(evs[0].json()["system_fingerprint"], evs[0].json()["model"])
        h = D.DIALECTS["harmony"]
        chs, _ = D.collect_stream(h.events([D.Answer()]))
        self.assertEqual(chs[0].content, "<|channel|>analysis<|message|>" + D.REASONING +
                         "<|end|><|start|>assistant<|channel|>final<|message|>" + D.CONTENT, "the seed's pair")

    def test_vllm_engine_steps(self):
        """step=3: a delta may carry content, reasoning and tool_calls together, and two
        entries of one call; the text still reads back whole."""
        d = D.VARIANTS["vllm_steps"]
        a = D.Answer(reasoning="a b c d", content="e f", tool_calls=[D.ToolCall("f", '{"k":1}')])
        deltas = [e.json()["choices"][0]["delta"] for e in self.docs(d, [a])[1:-2]]
        self.assertEqual(deltas[0], {"reasoning": "a b c"})
        self.assertEqual(deltas[1], {"content": "e f", "reasoning": " d"}, "two kinds in one delta")
        self.assertEqual([e["index"] for e in deltas[2]["tool_calls"]], [0, 0, 0], "entries of one call in a delta")
        for x in deltas:
            self.assertEqual([k for k in ("content", "reasoning", "tool_calls") if k in x], list(x),
                             "DeltaMessage field order")
        chs, _ = D.collect_stream(d.events([a]))
        self.assertEqual((chs[0].content, chs[0].text("reasoning")), ("e f", "a b c d"))
        m = [e.json()["choices"][0]["delta"] for e in self.docs(D.VARIANTS["vllm_mirror_steps"], [a])[1:-2]]
        self.assertTrue(all("reasoning_content" in x for x in m))

    def test_mlx(self):
        d = D.DIALECTS["mlx"]
        evs = self.docs(d, [D.Answer()], usage=True)
        self.assertTrue(evs[0].raw.startswith(b": keepalive "))
        chunks = [e for e in evs if e.data and not e.is_done]
        for e in chunks[:-1]:
            self.assertIn(b'", "', e.raw)
            self.assertIn(b'"reasoning": "", "tool_calls": []', e.raw)
            self.assertTrue(all(b < 0x80 for b in e.raw), "ensure_ascii")
        tok = [e.json()["choices"][0]["delta"]["content"] for e in chunks[:3]]
        self.assertEqual(tok, ["<|channel|>", "analysis", "<|message|>"], "one marker per event")
        self.assertEqual(chunks[-2].json()["choices"][0]["delta"]["content"], "")
        self.assertEqual(chunks[-2].json()["choices"][0]["finish_reason"], "stop")
        self.assertEqual(chunks[-1].json()["object"], "chat.completion")
        chs, _ = D.collect_stream(d.events([D.Answer(content="", tool_calls=[CALL])]))
        self.assertTrue(chs[0].content.endswith("<|start|>assistant<|channel|>commentary to=functions.get_weather "
                                                "<|constrain|>json<|message|>" + CALL.arguments), "no <|call|>")
        self.assertEqual(chs[0].finish_reason, "stop")
        body = d.body([D.Answer()])
        self.assertIn(b'"message": {"role": "assistant", "content": "<|channel|>analysis', body)


class OverSockets(unittest.TestCase):
    """chat_handler() answers a real HTTP request as the server would."""

    def exchange(self, handler, req):
        up = MockUpstream(handler)
        self.addCleanup(up.stop)
        with Client(up.port, timeout=10) as c:
            c.request("POST", "/v1/chat/completions", [("Content-Type", "application/json")],
                      json.dumps(req).encode())
            r = c.read_response("POST")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.complete)
        return r, r.body

    def test_stream_and_body_by_request(self):
        for name, d in D.DIALECTS.items():
            with self.subTest(dialect=name):
                h = D.chat_handler(name, [D.Answer(tool_calls=[CALL])], delay=0)
                r, data = self.exchange(h, {"model": "m", "stream": True,
                                            "stream_options": {"include_usage": True}, "messages": []})
                self.assertEqual(data, b"".join(d.events([D.Answer(tool_calls=[CALL])], usage=True)))
                self.assertEqual(r.framing, d.stream_framing)
                self.assertEqual(r.header("content-type"), "text/event-stream")
                r, data = self.exchange(h, {"model": "m", "stream": False, "messages": []})
                self.assertEqual(data, d.body([D.Answer(tool_calls=[CALL])]))
                self.assertEqual(len(h.script.requests), 2)

    def test_cut_writes(self):
        """cuts: the same bytes, in writes that straddle events and UTF-8 sequences."""
        for cuts in (1, 7, [3, 100, 101, 102]):
            with self.subTest(cuts=cuts):
                h = D.chat_handler("ollama", cuts=cuts, delay=0)
                r, data = self.exchange(h, {"stream": True, "messages": []})
                self.assertEqual(data, b"".join(D.DIALECTS["ollama"].events([D.Answer()], usage=False)))

    def test_variants_by_name(self):
        h = D.chat_handler("llamacpp_peg", [D.Answer(content="", tool_calls=[CALL])], delay=0)
        r, data = self.exchange(h, {"stream": False, "messages": []})
        self.assertEqual(json.loads(data)["choices"][0]["message"]["content"], "")
        self.assertIs(D.dialect("vllm"), D.DIALECTS["vllm"])
        with self.assertRaises(KeyError):
            D.dialect("no such server")

    def test_usage_follows_stream_options(self):
        h = D.chat_handler("llamacpp", delay=0)
        r, data = self.exchange(h, {"stream": True, "messages": []})
        self.assertIsNone(D.collect_stream(data)[1]["usage"])
        h = D.chat_handler("vllm", delay=0)
        r, data = self.exchange(h, {"stream": True, "stream_options": {}, "messages": []})
        self.assertIsNotNone(D.collect_stream(data)[1]["usage"])


if __name__ == "__main__":
    unittest.main()
