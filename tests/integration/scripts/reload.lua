-- SIGHUP reload (tests/integration/test_lua_reload.py). The test copies this file and
-- changes the two lines below to make the next version.
local VERSION = 1
local UPSTREAM_VAR = "UPSTREAM_PORT"

local relay = require("relay")
local harmony = require("relay.formats.harmony")

-- A whole number from the environment (relay.env names the variable on error).
local function num(name, default)
  return require("relay.env").integer(name, default, 0, 65535) or error(name .. " is not set", 0)
end

relay.listen({ addr = "127.0.0.1", port = num("LISTEN_PORT") })
relay.upstream({ name = "main", host = "127.0.0.1", port = num(UPSTREAM_VAR) })
relay.settings({ workers = num("WORKERS", 1), idle_timeout = 10, connect_timeout = 3 })

relay.route({
  path = "/version",
  on_request = function()
    return { respond = { status = 200, headers = { ["X-Version"] = tostring(VERSION) }, json = { version = VERSION } } }
  end,
})

relay.route({
  method = "POST", path = "/v1/chat/completions",
  rewrite = {
    rules = harmony.rules("<v" .. VERSION .. ">", "</v" .. VERSION .. ">"),
    on_text = function(ctx, index, text, kind)
      ctx.pieces = (ctx.pieces or 0) + 1
      return nil
    end,
    on_end = function(ctx, info)
      relay.log("info", string.format("reload-test on_end version=%d complete=%s pieces=%d",
        VERSION, tostring(info.complete), ctx.pieces or 0))
    end,
  },
})

relay.on_request(function(req)
  return { headers = { ["X-Version"] = tostring(VERSION) } }
end)
