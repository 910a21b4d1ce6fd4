-- An access rule in a script (tests/integration/test_security_http.py): /admin and
-- everything under it is refused, whatever form the request target takes. Allowed
-- requests carry what the script saw (X-Seen-*), so the test can compare it with what
-- the upstream received. Ports: LISTEN_PORT, UPSTREAM_PORT, UPSTREAM_B_PORT.
local relay = require("relay")

local function num(name, default)
  return require("relay.env").integer(name, default, 0, 65535) or error(name .. " is not set", 0)
end

relay.listen({ addr = "127.0.0.1", port = num("LISTEN_PORT") })
relay.upstream({ name = "a", host = "127.0.0.1", port = num("UPSTREAM_PORT") })
relay.upstream({ name = "b", host = "127.0.0.1", port = num("UPSTREAM_B_PORT") })
relay.settings({ workers = num("WORKERS", 1), idle_timeout = 10, connect_timeout = 3 })

-- A route matched in C: the same split decides it.
relay.route({ path = "/private/*", upstream = "b" })

relay.on_request(function(req)
  if req.path == "/admin" or req.path:sub(1, 7) == "/admin/" then
    return { respond = { status = 403, json = { error = { message = "forbidden by the script",
      type = "permission_error", code = "forbidden" } } } }
  end
  return { headers = { ["X-Seen-Path"] = req.path, ["X-Seen-Query"] = req.query or "-",
    ["X-Seen-Target"] = req.target } }
end)
