#!/usr/bin/env bash
# The whole test suite: the same ctest suite in a plain build and in an
# AddressSanitizer + UndefinedBehaviorSanitizer build, the fuzz targets for a
# bounded time, and the LuaRocks package in a scratch tree. Run as root on a
# fresh Debian 12 machine it first installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc)

packages=(build-essential cmake pkg-config libuv1-dev node-llhttp liblua5.4-dev lua5.4 lua-cjson
  libjsmn-dev python3 python3-prometheus-client curl clang libclang-rt-14-dev luarocks)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

echo "== npm ci (the official openai SDK for the client tests)"
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)

run_suite() {
  local dir=$1
  shift
  echo "== build $dir ($*)"
  cmake -S "$root" -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "== ctest $dir"
  ctest --test-dir "$dir" --output-on-failure --timeout 300 -j"$jobs"
}

run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DRELAY_SANITIZE=ON

echo "== fuzz (libFuzzer, bounded)"
CC=clang cmake -S "$root" -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DRELAY_FUZZ=ON >/dev/null
fuzzers=(fuzz_replacer fuzz_sse_splice fuzz_harmony fuzz_http_request fuzz_http_response fuzz_responses_request
  fuzz_responses_filter fuzz_chat_filter)
cmake --build build-fuzz -j"$jobs" --target "${fuzzers[@]}"
# One fuzzer per CPU at a time, each for a bounded time; any crash fails the run.
fuzz_one() {
  local f=$1 seeds=()
  mkdir -p build-fuzz/corpus-$f
  [ -d tests/fuzz/seeds/$f ] && seeds=(tests/fuzz/seeds/$f) # read-only starting points
  if ./build-fuzz/tests/$f -max_total_time="${RELAY_FUZZ_SECONDS:-30}" -rss_limit_mb=2048 \
       build-fuzz/corpus-$f "${seeds[@]}" >build-fuzz/$f.log 2>&1; then
    echo "$f: $(tail -n 1 build-fuzz/$f.log)"
  else
    echo "$f FAILED:"; tail -n 40 build-fuzz/$f.log; return 1
  fi
}
export -f fuzz_one
printf '%s\n' "${fuzzers[@]}" | xargs -P "$jobs" -I{} bash -c 'fuzz_one {}'

if [ -x rocks/check.sh ]; then
  echo "== rock"
  bash rocks/check.sh
fi
echo "== all test stages passed"
