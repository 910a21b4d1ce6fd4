-- bench/scripts/on_event.lua: the stock script's rewrite route (harmony rules, tags mode, the
-- history-hygiene request hook with body = true) plus a per-event Lua hook that keeps every
-- event. Used by bench/run.sh ("Lua layer": SSE events/s with this script vs the stock script),
-- so the two differ only by one Lua call per event.
local relay = require("relay")

local env = require("relay.env")

relay.listen({ addr = env.address("LISTEN_ADDR", "127.0.0.1"), port = env.port("LISTEN_PORT", 8080) })
relay.upstream({ name = "default", host = env.host("UPSTREAM_HOST", "127.0.0.1"), port = env.port("UPSTREAM_PORT", 1234) })
relay.settings({ workers = env.integer("WORKERS", 0, 0, 256) })

local open_tag, close_tag = "<think>", "</think>"
local history = require("relay.history")

relay.route({
  method = "POST", path = "/v1/chat/completions", upstream = "default",
  body = true,
  on_request = function(req)
    local body = history.strip(req.body, open_tag, close_tag)
    if body ~= req.body then return { body = body } end
  end,
  rewrite = {
    rules = require("relay.formats.harmony").rules(open_tag, close_tag),
    mode = "tags",
    on_event = function(ctx, ev) return nil end,
  },
})
