-- LuaRocks package for oss-relay's Lua layer: the reasoning-format presets,
-- history hygiene and configuration helpers, plus a `relay` C module with the
-- relay's own replacer and lossless JSON edits (compiled from src/), so they
-- work in plain Lua 5.4.
--
--   luarocks --lua-version=5.4 make rocks/oss-relay-scm-1.rockspec   (from the repository root)
--
-- Build needs the Lua 5.4 headers and jsmn.h (Debian: liblua5.4-dev, libjsmn-dev).
rockspec_format = "3.0"
package = "oss-relay"
version = "scm-1"

source = {
  url = "git+https://github.com/oss-relay/oss-relay.git",
}

description = {
  summary = "Reasoning-marker rewriting for OpenAI-compatible LLM servers, as a Lua library",
  detailed = [[
The Lua side of oss-relay outside the proxy: format presets for gpt-oss harmony,
<think> (DeepSeek-R1, Qwen3, QwQ, GLM, MiniMax), Kimi, Magistral, Seed-OSS and
Cohere markers; a streaming multi-pattern replacer that holds back only marker
prefixes; lossless JSON edits; chat history hygiene.
]],
  homepage = "https://github.com/oss-relay/oss-relay",
  license = "MIT",
}

dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson >= 2.1",
}

external_dependencies = {
  JSMN = { header = "jsmn.h" },
}

build = {
  type = "builtin",
  modules = {
    relay = {
      sources = {
        "rocks/relay_rock.c",
        "src/lua/text.c",
        "src/text/replacer.c",
        "src/text/json_splice.c",
        "src/text/json_string.c",
        "src/text/json_edit.c",
        "src/text/sse.c",
        "src/base/buf.c",
        "src/base/error.c",
      },
      incdirs = { "include", "src/lua", "$(JSMN_INCDIR)" },
    },
    ["relay.env"] = "lua/relay/env.lua",
    ["relay.history"] = "lua/relay/history.lua",
    ["relay.formats"] = "lua/relay/formats/init.lua",
    ["relay.formats.features"] = "lua/relay/formats/features.lua",
    ["relay.formats.pair"] = "lua/relay/formats/pair.lua",
    ["relay.formats.harmony"] = "lua/relay/formats/harmony.lua",
    ["relay.formats.harmony_plain"] = "lua/relay/formats/harmony_plain.lua",
    ["relay.formats.think"] = "lua/relay/formats/think.lua",
    ["relay.formats.think_open"] = "lua/relay/formats/think_open.lua",
    ["relay.formats.kimi"] = "lua/relay/formats/kimi.lua",
    ["relay.formats.magistral"] = "lua/relay/formats/magistral.lua",
    ["relay.formats.seed"] = "lua/relay/formats/seed.lua",
    ["relay.formats.cohere"] = "lua/relay/formats/cohere.lua",
  },
  copy_directories = { "examples" },
}

test = {
  type = "command",
  script = "rocks/test_rock.lua",
}
