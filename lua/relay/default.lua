-- The stock script: what oss-relay does with no files. Everything is read from
-- environment variables; every request is proxied unchanged to UPSTREAM, the
-- responses of POST /v1/chat/completions are rewritten, and POST /v1/responses
-- is served over the upstream's chat completions.
local relay = require("relay")
local env = require("relay.env")

relay.listen({
  addr = env.address("LISTEN_ADDR", "0.0.0.0"),
  port = env.port("LISTEN_PORT", 8080),
})

-- One server (UPSTREAM_HOST, UPSTREAM_PORT), or several (UPSTREAM_SERVERS,
-- which then replaces both): balanced by least outstanding requests, a server
-- that refuses or times out a connect is skipped, and active checks of
-- RELAY_HEALTH_PATH bring servers back (every RELAY_HEALTH_INTERVAL seconds;
-- by default 5 with several servers or with the admin port on, else off).
local upstream = {
  name = "default",
  health_path = env.string("RELAY_HEALTH_PATH", "/v1/models"),
  health_interval = env.seconds("RELAY_HEALTH_INTERVAL", nil),
  health_timeout = env.seconds("RELAY_HEALTH_TIMEOUT", 2),
}
local servers = env.string("UPSTREAM_SERVERS", nil)
if servers then
  upstream.servers = servers
  local ok, err = pcall(relay.upstream, upstream)
  if not ok then error(string.format("UPSTREAM_SERVERS=%q: %s", servers, err), 0) end
else
  upstream.host = env.host("UPSTREAM_HOST", "127.0.0.1")
  upstream.port = env.port("UPSTREAM_PORT", 1234)
  relay.upstream(upstream)
end

-- The admin listener: GET /healthz and GET /metrics, off unless
-- RELAY_ADMIN_PORT is set; on loopback unless RELAY_ADMIN_ADDR says otherwise.
local admin_port = env.port("RELAY_ADMIN_PORT", nil)
if admin_port then
  relay.admin({ addr = env.address("RELAY_ADMIN_ADDR", "127.0.0.1"), port = admin_port })
end

relay.settings({
  connect_timeout = env.seconds("RELAY_CONNECT_TIMEOUT", 10),
  header_timeout = env.seconds("RELAY_HEADER_TIMEOUT", 30),
  idle_timeout = env.seconds("RELAY_IDLE_TIMEOUT", 600),
  body_timeout = env.seconds("RELAY_BODY_TIMEOUT", 60),
  send_timeout = env.seconds("RELAY_SEND_TIMEOUT", 60),
  keepalive_timeout = env.seconds("RELAY_KEEPALIVE_TIMEOUT", 75),
  shutdown_timeout = env.seconds("RELAY_SHUTDOWN_TIMEOUT", 30),
  max_header_size = env.integer("RELAY_MAX_HEADER_SIZE", 65536, 1024, 16777216),
  max_body_buffer = env.integer("RELAY_MAX_BODY_BUFFER", 16777216, 1024, 1073741824),
  workers = env.integer("WORKERS", 0, 0, 256),
  script_timeout = env.seconds("RELAY_SCRIPT_TIMEOUT", 1),
  script_memory = env.integer("RELAY_SCRIPT_MEMORY", 268435456, 1048576, 1099511627776),
})

-- The rewrite of POST /v1/chat/completions responses. OPEN_PATTERN and
-- CLOSE_PATTERN replace the harmony rules with the single pair they name.
local open_tag = env.string("OPEN_TAG", "<think>")
local close_tag = env.string("CLOSE_TAG", "</think>")
local open_pattern = env.string("OPEN_PATTERN", nil)
local close_pattern = env.string("CLOSE_PATTERN", nil)
local rules
if open_pattern or close_pattern then
  if not (open_pattern and close_pattern) then
    error("OPEN_PATTERN and CLOSE_PATTERN must be set together", 0)
  end
  rules = require("relay.formats.pair").rules(open_pattern, close_pattern, open_tag, close_tag)
else
  rules = require("relay.formats.harmony").rules(open_tag, close_tag)
end

local mode = env.choice("RELAY_MODE", "tags", { "tags", "field", "strip" })

-- gpt-oss output is read by the harmony parser (reasoning, answer and tool
-- calls, whatever the server left of the framing), unless OPEN_PATTERN /
-- CLOSE_PATTERN name a pair of their own. Its tool calls become OpenAI
-- tool_calls; RELAY_TOOL_CALLS=0 leaves their text in content instead.
-- Reasoning the upstream sends in reasoning_content or reasoning (llama.cpp,
-- vLLM, Ollama, LM Studio 0.3.23+) is treated the same as reasoning found in
-- content: tags, field or strip by RELAY_MODE.
local parser = (open_pattern or close_pattern) and "rules" or "harmony"
local tool_calls = env.flag("RELAY_TOOL_CALLS", true)

-- The request side (lua/relay/history.lua, history.prepare). Chat clients
-- send back what this relay gave them:
--   * reasoning of earlier turns (before the last user message) is dropped:
--     OPEN_TAG…CLOSE_TAG blocks in content and the reasoning_content,
--     reasoning and thinking members; the model never wrote those tags and
--     the gpt-oss templates drop earlier reasoning themselves;
--   * reasoning of the current tool loop (assistant messages with tool_calls
--     after the last user message) moves from the tags in content to
--     RELAY_HISTORY_FIELD, the member the upstream's template renders as the
--     analysis before a call: gpt-oss reasons better when it sees its own
--     analysis between tool calls.
-- RELAY_STRIP_HISTORY=0 turns both off. Separately, RELAY_EFFORT_KWARGS (on
-- by default) copies reasoning_effort to chat_template_kwargs.reasoning_effort
-- for servers that read it only there (llama.cpp builds of 2025); turn it off
-- in front of a server that refuses unknown members (api.openai.com).
-- All edits are lossless: every other byte of the body stays as it was.
local strip_history = env.flag("RELAY_STRIP_HISTORY", true)
local effort_kwargs = env.flag("RELAY_EFFORT_KWARGS", true)
local history_field = env.choice("RELAY_HISTORY_FIELD", "reasoning_content",
  { "reasoning_content", "reasoning", "thinking", "both", "all" })
local on_request = nil
if strip_history or effort_kwargs then
  local history = require("relay.history")
  local prepare_opts = {
    open_tag = open_tag,
    close_tag = close_tag,
    earlier = strip_history,
    field = strip_history and history_field,
    effort_kwargs = effort_kwargs,
  }
  on_request = function(req)
    local body = history.prepare(req.body, prepare_opts)
    if body ~= req.body then return { body = body } end
  end
end

local rewrite = {
  parser = parser,
  rules = rules,
  tool_calls = tool_calls,
  upstream_reasoning = { "reasoning_content", "reasoning" },
  open_tag = open_tag,
  close_tag = close_tag,
  mode = mode,
  field = env.choice("RELAY_REASONING_FIELD", "reasoning_content", { "reasoning_content", "reasoning", "both" }),
}

relay.route({
  method = "POST",
  path = "/v1/chat/completions",
  upstream = "default",
  on_request = on_request,
  body = on_request ~= nil,
  rewrite = rewrite,
})

-- The Responses API (POST /v1/responses: Codex CLI, the Agents SDK) over the
-- upstream's chat completions: the request is translated, the chat response
-- goes through the same rewrite (its mode and field are the front end's:
-- Responses has its own reasoning items) and the same request hook, and
-- comes back as Responses output items. RELAY_RESPONSES=passthrough forwards
-- /v1/responses unchanged instead (an upstream with its own Responses API).
if env.choice("RELAY_RESPONSES", "on", { "on", "passthrough" }) == "on" then
  local single = { reasoning_content = true, reasoning = true, thinking = true }
  relay.route({
    method = "POST",
    path = "/v1/responses",
    upstream = "default",
    frontend = {
      type = "responses",
      -- reasoning items go back upstream in the member the template renders
      reasoning_field = single[history_field] and history_field or "reasoning_content",
    },
    on_request = on_request,
    rewrite = rewrite,
  })
end
