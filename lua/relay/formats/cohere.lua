-- Cohere Command A Reasoning: <|START_THINKING|>...<|END_THINKING|>, then the
-- answer wrapped in <|START_RESPONSE|>...<|END_RESPONSE|>; the response markers
-- are removed (outside the reasoning only).
return require("relay.formats.pair").preset({
  name = "cohere",
  description = "<|START_THINKING|>...<|END_THINKING|> (Command A Reasoning)",
  open_pattern = "<|START_THINKING|>",
  close_pattern = "<|END_THINKING|>",
  models = { "command%-a.*reason", "command.*reasoning" },
  extra = function()
    return {
      { from = "outside", pattern = "<|START_RESPONSE|>", replace = "", to = "outside" },
      { from = "outside", pattern = "<|END_RESPONSE|>", replace = "", to = "outside" },
    }
  end,
})
