-- One relay in front of two model servers: requests are routed by the `model`
-- of the request body, and each server's output gets its own format.
--
--   gpt-oss on LM Studio (port 1234)    -> harmony markers
--   Qwen3 / QwQ on llama-server (8081)  -> <think>...</think>
--
--   OSS_PORT=1234 QWEN_PORT=8081 oss-relay --script examples/route_by_model.lua
--
-- A model neither server knows gets a 404 in the OpenAI error shape; a body
-- without a model, a 400. Other requests (GET /v1/models ...) go to the first
-- upstream.
local relay = require("relay")
local env = require("relay.env")

relay.listen({ addr = env.address("LISTEN_ADDR", "0.0.0.0"), port = env.port("LISTEN_PORT", 8080) })
relay.upstream({ name = "oss", host = env.host("OSS_HOST", "127.0.0.1"), port = env.port("OSS_PORT", 1234) })
relay.upstream({ name = "qwen", host = env.host("QWEN_HOST", "127.0.0.1"), port = env.port("QWEN_PORT", 8081) })

-- Compiled once, at load time; shared by every request.
local harmony = require("relay.formats.harmony").rules()
local think = require("relay.formats.think").rules()
local think_open = require("relay.formats.think_open").rules()

-- First match wins; patterns are Lua patterns on the lower-cased model name.
local backends = {
  { pattern = "gpt%-oss", upstream = "oss", rules = harmony },
  { pattern = "qwq", upstream = "qwen", rules = think_open },     -- template opens <think>
  { pattern = "qwen3.*thinking", upstream = "qwen", rules = think_open },
  { pattern = "qwen", upstream = "qwen", rules = think },
}

local function openai_error(status, message, code)
  return { respond = { status = status, json = { error = { message = message, type = "invalid_request_error", code = code } } } }
end

relay.route({
  method = "POST",
  path = "/v1/chat/completions",
  upstream = "oss",
  rewrite = { rules = harmony },
  body = true, -- the request body is read before on_request runs
  on_request = function(req)
    local ok, doc = pcall(req.json, req)
    local model = ok and type(doc) == "table" and doc.model
    if type(model) ~= "string" then
      return openai_error(400, "the request body must be a JSON object with a \"model\" string", "invalid_model")
    end
    local m = model:lower()
    for _, b in ipairs(backends) do
      if m:find(b.pattern) then
        return { upstream = b.upstream, rewrite = { rules = b.rules } }
      end
    end
    return openai_error(404, string.format("The model '%s' does not exist", model), "model_not_found")
  end,
})
