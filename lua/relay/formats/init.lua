-- Reasoning-format presets, chosen by name or by model name.
--
--   local formats = require("relay.formats")
--   formats.get("think")                           --> the think preset
--   formats.get("qwen3")                           --> think (by model name)
--   formats.for_model("deepseek-r1-distill-qwen-32b") --> think_open, "deepseek%-r1"
--   formats.rules("gpt-oss-20b")                   --> compiled harmony rules (cached)
--
-- A preset is a table {name, description, models, open_tag, close_tag,
-- rule_list(open_tag, close_tag), rules(open_tag, close_tag)}.
local M = {}

-- Every preset, by name.
M.names = { "harmony", "harmony_plain", "think", "think_open", "kimi", "magistral", "seed", "cohere" }

-- The order in which for_model() tries the presets' model patterns: the
-- first pattern that matches wins, so the more specific presets come first
-- (think_open's "qwen3.*thinking" before think's "qwen3"). harmony_plain is
-- opt-in and has no patterns.
M.order = { "harmony", "think_open", "think", "kimi", "magistral", "seed", "cohere" }

local known = {}
for _, n in ipairs(M.names) do known[n] = true end

local loaded = {}

local function load(name)
  local p = loaded[name]
  if not p then
    p = require("relay.formats." .. name)
    loaded[name] = p
  end
  return p
end

-- for_model(model) -> preset, pattern | nil
-- The first preset (in M.order) with a pattern found in the model string,
-- matched case-insensitively (the string is lower-cased; patterns are lower
-- case). Organisation prefixes and quantisation suffixes do not matter:
-- "unsloth/DeepSeek-R1-Distill-Qwen-32B-GGUF" and "deepseek-r1:32b" both match.
function M.for_model(model)
  if type(model) ~= "string" then error("model must be a string (got " .. type(model) .. ")", 2) end
  local m = model:lower()
  for _, name in ipairs(M.order) do
    local p = load(name)
    for _, pat in ipairs(p.models or {}) do
      if m:find(pat) then return p, pat end
    end
  end
  return nil
end

-- get(name) -> preset: a preset name from M.names, else a model name
-- (for_model). Unknown names raise an error that lists the presets.
function M.get(name)
  if type(name) ~= "string" then error("format name must be a string (got " .. type(name) .. ")", 2) end
  if known[name] then return load(name) end
  local p = M.for_model(name)
  if p then return p end
  error(string.format("unknown format '%s' (presets: %s; or a model name they know)", name,
    table.concat(M.names, ", ")), 2)
end

-- list() -> array of every preset table, in M.names order.
function M.list()
  local out = {}
  for i, n in ipairs(M.names) do out[i] = load(n) end
  return out
end

local cache = {}

-- rules(name_or_preset [, open_tag, close_tag]) -> compiled rule set.
-- Rule sets are compiled once per preset and tag pair and then shared, so
-- this is cheap to call per request.
function M.rules(which, open_tag, close_tag)
  local p
  if type(which) == "table" then
    p = which
    if type(p.rules) ~= "function" then error("preset table has no rules function", 2) end
  else
    if type(which) ~= "string" then error("format name must be a string or a preset table", 2) end
    if known[which] then
      p = load(which)
    else
      p = M.for_model(which)
      if not p then
        error(string.format("unknown format '%s' (presets: %s)", which, table.concat(M.names, ", ")), 2)
      end
    end
  end
  if open_tag ~= nil and type(open_tag) ~= "string" then error("open tag must be a string", 2) end
  if close_tag ~= nil and type(close_tag) ~= "string" then error("close tag must be a string", 2) end
  local key = table.concat({ p.name or tostring(p), open_tag or "", close_tag or "" }, "\0")
  local rs = cache[key]
  if not rs then
    local ok, res = pcall(p.rules, open_tag, close_tag)
    if not ok then error(res, 2) end
    rs = res
    cache[key] = rs
  end
  return rs
end

-- rewrite(name_or_preset [, opts]) -> a table for relay.route{rewrite = ...}
-- or an on_request decision: {parser = the preset's (harmony) or "rules",
-- rules = ..., mode = opts.mode, field = opts.field, open_tag/close_tag (the
-- preset's unless opts give them), tool_calls = opts.tool_calls,
-- upstream_reasoning = opts.upstream_reasoning} plus any hooks in opts
-- (on_text, on_event, on_body, on_end). opts.parser = "rules" keeps a
-- harmony preset on its rules.
function M.rewrite(which, opts)
  if opts ~= nil and type(opts) ~= "table" then error("options must be a table", 2) end
  opts = opts or {}
  local ok, rs = pcall(M.rules, which, opts.open_tag, opts.close_tag)
  if not ok then error(rs, 2) end
  local p = type(which) == "table" and which or M.get(which)
  return {
    parser = opts.parser or p.parser or "rules",
    rules = rs,
    tool_calls = opts.tool_calls,
    upstream_reasoning = opts.upstream_reasoning,
    open_tag = opts.open_tag or p.open_tag,
    close_tag = opts.close_tag or p.close_tag,
    mode = opts.mode,
    field = opts.field,
    on_text = opts.on_text,
    on_event = opts.on_event,
    on_body = opts.on_body,
    on_end = opts.on_end,
  }
end

-- features() -> {anchored = bool, prefix = bool}: rule-set features of this
-- relay's replacer (see relay.formats.features).
function M.features()
  return require("relay.formats.features").get()
end

return M
