#!/usr/bin/env bash
# bench/run.sh - oss-relay benchmark suite (loopback only).
#
#   bench/run.sh            full run (~6-8 minutes on 2 cores)
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
#   2. streaming rewrite: SSE events/s, per-event latency, output correctness, for direct,
#      oss-relay (stock rewrite), nginx + body_filter_by_lua gsub
#   3. memory: VmRSS of oss-relay (and nginx) with 1,000 and 10,000 idle open streams
#   4. CPU: callgrind instructions per rewritten event (and per passthrough event), WORKERS=1
# Writes bench/RESULTS.md and prints the summary table.

set -u -o pipefail

QUICK=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
B="$BENCH/.build"
OUT="$B/out"
NGX="$B/nginx"
RESULTS="$BENCH/RESULTS.md"
CMDLINE="bench/run.sh${*:+ $*}"
WORKERS=${WORKERS:-$(nproc)}
START_TS=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

P_UP=18001 P_RELAY=18002 P_NGINX=18003 P_CG=18010

if [ "$QUICK" = 1 ]; then
  REPS=1; WRK_D=2; WRK_WARM=0; SSE_D=1; LAT_D=1; CG_EVENTS=2000; CG_REQS=200; MEM_STAGES="200 1000"
else
  REPS=3; WRK_D=8; WRK_WARM=1; SSE_D=8; LAT_D=5; CG_EVENTS=20000; CG_REQS=2000; MEM_STAGES="1000 10000"
fi
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

for p in $P_UP $P_RELAY $P_NGINX $P_CG; do
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
port_of() { case $1 in direct) echo $P_UP ;; relay) echo $P_RELAY ;; nginx) echo $P_NGINX ;; esac; }

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
  local t=$1 w=$2 rep=$3 port url args=() f
  port=$(port_of "$t")
  case $w in
    get) url="http://127.0.0.1:$port/v1/models" ;;
    post) url="http://127.0.0.1:$port/upload"; args=(-s "$OUT/post1m.lua") ;;
  esac
  if [ "$WRK_WARM" -gt 0 ]; then
    timeout -k 5 $((WRK_WARM + 20)) wrk -t2 -c$WRK_CONNS -d${WRK_WARM}s "${args[@]}" "$url" >/dev/null 2>&1
  fi
  f="$OUT/wrk-$w-$t-$rep.txt"
  timeout -k 5 $((WRK_D + 30)) wrk -t2 -c$WRK_CONNS -d${WRK_D}s --latency "${args[@]}" "$url" >"$f" 2>&1
  [ "$t" = relay ] && relay_check "wrk $w rep $rep"
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

# ---------------------------------------------------------------- 2. streaming
sse() { # target args... -> result line
  local t=$1; shift
  timeout -k 5 300 "$CLIENT" --port "$(port_of "$t")" "$@" 2>>"$OUT/sse_client.err"
  local rc=$?
  [ "$t" = relay ] && relay_check "sse_client $*"
  return $rc
}

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
[ $RELAY_OK = 1 ] && stop_pid "$RELAY_PID" 5

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
| added latency per event, p50 / p99 us | ${lat_add_p50} / ${lat_add_p99} | ${nlat_add_p50} / ${nlat_add_p99} | | | |
| harmony markers left per stream (6 in input) | $(per_stream_markers relay) | $(per_stream_markers nginx) | | 0 | $(mark "$(per_stream_markers relay)" "<=" 0) |
| RSS per idle stream at $(fmt_int "$MEM_BIG"), KiB | ${kib_relay_big} | ${kib_nginx_big} | $(rx "$(ratio "$kib_relay_big" "$kib_nginx_big")") | < 16 | $(mark "$kib_relay_big" "<" 16) |
| instructions per rewritten event (callgrind) | $(fmt_int "$(relay_or_na cg_chat_per)") | | | < 4,000 | $(mark "$(relay_or_na cg_chat_per)" "<" 4000) |
| instructions per passthrough SSE event | $(fmt_int "$(relay_or_na cg_pass_per)") | | | | |
| instructions per small GET request | $(fmt_int "$(relay_or_na cg_get_per)") | | | | |
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
  echo "| load average at start / end | $LOAD_START / $(cut -d' ' -f1-3 /proc/loadavg) |"
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
  echo "Added latency per event (minus direct): oss-relay p50 ${lat_add_p50} us, p99 ${lat_add_p99} us;"
  echo "nginx+Lua p50 ${nlat_add_p50} us, p99 ${nlat_add_p99} us."
  echo
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
  echo "## Raw outputs"
  echo
  echo "\`bench/.build/out/\`: wrk outputs (\`wrk-*.txt\`), sse_client lines (\`sse.txt\`), callgrind files, nginx config"
  echo "(\`bench/.build/nginx/nginx.conf\`)."
} >"$RESULTS"

echo
echo "$SUMMARY"
echo
log "done: $RESULTS"
