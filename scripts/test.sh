#!/usr/bin/env bash
# Runs every test:
#   1. the Swift suites (unit, handler on EmbeddedChannel, end-to-end over loopback);
#   2. WebSocket conformance: the Autobahn cases (kosoku) against `serve --conformance-echo`;
#   3. the container: hadolint on deploy/Dockerfile, and the release build it runs, smoke-tested;
#   4. the interop suites driving a real `switchboard serve` with third-party clients (Python
#      `websockets`, Tencent's `tls-sig-api-v2`), the cluster suites (three nodes and a real
#      redis-server; the HAProxy topology of deploy/), then the one-node suites again with every
#      server in cluster mode.
# Python packages go into .venv (created on first use).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r Tests/interop/requirements.txt

swift build --build-tests
swift test --skip-build --parallel

PYTHON="$venv/bin/python" scripts/conformance.sh

"$venv/bin/hadolint" deploy/Dockerfile
release=$(scripts/build-release.sh | tail -n 1)
scripts/smoke-release.sh "$release"

export SWITCHBOARD_BIN="$PWD/.build/debug/switchboard"
"$venv/bin/python" -m pytest Tests/interop -q -p no:cacheprovider

# The one-node suites once more with every server in cluster mode on a real Redis (flushed before
# each test): every promise of the contract must hold through the cluster's directory too.
redis_dir=$(mktemp -d)
redis_port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$redis_dir" >"$redis_dir/log" 2>&1 &
redis_pid=$!
trap 'kill $redis_pid 2>/dev/null; rm -rf "$redis_dir"' EXIT
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
SWITCHBOARD_INTEROP_REDIS="redis://127.0.0.1:$redis_port/0" "$venv/bin/python" -m pytest Tests/interop -q -p no:cacheprovider \
  --ignore=Tests/interop/test_cluster_interop.py --ignore=Tests/interop/test_topology_interop.py
