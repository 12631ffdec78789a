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
# --nodes 3 (anywhere in the arguments): three nodes sharing a redis-server instead of one node;
# connect and hold spread their connections over the nodes, kick logs B in on node 2 (a
# cross-node kick), the other scenarios drive node 1 (their deliveries still go through Redis).
# After the scenario it prints each process's resident memory and CPU time (from /proc).
# Extra arguments go to switchboard-loadtest. Builds into .build-release (kept between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?usage: loadtest/run.sh connect|hold|resume|kick|fanout|churn [--nodes 1|3] [loadtest options]}
shift
nodes=1
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) nodes=${2:?--nodes needs 1 or 3}; shift 2 ;;
    --nodes=*) nodes=${1#--nodes=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
case $nodes in 1|3) ;; *) echo "--nodes must be 1 or 3" >&2; exit 2 ;; esac

# shellcheck source=loadtest/lib.sh
. loadtest/lib.sh
bench_build
base=${SWITCHBOARD_BENCH_PORT:-18080}
key=$bench_key

redis_url=""
if [ "$nodes" -gt 1 ]; then
  bench_redis "$((base + 99))"
  redis_url="redis://127.0.0.1:$((base + 99))/0"
fi
# Node n listens on base + 10(n-1) (WebSocket) and the port after it (admin).
ports=()
for n in $(seq "$nodes"); do
  ports+=("$((base + 10 * (n - 1)))")
  bench_node "node-$n" "${ports[n - 1]}" "$redis_url"
done
for n in $(seq "$nodes"); do bench_wait_ready "node-$n" "${ports[n - 1]}"; done
sleep 1  # let the idle processes settle before their baselines are read

usage() {  # pid -> "RSS_KiB CPU_seconds"
  local rss ticks
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status")
  ticks=$(awk '{print $14 + $15}' "/proc/$1/stat")
  echo "$rss $(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}')"
}
before=()
for pid in "${bench_pids[@]}"; do before+=("$(usage "$pid")"); done

extra=()
[ "$scenario" = fanout ] && extra=(--admin-port "$((base + 1))")  # for --pushes (admin API)
if [ "$nodes" -eq 1 ]; then
  extra+=(--gateway-pid "${bench_pids[0]}")
else
  case $scenario in
    connect|hold) extra+=(--also-ports "$(IFS=,; echo "${ports[*]:1}")") ;;
    kick) extra+=(--kicker-port "${ports[1]}") ;;
  esac
fi
"$bin/switchboard-loadtest" "$scenario" --port "$base" --key "$key" "${extra[@]}" "${args[@]}"

echo
printf '%-8s %14s %14s %12s\n' process "RSS before KiB" "RSS after KiB" "CPU s"
for i in "${!bench_pids[@]}"; do
  read -r rss0 cpu0 <<<"${before[i]}"
  read -r rss1 cpu1 <<<"$(usage "${bench_pids[i]}")"
  printf '%-8s %14s %14s %12s\n' "${bench_names[i]}" "$rss0" "$rss1" "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {printf "%.2f", b - a}')"
done
