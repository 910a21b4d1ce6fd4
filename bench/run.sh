#!/usr/bin/env bash
# bench/run.sh - oss-relay benchmark suite (loopback only).
#
#   bench/run.sh            full run (~7.5 minutes on 2 cores)
#   bench/run.sh --quick    short sanity run (< 1 minute once tools are installed and built)
#
# Environment knobs:
#   WORKERS=N      worker count for the relay, nginx worker_processes and the upstream (default nproc)
#   RELAY_BIN=...  use this relay binary instead of building one
#   SKIP_INSTALL=1 do not apt-get install missing tools
#
# Measures, on the same upstream (bench/upstream.c) and the same worker count:
#   1. passthrough req/s and p50/p99 (wrk --latency): small JSON GET and 1 MiB POST
#      for direct, oss-relay, nginx proxy_pass (keepalive 64)
#   1b. cost per request, one worker each (relay WORKERS=1, nginx worker_processes 1), wrk -t1 -c32
#      small GET: req/s, p99, CPU us per request from /proc (user and system apart), syscalls per
#      request (strace -c -f over a fixed wrk run)
#   2. streaming rewrite: SSE events/s, per-event latency, output correctness, for direct,
#      oss-relay (stock rewrite), nginx + body_filter_by_lua gsub
#   2b. rewrite vs passthrough on one relay: 100,000-event SSE streams on POST /v1/chat/completions
#      (rewritten) and GET /v1/stream (proxied unchanged), direct for reference
#   3. memory: VmRSS of oss-relay (and nginx) with 1,000 and 10,000 idle open streams
#   4. CPU: callgrind instructions per rewritten event (and per passthrough event), WORKERS=1
#   5. Lua layer: small-GET req/s with the stock script vs bench/scripts/lua_route.lua (a Lua
#      routing function, one call per request); SSE events/s of the rewritten route with the stock
#      script vs bench/scripts/on_event.lua (the same route plus an on_event hook, one call per event)
#   6. metrics: small-GET req/s of the stock relay with the admin port on (metrics counted, /metrics
#      scraped every second) vs off (nothing counted), two relays running at the same time
#   7. reasoning forms and tool calls: SSE events/s (and callgrind instructions per event) of the stock
#      rewrite on three upstream forms, same relay, same run: harmony markers in content, reasoning in
#      reasoning_content (llama.cpp; tags mode moves it into content) and harmony with a tool call in
#      content (mlx_lm.server; the call becomes streamed tool_calls)
# Writes bench/RESULTS.md and bench/SUMMARY.md and prints the compact summary table.

set -u -o pipefail

QUICK=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
B="$BENCH/.build"
OUT="$B/out"
NGX="$B/nginx"
RESULTS="$BENCH/RESULTS.md"
SUMMARY_MD="$BENCH/SUMMARY.md"
CMDLINE="bench/run.sh${*:+ $*}"
WORKERS=${WORKERS:-$(nproc)}
START_TS=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

P_UP=18001 P_RELAY=18002 P_NGINX=18003 P_LUA=18004 P_HOOK=18005 P_CG=18010
SCRIPT_LUA="$BENCH/scripts/lua_route.lua"   # stock rewrite route + relay.on_request routing function
SCRIPT_HOOK="$BENCH/scripts/on_event.lua"   # stock rewrite route + rewrite.on_event hook

if [ "$QUICK" = 1 ]; then
  REPS=1; WRK_D=2; WRK_WARM=0; SSE_D=1; LAT_D=1; CG_EVENTS=2000; CG_REQS=200; MEM_STAGES="200 1000"
  LONG_CONNS=2; LONG_REQS=1; LUA_WRK_D=2; LUA_SSE_D=1
else
  REPS=3; WRK_D=8; WRK_WARM=1; SSE_D=8; LAT_D=5; CG_EVENTS=20000; CG_REQS=2000; MEM_STAGES="1000 10000"
  LONG_CONNS=8; LONG_REQS=2; LUA_WRK_D=5; LUA_SSE_D=5
fi
LONG_EVENTS=100000  # content events per stream in the rewrite-vs-passthrough test (2b)
SSE_EVENTS=2000     # content events per stream in the throughput test
SSE_CONNS=32        # concurrent streams in the throughput test
LAT_CONNS=16        # concurrent paced streams in the latency test (1 event/ms each)
WRK_CONNS=64

log() { printf '[bench %3ds] %s\n' $(( $(date +%s) - START_TS )) "$*" >&2; }

# ---------------------------------------------------------------- processes
PIDS=()
cleanup() {
  local p
  # children first: a wrapped relay (strace/valgrind) must not outlive its wrapper
  for p in "${PIDS[@]}"; do PIDS+=($(pgrep -P "$p" 2>/dev/null)); done
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.3
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() { # stop one process we started (and its children), wait up to $2 seconds
  local p=$1 t=${2:-5} i kids
  kids=$(pgrep -P "$p" 2>/dev/null)
  kill -TERM "$p" 2>/dev/null || return 0
  for ((i = 0; i < t * 10; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  for q in $kids; do kill -0 "$q" 2>/dev/null && { kill -TERM "$q"; sleep 0.5; kill -KILL "$q" 2>/dev/null; }; done
  local n=() q
  for q in "${PIDS[@]}"; do [ "$q" != "$p" ] && n+=("$q"); done
  PIDS=("${n[@]}")
  return 0
}

wait_port() { # port [seconds]
  local port=$1 t=${2:-10} i
  for ((i = 0; i < t * 20; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
rss_tree_kib() { # pid and its direct children (nginx master + workers)
  local s=0 p
  for p in "$1" $(pgrep -P "$1"); do s=$(( s + $(rss_kib "$p") )); done
  echo $s
}

# ---------------------------------------------------------------- setup
need_pkgs=()
command -v nginx >/dev/null || need_pkgs+=(nginx-light)
[ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] || need_pkgs+=(libnginx-mod-http-lua)
command -v wrk >/dev/null || need_pkgs+=(wrk)
command -v valgrind >/dev/null || need_pkgs+=(valgrind)
command -v cmake >/dev/null || need_pkgs+=(cmake)
pkg-config --exists libuv 2>/dev/null || need_pkgs+=(libuv1-dev pkg-config)
[ -e /usr/share/llhttp/llhttp.c ] || need_pkgs+=(node-llhttp)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "${SKIP_INSTALL:-0}" = 1 ]; then echo "missing: ${need_pkgs[*]}" >&2; exit 1; fi
  log "installing ${need_pkgs[*]}"
  SUDO=; [ "$(id -u)" != 0 ] && SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null \
    || { echo "apt-get install failed" >&2; exit 1; }
  # the nginx package may start a system nginx; we do not use it, and do not touch it.
fi

mkdir -p "$OUT" "$NGX"/{logs,tmp}
rm -f "$OUT"/*

log "building bench tools"
cmake -S "$BENCH" -B "$B" -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake-bench.log" 2>&1 &&
  cmake --build "$B" -j"$(nproc)" >>"$OUT/cmake-bench.log" 2>&1 ||
  { cat "$OUT/cmake-bench.log" >&2; exit 1; }
UPSTREAM="$B/upstream"
CLIENT="$B/sse_client"

RELAY=""
RELAY_NOTE=""
if [ -n "${RELAY_BIN:-}" ]; then
  RELAY="$RELAY_BIN"
else
  log "building oss-relay (Release) in $B/relay"
  if cmake -S "$ROOT" -B "$B/relay" -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake-relay.log" 2>&1 &&
     cmake --build "$B/relay" -j"$(nproc)" --target oss-relay >>"$OUT/cmake-relay.log" 2>&1; then
    # Run a private copy under another name, so that a concurrent `pkill oss-relay` / `killall oss-relay`
    # (e.g. from a test suite running on the same machine) cannot stop the relay under measurement.
    mkdir -p "$B/bin" && cp -f "$B/relay/oss-relay" "$B/bin/relay-under-bench"
    RELAY="$B/bin/relay-under-bench"
  else
    RELAY_NOTE="oss-relay did not build (see bench/.build/out/cmake-relay.log); relay rows are n/a."
    log "$RELAY_NOTE"
    tail -5 "$OUT/cmake-relay.log" >&2
  fi
fi

# fds: 10k idle streams need ~20k fds in the relay (client side + upstream side).
HARD_NOFILE=$(ulimit -Hn)
[ "$HARD_NOFILE" = unlimited ] && HARD_NOFILE=1048576
WANT_NOFILE=65536
[ "$HARD_NOFILE" -lt $WANT_NOFILE ] && WANT_NOFILE=$HARD_NOFILE
ulimit -n "$WANT_NOFILE" 2>/dev/null || true
NOFILE=$(ulimit -n)
MEM_NOTE=""
MEM_STAGES_RUN=""
for n in $MEM_STAGES; do
  max=$(( (NOFILE - 200) / 2 / 100 * 100 ))
  if [ "$n" -gt "$max" ]; then
    MEM_NOTE="open-files limit is $NOFILE here (hard limit, cannot be raised without CAP_SYS_RESOURCE); a proxy needs 2 fds per stream, so the largest stage is $max streams instead of $n."
    n=$max
  fi
  MEM_STAGES_RUN="$MEM_STAGES_RUN $n"
done
MEM_STAGES_RUN=${MEM_STAGES_RUN# }

for p in $P_UP $P_RELAY $P_NGINX $P_LUA $P_HOOK $P_CG 18011 18012; do
  port_free "$p" || { echo "port $p is in use" >&2; exit 1; }
done

# ---------------------------------------------------------------- nginx config
NGX_USER=""; [ "$(id -u)" = 0 ] && NGX_USER="user root;"
cat >"$NGX/nginx.conf" <<EOF
$NGX_USER
worker_processes $WORKERS;
worker_rlimit_nofile $NOFILE;
pid $NGX/nginx.pid;
error_log $NGX/logs/error.log warn;
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
events { worker_connections $(( NOFILE > 20000 ? 20000 : NOFILE )); multi_accept on; }
http {
  access_log off;
  client_body_temp_path $NGX/tmp/body;
  proxy_temp_path $NGX/tmp/proxy;
  fastcgi_temp_path $NGX/tmp/fastcgi;
  uwsgi_temp_path $NGX/tmp/uwsgi;
  scgi_temp_path $NGX/tmp/scgi;
  lua_package_path "/usr/share/lua/5.1/?.lua;;";
  keepalive_requests 1000000;
  upstream up {
    server 127.0.0.1:$P_UP;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$P_NGINX backlog=4096;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
    }
    # the usual OpenResty rewrite: gsub of the two raw marker strings on each body chunk
    location = /v1/chat/completions {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Accept-Encoding "";
      proxy_buffering off;
      proxy_request_buffering off;
      header_filter_by_lua_block { ngx.header.content_length = nil }
      body_filter_by_lua_block {
        local chunk = ngx.arg[1]
        if chunk ~= "" then
          chunk = chunk:gsub("<|channel|>analysis<|message|>", "<think>")
          chunk = chunk:gsub("<|end|><|start|>assistant<|channel|>final<|message|>", "</think>")
          ngx.arg[1] = chunk
        end
      }
    }
  }
}
EOF
nginx -t -p "$NGX/" -c "$NGX/nginx.conf" -e "$NGX/logs/error.log" >"$OUT/nginx-t.log" 2>&1 ||
  { cat "$OUT/nginx-t.log" >&2; exit 1; }

# ---------------------------------------------------------------- start servers
start_upstream() {
  "$UPSTREAM" --port $P_UP --threads "$WORKERS" 2>>"$OUT/upstream.log" &
  UP_PID=$!; PIDS+=($UP_PID)
  wait_port $P_UP 10 || { echo "upstream did not start" >&2; exit 1; }
}
start_relay() { # port workers [wrapper...]   (core dumps, if any, land in bench/.build/out)
  local port=$1 w=$2; shift 2
  ( cd "$OUT" && ulimit -c unlimited 2>/dev/null
    exec env LISTEN_ADDR=127.0.0.1 LISTEN_PORT="$port" UPSTREAM_HOST=127.0.0.1 UPSTREAM_PORT=$P_UP \
      WORKERS="$w" LOG_LEVEL=warn "$@" "$RELAY" >>"$OUT/relay.log" 2>&1 ) &
  RELAY_PID=$!; PIDS+=($RELAY_PID)
}
RELAY_CRASHES=()
relay_check() { # after a measurement: is the relay still up? if not, record how it ended and restart it
  [ "${RELAY_OK:-0}" = 1 ] || return 0
  kill -0 "$RELAY_PID" 2>/dev/null && return 0
  local rc=0 how
  wait "$RELAY_PID" 2>/dev/null; rc=$?
  if [ $rc -gt 128 ]; then how="killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null))"; else how="exited with status $rc"; fi
  [ $rc = 0 ] && how="$how (its graceful-stop path: it got SIGTERM/SIGINT from outside this script)"
  RELAY_CRASHES+=("during $1: oss-relay $how")
  log "!! oss-relay died during $1: $how; restarting it"
  echo "== relay died during $1: $how" >>"$OUT/relay.log"
  start_relay $P_RELAY "$WORKERS"
  wait_port $P_RELAY 10 || { log "relay did not restart"; RELAY_OK=0; }
}
# script variants of the relay (section 5): name -> pid / port / script
declare -A XPID XPORT XSCRIPT XOK
start_xrelay() { # name port script: start a relay running the script, check it serves
  local name=$1 port=$2 script=$3 save=${RELAY_PID:-}
  start_relay "$port" "$WORKERS" RELAY_SCRIPT="$script"
  XPID[$name]=$RELAY_PID; XPORT[$name]=$port; XSCRIPT[$name]=$script; XOK[$name]=0
  RELAY_PID=$save
  if wait_port "$port" 10 && curl -fsS -m 5 "http://127.0.0.1:$port/v1/models" >/dev/null 2>>"$OUT/relay.log"; then
    XOK[$name]=1
  else
    log "!! oss-relay with ${script#$ROOT/} did not serve GET /v1/models (see bench/.build/out/relay.log)"
    RELAY_CRASHES+=("oss-relay with ${script#$ROOT/} did not start or serve GET /v1/models; its rows are n/a")
    stop_pid "${XPID[$name]}" 2
  fi
}
xrelay_check() { # name what: like relay_check, for a script variant
  local name=$1 pid=${XPID[$1]:-} rc=0 how
  [ "${XOK[$name]:-0}" = 1 ] || return 0
  kill -0 "$pid" 2>/dev/null && return 0
  wait "$pid" 2>/dev/null; rc=$?
  if [ $rc -gt 128 ]; then how="killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null))"; else how="exited with status $rc"; fi
  [ $rc = 0 ] && how="$how (its graceful-stop path: it got SIGTERM/SIGINT from outside this script)"
  RELAY_CRASHES+=("during $2: oss-relay with ${XSCRIPT[$name]#$ROOT/} $how")
  log "!! oss-relay ($name) died during $2: $how; restarting it"
  echo "== relay ($name) died during $2: $how" >>"$OUT/relay.log"
  start_xrelay "$name" "${XPORT[$name]}" "${XSCRIPT[$name]}"
}
check_target() { # target what
  case $1 in relay) relay_check "$2" ;; relay_*) xrelay_check "$1" "$2" ;; esac
}
CLK_TCK=$(getconf CLK_TCK)
pid_of_target() { case $1 in relay) echo "${RELAY_PID:-}" ;; relay_*) echo "${XPID[$1]:-}" ;; esac; }
cpu_ticks() { # "user system" CPU time (all threads) of the target's relay process, in clock ticks
  local p; p=$(pid_of_target "$1")
  [ -n "$p" ] && awk '{print $14, $15}' "/proc/$p/stat" 2>/dev/null || echo "0 0"
}
cpu_rec() { # key "u0 s0" "u1 s1" units: append user and total (user + system) ns per unit to R[key_ucpu], R[key_cpu]
  local k=$1 a=$2 b=$3 n=$4
  R[${k}_ucpu]+=" $(cpu_per $(( ${b% *} - ${a% *} )) "$n")"
  R[${k}_cpu]+=" $(cpu_per $(( ${b% *} + ${b#* } - ${a% *} - ${a#* } )) "$n")"
}
cpu_per() { # ticks units -> nanoseconds per unit
  awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { if (n + 0 <= 0 || t + 0 <= 0) print "n/a"; else printf "%.0f", t * 1e9 / hz / n }'
}
sys_rw() { # "read-syscalls write-syscalls" of the target's relay process so far (/proc/PID/io: syscr, syscw)
  local p; p=$(pid_of_target "$1")
  [ -n "$p" ] && awk '/^syscr:/ {r = $2} /^syscw:/ {w = $2} END {print r + 0, w + 0}' "/proc/$p/io" 2>/dev/null || echo "0 0"
}
per_unit() { awk -v a="$1" -v n="$2" 'BEGIN { if (n + 0 <= 0 || a + 0 < 0) print "n/a"; else printf "%.2f", a / n }'; }
LOADS=()
load_mark() { LOADS+=("$1 $(cut -d' ' -f1 /proc/loadavg)"); }

start_nginx() {
  nginx -p "$NGX/" -c "$NGX/nginx.conf" -e "$NGX/logs/error.log" -g "daemon off;" >>"$OUT/nginx.log" 2>&1 &
  NGINX_PID=$!; PIDS+=($NGINX_PID)
  wait_port $P_NGINX 10 || { echo "nginx did not start" >&2; cat "$NGX/logs/error.log" >&2; exit 1; }
}

start_upstream
start_nginx
RELAY_OK=0
if [ -n "$RELAY" ]; then
  start_relay $P_RELAY "$WORKERS"
  if wait_port $P_RELAY 10 && curl -fsS -m 5 "http://127.0.0.1:$P_RELAY/v1/models" >/dev/null 2>>"$OUT/relay.log"; then
    RELAY_OK=1
  else
    RELAY_NOTE="oss-relay built but did not serve GET /v1/models (see bench/.build/out/relay.log); relay rows are n/a."
    log "$RELAY_NOTE"
    stop_pid "$RELAY_PID" 2
  fi
fi

TARGETS=(direct nginx); [ $RELAY_OK = 1 ] && TARGETS=(direct relay nginx)
port_of() { case $1 in direct) echo $P_UP ;; relay) echo $P_RELAY ;; nginx) echo $P_NGINX ;;
  relay_lua) echo $P_LUA ;; relay_hook) echo $P_HOOK ;; esac; }

# results live in an associative array R[key]=value
declare -A R

kv() { # "line" key -> value of key=value
  tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2; exit}'
}
kvn() { local v; v=$(kv "$1" "$2"); echo "${v:-0}"; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "n/a"; else print a[int((NR+1)/2)]}'; }
pair_ratio_median() { # "a1 a2 a3" "b1 b2 b3" -> median of a_i/b_i (runs i were taken back to back)
  [ -n "$1" ] && [ -n "$2" ] || { echo n/a; return; }
  paste <(tr ' ' '\n' <<<"$1" | grep -v '^$') <(tr ' ' '\n' <<<"$2" | grep -v '^$') |
    awk '$2 + 0 > 0 { printf "%.2f\n", $1 / $2 }' | median
}
to_ms() { # wrk latency like 220.00us / 1.20ms / 2.00s
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
rx() { [ "$1" = n/a ] && echo n/a || echo "${1}x"; }
fmt_int() { awk -v v="$1" 'BEGIN { if (v == "n/a" || v == "") print "n/a"; else { s = sprintf("%.0f", v); r = ""; while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) } print s r } }'; }

# ---------------------------------------------------------------- 1. passthrough
cat >"$OUT/post1m.lua" <<'EOF'
wrk.method = "POST"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
EOF

run_wrk() { # target workload rep
  local t=$1 w=$2 rep=$3 port url args=() f d=$WRK_D
  port=$(port_of "$t")
  case $w in
    get) url="http://127.0.0.1:$port/v1/models" ;;
    lget) url="http://127.0.0.1:$port/v1/models"; d=$LUA_WRK_D ;;
    post) url="http://127.0.0.1:$port/upload"; args=(-s "$OUT/post1m.lua") ;;
  esac
  if [ "$WRK_WARM" -gt 0 ]; then
    timeout -k 5 $((WRK_WARM + 20)) wrk -t2 -c$WRK_CONNS -d${WRK_WARM}s "${args[@]}" "$url" >/dev/null 2>&1
  fi
  f="$OUT/wrk-$w-$t-$rep.txt"
  local c0; c0=$(cpu_ticks "$t")
  timeout -k 5 $((d + 30)) wrk -t2 -c$WRK_CONNS -d${d}s --latency "${args[@]}" "$url" >"$f" 2>&1
  local c1 nreq; c1=$(cpu_ticks "$t"); nreq=$(awk '/requests in/ {print $1; exit}' "$f")
  check_target "$t" "wrk $w rep $rep"
  [ "$t" != direct ] && [ "$t" != nginx ] && cpu_rec "wrk_${w}_${t}" "$c0" "$c1" "${nreq:-0}"
  local rps p50 p99 non2xx sockerr
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$f")
  sockerr=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$f")
  R[wrk_${w}_${t}_rps]+=" ${rps:-0}"
  R[wrk_${w}_${t}_p50]+=" $p50"
  R[wrk_${w}_${t}_p99]+=" $p99"
  R[wrk_${w}_${t}_err]=$(( ${R[wrk_${w}_${t}_err]:-0} + ${non2xx:-0} + ${sockerr:-0} ))
  log "wrk $w $t rep $rep: ${rps:-?} req/s p50 ${p50}ms p99 ${p99}ms errors $(( ${non2xx:-0} + ${sockerr:-0} ))"
}

load_mark "1. passthrough"
log "1. passthrough (wrk -t2 -c$WRK_CONNS -d${WRK_D}s, $REPS rep(s), median)"
for w in get post; do
  for ((rep = 1; rep <= REPS; rep++)); do
    for t in "${TARGETS[@]}"; do run_wrk "$t" "$w" "$rep"; done
  done
  R[wrk_${w}_ratio]=$(pair_ratio_median "${R[wrk_${w}_relay_rps]:-}" "${R[wrk_${w}_nginx_rps]:-}")
  R[wrk_${w}_p99ratio]=$(pair_ratio_median "${R[wrk_${w}_relay_p99]:-}" "${R[wrk_${w}_nginx_p99]:-}")
  for t in "${TARGETS[@]}"; do
    for m in rps p50 p99; do R[wrk_${w}_${t}_$m]=$(median <<<"${R[wrk_${w}_${t}_$m]}"); done
  done
done

# ---------------------------------------------------------------- 1b. cost per request
# One worker each (a relay with WORKERS=1, an nginx with worker_processes 1, the same upstream),
# wrk -t1 -c$PR_CONNS on the small GET, the pair back to back (order alternating): req/s and p99, CPU
# per request from /proc/PID/stat (user and system apart; the relay process, the nginx worker), and
# system calls per request: strace -c -f attached to the serving process for a fixed wrk run after
# a warm-up (strace slows the target, so it gets its own run; its calls are counted, not timed).
P_R1=18011 P_N1=18012 PR_CONNS=32
if [ "$QUICK" = 1 ]; then PR_D=2; PR_SD=2; else PR_D=5; PR_SD=3; fi
pr_start() { # start the one-worker relay and nginx: R1_PID, N1_PID (nginx worker), N1_MASTER
  local save=${RELAY_PID:-}
  R1_PID=""; N1_PID=""; N1_MASTER=""
  if [ $RELAY_OK = 1 ]; then
    start_relay $P_R1 1
    R1_PID=$RELAY_PID; RELAY_PID=$save
    wait_port $P_R1 10 || { log "1b: the one-worker relay did not start"; stop_pid "$R1_PID" 2; R1_PID=""; }
  fi
  sed -e "s/^worker_processes .*/worker_processes 1;/" -e "s|^pid .*|pid $NGX/nginx1.pid;|" \
      -e "s/listen 127.0.0.1:$P_NGINX /listen 127.0.0.1:$P_N1 /" "$NGX/nginx.conf" >"$NGX/nginx1.conf"
  nginx -p "$NGX/" -c "$NGX/nginx1.conf" -e "$NGX/logs/error.log" -g "daemon off;" >>"$OUT/nginx.log" 2>&1 &
  N1_MASTER=$!; PIDS+=($N1_MASTER)
  if wait_port $P_N1 10; then N1_PID=$(pgrep -P "$N1_MASTER" | head -1); else log "1b: the one-worker nginx did not start"; fi
}
pr_pid() { case $1 in relay1) echo "$R1_PID" ;; nginx1) echo "$N1_PID" ;; esac; }
pr_port() { case $1 in relay1) echo $P_R1 ;; nginx1) echo $P_N1 ;; esac; }
pr_cpu() { # target rep: req/s, p99, CPU per request
  local t=$1 rep=$2 pid port f a b n
  pid=$(pr_pid "$t"); port=$(pr_port "$t"); [ -n "$pid" ] || return 0
  f="$OUT/wrk-pr-$t-$rep.txt"
  timeout -k 5 30 wrk -t1 -c$PR_CONNS -d1s "http://127.0.0.1:$port/v1/models" >/dev/null 2>&1
  a=$(awk '{print $14, $15}' "/proc/$pid/stat" 2>/dev/null)
  timeout -k 5 $((PR_D + 30)) wrk -t1 -c$PR_CONNS -d${PR_D}s --latency "http://127.0.0.1:$port/v1/models" >"$f" 2>&1
  b=$(awk '{print $14, $15}' "/proc/$pid/stat" 2>/dev/null)
  n=$(awk '/requests in/ {print $1; exit}' "$f")
  [ -n "$a" ] && [ -n "$b" ] || return 0
  R[pr_${t}_rps]+=" $(awk '/^Requests\/sec:/ {print $2}' "$f")"
  R[pr_${t}_p99]+=" $(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")"
  R[pr_${t}_err]=$(( ${R[pr_${t}_err]:-0} + $(awk '/Non-2xx/ {print $NF}' "$f" | grep . || echo 0) ))
  # microseconds per request, user and system apart
  R[pr_${t}_u]+=" $(awk -v t=$(( ${b% *} - ${a% *} )) -v n="${n:-0}" -v hz="$CLK_TCK" 'BEGIN { if (n + 0 > 0) printf "%.2f", t * 1e6 / hz / n; else print "n/a" }')"
  R[pr_${t}_s]+=" $(awk -v t=$(( ${b#* } - ${a#* } )) -v n="${n:-0}" -v hz="$CLK_TCK" 'BEGIN { if (n + 0 > 0) printf "%.2f", t * 1e6 / hz / n; else print "n/a" }')"
  R[pr_${t}_cpu]+=" $(awk -v t=$(( ${b% *} + ${b#* } - ${a% *} - ${a#* } )) -v n="${n:-0}" -v hz="$CLK_TCK" 'BEGIN { if (n + 0 > 0) printf "%.2f", t * 1e6 / hz / n; else print "n/a" }')"
  log "1b. $t rep $rep: $(awk '/^Requests\/sec:/ {print $2}' "$f") req/s, CPU us/request $(echo ${R[pr_${t}_cpu]} | awk '{print $NF}')"
}
pr_syscalls() { # target: strace -c over a fixed load
  local t=$1 pid port f sp n
  pid=$(pr_pid "$t"); port=$(pr_port "$t"); [ -n "$pid" ] || return 0
  command -v strace >/dev/null || return 0
  f="$OUT/strace-pr-$t.txt"
  timeout -k 5 30 wrk -t1 -c$PR_CONNS -d1s "http://127.0.0.1:$port/v1/models" >/dev/null 2>&1
  strace -c -f -p "$pid" -o "$f" 2>/dev/null &
  sp=$!
  sleep 0.5
  timeout -k 5 $((PR_SD + 30)) wrk -t1 -c$PR_CONNS -d${PR_SD}s "http://127.0.0.1:$port/v1/models" >"$OUT/wrk-pr-strace-$t.txt" 2>&1
  kill -INT $sp 2>/dev/null; wait $sp 2>/dev/null
  n=$(awk '/requests in/ {print $1; exit}' "$OUT/wrk-pr-strace-$t.txt")
  R[pr_${t}_req_strace]=${n:-0}
  # calls per request: all, and by kind
  read -r R[pr_${t}_sc] R[pr_${t}_sc_rd] R[pr_${t}_sc_wr] R[pr_${t}_sc_ctl] R[pr_${t}_sc_wait] R[pr_${t}_sc_other] < <(awk -v n="${n:-0}" '
    $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
      c = $4; k = $NF; all += c
      if (k ~ /^(read|readv|recvfrom|recvmsg)$/) rd += c
      else if (k ~ /^(write|writev|sendto|sendmsg)$/) wr += c
      else if (k == "epoll_ctl") ctl += c
      else if (k ~ /^epoll_(p?wait|pwait2)$/) wt += c
      else ot += c }
    END { if (n + 0 <= 0) { print "n/a n/a n/a n/a n/a n/a"; exit }
          printf "%.2f %.2f %.2f %.2f %.2f %.2f\n", all / n, rd / n, wr / n, ctl / n, wt / n, ot / n }' "$f")
  log "1b. $t: ${R[pr_${t}_sc]} syscalls per request (strace -c, $n requests)"
}
load_mark "1b. cost per request"
log "1b. cost per request: one worker each, wrk -t1 -c$PR_CONNS -d${PR_D}s, $REPS rep(s); strace -c over ${PR_SD}s"
pr_start
for ((rep = 1; rep <= REPS; rep++)); do
  if [ $((rep % 2)) = 1 ]; then pr_cpu relay1 "$rep"; pr_cpu nginx1 "$rep"; else pr_cpu nginx1 "$rep"; pr_cpu relay1 "$rep"; fi
done
pr_syscalls relay1
pr_syscalls nginx1
for m in cpu rps; do R[pr_${m}_ratio]=$(pair_ratio_median "${R[pr_relay1_$m]:-}" "${R[pr_nginx1_$m]:-}"); done
for t in relay1 nginx1; do for m in rps p99 u s cpu; do R[pr_${t}_$m]=$(median <<<"${R[pr_${t}_$m]:-}"); done; done
R[pr_sc_ratio]=$(ratio "${R[pr_relay1_sc]:-n/a}" "${R[pr_nginx1_sc]:-n/a}")
[ -n "${R1_PID:-}" ] && stop_pid "$R1_PID" 5
[ -n "${N1_MASTER:-}" ] && stop_pid "$N1_MASTER" 5

# ---------------------------------------------------------------- 2. streaming
sse() { # target args... -> result line
  local t=$1; shift
  timeout -k 5 300 "$CLIENT" --port "$(port_of "$t")" "$@" 2>>"$OUT/sse_client.err"
  local rc=$?
  check_target "$t" "sse_client $*"
  return $rc
}

load_mark "2. streaming"
log "2. streaming: correctness ($RELAY_OK)"
for t in "${TARGETS[@]}"; do
  line=$(sse "$t" --events 200 --conns 4 --requests 5 --verify --dump "$OUT/content-$t.txt")
  echo "verify $t: $line" >>"$OUT/sse.txt"
  R[v_${t}_streams]=$(kv "$line" streams)
  R[v_${t}_rw]=$(kv "$line" match_rewritten)
  R[v_${t}_raw]=$(kv "$line" match_raw)
  R[v_${t}_other]=$(kv "$line" match_other)
  R[v_${t}_markers]=$(kv "$line" markers_left)
  R[v_${t}_errors]=$(kvn "$line" errors)
  log "verify $t: $line"
done

log "2. streaming: throughput ($SSE_CONNS streams x $SSE_EVENTS events, ${SSE_D}s, $REPS rep(s))"
for mode in event bulk; do
  for ((rep = 1; rep <= REPS; rep++)); do
    for t in "${TARGETS[@]}"; do
      line=$(sse "$t" --events $SSE_EVENTS --conns $SSE_CONNS --duration "$SSE_D" --write $mode)
      echo "throughput-$mode $t rep $rep: $line" >>"$OUT/sse.txt"
      R[s_${mode}_${t}]+=" $(kv "$line" events_per_s)"
      R[s_${mode}_${t}_err]=$(( ${R[s_${mode}_${t}_err]:-0} + $(kvn "$line" errors) + $(kvn "$line" bad_status) ))
      log "sse $mode $t rep $rep: $(kv "$line" events_per_s) events/s"
    done
  done
  R[s_${mode}_ratio]=$(pair_ratio_median "${R[s_${mode}_relay]:-}" "${R[s_${mode}_nginx]:-}")
  R[s_${mode}_vs_direct]=$(pair_ratio_median "${R[s_${mode}_relay]:-}" "${R[s_${mode}_direct]:-}")
  for t in "${TARGETS[@]}"; do R[s_${mode}_${t}]=$(median <<<"${R[s_${mode}_${t}]}"); done
done

log "2. streaming: per-event latency ($LAT_CONNS paced streams, 1 event/ms each, ${LAT_D}s)"
for t in "${TARGETS[@]}"; do
  line=$(sse "$t" --events 100000 --conns $LAT_CONNS --duration "$LAT_D" --interval-us 1000)
  echo "latency $t: $line" >>"$OUT/sse.txt"
  R[l_${t}_p50]=$(kv "$line" lat_p50_us)
  R[l_${t}_p99]=$(kv "$line" lat_p99_us)
  R[l_${t}_n]=$(kv "$line" lat_samples)
  log "latency $t: p50 ${R[l_${t}_p50]}us p99 ${R[l_${t}_p99]}us (${R[l_${t}_n]} events)"
done
stop_pid "$NGINX_PID" 5

# ---------------------------------------------------------------- 2b. rewrite vs passthrough
# Same relay, same upstream stream: POST /v1/chat/completions (rewritten: SSE parse, JSON parse of
# each event, rules, re-encode) vs GET /v1/stream (no route: proxied unchanged). Long streams
# (LONG_EVENTS content events each), the upstream writing one event per write(). The order of
# the pair alternates between reps; the ratio is the median of the per-rep ratios.
long_sse() { # key target path [--get]
  local k=$1 t=$2 p=$3 line c0 c1 io0 io1; shift 3
  c0=$(cpu_ticks "$t"); io0=$(sys_rw "$t")
  line=$(sse "$t" --path "$p" "$@" --events $LONG_EVENTS --conns $LONG_CONNS --requests $LONG_REQS)
  c1=$(cpu_ticks "$t"); io1=$(sys_rw "$t")
  if [ "$t" != direct ]; then
    cpu_rec "lg_$k" "$c0" "$c1" "$(kvn "$line" events)"
    R[lg_${k}_rd]+=" $(per_unit $(( ${io1% *} - ${io0% *} )) "$(kvn "$line" events)")"
    R[lg_${k}_wr]+=" $(per_unit $(( ${io1#* } - ${io0#* } )) "$(kvn "$line" events)")"
  fi
  echo "long-$k rep $rep: $line" >>"$OUT/sse.txt"
  R[lg_$k]+=" $(kv "$line" events_per_s)"
  R[lg_${k}_err]=$(( ${R[lg_${k}_err]:-0} + $(kvn "$line" errors) + $(kvn "$line" bad_status) ))
  R[lg_${k}_streams]=$(( ${R[lg_${k}_streams]:-0} + $(kvn "$line" streams) ))
  log "long $k rep $rep: $(kv "$line" events_per_s) events/s ($(kv "$line" events) events in $(kv "$line" secs)s)"
}
load_mark "2b. rewrite vs passthrough"
log "2b. rewrite vs passthrough: $LONG_CONNS connections x $LONG_REQS stream(s) of $LONG_EVENTS events, $REPS rep(s)"
if [ $RELAY_OK = 1 ]; then
  # correctness of one long rewritten stream (markers cut over events, 100k events of state)
  line=$(sse relay --events $LONG_EVENTS --conns 1 --requests 1 --verify)
  echo "verify-long relay: $line" >>"$OUT/sse.txt"
  R[vl_rw]=$(kv "$line" match_rewritten); R[vl_markers]=$(kv "$line" markers_left); R[vl_streams]=$(kv "$line" streams)
  log "verify long relay: $line"
fi
for ((rep = 1; rep <= REPS; rep++)); do
  if [ $RELAY_OK = 1 ]; then
    if [ $((rep % 2)) = 1 ]; then
      long_sse rewrite relay /v1/chat/completions; long_sse pass relay /v1/stream --get
    else
      long_sse pass relay /v1/stream --get; long_sse rewrite relay /v1/chat/completions
    fi
  fi
  long_sse direct direct /v1/chat/completions
done
R[lg_ratio]=$(pair_ratio_median "${R[lg_rewrite]:-}" "${R[lg_pass]:-}")
R[lg_vs_direct]=$(pair_ratio_median "${R[lg_rewrite]:-}" "${R[lg_direct]:-}")
R[lg_cpu_ratio]=$(pair_ratio_median "${R[lg_rewrite_cpu]:-}" "${R[lg_pass_cpu]:-}")
R[lg_ucpu_ratio]=$(pair_ratio_median "${R[lg_rewrite_ucpu]:-}" "${R[lg_pass_ucpu]:-}")
for k in rewrite pass direct rewrite_cpu pass_cpu rewrite_ucpu pass_ucpu rewrite_rd pass_rd rewrite_wr pass_wr; do R[lg_$k]=$(median <<<"${R[lg_$k]:-}"); done

# ---------------------------------------------------------------- 5. Lua layer
# Stock script vs a script with a Lua routing function (relay.on_request, one Lua call per
# request) on a small JSON GET; stock script vs the same rewrite route plus an on_event hook
# (one Lua call per event) on the SSE throughput workload. Pairs back to back, order alternating.
load_mark "5. Lua layer"
if [ $RELAY_OK = 1 ]; then
  log "5. Lua layer: wrk GET /v1/models ${LUA_WRK_D}s stock vs ${SCRIPT_LUA#$ROOT/}; SSE ${LUA_SSE_D}s stock vs ${SCRIPT_HOOK#$ROOT/}"
  start_xrelay relay_lua $P_LUA "$SCRIPT_LUA"
  start_xrelay relay_hook $P_HOOK "$SCRIPT_HOOK"
  for t in relay_lua relay_hook; do
    [ "${XOK[$t]}" = 1 ] || continue
    line=$(sse "$t" --events 200 --conns 4 --requests 5 --verify)
    echo "verify $t: $line" >>"$OUT/sse.txt"
    R[v_${t}_streams]=$(kv "$line" streams); R[v_${t}_rw]=$(kv "$line" match_rewritten); R[v_${t}_markers]=$(kv "$line" markers_left)
    log "verify $t: $line"
  done
  if [ "${XOK[relay_lua]}" = 1 ]; then
    for ((rep = 1; rep <= REPS; rep++)); do
      if [ $((rep % 2)) = 1 ]; then run_wrk relay lget "$rep"; run_wrk relay_lua lget "$rep"
      else run_wrk relay_lua lget "$rep"; run_wrk relay lget "$rep"; fi
    done
    R[lua_rps_ratio]=$(pair_ratio_median "${R[wrk_lget_relay_lua_rps]:-}" "${R[wrk_lget_relay_rps]:-}")
    R[lua_p99_ratio]=$(pair_ratio_median "${R[wrk_lget_relay_lua_p99]:-}" "${R[wrk_lget_relay_p99]:-}")
    R[lua_cpu_ratio]=$(pair_ratio_median "${R[wrk_lget_relay_lua_cpu]:-}" "${R[wrk_lget_relay_cpu]:-}")
    R[lua_ucpu_ratio]=$(pair_ratio_median "${R[wrk_lget_relay_lua_ucpu]:-}" "${R[wrk_lget_relay_ucpu]:-}")
    for t in relay relay_lua; do
      for m in rps p50 p99 cpu ucpu; do R[wrk_lget_${t}_$m]=$(median <<<"${R[wrk_lget_${t}_$m]}"); done
    done
  fi
  if [ "${XOK[relay_hook]}" = 1 ]; then
    hook_sse() { # target
      local t=$1 line c0 c1 io0 io1
      c0=$(cpu_ticks "$t"); io0=$(sys_rw "$t")
      line=$(sse "$t" --events $SSE_EVENTS --conns $SSE_CONNS --duration "$LUA_SSE_D")
      c1=$(cpu_ticks "$t"); io1=$(sys_rw "$t")
      cpu_rec "h_$t" "$c0" "$c1" "$(kvn "$line" events)"
      R[h_${t}_rw]+=" $(per_unit $(( ${io1% *} - ${io0% *} + ${io1#* } - ${io0#* } )) "$(kvn "$line" events)")"
      echo "throughput-hook $t rep $rep: $line" >>"$OUT/sse.txt"
      R[h_$t]+=" $(kv "$line" events_per_s)"
      R[h_${t}_err]=$(( ${R[h_${t}_err]:-0} + $(kvn "$line" errors) + $(kvn "$line" bad_status) ))
      log "sse hook $t rep $rep: $(kv "$line" events_per_s) events/s"
    }
    for ((rep = 1; rep <= REPS; rep++)); do
      if [ $((rep % 2)) = 1 ]; then hook_sse relay; hook_sse relay_hook
      else hook_sse relay_hook; hook_sse relay; fi
    done
    R[hook_ratio]=$(pair_ratio_median "${R[h_relay_hook]:-}" "${R[h_relay]:-}")
    R[hook_cpu_ratio]=$(pair_ratio_median "${R[h_relay_hook_cpu]:-}" "${R[h_relay_cpu]:-}")
    R[hook_ucpu_ratio]=$(pair_ratio_median "${R[h_relay_hook_ucpu]:-}" "${R[h_relay_ucpu]:-}")
    for t in relay relay_hook; do for m in "" _cpu _ucpu _rw; do R[h_$t$m]=$(median <<<"${R[h_$t$m]}"); done; done
  fi
  for t in relay_lua relay_hook; do [ -n "${XPID[$t]:-}" ] && stop_pid "${XPID[$t]}" 5; done
fi
# ---------------------------------------------------------------- 7. reasoning forms and tool calls
# The stock relay (the same process) on three scripted upstream forms (bench/upstream.c ?form=), one
# write per event: harmony markers in content (the plain rewrite), reasoning in reasoning_content
# (llama.cpp; tags mode moves it into content between the tags) and harmony with a tool call left in
# content (mlx_lm.server; the call becomes streamed tool_calls). The order rotates between reps; the
# ratios are medians of per-rep ratios against the harmony form.
FORMS=(harmony reasoning tool)
load_mark "7. reasoning forms and tool calls"
if [ $RELAY_OK = 1 ]; then
  log "7. forms: $SSE_CONNS streams x $SSE_EVENTS events, ${SSE_D}s each, $REPS rep(s): ${FORMS[*]}"
  form_sse() { # form
    local f=$1 line c0 c1
    c0=$(cpu_ticks relay)
    line=$(sse relay --path "/v1/chat/completions?form=$f" --events $SSE_EVENTS --conns $SSE_CONNS --duration "$SSE_D")
    c1=$(cpu_ticks relay)
    cpu_rec "f_$f" "$c0" "$c1" "$(kvn "$line" events)"
    echo "throughput-form $f rep $rep: $line" >>"$OUT/sse.txt"
    R[f_$f]+=" $(kv "$line" events_per_s)"
    R[f_${f}_err]=$(( ${R[f_${f}_err]:-0} + $(kvn "$line" errors) + $(kvn "$line" bad_status) ))
    log "sse form $f rep $rep: $(kv "$line" events_per_s) events/s"
  }
  for ((rep = 1; rep <= REPS; rep++)); do
    for k in 0 1 2; do form_sse "${FORMS[$(( (k + rep) % 3 ))]}"; relay_check "form throughput"; done
  done
  for f in reasoning tool; do
    R[f_${f}_ratio]=$(pair_ratio_median "${R[f_$f]:-}" "${R[f_harmony]:-}")
    R[f_${f}_ucpu_ratio]=$(pair_ratio_median "${R[f_${f}_ucpu]:-}" "${R[f_harmony_ucpu]:-}")
  done
  for f in "${FORMS[@]}"; do for m in "" _cpu _ucpu; do R[f_$f$m]=$(median <<<"${R[f_$f$m]:-}"); done; done
  # what a client reads from one 200-event stream of each new form
  for f in reasoning tool; do
    curl -sS -m 30 -X POST -H 'Content-Type: application/json' -d '{"stream":true}' \
      "http://127.0.0.1:$P_RELAY/v1/chat/completions?form=$f&events=200" >"$OUT/form-$f.sse" 2>>"$OUT/relay.log"
  done
  R[f_reasoning_ok]=no
  [ "$(grep -c '<think>' "$OUT/form-reasoning.sse")" = 1 ] && [ "$(grep -c '</think>' "$OUT/form-reasoning.sse")" = 1 ] &&
    ! grep -q reasoning_content "$OUT/form-reasoning.sse" && R[f_reasoning_ok]=yes
  R[f_tool_ok]=no
  [ "$(grep -c '"tool_calls":\[{"index":0,"id":"call_' "$OUT/form-tool.sse")" = 1 ] &&
    grep -q '"finish_reason":"tool_calls"' "$OUT/form-tool.sse" && ! grep -q '<|' "$OUT/form-tool.sse" && R[f_tool_ok]=yes
  log "forms: reasoning read as tags: ${R[f_reasoning_ok]}; tool call made: ${R[f_tool_ok]}"
fi

[ $RELAY_OK = 1 ] && stop_pid "$RELAY_PID" 5

# ---------------------------------------------------------------- 6. metrics on vs off
# Two relays from the same binary and stock script, running at the same time: "on" has the admin
# port (RELAY_ADMIN_PORT: every exchange counted in its worker's cells, /metrics scraped once a
# second during the whole section, as Prometheus would), "off" has none (nothing counted). wrk on
# GET /v1/models, pairs back to back, order alternating; the ratio is the median of the per-rep
# ratios. Afterwards the "on" relay's relay_requests_total is checked against what wrk completed.
P_MOFF=18006 P_MON=18007 P_MADM=18008
declare -A MPID
m_wrk() { # on|off rep
  local k=$1 rep=$2 port=$P_MOFF f c0 c1 nreq rps p50 p99 err
  [ "$k" = on ] && port=$P_MON
  f="$OUT/wrk-metrics-$k-$rep.txt"
  c0=$(awk '{print $14, $15}' "/proc/${MPID[$k]}/stat" 2>/dev/null || echo "0 0")
  timeout -k 5 $((LUA_WRK_D + 30)) wrk -t2 -c$WRK_CONNS -d${LUA_WRK_D}s --latency "http://127.0.0.1:$port/v1/models" >"$f" 2>&1
  c1=$(awk '{print $14, $15}' "/proc/${MPID[$k]}/stat" 2>/dev/null || echo "0 0")
  nreq=$(awk '/requests in/ {print $1; exit}' "$f")
  cpu_rec "met_$k" "$c0" "$c1" "${nreq:-0}"
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
  err=$(( $(awk '/Non-2xx/ {print $NF}' "$f" | grep . || echo 0) + $(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$f" | grep . || echo 0) ))
  R[met_${k}_rps]+=" ${rps:-0}"; R[met_${k}_p50]+=" $p50"; R[met_${k}_p99]+=" $p99"
  R[met_${k}_err]=$(( ${R[met_${k}_err]:-0} + err ))
  [ "$k" = on ] && R[met_on_wrk_total]=$(( ${R[met_on_wrk_total]:-0} + ${nreq:-0} ))
  kill -0 "${MPID[$k]}" 2>/dev/null || RELAY_CRASHES+=("during metrics $k rep $rep: oss-relay (metrics $k) is gone")
  log "metrics $k rep $rep: ${rps:-?} req/s p50 ${p50}ms p99 ${p99}ms errors $err"
}
load_mark "6. metrics"
M_OK=$RELAY_OK
for p in $P_MOFF $P_MON $P_MADM; do port_free "$p" || { log "6. metrics: port $p is in use; skipped"; M_OK=0; }; done
if [ $M_OK = 1 ]; then
  log "6. metrics: wrk GET /v1/models ${LUA_WRK_D}s, admin port on vs off, $REPS rep(s)"
  save_pid=${RELAY_PID:-}
  start_relay $P_MOFF "$WORKERS"; MPID[off]=$RELAY_PID
  start_relay $P_MON "$WORKERS" RELAY_ADMIN_PORT=$P_MADM; MPID[on]=$RELAY_PID
  RELAY_PID=$save_pid
  if wait_port $P_MOFF 10 && wait_port $P_MON 10 && wait_port $P_MADM 10; then
    ( while :; do curl -fsS -m 2 "http://127.0.0.1:$P_MADM/metrics" >/dev/null 2>&1; sleep 1; done ) &
    SCRAPER=$!; PIDS+=($SCRAPER)
    for k in off on; do timeout -k 5 20 wrk -t2 -c$WRK_CONNS -d1s "http://127.0.0.1:$( [ $k = on ] && echo $P_MON || echo $P_MOFF)/v1/models" >"$OUT/wrk-metrics-warm-$k.txt" 2>&1; done
    R[met_on_warm]=$(awk '/requests in/ {print $1; exit}' "$OUT/wrk-metrics-warm-on.txt")
    for ((rep = 1; rep <= REPS; rep++)); do
      if [ $((rep % 2)) = 1 ]; then m_wrk off "$rep"; m_wrk on "$rep"; else m_wrk on "$rep"; m_wrk off "$rep"; fi
    done
    stop_pid "$SCRAPER" 2
    curl -fsS -m 5 "http://127.0.0.1:$P_MADM/metrics" >"$OUT/metrics-on.txt" 2>>"$OUT/relay.log"
    R[met_counted]=$(awk '/^relay_requests_total[{ ]/ {s += $NF} END {printf "%.0f", s}' "$OUT/metrics-on.txt")
    R[met_completed]=$(( ${R[met_on_wrk_total]:-0} + ${R[met_on_warm]:-0} ))
    R[met_ratio]=$(pair_ratio_median "${R[met_on_rps]:-}" "${R[met_off_rps]:-}")
    R[met_p99_ratio]=$(pair_ratio_median "${R[met_on_p99]:-}" "${R[met_off_p99]:-}")
    R[met_ucpu_ratio]=$(pair_ratio_median "${R[met_on_ucpu]:-}" "${R[met_off_ucpu]:-}")
    R[met_cpu_ratio]=$(pair_ratio_median "${R[met_on_cpu]:-}" "${R[met_off_cpu]:-}")
    for k in on off; do for m in rps p50 p99 cpu ucpu; do R[met_${k}_$m]=$(median <<<"${R[met_${k}_$m]}"); done; done
    log "metrics: on/off req/s ratio ${R[met_ratio]}; ${R[met_counted]:-?} requests counted, wrk completed ${R[met_completed]}"
  else
    log "!! 6. metrics: a relay did not start (see bench/.build/out/relay.log)"
    RELAY_CRASHES+=("6. metrics: a relay did not start; its rows are n/a")
  fi
  stop_pid "${MPID[off]}" 5; stop_pid "${MPID[on]}" 5
fi

# ---------------------------------------------------------------- 3. memory
mem_test() { # name port pid-of-server rss-function
  local name=$1 port=$2 spid=$3 rssf=$4 hpid n i got k
  local f="$OUT/idle-$name.txt"
  sleep 0.5
  R[m_${name}_0]=$($rssf "$spid")
  : >"$f"
  "$CLIENT" --port "$port" --idle "${MEM_STAGES_RUN// /,}" --stage-timeout 60 >"$f" 2>>"$OUT/sse_client.err" &
  hpid=$!; PIDS+=($hpid)
  i=0
  for n in $MEM_STAGES_RUN; do
    i=$((i + 1))
    for ((k = 0; k < 900; k++)); do
      [ "$(grep -c '^HELD' "$f")" -ge $i ] && break
      kill -0 $hpid 2>/dev/null || break
      sleep 0.1
    done
    got=$(grep '^HELD' "$f" | sed -n "${i}p" | awk '{print $2}')
    sleep 1
    R[m_${name}_${n}]=$($rssf "$spid")
    R[m_${name}_${n}_held]=${got:-0}
    log "memory $name: ${got:-0}/$n idle streams held, RSS ${R[m_${name}_${n}]} KiB (base ${R[m_${name}_0]} KiB)"
    kill -USR1 $hpid 2>/dev/null
  done
  stop_pid $hpid 3
}
load_mark "3. memory"
log "3. memory: idle streams ($MEM_STAGES_RUN)"
if [ $RELAY_OK = 1 ]; then
  start_relay $P_RELAY "$WORKERS"
  wait_port $P_RELAY 10
  sse relay --events 50 --requests 2 --conns 2 >/dev/null   # warm-up: one exchange per worker
  curl -fsS -m 5 "http://127.0.0.1:$P_RELAY/v1/models" >/dev/null 2>&1
  mem_test relay $P_RELAY "$RELAY_PID" rss_kib
  stop_pid "$RELAY_PID" 5
fi
start_nginx
sse nginx --events 50 --requests 2 --conns 2 >/dev/null
mem_test nginx $P_NGINX "$NGINX_PID" rss_tree_kib
stop_pid "$NGINX_PID" 5

# ---------------------------------------------------------------- 4. callgrind
cg_run() { # name path events requests [--get]
  local name=$1 path=$2 ev=$3 nreq=$4; shift 4
  local cgf="$OUT/callgrind.$name.out" vpid line total
  rm -f "$cgf"
  start_relay $P_CG 1 valgrind --tool=callgrind --callgrind-out-file="$cgf" --trace-children=no
  vpid=$RELAY_PID
  if ! wait_port $P_CG 90; then log "callgrind $name: relay did not start under valgrind"; stop_pid $vpid 5; return; fi
  line=$(timeout -k 5 300 "$CLIENT" --port $P_CG --path "$path" --events "$ev" --requests "$nreq" "$@" 2>>"$OUT/sse_client.err")
  echo "callgrind $name: $line" >>"$OUT/sse.txt"
  R[cg_${name}_events]=$(kv "$line" events)
  R[cg_${name}_streams]=$(kv "$line" streams)
  kill -TERM $vpid 2>/dev/null
  for ((k = 0; k < 600; k++)); do kill -0 $vpid 2>/dev/null || break; sleep 0.1; done
  if kill -0 $vpid 2>/dev/null; then
    log "callgrind $name: relay did not exit on SIGTERM within 60s; dumping with callgrind_control"
    callgrind_control -d $vpid >/dev/null 2>&1; sleep 2
  fi
  stop_pid $vpid 2
  # the file has both "summary:" and "totals:" (same number); count one
  total=$(awk '/^totals:/ {t += $2; ft = 1} /^summary:/ {s += $2; fs = 1}
               END {if (ft) print t; else if (fs) print s}' "$cgf" 2>/dev/null)
  R[cg_${name}_ir]=${total:-n/a}
  log "callgrind $name: ${R[cg_${name}_ir]} instructions, ${R[cg_${name}_events]:-?} events"
}
cg_flat() { # callgrind file -> "Ir<TAB>function" (exclusive, all functions)
  callgrind_annotate --threshold=100 --inclusive=no "$1" 2>/dev/null |
    awk '/^ *[0-9,]+ +\(/ && !/PROGRAM TOTALS/ { n = $1; gsub(",", "", n); $1 = ""; $2 = "";
         sub(/^ +/, ""); sub(/ \[.*$/, ""); sub(/^.*:/, ""); print n "\t" $0 }'
}
cg_diff_top() { # route -> per-event exclusive instructions by function (N run minus base run)
  local k=$1 ev u=${R[cg_${1}_units]:-events}
  ev=$(( ${R[cg_${k}_n_$u]:-0} - ${R[cg_${k}_0_$u]:-0} ))
  [ "$ev" -gt 0 ] || return 0
  { cg_flat "$OUT/callgrind.${k}_n.out" | sed 's/^/n\t/'; cg_flat "$OUT/callgrind.${k}_0.out" | sed 's/^/b\t/'; } |
    awk -F'\t' -v ev="$ev" '{ if ($1 == "n") d[$3] += $2; else d[$3] -= $2 }
      END { for (f in d) if (d[f] / ev >= 1) printf "%10.0f  %s\n", d[f] / ev, f }' | sort -rn | head -20
}
CG_BASE=11
if [ $RELAY_OK = 1 ] && command -v valgrind >/dev/null; then
  load_mark "4. callgrind"
  log "4. callgrind (WORKERS=1): $CG_EVENTS vs $CG_BASE events"
  cg_run chat_n /v1/chat/completions $CG_EVENTS 1
  cg_run chat_0 /v1/chat/completions $CG_BASE 1
  cg_run pass_n /v1/stream $CG_EVENTS 1 --get
  cg_run pass_0 /v1/stream $CG_BASE 1 --get
  cg_run get_n /v1/models 11 $CG_REQS --get
  cg_run get_0 /v1/models 11 1 --get
  # per event for the streams; per request (streams = responses) for the small GET
  for k in chat pass get; do
    u=events; [ $k = get ] && u=streams
    R[cg_${k}_units]=$u
    R[cg_${k}_per]=$(awk -v a="${R[cg_${k}_n_ir]}" -v b="${R[cg_${k}_0_ir]}" -v ea="${R[cg_${k}_n_$u]:-0}" -v eb="${R[cg_${k}_0_$u]:-0}" \
      'BEGIN { if (a == "n/a" || b == "n/a" || ea - eb <= 0) print "n/a"; else printf "%.0f", (a - b) / (ea - eb) }')
  done
  for k in chat pass get; do
    cg_diff_top "$k" >"$OUT/callgrind-$k-per-event.txt"
  done
fi

# section 7 under callgrind: instructions per event of the reasoning_content and tool-call forms
if [ $RELAY_OK = 1 ] && command -v valgrind >/dev/null; then
  log "7. callgrind (WORKERS=1): forms reasoning and tool, $CG_EVENTS vs $CG_BASE events"
  for f in reasoning tool; do
    cg_run "f${f}_n" "/v1/chat/completions?form=$f" $CG_EVENTS 1
    cg_run "f${f}_0" "/v1/chat/completions?form=$f" $CG_BASE 1
    R[cg_f${f}_per]=$(awk -v a="${R[cg_f${f}_n_ir]}" -v b="${R[cg_f${f}_0_ir]}" -v ea="${R[cg_f${f}_n_events]:-0}" \
      -v eb="${R[cg_f${f}_0_events]:-0}" 'BEGIN { if (a == "n/a" || b == "n/a" || ea - eb <= 0) print "n/a"; else printf "%.0f", (a - b) / (ea - eb) }')
    cg_diff_top "f$f" >"$OUT/callgrind-f$f-per-event.txt"
  done
fi

# syscalls per event: upstream writes 64 KiB at a time, so a proxy that coalesces needs far fewer
# than one write per event.
if [ $RELAY_OK = 1 ] && command -v strace >/dev/null; then
  for k in chat pass; do
    path=/v1/chat/completions; extra=(); [ $k = pass ] && { path=/v1/stream; extra=(--get); }
    start_relay $P_CG 1 strace -f -c -o "$OUT/strace-$k.txt"
    if wait_port $P_CG 20; then
      line=$(timeout -k 5 120 "$CLIENT" --port $P_CG --path $path --events "$CG_EVENTS" --requests 1 --write bulk "${extra[@]}" 2>>"$OUT/sse_client.err")
      ev=$(kv "$line" events)
      # stop the relay itself (strace's child); strace then writes its summary and exits
      for c in $(pgrep -P "$RELAY_PID"); do kill -TERM "$c" 2>/dev/null; done
      for ((k2 = 0; k2 < 100; k2++)); do kill -0 "$RELAY_PID" 2>/dev/null || break; sleep 0.1; done
      stop_pid "$RELAY_PID" 2
      R[sc_${k}_writes]=$(awk '$NF ~ /^(write|writev|sendmsg|sendto)$/ {s += $4} END {print s + 0}' "$OUT/strace-$k.txt")
      R[sc_${k}_reads]=$(awk '$NF ~ /^(read|readv|recvmsg|recvfrom)$/ {s += $4} END {print s + 0}' "$OUT/strace-$k.txt")
      R[sc_${k}_per]=$(awk -v w="${R[sc_${k}_writes]}" -v e="${ev:-0}" 'BEGIN { if (e + 0 > 0) printf "%.2f", w / e; else print "n/a" }')
      R[sc_${k}_events]=${ev:-0}
      log "strace $k: ${R[sc_${k}_writes]} writes, ${R[sc_${k}_reads]} reads for ${ev:-?} events"
    else
      stop_pid "$RELAY_PID" 2
    fi
  done
fi

cleanup
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
log "writing $RESULTS"

# ---------------------------------------------------------------- report
g() { local v="${R[$1]:-n/a}"; [ -z "$v" ] && v="n/a"; echo "$v"; }
relay_or_na() { [ $RELAY_OK = 1 ] && g "$1" || echo n/a; }
mark() { # value op target -> yes/no/n/a
  awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "n/a" || v == "") { print "n/a"; exit }
    ok = (op == ">=") ? (v + 0 >= t + 0) : (op == "<") ? (v + 0 < t + 0) : (v + 0 <= t + 0); print ok ? "yes" : "no" }'
}
kib_per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (a == "n/a" || b == "n/a" || a == "" || n + 0 == 0) print "n/a"; else printf "%.1f", (a - b) / n }'; }

MEM_SMALL=${MEM_STAGES_RUN%% *}; MEM_BIG=${MEM_STAGES_RUN##* }
# headline ratios: median over reps of (relay / nginx) measured back to back, which cancels
# most of the drift of a shared machine; the req/s columns are the medians of each target.
rps_get_ratio=$(relay_or_na wrk_get_ratio)
rps_post_ratio=$(relay_or_na wrk_post_ratio)
p99_get_ratio=$(relay_or_na wrk_get_p99ratio)
p99_post_ratio=$(relay_or_na wrk_post_p99ratio)
ev_ratio=$(relay_or_na s_event_ratio)
evb_ratio=$(relay_or_na s_bulk_ratio)
kib_relay_big=$(kib_per "$(relay_or_na m_relay_$MEM_BIG)" "$(relay_or_na m_relay_0)" "$(relay_or_na m_relay_${MEM_BIG}_held)")
kib_relay_small=$(kib_per "$(relay_or_na m_relay_$MEM_SMALL)" "$(relay_or_na m_relay_0)" "$(relay_or_na m_relay_${MEM_SMALL}_held)")
kib_nginx_big=$(kib_per "$(g m_nginx_$MEM_BIG)" "$(g m_nginx_0)" "$(g m_nginx_${MEM_BIG}_held)")
kib_nginx_small=$(kib_per "$(g m_nginx_$MEM_SMALL)" "$(g m_nginx_0)" "$(g m_nginx_${MEM_SMALL}_held)")
lat_add_p50=$(awk -v a="$(relay_or_na l_relay_p50)" -v b="$(g l_direct_p50)" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else print a - b }')
lat_add_p99=$(awk -v a="$(relay_or_na l_relay_p99)" -v b="$(g l_direct_p99)" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else print a - b }')
nlat_add_p50=$(awk -v a="$(g l_nginx_p50)" -v b="$(g l_direct_p50)" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else print a - b }')
nlat_add_p99=$(awk -v a="$(g l_nginx_p99)" -v b="$(g l_direct_p99)" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else print a - b }')
per_stream_markers() { awk -v m="$(g v_$1_markers)" -v s="$(g v_$1_streams)" 'BEGIN { if (m == "n/a" || s + 0 == 0) print "n/a"; else printf "%.0f", m / s }'; }

SUMMARY=$(cat <<EOF
| metric (oss-relay vs nginx, $WORKERS workers each) | oss-relay | nginx | ratio | target | met |
| --- | ---: | ---: | ---: | --- | --- |
| small JSON GET, req/s | $(fmt_int "$(relay_or_na wrk_get_relay_rps)") | $(fmt_int "$(g wrk_get_nginx_rps)") | **$(rx "$rps_get_ratio")** | >= 1.2x | $(mark "$rps_get_ratio" ">=" 1.2) |
| small JSON GET, p99 ms | $(relay_or_na wrk_get_relay_p99) | $(g wrk_get_nginx_p99) | $(rx "$p99_get_ratio") | <= 1x | $(mark "$p99_get_ratio" "<=" 1.0) |
| 1 MiB POST, req/s | $(fmt_int "$(relay_or_na wrk_post_relay_rps)") | $(fmt_int "$(g wrk_post_nginx_rps)") | **$(rx "$rps_post_ratio")** | >= 1.2x | $(mark "$rps_post_ratio" ">=" 1.2) |
| 1 MiB POST, p99 ms | $(relay_or_na wrk_post_relay_p99) | $(g wrk_post_nginx_p99) | $(rx "$p99_post_ratio") | <= 1x | $(mark "$p99_post_ratio" "<=" 1.0) |
| SSE rewrite, events/s (one write per event) | $(fmt_int "$(relay_or_na s_event_relay)") | $(fmt_int "$(g s_event_nginx)") (+Lua) | **$(rx "$ev_ratio")** | >= 3x | $(mark "$ev_ratio" ">=" 3) |
| SSE rewrite, events/s (64 KiB writes) | $(fmt_int "$(relay_or_na s_bulk_relay)") | $(fmt_int "$(g s_bulk_nginx)") (+Lua) | $(rx "$evb_ratio") | | |
| SSE rewrite events/s vs direct to the upstream (one write per event) | $(fmt_int "$(relay_or_na s_event_relay)") | $(fmt_int "$(g s_event_direct)") direct | **$(rx "$(relay_or_na s_event_vs_direct)")** | >= 0.75x | $(mark "$(relay_or_na s_event_vs_direct)" ">=" 0.75) |
| syscalls per keep-alive small GET (1 worker each, strace -c) | $(relay_or_na pr_relay1_sc) | $(g pr_nginx1_sc) | $(rx "$(relay_or_na pr_sc_ratio)") | <= 4.2 | $(mark "$(relay_or_na pr_relay1_sc)" "<=" 4.2) |
| CPU us per small GET, user / sys (1 worker each) | $(relay_or_na pr_relay1_u) / $(relay_or_na pr_relay1_s) | $(g pr_nginx1_u) / $(g pr_nginx1_s) | **$(rx "$(relay_or_na pr_cpu_ratio)")** | <= 0.85x | $(mark "$(relay_or_na pr_cpu_ratio)" "<=" 0.85) |
| small GET req/s (1 worker each, wrk -t1 -c$PR_CONNS) | $(fmt_int "$(relay_or_na pr_relay1_rps)") | $(fmt_int "$(g pr_nginx1_rps)") | **$(rx "$(relay_or_na pr_rps_ratio)")** | >= 1.15x | $(mark "$(relay_or_na pr_rps_ratio)" ">=" 1.15) |
| added latency per event, p50 / p99 us | ${lat_add_p50} / ${lat_add_p99} | ${nlat_add_p50} / ${nlat_add_p99} | | | |
| harmony markers left per stream (6 in input) | $(per_stream_markers relay) | $(per_stream_markers nginx) | | 0 | $(mark "$(per_stream_markers relay)" "<=" 0) |
| RSS per idle stream at $(fmt_int "$MEM_BIG"), KiB | ${kib_relay_big} | ${kib_nginx_big} | $(rx "$(ratio "$kib_relay_big" "$kib_nginx_big")") | < 16 | $(mark "$kib_relay_big" "<" 16) |
| instructions per rewritten event (callgrind) | $(fmt_int "$(relay_or_na cg_chat_per)") | | | < 4,000 | $(mark "$(relay_or_na cg_chat_per)" "<" 4000) |
| instructions per passthrough SSE event | $(fmt_int "$(relay_or_na cg_pass_per)") | | | | |
| instructions per small GET request | $(fmt_int "$(relay_or_na cg_get_per)") | | | | |
EOF
)

# relay against itself: what the rewrite and the Lua layer cost (pairs on the same machine, back to back)
lg_ratio=$(relay_or_na lg_ratio)
lua_ratio=$(relay_or_na lua_rps_ratio)
lua_p99_ratio=$(relay_or_na lua_p99_ratio)
hook_ratio=$(relay_or_na hook_ratio)
SUMMARY_SELF=$(cat <<EOF
| metric (oss-relay against itself, $WORKERS workers) | with | without | ratio (with / without) |
| --- | ---: | ---: | ---: |
| SSE events/s, rewritten route vs passthrough route ($(fmt_int $LONG_EVENTS)-event streams) | $(fmt_int "$(relay_or_na lg_rewrite)") | $(fmt_int "$(relay_or_na lg_pass)") | **$(rx "$lg_ratio")** |
| small JSON GET req/s, Lua routing function vs stock script | $(fmt_int "$(relay_or_na wrk_lget_relay_lua_rps)") | $(fmt_int "$(relay_or_na wrk_lget_relay_rps)") | **$(rx "$lua_ratio")** |
| small JSON GET p99 ms, Lua routing function vs stock script | $(relay_or_na wrk_lget_relay_lua_p99) | $(relay_or_na wrk_lget_relay_p99) | $(rx "$lua_p99_ratio") |
| SSE rewrite events/s, on_event hook vs none | $(fmt_int "$(relay_or_na h_relay_hook)") | $(fmt_int "$(relay_or_na h_relay)") | **$(rx "$hook_ratio")** |
| relay user CPU ns per event, rewritten vs passthrough route | $(fmt_int "$(relay_or_na lg_rewrite_ucpu)") | $(fmt_int "$(relay_or_na lg_pass_ucpu)") | $(rx "$(relay_or_na lg_ucpu_ratio)") |
| relay user+sys CPU ns per event, rewritten vs passthrough route | $(fmt_int "$(relay_or_na lg_rewrite_cpu)") | $(fmt_int "$(relay_or_na lg_pass_cpu)") | $(rx "$(relay_or_na lg_cpu_ratio)") |
| relay user CPU ns per small GET, Lua routing function vs stock | $(fmt_int "$(relay_or_na wrk_lget_relay_lua_ucpu)") | $(fmt_int "$(relay_or_na wrk_lget_relay_ucpu)") | $(rx "$(relay_or_na lua_ucpu_ratio)") |
| relay user+sys CPU ns per small GET, Lua routing function vs stock | $(fmt_int "$(relay_or_na wrk_lget_relay_lua_cpu)") | $(fmt_int "$(relay_or_na wrk_lget_relay_cpu)") | $(rx "$(relay_or_na lua_cpu_ratio)") |
| relay user CPU ns per event, on_event hook vs none | $(fmt_int "$(relay_or_na h_relay_hook_ucpu)") | $(fmt_int "$(relay_or_na h_relay_ucpu)") | $(rx "$(relay_or_na hook_ucpu_ratio)") |
| relay user+sys CPU ns per event, on_event hook vs none | $(fmt_int "$(relay_or_na h_relay_hook_cpu)") | $(fmt_int "$(relay_or_na h_relay_cpu)") | $(rx "$(relay_or_na hook_cpu_ratio)") |
| small JSON GET req/s, metrics on (admin port, scraped 1/s) vs off | $(fmt_int "$(relay_or_na met_on_rps)") | $(fmt_int "$(relay_or_na met_off_rps)") | **$(rx "$(relay_or_na met_ratio)")** |
| small JSON GET p99 ms, metrics on vs off | $(relay_or_na met_on_p99) | $(relay_or_na met_off_p99) | $(rx "$(relay_or_na met_p99_ratio)") |
| relay user CPU ns per small GET, metrics on vs off | $(fmt_int "$(relay_or_na met_on_ucpu)") | $(fmt_int "$(relay_or_na met_off_ucpu)") | $(rx "$(relay_or_na met_ucpu_ratio)") |
EOF
)

# the compact table for the README (bench/SUMMARY.md)
COMMIT_DESC="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- src include lua CMakeLists.txt 2>/dev/null || echo ' + uncommitted changes')"
nginx_per_markers=$(per_stream_markers nginx)
COMPACT=$(cat <<EOF
| headline ($WORKERS workers each, $(nproc) CPUs, loopback) | oss-relay | reference | ratio |
| --- | ---: | ---: | ---: |
| passthrough small JSON GET, req/s | $(fmt_int "$(relay_or_na wrk_get_relay_rps)") | $(fmt_int "$(g wrk_get_nginx_rps)") nginx | **$(rx "$rps_get_ratio")** |
| passthrough small JSON GET, p99 ms | $(relay_or_na wrk_get_relay_p99) | $(g wrk_get_nginx_p99) nginx | $(rx "$p99_get_ratio") |
| SSE rewrite, events/s | $(fmt_int "$(relay_or_na s_event_relay)") | $(fmt_int "$(g s_event_nginx)") nginx+Lua | **$(rx "$ev_ratio")** |
| SSE rewrite events/s vs direct to the upstream | $(fmt_int "$(relay_or_na s_event_relay)") | $(fmt_int "$(g s_event_direct)") direct | **$(rx "$(relay_or_na s_event_vs_direct)")** |
| syscalls per keep-alive small GET (1 worker each) | $(relay_or_na pr_relay1_sc) | $(g pr_nginx1_sc) nginx | $(rx "$(relay_or_na pr_sc_ratio)") |
| CPU us per small GET, user / sys (1 worker each) | $(relay_or_na pr_relay1_u) / $(relay_or_na pr_relay1_s) | $(g pr_nginx1_u) / $(g pr_nginx1_s) nginx | **$(rx "$(relay_or_na pr_cpu_ratio)")** |
| small GET req/s (1 worker each) | $(fmt_int "$(relay_or_na pr_relay1_rps)") | $(fmt_int "$(g pr_nginx1_rps)") nginx | **$(rx "$(relay_or_na pr_rps_ratio)")** |
| rewritten vs passthrough route, events/s ($(fmt_int $LONG_EVENTS)-event streams) | $(fmt_int "$(relay_or_na lg_rewrite)") | $(fmt_int "$(relay_or_na lg_pass)") passthrough | **$(rx "$lg_ratio")** |
| Lua routing function vs stock script, small GET req/s | $(fmt_int "$(relay_or_na wrk_lget_relay_lua_rps)") | $(fmt_int "$(relay_or_na wrk_lget_relay_rps)") stock | **$(rx "$lua_ratio")** |
| on_event Lua hook vs none, SSE rewrite events/s | $(fmt_int "$(relay_or_na h_relay_hook)") | $(fmt_int "$(relay_or_na h_relay)") no hook | **$(rx "$hook_ratio")** |
| relay user CPU ns per event, rewritten vs passthrough route | $(fmt_int "$(relay_or_na lg_rewrite_ucpu)") | $(fmt_int "$(relay_or_na lg_pass_ucpu)") passthrough | $(rx "$(relay_or_na lg_ucpu_ratio)") |
| relay user CPU ns per small GET, Lua routing function vs stock | $(fmt_int "$(relay_or_na wrk_lget_relay_lua_ucpu)") | $(fmt_int "$(relay_or_na wrk_lget_relay_ucpu)") stock | $(rx "$(relay_or_na lua_ucpu_ratio)") |
| relay user CPU ns per event, on_event hook vs none | $(fmt_int "$(relay_or_na h_relay_hook_ucpu)") | $(fmt_int "$(relay_or_na h_relay_ucpu)") no hook | $(rx "$(relay_or_na hook_ucpu_ratio)") |
| metrics on (admin port, scraped 1/s) vs off, small GET req/s | $(fmt_int "$(relay_or_na met_on_rps)") | $(fmt_int "$(relay_or_na met_off_rps)") off | **$(rx "$(relay_or_na met_ratio)")** |
| KiB per idle stream at $(fmt_int "$MEM_SMALL") | ${kib_relay_small} | ${kib_nginx_small} nginx | $(rx "$(ratio "$kib_relay_small" "$kib_nginx_small")") |
| KiB per idle stream at $(fmt_int "$MEM_BIG") | ${kib_relay_big} | ${kib_nginx_big} nginx | $(rx "$(ratio "$kib_relay_big" "$kib_nginx_big")") |
| instructions per rewritten event (callgrind) | $(fmt_int "$(relay_or_na cg_chat_per)") | | |
| instructions per passthrough event (callgrind) | $(fmt_int "$(relay_or_na cg_pass_per)") | | |
| harmony markers left per stream (6 in input) | $(per_stream_markers relay) | ${nginx_per_markers} nginx+Lua | |
EOF
)

row_wrk() { # workload target
  local w=$1 t=$2
  if [ "$t" = relay ] && [ $RELAY_OK != 1 ]; then echo "| $t | n/a | n/a | n/a | n/a | |"; return; fi
  echo "| $t | $(fmt_int "$(g wrk_${w}_${t}_rps)") | $(ratio "$(g wrk_${w}_${t}_rps)" "$(g wrk_${w}_direct_rps)") | $(g wrk_${w}_${t}_p50) | $(g wrk_${w}_${t}_p99) | $(g wrk_${w}_${t}_err) |"
}
row_sse() {
  local t=$1
  if [ "$t" = relay ] && [ $RELAY_OK != 1 ]; then echo "| $t | n/a | n/a | n/a | n/a | n/a | n/a | n/a |"; return; fi
  echo "| $t | $(fmt_int "$(g s_event_$t)") | $(ratio "$(g s_event_$t)" "$(g s_event_nginx)") | $(fmt_int "$(g s_bulk_$t)") | $(ratio "$(g s_bulk_$t)" "$(g s_bulk_nginx)") | $(g l_${t}_p50) | $(g l_${t}_p99) | $(( ${R[s_event_${t}_err]:-0} + ${R[s_bulk_${t}_err]:-0} )) |"
}
row_verify() {
  local t=$1 verdict
  if [ "$t" = relay ] && [ $RELAY_OK != 1 ]; then echo "| $t | n/a | n/a | n/a | n/a | n/a |"; return; fi
  if [ "$(g v_${t}_rw)" != n/a ] && [ "$(g v_${t}_rw)" = "$(g v_${t}_streams)" ] && [ "$(g v_${t}_streams)" != 0 ]; then verdict="rewritten exactly"
  elif [ "$(g v_${t}_raw)" = "$(g v_${t}_streams)" ] && [ "$(g v_${t}_streams)" != 0 ]; then verdict="unchanged (markers kept)"
  else verdict="other/mixed"; fi
  echo "| $t | $(g v_${t}_streams) | $(g v_${t}_rw) | $(g v_${t}_raw) | $(g v_${t}_other) | $(g v_${t}_markers) ($(per_stream_markers "$t")/stream) | $verdict |"
}
row_mem() {
  local t=$1 n
  if [ "$t" = relay ] && [ $RELAY_OK != 1 ]; then echo "| $t | n/a | n/a | n/a | n/a | n/a |"; return; fi
  echo "| $t | $(fmt_int "$(g m_${t}_0)") | $(fmt_int "$(g m_${t}_$MEM_SMALL)") ($(g m_${t}_${MEM_SMALL}_held) held) | $(fmt_int "$(g m_${t}_$MEM_BIG)") ($(g m_${t}_${MEM_BIG}_held) held) | $(kib_per "$(g m_${t}_$MEM_SMALL)" "$(g m_${t}_0)" "$(g m_${t}_${MEM_SMALL}_held)") | $(kib_per "$(g m_${t}_$MEM_BIG)" "$(g m_${t}_0)" "$(g m_${t}_${MEM_BIG}_held)") |"
}

{
  echo "# oss-relay benchmark results"
  echo
  echo "Generated by \`$CMDLINE\` on $(date -u '+%Y-%m-%d %H:%M UTC') ($( [ $QUICK = 1 ] && echo 'quick sanity run: short, noisy' || echo 'full run' ))."
  echo "Relay: $( [ $RELAY_OK = 1 ] && echo "\`$RELAY\` built from commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- src include lua 2>/dev/null || echo ' + uncommitted changes')" || echo "$RELAY_NOTE")"
  echo
  echo "## Machine"
  echo
  echo "| | |"
  echo "| --- | --- |"
  echo "| CPUs (nproc) | $(nproc) |"
  echo "| CPU model | $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo) |"
  echo "| kernel | $(uname -sr) |"
  echo "| gcc | $(gcc --version | head -1) |"
  echo "| libuv | $(pkg-config --modversion libuv) |"
  echo "| nginx | $(nginx -v 2>&1 | sed 's/^nginx version: //') + libnginx-mod-http-lua $(dpkg-query -W -f='${Version}' libnginx-mod-http-lua 2>/dev/null) |"
  echo "| wrk | $(wrk -v 2>&1 | head -1 | awk '{print $2}') |"
  echo "| valgrind | $(valgrind --version 2>/dev/null) |"
  echo "| open files limit | $NOFILE |"
  echo "| load average at start / end | $LOAD_START / $LOAD_END |"
  echo "| load average (1 min) at each section | $(IFS=';'; echo "${LOADS[*]}" | sed 's/;/; /g') |"
  echo
  echo "Everything (load generator, upstream, proxy) shares the same $(nproc) CPUs over loopback, so absolute"
  echo "numbers are low and noisy; compare the ratios. Worker count: **$WORKERS** for oss-relay (\`WORKERS\`),"
  echo "nginx (\`worker_processes\`) and the upstream (\`bench/upstream.c\` threads)."
  echo
  echo "## Summary"
  echo
  echo "Ratios are the median over the $REPS rep(s) of relay/nginx measured back to back; the other columns are"
  echo "medians per target (so a ratio need not equal the quotient of the two columns)."
  echo
  echo "$SUMMARY"
  echo
  echo "The relay against itself (sections 2b and 5; ratio = median of the per-rep ratios, pairs back to back):"
  echo
  echo "$SUMMARY_SELF"
  if [ ${#RELAY_CRASHES[@]} -gt 0 ]; then
    echo
    echo "**oss-relay died during this run** (restarted each time; measurements taken while it was down show"
    echo "connection errors and 0 throughput):"
    echo
    for c in "${RELAY_CRASHES[@]}"; do echo "- $c"; done
  fi
  echo
  echo "## 1. Passthrough (wrk)"
  echo
  echo "\`wrk -t2 -c$WRK_CONNS -d${WRK_D}s --latency\`, median of $REPS run(s), targets interleaved. nginx: \`proxy_pass\` to an"
  echo "\`upstream\` block with \`keepalive 64\`, \`proxy_http_version 1.1\`, \`proxy_set_header Connection \"\"\`,"
  echo "\`proxy_request_buffering off\` (so the 1 MiB body streams through instead of going to a temp file)."
  echo
  for w in get post; do
    [ $w = get ] && echo "### GET /v1/models (small JSON)" || echo "### POST /upload, 1 MiB body (wrk Lua script)"
    echo
    echo "| target | req/s | vs direct | p50 ms | p99 ms | errors |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for t in direct relay nginx; do row_wrk $w $t; done
    echo
  done
  echo "## 1b. Cost per request (one worker each)"
  echo
  echo "A relay with \`WORKERS=1\` and an nginx with \`worker_processes 1\` (same configuration as above), the same"
  echo "upstream; \`wrk -t1 -c$PR_CONNS -d${PR_D}s --latency\` on \`GET /v1/models\`, after a 1 s warm-up, the pair back to back"
  echo "(order alternating), median of $REPS rep(s); ratios are medians of the per-rep ratios. CPU: user and system time"
  echo "of the relay process / the nginx worker from /proc/PID/stat ($CLK_TCK ticks/s) over the run, per request."
  echo "Syscalls: \`strace -c -f -p PID\` attached for a ${PR_SD}s wrk run after a warm-up, calls per request"
  echo "(strace slows the target, which changes how many events one epoll_wait returns, not the other counts)."
  echo
  echo "| target | req/s | p99 ms | CPU us/request: user | system | total | syscalls/request | read-like | write-like | epoll_ctl | epoll_wait | other | errors |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for t in relay1 nginx1; do
    [ "$t" = relay1 ] && [ $RELAY_OK != 1 ] && continue
    echo "| ${t%1} | $(fmt_int "$(g pr_${t}_rps)") | $(g pr_${t}_p99) | $(g pr_${t}_u) | $(g pr_${t}_s) | $(g pr_${t}_cpu) | **$(g pr_${t}_sc)** | $(g pr_${t}_sc_rd) | $(g pr_${t}_sc_wr) | $(g pr_${t}_sc_ctl) | $(g pr_${t}_sc_wait) | $(g pr_${t}_sc_other) | $(g pr_${t}_err) |"
  done
  echo "| ratio (relay / nginx) | **$(rx "$(relay_or_na pr_rps_ratio)")** | | | | **$(rx "$(relay_or_na pr_cpu_ratio)")** | $(rx "$(relay_or_na pr_sc_ratio)") | | | | | | |"
  echo
  echo "Commands: \`WORKERS=1 oss-relay\`; \`wrk -t1 -c$PR_CONNS -d${PR_D}s --latency http://127.0.0.1:$P_R1/v1/models\` (nginx: port $P_N1);"
  echo "\`strace -c -f -p PID -o FILE\` around \`wrk -t1 -c$PR_CONNS -d${PR_SD}s\`. Raw: \`bench/.build/out/strace-pr-*.txt\`, \`wrk-pr-*.txt\`."
  echo
  echo "## 2. Streaming rewrite (SSE)"
  echo
  echo "Stream: one token per event (\`data: {\"id\":\"chatcmpl-1\",...,\"delta\":{\"content\":\"<token>\"},...}\`), markers cut into"
  echo "tokens as real servers do (\`<|channel|>\` \`analysis\` \`<|message|>\` ... \`<|end|>\` \`<|start|>\` \`assistant\` \`<|channel|>\`"
  echo "\`final\` \`<|message|>\` ...), then a finish chunk and \`data: [DONE]\`; see \`bench/harmony.h\`. nginx rewrites with"
  echo "\`body_filter_by_lua_block\` + \`ngx.arg[1]:gsub()\` of the two raw marker strings (the usual OpenResty approach)."
  echo
  echo "### Correctness (200-token streams, 4 connections x 5 streams; decoded \`choices[0].delta.content\`)"
  echo
  echo "| target | streams | = expected rewrite | = raw input | other | harmony markers left | verdict |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
  for t in direct relay nginx; do row_verify $t; done
  echo
  echo "nginx + Lua misses every marker: \`gsub\` only sees raw bytes of one body chunk, and the markers are cut over"
  echo "several events (and so over JSON strings, chunks and TCP reads). oss-relay matches on the decoded text of"
  echo "\`delta.content\` across events. Decoded outputs: \`bench/.build/out/content-*.txt\`."
  echo
  echo "### Throughput and latency"
  echo
  echo "Throughput: $SSE_CONNS concurrent streams of $SSE_EVENTS tokens, back to back on keep-alive connections, ${SSE_D}s,"
  echo "median of $REPS; the upstream writes either one event per \`write()\` (like real servers) or 64 KiB at a time."
  echo "Latency: $LAT_CONNS concurrent streams paced at 1 event/ms by the upstream, which stamps the send time"
  echo "(CLOCK_MONOTONIC) into \`created\`; the client measures arrival minus send, ${LAT_D}s."
  echo
  echo "| target | events/s (per-event writes) | vs nginx+Lua | events/s (64 KiB writes) | vs nginx+Lua | latency p50 us | latency p99 us | errors |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for t in direct relay nginx; do row_sse $t; done
  echo
  echo "Rewritten events/s against direct to the upstream (median of the per-rep ratios, one write per event):"
  echo "**$(rx "$(relay_or_na s_event_vs_direct)")**; with 64 KiB writes $(rx "$(relay_or_na s_bulk_vs_direct)"); 100,000-event streams (2b) $(rx "$(relay_or_na lg_vs_direct)")."
  echo
  echo "Added latency per event (minus direct): oss-relay p50 ${lat_add_p50} us, p99 ${lat_add_p99} us;"
  echo "nginx+Lua p50 ${nlat_add_p50} us, p99 ${nlat_add_p99} us."
  echo
  echo "### 2b. Rewritten route vs passthrough route on the same relay"
  echo
  echo "$LONG_CONNS concurrent connections, each $LONG_REQS stream(s) of $(fmt_int $LONG_EVENTS) content events back to back on keep-alive,"
  echo "the upstream writing one event per \`write()\`; median of $REPS rep(s), the relay pair measured back to back"
  echo "(order alternating). Rewritten: \`POST /v1/chat/completions\` (SSE framing, JSON of each event, harmony rules,"
  echo "re-encoded event; the stock script's history hook reads the request body: one Lua call per request, none per event)."
  echo "Passthrough: \`GET /v1/stream\`, the same bytes from the upstream, no route, proxied unchanged."
  echo
  echo "| target | route | events/s | vs relay passthrough | relay CPU ns/event: user / user+sys | vs passthrough: user / user+sys | relay read / write syscalls per event | streams | errors |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  if [ $RELAY_OK = 1 ]; then
    echo "| relay | POST /v1/chat/completions (rewritten) | $(fmt_int "$(g lg_rewrite)") | **$(rx "$lg_ratio")** | $(fmt_int "$(g lg_rewrite_ucpu)") / $(fmt_int "$(g lg_rewrite_cpu)") | $(rx "$(g lg_ucpu_ratio)") / $(rx "$(g lg_cpu_ratio)") | $(g lg_rewrite_rd) / $(g lg_rewrite_wr) | $(g lg_rewrite_streams) | $(g lg_rewrite_err) |"
    echo "| relay | GET /v1/stream (passthrough) | $(fmt_int "$(g lg_pass)") | 1.00 | $(fmt_int "$(g lg_pass_ucpu)") / $(fmt_int "$(g lg_pass_cpu)") | 1.00 | $(g lg_pass_rd) / $(g lg_pass_wr) | $(g lg_pass_streams) | $(g lg_pass_err) |"
  fi
  echo "| direct | POST /v1/chat/completions (upstream, reference) | $(fmt_int "$(g lg_direct)") | $(ratio "$(g lg_direct)" "$(relay_or_na lg_pass)") | | | | $(g lg_direct_streams) | $(g lg_direct_err) |"
  echo
  echo "Ratios in bold are medians of the per-rep ratios. Relay CPU: user and user + system time of the relay process"
  echo "(all workers, from /proc/PID/stat, $CLK_TCK ticks/s) over the measurement, divided by the events received."
  echo "User time is the relay's own code (parse, rules, re-encode); system time is mostly the kernel's loopback TCP"
  echo "work (on loopback the sender also runs much of the receiver's path), which varies with how the client and the"
  echo "upstream, on the same CPUs, are scheduled. Syscalls: \`syscr\`/\`syscw\` of /proc/PID/io over the"
  echo "measurement (all read-like / write-like calls, including epoll and eventfd traffic), per event."
  echo
  if [ $RELAY_OK = 1 ]; then
    echo "One rewritten $(fmt_int $LONG_EVENTS)-event stream, decoded and checked: $(g vl_rw)/$(g vl_streams) equal to the expected rewrite,"
    echo "$(g vl_markers) harmony markers left."
    echo
  fi
  echo "## 3. Memory: idle open streams"
  echo
  echo "Each client connection has an open SSE response on \`POST /v1/chat/completions\` (the rewritten route): the"
  echo "upstream sent the headers and one event and then stays silent. VmRSS from /proc (nginx: master + workers),"
  echo "1 s after the stage is reached. Per stream = (RSS_N - RSS_0) / N."
  [ -n "$MEM_NOTE" ] && { echo; echo "Note: $MEM_NOTE"; }
  echo
  echo "| target | RSS_0 KiB | RSS at $MEM_SMALL KiB | RSS at $MEM_BIG KiB | KiB/stream at $MEM_SMALL | KiB/stream at $MEM_BIG |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  for t in relay nginx; do row_mem $t; done
  echo
  echo "## 4. CPU: instructions per event (callgrind)"
  echo
  if [ $RELAY_OK = 1 ]; then
    echo "oss-relay under \`valgrind --tool=callgrind\` with WORKERS=1; one stream of $CG_EVENTS tokens minus one of $CG_BASE"
    echo "tokens (each run: start, one request, SIGTERM), divided by the difference in events received."
    echo
    echo "| route | Ir ($CG_EVENTS tokens) | Ir ($CG_BASE tokens) | instructions/event |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| POST /v1/chat/completions (rewritten) | $(fmt_int "$(g cg_chat_n_ir)") | $(fmt_int "$(g cg_chat_0_ir)") | **$(fmt_int "$(g cg_chat_per)")** |"
    echo "| GET /v1/stream (passthrough) | $(fmt_int "$(g cg_pass_n_ir)") | $(fmt_int "$(g cg_pass_0_ir)") | $(fmt_int "$(g cg_pass_per)") |"
    echo
    echo "Small JSON GET (\`GET /v1/models\`, one keep-alive connection): $CG_REQS requests minus 1 request:"
    echo "**$(fmt_int "$(g cg_get_per)") instructions per request** ($(fmt_int "$(g cg_get_n_ir)") - $(fmt_int "$(g cg_get_0_ir)") Ir)."
    echo
    if [ -n "${R[sc_chat_per]:-}" ]; then
      echo "System calls (\`strace -f -c\`, WORKERS=1, one stream of $CG_EVENTS tokens that the upstream writes 64 KiB"
      echo "at a time, so each read brings hundreds of events):"
      echo
      echo "| route | events | reads | writes (write/writev/sendmsg) | writes per event |"
      echo "| --- | ---: | ---: | ---: | ---: |"
      echo "| POST /v1/chat/completions (rewritten) | $(g sc_chat_events) | $(g sc_chat_reads) | $(g sc_chat_writes) | **$(g sc_chat_per)** |"
      echo "| GET /v1/stream (passthrough) | $(g sc_pass_events) | $(g sc_pass_reads) | $(g sc_pass_writes) | $(g sc_pass_per) |"
      echo
    fi
    echo "Where the instructions per event go (exclusive Ir by function, $CG_EVENTS-token run minus $CG_BASE-token run,"
    echo "divided by the event difference; from \`callgrind_annotate --inclusive=no\`):"
    echo
    echo "Rewritten route (POST /v1/chat/completions):"
    echo
    echo '```'
    echo "instr/event  function"
    cat "$OUT/callgrind-chat-per-event.txt" 2>/dev/null
    echo '```'
    echo
    echo "Passthrough route (GET /v1/stream):"
    echo
    echo '```'
    echo "instr/event  function"
    cat "$OUT/callgrind-pass-per-event.txt" 2>/dev/null
    echo '```'
    echo
    echo "Small JSON GET, per request:"
    echo
    echo '```'
    echo "instr/req    function"
    cat "$OUT/callgrind-get-per-event.txt" 2>/dev/null
    echo '```'
  else
    echo "n/a: $RELAY_NOTE"
  fi
  echo
  echo "## 5. Lua layer"
  echo
  if [ $RELAY_OK = 1 ]; then
    echo "Each pair: two relays from the same binary, running at the same time on different ports, measured"
    echo "back to back (order alternating), median of $REPS rep(s); the ratio is the median of the per-rep ratios."
    echo
    echo "- stock: the built-in script (\`lua/relay/default.lua\`). \`GET /v1/models\` matches no route: no Lua call."
    echo "  The chat route has the history hook (\`on_request\`, \`body = true\`): one Lua call per chat request."
    echo "- \`bench/scripts/lua_route.lua\`: the same harmony rewrite route plus a global"
    echo "  \`relay.on_request(function(req) return {upstream = \"default\"} end)\`: one Lua call per request."
    echo "- \`bench/scripts/on_event.lua\`: the stock chat route (harmony rules, history hook) plus"
    echo "  \`on_event = function(ctx, ev) return nil end\`: one Lua call per SSE event."
    echo
    echo "Small JSON GET (\`wrk -t2 -c$WRK_CONNS -d${LUA_WRK_D}s --latency http://.../v1/models\`):"
    echo
    echo "| script | req/s | p50 ms | p99 ms | relay CPU ns/request: user / user+sys | errors |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    echo "| stock | $(fmt_int "$(g wrk_lget_relay_rps)") | $(g wrk_lget_relay_p50) | $(g wrk_lget_relay_p99) | $(fmt_int "$(g wrk_lget_relay_ucpu)") / $(fmt_int "$(g wrk_lget_relay_cpu)") | $(g wrk_lget_relay_err) |"
    echo "| lua_route.lua (Lua routing function) | $(fmt_int "$(g wrk_lget_relay_lua_rps)") | $(g wrk_lget_relay_lua_p50) | $(g wrk_lget_relay_lua_p99) | $(fmt_int "$(g wrk_lget_relay_lua_ucpu)") / $(fmt_int "$(g wrk_lget_relay_lua_cpu)") | $(g wrk_lget_relay_lua_err) |"
    echo "| ratio (lua_route / stock) | **$(rx "$lua_ratio")** | | $(rx "$lua_p99_ratio") | $(rx "$(g lua_ucpu_ratio)") / $(rx "$(g lua_cpu_ratio)") | |"
    echo
    echo "SSE rewrite throughput ($SSE_CONNS concurrent streams of $SSE_EVENTS tokens, one write per event, ${LUA_SSE_D}s):"
    echo
    echo "| script | events/s | relay CPU ns/event: user / user+sys | relay syscalls (read + write) per event | errors |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    echo "| stock (no per-event hook) | $(fmt_int "$(g h_relay)") | $(fmt_int "$(g h_relay_ucpu)") / $(fmt_int "$(g h_relay_cpu)") | $(g h_relay_rw) | $(g h_relay_err) |"
    echo "| on_event.lua (on_event hook) | $(fmt_int "$(g h_relay_hook)") | $(fmt_int "$(g h_relay_hook_ucpu)") / $(fmt_int "$(g h_relay_hook_cpu)") | $(g h_relay_hook_rw) | $(g h_relay_hook_err) |"
    echo "| ratio (hook / none) | **$(rx "$hook_ratio")** | $(rx "$(g hook_ucpu_ratio)") / $(rx "$(g hook_cpu_ratio)") | | |"
    echo
    echo "Relay CPU: user and user + system time of that relay process over the measurement (/proc/PID/stat) per request"
    echo "or event; the user time is where a Lua call shows."
    echo
    echo "Both scripts' output was checked like the stock relay's (200-token streams, 4 connections x 5 streams):"
    echo "lua_route.lua $(g v_relay_lua_rw)/$(g v_relay_lua_streams) rewritten exactly, $(g v_relay_lua_markers) markers left;"
    echo "on_event.lua $(g v_relay_hook_rw)/$(g v_relay_hook_streams) rewritten exactly, $(g v_relay_hook_markers) markers left."
  else
    echo "n/a: $RELAY_NOTE"
  fi
  echo
  echo "## 6. Metrics: admin port on vs off"
  echo
  if [ -n "${R[met_ratio]:-}" ]; then
    echo "Two relays from the same binary and stock script, running at the same time; \"on\" has RELAY_ADMIN_PORT set"
    echo "(every exchange counted in its worker's cells; /metrics scraped once a second during the whole section),"
    echo "\"off\" has not (nothing counted). \`wrk -t2 -c$WRK_CONNS -d${LUA_WRK_D}s --latency http://.../v1/models\`, pairs back"
    echo "to back, order alternating, median of $REPS rep(s); the ratio is the median of the per-rep ratios."
    echo
    echo "| relay | req/s | p50 ms | p99 ms | relay CPU ns/request: user / user+sys | errors |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for k in off on; do
      echo "| metrics $k | $(fmt_int "$(g met_${k}_rps)") | $(g met_${k}_p50) | $(g met_${k}_p99) | $(fmt_int "$(g met_${k}_ucpu)") / $(fmt_int "$(g met_${k}_cpu)") | $(g met_${k}_err) |"
    done
    echo "| ratio (on / off) | **$(rx "$(g met_ratio)")** | | $(rx "$(g met_p99_ratio)") | $(rx "$(g met_ucpu_ratio)") / $(rx "$(g met_cpu_ratio)") | |"
    echo
    echo "The \"on\" relay's \`relay_requests_total\` after the runs: $(g met_counted) requests counted; wrk completed $(g met_completed)"
    echo "(wrk does not count the requests still in flight when it stops, which the relay counts as answered or 499)."
  else
    echo "n/a${RELAY_NOTE:+: $RELAY_NOTE}"
  fi
  echo
  echo "## Raw outputs"
  echo
  echo "\`bench/.build/out/\`: wrk outputs (\`wrk-*.txt\`), sse_client lines (\`sse.txt\`), callgrind files, nginx config"
  echo "(\`bench/.build/nginx/nginx.conf\`)."
} >"$RESULTS"

{
  echo "<!-- generated by bench/run.sh; paste into the README -->"
  echo "Benchmark (\`$CMDLINE\`, $(date -u '+%Y-%m-%d'), commit $COMMIT_DESC; $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo),"
  echo "$(nproc) CPUs shared by load generator, upstream and proxy; load average $LOAD_START at start, $LOAD_END at end$( [ $QUICK = 1 ] && echo '; quick sanity run, noisy')):"
  echo
  echo "$COMPACT"
  echo
  echo "Ratios are medians of per-rep ratios of pairs measured back to back ($REPS rep(s)). Relay user CPU is the relay"
  echo "process's user time per event or request during the measurement (/proc/PID/stat, 10 ms ticks): the relay's own"
  echo "code, without the kernel's loopback TCP work, which dominates its system time here and, like events/s, depends on"
  echo "how the client and upstream share the CPUs. Full tables, methods and raw outputs: \`bench/RESULTS.md\`."
  if [ ${#RELAY_CRASHES[@]} -gt 0 ]; then
    echo
    echo "oss-relay died during this run (restarted): $(IFS=';'; echo "${RELAY_CRASHES[*]}" | sed 's/;/; /g')"
  fi
} >"$SUMMARY_MD"

# section 7 in both reports
FORMS_TABLE=$(cat <<EOF
| upstream form (stock relay, $WORKERS workers, same run) | events/s | vs harmony | relay user CPU ns/event | instructions/event (callgrind) | output checked |
| --- | ---: | ---: | ---: | ---: | --- |
| harmony markers in content (the plain rewrite) | $(fmt_int "$(relay_or_na f_harmony)") | 1x | $(fmt_int "$(relay_or_na f_harmony_ucpu)") | $(fmt_int "$(relay_or_na cg_chat_per)") | |
| reasoning_content (llama.cpp), tags mode | $(fmt_int "$(relay_or_na f_reasoning)") | $(rx "$(relay_or_na f_reasoning_ratio)") | $(fmt_int "$(relay_or_na f_reasoning_ucpu)") | $(fmt_int "$(relay_or_na cg_freasoning_per)") | $(relay_or_na f_reasoning_ok) |
| harmony tool call in content (mlx_lm.server) -> tool_calls | $(fmt_int "$(relay_or_na f_tool)") | $(rx "$(relay_or_na f_tool_ratio)") | $(fmt_int "$(relay_or_na f_tool_ucpu)") | $(fmt_int "$(relay_or_na cg_ftool_per)") | $(relay_or_na f_tool_ok) |
EOF
)
{
  echo
  echo "## 7. Reasoning forms and tool calls"
  echo
  echo "The stock relay on three scripted upstream forms (\`bench/upstream.c\` \`?form=\`), $SSE_CONNS concurrent streams of"
  echo "$SSE_EVENTS events each, one write per event, ${SSE_D}s per measurement, median of $REPS rep(s), order rotating; the"
  echo "ratio is the median of the per-rep ratios against the harmony form. Instructions per event: callgrind, WORKERS=1,"
  echo "one stream of $CG_EVENTS events minus one of $CG_BASE (section 4's method). \"Output checked\": one 200-event stream"
  echo "of the form read back: the reasoning as one \`<think>\`...\`</think>\` block and no \`reasoning_content\` left;"
  echo "one tool call with the relay's id, \`finish_reason\` \`tool_calls\`, no harmony marker left."
  echo
  echo "$FORMS_TABLE"
  echo
  for f in reasoning tool; do
    echo "Per event, the $f form (exclusive instructions by function, N run minus base run):"
    echo
    echo '```'
    cat "$OUT/callgrind-f$f-per-event.txt" 2>/dev/null
    echo '```'
    echo
  done
} >>"$RESULTS"
{
  echo
  echo "$FORMS_TABLE"
} >>"$SUMMARY_MD"

echo
cat "$SUMMARY_MD"
echo
log "done: $RESULTS, $SUMMARY_MD"
