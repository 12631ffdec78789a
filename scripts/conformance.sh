#!/usr/bin/env bash
# WebSocket conformance: the Autobahn test cases (driven by `kosoku`, from PyPI) against the
# gateway's /echo endpoint (`serve --conformance-echo`), groups 1–7, 9 and 10. Fails when any case
# is FAILED; prints the tally of behaviours. Usage: scripts/conformance.sh [BINARY] [REPORT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-.build/debug/switchboard}
reports=${2:-.build/conformance}
python=${PYTHON:-.venv/bin/python}
port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
SWITCHBOARD_LISTEN="127.0.0.1:$port" SWITCHBOARD_ADMIN="127.0.0.1:$admin" \
  "$bin" serve --conformance-echo --log-level warning >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q "listening" "$log" && break; sleep 0.1; done

rm -rf "$reports"
status=0
"$(dirname "$python")/kosoku" "ws://127.0.0.1:$port/echo" -o "$reports" -p 2 \
  -i '1.*' -i '2.*' -i '3.*' -i '4.*' -i '5.*' -i '6.*' -i '7.*' -i '9.*' -i '10.*' || status=$?
"$python" - "$reports" <<'PY'
import collections, json, pathlib, sys
index = json.loads((pathlib.Path(sys.argv[1]) / "index.json").read_text())
tally = collections.Counter()
failed = []
for cases in index.values():
    for case, result in cases.items():
        tally[result["behavior"]] += 1
        if "FAILED" in (result["behavior"], result.get("behaviorClose")):
            failed.append(case)
print("autobahn (kosoku) on /echo:", ", ".join(f"{n} {b}" for b, n in sorted(tally.items())))
if failed:
    print("FAILED cases:", " ".join(sorted(failed)))
    sys.exit(1)
PY
exit $status
