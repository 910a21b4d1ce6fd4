-- Runtime errors in on_request (tests/integration/test_lua_faults.py): each fails its
-- own exchange with a 500; the relay keeps serving.
-- Ports from the environment: LISTEN_PORT, UPSTREAM_PORT; WORKERS (default 1).
local relay = require("relay")

-- A whole number from the environment (relay.env names the variable on error).
local function num(name, default)
  return require("relay.env").integer(name, default, 0, 65535) or error(name .. " is not set", 0)
end

relay.listen({ addr = "127.0.0.1", port = num("LISTEN_PORT") })
relay.upstream({ name = "a", host = "127.0.0.1", port = num("UPSTREAM_PORT") })
relay.settings({ workers = num("WORKERS", 1), idle_timeout = 10, connect_timeout = 3 })

local bad = {
  ["/boom"] = function() error("boom in on_request") end,
  ["/boom-table"] = function() error({ code = 1 }) end,
  ["/bad-return"] = function() return 42 end,
  ["/bad-upstream"] = function() return { upstream = "nope" } end,
  ["/bad-status"] = function() return { respond = { status = 99 } } end,
  ["/bad-header-name"] = function() return { headers = { ["X Bad"] = "v" } } end,
  ["/bad-header-value"] = function() return { headers = { ["X-A"] = "a\r\nX-Injected: 1" } } end,
  ["/bad-path"] = function() return { path = "no-slash" } end,
  ["/bad-path-space"] = function() return { path = "/a b" } end,
  ["/bad-rewrite"] = function() return { rewrite = { mode = "weird" } } end,
  ["/bad-respond-header"] = function() return { respond = { status = 200, headers = { ["X-A"] = "a\nb" } } } end,
  ["/bad-body-type"] = function() return { body = 12 } end,
  ["/nil-index"] = function(req) return { upstream = req.nothing.here } end,
}
for path, fn in pairs(bad) do
  relay.route({ path = path, on_request = fn })
end

-- Needs the body: invalid JSON makes req:json() raise.
relay.route({
  method = "POST", path = "/json", body = true,
  on_request = function(req)
    local doc = req:json()
    return { headers = { ["X-Model"] = tostring(doc.model) } }
  end,
})
