-- Hooks that never return and hooks that eat memory (tests/integration/test_security_lua.py).
-- Ports from the environment: LISTEN_PORT, UPSTREAM_PORT; WORKERS (default 1);
-- SCRIPT_TIMEOUT (seconds), SCRIPT_MEMORY (bytes).
--
-- The request header X-Loop names a fault from `faults` below; the route says in which
-- hook it runs. /mem/<fault> runs it in on_request.
local relay = require("relay")
local env = require("relay.env")

relay.listen({ addr = "127.0.0.1", port = env.integer("LISTEN_PORT", nil, 1, 65535) })
relay.upstream({ name = "a", host = "127.0.0.1", port = env.integer("UPSTREAM_PORT", nil, 1, 65535) })
relay.settings({ workers = env.integer("WORKERS", 1, 1, 8), idle_timeout = 20, connect_timeout = 3 })
-- pcall: a relay without these settings still runs the script (that is how the tests
-- were shown to fail before the budget existed)
pcall(relay.settings, {
  script_timeout = env.seconds("SCRIPT_TIMEOUT", 0.3),
  script_memory = env.integer("SCRIPT_MEMORY", 64 * 1024 * 1024, 1, 1 << 40),
})

local function forever() while true do end end

local faults = {
  -- endless loops, and ways to try to carry on past the budget's error
  plain = forever,
  pcall = function() while true do pcall(forever) end end,
  pcall_error = function() while true do pcall(error, "x") end end,
  nested = function()
    local function f() while true do pcall(f) end end
    f()
  end,
  xpcall = function() while true do xpcall(forever, forever) end end,
  coroutine = function()
    while true do pcall(coroutine.wrap(function() while true do pcall(forever) end end)) end
  end,
  old_coroutine = function() -- made at load time, before any request
    while true do pcall(coroutine.resume, _G.loader_co) end
  end,
  gsub = function() while true do pcall(string.gsub, ("x"):rep(100), ".", forever) end end,
  sort = function()
    local t = {}
    for i = 1, 100 do t[i] = i end
    while true do pcall(table.sort, t, function(a, b) while true do end end) end
  end,
  close = function()
    while true do
      pcall(function() local x <close> = setmetatable({}, { __close = forever }) end)
    end
  end,
  gc = function() -- Lua runs finalizers with hooks off: refused outright
    while true do
      setmetatable({}, { __gc = forever })
      pcall(collectgarbage)
    end
  end,
  gc_debug = function()
    debug.setmetatable({}, { __gc = forever })
    forever()
  end,
  sethook = function() debug.sethook(); forever() end,
  -- a hook cannot lift its own budget, nor re-declare the relay
  settings = function() relay.settings({ script_timeout = 3600 }); forever() end,
  route = function() relay.route({ path = "/new" }) end,
  on_request = function() relay.on_request(function() end) end,
  -- memory
  strings = function()
    local t = {}
    while true do t[#t + 1] = ("x"):rep(1000000) .. #t end
  end,
  tables = function()
    local t = {}
    for i = 1, math.maxinteger do t[i] = { i } end
  end,
  doubling = function()
    local s = "0123456789abcdef"
    while true do s = s .. s end
  end,
  mem_pcall = function()
    while true do
      pcall(function() local t = {} while true do t[#t + 1] = ("y"):rep(100000) .. #t end end)
    end
  end,
  hoard = function() -- keeps what it took: the state stays at its limit
    _G.hoard = _G.hoard or {}
    while true do _G.hoard[#_G.hoard + 1] = ("z"):rep(1000000) .. #_G.hoard end
  end,
  free = function()
    _G.hoard = nil
    collectgarbage()
  end,
  none = function() end,
}

-- a coroutine made at load time (it inherits whatever hook the state had then)
_G.loader_co = coroutine.create(function() while true do pcall(forever) end end)

local function run(ctx)
  local f = faults[ctx.fault or "none"]
  if f then f() end
end

-- on_request
relay.route({
  path = "/mem/*",
  on_request = function(req)
    faults[req.path:sub(6)]()
    return { respond = { status = 200, body = "survived\n" } }
  end,
})
relay.route({
  path = "/loop/request",
  on_request = function(req)
    faults[req.headers["x-loop"]]()
    return { respond = { status = 200, body = "survived\n" } }
  end,
})

-- response hooks: on_request only picks the fault
local function pick(req) req.ctx.fault = req.headers["x-loop"] end
for _, hook in ipairs({ "on_text", "on_event", "on_body", "on_end" }) do
  relay.route({
    method = "POST", path = "/v1/" .. hook .. "/chat/completions", on_request = pick,
    rewrite = { [hook] = function(ctx) run(ctx) end },
  })
end

-- the global routing function: X-Loop on any other path
relay.on_request(function(req)
  local f = req.headers["x-loop"]
  if f then faults[f]() end
end)
