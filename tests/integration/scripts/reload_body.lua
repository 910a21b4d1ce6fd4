-- SIGHUP reload with a request body in flight (tests/integration/test_security_http.py).
-- The test copies this file and changes the two lines below to make the next version.
local VERSION = 1
local UPSTREAM_VAR = "UPSTREAM_PORT"

local relay = require("relay")

local function num(name, default)
  return require("relay.env").integer(name, default, 0, 65535) or error(name .. " is not set", 0)
end

relay.listen({ addr = "127.0.0.1", port = num("LISTEN_PORT") })
relay.upstream({ name = "main", host = "127.0.0.1", port = num(UPSTREAM_VAR) })
relay.settings({ workers = 1, idle_timeout = 10, connect_timeout = 3 })

-- The script reads the whole body before the exchange connects anywhere.
relay.route({
  method = "POST", path = "/buffered", body = true,
  on_request = function(req)
    return { headers = { ["X-Version"] = tostring(VERSION) } }
  end,
})
