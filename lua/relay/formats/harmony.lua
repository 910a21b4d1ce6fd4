-- gpt-oss "harmony": the analysis channel becomes reasoning. The rules cover
-- what LM Studio, llama-server, vLLM and Ollama leave in `content`: with or
-- without <|end|>, with or without <|start|>assistant before a channel, a
-- second analysis message, a tool call after the analysis, and a trailing
-- <|return|> or <|end|>. See DESIGN.md "What real servers emit for gpt-oss".
local relay = require("relay")

local M = {
  name = "harmony",
  description = "gpt-oss harmony channels (<|channel|>analysis<|message|>...)",
  open_tag = "<think>",
  close_tag = "</think>",
  models = { "gpt%-oss" },
  -- formats.rewrite() reads it with the harmony parser (reasoning, answer and
  -- tool calls); the rules below serve relay.replacer and scripts that ask
  -- for parser = "rules".
  parser = "harmony",
}

local START = "<|start|>assistant"
local ANALYSIS = "<|channel|>analysis<|message|>"
local FINAL = "<|channel|>final<|message|>"
local COMMENTARY = "<|channel|>commentary"
local END = "<|end|>"

-- The rule table, so that scripts can inspect or extend it before compiling.
function M.rule_list(open_tag, close_tag)
  open_tag = open_tag or M.open_tag
  close_tag = close_tag or M.close_tag
  return {
    states = { "final", "analysis" },
    reasoning = { "analysis" },
    { from = "final", pattern = START .. ANALYSIS, replace = open_tag, to = "analysis" },
    { from = "final", pattern = ANALYSIS, replace = open_tag, to = "analysis" },
    { from = "final", pattern = START .. FINAL, replace = "", to = "final" },
    { from = "final", pattern = FINAL, replace = "", to = "final" },
    { from = "final", pattern = "<|return|>", replace = "", to = "final" },
    { from = "final", pattern = END, replace = "", to = "final" },
    { from = "analysis", pattern = END .. START .. FINAL, replace = close_tag, to = "final" },
    { from = "analysis", pattern = START .. FINAL, replace = close_tag, to = "final" },
    { from = "analysis", pattern = FINAL, replace = close_tag, to = "final" },
    { from = "analysis", pattern = END .. FINAL, replace = close_tag, to = "final" },
    { from = "analysis", pattern = END .. START .. ANALYSIS, replace = "", to = "analysis" },
    { from = "analysis", pattern = START .. ANALYSIS, replace = "", to = "analysis" },
    { from = "analysis", pattern = END .. START .. COMMENTARY, replace = close_tag .. START .. COMMENTARY, to = "final" },
    { from = "analysis", pattern = START .. COMMENTARY, replace = close_tag .. START .. COMMENTARY, to = "final" },
    { from = "analysis", pattern = "<|return|>", replace = close_tag, to = "final" },
  }
end

-- Compiled rule set (tags are configurable).
function M.rules(open_tag, close_tag)
  return relay.rules(M.rule_list(open_tag, close_tag))
end

return M
