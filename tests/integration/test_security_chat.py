"""The chat rewrite against a hostile upstream and hostile script text (issue 8).

  * Fallbacks lose and repeat nothing: an SSE event over the framer's limit, a JSON
    body over RELAY_MAX_BODY_BUFFER, invalid JSON. Whatever the filter cannot rewrite
    goes out byte for byte (sha256 over the whole stream, cut at many places), text a
    replacer held back before the fallback is released first, and text that comes
    after a choice's finish_reason is not lost either.
  * Choice indexes: a stream that opens a new choice index with every event is served
    in bounded memory and CPU; indexes past the cap pass through unrewritten with one
    warning, the ones before it are still rewritten.
  * Line breaks in script-made data: whatever CR, LF or CRLF an on_event hook puts in
    its result, each upstream event gives exactly one event downstream, whose data (read
    by a strict WHATWG SSE parser) is the script's with line breaks as LF. The same for
    flush events built from a multi-line template and for on_text results.
"""

import hashlib
import json
import os
import random
import re
import time
import unittest

from chatmock import (ChatTestCase, DONE, USAGE_CHUNK, StreamResponse, chat_request, chunk, completion_body,
                      cut, harmony_text, json_handler, parse_sse, sse, sse_handler, stream_events, tokens,
                      CHAT_PATH, Event)
from relaytest import ConnectionClosed, RssSampler
from test_lua_routing import LuaTestCase

SANITIZED = os.environ.get("RELAY_SANITIZED", "0").lower() in ("1", "on", "true", "yes")
MAX_EVENT = 8 * 1024 * 1024       # the chat filter's own cap on one SSE event
MAX_CHOICES = 128                 # distinct choice indexes rewritten per response
HARMONY_THINK = "<think>%s</think>%s"

WORDS = ("alpha", "beta", "gamma", "delta", "caf\u00e9", "\u6771\u4eac", "\U0001F914", "x&y",
         "a/b", "q\"uote", "back\\slash", "tab\there", "2 > 1", "|>", "|", "end")


def words(rng, n):
    """Marker-free text (no '<'): a rewrite leaves it byte for byte."""
    return " ".join(rng.choice(WORDS) for _ in range(n))


def plain_events(rng, n, eol="\n"):
    return [sse(chunk(words(rng, rng.randint(1, 4)) + " "), eol) for _ in range(n)]


def big_event(form, size, eol="\n"):
    """An event of more than size bytes, in one of several shapes."""
    e = eol.encode()
    if form == "data_line":   # a chat chunk that would be rewritten if it fit
        return (b'data: {"choices":[{"index":0,"delta":{"content":"' + b"x" * size + b'"}}]}' + e + e)
    if form == "comment":
        return b": " + b"p" * size + e + e
    if form == "many_lines":
        line = b"data: " + b"y" * 100 + e
        return line * (size // len(line) + 1) + e
    if form == "no_line_end":  # one line that never ends: the stream ends inside it
        return b"data: " + b"z" * size
    raise ValueError(form)


def random_cuts(rng, body, lo, hi):
    out, pos = [], 0
    while pos < len(body):
        pos += rng.randint(lo, hi)
        out.append(pos)
    return out


def cpu_seconds(pid):
    """utime + stime of a process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spec_events(stream):
    """What a WHATWG EventSource dispatches for a stream: a list of (type, data, last_id).
    Line ends are CRLF, LF or CR; a leading BOM is skipped; an event is dispatched at an
    empty line only if it had a data line; data lines are joined with LF; one space
    after the colon is dropped; an unterminated last line is discarded."""
    text = stream.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = re.split(r"\r\n|\r|\n", text)
    lines.pop()  # the part after the last line end: incomplete, discarded
    events, data, etype, last_id = [], [], "", ""
    for line in lines:
        if line == "":
            if data:
                events.append((etype or "message", "\n".join(data), last_id))
            data, etype = [], ""
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            etype = value
        elif name == "id" and "\0" not in value:
            last_id = value
    return events


def sse_lines_normalised(s):
    return re.sub(r"\r\n|\r", "\n", s)


class ChatSecurityCase(ChatTestCase):
    """One relay, many responses: the mock's handler is swapped per request."""

    def post(self, relay, handler, path=CHAT_PATH, stream=True, timeout=10):
        self.upstream.handler = handler
        headers, body = chat_request(stream)
        r = StreamResponse(relay.port, "POST", path, headers, body, timeout=timeout)
        try:
            data = r.body()
        finally:
            r.close()
        return r, data

    def fallback_lines(self, relay):
        return [l for l in relay.stderr_text().splitlines() if "passing it through" in l]

    def assertFallbackLogged(self, relay, count):
        relay.wait_log("passing it through", count=count)
        self.assertEqual(len(self.fallback_lines(relay)), count, "\n".join(self.fallback_lines(relay)))


class OverLimitEvents(ChatSecurityCase):
    """An SSE event over the limit ends the rewrite for that response; every byte from
    that event on goes out as it came, none twice, none lost."""

    def check_stream(self, relay, body, pieces, what, fallbacks, framing="chunked"):
        """fallbacks: how many fallback lines the relay must have logged so far."""
        h = sse_handler([body], pieces=pieces, delay=0.0002, delay_every=3, framing=framing)
        r, out = self.post(relay, h)
        self.assertEqual(r.status, 200, what)
        self.assertTrue(r.complete, what + ": stream not complete")
        if out != body:
            self.assertBodyEqual(out, body, what)  # a short message about the first difference
        self.assertEqual(hashlib.sha256(out).hexdigest(), hashlib.sha256(body).hexdigest(), what)
        self.assertFallbackLogged(relay, fallbacks)

    def test_event_over_8mib_passes_byte_for_byte(self):
        # The bug: the bytes of the read that crossed the limit went out twice.
        relay = self.relay_for(None)
        rng = random.Random(7)
        n = 0
        for form, where in (("data_line", "middle"), ("comment", "start"), ("many_lines", "middle"),
                            ("no_line_end", "end")):
            pre = plain_events(rng, 0 if where == "start" else 40)
            post = [] if where == "end" else plain_events(rng, 20) + [sse(USAGE_CHUNK), DONE]
            body = b"".join(pre) + big_event(form, MAX_EVENT + 1000) + b"".join(post)
            # pre events and the start of the big one share reads; the big event spans many
            pieces = cut(body, random_cuts(rng, body, 1, 200000))
            n += 1
            self.check_stream(relay, body, pieces, "%s at the %s" % (form, where), n)

    def test_held_text_released_before_fallback(self):
        # "<|" may start a marker: the replacer holds it. When the next event is too big
        # to rewrite, the held text must still reach the client, before the raw rest.
        relay = self.relay_for(None)
        for limit_env, size in ((None, MAX_EVENT + 10), ("4096", 5000)):
            if limit_env:
                relay.kill()
                relay = self.relay_for(None, RELAY_MAX_BODY_BUFFER=limit_env)
            head = [sse(chunk("", role="assistant")), sse(chunk("Hello ")), sse(chunk("world <|"))]
            tail = [sse(chunk("x|> after")), sse(chunk(finish="stop", delta_raw="{}")), DONE]
            big = big_event("comment", size)
            body = b"".join(head) + big + b"".join(tail)
            r, out = self.post(relay, sse_handler([body], pieces=cut(body, [len(body) - 300])))
            self.assertTrue(r.complete)
            # the raw rest is the input from the big event on
            rest = big + b"".join(tail)
            self.assertTrue(out.endswith(rest), "the bytes from the big event on are not the input's")
            evs, left = parse_sse(out[:-len(rest)])
            self.assertEqual(left, b"")
            text = ""
            for e in evs:
                for ch in (e.json() or {}).get("choices", []):
                    text += ch.get("delta", {}).get("content") or ""
            self.assertEqual(text, "Hello world <|", "text before the big event: %r" % evs)

    def test_small_limit_every_shape_and_cut(self):
        # RELAY_MAX_BODY_BUFFER also caps one SSE event; with 4 KiB the same class is
        # cheap to cut in many ways: random pieces, one byte at a time around the
        # event that crosses the limit, CR / CRLF / LF line ends, the limit crossed in
        # the event's first read or only after many.
        limit = 4096
        relay = self.relay_for(None, RELAY_MAX_BODY_BUFFER=str(limit))
        rng = random.Random(11)
        n = 0
        for form in ("data_line", "comment", "many_lines", "no_line_end"):
            for eol in ("\n", "\r\n", "\r"):
                pre = plain_events(rng, rng.randint(0, 12), eol)
                post = [] if form == "no_line_end" else plain_events(rng, 5, eol) + [("data: [DONE]" + eol * 2).encode()]
                big = big_event(form, limit + rng.randint(1, 3000), eol)
                body = b"".join(pre) + big + b"".join(post)
                start = len(b"".join(pre))
                cut_sets = [
                    random_cuts(rng, body, 1, 700),
                    list(range(max(0, start - 20), start + 40)),         # byte by byte into it
                    [start + limit - 10, start + limit + 1],              # crossed within one read
                    [],                                                   # one write
                ]
                for cuts in cut_sets:
                    n += 1
                    self.check_stream(relay, body, cut(body, cuts), "%s eol=%r cuts=%d" % (form, eol, len(cuts)), n)

    def test_event_exactly_at_limit_is_rewritten(self):
        # The limit is inclusive: an event of exactly the limit is still rewritten.
        limit = 4096
        relay = self.relay_for(None, RELAY_MAX_BODY_BUFFER=str(limit))
        marker = "<|channel|>analysis<|message|>"
        ev = sse(chunk(marker + "a"))
        pad = limit - len(ev)
        ev = sse(chunk(marker + "a" * (1 + pad)))
        self.assertEqual(len(ev), limit)
        body = ev + sse(chunk(finish="stop", delta_raw="{}")) + DONE
        r, out = self.post(relay, sse_handler([body], pieces=cut(body, range(0, len(body), 97))))
        self.assertTrue(r.complete)
        self.assertIn(b"<think>", out)
        self.assertNotIn(b"<|channel|>", out)
        self.assertEqual(self.fallback_lines(relay), [])


def vm_size(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return None


@unittest.skipIf(SANITIZED, "an address-space limit does not work with AddressSanitizer's shadow memory")
class OutOfMemory(ChatSecurityCase):
    """Real allocation failures: the relay's address space is limited (prlimit) a few MiB
    above what it uses while a 7 MiB event arrives, so that buffers fail to grow at
    different points (glibc told to use one arena and a fixed mmap threshold, so the
    limit applies to every large allocation). Whatever fails, a response is either
    complete and exactly the input (the rewrite fell back to passthrough) or visibly cut
    with a prefix of the input: never a clean end with bytes repeated or missing."""

    def test_allocation_failures_never_repeat_or_drop(self):
        import resource
        relay = self.relay_for(None, MALLOC_ARENA_MAX="1", MALLOC_MMAP_THRESHOLD_="131072")
        rng = random.Random(1)
        outcomes = []
        for headroom_mb in (0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 12, 24):
            pre = plain_events(rng, 30)
            body = b"".join(pre) + big_event("data_line", 7 * 1024 * 1024) + b"".join(plain_events(rng, 30)) + DONE
            self.post(relay, sse_handler([b"".join(pre) + DONE]))   # the arena has what a small stream needs
            lines0 = len(relay.stderr_text().splitlines())
            resource.prlimit(relay.pid, resource.RLIMIT_AS,
                             (vm_size(relay.pid) + int(headroom_mb * 1024 * 1024), resource.RLIM_INFINITY))
            try:
                self.upstream.handler = sse_handler([body], pieces=cut(body, random_cuts(rng, body, 1000, 100000)))
                headers, req = chat_request(True)
                r = StreamResponse(relay.port, "POST", CHAT_PATH, headers, req, timeout=10)
                out = b""
                try:
                    for piece in r.pieces():
                        out += piece
                except (ConnectionClosed, ValueError):
                    pass
                finally:
                    r.close()
            finally:
                resource.prlimit(relay.pid, resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            what = "headroom %.1f MiB: %d of %d bytes, complete=%s" % (headroom_mb, len(out), len(body), r.complete)
            self.assertEqual(r.status, 200, what)
            if r.complete:
                self.assertEqual(hashlib.sha256(out).hexdigest(), hashlib.sha256(body).hexdigest(), what)
            else:
                self.assertTrue(body.startswith(out), what + ": a cut response that is not a prefix of the input")
            log = "\n".join(relay.stderr_text().splitlines()[lines0:])
            outcomes.append((r.complete, "out of memory" in log))
        # the limits did bite, and the framer's own failure was taken losslessly at least once
        self.assertIn((True, True), outcomes, outcomes)
        self.assertIn((False, True), outcomes, outcomes)
        # and the relay still serves
        r, out = self.post(relay, sse_handler([b"".join(plain_events(rng, 5)) + DONE]))
        self.assertTrue(r.complete)


class BodyFallbacks(ChatSecurityCase):
    """JSON bodies: over RELAY_MAX_BODY_BUFFER or not valid, byte for byte."""

    def test_body_around_the_limit(self):
        limit = 4096
        relay = self.relay_for(None, RELAY_MAX_BODY_BUFFER=str(limit))
        base = completion_body([harmony_text("lmstudio")])
        for size in (limit - 1, limit, limit + 1, limit + 5000):
            body = base[:-1] + b',"pad":"' + b"p" * (size - len(base) - 9) + b'"}'
            self.assertEqual(len(body), size)
            for pieces in (None, cut(body, range(0, size, 101)), cut(body, [limit - 1, limit, limit + 1])):
                r, out = self.post(relay, json_handler(body, pieces=pieces, delay=0.0002), stream=False)
                self.assertEqual(r.status, 200)
                self.assertTrue(r.complete)
                if size <= limit:
                    self.assertIn(b"<think>", out, "body of %d bytes not rewritten" % size)
                    self.assertEqual(json.loads(out)["pad"], json.loads(body)["pad"])
                else:
                    self.assertBodyEqual(out, body, "body of %d bytes" % size)

    def test_bodies_not_rewritable_pass_byte_for_byte(self):
        relay = self.relay_for(None)
        good = completion_body([harmony_text("llama")])
        bodies = [
            good[:-1],                                   # truncated
            good + b"{}",                                # two documents
            good.replace(b'"choices":[', b'"choices":{"a":', 1).replace(b"],\"usage\"", b"},\"usage\"", 1),
            b"[" * 5000 + b"]" * 5000,                   # deeper than the nesting limit
            b'{"choices":[' + b"{}," * 100 + b"{}]}",    # more choices than one document may have
            b'{"choices":[{"index":"0","message":{"content":"<|channel|>analysis<|message|>x"}}]}',
            b"\xff\xfe not json",
            b"",
        ]
        for k, body in enumerate(bodies):
            r, out = self.post(relay, json_handler(body, pieces=cut(body, [len(body) // 2])), stream=False)
            self.assertEqual(r.status, 200)
            self.assertBodyEqual(out, body, "body %d" % k)


class FinishedChoices(ChatSecurityCase):
    """A choice gets text after its finish_reason."""

    def test_text_after_finish_is_not_lost(self):
        # A choice that finished and then gets more text: what a replacer holds of that
        # text at the end of the stream still goes out.
        relay = self.relay_for(None)
        for end in ("done", "eof"):
            events = [sse(chunk("first")), sse(chunk(finish="stop", delta_raw="{}")),
                      sse(chunk(" more")), sse(chunk(" tail <|"))]
            if end == "done":
                events.append(DONE)
            r, out = self.post(relay, sse_handler(events))
            self.assertTrue(r.complete)
            outs, rest = parse_sse(out)
            self.assertEqual(rest, b"")
            text = ""
            for e in outs:
                for ch in (e.json() or {}).get("choices", []):
                    text += ch["delta"].get("content") or ""
            self.assertEqual(text, "first more tail <|", "stream ending with %s" % end)


class ChoiceIndexes(ChatSecurityCase):
    """Per-response state for choice indexes is capped and found in O(log n)."""

    def test_200000_new_indexes_bounded(self):
        n = 200000
        body = b"".join(b'data: {"choices":[{"index":%d,"delta":{"content":"w%d "}}]}\n\n' % (i, i)
                        for i in range(n)) + DONE
        relay = self.relay_for(None)
        base_rss = relay.rss_kb()
        base_cpu = cpu_seconds(relay.pid)
        sampler = RssSampler(relay)
        self.addCleanup(sampler.stop)
        h = sse_handler([body], pieces=[body[i:i + 65536] for i in range(0, len(body), 65536)], delay=0)
        self.upstream.handler = h
        headers, req = chat_request(True)
        r = StreamResponse(relay.port, "POST", CHAT_PATH, headers, req, timeout=30)
        self.addCleanup(r.close)
        got = hashlib.sha256()
        size = 0
        deadline = time.monotonic() + (240 if SANITIZED else 90)
        for piece in r.pieces():
            got.update(piece)
            size += len(piece)
            self.assertLess(time.monotonic(), deadline,
                            "200,000 events not through after %d bytes of %d" % (size, len(body)))
        cpu = cpu_seconds(relay.pid) - base_cpu
        peak = sampler.stop()
        self.assertTrue(r.complete)
        self.assertEqual((size, got.hexdigest()), (len(body), hashlib.sha256(body).hexdigest()),
                         "output differs from the input")
        # generous guards: the linear lookup of every index took 22 s of CPU and 80 MB here
        self.assertLess(cpu, 20 if SANITIZED else 5, "relay CPU for 200,000 events")
        if not SANITIZED:
            self.assertLess(peak - base_rss, 40 * 1024, "relay RSS grew by %d KiB" % (peak - base_rss))
        lines = relay.wait_log("choice index", count=1)
        time.sleep(0.1)
        lines = [l for l in relay.stderr_text().splitlines() if "choice index" in l]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn(str(MAX_CHOICES), lines[0])

    def test_indexes_past_the_cap_pass_unrewritten(self):
        relay = self.relay_for(None)
        toks = tokens(harmony_text("lmstudio", "think", "answer"))
        nidx = MAX_CHOICES + 8
        order = list(range(nidx))
        random.Random(3).shuffle(order)
        idx_value = {k: (k * 7919 - 40000) for k in range(nidx)}   # sparse, some negative
        events = []
        for t in toks:                       # interleaved: every choice is open at once
            for k in order:
                events.append(sse(chunk(t, index=idx_value[k])))
        for k in order:
            events.append(sse(chunk(index=idx_value[k], finish="stop", delta_raw="{}")))
        events.append(DONE)
        r, out = self.post(relay, sse_handler(events, pieces=[b"".join(events)]))
        self.assertTrue(r.complete)
        outs, rest = parse_sse(out)
        self.assertEqual(rest, b"")
        self.assertEqual(len(outs), len(events), "one event out per event in")
        text = {}
        for e in outs:
            for ch in (e.json() or {}).get("choices", []):
                text[ch["index"]] = text.get(ch["index"], "") + (ch["delta"].get("content") or "")
        # the first MAX_CHOICES indexes seen are rewritten, later ones pass as they came
        seen = [idx_value[k] for k in order]
        raw_text = "".join(toks)
        for pos, iv in enumerate(seen):
            want = HARMONY_THINK % ("think", "answer") if pos < MAX_CHOICES else raw_text
            self.assertEqual(text[iv], want, "choice index %d (opened %d-th)" % (iv, pos))
        for e_in, e_out in zip(events, outs):
            j = Event(e_in).json()
            if j and j["choices"][0]["index"] in seen[MAX_CHOICES:]:
                self.assertEqual(e_out.raw, e_in, "an event past the cap was changed")
        warn = [l for l in relay.stderr_text().splitlines() if "choice index" in l]
        self.assertEqual(len(warn), 1, warn)


    def test_known_choices_rewritten_beside_capped_ones(self):
        # One event with a choice past the cap first and a known one after it, in field
        # mode with both reasoning fields (whose offsets come from a second parse that
        # must not be skipped with the capped choice).
        relay = self.relay_for(None, RELAY_MODE="field", RELAY_REASONING_FIELD="both")
        # a first two-choice event whose second choice has both reasoning members, so a
        # stale second parse would point at members that later events do not have
        first = ('[{"index":1,"delta":{"content":"y"},"finish_reason":null},'
                 '{"index":0,"delta":{"reasoning":"","reasoning_content":"","content":""},"finish_reason":null}]')
        events = [sse(chunk(choices_raw=first))]
        events += [sse(chunk("x", index=i)) for i in range(2, MAX_CHOICES)]

        def two(capped_idx, text):
            c1 = '{"index":%d,"delta":{"content":"%s"},"finish_reason":null}' % (capped_idx, "raw")
            c0 = '{"index":0,"delta":{"content":%s},"finish_reason":null}' % json.dumps(text)
            return sse(chunk(choices_raw="[" + c1 + "," + c0 + "]"))

        toks = tokens(harmony_text("lmstudio", "deep thought", "the answer"))
        events += [two(1000 + k, t) for k, t in enumerate(toks)]
        events += [sse(chunk(index=0, finish="stop", delta_raw="{}")), DONE]
        r, out = self.post(relay, sse_handler(events, pieces=[b"".join(events)]))
        self.assertTrue(r.complete)
        outs, rest = parse_sse(out)
        self.assertEqual((len(outs), rest), (len(events), b""))
        content, reasoning, reasoning2 = "", "", ""
        for e in outs[MAX_CHOICES:]:
            doc = e.json()
            if doc is None:
                continue
            for ch in doc["choices"]:
                if ch["index"] == 0:
                    d = ch["delta"]
                    content += d.get("content") or ""
                    reasoning += d.get("reasoning_content") or ""
                    reasoning2 += d.get("reasoning") or ""
                else:
                    self.assertEqual(ch["delta"], {"content": "raw"})
        self.assertEqual((reasoning, reasoning2, content), ("deep thought", "deep thought", "the answer"))


class ScriptLineBreaks(LuaTestCase):
    """Data an on_event hook returns: one event per upstream event whatever its line breaks."""

    CASES = ["a\rb", "a\r\nb", "a\nb", "\rlead", "\r\nlead", "\nlead", "trail\r", "trail\r\n",
             "trail\n", "\r", "\n", "\r\n", "\r\r", "\n\r", "\r\n\n", "\n\r\n\r", "", " space",
             "  two spaces", "x\r\n\r\ny\rz\n", ":colon", "data: fake", "event: x\r\rid: 1",
             "a\r" * 300, "\u6771\r\U0001F914\n\u00e9"]

    FORMS = [  # (prefix lines, data line prefix, line end, split the JSON over two data lines)
        ("", "data: ", "\n", False),
        ("", "data: ", "\r\n", False),
        ("", "data: ", "\r", False),
        ("", "data:", "\n", False),
        ("event: custom\nid: 42\n", "data: ", "\n", False),
        (": note\r\nevent: custom2\r\n", "data:", "\r\n", False),
        ("event: multi\nid: 43\n", "data: ", "\n", True),
        ("id: 44\r", "data:", "\r", True),
    ]

    def event(self, form, new_data, k):
        pre, dprefix, eol, split = form
        doc = json.dumps({"x_new_data": new_data, "k": k, "choices": []}, ensure_ascii=False)
        if split:
            a, b = doc.split(', "k"', 1)
            data_lines = [dprefix + a + ",", dprefix + ' "k"' + b]
        else:
            data_lines = [dprefix + doc]
        pre = pre.replace("\r\n", "\n").replace("\r", "\n").replace("\n", eol)
        return (pre + eol.join(data_lines) + eol + eol).encode("utf-8")

    def test_on_event_line_breaks_stay_in_one_event(self):
        relay = self.start_script("security_chat.lua")
        events, want = [], []
        for f, form in enumerate(self.FORMS):
            etype = {4: "custom", 5: "custom2", 6: "multi"}.get(f, "message")
            for c in self.CASES:
                events.append(self.event(form, c, len(events)))
                want.append((etype, sse_lines_normalised(c)))
        # an empty data value (a "data" line without colon): the script answers "E\rF"
        events.append(b"id: 9\ndata\n\n")
        want.append(("message", "E\nF"))
        events.append(DONE)
        want.append(("message", "[DONE]"))
        body = b"".join(events)
        self.upstream.handler = sse_handler([body], pieces=cut(body, random_cuts(random.Random(5), body, 1, 400)))
        headers, req = chat_request(True)
        r = StreamResponse(relay.port, "POST", CHAT_PATH, headers, req)
        try:
            out = r.body()
        finally:
            r.close()
        self.assertTrue(r.complete)
        got = spec_events(out)
        self.assertEqual(len(got), len(want), "one event per upstream event; got %d for %d" % (len(got), len(want)))
        for k, ((gtype, gdata, _), (wtype, wdata)) in enumerate(zip(got, want)):
            self.assertEqual((gtype, gdata), (wtype, wdata), "event %d: upstream %r" % (k, events[k]))
        # the last id the client saw is the last one sent
        self.assertEqual(got[-1][2], "9")
        # what the framer of the relay reads back is the same: one event per event
        self.assertEqual(len(parse_sse(out)[0]), len(events))

    def test_on_text_line_breaks_stay_inside_json(self):
        relay = self.start_script("security_chat.lua")
        evs = stream_events(["Hi", " there", " <|"], finish=None)
        self.upstream.handler = sse_handler(evs)
        headers, req = chat_request(True)
        r = StreamResponse(relay.port, "POST", "/v1/on-text/chat/completions", headers, req)
        try:
            out = r.body()
        finally:
            r.close()
        self.assertTrue(r.complete)
        got = spec_events(out)
        # every upstream event plus one flush event (" <|" held to the end)
        self.assertEqual(len(got), len(evs) + 1, out)
        text = ""
        for _, data, _ in got:
            if data == "[DONE]":
                continue
            for ch in json.loads(data).get("choices", []):
                text += ch.get("delta", {}).get("content") or ""
        # " <|": " " goes out at once, "<|" is held to the end (a flush event)
        self.assertEqual(text, "\rHi\r\n\n" "\r there\r\n\n" "\r \r\n\n" "\r<|\r\n\n")


class FlushEvents(ChatSecurityCase):
    """An event the relay makes itself (held text at the end) from a template whose data
    had several lines."""

    def test_flush_from_multiline_template(self):
        relay = self.relay_for(None)
        for eol in ("\n", "\r\n", "\r"):
            def ev(text):
                doc = json.dumps({"id": "c1", "object": "chat.completion.chunk",
                                  "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
                                 indent=1)
                return (eol.join("data: " + l for l in doc.split("\n")) + eol + eol).encode()
            events = [ev("Hello"), ev(" world <|"), ("data: [DONE]" + eol + eol).encode()]
            r, out = self.post(relay, sse_handler(events))
            self.assertTrue(r.complete)
            got = spec_events(out)
            self.assertEqual(len(got), 4, "2 events, the flush event, [DONE]: %r" % out)
            try:
                docs = [json.loads(d) for _, d, _ in got[:3]]
            except ValueError as e:
                self.fail("an event's data is not the JSON it should be (%s): %r" % (e, out))
            text = "".join(d["choices"][0]["delta"].get("content") or "" for d in docs)
            self.assertEqual(text, "Hello world <|")
            self.assertEqual(docs[2]["id"], "c1")
            self.assertEqual(got[3][1], "[DONE]")


if __name__ == "__main__":
    unittest.main()
