local dir = os.getenv("RELAY_LUA_TESTS") or (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".")
local T = dofile(dir .. "/testlib.lua")
-- relay.history: reasoning blocks out of assistant messages, losslessly.
local history = require("relay.history")
local relay = require("relay")
local O, C = "<think>", "</think>"

-- clean(): the text rules
local cases = {
  { "<think>\nplan\n</think>\n\nAnswer", "Answer" },
  { "\n<think>plan</think>\nAnswer", "Answer" },
  { "Before <think>x</think> after", "Before  after" },
  { "<think>a</think>b<think>c</think>d", "bd" },
  { "plan only</think>\n\nAnswer", "Answer" },         -- template opened the block
  { "<think>cut off by max_tokens", "" },
  { "Answer <think>unclosed", "Answer " },
  { "no tags at all", "no tags at all" },
  { "ünïcödé <think>思考</think>答え", "ünïcödé 答え" },
}
for _, c in ipairs(cases) do
  local got, changed = history.clean(c[1], O, C)
  T.eq(got, c[2], "clean(" .. c[1] .. ")")
  T.eq(changed, c[1] ~= c[2], "changed flag for " .. c[1])
end
T.eq((history.clean("[THINK]x[/THINK]y", "[THINK]", "[/THINK]")), "y", "other tags")

-- strip(): only assistant messages, only their content, everything else byte for byte
local body = '{"model":"qwen3-32b","messages":[' ..
  '{"role":"system","content":"You think in <think> tags."},' ..
  '{"role":"user","content":"hi \\u00e9 \\/ <think>keep</think>"},' ..
  '{"role":"assistant","content":"<think>\\nThe user greets.\\n</think>\\n\\nHello!"},' ..
  '{"role":"user","content":"2+2?"}' ..
  '],"temperature":0.60,"max_tokens":1e3,"stop":[],"stream":true}'
local want = '{"model":"qwen3-32b","messages":[' ..
  '{"role":"system","content":"You think in <think> tags."},' ..
  '{"role":"user","content":"hi \\u00e9 \\/ <think>keep</think>"},' ..
  '{"role":"assistant","content":"Hello!"},' ..
  '{"role":"user","content":"2+2?"}' ..
  '],"temperature":0.60,"max_tokens":1e3,"stop":[],"stream":true}'
T.eq(history.strip(body, O, C), want, "strip")

-- nothing to do: the same string comes back (no copy, no re-encoding)
local clean = '{"messages":[{"role":"assistant","content":"Hello!"}],"x":1.0}'
T.ok(rawequal(history.strip(clean, O, C), clean), "unchanged body returned as is")
T.eq(history.strip("not json <think>", O, C), "not json <think>", "not JSON: unchanged")
T.eq(history.strip('{"prompt":"<think>x</think>"}', O, C), '{"prompt":"<think>x</think>"}', "no messages")
T.eq(history.strip('{"messages":{"role":"assistant"}} <think>', O, C), '{"messages":{"role":"assistant"}} <think>', "odd shapes are left")

-- content as an array of parts; pretty-printed JSON keeps its layout
local parts = '{\n  "messages": [\n    {\n      "role": "assistant",\n      "content": [\n        {"type": "text", "text": "<think>r</think>A"},\n        {"type": "image_url", "image_url": {"url": "x<think>"}}\n      ]\n    }\n  ]\n}'
local parts_want = '{\n  "messages": [\n    {\n      "role": "assistant",\n      "content": [\n        {"type": "text", "text": "A"},\n        {"type": "image_url", "image_url": {"url": "x<think>"}}\n      ]\n    }\n  ]\n}'
T.eq(history.strip(parts, O, C), parts_want, "content parts")

-- null content (tool calls) is left alone
local tools = '{"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\\"q\\":\\"<think>\\"}"}}]},{"role":"tool","tool_call_id":"c1","content":"<think>x</think>"}]}'
T.ok(rawequal(history.strip(tools, O, C), tools), "tool calls and tool results untouched")

-- keep_current_turn: assistant messages after the last user message stay
local loop = '{"messages":[{"role":"user","content":"q1"},{"role":"assistant","content":"<think>a</think>A"},' ..
  '{"role":"user","content":"q2"},{"role":"assistant","content":"<think>b</think>","tool_calls":[]},{"role":"tool","content":"r"}]}'
T.eq(history.strip(loop, O, C, { keep_current_turn = true }),
  '{"messages":[{"role":"user","content":"q1"},{"role":"assistant","content":"A"},' ..
  '{"role":"user","content":"q2"},{"role":"assistant","content":"<think>b</think>","tool_calls":[]},{"role":"tool","content":"r"}]}',
  "keep_current_turn")
T.eq(history.strip(loop, O, C),
  '{"messages":[{"role":"user","content":"q1"},{"role":"assistant","content":"A"},' ..
  '{"role":"user","content":"q2"},{"role":"assistant","content":"","tool_calls":[]},{"role":"tool","content":"r"}]}',
  "all turns")

-- fields: reasoning members that field-mode clients send back
local f = '{"messages":[{"role":"assistant","content":"A","reasoning_content":"r","x":1},{"role":"user","content":"q","reasoning_content":"keep"}]}'
T.eq(history.strip(f, O, C, { fields = { "reasoning_content", "reasoning" } }),
  '{"messages":[{"role":"assistant","content":"A","x":1},{"role":"user","content":"q","reasoning_content":"keep"}]}', "fields")

-- the current tags, whatever they are
local k = '{"messages":[{"role":"assistant","content":"<reasoning>x</reasoning>Y"}]}'
T.eq(history.strip(k, "<reasoning>", "</reasoning>"), '{"messages":[{"role":"assistant","content":"Y"}]}', "custom tags")

-- errors
T.raises("body must be a string", history.strip, nil, O, C)
T.raises("open tag must be a non-empty string", history.strip, "{}", "", C)
T.raises("close tag must be a non-empty string", history.strip, "{}", O, nil)
T.raises("options must be a table", history.strip, "{}", O, C, true)
T.raises("text must be a string", history.clean, 1, O, C)

-- a long history stays linear enough: 300 turns
local msgs = {}
for i = 1, 300 do
  msgs[#msgs + 1] = '{"role":"user","content":"q' .. i .. '"}'
  msgs[#msgs + 1] = '{"role":"assistant","content":"<think>' .. string.rep("r", 200) .. '</think>A' .. i .. '"}'
end
local big = '{"messages":[' .. table.concat(msgs, ",") .. ']}'
local out = history.strip(big, O, C)
T.ok(not out:find("<think>", 1, true), "all blocks removed")
T.ok(out:find('"A300"', 1, true) ~= nil, "answers kept")

-- the same result as the one-edit-at-a-time method it replaced (relay.json.set per
-- message), on a history with every kind of message, content parts and fields
local function strip_one_by_one(body, open_tag, close_tag, fields)
  local doc = require("cjson").decode(body)
  local out = body
  for i, m in ipairs(doc.messages) do
    if m.role == "assistant" then
      if type(m.content) == "string" then
        local new, changed = history.clean(m.content, open_tag, close_tag)
        if changed then out = assert(relay.json.set(out, { "messages", i, "content" }, new)) end
      elseif type(m.content) == "table" then
        for k, part in ipairs(m.content) do
          if part.type == "text" then
            local new, changed = history.clean(part.text, open_tag, close_tag)
            if changed then out = assert(relay.json.set(out, { "messages", i, "content", k, "text" }, new)) end
          end
        end
      end
      for _, f in ipairs(fields) do
        if m[f] ~= nil then out = assert(relay.json.remove(out, { "messages", i, f })) end
      end
    end
  end
  return out
end
local mixed = {}
for i = 1, 200 do
  local k = i % 5
  if k == 0 then
    mixed[#mixed + 1] = '{"role":"user","content":"q<think>' .. i .. '</think>"}'
  elseif k == 1 then
    mixed[#mixed + 1] = '{"role":"assistant","content":"<think>r' .. i .. '</think>\\n a\\u00e9' .. i .. '","reasoning_content":"x"}'
  elseif k == 2 then
    mixed[#mixed + 1] = '{ "role" : "assistant", "content" : [ {"type":"text","text":"<think>p</think>t' .. i ..
      '"}, {"type":"image_url","image_url":{"url":"u"}}, {"type":"text","text":"plain"} ], "reasoning" : null }'
  elseif k == 3 then
    mixed[#mixed + 1] = '{"role":"assistant","content":null,"tool_calls":[{"id":"c' .. i .. '"}],"reasoning":"r"}'
  else
    mixed[#mixed + 1] = '{"role":"assistant","content":"no tags ' .. i .. '"}'
  end
end
local mixed_body = '{"model":"m", "messages": [\n' .. table.concat(mixed, ",\n") .. '\n], "stream":true}'
local fields = { "reasoning_content", "reasoning" }
T.eq(history.strip(mixed_body, O, C, { fields = fields }), strip_one_by_one(mixed_body, O, C, fields),
  "batch strip = one edit at a time")
T.eq(history.strip(mixed_body, O, C), strip_one_by_one(mixed_body, O, C, {}), "batch strip = one edit at a time (no fields)")

-- 8,000 messages: linear (one relay.json.set per message took seconds here)
local many = {}
for i = 1, 4000 do
  many[#many + 1] = '{"role":"user","content":"q' .. i .. '"}'
  many[#many + 1] = '{"role":"assistant","content":"<think>' .. string.rep("r", 20) .. '</think>A' .. i .. '"}'
end
local huge = '{"messages":[' .. table.concat(many, ",") .. ']}'
local t0 = os.clock()
local stripped = history.strip(huge, O, C)
local took = os.clock() - t0
T.ok(not stripped:find("<think>", 1, true), "8,000 messages: all blocks removed")
T.ok(stripped:find('"A4000"', 1, true) ~= nil, "8,000 messages: answers kept")
T.ok(took < 1, ("8,000 messages stripped in %.2f s of CPU"):format(took)) -- 2.5 s before relay.json.edit

T.done("test_history")
