local dir = os.getenv("RELAY_LUA_TESTS") or (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".")
local T = dofile(dir .. "/testlib.lua")
-- The scripts in examples/: each is loaded as the relay would load it, with
-- the declarations captured, and its hooks are called with requests and
-- response pieces built here (no sockets).
local relay = require("relay")
local cjson = require("cjson")
local examples = dir .. "/../../examples/"

-- Loads an example with fake environment variables; returns what it declared.
local function load_example(name, envvars)
  local saved = {}
  local got = { routes = {}, upstreams = {}, on_request = nil }
  local fake = {
    getenv = function(k) return (envvars or {})[k] end,
    listen = function(t) got.listen = t end,
    settings = function(t) got.settings = t end,
    upstream = function(t)
      got.upstreams[t.name or "default"] = t
      return t.name or "default"
    end,
    route = function(t) got.routes[#got.routes + 1] = t end,
    on_request = function(fn, opts) got.on_request, got.on_request_opts = fn, opts end,
    log = function(level, msg) got.logs = got.logs or {}; got.logs[#got.logs + 1] = level .. " " .. msg end,
  }
  for k, v in pairs(fake) do saved[k], relay[k] = relay[k], v end
  local ok, err = pcall(dofile, examples .. name)
  for k in pairs(fake) do relay[k] = saved[k] end
  if not ok then error(name .. ": " .. tostring(err), 2) end
  return got
end

local function request(t)
  local req = {
    method = t.method or "POST",
    target = t.target or "/v1/chat/completions",
    path = t.path or "/v1/chat/completions",
    headers = t.headers or {},
    client = "127.0.0.1",
    body = t.body,
    ctx = {},
  }
  function req:json() return cjson.decode(self.body) end
  return req
end

local function chat_route(got)
  for _, r in ipairs(got.routes) do
    if r.path == "/v1/chat/completions" then return r end
  end
  error("no chat route")
end

-- (1) field mode
do
  local got = load_example("field_reasoning.lua", {})
  local r = chat_route(got)
  T.eq(r.rewrite.mode, "field", "field mode")
  T.eq(r.rewrite.field, "both", "default field")
  T.eq(T.run(r.rewrite.rules, { "<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>final<|message|>b" }, "field"), "b", "harmony rules")
  got = load_example("field_reasoning.lua", { FORMAT = "think", REASONING_FIELD = "reasoning" })
  r = chat_route(got)
  T.eq(r.rewrite.field, "reasoning", "REASONING_FIELD")
  local c, z = T.run(r.rewrite.rules, { "<think>a</think>b" }, "field")
  T.eq(c .. "|" .. z, "b|a", "FORMAT=think")
  T.raises("FORMAT=\"nope\" is not one of", load_example, "field_reasoning.lua", { FORMAT = "nope" })
end

-- (2) two upstreams by model
do
  local got = load_example("route_by_model.lua", { QWEN_PORT = "9001" })
  T.eq(got.upstreams.qwen.port, 9001, "QWEN_PORT")
  local r = chat_route(got)
  T.eq(r.body, true, "asks for the body")
  local function route(body) return r.on_request(request({ body = body })) end
  local d = route('{"model":"openai/gpt-oss-20b","messages":[]}')
  T.eq(d.upstream, "oss", "gpt-oss upstream")
  T.eq(T.run(d.rewrite.rules, { "<|channel|>analysis<|message|>a<|channel|>final<|message|>b" }), "<think>a</think>b", "gpt-oss rules")
  d = route('{"model":"Qwen3-32B","messages":[]}')
  T.eq(d.upstream, "qwen", "qwen upstream")
  T.eq(T.run(d.rewrite.rules, { "<think>a</think>b" }, "field"), "b", "qwen rules")
  d = route('{"model":"QwQ-32B"}')
  local c, z = T.run(d.rewrite.rules, { "a</think>b" }, "field")
  T.eq(c .. "|" .. z, "b|a", "qwq rules start inside")
  d = route('{"model":"llama3"}')
  T.eq(d.respond.status, 404, "unknown model")
  T.eq(d.respond.json.error.code, "model_not_found", "404 code")
  T.eq(d.respond.json.error.type, "invalid_request_error", "404 type")
  T.eq(type(d.respond.json.error.message), "string", "404 message")
  for _, bad in ipairs({ "not json", '{"messages":[]}', '{"model":5}', "[]" }) do
    d = route(bad)
    T.eq(d.respond.status, 400, "400 for " .. bad)
  end
end

-- (3) API keys
do
  T.raises("RELAY_API_KEYS must list at least one key", load_example, "api_key.lua", {})
  local got = load_example("api_key.lua", { RELAY_API_KEYS = "sk-alice, sk-bob" })
  local hook = got.on_request
  T.eq(type(hook), "function", "global on_request")
  local d = hook(request({ headers = {} }))
  T.eq(d.respond.status, 401, "no key")
  T.eq(d.respond.json.error.code, "missing_api_key", "missing code")
  T.eq(d.respond.headers["WWW-Authenticate"], 'Bearer realm="oss-relay"', "challenge")
  d = hook(request({ headers = { authorization = "Bearer sk-eve" } }))
  T.eq(d.respond.status, 401, "wrong key")
  T.eq(d.respond.json.error.code, "invalid_api_key", "invalid code")
  T.eq(d.respond.json.error.type, "invalid_request_error", "type")
  -- the exact OpenAI shape on the wire
  local wire = cjson.decode(cjson.encode(d.respond.json))
  T.eq(wire.error.message, "Incorrect API key provided.", "message")
  d = hook(request({ headers = { authorization = "Bearer sk-alic" } }))
  T.eq(d.respond.status, 401, "prefix of a key")
  d = hook(request({ headers = { authorization = "Bearer sk-bob" } }))
  T.eq(d.respond, nil, "valid key passes")
  T.eq(d.headers.authorization, false, "client key not forwarded")
  got = load_example("api_key.lua", { RELAY_API_KEYS = "k1", UPSTREAM_API_KEY = "up" })
  d = got.on_request(request({ headers = { authorization = "bearer k1" } }))
  T.eq(d.headers.authorization, "Bearer up", "upstream key sent instead")
end

-- (4) default reasoning_effort, lossless
do
  local got = load_example("reasoning_effort.lua", { DEFAULT_REASONING_EFFORT = "high" })
  local r = chat_route(got)
  T.eq(r.body, true, "asks for the body")
  local body = '{"model":"gpt-oss-20b", "messages":[{"role":"user","content":"\\u00e9 \\/"}], "temperature":0.70}'
  local d = r.on_request(request({ body = body }))
  T.eq(d.body, '{"model":"gpt-oss-20b", "messages":[{"role":"user","content":"\\u00e9 \\/"}], "temperature":0.70, "reasoning_effort":"high"}', "added, rest byte for byte")
  T.eq(r.on_request(request({ body = '{"reasoning_effort":"low"}' })), nil, "kept when set")
  T.eq(r.on_request(request({ body = "nonsense" })), nil, "not JSON: left alone")
  T.eq(r.on_request(request({ body = "[1]" })), nil, "not an object: left alone")
  got = load_example("reasoning_effort.lua", {})
  d = chat_route(got).on_request(request({ body = "{}" }))
  T.eq(d.body, '{"reasoning_effort":"low"}', "default effort")
end

-- (5) counting reasoning pieces, in tags and field modes
do
  local got = load_example("count_reasoning.lua", {})
  local rw = chat_route(got).rewrite
  local ctx = {}
  -- rewritten tags-mode pieces as the relay passes them (one per event)
  for _, piece in ipairs({ "", "<think>The", " user", " greets", ".", "</think>Hi", "!", "" }) do
    T.eq(rw.on_text(ctx, 0, piece, "content"), nil, "keeps the text")
  end
  rw.on_text(ctx, 1, "<think>x", "content") -- a second choice, still inside
  local real_log = relay.log
  relay.log = function() end
  rw.on_end(ctx, { status = 200, bytes_out = 321 })
  relay.log = real_log
  T.eq(ctx.stats.reasoning, 5, "reasoning pieces")
  T.eq(ctx.stats.reasoning_bytes, #"The user greets." + 1, "reasoning bytes")
  T.eq(ctx.stats.answer, 2, "answer pieces")
  T.eq(ctx.stats.answer_bytes, 3, "answer bytes")
  T.eq(ctx.stats.inside[1], true, "choice 1 still inside")
  T.eq(got.logs, nil, "nothing logged at load")
  -- field mode: kind tells
  got = load_example("count_reasoning.lua", { RELAY_MODE = "field" })
  rw = chat_route(got).rewrite
  T.eq(rw.mode, "field", "RELAY_MODE")
  ctx = {}
  rw.on_text(ctx, 0, "The user", "reasoning")
  rw.on_text(ctx, 0, "Hi", "content")
  -- on_end calls relay.log: capture it
  local line
  relay.log = function(level, msg) line = level .. " " .. msg end
  local ok, err = pcall(rw.on_end, ctx, { status = 200, bytes_out = 99 })
  relay.log = real_log
  T.ok(ok, tostring(err))
  T.eq(line, "info chat 200: reasoning 1 pieces / 8 bytes, answer 1 pieces / 2 bytes, 99 bytes out", "log line")
  -- on_end without any text
  relay.log = function() end
  rw.on_end({}, { status = 502, bytes_out = 0 })
  relay.log = real_log
end

T.done("test_examples")
