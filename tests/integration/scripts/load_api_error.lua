-- A script that calls the relay API wrongly (tests/integration/test_lua_faults.py).
-- The error names the script's line, marked ERROR-LINE.
local relay = require("relay")
relay.upstream({ name = "a", host = "127.0.0.1", port = 9 })
relay.route({ path = "/ok" })
relay.route({ path = "/x", upstream = "nope" }) -- ERROR-LINE
