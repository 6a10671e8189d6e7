#!/usr/bin/env bash
# The comparison benchmark, in one command: builds echoloop and the tokio baseline in
# release mode, then runs the same cases against echoloop serve, tokio-echo and the seed's
# Python server (bench/compare.py), writing bench/results/results.{md,json} and
# bench/results/cpu_per_round_trip.svg.
#
#   bash bench/run.sh              # the full run: 6 cases x 4 servers x 5 rounds (~12 min)
#   bash bench/run.sh --smoke      # a few seconds, results in a temporary directory (CI)
#   bash bench/run.sh --rounds 5 --duration 5   # other compare.py flags pass through
#
# Needs: cargo, python3 (standard library only); taskset to pin server and load generator
# to different CPUs, perf for syscall counts (else they read "n/a").
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

out=bench/results
for arg in "$@"; do
    if [ "$arg" = --smoke ]; then
        out=$(mktemp -d)
        trap 'rm -rf "$out"' EXIT
    fi
done

cargo build --release -q -p echoloop
# Its own workspace and lock file; built into the main target directory.
cargo build --release -q --manifest-path bench/tokio-echo/Cargo.toml --target-dir target

python3 bench/compare.py \
    --echoloop target/release/echoloop \
    --tokio target/release/tokio-echo \
    --python-server bench/seed_server.py \
    --out "$out" "$@"
