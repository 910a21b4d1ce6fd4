"""Harmony tool calls left in content become OpenAI tool_calls (issue 11), through the
stock relay over real sockets.

Every variant of research/dialects/NOTES.md section 2.2 (the recipient in the channel or
in the role header, with or without functions., <|start|>assistant, <|constrain|>, the
closing <|call|>; several calls; a preamble; built-in tools; a call on the analysis
channel; a header that begins the completion; invalid JSON) is streamed one token per
event and sent as a JSON body, in each output mode, n=1 and n=2 interleaved. The client
must read: a first delta per call with index, id, type "function", the name and
"arguments":"" (or the first piece), then the arguments in pieces that join to exactly
what the model wrote; finish_reason "tool_calls"; content without the call's text; the
reasoning where the mode puts it; one event down per event up and every other byte as
it came. Also: RELAY_TOOL_CALLS=0, a call cut by the end of the stream and by "length"
(logged as incomplete; a call ended by the finish is not), the Lua route option.
"""

import json
import os
import tempfile
import unittest

import dialects as D
from chatmock import (ChatTestCase, CHAT_PATH, USAGE_CHUNK, chunk, completion_body, json_handler, parse_sse,
                      post_chat, skeleton, sse, sse_handler, stream_events, tokens)

AN, SA, FIN, COM, END, MSG = ("<|channel|>analysis<|message|>", "<|start|>assistant", "<|channel|>final<|message|>",
                              "<|channel|>commentary", "<|end|>", "<|message|>")
R = "Need the weather: use get_weather & \"think\" (2 < 3)."
ARGS = '{"location":"Paris","unit":"\u00b0C"}'
ARGS2 = '{"tz": "Europe/Paris"}'

# name -> (text, reasoning, content, [(name, args)])
VARIANTS = {
    "V1 recipient in the channel": (COM + " to=functions.get_weather <|constrain|>json" + MSG + ARGS + "<|call|>",
                                    "", "", [("get_weather", ARGS)]),
    "V2 recipient in the role header": (SA + " to=functions.get_weather" + COM + " json" + MSG + ARGS,
                                        "", "", [("get_weather", ARGS)]),
    "V3 header begins the completion": (" to=functions.get_weather" + COM + " <|constrain|>json" + MSG + ARGS,
                                        "", "", [("get_weather", ARGS)]),
    "V4 no content type": (COM + " to=functions.get_weather" + MSG + ARGS, "", "", [("get_weather", ARGS)]),
    "V5 constrain without a space": (COM + " to=functions.get_weather<|constrain|>json" + MSG + ARGS,
                                     "", "", [("get_weather", ARGS)]),
    "V6 call on the analysis channel": (AN + R + END + SA + "<|channel|>analysis to=functions.get_weather "
                                        "<|constrain|>json" + MSG + ARGS, R, "", [("get_weather", ARGS)]),
    "V7 code content type": (SA + "<|channel|>analysis to=functions.ffgrep code" + MSG + '\n{"path":""}',
                             "", "", [("ffgrep", '\n{"path":""}')]),
    "V8 no functions. prefix": (COM + " to=get_weather <|constrain|>json" + MSG + ARGS, "", "",
                                [("get_weather", ARGS)]),
    "V9 preamble then call": (AN + R + END + SA + COM + MSG + "Let me check." + END + SA + COM +
                              " to=functions.get_weather<|constrain|>json" + MSG + ARGS + "<|call|>",
                              R, "Let me check.", [("get_weather", ARGS)]),
    "V10 built-in python, not JSON": (AN + R + END + SA + "<|channel|>analysis to=python code" + MSG + "print(2 < 3)",
                                      R, "", [("python", "print(2 < 3)")]),
    "V10 built-in browser": (SA + "<|channel|>analysis to=browser.search <|constrain|>json" + MSG +
                             '{"query":"weather","topn":10}', "", "", [("browser.search", '{"query":"weather","topn":10}')]),
    "V11 analysis then call": (AN + R + END + SA + COM + " to=functions.get_weather <|constrain|>json" + MSG + ARGS,
                               R, "", [("get_weather", ARGS)]),
    "V12 two calls": (AN + R + END + SA + COM + " to=functions.get_weather <|constrain|>json" + MSG + ARGS +
                      "<|call|>" + SA + COM + " to=functions.get_time <|constrain|>json" + MSG + ARGS2,
                      R, "", [("get_weather", ARGS), ("get_time", ARGS2)]),
    "V11 without <|end|>": (AN + R + SA + COM + " to=functions.get_weather <|constrain|>json" + MSG + ARGS,
                            R, "", [("get_weather", ARGS)]),
    "invalid JSON arguments": (COM + " to=functions.get_weather" + MSG + '{"location": Par', "", "",
                               [("get_weather", '{"location": Par')]),
    "no call (V14, final header eaten)": (AN + R + END + "Sunny.", R, "Sunny.", []),
}
def raw_tool_calls(data):
    """The raw bytes of the first "tool_calls":[...] member of an event's data, or None."""
    at = data.find(b'"tool_calls":')
    if at < 0:
        return None
    start = at + len(b'"tool_calls":')
    while data[start:start + 1] == b" ":
        start += 1
    _, end = json.JSONDecoder().raw_decode(data.decode("utf-8"), len(data[:start].decode("utf-8")))
    return data[at:len(data.decode("utf-8")[:end].encode("utf-8"))]


MODES = (("tags", None), ("field", "reasoning_content"), ("field", "both"), ("strip", None))


def want_content(mode, reasoning, content):
    if mode == "tags" and reasoning:
        return "<think>" + reasoning + "</think>" + content
    return content


class Variants(ChatTestCase):

    def check_choice(self, ch, mode, field, reasoning, content, calls, what, stream=True):
        self.assertEqual(ch.content or "", want_content(mode, reasoning, content), "content; " + what)
        on = (("reasoning_content", "reasoning") if field == "both" else (field,)) if mode == "field" else ()
        for f in ("reasoning_content", "reasoning"):
            self.assertEqual(ch.text(f), reasoning if f in on else "", "%s; %s" % (f, what))
        got = ch.calls()
        self.assertEqual([(c["name"], c["arguments"]) for c in got], calls, "calls; " + what)
        for c in got:
            self.assertEqual(c["type"], "function")
            self.assertRegex(c["id"] or "", r"^call_[0-9A-Za-z]{24}$")
        self.assertEqual(len({c["id"] for c in got}), len(got), "unique ids; " + what)
        self.assertEqual(ch.finish_reason, "tool_calls" if calls else "stop", "finish; " + what)

    def check_entries(self, out, n, what):
        """The stream rules for entries: the first of each call has index, id, type, name
        and arguments; later ones index and arguments only."""
        seen = set()
        for ev in parse_sse(out)[0]:
            doc = ev.json() if not ev.is_done else None
            for c in (doc or {}).get("choices") or []:
                for e in (c.get("delta") or {}).get("tool_calls") or []:
                    key = (c["index"], e["index"])
                    if key not in seen:
                        seen.add(key)
                        self.assertEqual(set(e), {"index", "id", "type", "function"}, what)
                        self.assertEqual(set(e["function"]), {"name", "arguments"}, what)
                    else:
                        self.assertEqual(set(e), {"index", "function"}, what)
                        self.assertEqual(set(e["function"]), {"arguments"}, what)
                        self.assertTrue(e["function"]["arguments"], "no empty pieces; " + what)

    def check_bytes(self, events, out, what):
        ins, outs = parse_sse(b"".join(events))[0], parse_sse(out)[0]
        self.assertEqual(len(outs), len(ins), "one event down per event up; " + what)
        for k, (i, o) in enumerate(zip(ins, outs)):
            if i.data is None or i.is_done:
                self.assertEqual(o.raw, i.raw)
                continue
            drop = {"content", "tool_calls", "reasoning_content", "reasoning"}
            si = skeleton(i.data, "delta", drop).replace(b'"finish_reason":"stop"', b'"finish_reason":"tool_calls"')
            so = skeleton(o.data, "delta", drop).replace(b'"finish_reason":"stop"', b'"finish_reason":"tool_calls"')
            self.assertEqual(so, si, "event %d; %s" % (k, what))

    def test_variants(self):
        for mode, field in MODES:
            env = {"RELAY_MODE": mode}
            if field:
                env["RELAY_REASONING_FIELD"] = field
            relay = self.start_relay(self.upstream, WORKERS="1", **env)
            for name, (text, reasoning, content, calls) in VARIANTS.items():
                for n in (1, 2):
                    what = "%s, %s %s, n=%d" % (name, mode, field or "", n)
                    with self.subTest(variant=name, mode=mode, field=field, n=n):
                        toks = tokens(text)
                        self.assertEqual("".join(toks), text)
                        per = [stream_events(toks, index=i, usage=False, done=False, role_chunk=True) for i in range(n)]
                        events = D.interleave(per) + [sse(USAGE_CHUNK), b"data: [DONE]\n\n"]
                        self.upstream.handler = sse_handler(events, delay=0.0005, delay_every=4)
                        r, out = post_chat(relay.port, stream=True)
                        self.assertEqual(r.status, 200)
                        chs, info = D.collect_stream(out)
                        self.assertTrue(info["done"])
                        for i in range(n):
                            self.check_choice(chs[i], mode, field, reasoning, content, calls, what)
                        self.check_entries(out, n, what)
                        self.check_bytes(events, out, what)
                        ids = [c["id"] for i in range(n) for c in chs[i].calls()]
                        self.assertEqual(len(set(ids)), len(ids), "ids unique over the response")
                        body = completion_body([text] * n)
                        self.upstream.handler = json_handler(body)
                        r, got = post_chat(relay.port, stream=False)
                        self.assertEqual(int(r.header("content-length")), len(got))
                        doc = json.loads(got)
                        bchs = D.collect_body(got)
                        for i in range(n):
                            self.check_choice(bchs[i], mode, field, reasoning, content, calls, "body; " + what)
                            m = doc["choices"][i]["message"]
                            if calls:
                                self.assertEqual(list(m["tool_calls"][0]), ["id", "type", "function"])
                        self.assertEqual(doc["stats"], json.loads(body)["stats"])
                        self.assertIn(b'"seed":18446744073709551615', got)
                        self.assertIn(b'"system_fingerprint":"b6100-\\u00e9"', got)

    def test_tool_calls_off(self):
        # RELAY_TOOL_CALLS=0: the call's text stays in content, after the think block
        text = AN + R + END + SA + COM + " to=functions.get_weather <|constrain|>json" + MSG + ARGS
        relay = self.start_relay(self.upstream, WORKERS="1", RELAY_TOOL_CALLS="0")
        self.upstream.handler = sse_handler(stream_events(tokens(text)))
        r, out = post_chat(relay.port, stream=True)
        chs, _ = D.collect_stream(out)
        self.assertEqual(chs[0].content, "<think>" + R + "</think>" + text[len(AN + R + END):])
        self.assertEqual(chs[0].calls(), [])
        self.assertEqual(chs[0].finish_reason, "stop")

    def test_cut_calls_are_sent_and_logged(self):
        text = AN + R + END + SA + COM + " to=functions.get_weather <|constrain|>json" + MSG + '{"location":"Pa'
        relay = self.start_relay(self.upstream, WORKERS="1")
        # the stream ends without a finish_reason: the call goes out with what arrived
        self.upstream.handler = sse_handler(stream_events(tokens(text), finish=None, usage=False))
        r, out = post_chat(relay.port, stream=True)
        chs, info = D.collect_stream(out)
        self.assertEqual([(c["name"], c["arguments"]) for c in chs[0].calls()], [("get_weather", '{"location":"Pa')])
        self.assertTrue(relay.wait_log(r"tool call 0 of choice 0 is incomplete \(the stream ended"))
        # finish_reason "length": sent, logged, and the finish stays "length"
        self.upstream.handler = sse_handler(stream_events(tokens(text), finish="length"))
        r, out = post_chat(relay.port, stream=True)
        chs, info = D.collect_stream(out)
        self.assertEqual(chs[0].calls()[0]["arguments"], '{"location":"Pa')
        self.assertEqual(chs[0].finish_reason, "length")
        self.assertTrue(relay.wait_log(r'incomplete \(finish_reason "length"\)'))
        # ended by the finish (servers drop <|call|>): not logged
        before = len(relay.wait_log("incomplete", timeout=0.1, count=99))
        self.upstream.handler = sse_handler(stream_events(tokens(text + '"}')))
        r, out = post_chat(relay.port, stream=True)
        chs, info = D.collect_stream(out)
        self.assertEqual(chs[0].calls()[0]["arguments"], '{"location":"Pa"}')
        self.assertEqual(chs[0].finish_reason, "tool_calls")
        self.assertEqual(len(relay.wait_log("incomplete", timeout=0.3, count=99)), before)

    def test_parsed_calls_pass_through(self):
        # an upstream that parses calls itself: its tool_calls, ids included, byte for byte
        for name in ("llamacpp", "vllm", "ollama", "lmstudio", "llamacpp_none"):
            with self.subTest(dialect=name):
                relay = self.start_relay(self.upstream, WORKERS="1")
                a = [D.Answer(content="", tool_calls=[D.WEATHER_CALL, D.ToolCall("get_time", ARGS2)])]
                self.upstream.handler = D.chat_handler(name, a)
                r, out = post_chat(relay.port, stream=True)
                d = D.dialect(name)
                ins = [e for e in parse_sse(b"".join(d.events(a, usage=False)))[0] if e.data and not e.is_done]
                outs = [e for e in parse_sse(out)[0] if e.data and not e.is_done]
                self.assertEqual(len(outs), len(ins))
                raws = [raw_tool_calls(e.data) for e in ins]
                self.assertTrue(any(raws))
                for k, (i, o) in enumerate(zip(raws, outs)):
                    if i:  # the upstream's tool_calls member, byte for byte
                        self.assertIn(i, o.data, "event %d" % k)
                chs, _ = D.collect_stream(out)
                self.assertEqual([c["name"] for c in chs[0].calls()], ["get_weather", "get_time"])
                self.assertFalse(any(c["id"].startswith("call_") and len(c["id"]) == 29 for c in chs[0].calls()),
                                 "the upstream's ids, not the relay's")


class LuaOption(ChatTestCase):
    """rewrite = {parser = "harmony", tool_calls = ...} in a user script."""

    SCRIPT = """
local relay = require("relay")
relay.listen({addr = "127.0.0.1", port = tonumber(relay.getenv("LISTEN_PORT"))})
relay.upstream({name = "default", host = "127.0.0.1", port = tonumber(relay.getenv("UPSTREAM_PORT"))})
relay.route({method = "POST", path = "/v1/chat/completions",
  rewrite = {parser = "harmony", tool_calls = relay.getenv("CALLS") == "1", mode = "field", field = "reasoning"}})
relay.route({method = "POST", path = "/v2/chat/completions",
  rewrite = require("relay.formats").rewrite("harmony", {open_tag = "[R]", close_tag = "[/R]"})})
"""

    def test_route_option(self):
        text = AN + R + END + SA + COM + " to=functions.get_weather <|constrain|>json" + MSG + ARGS
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(self.SCRIPT)
        self.addCleanup(os.unlink, f.name)
        for calls in ("1", "0"):
            relay = self.start_relay(self.upstream, args=("--script", f.name), CALLS=calls)
            self.upstream.handler = sse_handler(stream_events(tokens(text)))
            r, out = post_chat(relay.port, stream=True)
            chs, _ = D.collect_stream(out)
            self.assertEqual(chs[0].text("reasoning"), R)
            if calls == "1":
                self.assertEqual(chs[0].calls()[0]["arguments"], ARGS)
                self.assertEqual(chs[0].content or "", "")
            else:
                self.assertEqual(chs[0].calls(), [])
                self.assertTrue(chs[0].content.startswith(SA + COM + " to=functions.get_weather"))
        # formats.rewrite("harmony", ...) uses the parser and the given tags
        from chatmock import StreamResponse, chat_request
        headers, body = chat_request(True)
        resp = StreamResponse(relay.port, "POST", "/v2/chat/completions", headers, body)
        data = resp.body()
        resp.close()
        chs, _ = D.collect_stream(data)
        self.assertEqual(chs[0].content, "[R]" + R + "[/R]")
        self.assertEqual(chs[0].calls()[0]["name"], "get_weather")


if __name__ == "__main__":
    unittest.main()
