#!/usr/bin/env bash
# bench/ab.sh - two oss-relay builds side by side, in one run (loopback only).
#
#   bench/ab.sh REV_A REV_B      build both commits (Release) in scratch worktrees, compare
#   RELAY_A=bin RELAY_B=bin bench/ab.sh   compare two binaries already built
#
# For a change that should cost nothing (a refactor) or a tuning, the question is
# "B against A", and the two must be measured under the same load on the machine:
# each rep runs A then B (then B then A on the next rep) on the same upstream, and the
# ratio B/A is the median of the per-rep ratios. Per target and rep:
#   get  small JSON GET through the relay: wrk -t2 -c64, req/s, and the relay's CPU
#        (user and system, /proc/PID/stat) per request
#   sse  rewritten SSE stream (stock script, harmony markers): sse_client, 32 streams x
#        2000 events, events/s and the relay's CPU per event
# Knobs: WORKERS (default nproc), REPS (default 5), SECS (seconds per measurement, default 6).
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
B="$BENCH/.build"
OUT="$B/ab"
WORKERS=${WORKERS:-$(nproc)}
REPS=${REPS:-5}
SECS=${SECS:-6}
P_UP=18101 P_A=18102 P_B=18103
mkdir -p "$OUT"

for tool in wrk cmake; do command -v $tool >/dev/null || { echo "ab.sh needs $tool (bench/run.sh installs it)" >&2; exit 1; }; done
cmake -S "$BENCH" -B "$B" -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake-bench.log" 2>&1 &&
  cmake --build "$B" -j"$(nproc)" >>"$OUT/cmake-bench.log" 2>&1 || { cat "$OUT/cmake-bench.log" >&2; exit 1; }

# A commit built in a scratch worktree (the working tree is never touched), its binary
# kept in $B/ab-bin for the next run and the worktree removed.
build_rev() { # rev -> path of its Release binary
  local rev=$1 dir="$B/ab-src-$1" bin="$B/ab-bin/oss-relay-$1"
  if [ ! -x "$bin" ]; then
    git -C "$ROOT" worktree add --detach "$dir" "$rev" >/dev/null 2>&1 || { echo "no revision $rev" >&2; exit 1; }
    cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake-$rev.log" 2>&1 &&
      cmake --build "$dir/build" -j"$(nproc)" --target oss-relay >>"$OUT/cmake-$rev.log" 2>&1 ||
      { echo "$rev did not build (see $OUT/cmake-$rev.log)" >&2; exit 1; }
    mkdir -p "$B/ab-bin" && cp "$dir/build/oss-relay" "$bin"
    git -C "$ROOT" worktree remove --force "$dir"
  fi
  echo "$bin"
}
if [ $# -eq 2 ]; then
  LABEL_A=$(git -C "$ROOT" rev-parse --short "$1") LABEL_B=$(git -C "$ROOT" rev-parse --short "$2")
  RELAY_A=$(build_rev "$LABEL_A") RELAY_B=$(build_rev "$LABEL_B")
else
  : "${RELAY_A:?set RELAY_A and RELAY_B, or give two revisions}" "${RELAY_B:?}"
  LABEL_A=${LABEL_A:-A} LABEL_B=${LABEL_B:-B}
fi

PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null' EXIT
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
"$B/upstream" --port $P_UP --threads "$WORKERS" 2>>"$OUT/upstream.log" & PIDS+=($!)
wait_port $P_UP || { echo "upstream did not start" >&2; exit 1; }
start() { # binary port: STARTED is its pid (env execs the relay, so the pid is the relay's)
  env LISTEN_ADDR=127.0.0.1 LISTEN_PORT="$2" UPSTREAM_HOST=127.0.0.1 UPSTREAM_PORT=$P_UP WORKERS="$WORKERS" \
    LOG_LEVEL=warn "$1" >>"$OUT/relay-$2.log" 2>&1 &
  STARTED=$!; PIDS+=($STARTED)
  wait_port "$2" || { echo "relay $1 did not start (see $OUT/relay-$2.log)" >&2; exit 1; }
}
start "$RELAY_A" $P_A; PID_A=$STARTED
start "$RELAY_B" $P_B; PID_B=$STARTED

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system, all threads
declare -A R
measure() { # target(A|B) workload rep
  local t=$1 w=$2 port pid n t0 t1 line
  if [ "$t" = A ]; then port=$P_A pid=$PID_A; else port=$P_B pid=$PID_B; fi
  t0=$(ticks "$pid")
  if [ "$w" = get ]; then
    line=$(wrk -t2 -c64 -d"${SECS}s" "http://127.0.0.1:$port/v1/models" 2>&1)
    n=$(awk '/requests in/ {print $1; exit}' <<<"$line")
    R[${w}_$t]+=" $(awk '/^Requests\/sec:/ {print $2}' <<<"$line")"
  else
    line=$("$B/sse_client" --port "$port" --events 2000 --conns 32 --duration "$SECS" --write event 2>>"$OUT/sse.err")
    n=$(sed -n 's/.*\bevents=\([0-9]*\).*/\1/p' <<<"$line")
    R[${w}_$t]+=" $(sed -n 's/.*events_per_s=\([0-9.]*\).*/\1/p' <<<"$line")"
  fi
  t1=$(ticks "$pid")
  R[${w}_${t}_cpu]+=" $(awk -v d=$((t1 - t0)) -v n="${n:-0}" -v hz="$(getconf CLK_TCK)" \
                        'BEGIN { if (n > 0) printf "%.0f", d / hz * 1e9 / n; else print "n/a" }')"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print NR ? a[int((NR+1)/2)] : "n/a"}'; }
ratios() { paste <(tr ' ' '\n' <<<"$1" | grep -v '^$') <(tr ' ' '\n' <<<"$2" | grep -v '^$') |
           awk '$1 > 0 {printf "%.3f ", $2 / $1}' | median; }

for w in get sse; do
  for ((rep = 1; rep <= REPS; rep++)); do
    if ((rep % 2)); then measure A $w $rep; measure B $w $rep; else measure B $w $rep; measure A $w $rep; fi
  done
done

echo "bench/ab.sh: $LABEL_A (A) vs $LABEL_B (B), $WORKERS workers each, $REPS reps x ${SECS}s, $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| measure | A: $LABEL_A | B: $LABEL_B | B/A (median of per-rep ratios) |"
echo "| --- | ---: | ---: | ---: |"
for w in get sse; do
  unit=$([ $w = get ] && echo "small GET req/s" || echo "rewritten SSE events/s")
  cu=$([ $w = get ] && echo "relay CPU ns per request" || echo "relay CPU ns per event")
  printf '| %s | %s | %s | %sx |\n' "$unit" "$(median <<<"${R[${w}_A]}")" "$(median <<<"${R[${w}_B]}")" \
    "$(ratios "${R[${w}_A]}" "${R[${w}_B]}")"
  printf '| %s | %s | %s | %sx |\n' "$cu" "$(median <<<"${R[${w}_A_cpu]}")" "$(median <<<"${R[${w}_B_cpu]}")" \
    "$(ratios "${R[${w}_A_cpu]}" "${R[${w}_B_cpu]}")"
done
