#!/usr/bin/env bash
# The comparison benchmark, in one command: builds echoloop, the tokio peer (release) and
# the two C peers (gcc -O2), then runs the same cases against echoloop serve and every
# peer (bench/compare.py; the UDP cases against the servers with a UDP echo), writing
# bench/results/results.{md,json} and bench/results/cpu_per_round_trip.svg.
#
#   bash bench/run.sh              # the full run: 12 cases (2 of them UDP) x 7 servers x 5 rounds
#   bash bench/run.sh --smoke      # every case, small: well under 2 minutes (CI)
#   bash bench/run.sh --rounds 5 --duration 5   # other compare.py flags pass through
#
# Needs: cargo, gcc, python3 (standard library only); taskset to pin server and load
# generator to different CPUs, perf for syscall counts (else they read "n/a").
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

out=bench/results
smoke=
for arg in "$@"; do
    if [ "$arg" = --smoke ]; then
        smoke=yes
        out=$(mktemp -d)
        trap 'rm -rf "$out"' EXIT
    fi
done

cargo build --release -q -p echoloop -p echoloop-bench
# The server as shipped for Linux: static (musl), so no libc.so, ld.so and libgcc_s pages
# count in its resident memory (0.9 MiB idle against 2.4 MiB dynamically linked;
# docs/capacity.md). The load generator stays the glibc build: its byte checks are
# memcmp, which glibc vectorises and musl does a byte at a time.
server=target/release/echoloop
musl=x86_64-unknown-linux-musl
if [ "$(uname -sm)" = "Linux x86_64" ]; then
    rustup target add "$musl" >/dev/null 2>&1 || true
    if cargo build --release -q -p echoloop --target "$musl"; then
        server=target/$musl/release/echoloop
    else
        echo "run.sh: no $musl build; serving from the glibc build" >&2
    fi
fi
# Its own workspace and lock file; built into the main target directory.
cargo build --release -q --manifest-path bench/tokio-echo/Cargo.toml --target-dir target
mkdir -p target/bench-peers
for peer in epoll_echo select_echo; do
    gcc -O2 -Wall -Wextra -Werror -o "target/bench-peers/$peer" "bench/$peer.c"
done

# The 10,000-connection cases need a soft descriptor limit above 10,000 for the servers
# (compare.py raises it as far as the hard limit allows; echoloop-bench raises its own).
binaries=(
    --echoloop "$server"
    --load-generator target/release/echoloop-bench
    --tokio target/release/tokio-echo
    --epoll target/bench-peers/epoll_echo
    --c-select target/bench-peers/select_echo
    --python-server bench/seed_server.py
)
python3 bench/compare.py "${binaries[@]}" --out "$out" "$@"

# The smoke also runs the paired-slice comparison (bench/paired.py) for a moment, so
# that it keeps working; its real runs are by hand (BENCHMARKS.md, "Paired slices").
if [ -n "$smoke" ]; then
    python3 bench/paired.py "${binaries[@]}" --echoloop-args 'echoloop-again=' \
        --rounds 2 --slice 0.1 --warmup 0.05 --out "$out/paired.md" >/dev/null
    grep -q '^| echoloop-again |' "$out/paired.md"
fi
