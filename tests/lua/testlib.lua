-- Helpers shared by the Lua tests (loaded with dofile; not a test itself).
-- Tests run inside the relay binary: oss-relay --run tests/lua/test_x.lua
local relay = require("relay")

local T = {}

-- relay.formats is lua/relay/formats/init.lua; until the binary's embedder maps
-- "x.init" to "x", alias the embedded name.
if not package.preload["relay.formats"] and package.preload["relay.formats.init"] then
  package.preload["relay.formats"] = package.preload["relay.formats.init"]
end

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

function T.eq(got, want, what)
  if got ~= want then
    error(string.format("%s: got %s, want %s", what or "value", show(got), show(want)), 2)
  end
end

function T.ok(cond, what)
  if not cond then error((what or "condition") .. " failed", 2) end
end

-- Calls f(...) and expects an error whose message contains `needle` (plain).
function T.raises(needle, f, ...)
  local ok, err = pcall(f, ...)
  if ok then error(string.format("expected an error containing %q, got success", needle), 2) end
  err = tostring(err)
  if not err:find(needle, 1, true) then
    error(string.format("expected an error containing %q, got %q", needle, err), 2)
  end
  return err
end

-- Feeds pieces to a new replacer; returns content, reasoning (whole text).
function T.run(rs, pieces, mode)
  local r = relay.replacer.new(rs, { mode = mode or "tags" })
  local c, z = {}, {}
  local function put(a, b)
    c[#c + 1] = a
    z[#z + 1] = b or ""
  end
  for _, p in ipairs(pieces) do put(r:feed(p)) end
  put(r:finish())
  return table.concat(c), table.concat(z)
end

-- The same text through every way of cutting it that the tests use: whole,
-- one byte at a time, at every single split point, and at 64 deterministic
-- pseudo-random multi-cuts. Each must give want_content (and want_reasoning
-- in field mode).
function T.all_splits(rs, text, mode, want_content, want_reasoning, what)
  what = what or "text"
  local function check(pieces, how)
    local c, z = T.run(rs, pieces, mode)
    if c ~= want_content then
      error(string.format("%s (%s, %s): content %q, want %q", what, mode or "tags", how, c, want_content), 3)
    end
    if want_reasoning and z ~= want_reasoning then
      error(string.format("%s (%s, %s): reasoning %q, want %q", what, mode or "tags", how, z, want_reasoning), 3)
    end
  end
  check({ text }, "whole")
  local bytes = {}
  for i = 1, #text do bytes[i] = text:sub(i, i) end
  check(bytes, "byte by byte")
  for k = 0, #text do check({ text:sub(1, k), text:sub(k + 1) }, "split at " .. k) end
  local seed = 12345
  local function rnd(n)
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed % n
  end
  for round = 1, 64 do
    local pieces, i = {}, 1
    while i <= #text do
      local n = 1 + rnd(8)
      pieces[#pieces + 1] = text:sub(i, i + n - 1)
      i = i + n
    end
    check(pieces, "random cuts " .. round)
  end
end

-- Token-per-event stream: checks the pieces and their concatenation.
function T.stream(rs, tokens, mode, want_content, want_reasoning, what)
  local c, z = T.run(rs, tokens, mode)
  T.eq(c, want_content, (what or "stream") .. " content (" .. (mode or "tags") .. ")")
  if want_reasoning then T.eq(z, want_reasoning, (what or "stream") .. " reasoning (" .. (mode or "tags") .. ")") end
  T.all_splits(rs, table.concat(tokens), mode, want_content, want_reasoning, what)
end

function T.done(name)
  io.write(name, ": ok\n")
end

return T
