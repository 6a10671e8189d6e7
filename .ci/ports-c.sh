#!/usr/bin/env bash
# The core from C, run by .ci/ports.sh: the C ABI (ports/ffi) with its header checked for
# drift and its C test under AddressSanitizer and UBSan, then the lwIP echo server
# (ports/lwip) under ASan, tested from the kernel's side of a TAP link in network
# namespaces the tests create and delete. Needs root (namespaces, TAP). Installs what it
# needs (idempotent); fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%T)"; }

CBINDGEN_VERSION=0.29.2

step "C: tools"
bash .ci/apt-install gcc make binutils pkg-config liblwip-dev iproute2
rustup target add thumbv7em-none-eabihf
if ! cbindgen --version 2>/dev/null | grep -qx "cbindgen $CBINDGEN_VERSION"; then
    cargo install cbindgen --locked --version "$CBINDGEN_VERSION"
fi

step "C ABI: format, lints, builds for the host and for a Cortex-M4"
(
    cd ports/ffi
    cargo fmt -- --check
    cargo clippy --locked --release -- -D warnings
    cargo clippy --locked --release --all-features -- -D warnings
    cargo build --locked --release
    cargo build --locked --release --target thumbv7em-none-eabihf
)

# The library's own object (LTO makes it one) calls C's abort only from the panic
# handler, which survives only if some path can panic. $1: the archive.
# (Counted, not grep -q: an early exit would fail the pipeline under pipefail.)
calls_abort() {
    [ "$(nm -A "$1" 2>/dev/null | grep 'echoloop_ffi-' | grep -c ' U abort$')" -gt 0 ]
}

step "C ABI: no panicking path is linked (the library never calls abort)"
if calls_abort ports/ffi/target/release/libecholoop_ffi.a; then
    echo "FAIL: libecholoop_ffi.a calls abort: a panicking path is linked in"
    exit 1
fi
(cd ports/ffi && cargo build --locked --release --features canary --target-dir target/canary)
if ! calls_abort ports/ffi/target/canary/release/libecholoop_ffi.a; then
    echo "FAIL: the canary's panicking branch does not show: the check above proves nothing"
    exit 1
fi
echo "no panicking path; the canary's shows, as it must"

step "C ABI: the committed header is cbindgen's output"
if ! make --no-print-directory -C ports/ffi check-header; then
    echo "FAIL: ports/ffi/include/echoloop.h drifted: run 'make -C ports/ffi header' and commit it"
    exit 1
fi

step "C ABI: tests/abi.c under AddressSanitizer and UBSan (must exit 0)"
make --no-print-directory -C ports/ffi test

step "lwIP: sizes next to a bare raw-API echo (docs/porting-c.md)"
make --no-print-directory -C ports/lwip sizes

step "lwIP: the server under ASan in a namespace, every byte checked from the kernel's side"
cargo test --locked -p echoloop-tests --test lwip -- --ignored --test-threads=1
