-- History hygiene: take the reasoning blocks out of the assistant messages a
-- client sends back, so that earlier turns' reasoning does not fill the
-- context (the chat templates of DeepSeek-R1, Qwen3 and gpt-oss drop it too).
--
--   local history = require("relay.history")
--   body = history.strip(body, "<think>", "</think>")
--
-- The body is edited with relay.json.edit, which rewrites only the strings it
-- changes: every other byte (key order, numbers, escapes, whitespace) stays as
-- the client sent it. All edits go in one batch, read against the body as
-- sent, so the cost is linear in the body whatever the number of messages
-- (one relay.json.set per message re-read the whole body each time: 8,000
-- messages took seconds). When nothing changes, the very same string is
-- returned.
local relay = require("relay")

local M = {}

local function is_space(c)
  return c == " " or c == "\n" or c == "\r" or c == "\t"
end

-- clean(text, open_tag, close_tag) -> text without reasoning blocks, changed?
-- A block runs from open_tag to the next close_tag; an open_tag with no close
-- runs to the end. A close_tag before any open_tag, when it is the first tag
-- in the text, ends a block that started at the beginning (templates that
-- open the block themselves). Whitespace right after a block at the start of
-- the text goes with it; other text is kept exactly.
function M.clean(text, open_tag, close_tag)
  if type(text) ~= "string" then error("text must be a string", 2) end
  if type(open_tag) ~= "string" or open_tag == "" then error("open tag must be a non-empty string", 2) end
  if type(close_tag) ~= "string" or close_tag == "" then error("close tag must be a non-empty string", 2) end
  local o = text:find(open_tag, 1, true)
  local c = text:find(close_tag, 1, true)
  if not o and not c then return text, false end
  local out = {}
  local pos = 1
  local kept = false -- any text kept so far
  if c and (not o or c < o) then
    pos = c + #close_tag -- orphan close: the text began inside a block
    while pos <= #text and is_space(text:sub(pos, pos)) do pos = pos + 1 end
  end
  while pos <= #text do
    local s = text:find(open_tag, pos, true)
    if not s then
      out[#out + 1] = text:sub(pos)
      break
    end
    if s > pos then
      out[#out + 1] = text:sub(pos, s - 1)
      kept = kept or text:sub(pos, s - 1):find("%S") ~= nil
    end
    local e = text:find(close_tag, s + #open_tag, true)
    if not e then break end -- unclosed: reasoning to the end
    pos = e + #close_tag
    if not kept then
      while pos <= #text and is_space(text:sub(pos, pos)) do pos = pos + 1 end
      -- whitespace before the first block is dropped too
      out = {}
    end
  end
  return table.concat(out), true
end

local function json_decode(s)
  local ok, cjson = pcall(require, "cjson")
  if not ok then return nil end
  local ok2, v = pcall(cjson.decode, s)
  if ok2 then return v end
  return nil
end

-- strip(body, open_tag, close_tag [, opts]) -> body
-- body: a raw chat-completions request (JSON text). For each message with
-- "role": "assistant", the reasoning blocks are removed from "content" when it
-- is a string, or from the "text" of each {"type": "text"} part when it is an
-- array. opts:
--   keep_current_turn = true  leave the assistant messages after the last
--                             "user" message alone (tool-calling loops of
--                             models that want their reasoning back)
--   fields = {"reasoning_content", "reasoning"}  also remove these members
--                             from assistant messages
-- A body that is not JSON, or has no "messages" array, is returned unchanged.
function M.strip(body, open_tag, close_tag, opts)
  if type(body) ~= "string" then error("body must be a string", 2) end
  if type(open_tag) ~= "string" or open_tag == "" then error("open tag must be a non-empty string", 2) end
  if type(close_tag) ~= "string" or close_tag == "" then error("close tag must be a non-empty string", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("options must be a table", 2) end
  opts = opts or {}
  local fields = opts.fields or {}
  if type(fields) ~= "table" then error("opts.fields must be a list of member names", 2) end
  -- Cheap exit: no tag and no field name anywhere in the text.
  local maybe = body:find(open_tag, 1, true) or body:find(close_tag, 1, true)
  for _, f in ipairs(fields) do maybe = maybe or body:find('"' .. f .. '"', 1, true) end
  if not maybe then return body end
  local doc = json_decode(body)
  if type(doc) ~= "table" or type(doc.messages) ~= "table" then return body end
  local msgs = doc.messages
  local last = #msgs + 1
  if opts.keep_current_turn then
    for i = #msgs, 1, -1 do
      if type(msgs[i]) == "table" and msgs[i].role == "user" then
        last = i
        break
      end
    end
  end
  local edits = {}
  for i = 1, math.min(#msgs, last - 1) do
    local m = msgs[i]
    if type(m) == "table" and m.role == "assistant" then
      local content = m.content
      if type(content) == "string" then
        local new, changed = M.clean(content, open_tag, close_tag)
        if changed then edits[#edits + 1] = { path = { "messages", i, "content" }, value = new } end
      elseif type(content) == "table" then
        for k, part in ipairs(content) do
          if type(part) == "table" and part.type == "text" and type(part.text) == "string" then
            local new, changed = M.clean(part.text, open_tag, close_tag)
            if changed then edits[#edits + 1] = { path = { "messages", i, "content", k, "text" }, value = new } end
          end
        end
      end
      for _, f in ipairs(fields) do
        if m[f] ~= nil then edits[#edits + 1] = { path = { "messages", i, f }, remove = true } end
      end
    end
  end
  if #edits == 0 then return body end
  -- The paths come from the decoded body, so they exist; a body that lua-cjson
  -- reads but the strict splicer refuses (NaN, hex numbers) stays as it was.
  return relay.json.edit(body, edits) or body
end

return M
