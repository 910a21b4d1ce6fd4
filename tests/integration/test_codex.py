"""Codex CLI through the relay's Responses bridge (issue 12), end to end.

`codex exec` (@openai/codex 0.171.0, installed by `npm ci` in tests/node, which
tests/run.sh runs) talks to the relay as a `model_providers` entry with
`wire_api = "responses"`; the relay serves POST /v1/responses over a chat-only mock
upstream (tests/integration/dialects.py). Turn 1: the model asks for Codex's
`exec_command` tool with `echo relay-ok-$((12000+345))`. Codex runs the command, sends
the output back (a `function_call_output` item, which the relay hands upstream as a
`role: tool` message), and turn 2's answer quotes what the tool message said. The
marker relay-ok-12345 is in no scripted text: it reaches Codex's final answer only if
the shell ran and the output made the whole round trip.

Codex is kept off the network (NOTES.md of the Codex research): plugins off (they
resolve github.com and chatgpt.com), no update check, no analytics or feedback, retries
off, a clean environment, stdin closed. Each run is bounded by CODEX_TIMEOUT.

Upstream forms: raw harmony in `content` (LM Studio before 0.3.23, mlx_lm.server),
which needs the harmony tool-call filter of issue 11, and llama.cpp's parsed
`tool_calls` with `reasoning_content`. With the latter, also Codex's namespaced tools
(multi_agent_v1) and its freeform apply_patch tool (a model Codex knows, through a
model catalog).
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import dialects as D
from relaytest import SOURCE_DIR, RelayTestCase
from responses import NEEDS_ISSUE_11, harmony_tool_calls_landed

CODEX_VERSION = "0.171.0"
CMD = "echo relay-ok-$((12000+345))"
MARKER = "relay-ok-12345"
MARKER_RX = re.compile(r"relay-ok-\d+")
CODEX_TIMEOUT = 60.0

CONFIG = """\
model = "gpt-oss-20b"
model_provider = "relay"
check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false

[model_providers.relay]
name = "oss-relay"
base_url = "http://127.0.0.1:{port}/v1"
wire_api = "responses"
env_key = "RELAY_TEST_API_KEY"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 20000
"""


def find_codex():
    """The codex launcher npm installed in tests/node (or CODEX_BIN)."""
    path = os.environ.get("CODEX_BIN") or os.path.join(SOURCE_DIR, "tests", "node", "node_modules", ".bin", "codex")
    return path if os.access(path, os.X_OK) else None


EXEC_CALL = D.ToolCall("exec_command", json.dumps({"cmd": CMD, "yield_time_ms": 1000}))
NAMESPACE_CALL = D.ToolCall("multi_agent_v1__close_agent", json.dumps({"target": "no-such-agent"}))
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+relay-ok-12345\n*** End Patch\n"
PATCH_CALL = D.ToolCall("apply_patch", json.dumps({"input": PATCH}))


def codex_upstream(dialect, script, call=EXEC_CALL):
    """A chat-completions mock for Codex's two turns: without a tool message it makes
    `call`; with one it answers with what the tool output said (the marker found there,
    or the output's first line). script.bodies gets the parsed request bodies."""

    def handler(conn, req):
        doc = json.loads(req.body.decode("utf-8"))
        script.bodies.append(doc)
        tools = [m for m in doc.get("messages", []) if m.get("role") == "tool"]
        if not tools:
            answer = D.Answer(reasoning="The user wants the tool run, so I call %s." % call.name, content="",
                              tool_calls=[call])
        else:
            said = " ".join(str(m.get("content")) for m in tools)
            seen = MARKER_RX.search(said)
            answer = D.Answer(reasoning="The tool ran; I report its output.",
                              content="The tool said: %s." % (seen.group(0) if seen else said.splitlines()[0][:80]))
        D.chat_handler(dialect, [answer])(conn, req)

    return handler


class Script:
    def __init__(self):
        self.bodies = []


def make_catalog(codex, env, path):
    """Codex offers its freeform apply_patch tool only for models it knows: a bundled
    model's entry under our model name (one whose tools are top-level, not the newer
    "additional_tools" input item)."""
    p = subprocess.run([codex, "debug", "models", "--bundled"], env=env, capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    models = json.loads(p.stdout)["models"]
    m = next((x for x in models if x.get("apply_patch_tool_type") == "freeform"
              and not x.get("tool_mode") and not x.get("use_responses_lite")), None)
    if m is None:
        raise AssertionError("no bundled Codex model with a freeform apply_patch tool")
    with open(path, "w") as f:
        json.dump({"models": [dict(m, slug="gpt-oss-20b", display_name="gpt-oss-20b")]}, f)


class CodexExec(RelayTestCase):
    """One `codex exec` turn pair per upstream form."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.codex = find_codex()
        if not cls.codex:
            # A setup error, not a reason to skip: tests/run.sh installs it.
            raise AssertionError("codex %s not found: run `npm ci` in %s (or set CODEX_BIN)"
                                 % (CODEX_VERSION, os.path.join(SOURCE_DIR, "tests", "node")))

    def run_codex(self, dialect, call=EXEC_CALL, catalog=False):
        script = Script()
        self.upstream.handler = codex_upstream(dialect, script, call)
        relay = self.start_relay(LOG_LEVEL="debug")
        tmp = tempfile.mkdtemp(prefix="codex-", dir=self.workdir)
        home, work = os.path.join(tmp, "codex-home"), os.path.join(tmp, "work")
        os.makedirs(home)
        os.makedirs(work)
        self.work = work
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp, "CODEX_HOME": home,
               "RELAY_TEST_API_KEY": "sk-relay-test", "LANG": "C.UTF-8", "TERM": "dumb", "NO_COLOR": "1"}
        config = CONFIG.format(port=relay.port)
        if catalog:
            make_catalog(self.codex, env, os.path.join(tmp, "catalog.json"))
            config = 'model_catalog_json = "%s"\n' % os.path.join(tmp, "catalog.json") + config
        with open(os.path.join(home, "config.toml"), "w") as f:
            f.write(config)
        last = os.path.join(tmp, "last.txt")
        cmd = [self.codex, "exec", "--strict-config", "--skip-git-repo-check",
               "--dangerously-bypass-approvals-and-sandbox", "--ephemeral", "--color", "never", "--json",
               "-o", last, "-C", work, "Run the command the tool asks for and report its output."]
        try:
            p = subprocess.run(cmd, env=env, cwd=work, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=CODEX_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            self.fail("codex exec did not finish within %.0f s; stderr: %s"
                      % (CODEX_TIMEOUT, (e.stderr or b"").decode("utf-8", "replace")[-2000:]))
        out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
        events = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        final = ""
        if os.path.exists(last):
            with open(last, encoding="utf-8") as f:
                final = f.read()
        ctx = "codex exit %d\n--- stdout\n%s\n--- stderr\n%s" % (p.returncode, out[-3000:], err[-3000:])
        return script, relay, p, events, final, ctx

    def check_round_trip(self, dialect):
        script, relay, p, events, final, ctx = self.run_codex(dialect)
        self.assertEqual(p.returncode, 0, ctx)
        # The upstream only ever saw chat completions: two turns.
        self.assertEqual([(r.method, r.target) for r in self.upstream.requests],
                         [("POST", "/v1/chat/completions")] * 2, ctx)
        first, second = script.bodies
        names = [t["function"]["name"] for t in first.get("tools", [])]
        self.assertIn("exec_command", names, "Codex's shell tool offered upstream, flattened")
        self.assertTrue(all(t.get("type") == "function" for t in first["tools"]), "hosted tools left out")
        self.assertIs(first.get("stream"), True)
        # Turn 2: the call as an assistant message, its output as a tool message.
        msgs = second["messages"]
        calls = [c for m in msgs if m.get("role") == "assistant" for c in (m.get("tool_calls") or [])]
        self.assertEqual([c["function"]["name"] for c in calls], ["exec_command"], ctx)
        self.assertEqual(json.loads(calls[0]["function"]["arguments"])["cmd"], CMD)
        tool = [m for m in msgs if m.get("role") == "tool"]
        self.assertEqual(len(tool), 1, ctx)
        self.assertEqual(tool[0]["tool_call_id"], calls[0]["id"])
        self.assertIn(MARKER, tool[0]["content"], "the command's output went back upstream")
        # Codex ran it, and its final answer carries the output.
        execs = [e["item"] for e in events
                 if e.get("type") == "item.completed" and e["item"].get("type") == "command_execution"]
        self.assertEqual(len(execs), 1, ctx)
        self.assertEqual(execs[0].get("exit_code"), 0, ctx)
        self.assertIn(MARKER, execs[0].get("aggregated_output", ""), ctx)
        self.assertIn(MARKER, final, ctx)
        messages = [e["item"]["text"] for e in events
                    if e.get("type") == "item.completed" and e["item"].get("type") == "agent_message"]
        self.assertTrue(any(MARKER in m for m in messages), ctx)
        self.assertTrue(any(e.get("type") == "turn.completed" for e in events), ctx)
        # Both turns through the bridge, answered 200.
        lines = relay.wait_access(2)
        self.assertEqual([(l["path"], l["status"]) for l in lines], [("/v1/responses", "200")] * 2)

    def check_two_turns(self, ctx, script, tool_name):
        """Two chat requests; turn 2 has the call as an assistant message and its output as
        a tool message (returned)."""
        self.assertEqual([(r.method, r.target) for r in self.upstream.requests],
                         [("POST", "/v1/chat/completions")] * 2, ctx)
        msgs = script.bodies[1]["messages"]
        calls = [c for m in msgs if m.get("role") == "assistant" for c in (m.get("tool_calls") or [])]
        self.assertEqual([c["function"]["name"] for c in calls], [tool_name], ctx)
        tool = [m for m in msgs if m.get("role") == "tool"]
        self.assertEqual(len(tool), 1, ctx)
        self.assertEqual(tool[0]["tool_call_id"], calls[0]["id"])
        return tool[0]["content"]

    def test_namespaced_tool_is_routed_by_codex(self):
        """multi_agent_v1/close_agent goes up flattened and must come back as name +
        namespace: Codex then runs the real tool (which refuses the made-up agent id)
        instead of answering "unsupported call"."""
        script, relay, p, events, final, ctx = self.run_codex("llamacpp", NAMESPACE_CALL)
        self.assertEqual(p.returncode, 0, ctx)
        names = [t["function"]["name"] for t in script.bodies[0]["tools"]]
        self.assertIn("multi_agent_v1__close_agent", names)
        out = self.check_two_turns(ctx, script, "multi_agent_v1__close_agent")
        self.assertIn("invalid agent id no-such-agent", out, ctx)
        self.assertNotIn("unsupported call", out)
        self.assertIn("invalid agent id", final, ctx)

    def test_freeform_apply_patch(self):
        """A model Codex knows gets the freeform apply_patch tool: offered upstream as a
        function with one string argument, called with {"input": patch}, it comes back as
        a custom_tool_call and Codex applies the patch."""
        script, relay, p, events, final, ctx = self.run_codex("llamacpp", PATCH_CALL, catalog=True)
        self.assertEqual(p.returncode, 0, ctx)
        fn = [t["function"] for t in script.bodies[0]["tools"] if t["function"]["name"] == "apply_patch"]
        self.assertEqual(len(fn), 1, "apply_patch offered upstream")
        self.assertEqual(list(fn[0]["parameters"]["properties"]), ["input"])
        out = self.check_two_turns(ctx, script, "apply_patch")
        self.assertIn("A hello.txt", out, ctx)
        with open(os.path.join(self.work, "hello.txt")) as f:
            self.assertEqual(f.read(), MARKER + "\n")
        changes = [e["item"] for e in events
                   if e.get("type") == "item.completed" and e["item"].get("type") == "file_change"]
        self.assertEqual(len(changes), 1, ctx)

    @unittest.skipUnless(harmony_tool_calls_landed(), NEEDS_ISSUE_11)
    def test_raw_harmony_tool_call(self):
        """LM Studio before 0.3.23: the call is harmony text in content."""
        self.check_round_trip("harmony")

    @unittest.skipUnless(harmony_tool_calls_landed(), NEEDS_ISSUE_11)
    def test_raw_harmony_mlx(self):
        """mlx_lm.server: harmony in content, a close-delimited stream with keep-alive comments."""
        self.check_round_trip("mlx")

    def test_parsed_tool_call_llamacpp(self):
        """llama-server --jinja: reasoning_content and tool_calls parsed by the server."""
        self.check_round_trip("llamacpp")


if __name__ == "__main__":
    unittest.main()
