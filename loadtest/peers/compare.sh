#!/usr/bin/env bash
# Switchboard's --conformance-echo endpoint side by side with minimal echo servers on Go
# gorilla/websocket and Node `ws`, measured in ONE run by the same client with the same
# parameters: for each server start it, run `switchboard-loadtest echo` (idle memory per
# connection, bare handshakes/s, echo messages/s + latency), stop it. Then full logins/s against
# the gateway's /ws (`connect`), for the target "logins/s above the Go peer's handshakes/s".
#   loadtest/peers/compare.sh [--json FILE]
# Parameters from the environment: CONNECTIONS (10000), CONCURRENCY (256), HOLD (2),
# ECHO_CONNECTIONS (64), MESSAGE_SIZE (64), WINDOW (8), DURATION (10), WARMUP (1).
set -euo pipefail
cd "$(dirname "$0")/../.."
json=loadtest/peers/bin/compare-$(date -u +%Y%m%dT%H%M%SZ).json
[ "${1:-}" = --json ] && json=${2:?--json FILE}

CONNECTIONS=${CONNECTIONS:-10000}; CONCURRENCY=${CONCURRENCY:-256}; HOLD=${HOLD:-2}
ECHO_CONNECTIONS=${ECHO_CONNECTIONS:-64}; MESSAGE_SIZE=${MESSAGE_SIZE:-64}; WINDOW=${WINDOW:-8}
DURATION=${DURATION:-10}; WARMUP=${WARMUP:-1}

loadtest/peers/setup.sh >/dev/null
swift build -c release --scratch-path .build-release --product switchboard >/dev/null
swift build -c release --scratch-path .build-release --product switchboard-loadtest >/dev/null
bin=.build-release/release
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

key=5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e
cat >"$work/gateway.yaml" <<YAML
listen: "127.0.0.1:18080"
admin: "127.0.0.1:18081"
maxConnectionsPerAddress: 100000
apps:
  - sdkAppID: 1400000000
    secretKey: "$key"
    policy: multi
    maxInstances: {Web: 10}
YAML

start() {  # name port command...
  local name=$1 port=$2; shift 2
  "$@" >"$work/$name.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do
    grep -q listening "$work/$name.log" && break
    sleep 0.1
  done
  grep -q listening "$work/$name.log" || { echo "$name did not start:"; cat "$work/$name.log"; exit 1; }
  sleep 1  # let the idle process settle before its baseline is read
}
stop() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; server=; sleep 1; }

measure() {  # name port
  echo "== $1" >&2
  "$bin/switchboard-loadtest" echo --label "$1" --port "$2" --path /echo --server-pid "$server" \
    --connections "$CONNECTIONS" --concurrency "$CONCURRENCY" --hold "$HOLD" \
    --echo-connections "$ECHO_CONNECTIONS" --message-size "$MESSAGE_SIZE" --window "$WINDOW" \
    --duration "$DURATION" --warmup "$WARMUP" --timeout 120 --json "$work/$1.json" >"$work/$1.txt"
  cat "$work/$1.txt" >&2
}

start switchboard 18080 "$bin/switchboard" serve --config "$work/gateway.yaml" --conformance-echo --log-level warning
measure switchboard 18080
echo "== switchboard connect (full logins on /ws)" >&2
"$bin/switchboard-loadtest" connect --port 18080 --key "$key" --connections "$CONNECTIONS" \
  --concurrency "$CONCURRENCY" --gateway-pid "$server" --timeout 120 --json "$work/logins.json" 2>/dev/null >&2
stop

start gorilla 18090 loadtest/peers/bin/gorilla-echo -addr 127.0.0.1:18090
measure gorilla 18090
stop

start node-ws 18091 env NODE_PATH=/usr/share/nodejs node loadtest/peers/node-ws/server.js --addr 127.0.0.1:18091
measure node-ws 18091
stop

mkdir -p "$(dirname "$json")"
jq -n --slurpfile s "$work/switchboard.json" --slurpfile g "$work/gorilla.json" --slurpfile n "$work/node-ws.json" \
  --slurpfile l "$work/logins.json" \
  --argjson params "{\"connections\":$CONNECTIONS,\"concurrency\":$CONCURRENCY,\"hold_seconds\":$HOLD,\"echo_connections\":$ECHO_CONNECTIONS,\"message_bytes\":$MESSAGE_SIZE,\"window\":$WINDOW,\"echo_seconds\":$DURATION,\"warmup_seconds\":$WARMUP}" \
  '{parameters: $params, servers: {switchboard: $s[0], gorilla: $g[0], "node-ws": $n[0]}, switchboard_logins: $l[0]}' >"$json"

echo
echo "Parameters: $CONNECTIONS connections ($CONCURRENCY at once) for handshakes and memory; echo $ECHO_CONNECTIONS connections × $WINDOW in flight × $MESSAGE_SIZE B for $DURATION s"
jq -r '
  def f0: if . == null then "-" else (. | round | tostring) end;
  def f2: if . == null then "-" else ((. * 100 | round) / 100 | tostring) end;
  .servers as $s | ["switchboard", "gorilla", "node-ws"] as $n |
  (["", "switchboard", "gorilla", "node-ws"] | @tsv),
  (["handshakes/s"] + [$n[] | $s[.].handshake.per_second | f0] | @tsv),
  (["handshake p50/p99 ms"] + [$n[] | ($s[.].handshake.p50_ms | f2) + " / " + ($s[.].handshake.p99_ms | f2)] | @tsv),
  (["idle bytes/connection"] + [$n[] | $s[.].memory.bytes_per_connection | f0] | @tsv),
  (["echo msgs/s"] + [$n[] | $s[.].echo.per_second | f0] | @tsv),
  (["echo p50/p99/p99.9 ms"] + [$n[] | ($s[.].echo.p50_ms | f2) + " / " + ($s[.].echo.p99_ms | f2) + " / " + ($s[.].echo.p999_ms | f2)] | @tsv),
  (["echo max ms"] + [$n[] | $s[.].echo.max_ms | f2] | @tsv),
  (["full logins/s (/ws)", (.switchboard_logins.per_second | f0), "-", "-"] | @tsv)
' "$json" | column -t -s $'\t'
echo "JSON: $json"
