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

# shellcheck source=loadtest/lib.sh
. loadtest/lib.sh
bench_build
base=${SWITCHBOARD_BENCH_PORT:-28080}
key=$bench_key
out=${CLUSTER_BENCH_OUT:-$(mktemp -d)}
mkdir -p "$out"

bench_redis "$((base + 99))"
# node-0: alone (in-process table); node-1 to node-3: the cluster.
bench_node node-0 "$base"
for n in 1 2 3; do bench_node "node-$n" "$((base + 10 * n))" "redis://127.0.0.1:$((base + 99))/0"; done
for n in 0 1 2 3; do bench_wait_ready "node-$n" "$((base + 10 * n))"; done
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
