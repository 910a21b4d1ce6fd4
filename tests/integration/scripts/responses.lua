-- The Responses front end as a route option (tests/integration/test_responses.py).
-- Ports come from the environment: LISTEN_PORT, UPSTREAM_PORT.
local relay = require("relay")
local env = require("relay.env")

relay.listen({ addr = "127.0.0.1", port = env.port("LISTEN_PORT", 8080) })
relay.upstream({ name = "default", host = "127.0.0.1", port = env.port("UPSTREAM_PORT", 1234) })
relay.settings({ workers = 1, idle_timeout = 10, connect_timeout = 3 })

-- The request hook sees the translated chat request; it tells the upstream what it saw.
relay.route({
  method = "POST",
  path = "/v1/responses",
  frontend = "responses",
  rewrite = { rules = require("relay.formats.harmony").rules(), mode = "tags" },
  on_request = function(req)
    local doc = req:json()
    return { headers = {
      ["X-Seen-Path"] = req.path,
      ["X-Seen-Frontend"] = req.frontend or "none",
      ["X-Seen-Messages"] = tostring(#doc.messages),
      ["X-Seen-First-Role"] = doc.messages[1].role,
    } }
  end,
})

-- Options: another chat path, developer messages kept, reasoning items handed back in
-- "reasoning"; no rewrite (the upstream's own reasoning fields are read).
relay.route({
  method = "POST",
  path = "/alt/responses",
  frontend = { type = "responses", chat_path = "/alt/chat", developer_role = "developer",
               reasoning_field = "reasoning" },
})

-- A hook that answers itself: the front end's refusal still comes first.
relay.route({
  method = "POST",
  path = "/local/responses",
  frontend = "responses",
  on_request = function(req)
    return { respond = { status = 200, json = { seen = req.path } } }
  end,
})
