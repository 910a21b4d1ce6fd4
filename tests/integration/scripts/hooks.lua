-- Response hooks on chat routes (tests/integration/test_lua_hooks.py).
-- Ports from the environment: LISTEN_PORT, UPSTREAM_PORT; WORKERS (default 1).
local relay = require("relay")
local harmony = require("relay.formats.harmony")

-- A whole number from the environment (relay.env names the variable on error).
local function num(name, default)
  return require("relay.env").integer(name, default, 0, 65535) or error(name .. " is not set", 0)
end

relay.listen({ addr = "127.0.0.1", port = num("LISTEN_PORT") })
relay.upstream({ name = "a", host = "127.0.0.1", port = num("UPSTREAM_PORT") })
relay.upstream({ name = "dead", host = "127.0.0.1", port = num("DEAD_PORT") })
relay.settings({ workers = num("WORKERS", 1), idle_timeout = 10, connect_timeout = 3 })

local seq = 0

-- Everything observed goes into ctx; on_end writes one summary line.
relay.route({
  method = "POST", path = "/v1/chat/completions", body = true,
  on_request = function(req)
    seq = seq + 1
    req.ctx.seq = seq
    req.ctx.model = req:json().model
    req.ctx.tag = req.headers["x-test-tag"] or "-"
    req.ctx.events, req.ctx.text_calls, req.ctx.body_calls = 0, 0, 0
    req.ctx.content, req.ctx.reasoning = {}, {}
    req.ctx.ids = {}
  end,
  rewrite = {
    rules = harmony.rules(), mode = "field", field = "reasoning_content",
    on_text = function(ctx, index, text, kind)
      ctx.text_calls = ctx.text_calls + 1
      if index ~= 0 then error("unexpected choice index " .. tostring(index)) end
      if kind == "reasoning" then
        table.insert(ctx.reasoning, text)
        return text:upper()
      end
      table.insert(ctx.content, text)
      return nil
    end,
    on_event = function(ctx, ev)
      if ev.data == "[DONE]" then
        ctx.done = true
        return nil
      end
      ctx.events = ctx.events + 1
      local doc = ev:json()
      ctx.ids[doc.id or "?"] = true
      return nil
    end,
    on_body = function(ctx, body)
      ctx.body_calls = ctx.body_calls + 1
      ctx.saw_reasoning_field = relay.json.get(body, { "choices", 1, "message", "reasoning_content" }) ~= nil
      return assert(relay.json.set(body, { "x_hooks" }, "seq " .. ctx.seq))
    end,
    on_end = function(ctx, info)
      local ids = {}
      for k in pairs(ctx.ids) do ids[#ids + 1] = k end
      table.sort(ids)
      relay.log("info", string.format(
        "on_end seq=%d tag=%s model=%s status=%d complete=%s events=%d done=%s text_calls=%d body_calls=%d "
          .. "ids=%s saw_reasoning_field=%s bytes_out=%d content=[%s] reasoning=[%s]",
        ctx.seq, ctx.tag, tostring(ctx.model), info.status, tostring(info.complete), ctx.events,
        tostring(ctx.done == true), ctx.text_calls, ctx.body_calls, table.concat(ids, ","), tostring(ctx.saw_reasoning_field),
        info.bytes_out, table.concat(ctx.content), table.concat(ctx.reasoning)))
    end,
  },
})

-- on_event editing the stream: drop, replace, keep.
relay.route({
  method = "POST", path = "/v1/edit-events/chat/completions",
  rewrite = {
    on_event = function(ctx, ev)
      if ev.event == "ping" then return '{"pong":true}' end
      if ev.data == "[DONE]" then return nil end
      local doc = ev:json()
      if doc.usage then return false end
      local c = doc.choices[1] and doc.choices[1].delta and doc.choices[1].delta.content
      if c == "DROPME" then return false end
      if c == "REPLACEME" then
        return assert(relay.json.set(ev.data, { "choices", 1, "delta", "content" }, "replaced"))
      end
      if c == "MULTI" then return '{"a":1}\n{"b":2}' end
      return nil
    end,
  },
})

-- Faults in response hooks.
relay.route({
  method = "POST", path = "/v1/err-event/chat/completions",
  rewrite = {
    rules = harmony.rules(),
    on_event = function(ctx, ev)
      ctx.n = (ctx.n or 0) + 1
      if ctx.n >= 3 then error("boom in on_event " .. ctx.n) end
      return nil
    end,
    on_end = function(ctx, info) relay.log("info", "err-event on_end n=" .. tostring(ctx.n)) end,
  },
})
relay.route({
  method = "POST", path = "/v1/err-text/chat/completions",
  rewrite = {
    rules = harmony.rules(),
    on_text = function(ctx, index, text, kind)
      ctx.n = (ctx.n or 0) + 1
      if ctx.n >= 2 then error("boom in on_text") end
      return "[" .. text .. "]"
    end,
  },
})
relay.route({
  method = "POST", path = "/v1/bad-return/chat/completions",
  rewrite = { rules = harmony.rules(), on_event = function() return 42 end },
})
relay.route({
  method = "POST", path = "/v1/err-body/chat/completions",
  rewrite = { rules = harmony.rules(), on_body = function(ctx, body) error("boom in on_body") end },
})
relay.route({
  method = "POST", path = "/v1/err-end/chat/completions",
  rewrite = { rules = harmony.rules(), on_end = function(ctx, info) error("boom in on_end") end },
})

-- on_end whatever the outcome: error statuses, an unreachable upstream, a cut stream.
local function log_end(name)
  return function(ctx, info)
    relay.log("info", string.format("end-any route=%s status=%d complete=%s", name, info.status, tostring(info.complete)))
  end
end
relay.route({
  method = "POST", path = "/v1/end-any/chat/completions",
  rewrite = { rules = harmony.rules(), on_end = log_end("live") },
})
relay.route({
  method = "POST", path = "/v1/end-dead/chat/completions", upstream = "dead",
  rewrite = { rules = harmony.rules(), on_end = log_end("dead") },
})
