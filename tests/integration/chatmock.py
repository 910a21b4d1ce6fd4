"""A scripted OpenAI-compatible upstream for the chat-completions rewrite tests, and the
checks that go with it.

Builds on relaytest's raw-socket MockUpstream. What it adds:

  * chunk(), sse(), harmony_text(), tokens(), stream_events(): chat.completion.chunk
    events like real servers send them for gpt-oss, one token per event (so
    "<|channel|>", "analysis", "<|message|>" are three events, and the close marker
    "<|end|><|start|>assistant<|channel|>final<|message|>" is six).
  * sse_handler() / json_handler(): MockUpstream handlers that send a scripted
    response: a list of events (or raw bytes) written as separate TCP writes (chunked,
    close-delimited or with a Content-Length), optionally cut at given byte positions,
    optionally waiting for the test after each event (handshake).
  * parse_sse() / SSEParser: the SSE framing (LF, CRLF and CR line ends), keeping each
    event's exact raw bytes.
  * json_spans() / skeleton(): a small JSON reader with byte offsets, to remove the
    members the rewrite may change (content, reasoning fields) from the raw bytes of an
    event or body so that everything else can be compared byte for byte.
  * StreamCheck: aligns the relay's SSE output with what the mock sent, checks that
    every event kept every byte outside its content string, finds the flush events the
    relay may add, and reconstructs each choice's content / reasoning text.
  * open_stream(): a client that reads the relay's response incrementally.

Standard library only; every wait has a deadline.
"""

import json
import re
import socket
import time

from relaytest import Client, DEFAULT_TIMEOUT, parse_head, hget

CHAT_PATH = "/v1/chat/completions"

# ----------------------------------------------------------------------------- building chunks

CHUNK_HEAD = ('{"id":"chatcmpl-9f8e7d","object":"chat.completion.chunk","created":1754000000,'
              '"model":"openai/gpt-oss-20b","system_fingerprint":"fp_0123abcd",')


def enc(s, style="utf8"):
    """A JSON string literal for s. style: 'utf8' (raw UTF-8, like llama-server / LM Studio),
    'ascii' (\\uXXXX for all non-ASCII, like Python's json.dumps), 'go' (raw UTF-8 but
    <, > and & as \\u003c \\u003e \\u0026, like Go's encoding/json in Ollama)."""
    if style == "ascii":
        return json.dumps(s, ensure_ascii=True)
    out = json.dumps(s, ensure_ascii=False)
    if style == "go":
        out = out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return out


def choice_json(index=0, content=None, finish=None, role=None, style="utf8", delta_raw=None,
                no_content=False):
    """One element of choices[] of a chunk, as JSON text."""
    if delta_raw is None:
        members = []
        if role is not None:
            members.append('"role":%s' % enc(role))
        if not no_content:
            members.append('"content":%s' % (enc(content, style) if content is not None else "null"))
        delta_raw = "{" + ",".join(members) + "}"
    return ('{"index":%d,"delta":%s,"logprobs":null,"finish_reason":%s}'
            % (index, delta_raw, enc(finish) if finish is not None else "null"))


def chunk(content=None, index=0, finish=None, role=None, style="utf8", delta_raw=None,
          no_content=False, choices_raw=None):
    """A chat.completion.chunk document (JSON text)."""
    if choices_raw is None:
        choices_raw = "[" + choice_json(index, content, finish, role, style, delta_raw, no_content) + "]"
    return CHUNK_HEAD + '"choices":' + choices_raw + "}"


USAGE_CHUNK = (CHUNK_HEAD + '"choices":[],"usage":{"prompt_tokens":71,"completion_tokens":44,'
               '"total_tokens":115,"prompt_tokens_details":{"cached_tokens":0}}}')


def sse(data, eol="\n", prefix="data: ", extra_lines=()):
    """One SSE event (bytes) with a single data line."""
    lines = list(extra_lines) + [prefix + data]
    return (eol.join(lines) + eol + eol).encode("utf-8")


DONE = b"data: [DONE]\n\n"

# ----------------------------------------------------------------------------- gpt-oss text

MARKER_RX = re.compile(r"<\|[a-z]+\|>|\s?[^\s<]+|\s+|<")


def tokens(text):
    """Split text as a gpt-oss tokenizer roughly would: every harmony marker is one token,
    the words between them (analysis, final, assistant, ...) are tokens, text goes word
    by word."""
    out = MARKER_RX.findall(text)
    assert "".join(out) == text, (out, text)
    return out


A = "The user greets me. I should reply politely & briefly (2 < 3)."
F = "Hello! How can I help you today?"


def harmony_text(variant, a=A, f=F):
    """The upstream text for each row of DESIGN.md's gpt-oss table."""
    ch, msg, end, start = "<|channel|>", "<|message|>", "<|end|>", "<|start|>assistant"
    analysis = ch + "analysis" + msg
    final = ch + "final" + msg
    if variant == "lmstudio":
        return analysis + a + end + start + final + f
    if variant == "llama":              # llama-server drops <|end|>
        return analysis + a + start + final + f
    if variant == "start_first":        # <|start|>assistant before the first channel
        return start + analysis + a + end + start + final + f
    if variant == "start_first_llama":
        return start + analysis + a + start + final + f
    raise ValueError(variant)


def stream_events(token_list, index=0, style="utf8", role_chunk=True, finish="stop", usage=True,
                  done=True, eol="\n"):
    """The events of one streamed completion: a role chunk, one event per token, a finish
    chunk with an empty delta, the usage chunk with "choices":[], [DONE]."""
    evs = []
    if role_chunk:
        evs.append(sse(chunk("", index, role="assistant", style=style), eol))
    for t in token_list:
        evs.append(sse(chunk(t, index, style=style), eol))
    if finish is not None:
        evs.append(sse(chunk(index=index, finish=finish, delta_raw="{}"), eol))
    if usage:
        evs.append(sse(USAGE_CHUNK, eol))
    if done:
        evs.append(("data: [DONE]" + eol + eol).encode())
    return evs


def completion_body(contents, style="utf8", extra_message="", finish="stop"):
    """A non-streaming chat.completion body (bytes) with one choice per content, and
    values that a JSON round trip would spoil: 1.0000000000000002, 1e-07, -0.0, [],
    escaped slashes outside the content, a big integer."""
    choices = []
    for i, c in enumerate(contents):
        choices.append(
            '{"index":%d,"message":{"role":"assistant","content":%s,"tool_calls":[]%s},'
            '"logprobs":{"content":[{"token":"x","logprob":-0.0,"bytes":[120],"top_logprobs":[]}]},'
            '"finish_reason":%s}' % (i, enc(c, style), extra_message, enc(finish)))
    body = ('{"id":"chatcmpl-b1","object":"chat.completion","created":1754000000,'
            '"model":"openai\\/gpt-oss-20b","choices":[%s],'
            '"usage":{"prompt_tokens":12,"completion_tokens":40,"total_tokens":52,'
            '"prompt_tokens_details":null},"stats":{"temperature":1.0000000000000002,'
            '"top_p":1e-07,"seed":18446744073709551615,"empty":[],"obj":{}},'
            '"system_fingerprint":"b6100-\\u00e9"}' % ",".join(choices))
    return body.encode("utf-8")


# ----------------------------------------------------------------------------- mock handlers


def _nodelay(conn):
    try:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def cut(data, positions):
    """data cut at the given byte offsets (sorted, deduplicated, in range)."""
    pos = sorted(set(p for p in positions if 0 < p < len(data)))
    out, last = [], 0
    for p in pos:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


class Script:
    """What the mock did, for the test to look at afterwards."""

    def __init__(self):
        self.requests = []
        self.waits = []      # per handshake: True if the test confirmed in time
        self.done = False


def sse_handler(events, script=None, framing="chunked", status=200, headers=None,
                content_type="text/event-stream", pieces=None, delay=0.0005, handshake=None,
                handshake_timeout=3.0, wire_pieces=None, close=False, end=True, delay_every=1):
    """A MockUpstream handler that answers with a stream.

    events      list of bytes (one SSE event each, or any bytes)
    framing     'chunked' (each write one chunk), 'close' (close-delimited), 'length'
    pieces      instead of one write per event: the body cut into these byte strings
    wire_pieces for 'chunked': the whole chunked encoding cut at these offsets (so chunk
                size lines and CRLFs are cut too)
    delay       seconds to sleep after every delay_every-th write (so that the relay
                reads the writes separately; 0: no sleeping)
    handshake   list of threading.Event, one per event: after sending event k the mock
                waits (bounded) until the test sets handshake[k]
    end         False: stop without the terminating chunk / without closing cleanly
                (the connection is then closed, which a chunked client sees as cut)
    """
    script = script if script is not None else Script()

    def handler(conn, req):
        script.requests.append(req)
        _nodelay(conn)
        hdrs = [("Content-Type", content_type)] if content_type else []
        hdrs += list(headers or [])
        body = b"".join(events)
        writes = pieces if pieces is not None else list(events)
        if framing == "chunked":
            hdrs.append(("Transfer-Encoding", "chunked"))
        elif framing == "length":
            hdrs.append(("Content-Length", str(len(body))))
        elif framing == "close":
            hdrs.append(("Connection", "close"))
        from relaytest import status_head
        if not conn.send(status_head(status, hdrs)):
            return
        if framing == "chunked" and wire_pieces is not None:
            wire = b"".join(b"%x\r\n%s\r\n" % (len(w), w) for w in writes if w) + b"0\r\n\r\n"
            for k, w in enumerate(cut(wire, wire_pieces)):
                if not conn.send(w):
                    return
                if delay and k % delay_every == 0:
                    time.sleep(delay)
            script.done = True
            return
        for k, w in enumerate(writes):
            if framing == "chunked":
                ok = conn.chunk(w)
            else:
                ok = conn.send(w)
            if not ok:
                return
            if handshake is not None:
                script.waits.append(handshake[k].wait(handshake_timeout))
                if not script.waits[-1]:
                    break
            elif delay and k % delay_every == 0:
                time.sleep(delay)
        if framing == "chunked" and end:
            conn.end_chunks()
        script.done = True
        if framing == "close" or close or not end:
            time.sleep(0.01)
            conn.close()

    handler.script = script
    return handler


def json_handler(body, status=200, headers=None, content_type="application/json", script=None,
                 pieces=None, delay=0.0005):
    """A MockUpstream handler that answers with one body (Content-Length), optionally
    written in pieces."""
    script = script if script is not None else Script()

    def handler(conn, req):
        script.requests.append(req)
        _nodelay(conn)
        hdrs = [("Content-Type", content_type)] if content_type else []
        hdrs += list(headers or [])
        hdrs.append(("Content-Length", str(len(body))))
        from relaytest import status_head
        if not conn.send(status_head(status, hdrs)):
            return
        for w in (pieces if pieces is not None else [body]):
            if not conn.send(w):
                return
            time.sleep(delay)
        script.done = True

    handler.script = script
    return handler


# ----------------------------------------------------------------------------- client


def chat_request(stream=True, extra_headers=(), body=None):
    if body is None:
        body = json.dumps({"model": "openai/gpt-oss-20b", "stream": stream,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
    headers = [("Content-Type", "application/json"), ("Accept", "text/event-stream" if stream else "application/json")]
    headers += list(extra_headers)
    return headers, body


class StreamResponse:
    """A response read incrementally: head first, then body pieces as they arrive."""

    def __init__(self, port, method="POST", path=CHAT_PATH, headers=None, body=None,
                 timeout=DEFAULT_TIMEOUT):
        self.client = Client(port, timeout=timeout)
        self.client.request(method, path, headers, body)
        raw = self.client.read_head()
        start, self.headers = parse_head(raw)
        self.raw_head = raw
        self.status = int(start.split(" ")[1])
        te = (hget(self.headers, "transfer-encoding") or "").lower()
        cl = hget(self.headers, "content-length")
        if "chunked" in te:
            self.framing = "chunked"
        elif cl is not None:
            self.framing = "length"
            self.left = int(cl)
        else:
            self.framing = "close"
        self.complete = False  # the body ended as its framing says
        self.finished = False

    def header(self, name, default=None):
        return hget(self.headers, name, default)

    def pieces(self):
        """Yield body bytes as they come; sets .complete at a clean end."""
        c = self.client
        try:
            if self.framing == "chunked":
                while True:
                    line = c.read_until(b"\r\n", 4096)[:-2]
                    size = int(line.split(b";")[0].strip(), 16)
                    if size == 0:
                        while c.read_until(b"\r\n", 65536) != b"\r\n":
                            pass
                        self.complete = True
                        break
                    data = c.read_exact(size)
                    if c.read_exact(2) != b"\r\n":
                        raise ValueError("chunk not followed by CRLF")
                    yield data
            elif self.framing == "length":
                while self.left > 0:
                    data = c.read_some(timeout=c.sock.gettimeout())
                    if not data:
                        if c.eof:
                            break
                        raise socket.timeout("no body bytes")
                    if len(data) > self.left:
                        c.buf[:0] = data[self.left:]
                        data = data[:self.left]
                    self.left -= len(data)
                    yield data
                self.complete = self.left == 0
            else:
                while True:
                    data = c.read_some(timeout=c.sock.gettimeout())
                    if not data:
                        if c.eof:
                            self.complete = True
                            break
                        raise socket.timeout("no body bytes")
                    yield data
        except Exception:
            self.finished = True
            raise
        self.finished = True

    def body(self):
        return b"".join(self.pieces())

    def close(self):
        self.client.close()


def post_chat(port, body_bytes=None, stream=True, extra_headers=(), timeout=DEFAULT_TIMEOUT):
    """POST /v1/chat/completions; returns (StreamResponse, whole body bytes)."""
    headers, body = chat_request(stream, extra_headers, body_bytes)
    r = StreamResponse(port, "POST", CHAT_PATH, headers, body, timeout=timeout)
    try:
        data = r.body()
    finally:
        r.close()
    return r, data


# ----------------------------------------------------------------------------- SSE framing


class Event:
    """One SSE event: raw bytes (terminating empty line included), data payload (bytes or
    None), and where the payload sits in raw when it is a single data line."""

    def __init__(self, raw):
        self.raw = raw
        self.data = None
        self.data_offset = None
        self.lines = []
        datas = []
        pos = 0
        if raw.startswith(b"\xef\xbb\xbf"):  # a BOM (only valid at the stream's start)
            pos = 3
        for line, term in _lines(raw[pos:]):
            self.lines.append((line, term))
            if line.startswith(b"data"):
                if line == b"data" or line[4:5] == b":":
                    v = line[5:]
                    off = pos + 5
                    if v.startswith(b" "):
                        v = v[1:]
                        off += 1
                    datas.append((v, off))
            pos += len(line) + len(term)
        if datas:
            self.data = b"\n".join(d for d, _ in datas)
            if len(datas) == 1:
                self.data_offset = datas[0][1]

    @property
    def is_done(self):
        return self.data == b"[DONE]"

    def json(self):
        if self.data is None or self.is_done:
            return None
        try:
            return json.loads(self.data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None

    def __repr__(self):
        return "Event(%r)" % (self.raw,)


def _lines(raw):
    i, n = 0, len(raw)
    while i < n:
        j = i
        while j < n and raw[j] not in (0x0a, 0x0d):
            j += 1
        if j >= n:
            yield raw[i:], b""
            return
        if raw[j] == 0x0d and j + 1 < n and raw[j + 1] == 0x0a:
            yield raw[i:j], raw[j:j + 2]
            i = j + 2
        else:
            yield raw[i:j], raw[j:j + 1]
            i = j + 1


class SSEParser:
    """Incremental SSE framing: feed bytes, get complete Events. A trailing '\\r' is held
    until the next byte (it may be the first half of a CRLF)."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            ev_end = _event_end(self.buf)
            if ev_end is None:
                break
            out.append(Event(self.buf[:ev_end]))
            self.buf = self.buf[ev_end:]
        return out


def _event_end(buf):
    """Offset just past the first complete event in buf, or None."""
    i, n = 0, len(buf)
    line_start = 0
    while i < n:
        c = buf[i]
        if c == 0x0a or c == 0x0d:
            if c == 0x0d:
                if i + 1 >= n:
                    return None  # maybe CRLF
                end = i + 2 if buf[i + 1] == 0x0a else i + 1
            else:
                end = i + 1
            if i == line_start:
                return end
            line_start = end
            i = end
            continue
        i += 1
    return None


def parse_sse(data):
    """(events, rest) of a whole stream."""
    p = SSEParser()
    evs = p.feed(data)
    rest = p.buf
    if rest.endswith(b"\r") and _event_end(rest + b"x") == len(rest):
        evs.append(Event(rest))
        rest = b""
    return evs, rest


# ----------------------------------------------------------------------------- JSON with offsets


class Val:
    __slots__ = ("kind", "start", "end", "members", "items")

    def __init__(self, kind, start):
        self.kind = kind
        self.start = start
        self.end = None
        self.members = None  # object: list of (key, key_start, Val)
        self.items = None

    def get(self, key):
        found = None
        for k, _, v in self.members or ():
            if k == key:
                found = v
        return found


_WS = b" \t\r\n"


def json_spans(b):
    """Parse JSON bytes into Val nodes with byte offsets. Raises ValueError."""
    pos = [0]

    def ws():
        while pos[0] < len(b) and b[pos[0]] in _WS:
            pos[0] += 1

    def string():
        s = pos[0]
        i = s + 1
        while True:
            if i >= len(b):
                raise ValueError("unterminated string")
            c = b[i]
            if c == 0x5c:
                i += 2
                continue
            if c == 0x22:
                break
            i += 1
        pos[0] = i + 1
        return s, i + 1

    def value():
        ws()
        if pos[0] >= len(b):
            raise ValueError("unexpected end")
        c = b[pos[0]]
        if c == 0x7b:  # {
            v = Val("obj", pos[0])
            v.members = []
            pos[0] += 1
            ws()
            if b[pos[0]:pos[0] + 1] == b"}":
                pos[0] += 1
            else:
                while True:
                    ws()
                    ks, ke = string()
                    key = json.loads(b[ks:ke].decode("utf-8"))
                    ws()
                    if b[pos[0]:pos[0] + 1] != b":":
                        raise ValueError("expected :")
                    pos[0] += 1
                    mv = value()
                    v.members.append((key, ks, mv))
                    ws()
                    c2 = b[pos[0]:pos[0] + 1]
                    pos[0] += 1
                    if c2 == b"}":
                        break
                    if c2 != b",":
                        raise ValueError("expected , or }")
            v.end = pos[0]
            return v
        if c == 0x5b:  # [
            v = Val("arr", pos[0])
            v.items = []
            pos[0] += 1
            ws()
            if b[pos[0]:pos[0] + 1] == b"]":
                pos[0] += 1
            else:
                while True:
                    v.items.append(value())
                    ws()
                    c2 = b[pos[0]:pos[0] + 1]
                    pos[0] += 1
                    if c2 == b"]":
                        break
                    if c2 != b",":
                        raise ValueError("expected , or ]")
            v.end = pos[0]
            return v
        if c == 0x22:
            v = Val("str", pos[0])
            string()
            v.end = pos[0]
            return v
        v = Val("lit", pos[0])
        while pos[0] < len(b) and b[pos[0]] not in b" \t\r\n,]}":
            pos[0] += 1
        v.end = pos[0]
        if v.end == v.start:
            raise ValueError("bad value at %d" % v.start)
        json.loads(b[v.start:v.end])
        return v

    root = value()
    ws()
    if pos[0] != len(b):
        raise ValueError("trailing bytes")
    return root


def _remove_member(b, obj, idx):
    """b without obj's member idx and one separating comma (with its whitespace)."""
    _, ks, v = obj.members[idx]
    if idx + 1 < len(obj.members):
        comma = b.index(b",", v.end)  # the member, its comma; the whitespace after stays
        return b[:ks] + b[comma + 1:]
    if idx > 0:
        return b[:obj.members[idx - 1][2].end] + b[v.end:]
    # only member: keep the braces' inner whitespace out of it
    return b[:ks] + b[v.end:]


def skeleton(payload, container, drop_keys):
    """payload (JSON bytes of a chunk or body) with the members named in drop_keys removed
    from every choices[i].<container> object. Returns bytes (payload unchanged if it
    has no such objects)."""
    while True:
        root = json_spans(payload)
        target = None
        if root.kind == "obj":
            chs = root.get("choices")
            if chs is not None and chs.kind == "arr":
                for item in chs.items:
                    if item.kind != "obj":
                        continue
                    cont = item.get(container)
                    if cont is None or cont.kind != "obj":
                        continue
                    for i, (k, _, _) in enumerate(cont.members):
                        if k in drop_keys:
                            target = (cont, i)
                            break
                    if target:
                        break
        if target is None:
            return payload
        payload = _remove_member(payload, target[0], target[1])


# ----------------------------------------------------------------------------- checking a stream


REASONING_FIELDS = ("reasoning_content", "reasoning")


def duplicate_keys(data):
    """Keys that occur twice in one object of the JSON text (JSON readers keep only one)."""
    dups = []

    def hook(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                dups.append(k)
            seen.add(k)
        return dict(pairs)
    json.loads(data.decode("utf-8") if isinstance(data, bytes) else data, object_pairs_hook=hook)
    return dups


class StreamCheck:
    """Compare the relay's SSE output (bytes) with the events the mock sent.

    Alignment: one output event per input event, in order, except that the relay may
    add flush events (held text released at [DONE] or at the end of the stream) right
    before [DONE] / at the end. For each pair:
      * an input event without a JSON chunk payload (comments, [DONE], invalid JSON,
        non-chunk data) must come out byte for byte;
      * otherwise the output, with choices[i].delta's content and reasoning members
        removed, must equal the input with its content member removed, byte for byte
        (every line, line end, comment and key kept), and the members the relay wrote
        must be strings, content only where the input had content (or on a finish
        event, where held text may be flushed), reasoning fields only in field mode.
    Text per choice index: self.content[i], self.reasoning[field][i].
    """

    def __init__(self, test, in_events, out_bytes, fields=(), rest_expected=b""):
        self.t = test
        self.fields = tuple(fields)
        self.out_events, rest = parse_sse(out_bytes)
        test.assertEqual(rest, rest_expected, "relay output has bytes after the last event")
        self.in_events = [Event(e) for e in in_events]
        self.content = {}
        self.reasoning = {f: {} for f in REASONING_FIELDS}
        self.flush_events = []
        self.pairs = []
        self._align()

    def _add_text(self, ev):
        doc = ev.json()
        if not isinstance(doc, dict) or not isinstance(doc.get("choices"), list):
            return
        for pos, ch in enumerate(doc["choices"]):
            idx = ch.get("index", pos)
            d = ch.get("delta") or {}
            if isinstance(d.get("content"), str):
                self.content[idx] = self.content.get(idx, "") + d["content"]
            for f in REASONING_FIELDS:
                if isinstance(d.get(f), str):
                    self.reasoning[f][idx] = self.reasoning[f].get(idx, "") + d[f]

    def _is_flush(self, ev, last_chunk):
        doc = ev.json()
        if not isinstance(doc, dict) or not isinstance(doc.get("choices"), list):
            return False
        if len(doc["choices"]) != 1:
            return False
        ch = doc["choices"][0]
        if not isinstance(ch.get("delta"), dict):
            return False
        return True

    def _check_flush(self, ev, last_chunk):
        t = self.t
        t.assertIsNotNone(ev.data_offset, "flush event is not a single data line: %r" % ev.raw)
        doc = ev.json()
        ch = doc["choices"][0]
        t.assertIsNone(ch.get("finish_reason"), "flush event %r" % ev.raw)
        keys = set(ch["delta"])
        t.assertTrue(keys and keys <= set(("content",) + self.fields), "flush event delta %r" % ev.raw)
        for k in keys:
            t.assertIsInstance(ch["delta"][k], str)
            t.assertNotEqual(ch["delta"][k], "", "flush event with nothing in it: %r" % ev.raw)
        if last_chunk is not None:
            # ids and model as in the last chunk
            for k, v in last_chunk.items():
                if k != "choices":
                    t.assertEqual(doc.get(k), v, "flush event %r differs from the last chunk in %r" % (ev.raw, k))
        self.flush_events.append(ev)
        self._add_text(ev)

    def _align(self):
        t = self.t
        outs = self.out_events
        o = 0
        last_chunk = None
        for k, iev in enumerate(self.in_events):
            if iev.is_done:
                while o < len(outs) and not outs[o].is_done and self._is_flush(outs[o], last_chunk):
                    self._check_flush(outs[o], last_chunk)
                    o += 1
            t.assertLess(o, len(outs), "input event %d %r has no output event (got %d events: %r)"
                         % (k, iev.raw, len(outs), outs))
            oev = outs[o]
            o += 1
            self._check_pair(k, iev, oev)
            self.pairs.append((iev, oev))
            j = iev.json()
            if isinstance(j, dict) and isinstance(j.get("choices"), list) and j["choices"]:
                last_chunk = j
        while o < len(outs):
            t.assertTrue(self._is_flush(outs[o], last_chunk),
                         "extra output event %r after the last input event" % outs[o].raw)
            self._check_flush(outs[o], last_chunk)
            o += 1

    def _check_pair(self, k, iev, oev):
        t = self.t
        ctx = "event %d:\n  in:  %r\n  out: %r" % (k, iev.raw, oev.raw)
        ij = iev.json()
        if not (isinstance(ij, dict) and isinstance(ij.get("choices"), list) and ij["choices"]):
            t.assertEqual(oev.raw, iev.raw, "event not passed byte for byte; " + ctx)
            return
        if iev.data_offset is not None:
            t.assertIsNotNone(oev.data_offset, ctx)
            # lines other than data, and the line ends, exactly as they were
            ibefore, iafter = iev.raw[:iev.data_offset], iev.raw[iev.data_offset + len(iev.data):]
            obefore, oafter = oev.raw[:oev.data_offset], oev.raw[oev.data_offset + len(oev.data):]
            t.assertEqual((obefore, oafter), (ibefore, iafter), "non-data bytes changed; " + ctx)
        else:
            # several data lines: the event may be rebuilt; its data must survive
            t.assertIsNotNone(oev.data, ctx)
        drop_in = {"content"} | set(self.fields)
        drop_out = {"content"} | set(self.fields)
        dups = duplicate_keys(oev.data)
        t.assertEqual(dups, [], "duplicate keys in the output; " + ctx)
        try:
            sk_out = skeleton(oev.data, "delta", drop_out)
        except ValueError as e:
            t.fail("output event is not valid JSON (%s); %s" % (e, ctx))
        sk_in = skeleton(iev.data, "delta", drop_in)
        t.assertEqual(sk_out, sk_in, "bytes outside content changed; " + ctx)
        oj = oev.json()
        t.assertIsNotNone(oj, "output not JSON; " + ctx)
        for pos, (ic, oc) in enumerate(zip(ij["choices"], oj["choices"])):
            idl, odl = ic.get("delta"), oc.get("delta")
            if not isinstance(idl, dict):
                continue
            if "content" in idl:
                if isinstance(idl["content"], str):
                    t.assertIsInstance(odl.get("content"), str, ctx)
            elif "content" in odl:
                t.assertIsInstance(odl["content"], str, ctx)
                t.assertNotEqual(odl["content"], "", "content key inserted empty; " + ctx)
                t.assertIsNotNone(oc.get("finish_reason"),
                                  "content key inserted into a non-finish event; " + ctx)
            for f in self.fields:
                if f in odl and not (f in idl and odl[f] == idl[f]):
                    t.assertIsInstance(odl[f], str, ctx)
                    if f not in idl:
                        t.assertNotEqual(odl[f], "", "empty reasoning field inserted; " + ctx)
            inserted = [f for f in self.fields if f in odl and f not in idl]
            if inserted:
                t.assertEqual(list(odl)[:len(inserted)], inserted,
                              "reasoning field not the first member of delta; " + ctx)
        self._add_text(oev)

    def text(self, index=0):
        return self.content.get(index, "")


def upstream_text(in_events, index=0):
    """The concatenated delta.content the mock sent for a choice."""
    out = ""
    for raw in in_events:
        j = Event(raw).json()
        if not isinstance(j, dict):
            continue
        for pos, ch in enumerate(j.get("choices") or []):
            if ch.get("index", pos) == index and isinstance((ch.get("delta") or {}).get("content"), str):
                out += ch["delta"]["content"]
    return out


# ----------------------------------------------------------------------------- test case base

from relaytest import RelayTestCase  # noqa: E402


class ChatTestCase(RelayTestCase):
    """RelayTestCase with helpers to run one scripted chat completion through the relay."""

    def relay_for(self, handler, **env):
        self.upstream.handler = handler
        env.setdefault("WORKERS", "1")
        return self.start_relay(**env)

    def stream(self, events, env=None, fields=(), check=True, extra_headers=(), rest_expected=b"",
               **handler_kw):
        """Send events through the relay as a streamed completion. Returns
        (StreamResponse, relay body bytes, StreamCheck or None, handler script)."""
        h = sse_handler(events, **handler_kw)
        relay = self.relay_for(h, **(env or {}))
        r, out = post_chat(relay.port, stream=True, extra_headers=extra_headers)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.complete, "stream not complete: %r" % out[-200:])
        sc = StreamCheck(self, events, out, fields, rest_expected) if check else None
        return r, out, sc, h.script

    def body(self, body, env=None, status=200, **handler_kw):
        """A non-streamed completion through the relay: (StreamResponse, body bytes, script)."""
        h = json_handler(body, status=status, **handler_kw)
        relay = self.relay_for(h, **(env or {}))
        r, out = post_chat(relay.port, stream=False)
        self.assertEqual(r.status, status)
        self.assertTrue(r.complete)
        if r.header("content-length") is not None:
            self.assertEqual(int(r.header("content-length")), len(out), "Content-Length is wrong")
        return r, out, h.script

    def assertBodySkeleton(self, got, want, drop_out=("content",), drop_in=("content",)):
        """got (relay body) and want (upstream body) are equal byte for byte once the
        message members in drop_* are removed from both."""
        try:
            sk_got = skeleton(got, "message", set(drop_out))
        except ValueError as e:
            self.fail("relay body is not valid JSON (%s): %r" % (e, got))
        self.assertBodyEqual(sk_got, skeleton(want, "message", set(drop_in)), "body outside content")
        self.assertEqual(duplicate_keys(got), [], "duplicate keys in the relay's body")
