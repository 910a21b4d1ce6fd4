"""The metrics exposition read by Prometheus' own Python parser.

test_metrics --dump renders known values of two workers (see dump() in
test_metrics.c); this checks that prometheus_client (Debian's
python3-prometheus-client) parses it into the families, types, labels and
values expected, and that the text follows the 0.0.4 grammar line by line
(the parser alone is lenient about some of it)."""
import os
import re
import subprocess
import unittest

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:  # a missing dependency is a failure, not a skip
    raise SystemExit("prometheus_client is missing: apt-get install python3-prometheus-client (%s)" % e)

BIN = os.path.join(os.environ.get("RELAY_TEST_BIN_DIR", "../../../build/tests"), "test_metrics")

FAMILIES = {
    "relay_requests": "counter",
    "relay_upstream_ttfb_seconds": "histogram",
    "relay_upstream_duration_seconds": "histogram",
    "relay_client_connections": "gauge",
    "relay_open_streams": "gauge",
    "relay_client_received_bytes": "counter",
    "relay_client_sent_bytes": "counter",
    "relay_upstream_sent_bytes": "counter",
    "relay_upstream_received_bytes": "counter",
    "relay_rewritten_events": "counter",
    "relay_reasoning_blocks": "counter",
    "relay_tool_calls": "counter",
    "relay_upstream_server_up": "gauge",
    "relay_upstream_server_outstanding": "gauge",
    "relay_upstream_connect_failures": "counter",
    "relay_script_errors": "counter",
}

LE = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "120",
      "300", "600", "+Inf"]

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE_RE = re.compile(r"^(%s)(\{(?:%s=%s)(?:,%s=%s)*\})? (\S+)$" % (NAME, NAME, LABEL_VALUE, NAME, LABEL_VALUE))
FLOAT_RE = re.compile(r"^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$")


def dump():
    r = subprocess.run([BIN, "--dump"], capture_output=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("test_metrics --dump failed: %r" % r.stderr)
    return r.stdout.decode("utf-8")  # strict: the text must be valid UTF-8


class Exposition(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.text = dump()
        cls.families = {f.name: f for f in text_string_to_metric_families(cls.text)}

    def value(self, family, sample_name, **labels):
        found = [s.value for s in self.families[family].samples if s.name == sample_name and s.labels == labels]
        self.assertEqual(len(found), 1, "%s %r: %d samples" % (sample_name, labels, len(found)))
        return found[0]

    def test_families_and_types(self):
        self.assertEqual({n: f.type for n, f in self.families.items()}, FAMILIES)
        for f in self.families.values():
            self.assertTrue(f.documentation, f.name)

    def test_requests_by_route_method_code(self):
        v = lambda route, method, code: self.value("relay_requests", "relay_requests_total", route=route,
                                                   method=method, code=code)
        self.assertEqual(v("POST /v1/chat/completions", "POST", "200"), 10)
        self.assertEqual(v("POST /v1/chat/completions", "POST", "429"), 1)
        # Escaped quote, backslash and newline come back as they were.
        self.assertEqual(v('we"ird\\route\nname', "GET", "404"), 1)
        self.assertEqual(v("(script)", "OPTIONS", "204"), 1)
        self.assertEqual(v("(none)", "other", "4xx"), 1)
        self.assertEqual(v("(none)", "HEAD", "other"), 1)
        # Series that were never counted are not listed.
        self.assertEqual(len(self.families["relay_requests"].samples), 6)

    def test_histograms(self):
        f = self.families["relay_upstream_ttfb_seconds"]
        buckets = [(s.labels["le"], s.value) for s in f.samples
                   if s.name.endswith("_bucket") and s.labels["upstream"] == "default"]
        self.assertEqual([le for le, _ in buckets], LE)
        # 3.25 ms, 5 ms (on the bound: le is inclusive), 12 ms, 480 ms, 2.5 s, 61 s
        want = [2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 5, 5, 5, 6, 6, 6, 6]
        self.assertEqual([v for _, v in buckets], want)
        self.assertEqual(self.value(f.name, f.name + "_count", upstream="default"), 6)
        self.assertAlmostEqual(self.value(f.name, f.name + "_sum", upstream="default"), 64.00025, places=9)
        # Above the last bound: only +Inf; the UTF-8 upstream name survives.
        self.assertEqual(self.value(f.name, f.name + "_bucket", upstream="modèle", le="600"), 0)
        self.assertEqual(self.value(f.name, f.name + "_bucket", upstream="modèle", le="+Inf"), 1)
        self.assertEqual(self.value(f.name, f.name + "_sum", upstream="modèle"), 601)
        d = self.families["relay_upstream_duration_seconds"]
        self.assertEqual(self.value(d.name, d.name + "_count", upstream="default"), 6)
        self.assertAlmostEqual(self.value(d.name, d.name + "_sum", upstream="default"), 640.0025, places=9)
        self.assertEqual(self.value(d.name, d.name + "_bucket", upstream="default", le="0.05"), 2)
        self.assertEqual(self.value(d.name, d.name + "_count", upstream="modèle"), 0)

    def test_scalars(self):
        self.assertEqual(self.value("relay_client_connections", "relay_client_connections"), 7)
        self.assertEqual(self.value("relay_open_streams", "relay_open_streams"), 3)
        self.assertEqual(self.value("relay_client_received_bytes", "relay_client_received_bytes_total"), 123456)
        self.assertEqual(self.value("relay_client_sent_bytes", "relay_client_sent_bytes_total"), 2.0 ** 64 - 1)
        self.assertIn("\nrelay_client_sent_bytes_total 18446744073709551615\n", self.text)
        self.assertEqual(self.value("relay_rewritten_events", "relay_rewritten_events_total"), 42)
        self.assertEqual(self.value("relay_reasoning_blocks", "relay_reasoning_blocks_total"), 3)
        self.assertEqual(self.value("relay_tool_calls", "relay_tool_calls_total"), 4)
        self.assertEqual(self.value("relay_script_errors", "relay_script_errors_total"), 1)

    def test_upstreams_and_servers(self):
        u = lambda fam, name, **kw: self.value(fam, name, **kw)
        self.assertEqual(u("relay_upstream_sent_bytes", "relay_upstream_sent_bytes_total", upstream="default"), 300)
        self.assertEqual(u("relay_upstream_sent_bytes", "relay_upstream_sent_bytes_total", upstream="modèle"), 5)
        self.assertEqual(u("relay_upstream_received_bytes", "relay_upstream_received_bytes_total",
                           upstream="default"), 4000)
        up = lambda up, srv: u("relay_upstream_server_up", "relay_upstream_server_up", upstream=up, server=srv)
        self.assertEqual(up("default", "127.0.0.1:1234"), 1)
        self.assertEqual(up("default", "[::1]:1235"), 0)  # one worker has it down
        self.assertEqual(up("modèle", "gpu-2:8000"), 1)
        self.assertEqual(u("relay_upstream_server_outstanding", "relay_upstream_server_outstanding",
                           upstream="default", server="127.0.0.1:1234"), 3)
        self.assertEqual(u("relay_upstream_connect_failures", "relay_upstream_connect_failures_total",
                           upstream="default", server="[::1]:1235"), 2)

    def test_grammar(self):
        """Line by line: HELP then TYPE once per family before its samples,
        samples only of the current family, well-formed labels and values,
        no series twice, cumulative buckets ending in +Inf == _count."""
        self.assertTrue(self.text.endswith("\n"))
        seen_types, series = set(), set()
        current, ctype = None, None
        last_bucket, inf = {}, {}
        for line in self.text.split("\n")[:-1]:
            if line.startswith("# HELP "):
                name = line.split(" ")[2]
                self.assertNotIn(name, seen_types)
                continue
            if line.startswith("# TYPE "):
                _, _, name, t = line.split(" ")
                self.assertNotIn(name, seen_types)
                self.assertIn(t, ("counter", "gauge", "histogram"))
                seen_types.add(name)
                current, ctype = name, t
                continue
            self.assertFalse(line.startswith("#"), line)
            m = SAMPLE_RE.match(line)
            self.assertIsNotNone(m, "malformed sample line: %r" % line)
            name, labels, value = m.group(1), m.group(2) or "", m.group(3)
            self.assertRegex(value, FLOAT_RE)
            allowed = {current} if ctype != "histogram" else {current + s for s in ("_bucket", "_sum", "_count")}
            self.assertIn(name, allowed, line)
            self.assertNotIn((name, labels), series, "duplicate series " + line)
            series.add((name, labels))
            if name.endswith("_bucket"):
                key = (name, re.sub(r',?le="[^"]*"', "", labels))
                self.assertGreaterEqual(float(value), last_bucket.get(key, 0), line)
                last_bucket[key] = float(value)
                if 'le="+Inf"' in labels:
                    inf[(current, key[1])] = float(value)
            elif name.endswith("_count") and ctype == "histogram":
                self.assertEqual(inf[(current, labels)], float(value), line)
        self.assertEqual(len(seen_types), len(FAMILIES))


if __name__ == "__main__":
    unittest.main()
