-- Script-made text inside SSE events (tests/integration/test_security_chat.py).
-- Ports from the environment: LISTEN_PORT, UPSTREAM_PORT.
local relay = require("relay")
local harmony = require("relay.formats.harmony")

local function num(name, default)
  return require("relay.env").integer(name, default, 0, 65535) or error(name .. " is not set", 0)
end

relay.listen({ addr = "127.0.0.1", port = num("LISTEN_PORT") })
relay.upstream({ name = "a", host = "127.0.0.1", port = num("UPSTREAM_PORT") })
relay.settings({ workers = 1, idle_timeout = 10, connect_timeout = 3 })

-- on_event: an event whose JSON carries "x_new_data" gets that string as its new data,
-- line breaks and all; an event with empty data gets "E\rF". Everything else is kept.
relay.route({
  method = "POST", path = "/v1/chat/completions",
  rewrite = {
    rules = harmony.rules(),
    on_event = function(ctx, ev)
      if ev.data == "" then return "E\rF" end
      if ev.data == "[DONE]" then return nil end
      local ok, doc = pcall(ev.json, ev)
      if ok and type(doc) == "table" and type(doc.x_new_data) == "string" then return doc.x_new_data end
      return nil
    end,
  },
})

-- on_text: every piece of content gets line breaks of all kinds around it; they must
-- stay inside the JSON string (escaped), never reach the SSE framing.
relay.route({
  method = "POST", path = "/v1/on-text/chat/completions",
  rewrite = {
    rules = harmony.rules(),
    on_text = function(ctx, index, text, kind)
      return "\r" .. text .. "\r\n\n"
    end,
  },
})
