#!/usr/bin/env bash
# Runs the micro-benchmarks (ordo-one/benchmark, allocations counted) of the Benchmarks/ package:
#   UserSigBenchmarks       TLSSigAPIv2 verify and issue
#   FrameBenchmarks         UTF-8 check + FrameDecoder.decode (+ state machine and typed request)
#                           of a login, a send and a ping frame
#   SessionTableBenchmarks  SessionTable login+logout of distinct users from 1, 2 and 8 threads
#
#   scripts/benchmarks.sh                          # the whole suite once (about 1.5 minutes once built)
#   scripts/benchmarks.sh --runs 3                 # three times in a row, as docs/benchmarks.md reports
#   scripts/benchmarks.sh --filter 'UserSig.*'     # any other option goes to `swift package benchmark`
#
# Benchmarks/ is a package of its own (the root package by path, plus ordo-one/benchmark), so
# neither the root build nor CI pays for the benchmark dependency. Its first build compiles the
# dependencies again into Benchmarks/.build: a few minutes. Release builds, as the plugin makes them.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=1
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=${2:?--runs needs a count}; shift 2 ;;
    --runs=*) runs=${1#--runs=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

for ((run = 1; run <= runs; run++)); do
  echo "=== run $run of $runs: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)," \
       "load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
  swift package --package-path Benchmarks benchmark run --no-progress ${args[@]+"${args[@]}"}
done
