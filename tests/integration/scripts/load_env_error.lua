-- An error raised inside a helper module is reported at the script's line that
-- called it (tests/integration/test_lua_faults.py), marked ERROR-LINE.
local relay = require("relay")
local env = require("relay.env")
relay.upstream({
  name = "a", host = "127.0.0.1",
  port = env.port("LUA_TEST_BAD_PORT", 1234), -- ERROR-LINE
})
