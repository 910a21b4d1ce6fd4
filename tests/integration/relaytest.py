"""Shared harness for the oss-relay integration tests.

Everything here uses real loopback sockets and the Python 3 standard library only.

    RelayTestCase      unittest.TestCase base: a mock upstream and helpers to start
                       the relay binary (killed in cleanup), per-test temp dir.
    Relay              the oss-relay subprocess (stderr captured to a file).
    MockUpstream       threaded raw-socket HTTP/1.1 server with per-test handlers,
                       recording what it received and how its peers behaved.
    Client             raw-socket HTTP client: send bytes, read whole responses
                       (Content-Length, chunked, close-delimited, 1xx interim).
    RssSampler         the relay's peak RSS from /proc while a test runs;
                       Relay.cpu_seconds() its utime + stime.

Nothing blocks without a bound: every socket has a timeout and every loop a deadline.
"""

import errno
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("RELAY_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))

DEFAULT_TIMEOUT = 5.0  # seconds, for any single socket operation in tests


def find_relay_bin():
    """RELAY_BIN from the environment (ctest sets it), else a build dir of the repo."""
    path = os.environ.get("RELAY_BIN")
    if path:
        return path
    for cand in ("build/oss-relay", "build-it/oss-relay", "build-debug/oss-relay"):
        p = os.path.join(SOURCE_DIR, cand)
        if os.access(p, os.X_OK):
            return p
    return None


# --------------------------------------------------------------------------- ports


def free_port(host="127.0.0.1"):
    """A TCP port that nothing listens on right now (bind to port 0, then release)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def ipv6_available():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def wait_for(pred, timeout, interval=0.02):
    """Poll pred() until it returns a truthy value or timeout passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# --------------------------------------------------------------------------- HTTP bits


def parse_head(raw):
    """bytes of a message head (without the final CRLFCRLF) -> (start line parts, headers list)."""
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    start = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("bad header line %r" % line)
        headers.append((name, value.strip(" \t")))
    return start, headers


def hget(headers, name, default=None):
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return default


def hall(headers, name):
    name = name.lower()
    return [v for k, v in headers if k.lower() == name]


def connection_tokens(headers):
    toks = []
    for v in hall(headers, "connection"):
        toks.extend(t.strip().lower() for t in v.split(",") if t.strip())
    return toks


def build_request(method, target, headers=None, body=None, version="HTTP/1.1",
                  chunked=False, chunk_sizes=None, host="example.test"):
    """Request bytes. headers: list of (name, value); a Host header is added first unless
    host is None or headers already carry one. Content-Length is added for a body unless
    chunked or the caller gave Content-Length / Transfer-Encoding."""
    headers = list(headers or [])
    if host is not None and hget(headers, "host") is None:
        headers.insert(0, ("Host", host))
    if chunked:
        if hget(headers, "transfer-encoding") is None:
            headers.append(("Transfer-Encoding", "chunked"))
    elif body is not None and hget(headers, "content-length") is None \
            and hget(headers, "transfer-encoding") is None:
        headers.append(("Content-Length", str(len(body))))
    head = "%s %s %s\r\n" % (method, target, version)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in headers)
    head += "\r\n"
    out = head.encode("latin-1")
    if chunked:
        out += encode_chunked(body or b"", chunk_sizes)
    elif body:
        out += body
    return out


def encode_chunked(data, sizes=None, trailers=None, ext=False):
    """Chunked encoding of data; sizes is a list of chunk sizes (cycled), default 8192."""
    parts = []
    pos = 0
    i = 0
    sizes = sizes or [8192]
    while pos < len(data):
        n = sizes[i % len(sizes)]
        i += 1
        piece = data[pos:pos + n]
        pos += len(piece)
        if ext and i % 3 == 0:
            parts.append(b"%x;name=val\r\n" % len(piece))
        else:
            parts.append(b"%x\r\n" % len(piece))
        parts.append(piece)
        parts.append(b"\r\n")
    parts.append(b"0\r\n")
    for k, v in (trailers or []):
        parts.append(("%s: %s\r\n" % (k, v)).encode("latin-1"))
    parts.append(b"\r\n")
    return b"".join(parts)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class Response:
    """A parsed response. framing: 'length', 'chunked', 'close' or 'none'.
    complete: the body ended as its framing says (Content-Length bytes all there,
    terminating 0-chunk seen); for 'close' it is True when EOF was seen."""

    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []
        self.raw_head = b""
        self.body = b""
        self.framing = None
        self.complete = False
        self.trailers = []
        self.interim = []  # 1xx responses that came first
        self.eof = False   # the connection was closed (EOF or reset) while reading

    def header(self, name, default=None):
        return hget(self.headers, name, default)

    def header_all(self, name):
        return hall(self.headers, name)

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Response %s %s framing=%s complete=%s body=%d bytes %r>" % (
            self.status, self.reason, self.framing, self.complete, len(self.body), self.body[:200])


class BufferedReader:
    """read_until / read_exact over self.buf, refilled by the subclass's _fill();
    error messages start with self.label."""

    label = ""

    def read_until(self, delim, limit=1 << 20):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise ValueError("%sno %r within %d bytes" % (self.label, delim, limit))
            if not self._fill():
                raise ConnectionClosed("%sEOF before %r (have %r)" % (self.label, delim, bytes(self.buf[:200])))

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill(n - len(self.buf)):
                raise ConnectionClosed("%sEOF after %d of %d bytes" % (self.label, len(self.buf), n))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class ConnectionClosed(Exception):
    pass


class Client(BufferedReader):
    """A raw client connection with its own read buffer (so pipelined responses
    can be read one after another)."""

    def __init__(self, port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    # context manager
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def settimeout(self, t):
        self.sock.settimeout(t)

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, target, headers=None, body=None, **kw):
        self.send(build_request(method, target, headers, body, **kw))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Close with a reset (SO_LINGER 0)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.close()

    def _fill(self, n=65536):
        """Read more bytes into buf; returns False on EOF/reset. socket.timeout propagates."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(max(n, 65536))
        except (ConnectionResetError, BrokenPipeError):
            self.eof = self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_some(self, timeout=None):
        """Whatever arrives next within timeout (b'' on EOF or if nothing came; see .eof)."""
        if self.buf:
            out = bytes(self.buf)
            self.buf.clear()
            return out
        old = self.sock.gettimeout()
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            self._fill()
        except socket.timeout:
            pass
        finally:
            self.sock.settimeout(old)
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_until_close(self, timeout=DEFAULT_TIMEOUT):
        """All bytes until EOF; raises socket.timeout if the peer keeps it open past timeout."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("connection still open after %.1fs" % timeout)
            self.sock.settimeout(left)
            self._fill()
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def wait_closed(self, timeout):
        """True if the peer closes (EOF or reset) within timeout; bytes received are
        kept in self.buf. False if still open."""
        try:
            self.read_until_close_keep(timeout)
            return True
        except socket.timeout:
            return False

    def trickle_until_closed(self, limit, byte=b"X"):
        """A slowloris: sends one byte every 0.1 s until the peer closes the connection.
        Returns the seconds that took, or None if it was still open after limit seconds."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            try:
                self.send(byte)
            except OSError:
                return time.monotonic() - t0
            if self.wait_closed(0.1):
                return time.monotonic() - t0
        return None

    def read_until_close_keep(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            self.sock.settimeout(left)
            self._fill()

    def read_head(self):
        raw = self.read_until(b"\r\n\r\n", limit=1 << 20)
        return raw[:-4]

    def read_response(self, method="GET", body_limit=None):
        """Read one complete response (after any 1xx, which are kept in .interim).
        A 101 is returned at once with no body (the connection then is a tunnel)."""
        interim = []
        while True:
            r = self._read_one(method, body_limit)
            if r.status is not None and 100 <= r.status < 200 and r.status != 101:
                interim.append(r)
                continue
            r.interim = interim
            return r

    def _read_one(self, method, body_limit):
        r = Response()
        r.raw_head = self.read_head()
        start, r.headers = parse_head(r.raw_head)
        m = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", start)
        if not m:
            raise ValueError("bad status line %r" % start)
        r.version, r.status, r.reason = m.group(1), int(m.group(2)), m.group(3) or ""
        te = (r.header("transfer-encoding") or "").lower()
        cl = r.header("content-length")
        if method == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200:
            r.framing = "none"
            r.complete = True
        elif "chunked" in te:
            r.framing = "chunked"
            self._read_chunked(r, body_limit)
        elif cl is not None:
            r.framing = "length"
            n = int(cl)
            try:
                r.body = self.read_exact(n)
                r.complete = True
            except ConnectionClosed:
                r.body = bytes(self.buf)
                self.buf.clear()
                r.complete = False
                r.eof = True
        else:
            r.framing = "close"
            r.body = self.read_until_close()
            r.complete = True
            r.eof = True
        return r

    def _read_chunked(self, r, body_limit):
        parts = []
        try:
            while True:
                line = self.read_until(b"\r\n", limit=4096)[:-2]
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = self.read_until(b"\r\n", limit=65536)[:-2]
                        if not t:
                            break
                        k, _, v = t.decode("latin-1").partition(":")
                        r.trailers.append((k, v.strip()))
                    r.complete = True
                    break
                parts.append(self.read_exact(size))
                if self.read_exact(2) != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
        except ConnectionClosed:
            r.complete = False
            r.eof = True
        r.body = b"".join(parts)


def http_exchange(port, method, target, headers=None, body=None, timeout=DEFAULT_TIMEOUT, **kw):
    """One request on a fresh connection; returns the Response."""
    with Client(port, timeout=timeout) as c:
        c.request(method, target, headers, body, **kw)
        return c.read_response(method)


# --------------------------------------------------------------------------- mock upstream


class UpstreamRequest:
    def __init__(self):
        self.method = self.target = self.version = None
        self.headers = []
        self.raw_head = b""
        self.body = None
        self.chunked = False
        self.chunk_sizes = []
        self.trailers = []
        self.conn_id = None
        self.time = None

    def header(self, name, default=None):
        return hget(self.headers, name, default)

    def header_all(self, name):
        return hall(self.headers, name)

    def __repr__(self):
        return "<UpstreamRequest %s %s %s conn=%s>" % (self.method, self.target, self.version, self.conn_id)


class UpstreamConn(BufferedReader):
    label = "mock: "
    """One accepted connection in the mock upstream, handed to handlers."""

    def __init__(self, server, sock, addr, cid):
        self.server = server
        self.sock = sock
        self.addr = addr
        self.id = cid
        self.buf = bytearray()
        self.closed = False          # we closed it
        self.peer_closed_at = None   # monotonic time we saw EOF/reset/EPIPE from the peer
        self.peer_closed = threading.Event()
        self.bytes_sent = 0
        sock.settimeout(10)

    def _mark_peer_closed(self):
        if self.peer_closed_at is None:
            self.peer_closed_at = time.monotonic()
        self.peer_closed.set()

    def _fill(self, n=65536):
        try:
            data = self.sock.recv(max(n, 65536))
        except (ConnectionResetError, BrokenPipeError):
            self._mark_peer_closed()
            return False
        except OSError:
            if self.closed:
                return False
            raise
        if not data:
            self._mark_peer_closed()
            return False
        self.buf += data
        return True

    def read_some(self):
        if self.buf:
            out = bytes(self.buf)
            self.buf.clear()
            return out
        self._fill()
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_request_head(self):
        """Next request head, or None on a clean EOF before any byte."""
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            if len(self.buf) > (1 << 20):
                raise ValueError("mock: request head too large")
            if not self._fill():
                if self.buf:
                    raise ConnectionClosed("mock: EOF inside a request head")
                return None
        raw = bytes(self.buf[:i])
        del self.buf[:i + 4]
        req = UpstreamRequest()
        req.raw_head = raw
        req.conn_id = self.id
        req.time = time.monotonic()
        start, req.headers = parse_head(raw)
        parts = start.split(" ")
        if len(parts) != 3:
            raise ValueError("mock: bad request line %r" % start)
        req.method, req.target, req.version = parts
        return req

    def read_body(self, req):
        """Read the request body as its head frames it; stores and returns it."""
        te = (req.header("transfer-encoding") or "").lower()
        if "chunked" in te:
            req.chunked = True
            parts = []
            while True:
                line = self.read_until(b"\r\n", 4096)[:-2]
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = self.read_until(b"\r\n", 65536)[:-2]
                        if not t:
                            break
                        k, _, v = t.decode("latin-1").partition(":")
                        req.trailers.append((k, v.strip()))
                    break
                req.chunk_sizes.append(size)
                parts.append(self.read_exact(size))
                if self.read_exact(2) != b"\r\n":
                    raise ValueError("mock: chunk not followed by CRLF")
            req.body = b"".join(parts)
        elif req.header("content-length") is not None:
            req.body = self.read_exact(int(req.header("content-length")))
        else:
            req.body = b""
        return req.body

    def send(self, data):
        """sendall; returns False (and notes the peer closed) on EPIPE/ECONNRESET."""
        try:
            self.sock.sendall(data)
            self.bytes_sent += len(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            self._mark_peer_closed()
            return False

    def respond(self, status=200, headers=None, body=b"", reason=None, content_length=True):
        headers = list(headers or [])
        if content_length and hget(headers, "content-length") is None \
                and hget(headers, "transfer-encoding") is None:
            headers.append(("Content-Length", str(len(body))))
        return self.send(status_head(status, headers, reason) + body)

    def start_chunked(self, status=200, headers=None, reason=None):
        headers = list(headers or []) + [("Transfer-Encoding", "chunked")]
        return self.send(status_head(status, headers, reason))

    def chunk(self, data):
        if not data:
            return True
        return self.send(b"%x\r\n" % len(data) + data + b"\r\n")

    def end_chunks(self, trailers=None):
        t = "".join("%s: %s\r\n" % kv for kv in (trailers or []))
        return self.send(b"0\r\n" + t.encode("latin-1") + b"\r\n")

    def wait_peer_closed(self, timeout):
        """Read and discard until the peer closes; True if it did within timeout."""
        deadline = time.monotonic() + timeout
        while self.peer_closed_at is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                r, _, _ = select.select([self.sock], [], [], min(left, 0.05))
            except (OSError, ValueError):
                return self.peer_closed_at is not None
            if r:
                self.buf.clear()
                try:
                    if not self._fill():
                        break
                except OSError:
                    break
        return self.peer_closed_at is not None

    def close(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        """Close with RST."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.close()


def status_head(status, headers, reason=None):
    reasons = {100: "Continue", 101: "Switching Protocols", 103: "Early Hints", 200: "OK",
               201: "Created", 204: "No Content", 304: "Not Modified", 400: "Bad Request",
               404: "Not Found", 500: "Internal Server Error"}
    reason = reason if reason is not None else reasons.get(status, "Status")
    head = "HTTP/1.1 %d %s\r\n" % (status, reason)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in headers)
    return (head + "\r\n").encode("latin-1")


def echo_handler(conn, req):
    """Default handler: 200 with a JSON summary of the request."""
    body = req.body or b""
    doc = {"method": req.method, "target": req.target, "body_len": len(body),
           "body_sha256": sha256(body), "conn": conn.id}
    conn.respond(200, [("Content-Type", "application/json")], json.dumps(doc).encode())


class MockUpstream:
    """Threaded HTTP/1.1 server on loopback.

    handler(conn, req) is called for each request, after its body was read (unless
    read_body is False: then req.body is None and the handler reads it with
    conn.read_body(req) or the socket directly). After the handler returns, the
    connection serves the next request unless the handler closed it.
    """

    def __init__(self, handler=None, hosts=("127.0.0.1",), port=0, read_body=True, backlog=128):
        self.handler = handler or echo_handler
        self.read_body = read_body
        self.lock = threading.Lock()
        self.requests = []
        self.conns = []
        self.errors = []
        self.accepted = 0
        self.stopping = False
        self.listeners = []
        for h in hosts:
            fam = socket.AF_INET6 if ":" in h else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((h, port))
            port = s.getsockname()[1]
            s.listen(backlog)
            s.settimeout(0.1)
            self.listeners.append(s)
        self.port = port
        self.host = hosts[0]
        self.threads = []
        for s in self.listeners:
            t = threading.Thread(target=self._accept_loop, args=(s,), daemon=True)
            t.start()
            self.threads.append(t)

    def _accept_loop(self, lsock):
        while not self.stopping:
            try:
                sock, addr = lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                conn = UpstreamConn(self, sock, addr, self.accepted)
                self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn):
        try:
            while not conn.closed:
                req = conn.read_request_head()
                if req is None:
                    return
                if self.read_body:
                    conn.read_body(req)
                with self.lock:
                    self.requests.append(req)
                self.handler(conn, req)
        except Exception as e:  # recorded for tests that care; never kills the mock
            if not (self.stopping or conn.closed):
                with self.lock:
                    self.errors.append("conn %d: %r" % (conn.id, e))
        finally:
            if not conn.closed:
                conn.close()

    @property
    def connection_count(self):
        with self.lock:
            return self.accepted

    def wait_requests(self, n, timeout=DEFAULT_TIMEOUT):
        wait_for(lambda: len(self.requests) >= n, timeout)
        with self.lock:
            return list(self.requests)

    def wait_conns(self, n, timeout=DEFAULT_TIMEOUT):
        wait_for(lambda: len(self.conns) >= n, timeout)
        with self.lock:
            return list(self.conns)

    def stop(self):
        self.stopping = True
        for s in self.listeners:
            # shutdown first: close() alone leaves the socket listening until the accept
            # thread's poll returns (up to 0.1 s), and connections made in that window
            # would be reset after the relay sent on them; a server that dies refuses at once.
            for op in (lambda: s.shutdown(socket.SHUT_RDWR), s.close):
                try:
                    op()
                except OSError:
                    pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            c.closed = True
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.sock.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(timeout=1.0)


# --------------------------------------------------------------------------- relay process


ENV_PREFIXES = ("RELAY_", "LISTEN_", "UPSTREAM_", "LOG_LEVEL", "OPEN_PATTERN", "CLOSE_PATTERN")


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES)}
    env.update(extra or {})
    return env


class Relay:
    """The oss-relay binary as a subprocess. stderr/stdout go to files in workdir."""

    def __init__(self, binary, env, args=(), workdir=None, host="127.0.0.1", port=None):
        self.binary = binary
        self.host = host
        self.port = port
        self.workdir = workdir or tempfile.mkdtemp(prefix="relaytest-")
        n = 0
        while os.path.exists(os.path.join(self.workdir, "relay%d.stderr" % n)):
            n += 1
        self.stderr_path = os.path.join(self.workdir, "relay%d.stderr" % n)
        self.stdout_path = os.path.join(self.workdir, "relay%d.stdout" % n)
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.env = env
        self.proc = subprocess.Popen([binary] + list(args), env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err, cwd=self.workdir)
        self.pid = self.proc.pid

    def wait_ready(self, timeout=10.0):
        """Wait until the listening port accepts a TCP connection (the probe
        connection is closed without sending anything)."""
        deadline = time.monotonic() + timeout
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("relay exited with %s before serving; stderr:\n%s"
                                     % (self.proc.returncode, self.stderr_text()))
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(0.5)
            try:
                s.connect((self.host, self.port))
                s.close()
                return
            except OSError:
                s.close()
                time.sleep(0.02)
        raise AssertionError("relay not accepting on %s:%s after %.0fs; stderr:\n%s"
                             % (self.host, self.port, timeout, self.stderr_text()))

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout_text(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=3.0, count=1):
        """Wait until stderr has at least count lines matching regex pattern; returns them."""
        rx = re.compile(pattern)
        res = wait_for(lambda: (lambda m: m if len(m) >= count else None)(
            [l for l in self.stderr_text().splitlines() if rx.search(l)]), timeout)
        return res or [l for l in self.stderr_text().splitlines() if rx.search(l)]

    def access_lines(self):
        return [parse_access(l) for l in self.stderr_text().splitlines() if ACCESS_RX.search(l)]

    def wait_access(self, count, timeout=3.0):
        wait_for(lambda: len(self.access_lines()) >= count, timeout)
        return self.access_lines()

    def rss_kb(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def cpu_seconds(self):
        """utime + stime of the relay (all its threads) in seconds, from /proc/PID/stat."""
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for f in (self._err, self._out):
            try:
                f.close()
            except OSError:
                pass


# tolerant: finds the line even if fields are added; test_proxy_logging checks the exact form
ACCESS_RX = re.compile(r"\baccess\s+(?:\S+=\S*\s+)*?method=")


def parse_access(line):
    """'... access method=GET path=/x status=200 ...' -> dict of the key=value fields."""
    i = ACCESS_RX.search(line).start()
    fields = {}
    for tok in line[i:].split()[1:]:
        k, sep, v = tok.partition("=")
        if sep:
            fields[k] = v
    fields["_line"] = line
    return fields


class RssSampler:
    """Samples a process's VmRSS in a thread; .max_kb is the largest seen."""

    def __init__(self, relay, interval=0.02):
        self.relay = relay
        self.interval = interval
        self.max_kb = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            v = self.relay.rss_kb()
            if v is not None:
                self.max_kb = max(self.max_kb, v)
                self.samples += 1
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._t.join(timeout=2)
        return self.max_kb


# --------------------------------------------------------------------------- test case base


SANITIZER_RX = re.compile(r"ERROR: (?:Address|Leak|Thread|Memory)Sanitizer|runtime error: ")


class RelayTestCase(unittest.TestCase):
    """Base class: self.upstream is a fresh MockUpstream, self.start_relay() runs the
    binary pointed at it. Everything is stopped in cleanups; on failure the relay's
    stderr is printed."""

    relay_bin = None

    @classmethod
    def setUpClass(cls):
        cls.relay_bin = find_relay_bin()
        if not cls.relay_bin or not os.access(cls.relay_bin, os.X_OK):
            raise unittest.SkipTest("oss-relay binary not found (set RELAY_BIN)")

    def run(self, result=None):
        self.workdir = tempfile.mkdtemp(prefix="relaytest-")
        self.relays = []
        before = (len(result.failures), len(result.errors)) if result is not None else None
        try:
            return super().run(result)
        finally:
            for r in self.relays:
                m = SANITIZER_RX.search(r.stderr_text())
                if m and result is not None:
                    try:
                        raise AssertionError("sanitizer report in the relay's stderr: %s"
                                             % r.stderr_text()[m.start():m.start() + 3000])
                    except AssertionError:
                        result.addFailure(self, sys.exc_info())
            if result is not None and before != (len(result.failures), len(result.errors)):
                for r in self.relays:
                    sys.stderr.write("\n----- relay stderr (%s, pid %d, exit %s) -----\n%s\n"
                                     % (self.id(), r.pid, r.proc.returncode, r.stderr_text()[-6000:]))
            shutil.rmtree(self.workdir, ignore_errors=True)

    def setUp(self):
        self.upstream = self.make_upstream()

    def make_upstream(self, handler=None, **kw):
        up = MockUpstream(handler, **kw)
        self.addCleanup(up.stop)
        return up

    def relay_env(self, upstream=None, **env):
        up = upstream if upstream is not None else self.upstream
        base = {"LISTEN_ADDR": "127.0.0.1", "UPSTREAM_HOST": "127.0.0.1", "LOG_LEVEL": "info"}
        if up is not None:
            base["UPSTREAM_PORT"] = str(up.port)
        base.update({k: str(v) for k, v in env.items()})
        return base

    def start_relay(self, upstream=None, args=(), wait=True, **env):
        """Start the relay (env overrides as keyword args, e.g. RELAY_IDLE_TIMEOUT=0.5).
        Returns the Relay; its port is relay.port."""
        e = self.relay_env(upstream, **env)
        if "LISTEN_PORT" not in e:
            e["LISTEN_PORT"] = str(free_port())
        host = e["LISTEN_ADDR"]
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        r = Relay(self.relay_bin, clean_env(e), args=args, workdir=self.workdir,
                  host=host, port=int(e["LISTEN_PORT"]))
        self.relays.append(r)
        self.addCleanup(r.kill)
        if wait:
            r.wait_ready()
        return r

    def run_relay(self, args=(), env=None, timeout=10):
        """Run the binary to completion (for --help, --check, bad config)."""
        p = subprocess.run([self.relay_bin] + list(args), env=clean_env(env or {}),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, cwd=self.workdir)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    # ---- assertions

    def assertErrorResponse(self, resp, status, etype, code, relay=None):
        """resp is the relay's own JSON error: status, Content-Type, OpenAI error shape."""
        ctx = "response %r" % (resp,)
        self.assertEqual(resp.status, status, ctx)
        ctype = resp.header("content-type") or ""
        self.assertTrue(ctype.lower().startswith("application/json"),
                        "Content-Type %r is not application/json; %s" % (ctype, ctx))
        self.assertTrue(resp.complete, "error body incomplete; " + ctx)
        if resp.header("content-length") is not None:
            self.assertEqual(int(resp.header("content-length")), len(resp.body), ctx)
        try:
            doc = resp.json()
        except ValueError as e:
            self.fail("error body is not JSON (%s); %s" % (e, ctx))
        self.assertIsInstance(doc, dict, ctx)
        self.assertIn("error", doc, ctx)
        err = doc["error"]
        self.assertIsInstance(err, dict, ctx)
        self.assertIsInstance(err.get("message"), str, ctx)
        self.assertTrue(err["message"], "empty error message; " + ctx)
        self.assertEqual(err.get("type"), etype, ctx)
        self.assertEqual(err.get("code"), code, ctx)
        return err

    def assertBodyEqual(self, got, want, what="body"):
        """Byte-for-byte comparison with a short message (no 10 MiB reprs)."""
        if got == want:
            return
        n = min(len(got), len(want))
        first = next((i for i in range(n) if got[i] != want[i]), n)
        self.fail("%s differs: got %d bytes, want %d; first difference at offset %d "
                  "(got %r, want %r)" % (what, len(got), len(want), first,
                                         got[first:first + 16], want[first:first + 16]))

    def assertClosedSoon(self, client, timeout=2.0, what="connection"):
        self.assertTrue(client.wait_closed(timeout), "%s not closed within %.1fs" % (what, timeout))


def crc32_of_blocks(block, nblocks, header_fn=None):
    """crc32 of the concatenation of nblocks copies of block, each with header_fn(i)
    overwriting its first bytes (used to make every block distinct cheaply)."""
    crc = 0
    for i in range(nblocks):
        b = block if header_fn is None else header_fn(i) + block[len(header_fn(i)):]
        crc = zlib.crc32(b, crc)
    return crc
