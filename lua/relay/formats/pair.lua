-- A single open/close pair: the behaviour of the original Rust relay, and the
-- building block of most other formats (<think>...</think> and friends).
local relay = require("relay")

local M = {}

local function check_pattern(p, what, level)
  if type(p) ~= "string" or p == "" then error(what .. " pattern must be a non-empty string", level + 1) end
end

local function check_tag(t, what, level)
  if t ~= nil and type(t) ~= "string" then error(what .. " tag must be a string", level + 1) end
end

-- rule_list(open_pattern, close_pattern, open_tag, close_tag [, opts]): the rule
-- table, so that presets and scripts can extend it before compiling.
-- opts.start_inside = true starts in the reasoning state (for chat templates
-- that open the block themselves, so the output carries only the close
-- pattern): the rule set then asks for open_tag as its `prefix`, and an
-- explicit open pattern inside the reasoning (an older template that did not
-- open the block, so the model wrote it) is swallowed. That rule is not
-- anchored: a state's rules are all anchored or none, and "inside" also needs
-- the close pattern anywhere.
function M.rule_list(open_pattern, close_pattern, open_tag, close_tag, opts)
  check_pattern(open_pattern, "open", 2)
  check_pattern(close_pattern, "close", 2)
  check_tag(open_tag, "open", 2)
  check_tag(close_tag, "close", 2)
  if opts ~= nil and type(opts) ~= "table" then error("options must be a table", 2) end
  open_tag = open_tag or "<think>"
  close_tag = close_tag or "</think>"
  if opts and opts.start_inside then
    return {
      states = { "inside", "outside" },
      reasoning = { "inside" },
      prefix = open_tag,
      { from = "inside", pattern = open_pattern, replace = "", to = "inside" },
      { from = "inside", pattern = close_pattern, replace = close_tag, to = "outside" },
      { from = "outside", pattern = open_pattern, replace = open_tag, to = "inside" },
    }
  end
  return {
    states = { "outside", "inside" },
    reasoning = { "inside" },
    { from = "outside", pattern = open_pattern, replace = open_tag, to = "inside" },
    { from = "inside", pattern = close_pattern, replace = close_tag, to = "outside" },
  }
end

-- rules(open_pattern, close_pattern, open_tag, close_tag)
function M.rules(open_pattern, close_pattern, open_tag, close_tag)
  check_pattern(open_pattern, "open", 2)
  check_pattern(close_pattern, "close", 2)
  check_tag(open_tag, "open", 2)
  check_tag(close_tag, "close", 2)
  return relay.rules(M.rule_list(open_pattern, close_pattern, open_tag, close_tag))
end

-- A preset module for one pair of markers (used by think, kimi, magistral,
-- seed, cohere). spec: name, open_pattern, close_pattern, models,
-- description, start_inside, extra (function(open_tag, close_tag) -> list of
-- extra rules appended to the pair's).
function M.preset(spec)
  local P = {
    name = spec.name,
    description = spec.description,
    open_pattern = spec.open_pattern,
    close_pattern = spec.close_pattern,
    open_tag = "<think>",
    close_tag = "</think>",
    models = spec.models or {},
    start_inside = spec.start_inside or false,
  }
  function P.rule_list(open_tag, close_tag)
    check_tag(open_tag, "open", 2)
    check_tag(close_tag, "close", 2)
    open_tag = open_tag or P.open_tag
    close_tag = close_tag or P.close_tag
    local list = M.rule_list(P.open_pattern, P.close_pattern, open_tag, close_tag,
      { start_inside = P.start_inside })
    if spec.extra then
      for _, r in ipairs(spec.extra(open_tag, close_tag)) do list[#list + 1] = r end
    end
    return list
  end
  function P.rules(open_tag, close_tag)
    check_tag(open_tag, "open", 2)
    check_tag(close_tag, "close", 2)
    return relay.rules(P.rule_list(open_tag, close_tag))
  end
  return P
end

return M
