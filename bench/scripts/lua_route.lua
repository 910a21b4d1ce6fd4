-- bench/scripts/lua_route.lua: the stock relay's rewrite route plus a global Lua routing
-- function, so that every request makes one Lua call (relay.on_request). Used by bench/run.sh
-- ("Lua layer": req/s of a small JSON GET with this script vs the stock script).
local relay = require("relay")

local function num(name, default)
  local v = relay.getenv(name)
  if v == nil or v == "" then return default end
  return assert(math.tointeger(tonumber(v)), name .. " must be an integer")
end

relay.listen({ addr = relay.getenv("LISTEN_ADDR") or "127.0.0.1", port = num("LISTEN_PORT", 8080) })
relay.upstream({ name = "default", host = relay.getenv("UPSTREAM_HOST") or "127.0.0.1", port = num("UPSTREAM_PORT", 1234) })
relay.settings({ workers = num("WORKERS", 0) })

-- same rewrite route as the stock script (harmony rules, tags mode, <think>/</think>)
relay.route({
  method = "POST", path = "/v1/chat/completions", upstream = "default",
  rewrite = { rules = require("relay.formats.harmony").rules("<think>", "</think>"), mode = "tags" },
})

-- the Lua routing function: one call per request (the route above has no hook of its own)
relay.on_request(function(req)
  return { upstream = "default" }
end)
