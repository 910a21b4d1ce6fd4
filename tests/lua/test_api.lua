local dir = os.getenv("RELAY_LUA_TESTS") or (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".")
local T = dofile(dir .. "/testlib.lua")
-- The relay module as implemented in C: every function, its results and its
-- errors (see lua/API.md). Runs in the --run state, where declarations go to
-- a scratch configuration that is thrown away.
local relay = require("relay")

-- relay.version / relay.getenv / relay.log
T.ok(type(relay.version) == "string" and relay.version:match("^%d+%.%d+%.%d+"), "version")
T.eq(relay.getenv("RELAY_SURELY_UNSET_VARIABLE_42"), nil, "unset variable")
T.eq(type(relay.getenv("PATH")), "string", "PATH is set")
T.raises("bad argument #1", relay.getenv)
relay.log("debug", "test_api: a debug line")
T.raises("unknown log level 'loud'", relay.log, "loud", "x")
T.raises("bad argument #2", relay.log, "info")

-- relay.listen
relay.listen({ addr = "127.0.0.1", port = 18080 })
relay.listen({ addr = "::1" })
relay.listen({})
T.raises("is not an IPv4 or IPv6 address", relay.listen, { addr = "localhost" })
T.raises("port must be an integer from 1 to 65535", relay.listen, { port = 0 })
T.raises("port must be an integer from 1 to 65535", relay.listen, { port = 1.5 })
T.raises("addr must be a string", relay.listen, { addr = 1 })
T.raises("table expected", relay.listen, 8080)

-- relay.upstream returns the name
T.eq(relay.upstream({ host = "127.0.0.1", port = 1234 }), "default", "default name")
T.eq(relay.upstream({ name = "gpu", host = "gpu.internal", port = 8000 }), "gpu", "named")
T.eq(relay.upstream({ name = "v6", host = "[::1]", port = 8001 }), "v6", "bracketed IPv6")
T.eq(relay.upstream({ name = "gpu", host = "10.0.0.2", port = 8000 }), "gpu", "redeclared")
T.raises("upstream 'x' needs a host", relay.upstream, { name = "x", port = 1 })
T.raises("upstream 'x' needs a port", relay.upstream, { name = "x", host = "h" })
T.raises("port must be an integer from 1 to 65535", relay.upstream, { name = "x", host = "h", port = 65536 })
T.raises("upstream name must be 1 to 63 characters", relay.upstream, { name = string.rep("n", 64), host = "h", port = 1 })
T.raises("is malformed", relay.upstream, { name = "x", host = "[::1", port = 1 })
-- several servers: a list or one comma-separated string, with the health settings
T.eq(relay.upstream({ name = "pool", servers = { "10.0.0.1:8000", "[fe80::1]:8000" } }), "pool", "servers list")
T.eq(relay.upstream({ name = "pool2", servers = "a:1, b:2", health_path = "/health", health_interval = 0.5,
  health_timeout = 1 }), "pool2", "servers string")
T.eq(relay.upstream({ name = "pool3", host = "h", port = 1, health_interval = 0 }), "pool3", "checks off")
T.raises("give servers or host and port, not both", relay.upstream, { servers = { "a:1" }, host = "a" })
T.raises("servers is empty", relay.upstream, { servers = {} })
T.raises("servers[2] repeats servers[1]", relay.upstream, { servers = { "a:1", "A:1" } })
T.raises('servers[1]: server 1 "a": missing ":port"', relay.upstream, { servers = { "a" } })
T.raises("servers[1] must be a \"host:port\" string", relay.upstream, { servers = { 80 } })
T.raises("more than 16 servers", relay.upstream, { servers = (function()
  local t = {} for i = 1, 17 do t[i] = "h:" .. i end return t end)() })
T.raises("unknown field 'sever'", relay.upstream, { host = "h", port = 1, sever = "x" })
T.raises("health_path must start with '/'", relay.upstream, { host = "h", port = 1, health_path = "x" })
T.raises("health_path must not contain spaces", relay.upstream, { host = "h", port = 1, health_path = "/a b" })
T.raises("health_interval must be 0 (off) or at least 0.1 seconds", relay.upstream,
  { host = "h", port = 1, health_interval = 0.05 })
T.raises("health_timeout must be 0.01 to 600 seconds", relay.upstream, { host = "h", port = 1, health_timeout = 0 })

-- relay.admin
relay.admin({ port = 9090 })
relay.admin({ addr = "[::1]", port = 0 })
relay.admin({ addr = "0.0.0.0" })
T.raises("admin addr 'localhost' is not an IPv4 or IPv6 address", relay.admin, { addr = "localhost" })
T.raises("port must be an integer from 0 to 65535", relay.admin, { port = 65536 })
T.raises("table expected", relay.admin, 9090)

-- relay.settings
relay.settings({ connect_timeout = 2.5, idle_timeout = 0, workers = 0, max_header_size = 8192, log_level = "info" })
T.raises("unknown setting 'conect_timeout'", relay.settings, { conect_timeout = 1 })
T.raises("connect_timeout must be a number of seconds >= 0", relay.settings, { connect_timeout = -1 })
T.raises("workers must be an integer from 0 to 256", relay.settings, { workers = 257 })
T.raises("max_header_size must be an integer from 1024", relay.settings, { max_header_size = 10 })
T.raises("log_level 'loud' is not one of error, warn, info, debug", relay.settings, { log_level = "loud" })

-- relay.rules
local rs = relay.rules({
  states = { "outside", "inside" },
  reasoning = { "inside" },
  { from = "outside", pattern = "<t>", replace = "[", to = "inside" },
  { from = "inside", pattern = "</t>", replace = "]", to = "outside" },
})
T.eq(tostring(rs):match("^relay.ruleset"), "relay.ruleset", "a ruleset userdata")
-- states by number, `to` defaults to `from`, `replace` defaults to ""
local byn = relay.rules({ { from = 0, pattern = "a", to = 1 }, { from = 1, pattern = "b" } })
T.eq(T.run(byn, { "xaybb" }), "xy", "numbered states, default replace")
T.raises("table expected", relay.rules, "x")
T.raises("a rule set needs at least one rule", relay.rules, {})
T.raises("rule 1 must be a table", relay.rules, { "x" })
T.raises("rule 1: pattern must be a string", relay.rules, { { replace = "x" } })
T.raises("rule 2: replace must be a string", relay.rules, { { pattern = "a" }, { pattern = "b", replace = {} } })
T.raises("rule 1: from must be a state name from 'states' or a number", relay.rules, { { pattern = "a", from = "outside" } })
T.raises("rule 1: unknown state 'nowhere'", relay.rules, { states = { "a" }, { pattern = "a", to = "nowhere" } })
T.raises("rule 1: to state 16 out of range 0..15", relay.rules, { { pattern = "a", to = 16 } })
T.raises("invalid rule set", relay.rules, { { pattern = "" } })
T.raises("invalid rule set", relay.rules, { { pattern = string.rep("x", 1025) } })
local many = {}
for i = 1, 65 do many[i] = { pattern = "p" .. i } end
T.raises("too many rules (at most 64)", relay.rules, many)
T.raises("rule 1: unknown state 'x'", relay.rules, { states = { "a", "b" }, reasoning = { "x" }, { pattern = "q", to = "b" } })

-- relay.replacer
local r = relay.replacer.new(rs)
T.eq(r:state(), 0, "starts in state 0")
T.eq(r:feed("a<t"), "a", "prefix held")
T.eq(r:pending(), 2, "pending")
T.eq(r:feed(">x"), "[x", "match")
T.eq(r:state(), 1, "moved to inside")
T.eq(r:feed("</"), "", "held")
T.eq(r:finish(), "</", "finish releases what is held")
T.eq(r:state(), 1, "finish keeps the state")
T.eq(r:feed("</t>y"), "]y", "feedable after finish")
local rf = relay.replacer.new(rs, { mode = "field" })
local c, z = rf:feed("a<t>b</t>c")
T.eq(c, "ac", "field content")
T.eq(z, "b", "field reasoning")
c, z = rf:finish()
T.eq(c .. z, "", "field finish gives two empty strings")
T.eq(select("#", relay.replacer.new(rs):feed("x")), 1, "tags mode returns one value")
T.eq(relay.replacer.new(rs, { mode = "strip" }):feed("a<t>b</t>c"), "ac", "strip")
-- reasoning defaults to every state but the first
local dflt = relay.rules({ { from = 0, pattern = "<", to = 1 }, { from = 1, pattern = ">", to = 0 } })
local d1, d2 = relay.replacer.new(dflt, { mode = "field" }):feed("a<b>c")
T.eq(d1 .. "|" .. d2, "ac|b", "default reasoning states")
T.raises("relay.ruleset expected", relay.replacer.new, {})
T.raises("mode 'x' is not one of tags, field, strip", relay.replacer.new, rs, { mode = "x" })
T.raises("string expected", r.feed, r, nil)
T.eq(r:feed(5), "5", "numbers are fed as strings")

-- relay.json.get
local doc = '{"id":"c1","choices":[{"index":0,"message":{"role":"assistant","content":"A\\/B"}}],"usage":{"n":1.50}}'
T.eq(relay.json.get(doc, { "choices", 1, "message", "content" }), '"A\\/B"', "get string (raw JSON)")
T.eq(relay.json.get(doc, { "usage", "n" }), "1.50", "get number as written")
T.eq(relay.json.get(doc, { "choices" }), '[{"index":0,"message":{"role":"assistant","content":"A\\/B"}}]', "get array")
T.eq(relay.json.get(doc, { "nope" }), nil, "missing key")
T.eq(relay.json.get(doc, { "choices", 2 }), nil, "missing index")
T.eq(relay.json.get('{"a":1,"a":2}', { "a" }), "2", "last duplicate key wins")
T.eq(relay.json.get('{"\\u0061":1}', { "a" }), "1", "keys matched decoded")
T.raises("relay.json.get: invalid JSON", relay.json.get, "{", { "a" })
T.raises("path must have 1 to 32 elements", relay.json.get, "{}", {})
T.raises("path element 1: array positions start at 1", relay.json.get, "[1]", { 0 })
T.raises("path element 1 must be a string or a number", relay.json.get, "{}", { true })
T.raises("table expected", relay.json.get, "{}", "a")

-- relay.json.set / set_raw / remove: lossless edits
T.eq(relay.json.set(doc, { "choices", 1, "message", "content" }, "x/\"y\"\n"),
  '{"id":"c1","choices":[{"index":0,"message":{"role":"assistant","content":"x/\\"y\\"\\n"}}],"usage":{"n":1.50}}', "set string")
T.eq(relay.json.set('{"a": 1, "b": 2}', { "c" }, true), '{"a": 1, "b": 2, "c": true}', "insert copies separators")
T.eq(relay.json.set('{}', { "n" }, 42), '{"n":42}', "set integer into an empty object")
T.eq(relay.json.set('{}', { "f" }, 0.5), '{"f":0.5}', "set float")
T.eq(relay.json.set('{"a":[1,2]}', { "a", 2 }, "two"), '{"a":[1,"two"]}', "set array element")
T.eq(relay.json.set('{}', { "t" }, { 1, 2 }), '{"t":[1,2]}', "set table via cjson")
T.raises("path must have 1 to 32 elements", relay.json.set, "{}", {}, 1)
local nd, err = relay.json.set('{"a":[1,2]}', { "a", 3 }, 1)
T.eq(nd, nil, "set past the end of an array")
T.eq(err, "path not found", "its error")
nd, err = relay.json.set("{", { "a" }, 1)
T.eq(nd, nil, "set on invalid JSON")
T.ok(err:find("invalid JSON", 1, true), "its error")
nd, err = relay.json.set('{"a":1}', { "a", "b" }, 1)
T.eq(nd, nil, "missing intermediate step")
T.raises("relay.json.set: cannot encode a function", relay.json.set, "{}", { "a" }, print)
T.raises("relay.json.set: cannot encode a nil", relay.json.set, "{}", { "a" }, nil)
T.eq(relay.json.set_raw('{"a":1,"b":2}', { "a" }, '{"deep": [ ]}'), '{"a":{"deep": [ ]},"b":2}', "set_raw")
T.raises("string expected", relay.json.set_raw, "{}", { "a" })
T.eq(relay.json.remove('{"a":1, "b":2}', { "a" }), '{"b":2}', "remove first member")
T.eq(relay.json.remove('{"a":1, "b":2}', { "b" }), '{"a":1}', "remove last member")
T.eq(relay.json.remove('[1,2,3]', { 2 }), '[1,3]', "remove element")
nd, err = relay.json.remove('{"a":1}', { "z" })
T.eq(nd, nil, "remove missing key")
T.eq(err, "path not found", "its error")

-- relay.json.edit: a batch, every path read in the document as given
local chat = '{"model":"m","messages":[{"role":"user","content":"hi"},' ..
  '{"role":"assistant","content":"<think>x</think>a","reasoning":"r"},{"role":"assistant","content":"b"}],"n":1.50}'
local edits = {
  { path = { "messages", 2, "content" }, value = "a" },
  { path = { "messages", 2, "reasoning" }, remove = true },
  { path = { "messages", 3 }, remove = true },
  { path = { "model" }, raw = '"x/y"' },
  { path = { "extra" }, value = { 1, 2 } },
  { path = { "n" }, value = 2.5 },
}
local want = '{"model":"x/y","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"a"}],' ..
  '"n":2.5,"extra":[1,2]}'
T.eq(relay.json.edit(chat, edits), want, "edit: sets, removals, raw, insert")
-- the same result whatever the order of the list
local perm = { edits[6], edits[3], edits[1], edits[5], edits[4], edits[2] }
T.eq(relay.json.edit(chat, perm), want, "edit: order does not matter")
-- and the same as one relay.json.set / remove after another (object keys: paths do not shift)
local seq = chat
seq = relay.json.set(seq, { "messages", 2, "content" }, "a")
seq = relay.json.remove(seq, { "messages", 2, "reasoning" })
seq = relay.json.remove(seq, { "messages", 3 })
seq = relay.json.set_raw(seq, { "model" }, '"x/y"')
seq = relay.json.set(seq, { "n" }, 2.5)
seq = relay.json.set(seq, { "extra" }, { 1, 2 })
T.eq(relay.json.edit(chat, edits), seq, "edit: as the single edits one by one")
-- array positions are those of the document as given
T.eq(relay.json.edit("[1,2,3,4]", { { path = { 1 }, remove = true }, { path = { 2 }, remove = true },
  { path = { 4 }, value = "four" } }), '[3,"four"]', "edit: positions do not shift")
T.eq(relay.json.edit(' {"a":1} ', {}), ' {"a":1} ', "edit: no edits")
nd, err = relay.json.edit(chat, { { path = { "model" }, value = 1 }, { path = { "zz", "q" }, value = 1 } })
local _, _, idx = relay.json.edit(chat, { { path = { "model" }, value = 1 }, { path = { "zz", "q" }, value = 1 } })
T.eq(nd, nil, "edit: a missing path fails the batch")
T.eq(err, "path not found", "its error")
T.eq(idx, 2, "and the edit it was")
nd, err, idx = relay.json.edit(chat, { { path = { "messages", 2 }, remove = true }, { path = { "model" }, value = 1 },
  { path = { "messages", 2, "content" }, value = "" } })
T.eq(nd, nil, "edit: nested paths")
T.eq(err, "edits overlap", "its error")
T.eq(idx, 3, "the later of the two")
nd, err, idx = relay.json.edit(chat, { { path = { "model" }, value = 1 }, { path = { "model" }, value = 2 } })
T.eq(err, "edits overlap", "edit: the same path twice")
nd, err = relay.json.edit("{", { { path = { "a" }, value = 1 } })
T.ok(err:find("invalid JSON", 1, true), "edit: invalid JSON")
T.raises("relay.json.edit: edit 2 must be a table", relay.json.edit, "{}", { { path = { "a" }, value = 1 }, 5 })
T.raises("relay.json.edit: edit 1: needs one of value, raw or remove = true", relay.json.edit, "{}", { { path = { "a" } } })
T.raises("relay.json.edit: edit 1: needs one of value, raw or remove = true", relay.json.edit, "{}",
  { { path = { "a" }, value = 1, remove = true } })
T.raises("relay.json.edit: edit 1: path must be a table", relay.json.edit, "{}", { { value = 1 } })
T.raises("relay.json.edit: edit 1: path must have 1 to 32 elements", relay.json.edit, "{}", { { path = {}, value = 1 } })
T.raises("relay.json.edit: edit 1: path element 1: array positions start at 1", relay.json.edit, "[1]",
  { { path = { 0 }, value = 1 } })
T.raises("relay.json.edit: edit 1: path element 1 must be a string or a number", relay.json.edit, "{}",
  { { path = { true }, value = 1 } })
T.raises("relay.json.edit: edit 1: cannot encode a function", relay.json.edit, "{}", { { path = { "a" }, value = print } })
T.raises("relay.json.edit: edit 1: raw must be a string", relay.json.edit, "{}", { { path = { "a" }, raw = 1 } })
T.raises("table expected", relay.json.edit, "{}", "a")

-- relay.json.string
T.eq(relay.json.string('a"b\\c\n/é\1'), '"a\\"b\\\\c\\n/é\\u0001"', "string escapes")
T.eq(relay.json.string(""), '""', "empty string")
T.raises("string expected", relay.json.string, {})

-- relay.route and relay.on_request (declarations only here)
local up = relay.upstream({ name = "r", host = "127.0.0.1", port = 9 })
relay.route({ method = "POST", path = "/v1/chat/completions", upstream = up, rewrite = { rules = rs, mode = "field", field = "both" } })
relay.route({ path = "/v1/*", upstream = "r" })
relay.route({ path = "/health" })
T.raises("path must start with '/'", relay.route, { path = "v1" })
T.raises("unknown upstream 'nope' (declare it first)", relay.route, { path = "/x", upstream = "nope" })
T.raises("rewrite mode 'q' is not one of tags, field, strip", relay.route, { path = "/x", rewrite = { rules = rs, mode = "q" } })
T.raises("is not a usable JSON key", relay.route, { path = "/x", rewrite = { rules = rs, mode = "field", field = 'a"b' } })
T.raises("rewrite.rules must be a rule set from relay.rules{...}", relay.route, { path = "/x", rewrite = { rules = "think" } })
T.raises("table expected", relay.route, "/x")
-- the harmony parser, tool calls, the upstream's reasoning members, the tags
relay.route({ path = "/h1", rewrite = { parser = "harmony", tool_calls = false, mode = "field", field = "reasoning",
  upstream_reasoning = { "reasoning_content", "thinking" }, open_tag = "[R]", close_tag = "[/R]" } })
relay.route({ path = "/h2", rewrite = { parser = "harmony", upstream_reasoning = false } })
relay.route({ path = "/h3", rewrite = { rules = rs, parser = "rules", upstream_reasoning = {} } })
T.raises("rewrite parser 'x' is not one of harmony, rules", relay.route, { path = "/x", rewrite = { parser = "x" } })
T.raises("rewrite.tool_calls must be a boolean", relay.route, { path = "/x", rewrite = { parser = "harmony", tool_calls = 1 } })
T.raises("rewrite.upstream_reasoning must be a list of member names or false", relay.route,
  { path = "/x", rewrite = { parser = "harmony", upstream_reasoning = "reasoning" } })
T.raises("names at most 2 members", relay.route,
  { path = "/x", rewrite = { parser = "harmony", upstream_reasoning = { "a", "b", "c" } } })
T.raises("rewrite.upstream_reasoning[1] is not a usable JSON key", relay.route,
  { path = "/x", rewrite = { parser = "harmony", upstream_reasoning = { 'a"b' } } })
T.raises("rewrite.upstream_reasoning[2] is not a usable JSON key", relay.route,
  { path = "/x", rewrite = { parser = "harmony", upstream_reasoning = { "a", 7 } } })
T.raises("rewrite.open_tag must be a string of at most 255 bytes", relay.route,
  { path = "/x", rewrite = { parser = "harmony", open_tag = string.rep("x", 256) } })
T.raises("rewrite.close_tag must be a string of at most 255 bytes", relay.route,
  { path = "/x", rewrite = { parser = "harmony", close_tag = "a\0b" } })
relay.on_request(function(req) return nil end)
relay.on_request(function(req) return nil end, { body = true })
T.raises("function expected", relay.on_request, {})

-- per-route hooks (lead's API): accepted when the build has them
local hooks_ok = pcall(relay.route, { path = "/hooks", rewrite = { rules = rs, on_text = function() end, on_end = function() end },
  on_request = function() end, body = true })
if hooks_ok then
  T.raises("rewrite.on_text must be a function", relay.route, { path = "/x", rewrite = { rules = rs, on_text = 1 } })
  T.raises("on_request must be a function", relay.route, { path = "/x", on_request = "f" })
  relay.route({ path = "/nohooks", rewrite = { on_event = function() end } }) -- hooks without rules
else
  io.write("test_api: per-route hooks not in this build; skipped\n")
end

T.done("test_api")

-- Numbers are written in their shortest round-trip form; cjson.null writes null.
T.eq(relay.json.set('{}', { "f" }, 0.1), '{"f":0.1}', "shortest float")
T.eq(relay.json.set('{}', { "n" }, require("cjson").null), '{"n":null}', "cjson.null")
-- A rule set's prefix leads the first output of each replacer.
do
  local rs = relay.rules({ prefix = "<think>", states = { "in", "out" }, reasoning = { "in" },
    { from = "in", pattern = "</think>", replace = "</think>", to = "out" } })
  local r = relay.replacer.new(rs)
  T.eq(r:feed("abc</th") .. r:feed("ink>x") .. r:finish(), "<think>abc</think>x", "prefix")
end
