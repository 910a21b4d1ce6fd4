-- What a script may not do to the wire (tests/integration/test_security_lua.py):
-- framing fields and malformed names or values in header edits and local answers,
-- a body replaced without reading it, a body on a 204/304.
-- Ports from the environment: LISTEN_PORT, UPSTREAM_PORT; WORKERS (default 1).
-- Names and values travel hex-encoded in the query, so any byte can be tried.
local relay = require("relay")

local function num(name, default)
  return require("relay.env").integer(name, default, 0, 65535) or error(name .. " is not set", 0)
end

relay.listen({ addr = "127.0.0.1", port = num("LISTEN_PORT") })
relay.upstream({ name = "a", host = "127.0.0.1", port = num("UPSTREAM_PORT") })
relay.settings({ workers = num("WORKERS", 1), idle_timeout = 10, connect_timeout = 3 })

local function unhex(s)
  return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end

-- ?NAMEHEX=VALUEHEX, or ?NAMEHEX=- to remove the field
local function name_value(req)
  local n, v = (req.query or ""):match("^(%x*)=(.*)$")
  assert(n, "query must be NAMEHEX=VALUEHEX")
  if v == "-" then return unhex(n), false end
  return unhex(n), unhex(v)
end

relay.route({
  path = "/set-header",
  on_request = function(req)
    local n, v = name_value(req)
    return { headers = { [n] = v } }
  end,
})

relay.route({
  path = "/respond-header",
  on_request = function(req)
    local n, v = name_value(req)
    return { respond = { status = 200, headers = { [n] = v, ["X-Other"] = "kept" }, body = "local body" } }
  end,
})

-- ?STATUS=BODYHEX (empty: no body field); /respond-json?STATUS: json = {...}
relay.route({
  path = "/respond-status",
  on_request = function(req)
    local s, b = req.query:match("^(%d+)=(%x*)$")
    return { respond = { status = tonumber(s), body = b ~= "" and unhex(b) or nil } }
  end,
})
relay.route({
  path = "/respond-json",
  on_request = function(req)
    return { respond = { status = tonumber(req.query), json = { a = 1 } } }
  end,
})

-- A new body on a route that never read the client's: ?BODYHEX (absent: "NEW")
relay.route({
  path = "/replace-body",
  on_request = function(req)
    return { body = req.query and unhex(req.query) or "NEW", headers = { ["X-Replaced"] = "1" } }
  end,
})
