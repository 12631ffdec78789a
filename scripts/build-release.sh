#!/usr/bin/env bash
# The release build of the gateway, exactly as deploy/Dockerfile runs it: Swift standard library
# (and Foundation) linked statically, so the runtime image needs only libc, libstdc++ and zlib.
# SWITCHBOARD_RELEASE_SCRATCH names the build folder (default .build-release, kept between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=${SWITCHBOARD_RELEASE_SCRATCH:-.build-release}
swift build -c release --scratch-path "$scratch" --product switchboard --static-swift-stdlib
echo "$scratch/release/switchboard"
