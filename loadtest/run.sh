#!/usr/bin/env bash
# Starts a release gateway on loopback, runs one load scenario against it, stops the gateway.
#   loadtest/run.sh connect [--connections N] [--no-login] ...   logins/s (or bare handshakes/s)
#   loadtest/run.sh hold    [--connections N] [--duration S] ... resident memory per idle session
#   loadtest/run.sh resume  [--drops N] ...                      drop-to-first-replayed-event latency
#   loadtest/run.sh kick    [--pairs N] [--in-flight K] ...      new login's reply -> old instance's kickedOffline
#   loadtest/run.sh fanout  [--receivers M] [--senders S] [--rate R] [--messages N] [--pushes P] ...  delivered/s, latency
#   loadtest/run.sh churn   [--clients C] [--rate R] [--duration S] ...                 login/logout cycles: logins/s, latency
# The gateway keeps its default maxRequestsPerSecond (50 per connection): fanout and churn refuse
# a rate that would pass 45 requests/s on one connection (spread over more senders or clients).
# kick logs both instances in on Android, whose instance limit under policy multi is 1.
# Extra arguments go to switchboard-loadtest. Builds into .build-release (kept between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?usage: loadtest/run.sh connect|hold|resume|kick|fanout|churn [loadtest options]}
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

extra=()
[ "$scenario" = fanout ] && extra=(--admin-port "$admin")  # for --pushes (admin API)
"$bin/switchboard-loadtest" "$scenario" --port "$port" --key "$key" --gateway-pid "$gateway" "${extra[@]}" "$@"
