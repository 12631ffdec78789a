#!/usr/bin/env bash
# Cluster figures, each against a baseline measured in the same run (docs/benchmarks.md):
#   loadtest/cluster-run.sh kick    [--pairs N] ...         kick latency: one node alone; same node
#                                                            in a cluster; cross-node (A on node 1, B on node 2)
#   loadtest/cluster-run.sh connect [--connections N] ...   logins/s: one node alone; a 3-node cluster
#                                                            (connections round robin over the nodes)
# Starts a redis-server (no persistence), three release nodes sharing it and one node without
# Redis, all on loopback; runs the scenario against each; stops everything. Extra arguments go to
# switchboard-loadtest. JSON results go to $CLUSTER_BENCH_OUT (default a temp dir), printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?usage: loadtest/cluster-run.sh kick|connect [loadtest options]}
shift
case $scenario in kick|connect) ;; *) echo "unknown scenario $scenario" >&2; exit 2 ;; esac

swift build -c release --scratch-path .build-release --product switchboard >/dev/null
swift build -c release --scratch-path .build-release --product switchboard-loadtest >/dev/null
bin=.build-release/release
command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 1; }

base=${SWITCHBOARD_BENCH_PORT:-28080}
redis_port=$((base + 99))
out=${CLUSTER_BENCH_OUT:-$(mktemp -d)}
mkdir -p "$out"
work=$(mktemp -d)
key=5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

# node 0: alone (in-process table); nodes 1-3: the cluster.
for n in 0 1 2 3; do
  port=$((base + 10 * n))
  cat >"$work/node$n.yaml" <<YAML
listen: "127.0.0.1:$port"
admin: "127.0.0.1:$((port + 1))"
maxConnectionsPerAddress: 100000
maxFailedLogins: 100000
apps:
  - sdkAppID: 1400000000
    secretKey: "$key"
    policy: multi
    maxInstances: {Web: 10}
YAML
  if [ "$n" -gt 0 ]; then
    printf 'redis: "redis://127.0.0.1:%s/0"\nnodeID: "node-%s"\n' "$redis_port" "$n" >>"$work/node$n.yaml"
  fi
  "$bin/switchboard" serve --config "$work/node$n.yaml" --log-level warning >"$work/node$n.log" 2>&1 &
  pids+=($!)
done
for n in 0 1 2 3; do
  admin=$((base + 10 * n + 1))
  for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/readyz")" = 200 ] && break
    sleep 0.1
  done
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/readyz")" = 200 ] || {
    echo "node $n did not become ready" >&2; cat "$work/node$n.log" >&2; exit 1; }
done
sleep 1  # let the idle processes settle

run() {  # NAME ARGS...
  local name=$1
  shift
  echo "== $name"
  "$bin/switchboard-loadtest" "$scenario" --key "$key" --json "$out/$name.json" "$@"
}
n0=$base n1=$((base + 10)) n2=$((base + 20)) n3=$((base + 30))
case $scenario in
  kick)
    run kick-single --port "$n0" "$@"
    run kick-cluster-same-node --port "$n1" --kicker-port "$n1" "$@"
    run kick-cluster-cross-node --port "$n1" --kicker-port "$n2" "$@"
    ;;
  connect)
    run connect-single --port "$n0" --user-prefix single- "$@"
    run connect-cluster --port "$n1" --also-ports "$n2,$n3" --user-prefix cluster- "$@"
    ;;
esac
echo "results: $out"
