"""Client-side helpers for the Responses bridge tests (issue 12): requests, the stream
read back and checked the way the openai SDK's ResponseStream accumulator and Codex
read it, and what the scripted dialect answers should come out as.

    from responses import post_responses, read_stream, expected_items
    resp = post_responses(port, stream=True, tools=[WEATHER_TOOL])
    final, items = read_stream(self, resp.body)     # asserts the event grammar

Standard library only.
"""

import json
import os

from chatmock import parse_sse
from relaytest import SOURCE_DIR, http_exchange


def harmony_tool_calls_landed():
    """Whether this tree turns harmony tool calls left in content into tool_calls (issue
    11: the stock script then has RELAY_TOOL_CALLS). Read from the tree, not probed, so
    that a regression once it is there fails instead of skipping."""
    with open(os.path.join(SOURCE_DIR, "lua", "relay", "default.lua"), encoding="utf-8") as f:
        return "RELAY_TOOL_CALLS" in f.read()


NEEDS_ISSUE_11 = "harmony tool calls in content need issue 11's conversion (RELAY_TOOL_CALLS), not in this tree yet"

RESP_PATH = "/v1/responses"

WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "Weather of a city",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"},
                                                                "unit": {"type": "string"}},
                               "required": ["location"]}}
NAMESPACE_TOOL = {"type": "namespace", "name": "multi_agent_v1", "description": "Agents",
                  "tools": [{"type": "function", "name": "close_agent",
                             "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}]}
CUSTOM_TOOL = {"type": "custom", "name": "apply_patch", "description": "Edit files. A FREEFORM tool.",
               "format": {"type": "grammar", "syntax": "lark", "definition": "start: \"*** Begin Patch\" /(.|\\n)*/"}}
WEB_SEARCH = {"type": "web_search", "external_web_access": True}

TERMINAL = ("response.completed", "response.incomplete", "response.failed")
KNOWN = {
    "response.created", "response.in_progress", "response.output_item.added", "response.output_item.done",
    "response.content_part.added", "response.content_part.done", "response.output_text.delta",
    "response.output_text.done", "response.reasoning_text.delta", "response.reasoning_text.done",
    "response.function_call_arguments.delta", "response.function_call_arguments.done",
    "response.custom_tool_call_input.delta", "response.custom_tool_call_input.done",
} | set(TERMINAL)


def responses_body(stream=True, input_="What is the weather in Paris?", tools=(), **extra):
    doc = {"model": "gpt-oss-20b", "input": input_, "stream": stream}
    if tools:
        doc["tools"] = list(tools)
    doc.update(extra)
    return json.dumps(doc).encode("utf-8")


def post_responses(port, body=None, stream=True, path=RESP_PATH, headers=(), timeout=10.0, **kw):
    """One POST on a fresh connection; the Response (relaytest)."""
    if body is None:
        body = responses_body(stream=stream, **kw)
    hdrs = [("Content-Type", "application/json"),
            ("Accept", "text/event-stream" if stream else "application/json")] + list(headers)
    return http_exchange(port, "POST", path, hdrs, body, timeout=timeout)


def events_of(body):
    """(event name, parsed data) of each SSE event of a Responses stream."""
    evs, rest = parse_sse(body)
    out = []
    for ev in evs:
        name = None
        for line, _ in ev.lines:
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
        out.append((name, ev.json() if ev.data is not None else None, ev))
    return out, rest


def read_stream(test, body):
    """Check a Responses event stream as the SDK and Codex read it; returns (the
    terminal event's response, the items as the .done events gave them).

    Every event is "event: T" + "data: {"type":T,"sequence_number":n,...}" with n
    counting from 0; response.created and response.in_progress come first and exactly
    one terminal event last; output_item.added appends an item, .done replaces the
    item at its index; text deltas accumulate on the part they name and the .done
    events repeat the whole text; the terminal response's output is every item."""
    evs, rest = events_of(body)
    test.assertEqual(rest, b"", "the stream ends after a whole event")
    test.assertTrue(evs, "no events")
    output, done, texts = [], {}, {}
    for n, (name, doc, ev) in enumerate(evs):
        test.assertIsInstance(doc, dict, "event %d is JSON: %r" % (n, ev.raw[:200]))
        test.assertEqual(doc.get("type"), name, "event: line and type agree")
        test.assertIn(name, KNOWN, "no invented event types (the SDK throws on them)")
        test.assertEqual(doc.get("sequence_number"), n)
        if n == 0:
            test.assertEqual(name, "response.created")
        if n == 1:
            test.assertEqual(name, "response.in_progress")
        if name in ("response.created", "response.in_progress"):
            test.assertEqual(doc["response"]["status"], "in_progress")
            test.assertEqual(doc["response"]["output"], [])
        if name in TERMINAL:
            test.assertEqual(n, len(evs) - 1, "the terminal event is the last")
        if name == "response.output_item.added":
            test.assertEqual(doc["output_index"], len(output), "items are appended in order")
            output.append(doc["item"])
        elif name == "response.output_item.done":
            i = doc["output_index"]
            test.assertLess(i, len(output))
            test.assertEqual(doc["item"]["id"], output[i]["id"])
            output[i] = doc["item"]
            done[i] = doc["item"]
        elif name.endswith(".delta"):
            i = doc["output_index"]
            test.assertEqual(doc["item_id"], output[i]["id"])
            key = (i, doc.get("content_index"), name.rsplit(".", 1)[0])
            texts[key] = texts.get(key, "") + doc["delta"]
        elif name in ("response.output_text.done", "response.reasoning_text.done"):
            key = (doc["output_index"], doc["content_index"], name.rsplit(".", 1)[0])
            test.assertEqual(doc["text"], texts.get(key, ""), "%s repeats the deltas" % name)
        elif name == "response.function_call_arguments.done":
            key = (doc["output_index"], None, "response.function_call_arguments")
            test.assertEqual(doc["arguments"], texts.get(key, ""))
        elif name == "response.custom_tool_call_input.done":
            key = (doc["output_index"], None, "response.custom_tool_call_input")
            test.assertEqual(doc["input"], texts.get(key, ""))
    name, doc, _ = evs[-1]
    test.assertIn(name, TERMINAL, "the stream ends with a terminal event")
    final = doc["response"]
    test.assertTrue(final["id"].startswith("resp_"))
    test.assertEqual(final["object"], "response")
    if name != "response.failed":
        test.assertEqual(sorted(done), list(range(len(output))), "every item got its .done event")
        test.assertEqual(final["output"], [done[i] for i in range(len(output))],
                         "the final response holds every item as it was done")
    return final, [done[i] for i in sorted(done)]


def item_texts(items):
    """The text of each item, by kind: (kind, text or name/arguments)."""
    out = []
    for it in items:
        t = it["type"]
        if t == "reasoning":
            out.append(("reasoning", "".join(c["text"] for c in it.get("content") or [])))
        elif t == "message":
            out.append(("message", "".join(c["text"] for c in it["content"] if c["type"] == "output_text")))
        elif t == "function_call":
            out.append(("function_call", it.get("namespace"), it["name"], it["arguments"], it["call_id"]))
        elif t == "custom_tool_call":
            out.append(("custom_tool_call", it.get("namespace"), it["name"], it["input"], it["call_id"]))
        else:
            out.append((t,))
    return out


def expected_items(answer, call_ids=(), names=None):
    """What one scripted dialects.Answer gives as Responses items, in order: reasoning,
    a message for content, one function_call per tool call (call_ids from the upstream;
    names maps an upstream name to (namespace, name, kind))."""
    out = []
    if answer.reasoning:
        out.append(("reasoning", answer.reasoning))
    if answer.content:
        out.append(("message", answer.content))
    for k, c in enumerate(answer.tool_calls):
        ns, name, kind = (names or {}).get(c.name, (None, c.name, "function_call"))
        args = c.arguments
        if kind == "custom_tool_call":
            args = json.loads(args)["input"]
        out.append((kind, ns, name, args, call_ids[k] if k < len(call_ids) else None))
    return out
