#!/usr/bin/env bash
# Starts a release gateway on loopback, runs one load scenario against it, stops the gateway.
#   loadtest/run.sh connect [--connections N] [--no-login] ...   logins/s (or bare handshakes/s)
#   loadtest/run.sh hold    [--connections N] [--duration S] ... resident memory per idle session
#   loadtest/run.sh resume  [--drops N] ...                      drop-to-first-replayed-event latency
# Extra arguments go to switchboard-loadtest. Builds into .build-release (kept between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?usage: loadtest/run.sh connect|hold|resume [loadtest options]}
shift

swift build -c release --scratch-path .build-release --product switchboard >/dev/null
swift build -c release --scratch-path .build-release --product switchboard-loadtest >/dev/null
bin=.build-release/release

port=${SWITCHBOARD_BENCH_PORT:-18080}
admin=$((port + 1))
key=5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e
config=$(mktemp --suffix=.yaml)
log=$(mktemp)
cat >"$config" <<YAML
listen: "127.0.0.1:$port"
admin: "127.0.0.1:$admin"
maxConnectionsPerAddress: 100000
apps:
  - sdkAppID: 1400000000
    secretKey: "$key"
    policy: multi
    maxInstances: {Web: 10}
YAML

"$bin/switchboard" serve --config "$config" --log-level warning >"$log" 2>&1 &
gateway=$!
trap 'kill $gateway 2>/dev/null; wait $gateway 2>/dev/null; rm -f "$config" "$log"' EXIT
for _ in $(seq 100); do
  grep -q "listening" "$log" && break
  sleep 0.1
done
sleep 1  # let the idle process settle before its baseline is read

"$bin/switchboard-loadtest" "$scenario" --port "$port" --key "$key" --gateway-pid "$gateway" "$@"
