-- gpt-oss harmony rendered WITHOUT its special tokens, as some servers print it:
--   "analysisUser asks for a greeting.assistantfinalHello!"
-- Opt-in only (never chosen by model name): the words are ordinary text, so the
-- opening "analysis" is recognised only as the very first bytes of the
-- completion (an anchored rule), never in the middle of prose. Once the first
-- bytes rule it out, the stream passes through unchanged. Inside the analysis,
-- "assistantfinal" closes it, "assistantanalysis" continues it, and
-- "assistantcommentary" (a tool call) closes it and is kept.
-- Needs a relay whose replacer supports anchored rules (relay.rules rule field
-- `anchored = true`); rules() raises an error otherwise rather than risk firing
-- inside prose.
local relay = require("relay")

local M = {
  name = "harmony_plain",
  description = "harmony without special tokens: analysis...assistantfinal...",
  open_tag = "<think>",
  close_tag = "</think>",
  models = {}, -- opt-in
}

function M.rule_list(open_tag, close_tag)
  if open_tag ~= nil and type(open_tag) ~= "string" then error("open tag must be a string", 2) end
  if close_tag ~= nil and type(close_tag) ~= "string" then error("close tag must be a string", 2) end
  open_tag = open_tag or M.open_tag
  close_tag = close_tag or M.close_tag
  return {
    -- start: only the anchored rule; final: after the answer starts, no rules.
    states = { "start", "analysis", "final" },
    reasoning = { "analysis" },
    { from = "start", pattern = "analysis", replace = open_tag, to = "analysis", anchored = true },
    { from = "analysis", pattern = "assistantfinal", replace = close_tag, to = "final" },
    { from = "analysis", pattern = "assistantanalysis", replace = "", to = "analysis" },
    { from = "analysis", pattern = "assistantcommentary", replace = close_tag .. "assistantcommentary", to = "final" },
  }
end

function M.rules(open_tag, close_tag)
  local list = M.rule_list(open_tag, close_tag)
  if not require("relay.formats.features").get().anchored then
    error("harmony_plain needs anchored rules, which this relay's replacer lacks", 2)
  end
  return relay.rules(list)
end

return M
