#!/usr/bin/env bash
# Installs what the peer echo servers (and compare.sh: jq, column) need from Debian (idempotent)
# and builds the Go one into loadtest/peers/bin (git-ignored). Offline: Debian's gorilla/websocket
# in GOPATH mode, no modules.
set -euo pipefail
cd "$(dirname "$0")"
need=()
for pkg in golang-go golang-github-gorilla-websocket-dev nodejs node-ws jq bsdextrautils; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] && sudo= || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
mkdir -p bin
GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="${GOCACHE:-$PWD/bin/.gocache}" \
  go build -o bin/gorilla-echo ./gorilla
echo "built $(pwd)/bin/gorilla-echo; node-ws: NODE_PATH=/usr/share/nodejs node $(pwd)/node-ws/server.js"
