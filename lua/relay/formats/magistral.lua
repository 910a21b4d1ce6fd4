-- Mistral Magistral (2507 and later): [THINK]...[/THINK]. Servers that print
-- special tokens leave them in content. Magistral 2506 used <think> (think).
return require("relay.formats.pair").preset({
  name = "magistral",
  description = "[THINK]...[/THINK] (Magistral 2507+)",
  open_pattern = "[THINK]",
  close_pattern = "[/THINK]",
  models = { "magistral" },
})
