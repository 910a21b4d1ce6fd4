-- A custom transform: count the reasoning and answer pieces of every chat
-- completion as they stream through, and log the totals when the exchange is
-- over. The text is not changed (on_text returns nil).
--
--   oss-relay --script examples/count_reasoning.lua
--   ... info script: chat 200: reasoning 41 pieces / 187 bytes, answer 9 pieces / 38 bytes, 5120 bytes out
--
-- With a streaming upstream one piece is one event, which is one token for
-- most servers; a non-streaming body gives one piece per choice and kind.
-- In tags mode the reasoning is the text between the tags inside "content",
-- so the count follows the tags per choice; in field mode kind says it.
local relay = require("relay")
local env = require("relay.env")

local OPEN, CLOSE = "<think>", "</think>"
local mode = env.choice("RELAY_MODE", "tags", { "tags", "field", "strip" })

relay.listen({ addr = env.address("LISTEN_ADDR", "0.0.0.0"), port = env.port("LISTEN_PORT", 8080) })
relay.upstream({ name = "default", host = env.host("UPSTREAM_HOST", "127.0.0.1"), port = env.port("UPSTREAM_PORT", 1234) })

local function stats(ctx)
  local s = ctx.stats
  if not s then
    s = { reasoning = 0, reasoning_bytes = 0, answer = 0, answer_bytes = 0, inside = {} }
    ctx.stats = s
  end
  return s
end

-- Splits one piece of choice `index` at the tags; returns reasoning bytes and
-- answer bytes, and remembers whether the choice ends inside a block.
local function split_tags(s, index, text)
  local inside = s.inside[index] or false
  local r, a, pos = 0, 0, 1
  while pos <= #text do
    local t1, t2 = text:find(inside and CLOSE or OPEN, pos, true)
    local n = (t1 or #text + 1) - pos
    if inside then r = r + n else a = a + n end
    if not t1 then break end
    inside = not inside
    pos = t2 + 1
  end
  s.inside[index] = inside
  return r, a
end

relay.route({
  method = "POST",
  path = "/v1/chat/completions",
  upstream = "default",
  rewrite = {
    rules = require("relay.formats.harmony").rules(OPEN, CLOSE),
    mode = mode,
    on_text = function(ctx, index, text, kind)
      local s = stats(ctx)
      local r, a
      if kind == "reasoning" then
        r, a = #text, 0
      else
        r, a = split_tags(s, index, text)
      end
      if r > 0 then s.reasoning, s.reasoning_bytes = s.reasoning + 1, s.reasoning_bytes + r end
      if a > 0 then s.answer, s.answer_bytes = s.answer + 1, s.answer_bytes + a end
      return nil -- keep the text
    end,
    on_end = function(ctx, info)
      local s = stats(ctx)
      relay.log("info", string.format("chat %d: reasoning %d pieces / %d bytes, answer %d pieces / %d bytes, %d bytes out",
        info.status or 0, s.reasoning, s.reasoning_bytes, s.answer, s.answer_bytes, info.bytes_out or 0))
    end,
  },
})
