-- A valid script for --check (tests/integration/test_lua_faults.py).
local relay = require("relay")
relay.listen({ addr = "127.0.0.1", port = 1 })
relay.upstream({ name = "a", host = "127.0.0.1", port = 9 })
relay.upstream({ name = "b", host = "127.0.0.1", port = 10 })
relay.route({ path = "/b/*", upstream = "b" })
relay.on_request(function(req) return nil end)
