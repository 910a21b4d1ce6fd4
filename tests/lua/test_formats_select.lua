local dir = os.getenv("RELAY_LUA_TESTS") or (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".")
local T = dofile(dir .. "/testlib.lua")
-- relay.formats: choosing presets by name and by model name; preset shape.
local relay = require("relay")
local formats = require("relay.formats")

-- every preset has the documented shape
for _, name in ipairs(formats.names) do
  local p = formats.get(name)
  T.eq(p.name, name, "preset name")
  T.eq(type(p.rules), "function", name .. ".rules")
  T.eq(type(p.rule_list), "function", name .. ".rule_list")
  T.eq(type(p.models), "table", name .. ".models")
  T.eq(p.open_tag, "<think>", name .. " default open tag")
  T.eq(p.close_tag, "</think>", name .. " default close tag")
  T.eq(type(p.description), "string", name .. ".description")
  local list = p.rule_list("<r>", "</r>")
  T.ok(#list >= 1, name .. " has rules")
  T.eq(type(list.states), "table", name .. " names its states")
  T.eq(type(list.reasoning), "table", name .. " names its reasoning states")
  -- patterns are matched lower-case: they must be lower case themselves
  for _, pat in ipairs(p.models) do T.eq(pat, pat:lower(), name .. " model pattern is lower case") end
end
T.eq(#formats.list(), #formats.names, "list()")

-- by model name: case-insensitive, with org prefixes and quantisation suffixes
local cases = {
  { "deepseek-r1-distill-qwen-32b", "think_open" },
  { "unsloth/DeepSeek-R1-Distill-Qwen-32B-GGUF", "think_open" },
  { "deepseek-r1:32b", "think_open" },
  { "deepseek-ai/DeepSeek-R1-0528", "think_open" },
  { "Qwen/QwQ-32B", "think_open" },
  { "qwen3-30b-a3b-thinking-2507", "think_open" },
  { "Qwen/Qwen3-32B", "think" },
  { "qwen3:8b", "think" },
  { "zai-org/GLM-4.5-Air", "think" },
  { "glm-4.6", "think" },
  { "MiniMaxAI/MiniMax-M2", "think" },
  { "moonshotai/Kimi-K2-Thinking", "think" },
  { "mistralai/Magistral-Small-2506", "think" },
  { "moonshotai/Kimi-VL-A3B-Thinking-2506", "kimi" },
  { "mistralai/Magistral-Small-2509", "magistral" },
  { "magistral-medium-latest", "magistral" },
  { "ByteDance-Seed/Seed-OSS-36B-Instruct", "seed" },
  { "CohereLabs/command-a-reasoning-08-2025", "cohere" },
  { "openai/gpt-oss-120b", "harmony" },
  { "gpt-oss:20b", "harmony" },
}
for _, c in ipairs(cases) do
  local p, pat = formats.for_model(c[1])
  T.eq(p and p.name, c[2], "for_model(" .. c[1] .. ")")
  T.eq(type(pat), "string", "for_model returns the pattern")
  T.eq(formats.get(c[1]).name, c[2], "get(" .. c[1] .. ")")
end
T.eq(formats.for_model("llama-3.1-8b-instruct"), nil, "unknown model")
T.eq(formats.for_model(""), nil, "empty model")
T.eq(formats.get("qwen3").name, "think", "get by model-ish name")
-- harmony_plain is opt-in: no model selects it
for _, c in ipairs(cases) do T.ok(formats.for_model(c[1]).name ~= "harmony_plain", "harmony_plain not chosen") end

-- errors
T.raises("model must be a string", formats.for_model, nil)
T.raises("format name must be a string", formats.get, 42)
T.raises("unknown format 'nope'", formats.get, "nope")
T.raises("unknown format 'nope'", formats.rules, "nope")
T.raises("open tag must be a string", formats.rules, "think", 1)
T.raises("close tag must be a string", formats.rules, "think", "<a>", {})
T.raises("options must be a table", formats.rewrite, "think", "field")
local err = T.raises("unknown format", function() formats.get("nope") end)
T.ok(err:find("test_formats_select.lua:%d+:") ~= nil, "errors name the caller's line: " .. err)

-- rules() compiles once per preset and tag pair
T.eq(formats.rules("think"), formats.rules("think"), "rules are cached")
T.eq(formats.rules("qwen3"), formats.rules("think"), "model name and preset share the cache")
T.ok(formats.rules("think", "<a>", "</a>") ~= formats.rules("think"), "tags are part of the key")
local own = formats.rules(require("relay.formats.seed"))
T.eq(T.run(own, { "<seed:think>x</seed:think>y" }), "<think>x</think>y", "preset table accepted")
T.raises("no rules function", formats.rules, {})

-- rewrite() builds a route/decision table
local rw = formats.rewrite("magistral", { mode = "field", field = "reasoning" })
T.eq(rw.rules, formats.rules("magistral"), "rewrite.rules")
T.eq(rw.mode, "field", "rewrite.mode")
T.eq(rw.field, "reasoning", "rewrite.field")
local rw2 = formats.rewrite("think", { open_tag = "<x>", close_tag = "</x>" })
T.eq(T.run(rw2.rules, { "<think>a</think>b" }), "<x>a</x>b", "rewrite with tags")
T.eq(rw2.mode, nil, "mode defaults to the route's default")
T.eq(rw2.parser, "rules", "a pair preset is read by its rules")
T.eq(rw2.open_tag, "<x>", "the given tags go to the filter too")
local rh = formats.rewrite("gpt-oss-20b")
T.eq(rh.parser, "harmony", "the harmony preset is read by the harmony parser")
T.eq(rh.open_tag, "<think>", "the preset's tags")
T.eq(rh.tool_calls, nil, "tool calls: the route's default (on)")
local rh2 = formats.rewrite("harmony", { parser = "rules", tool_calls = false, upstream_reasoning = false })
T.eq(rh2.parser, "rules", "opts.parser keeps the rules")
T.eq(rh2.tool_calls, false, "rewrite.tool_calls")
T.eq(rh2.upstream_reasoning, false, "rewrite.upstream_reasoning")

-- features() answers both questions with booleans
local f = formats.features()
T.eq(type(f.anchored), "boolean", "features.anchored")
T.eq(type(f.prefix), "boolean", "features.prefix")

-- the pair module keeps its API and checks its arguments
local pair = require("relay.formats.pair")
T.eq(T.run(pair.rules("[[", "]]"), { "a[[b]]c" }), "a<think>b</think>c", "pair.rules default tags")
T.eq(T.run(pair.rules("[[", "]]", "(", ")"), { "a[[b]]c" }), "a(b)c", "pair.rules tags")
T.raises("open pattern must be a non-empty string", pair.rules, "", "]]")
T.raises("close pattern must be a non-empty string", pair.rules, "[[", nil)
T.raises("open tag must be a string", pair.rules, "[[", "]]", 5)
local l = pair.rule_list("<t>", "</t>", nil, nil, { start_inside = true })
T.eq(l.states[1], "inside", "start_inside begins in the reasoning state")
T.eq(l.prefix, "<think>", "start_inside asks for the open tag as prefix")

-- harmony keeps its API
local h = require("relay.formats.harmony")
T.eq(T.run(h.rules("<a>", "</a>"), { "<|channel|>analysis<|message|>x<|channel|>final<|message|>y" }), "<a>x</a>y", "harmony.rules tags")

T.done("test_formats_select")
