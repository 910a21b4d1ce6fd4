-- A default reasoning effort for chat requests that do not set one: the body
-- gets "reasoning_effort": DEFAULT_REASONING_EFFORT added with relay.json.set,
-- which inserts the one member and leaves every other byte of the request as
-- the client sent it. Requests that set it keep theirs.
--
--   DEFAULT_REASONING_EFFORT=high oss-relay --script examples/reasoning_effort.lua
local relay = require("relay")
local env = require("relay.env")

local effort = env.choice("DEFAULT_REASONING_EFFORT", "low", { "minimal", "low", "medium", "high" })

relay.listen({ addr = env.address("LISTEN_ADDR", "0.0.0.0"), port = env.port("LISTEN_PORT", 8080) })
relay.upstream({ name = "default", host = env.host("UPSTREAM_HOST", "127.0.0.1"), port = env.port("UPSTREAM_PORT", 1234) })

relay.route({
  method = "POST",
  path = "/v1/chat/completions",
  upstream = "default",
  rewrite = { rules = require("relay.formats.harmony").rules() },
  body = true,
  on_request = function(req)
    -- relay.json.get raises on a body that is not JSON: leave those alone,
    -- the model server answers them with its own error.
    local ok, current = pcall(relay.json.get, req.body, { "reasoning_effort" })
    if not ok or current ~= nil then return nil end
    local body = relay.json.set(req.body, { "reasoning_effort" }, effort)
    if not body then return nil end -- not an object
    return { body = body }
  end,
})
