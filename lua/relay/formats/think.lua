-- <think>...</think>, emitted by the model itself: DeepSeek-R1 (original
-- template), Qwen3 hybrid models, GLM-4.5/4.6 and GLM-Z1, MiniMax-M1/M2,
-- Kimi-K2-Thinking, Magistral 2506. Harmless on output without the markers:
-- text passes unchanged. For templates that open <think> themselves (the
-- output carries only </think>), use think_open.
return require("relay.formats.pair").preset({
  name = "think",
  description = "<think>...</think> written by the model",
  open_pattern = "<think>",
  close_pattern = "</think>",
  models = { "qwen3", "glm", "minimax", "kimi%-k2.*think", "magistral.*2506", "deepseek" },
})
