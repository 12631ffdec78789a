#!/usr/bin/env bash
# Runs every test: the Swift suites (unit, handler, end-to-end over loopback) and the interop
# suites that drive a real `switchboard serve` with third-party clients (Python `websockets`,
# Tencent's `tls-sig-api-v2`). Python packages go into .venv (created on first use).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r Tests/interop/requirements.txt

swift build --build-tests
swift test --skip-build --parallel

export SWITCHBOARD_BIN="$PWD/.build/debug/switchboard"
"$venv/bin/python" -m pytest Tests/interop -q -p no:cacheprovider
