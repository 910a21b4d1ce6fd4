-- bench/scripts/lua_route.lua: the stock relay's rewrite route plus a global Lua routing
-- function, so that every request makes one Lua call (relay.on_request). Used by bench/run.sh
-- ("Lua layer": req/s of a small JSON GET with this script vs the stock script).
local relay = require("relay")

local env = require("relay.env")

relay.listen({ addr = env.address("LISTEN_ADDR", "127.0.0.1"), port = env.port("LISTEN_PORT", 8080) })
relay.upstream({ name = "default", host = env.host("UPSTREAM_HOST", "127.0.0.1"), port = env.port("UPSTREAM_PORT", 1234) })
relay.settings({ workers = env.integer("WORKERS", 0, 0, 256) })

-- same rewrite route as the stock script (harmony rules, tags mode, <think>/</think>)
relay.route({
  method = "POST", path = "/v1/chat/completions", upstream = "default",
  rewrite = { rules = require("relay.formats.harmony").rules("<think>", "</think>"), mode = "tags" },
})

-- the Lua routing function: one call per request (the route above has no hook of its own)
relay.on_request(function(req)
  return { upstream = "default" }
end)
