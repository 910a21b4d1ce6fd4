-- The stock script: what oss-relay does with no files. Everything is read from
-- environment variables; every request is proxied unchanged to UPSTREAM, and
-- the responses of POST /v1/chat/completions are rewritten.
local relay = require("relay")
local env = require("relay.env")

relay.listen({
  addr = env.address("LISTEN_ADDR", "0.0.0.0"),
  port = env.port("LISTEN_PORT", 8080),
})

relay.upstream({
  name = "default",
  host = env.host("UPSTREAM_HOST", "127.0.0.1"),
  port = env.port("UPSTREAM_PORT", 1234),
})

relay.settings({
  connect_timeout = env.seconds("RELAY_CONNECT_TIMEOUT", 10),
  header_timeout = env.seconds("RELAY_HEADER_TIMEOUT", 30),
  idle_timeout = env.seconds("RELAY_IDLE_TIMEOUT", 600),
  keepalive_timeout = env.seconds("RELAY_KEEPALIVE_TIMEOUT", 75),
  shutdown_timeout = env.seconds("RELAY_SHUTDOWN_TIMEOUT", 30),
  max_header_size = env.integer("RELAY_MAX_HEADER_SIZE", 65536, 1024, 16777216),
  max_body_buffer = env.integer("RELAY_MAX_BODY_BUFFER", 16777216, 1024, 1073741824),
  workers = env.integer("WORKERS", 0, 0, 256),
})
