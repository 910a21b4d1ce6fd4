-- Reasoning in its own field, for clients that show it natively (Open WebUI,
-- LibreChat, Cline, the Vercel AI SDK): the analysis of a gpt-oss model goes
-- to `reasoning_content` and/or `reasoning`, and `content` keeps only the answer.
--
--   oss-relay --script examples/field_reasoning.lua
--
-- REASONING_FIELD: reasoning_content (Cline, LibreChat), reasoning (vLLM,
-- LM Studio, Ollama, OpenRouter style) or both (default).
-- FORMAT: a preset of lua/relay/formats (harmony by default; think for Qwen3,
-- GLM, MiniMax; think_open for DeepSeek-R1 and QwQ; kimi, magistral, seed, cohere).
local relay = require("relay")
local env = require("relay.env")

local format = env.choice("FORMAT", "harmony",
  { "harmony", "think", "think_open", "kimi", "magistral", "seed", "cohere" })

relay.listen({ addr = env.address("LISTEN_ADDR", "0.0.0.0"), port = env.port("LISTEN_PORT", 8080) })
relay.upstream({
  name = "default",
  host = env.host("UPSTREAM_HOST", "127.0.0.1"),
  port = env.port("UPSTREAM_PORT", 1234),
})

relay.route({
  method = "POST",
  path = "/v1/chat/completions",
  upstream = "default",
  rewrite = {
    rules = require("relay.formats." .. format).rules(),
    mode = "field",
    field = env.choice("REASONING_FIELD", "both", { "reasoning_content", "reasoning", "both" }),
  },
})
-- Every other request goes to the first upstream unchanged.
