-- Routing, local answers, request edits (tests/integration/test_lua_routing.py).
-- Ports come from the environment: LISTEN_PORT, UPSTREAM_PORT (upstream "a"),
-- UPSTREAM_B_PORT (upstream "b"); WORKERS (default 1).
local relay = require("relay")

-- A whole number from the environment (relay.env names the variable on error).
local function num(name, default)
  return require("relay.env").integer(name, default, 0, 65535) or error(name .. " is not set", 0)
end

relay.listen({ addr = "127.0.0.1", port = num("LISTEN_PORT") })
relay.upstream({ name = "a", host = "127.0.0.1", port = num("UPSTREAM_PORT") })
relay.upstream({ name = "b", host = "127.0.0.1", port = num("UPSTREAM_B_PORT") })
relay.settings({ workers = num("WORKERS", 1), idle_timeout = 10, connect_timeout = 3 })

-- By path and method. Unmatched requests go to the first upstream ("a").
relay.route({ path = "/b/*", upstream = "b" })
relay.route({ method = "POST", path = "/post-b", upstream = "b" })
relay.route({ path = "/exact-b", upstream = "b" })
relay.route({ method = "GET", path = "/a-explicit/*", upstream = "a" })

-- By the "model" of the JSON body.
relay.route({
  method = "POST", path = "/v1/completions", body = true,
  on_request = function(req)
    local doc = req:json()
    if doc.model == "model-b" then return { upstream = "b" } end
    if doc.model == "model-a" then return { upstream = "a" } end
    return { respond = { status = 404, json = { error = { message = "unknown model " .. tostring(doc.model),
      type = "invalid_request_error", code = "model_not_found" } } } }
  end,
})

-- Answered by the script itself.
relay.route({
  path = "/local/json",
  on_request = function(req)
    return { respond = { status = 418, headers = { ["X-Local"] = "yes", ["Cache-Control"] = "no-store" },
      json = { ok = true, method = req.method, path = req.path, query = req.query or "" } } }
  end,
})
relay.route({
  path = "/local/text",
  on_request = function(req)
    return { respond = { status = 201, headers = { ["Content-Type"] = "text/plain; charset=utf-8" },
      body = "created " .. req.method .. "\n" } }
  end,
})
relay.route({
  path = "/local/empty",
  on_request = function() return { respond = { status = 204 } } end,
})

-- Request header edits as the upstream sees them.
relay.route({
  path = "/hdr",
  on_request = function(req)
    return { headers = {
      ["X-Added"] = "added-value",
      ["x-remove-me"] = false,
      ["User-Agent"] = "relay-test/1",
      ["X-Seen-Multi"] = req.headers["x-multi"] or "none",
      ["X-Seen-Client"] = req.client,
    } }
  end,
})

-- Path rewrite: /old/<rest> -> /new/<rest>; the query stays as the client gave it.
relay.route({
  path = "/old/*",
  on_request = function(req)
    return { path = "/new/" .. req.path:sub(#"/old/" + 1), headers = { ["X-Orig-Query"] = req.query or "-" } }
  end,
})
-- The script builds the whole target, query included.
relay.route({
  path = "/full/*",
  on_request = function(req)
    return { path = "/rebuilt?" .. (req.query or "") .. "&added=1", upstream = "b" }
  end,
})

-- Body replacement with lossless JSON edits.
relay.route({
  method = "POST", path = "/v1/edit", body = true,
  on_request = function(req)
    local b = assert(relay.json.set(req.body, { "model" }, "rewritten/model"))
    b = assert(relay.json.set(b, { "max_tokens" }, 4096))
    b = assert(relay.json.set_raw(b, { "metadata" }, '{"via": "relay" , "list":[ ]}'))
    b = assert(relay.json.remove(b, { "drop_me" }))
    return { body = b, headers = { ["X-Original-Length"] = tostring(#req.body) } }
  end,
})
relay.route({
  method = "POST", path = "/v1/replace", body = true,
  on_request = function(req)
    return { body = "plain replacement: " .. #req.body .. " bytes", headers = { ["Content-Type"] = "text/plain" } }
  end,
})
relay.route({
  method = "POST", path = "/v1/empty-body", body = true,
  on_request = function() return { body = "" } end,
})

-- The global hook: requests whose matched route has no on_request.
relay.on_request(function(req)
  if req.headers["x-deny"] then
    return { respond = { status = 401, json = { error = { message = "denied", type = "auth_error", code = "denied" } } } }
  end
  if req.path == "/global/to-b" then return { upstream = "b", headers = { ["X-Global"] = "1" } } end
  return nil
end)
