-- What the relay's replacer can do, found by trying it (so Lua code works with
-- older and newer binaries alike). Results are computed once per Lua state.
--   anchored: a rule with `anchored = true` matches only where its state was
--             entered (the start of the text, or right after the previous match)
--   prefix:   a rule set's `prefix` string is emitted before the first output
local relay = require("relay")

local M = {}
local cache

local function run(rule_table, text)
  local ok, rs = pcall(relay.rules, rule_table)
  if not ok then return nil end
  local r = relay.replacer.new(rs)
  return r:feed(text) .. r:finish()
end

function M.get()
  if not cache then
    cache = {
      anchored = run({ states = { "a", "b" }, { from = "a", pattern = "xy", replace = "!", to = "b", anchored = true } }, "zxy") == "zxy",
      prefix = run({ prefix = "P", { pattern = "q", replace = "q" } }, "a") == "Pa",
    }
  end
  return cache
end

return M
