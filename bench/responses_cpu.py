#!/usr/bin/env python3
"""Relay CPU per upstream event: the chat route against the Responses bridge, on the
same upstream stream (llama.cpp's form, one token per event, written in 64 KiB pieces).

    RELAY_BIN=build/oss-relay python3 bench/responses_cpu.py [EVENTS]

The relay runs one worker; its CPU is utime + stime from /proc (10 ms ticks), so use
50,000 events or more. Uses the integration tests' harness (loopback only).
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from chatmock import sse_handler  # noqa: E402
import dialects as D  # noqa: E402
from relaytest import MockUpstream, Relay, clean_env, find_relay_bin, free_port, http_exchange  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    text = " ".join("w%d" % i for i in range(n))
    evs = D.dialect("llamacpp").events([D.Answer(reasoning="", content=text)], usage=True)
    whole = b"".join(evs)
    up = MockUpstream(sse_handler(evs, pieces=[whole[i:i + 65536] for i in range(0, len(whole), 65536)], delay=0))
    port = free_port()
    env = clean_env({"LISTEN_ADDR": "127.0.0.1", "LISTEN_PORT": str(port), "UPSTREAM_HOST": "127.0.0.1",
                     "UPSTREAM_PORT": str(up.port), "WORKERS": "1", "LOG_LEVEL": "warn"})
    relay = Relay(os.path.abspath(find_relay_bin()), env, port=port)
    try:
        relay.wait_ready()
        routes = (("chat", "/v1/chat/completions",
                   {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}),
                  ("responses", "/v1/responses", {"model": "m", "stream": True, "input": "hi"}))
        for _ in range(3):
            for name, path, doc in routes:
                c0, t0 = relay.cpu_seconds(), time.monotonic()
                resp = http_exchange(port, "POST", path, [("Content-Type", "application/json")],
                                     json.dumps(doc).encode(), timeout=120)
                cpu, wall = relay.cpu_seconds() - c0, time.monotonic() - t0
                assert resp.status == 200 and resp.complete, resp
                print("%-9s %d events: relay CPU %.3f s (%.2f us/event), wall %.3f s, %d bytes out"
                      % (name, len(evs), cpu, cpu / len(evs) * 1e6, wall, len(resp.body)))
    finally:
        relay.kill()
        up.stop()


if __name__ == "__main__":
    main()
