-- <think>...</think> where the chat template writes the opening <think> into
-- the prompt, so the completion starts inside the reasoning and carries only
-- </think>: DeepSeek-R1-0528 and the R1 distills, QwQ, Qwen3 *-Thinking-2507.
-- The stream starts in the reasoning state; an explicit <think> inside the
-- reasoning (older templates, where the model writes it) is swallowed, so both
-- spellings give one block.
-- In tags mode the opening tag comes from the rule set's `prefix` (see
-- lua/API.md); in field and strip modes nothing else is needed.
-- Caution: a completion with no </think> at all is treated as reasoning from
-- start to end, so use this only for models that always reason.
return require("relay.formats.pair").preset({
  name = "think_open",
  description = "</think> only: the template opened <think> in the prompt",
  open_pattern = "<think>",
  close_pattern = "</think>",
  start_inside = true,
  models = { "deepseek%-r1", "qwq", "qwen3.*thinking" },
})
