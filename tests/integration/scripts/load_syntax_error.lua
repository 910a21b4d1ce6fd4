-- A script that does not compile (tests/integration/test_lua_faults.py). The error
-- is on the line marked ERROR-LINE.
local relay = require("relay")
relay.upstream({ name = "a", host = "127.0.0.1", port = 9 })
local x = = 1 -- ERROR-LINE
