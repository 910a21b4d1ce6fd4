-- A single open/close pair: the behaviour of the original Rust relay, and the
-- building block of most other formats (<think>...</think> and friends).
local relay = require("relay")

local M = {}

-- rules(open_pattern, close_pattern, open_tag, close_tag)
function M.rules(open_pattern, close_pattern, open_tag, close_tag)
  if type(open_pattern) ~= "string" or open_pattern == "" then error("open pattern must be a non-empty string", 2) end
  if type(close_pattern) ~= "string" or close_pattern == "" then error("close pattern must be a non-empty string", 2) end
  return relay.rules({
    states = { "outside", "inside" },
    reasoning = { "inside" },
    { from = "outside", pattern = open_pattern, replace = open_tag or "<think>", to = "inside" },
    { from = "inside", pattern = close_pattern, replace = close_tag or "</think>", to = "outside" },
  })
end

return M
