#!/usr/bin/env bash
# Smoke test of a release binary (the one the container ships): it issues and verifies a UserSig,
# serves /healthz on the embedded default, and drains on SIGTERM with exit status 0.
set -euo pipefail
bin=${1:?usage: scripts/smoke-release.sh BINARY}
key=5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e
sig=$("$bin" usersig issue --sdkappid 1400000000 --key "$key" --user smoke)
"$bin" usersig verify --sdkappid 1400000000 --key "$key" --user smoke --sig "$sig" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
SWITCHBOARD_LISTEN="127.0.0.1:$port" SWITCHBOARD_ADMIN="127.0.0.1:$admin" SWITCHBOARD_DRAIN_TIMEOUT=2 \
  "$bin" serve >"$log" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q "listening" "$log" && break; sleep 0.1; done
python3 - "$admin" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=3) as r:
    assert r.status == 200, r.status
PY
kill -TERM $server
wait $server
rm -f "$log"
echo "release smoke test: ok ($bin)"
