-- API keys at the relay: a request without a valid `Authorization: Bearer KEY`
-- gets 401 in the OpenAI error shape and never reaches the model server. The
-- client's key is not forwarded; UPSTREAM_API_KEY, if set, is sent instead.
--
--   RELAY_API_KEYS=sk-alice,sk-bob oss-relay --script examples/api_key.lua
local relay = require("relay")
local env = require("relay.env")

local keys = {}
for k in (env.string("RELAY_API_KEYS", "")):gmatch("[^,%s]+") do keys[#keys + 1] = k end
if #keys == 0 then error("RELAY_API_KEYS must list at least one key (comma-separated)", 0) end
local upstream_key = env.string("UPSTREAM_API_KEY", nil)

relay.listen({ addr = env.address("LISTEN_ADDR", "0.0.0.0"), port = env.port("LISTEN_PORT", 8080) })
relay.upstream({ name = "default", host = env.host("UPSTREAM_HOST", "127.0.0.1"), port = env.port("UPSTREAM_PORT", 1234) })
relay.route({
  method = "POST",
  path = "/v1/chat/completions",
  upstream = "default",
  rewrite = { rules = require("relay.formats.harmony").rules() },
})

-- Compares every byte whatever the input, so the time taken does not tell
-- how much of a key was right.
local function same(a, b)
  if #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do
    if a:byte(i) ~= b:byte(i) then diff = diff + 1 end
  end
  return diff == 0
end

local function valid(key)
  local ok = false
  for _, k in ipairs(keys) do
    if same(key, k) then ok = true end
  end
  return ok
end

local function unauthorized(message, code)
  return {
    respond = {
      status = 401,
      headers = { ["WWW-Authenticate"] = 'Bearer realm="oss-relay"' },
      json = { error = { message = message, type = "invalid_request_error", code = code } },
    },
  }
end

-- Global hook: every request whose route has no on_request of its own.
relay.on_request(function(req)
  local auth = req.headers["authorization"]
  if not auth then
    return unauthorized("You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.", "missing_api_key")
  end
  local key = auth:match("^[Bb]earer%s+(%S+)%s*$")
  if not key or not valid(key) then
    return unauthorized("Incorrect API key provided.", "invalid_api_key")
  end
  return { headers = { authorization = upstream_key and ("Bearer " .. upstream_key) or false } }
end)
