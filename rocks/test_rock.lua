-- Tests of the installed rock in plain Lua 5.4 (run by rocks/check.sh):
-- the `relay` C module, then the repository's own Lua tests for the presets,
-- format selection, history hygiene and examples, unchanged.
--
--   RELAY_LUA_TESTS=tests/lua lua5.4 rocks/test_rock.lua
-- Optional: RELAY_ROCK_TREE (modules must come from there),
-- RELAY_EXPECT_VERSION (relay.version must equal it).
local relay = require("relay")

local function check(cond, msg)
  if not cond then error(msg, 2) end
end

local function raises(needle, f, ...)
  local ok, err = pcall(f, ...)
  check(not ok, "expected an error containing " .. needle)
  check(tostring(err):find(needle, 1, true), string.format("error %q lacks %q", tostring(err), needle))
end

-- modules come from the installed tree, not from the source checkout
local tree = os.getenv("RELAY_ROCK_TREE")
if tree then
  for _, m in ipairs({ "relay.env", "relay.history", "relay.formats", "relay.formats.think", "relay.formats.pair" }) do
    local p = package.searchpath(m, package.path)
    check(p and p:sub(1, #tree) == tree, m .. " not from the rock tree: " .. tostring(p))
  end
  local so = package.searchpath("relay", package.cpath)
  check(so and so:sub(1, #tree) == tree, "relay C module not from the rock tree: " .. tostring(so))
end

-- the module: what it has and what it refuses
check(relay.standalone == true, "relay.standalone")
local want_version = os.getenv("RELAY_EXPECT_VERSION")
check(type(relay.version) == "string", "relay.version")
if want_version then check(relay.version == want_version, "version " .. relay.version .. " ~= " .. want_version) end
for _, f in ipairs({ "rules", "getenv", "log" }) do check(type(relay[f]) == "function", "relay." .. f) end
check(type(relay.replacer.new) == "function", "relay.replacer.new")
for _, f in ipairs({ "get", "set", "set_raw", "remove", "string" }) do check(type(relay.json[f]) == "function", "relay.json." .. f) end
for _, f in ipairs({ "listen", "upstream", "settings", "route", "on_request" }) do
  raises("relay." .. f .. " is only available in a script run by oss-relay", relay[f], {})
end
check(relay.getenv("RELAY_SURELY_UNSET_VARIABLE_42") == nil, "getenv unset")
check(relay.getenv("PATH") == os.getenv("PATH"), "getenv PATH")
raises("unknown log level 'loud'", relay.log, "loud", "x")
relay.log("debug", "filtered out at the default level")

-- the same semantics as inside the binary (src/lua/text.c, compiled unchanged)
local rs = relay.rules({
  states = { "outside", "inside" },
  reasoning = { "inside" },
  { from = "outside", pattern = "<t>", replace = "[", to = "inside" },
  { from = "inside", pattern = "</t>", replace = "]", to = "outside" },
})
local r = relay.replacer.new(rs)
check(r:feed("a<t") == "a" and r:pending() == 2, "hold back")
check(r:feed(">x</t>y") == "[x]y" and r:state() == 0, "match")
local c, z = relay.replacer.new(rs, { mode = "field" }):feed("a<t>b</t>c")
check(c == "ac" and z == "b", "field mode")
raises("a rule set needs at least one rule", relay.rules, {})
raises("mode 'x' is not one of tags, field, strip", relay.replacer.new, rs, { mode = "x" })
check(relay.json.set('{"a": 1, "b": [ ]}', { "c" }, "é/") == '{"a": 1, "b": [ ], "c": "é/"}', "json.set lossless")
check(relay.json.set("{}", { "t" }, { 1, 2 }) == '{"t":[1,2]}', "json.set table (cjson)")
check(relay.json.get('{"n":1.50}', { "n" }) == "1.50", "json.get raw")
raises("relay.json.get: invalid JSON", relay.json.get, "{", { "a" })
check(relay.json.string("a\"\n") == '"a\\"\\n"', "json.string")

-- the repository's Lua tests that do not need a running relay
local dir = os.getenv("RELAY_LUA_TESTS")
if dir then
  for _, t in ipairs({ "test_formats.lua", "test_formats_select.lua", "test_history.lua", "test_examples.lua" }) do
    dofile(dir .. "/" .. t)
  end
else
  io.write("test_rock: RELAY_LUA_TESTS not set; shared tests skipped\n")
end

io.write("test_rock: ok\n")
