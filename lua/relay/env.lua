-- Reading configuration from environment variables, with errors that name
-- the variable so a typo stops start-up with a message the user can act on.
local relay = require("relay")

local env = {}

local function raw(name)
  local v = relay.getenv(name)
  if v == nil or v == "" then return nil end
  return v
end

-- A string, or the default when unset or empty.
function env.string(name, default)
  return raw(name) or default
end

-- A TCP port from 1 to 65535.
function env.port(name, default)
  local v = raw(name)
  if v == nil then return default end
  local n = tonumber(v)
  if not v:match("^%d+$") or not n or n < 1 or n > 65535 then
    error(string.format("%s=%q is not a valid port (expected 1-65535)", name, v), 2)
  end
  return math.tointeger(n)
end

-- A host name or an IPv4/IPv6 literal (brackets allowed around IPv6).
function env.host(name, default)
  local v = raw(name)
  if v == nil then return default end
  local bare = v:match("^%[(.*)%]$") or v
  local ok = bare:match("^[%w%.%-_]+$") or (bare:find(":", 1, true) and bare:match("^[%x:%.]+$"))
  if not ok or #bare > 253 then
    error(string.format("%s=%q is not a host name or IP address", name, v), 2)
  end
  return bare
end

-- A listen address: an IPv4 or IPv6 literal.
function env.address(name, default)
  local v = raw(name)
  if v == nil then return default end
  local bare = v:match("^%[(.*)%]$") or v
  if not (bare:match("^%d+%.%d+%.%d+%.%d+$") or (bare:find(":", 1, true) and bare:match("^[%x:%.]+$"))) then
    error(string.format("%s=%q is not an IPv4 or IPv6 address", name, v), 2)
  end
  return bare
end

-- A number of seconds >= 0 (fractions allowed).
function env.seconds(name, default)
  local v = raw(name)
  if v == nil then return default end
  local n = tonumber(v)
  if not n or n < 0 or n ~= n or n == math.huge then
    error(string.format("%s=%q is not a number of seconds", name, v), 2)
  end
  return n
end

-- A whole number within [lo, hi].
function env.integer(name, default, lo, hi)
  local v = raw(name)
  if v == nil then return default end
  local n = v:match("^%d+$") and math.tointeger(tonumber(v))
  if not n or (lo and n < lo) or (hi and n > hi) then
    error(string.format("%s=%q is not a whole number from %s to %s", name, v, lo or "0", hi or "inf"), 2)
  end
  return n
end

-- One of a fixed set of words.
function env.choice(name, default, choices)
  local v = raw(name)
  if v == nil then return default end
  for _, c in ipairs(choices) do
    if v == c then return v end
  end
  error(string.format("%s=%q is not one of %s", name, v, table.concat(choices, ", ")), 2)
end

-- A boolean: 1/0, true/false, yes/no, on/off.
function env.flag(name, default)
  local v = raw(name)
  if v == nil then return default end
  local l = v:lower()
  if l == "1" or l == "true" or l == "yes" or l == "on" then return true end
  if l == "0" or l == "false" or l == "no" or l == "off" then return false end
  error(string.format("%s=%q is not a boolean (1/0, true/false, yes/no, on/off)", name, v), 2)
end

return env
