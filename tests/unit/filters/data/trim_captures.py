#!/usr/bin/env python3
"""Make the request fixtures of test_responses_request.c from the Codex CLI
0.171.0 captures (our own runs of the research prototype, see the issue-12
research notes): the request bodies, serialised as Codex sends them (compact,
UTF-8), with long texts shortened so that the fixtures stay small. Structure,
keys, order, ids, tool schemas and every value the tests look at are kept.

    python3 trim_captures.py /work/research/codex/captures
"""
import json
import os
import sys

CASES = {
    "codex_fallback_turn1.json": "fallback_exec/001-POST.json",
    "codex_reasoning_turn2.json": "fallback_exec_reasoning/002-POST.json",
    "codex_namespace_turn2.json": "fallback_namespace/002-POST.json",
    "codex_apply_patch_turn2.json": "catalog_apply_patch_reasoning/002-POST.json",
}


def cut(s, n):
    return s if len(s) <= n else s[:n] + "\n[... trimmed]"


def trim_schema(v):
    if isinstance(v, dict):
        return {k: (cut(x, 80) if k == "description" and isinstance(x, str) else trim_schema(x))
                for k, x in v.items()}
    if isinstance(v, list):
        return [trim_schema(x) for x in v]
    return v


def trim_tool(t):
    t = dict(t)
    if isinstance(t.get("description"), str):
        t["description"] = cut(t["description"], 160)
    if "parameters" in t:
        t["parameters"] = trim_schema(t["parameters"])
    if "tools" in t:
        t["tools"] = [trim_tool(x) for x in t["tools"]]
    return t


def trim(body):
    body = dict(body)
    for item in body["input"]:
        for part in item.get("content") or []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] = cut(part["text"], 240)
    body["tools"] = [trim_tool(t) for t in body["tools"]]
    md = body.get("client_metadata")
    if isinstance(md, dict) and "x-codex-turn-metadata" in md:
        md["x-codex-turn-metadata"] = cut(md["x-codex-turn-metadata"], 120)
    return body


def main():
    src = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    for name, path in CASES.items():
        body = json.load(open(os.path.join(src, path)))["body"]
        out = json.dumps(trim(body), separators=(",", ":"), ensure_ascii=False)
        with open(os.path.join(here, name), "w") as f:
            f.write(out)
        print(name, len(out))


if __name__ == "__main__":
    main()
