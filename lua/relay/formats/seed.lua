-- ByteDance Seed-OSS: <seed:think>...</seed:think>. The budget reflections
-- (<seed:cot_budget_reflect>...) inside the reasoning stay as reasoning text.
return require("relay.formats.pair").preset({
  name = "seed",
  description = "<seed:think>...</seed:think> (Seed-OSS)",
  open_pattern = "<seed:think>",
  close_pattern = "</seed:think>",
  models = { "seed%-oss" },
})
