-- A script that fails while it runs (tests/integration/test_lua_faults.py). The error
-- is on the line marked ERROR-LINE.
local relay = require("relay")
relay.upstream({ name = "a", host = "127.0.0.1", port = 9 })
local function check(v)
  if not v then
    error("the test configuration is missing") -- ERROR-LINE
  end
end
check(relay.getenv("THIS_VARIABLE_IS_NEVER_SET"))
