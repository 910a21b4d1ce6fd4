-- A script that never finishes loading, or eats its memory at load
-- (tests/integration/test_security_lua.py). LOAD_FAULT picks the fault; each
-- fault's line is marked FAULT-<name> for the test to find.
local relay = require("relay")
relay.listen({ addr = "127.0.0.1", port = tonumber(os.getenv("LISTEN_PORT")) })
relay.upstream({ name = "a", host = "127.0.0.1", port = 9 })
-- pcall: a relay without these settings still runs the script
pcall(relay.settings, { script_timeout = 0.1, script_memory = 16 * 1024 * 1024 })

local fault = os.getenv("LOAD_FAULT")
local function forever() while true do end end
if fault == "plain" then
  while true do end -- FAULT-plain
elseif fault == "pcall" then
  while true do pcall(function() while true do end end) end -- FAULT-pcall
elseif fault == "coroutine" then
  local co = coroutine.wrap(function() while true do pcall(forever) end end)
  while true do pcall(co) end -- FAULT-coroutine
elseif fault == "memory" then
  local s = "0123456789abcdef"
  while true do s = s .. s end -- FAULT-memory
elseif fault == "tables" then
  local t = {}
  for i = 1, math.maxinteger do t[i] = { i } end -- FAULT-tables
end
