# shellcheck shell=bash
# Shared by loadtest/run.sh and loadtest/cluster-run.sh (sourced, not run): release builds, a
# redis-server and gateway nodes on loopback with the benchmark app, stopped on exit.
# The caller sets `set -euo pipefail` and is in the repository root.

bench_key=5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e
bench_work=$(mktemp -d)
bench_pids=()
bench_names=()

bench_cleanup() {
  local pid
  for pid in "${bench_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${bench_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$bench_work"
}
trap bench_cleanup EXIT

# The release gateway and load generator (into .build-release, kept between runs); sets $bin.
bench_build() {
  swift build -c release --scratch-path .build-release --product switchboard >/dev/null
  swift build -c release --scratch-path .build-release --product switchboard-loadtest >/dev/null
  bin=.build-release/release
}

# bench_redis PORT: a redis-server without persistence; prints its URL.
bench_redis() {
  command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 1; }
  redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no --dir "$bench_work" \
    >"$bench_work/redis.log" 2>&1 &
  bench_pids+=($!)
  bench_names+=(redis)
  local _
  for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && break; sleep 0.1; done
}

# bench_node NAME PORT [REDIS_URL]: a gateway on PORT (admin on PORT+1) with the benchmark app
# (policy multi, Web limit 10, every other platform 1), in cluster mode when REDIS_URL is given.
bench_node() {
  local name=$1 port=$2 redis=${3:-}
  cat >"$bench_work/$name.yaml" <<YAML
listen: "127.0.0.1:$port"
admin: "127.0.0.1:$((port + 1))"
maxConnectionsPerAddress: 100000
maxFailedLogins: 100000
apps:
  - sdkAppID: 1400000000
    secretKey: "$bench_key"
    policy: multi
    maxInstances: {Web: 10}
YAML
  [ -z "$redis" ] || printf 'redis: "%s"\nnodeID: "%s"\n' "$redis" "$name" >>"$bench_work/$name.yaml"
  "$bin/switchboard" serve --config "$bench_work/$name.yaml" --log-level warning >"$bench_work/$name.log" 2>&1 &
  bench_pids+=($!)
  bench_names+=("$name")
}

# bench_wait_ready NAME PORT: until the node's /readyz answers 200 (10 s at most).
bench_wait_ready() {
  local url="http://127.0.0.1:$(($2 + 1))/readyz" _
  for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ] && return 0
    sleep 0.1
  done
  echo "$1 did not become ready" >&2
  cat "$bench_work/$1.log" >&2
  exit 1
}
