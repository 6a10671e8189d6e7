#!/usr/bin/env bash
# The ports' CI: the echo server on a Cortex-M4 under QEMU, over loopback and served to the
# host through the emulated LAN9118, and the link-time proof that the core has no
# panicking branch; then .ci/ports-c.sh, the core from C. Installs what it needs
# (idempotent); fails on any failure. The smoltcp and LAN9118 drivers' host tests run in
# `cargo test --workspace` (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n== %s\n' "$*"; }

TARGET=thumbv7em-none-eabihf
QEMU=(qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic
    -semihosting-config enable=on,target=native -kernel)
# A passing run takes about a second; a stuck one must not hold CI.
QEMU_TIMEOUT=120

step "ports: tools"
bash .ci/apt-install qemu-system-arm
qemu-system-arm --version | head -n 1
rustup target add "$TARGET"
rustup component add rustfmt clippy
# The firmware's log is binary defmt frames; the host-to-firmware tests read it decoded.
command -v defmt-print >/dev/null || cargo install defmt-print --locked --version 1.2.0

cd ports/qemu-m4
OUT=target/$TARGET/release
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Runs an ELF under QEMU and returns its exit status. With a second argument `defmt`, its
# log (binary defmt frames on stdout) is kept in $WORK/<name>.defmt and printed decoded
# when defmt-print is installed (`cargo install defmt-print`).
run_qemu() {
    local elf=$1 name status=0
    name=$(basename "$elf")
    timeout "$QEMU_TIMEOUT" "${QEMU[@]}" "$elf" >"$WORK/$name.defmt" || status=$?
    if [ "${2:-}" != defmt ]; then
        return "$status"
    fi
    if command -v defmt-print >/dev/null; then
        defmt-print -e "$elf" <"$WORK/$name.defmt" || true
    else
        echo "($(wc -c <"$WORK/$name.defmt") bytes of defmt log; install defmt-print to read it)"
    fi
    return "$status"
}

# Runs an ELF under QEMU (arguments as run_qemu's) and fails CI unless it exits with
# `want`; `what` names it in the message.
expect_exit() {
    local want=$1 what=$2 status=0
    shift 2
    run_qemu "$@" || status=$?
    if [ "$status" != "$want" ]; then
        echo "FAIL: $what exited with status $status, not $want (124: timed out)"
        exit 1
    fi
}

report_size() {
    if command -v arm-none-eabi-size >/dev/null; then arm-none-eabi-size "$@"; else size "$@"; fi
}

step "ports: firmware format and lints"
cargo fmt --all -- --check
cargo clippy --locked --workspace --release -- -D warnings

step "ports: firmware build"
cargo build --locked --release -p echoloop-m4-selftest
cp "$OUT/echoloop-m4-selftest" "$WORK/echoloop-m4-selftest"
cargo build --locked --release -p echoloop-m4-selftest --features expect-a-mismatch
cp "$OUT/echoloop-m4-selftest" "$WORK/echoloop-m4-selftest-mismatch"
cargo build --locked --release -p echoloop-m4-selftest --features pool
cp "$OUT/echoloop-m4-selftest" "$WORK/echoloop-m4-selftest-pool"
report_size "$WORK/echoloop-m4-selftest" "$WORK/echoloop-m4-selftest-pool"

step "ports: firmware under QEMU (must exit 0)"
expect_exit 0 "the firmware" "$WORK/echoloop-m4-selftest" defmt
echo "firmware passed under QEMU"

step "ports: 8 connections on a pool of 4 buffers under QEMU (must exit 0)"
expect_exit 0 "the pooled firmware" "$WORK/echoloop-m4-selftest-pool" defmt
echo "the pooled firmware passed under QEMU"

step "ports: a wrong byte must fail the run (must exit 1)"
expect_exit 1 "the firmware that expects a wrong byte" "$WORK/echoloop-m4-selftest-mismatch" defmt
echo "a mismatch fails the run, as it must"

step "ports: the echo server firmware on the LAN9118, served to the host"
cargo build --locked --release -p echoloop-m4-server
report_size "$OUT/echoloop-m4-server"
# From the repo root: ports/qemu-m4/serve boots it; echoloop client, echoloop-bench and
# raw sockets check every byte. One QEMU at a time.
(cd ../.. && cargo test --locked -p echoloop-tests --test firmware -- --ignored --test-threads=1)

step "ports: panic-never link check of the core"
cargo build --locked --release -p echoloop-m4-panic-check
report_size "$OUT/echoloop-m4-panic-check"
expect_exit 0 "the panic check" "$OUT/echoloop-m4-panic-check"
echo "the core links with panic-never and runs"

step "ports: the panic check is alive (a known panicking branch must not link)"
if cargo build --locked --release -p echoloop-m4-panic-check --features canary >"$WORK/canary.log" 2>&1; then
    echo "FAIL: the canary linked: panic-never no longer catches panicking branches"
    exit 1
fi
if ! grep -q "error(panic-never)" "$WORK/canary.log"; then
    cat "$WORK/canary.log"
    echo "FAIL: the canary failed for another reason than panic-never"
    exit 1
fi
echo "the canary failed to link, as it must"

step "ports: the core from C (C ABI, lwIP over a TAP link)"
(cd ../.. && bash .ci/ports-c.sh)

echo
echo "ports passed"
