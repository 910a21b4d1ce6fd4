#!/bin/sh
# Builds the LuaRocks package into a temporary tree and runs rocks/test_rock.lua
# against it with plain lua5.4. Self-contained: works from any directory,
# leaves the checkout untouched (the build runs in a copy), exits non-zero on
# any failure. Needs lua5.4, liblua5.4-dev, luarocks, libjsmn-dev and a C
# compiler; lua-cjson is taken from the system when lua5.4 can load it, else
# luarocks installs it into the temporary tree.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LUA=${LUA:-lua5.4}
LUAROCKS=${LUAROCKS:-luarocks}
SPEC=rocks/oss-relay-scm-1.rockspec

WORK=$(mktemp -d "${TMPDIR:-/tmp}/oss-relay-rock.XXXXXX")
if [ -z "${KEEP_ROCK_TREE:-}" ]; then trap 'rm -rf "$WORK"' EXIT INT TERM; fi
SRC=$WORK/source
TREE=$WORK/tree
mkdir -p "$SRC/tests"

# Only what the rockspec and the tests use; never build inside the checkout.
cp -R "$ROOT/rocks" "$ROOT/src" "$ROOT/include" "$ROOT/lua" "$ROOT/examples" "$SRC/"
cp -R "$ROOT/tests/lua" "$SRC/tests/lua"
find "$SRC" -name '*.o' -delete

DEPS=
if "$LUA" -e 'require("cjson")' >/dev/null 2>&1; then DEPS=--deps-mode=none; fi

echo "== luarocks make $SPEC (tree $TREE)"
(cd "$SRC" && "$LUAROCKS" --lua-version=5.4 --tree "$TREE" make $DEPS "$SPEC")

# LUA_PATH / LUA_CPATH for the tree, plus the default entries (;;) so a system
# lua-cjson is still found.
eval "$("$LUAROCKS" --lua-version=5.4 --tree "$TREE" path)"
LUA_PATH="${LUA_PATH:-};;"
LUA_CPATH="${LUA_CPATH:-};;"
export LUA_PATH LUA_CPATH
unset LUA_PATH_5_4 LUA_CPATH_5_4 2>/dev/null || true

VERSION=$(sed -n 's/^project(oss-relay VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")

echo "== $LUA rocks/test_rock.lua"
# Run from an empty directory so nothing is picked up from the checkout.
mkdir -p "$WORK/run"
cd "$WORK/run"
RELAY_ROCK_TREE="$TREE" RELAY_EXPECT_VERSION="$VERSION" RELAY_LUA_TESTS="$SRC/tests/lua" \
  "$LUA" "$SRC/rocks/test_rock.lua"
echo "== rock OK"
