-- Moonshot Kimi-VL-Thinking: ◁think▷...◁/think▷ (UTF-8 triangles; a marker may be
-- cut inside a multi-byte character, which the replacer handles).
-- Kimi-K2-Thinking uses <think> and is covered by the think preset.
return require("relay.formats.pair").preset({
  name = "kimi",
  description = "◁think▷...◁/think▷ (Kimi-VL-Thinking)",
  open_pattern = "◁think▷",
  close_pattern = "◁/think▷",
  models = { "kimi%-vl.*think" },
})
