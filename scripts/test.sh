#!/usr/bin/env bash
# Runs every test:
#   1. the Swift suites (unit, handler on EmbeddedChannel, end-to-end over loopback);
#   2. WebSocket conformance: the Autobahn cases (kosoku) against `serve --conformance-echo`;
#   3. the container: hadolint on deploy/Dockerfile, and the release build it runs, smoke-tested;
#   4. the interop suites driving a real `switchboard serve` with third-party clients (Python
#      `websockets`, Tencent's `tls-sig-api-v2`).
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
