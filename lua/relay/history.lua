-- History hygiene: what to do with the reasoning a client sends back. Earlier
-- turns' reasoning is dropped, so that it does not fill the context (the chat
-- templates of DeepSeek-R1, Qwen3 and gpt-oss drop it too); the current tool
-- loop's is handed to the upstream in the member its template renders as the
-- analysis, because gpt-oss uses its own analysis between tool calls.
--
--   local history = require("relay.history")
--   body = history.prepare(body, { field = "reasoning_content" })
--   body = history.strip(body, "<think>", "</think>")   -- the older, all-turns rule
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

-- scan(text, open_tag, close_tag) -> rest, reasoning, found, kept_any
-- The one reading of a text that clean() and extract() share. A block runs
-- from open_tag to the next close_tag; an open_tag with no close runs to the
-- end. A close_tag before any open_tag, when it is the first tag in the text,
-- ends a block that started at the beginning (templates that open the block
-- themselves). Whitespace right after a block at the start of the text goes
-- with it; other text is kept exactly. rest is the text outside the blocks,
-- reasoning the text inside them, concatenated in order (as llama.cpp
-- concatenates several analysis messages into one reasoning_content).
local function scan(text, open_tag, close_tag)
  local o = text:find(open_tag, 1, true)
  local c = text:find(close_tag, 1, true)
  if not o and not c then return text, "", false end
  local out, inner = {}, {}
  local pos = 1
  local kept = false -- any text kept so far
  if c and (not o or c < o) then
    inner[1] = text:sub(1, c - 1) -- orphan close: the text began inside a block
    pos = c + #close_tag
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
    if not e then -- unclosed: reasoning to the end
      inner[#inner + 1] = text:sub(s + #open_tag)
      break
    end
    inner[#inner + 1] = text:sub(s + #open_tag, e - 1)
    pos = e + #close_tag
    if not kept then
      while pos <= #text and is_space(text:sub(pos, pos)) do pos = pos + 1 end
      -- whitespace before the first block is dropped too
      out = {}
    end
  end
  return table.concat(out), table.concat(inner), true
end

local function check_tags(open_tag, close_tag, level)
  if type(open_tag) ~= "string" or open_tag == "" then error("open tag must be a non-empty string", level + 1) end
  if type(close_tag) ~= "string" or close_tag == "" then error("close tag must be a non-empty string", level + 1) end
end

-- clean(text, open_tag, close_tag) -> text without reasoning blocks, changed?
-- The blocks as scan() reads them are removed; all other text is kept exactly.
function M.clean(text, open_tag, close_tag)
  if type(text) ~= "string" then error("text must be a string", 2) end
  check_tags(open_tag, close_tag, 2)
  local rest, _, found = scan(text, open_tag, close_tag)
  return rest, found
end

-- extract(text, open_tag, close_tag) -> rest, reasoning, found
-- rest is what clean() returns; reasoning is the text that was inside the
-- blocks, concatenated in order ("" when there was none); found says whether
-- any tag was there at all.
function M.extract(text, open_tag, close_tag)
  if type(text) ~= "string" then error("text must be a string", 2) end
  check_tags(open_tag, close_tag, 2)
  return scan(text, open_tag, close_tag)
end

-- lua-cjson's null, or a value nothing equals when cjson is missing
local NULL = {}
do
  local ok, cjson = pcall(require, "cjson")
  if ok then NULL = cjson.null end
end

local function json_decode(s)
  local ok, cjson = pcall(require, "cjson")
  if not ok then return nil end
  local ok2, v = pcall(cjson.decode, s)
  if ok2 then return v end
  return nil
end

-- The reasoning blocks of one assistant message of an earlier turn are
-- removed from its content, and its reasoning members are dropped.
local function strip_earlier(edits, i, m, open_tag, close_tag, drop)
  local content = m.content
  if type(content) == "string" then
    local new, _, found = scan(content, open_tag, close_tag)
    if found then edits[#edits + 1] = { path = { "messages", i, "content" }, value = new } end
  elseif type(content) == "table" then
    for k, part in ipairs(content) do
      if type(part) == "table" and part.type == "text" and type(part.text) == "string" then
        local new, _, found = scan(part.text, open_tag, close_tag)
        if found then edits[#edits + 1] = { path = { "messages", i, "content", k, "text" }, value = new } end
      end
    end
  end
  for _, f in ipairs(drop) do
    if m[f] ~= nil then edits[#edits + 1] = { path = { "messages", i, f }, remove = true } end
  end
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
  check_tags(open_tag, close_tag, 2)
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
    if type(m) == "table" and m.role == "assistant" then strip_earlier(edits, i, m, open_tag, close_tag, fields) end
  end
  if #edits == 0 then return body end
  -- The paths come from the decoded body, so they exist; a body that lua-cjson
  -- reads but the strict splicer refuses (NaN, hex numbers) stays as it was.
  return relay.json.edit(body, edits) or body
end


-- ---------------------------------------------------------------------------
-- prepare(): the whole request side of "reasoning in every dialect".

-- The members in which clients send reasoning back; all three are dropped
-- from earlier turns by default. llama.cpp reads reasoning_content, vLLM and
-- Ollama read reasoning, mlx_lm (the Hugging Face gpt-oss template) thinking.
M.REASONING_FIELDS = { "reasoning_content", "reasoning", "thinking" }

local FIELD_SETS = {
  both = { "reasoning_content", "reasoning" },
  all = { "reasoning_content", "reasoning", "thinking" },
}

local function names_list(v, what, level)
  if type(v) ~= "table" then error(what .. " must be a list of member names", level + 1) end
  local out, seen = {}, {}
  for i, f in ipairs(v) do
    if type(f) ~= "string" or f == "" then
      error(string.format("%s[%d] must be a non-empty string", what, i), level + 1)
    end
    if not seen[f] then out[#out + 1] = f end -- one edit per member
    seen[f] = true
  end
  return out
end

-- opts.field -> list of member names, or nil (the tool loop is left alone)
local function target_fields(v, level)
  if v == nil then return { "reasoning_content" } end
  if v == false then return nil end
  if type(v) == "string" then
    if v == "" then error("opts.field must not be empty", level + 1) end
    return FIELD_SETS[v] or { v }
  end
  if type(v) == "table" then
    local out = names_list(v, "opts.field", level + 1)
    if #out == 0 then return nil end
    return out
  end
  error('opts.field must be a member name, "both", "all", a list of names or false', level + 1)
end

local function is_blank(s)
  return s:find("%S") == nil
end

-- Without a pattern anchored at the end: "%s+$" is quadratic on a long run
-- of spaces followed by other text.
local function trim(s)
  local a = s:find("%S")
  if not a then return "" end
  local b = #s
  while s:find("^%s", b) do b = b - 1 end
  return s:sub(a, b)
end

-- A non-empty JSON array (cjson reads [] and {} alike as an empty table).
local function non_empty_list(v)
  return type(v) == "table" and v[1] ~= nil
end


-- An assistant message of the current tool loop: the reasoning blocks in its
-- content go to the target field(s), so that the upstream's template renders
-- them as the analysis before the call. Its content becomes empty: the
-- gpt-oss templates (llama.cpp's and the Hugging Face one mlx_lm uses) raise
-- "Cannot pass both content and thinking in an assistant message with tool
-- calls" when both are non-empty, and they render such a message's content as
-- the analysis anyway, so text outside the blocks (a preamble) follows the
-- reasoning in the field, after a blank line. A target field the message
-- already has as a non-empty string is never written twice: the blocks then
-- only leave the content. Returns a note when the message is not what it
-- claims to be (a target field that is neither a string nor null).
local function move_current(edits, i, m, open_tag, close_tag, fields)
  local missing = {}
  for _, f in ipairs(fields) do
    local v = m[f]
    if v == nil or v == NULL or v == "" then
      missing[#missing + 1] = f
    elseif type(v) ~= "string" then
      return string.format("messages[%d].%s is a %s, not a string; message left unchanged", i, f, type(v))
    end
  end
  -- where the text is: { path, text } for the content string or each text part
  local slots = {}
  local content = m.content
  if type(content) == "string" then
    slots[1] = { path = { "messages", i, "content" }, text = content }
  elseif type(content) == "table" then
    for k, part in ipairs(content) do
      if type(part) == "table" and part.type == "text" and type(part.text) == "string" then
        slots[#slots + 1] = { path = { "messages", i, "content", k, "text" }, text = part.text }
      end
    end
  end
  local any = false
  local reasoning, preamble = {}, {}
  for _, slot in ipairs(slots) do
    slot.rest, slot.reasoning, slot.found = scan(slot.text, open_tag, close_tag)
    any = any or slot.found
    reasoning[#reasoning + 1] = slot.reasoning
    if not is_blank(slot.rest) then preamble[#preamble + 1] = trim(slot.rest) end
  end
  if not any then return nil end
  if #missing == 0 then
    -- the reasoning is in the field already: the blocks only leave the content
    for _, slot in ipairs(slots) do
      if slot.found then
        edits[#edits + 1] = { path = slot.path, value = is_blank(slot.rest) and "" or slot.rest }
      end
    end
    return nil
  end
  local text = table.concat(reasoning)
  if #preamble > 0 then
    local p = table.concat(preamble, "\n\n")
    text = is_blank(text) and p or (text .. "\n\n" .. p)
  end
  for _, slot in ipairs(slots) do
    if slot.text ~= "" then edits[#edits + 1] = { path = slot.path, value = "" } end
  end
  if text ~= "" then
    for _, f in ipairs(missing) do
      edits[#edits + 1] = { path = { "messages", i, f }, value = text }
    end
  end
  return nil
end

-- reasoning_effort is copied into chat_template_kwargs, byte for byte, for
-- the servers that read it only there (llama.cpp builds of 2025; its gpt-oss
-- template reads the jinja variable reasoning_effort). Only a string is
-- copied; a request that sets chat_template_kwargs.reasoning_effort itself
-- keeps its own.
local function effort_edit(edits, body, doc)
  if type(doc.reasoning_effort) ~= "string" then return nil end
  local ok, raw = pcall(relay.json.get, body, { "reasoning_effort" })
  if not ok or type(raw) ~= "string" then return nil end
  local kw = doc.chat_template_kwargs
  if kw == nil or kw == NULL then
    edits[#edits + 1] = { path = { "chat_template_kwargs" }, raw = '{"reasoning_effort":' .. raw .. "}" }
    return nil
  end
  local ok2, kraw = pcall(relay.json.get, body, { "chat_template_kwargs" })
  if not ok2 or type(kraw) ~= "string" or kraw:sub(1, 1) ~= "{" then
    return "chat_template_kwargs is not an object; reasoning_effort not copied into it"
  end
  if kw.reasoning_effort == nil then
    edits[#edits + 1] = { path = { "chat_template_kwargs", "reasoning_effort" }, raw = raw }
  end
  return nil
end

-- prepare(body [, opts]) -> body
-- Readies a chat-completions request for the upstream, in one lossless batch
-- edit (linear in the body; the very same string when nothing changes):
--   * assistant messages before the last "user" message (earlier turns):
--     reasoning blocks leave content, and opts.earlier_fields are removed;
--   * assistant messages after it that carry tool_calls (the current tool
--     loop): reasoning blocks move from content to opts.field;
--   * assistant messages after it without tool_calls (the current turn's
--     answer so far, or a prefill to continue) are left as they are;
--   * a string reasoning_effort is also written to
--     chat_template_kwargs.reasoning_effort unless that is set.
-- opts: open_tag, close_tag ("<think>", "</think>"); earlier (true);
-- earlier_fields (M.REASONING_FIELDS); field ("reasoning_content"; a member
-- name, "both", "all", a list of names, or false to leave the loop alone);
-- effort_kwargs (true).
function M.prepare(body, opts)
  if type(body) ~= "string" then error("body must be a string", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("options must be a table", 2) end
  opts = opts or {}
  local open_tag, close_tag = opts.open_tag or "<think>", opts.close_tag or "</think>"
  if type(open_tag) ~= "string" or open_tag == "" then error("opts.open_tag must be a non-empty string", 2) end
  if type(close_tag) ~= "string" or close_tag == "" then error("opts.close_tag must be a non-empty string", 2) end
  local earlier = opts.earlier ~= false
  local drop = M.REASONING_FIELDS
  if opts.earlier_fields == false then
    drop = {}
  elseif opts.earlier_fields ~= nil then
    drop = names_list(opts.earlier_fields, "opts.earlier_fields", 2)
  end
  local fields = target_fields(opts.field, 2)
  local effort = opts.effort_kwargs ~= false
  -- Cheap exit: nothing this could change is named anywhere in the text.
  local maybe = false
  if earlier or fields then
    maybe = body:find(open_tag, 1, true) or body:find(close_tag, 1, true)
  end
  if earlier then
    for _, f in ipairs(drop) do maybe = maybe or body:find('"' .. f .. '"', 1, true) end
  end
  if effort then maybe = maybe or body:find('"reasoning_effort"', 1, true) end
  if not maybe then return body end
  local doc = json_decode(body)
  if type(doc) ~= "table" then
    relay.log("debug", "history: the request body is not a JSON object; left unchanged")
    return body
  end
  local edits, note = {}, nil
  local msgs = doc.messages
  if type(msgs) == "table" then
    local last = 0 -- the last user message; none: the whole list is the current turn
    for i = #msgs, 1, -1 do
      if type(msgs[i]) == "table" and msgs[i].role == "user" then
        last = i
        break
      end
    end
    if earlier then
      for i = 1, last - 1 do
        local m = msgs[i]
        if type(m) == "table" and m.role == "assistant" then strip_earlier(edits, i, m, open_tag, close_tag, drop) end
      end
    end
    if fields then
      for i = last + 1, #msgs do
        local m = msgs[i]
        if type(m) == "table" and m.role == "assistant" and non_empty_list(m.tool_calls) then
          note = move_current(edits, i, m, open_tag, close_tag, fields) or note
        end
      end
    end
  end
  if effort then note = effort_edit(edits, body, doc) or note end
  if note then relay.log("debug", "history: " .. note) end
  if #edits == 0 then return body end
  local out, err = relay.json.edit(body, edits)
  if not out then
    -- lua-cjson read it but the strict splicer does not (NaN, hex numbers)
    relay.log("debug", "history: request left unchanged (" .. tostring(err) .. ")")
    return body
  end
  return out
end

return M
