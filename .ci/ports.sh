#!/usr/bin/env bash
# The ports' CI: the firmwares under QEMU. On a Cortex-M4 (ports/qemu-m4): the loopback
# self-test, and the echo server served to the host through the emulated LAN9118. On a
# RISC-V hart (ports/qemu-riscv): the echo server served to the host through virtio-net.
# Both servers pass the same host-side tests; neither links an allocator; the core links
# against panic-never on both targets. Then .ci/ports-c.sh, the core from C. Installs what
# it needs (idempotent); fails on any failure. The smoltcp and LAN9118 drivers' host tests
# run in `cargo test --workspace` (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%T)"; }

M4_TARGET=thumbv7em-none-eabihf
RISCV_TARGET=riscv32imac-unknown-none-elf
# A passing run takes about a second; a stuck one must not hold CI.
QEMU_TIMEOUT=120

step "ports: tools"
# binutils: `size`, `nm` and `strings` read both targets' ELFs.
bash .ci/apt-install qemu-system-arm qemu-system-misc binutils iproute2 nftables
qemu-system-arm --version | head -n 1
qemu-system-riscv32 --version | head -n 1
rustup target add "$M4_TARGET" "$RISCV_TARGET"
rustup component add rustfmt clippy
# The firmware's log is binary defmt frames; the host-to-firmware tests read it decoded.
command -v defmt-print >/dev/null || cargo install defmt-print --locked --version 1.2.0

ROOT=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Runs an ELF under QEMU (the command line in the array QEMU) and returns its exit status.
# With a second argument `defmt`, its log (binary defmt frames on stdout) is kept in
# $WORK/<name>.defmt and printed decoded when defmt-print is installed.
run_qemu() {
    local elf=$1 name status=0
    name=$(basename "$elf")
    timeout "$QEMU_TIMEOUT" "${QEMU[@]}" "$elf" </dev/null >"$WORK/$name.defmt" || status=$?
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

# Fails CI if ELF $1 links an allocator: the firmwares take all their memory from statics.
# Code that allocates needs the `alloc` crate and a global allocator; fat LTO may inline
# the allocator's entry points (`__rust_alloc`...) away, but not every symbol of the
# `alloc` crate, nor the debug info's references to its sources.
ALLOC_SYMBOLS='(^| |<|&)alloc::|__rust_alloc|__rust_dealloc|__rust_realloc|__rg_alloc|__rdl_alloc|__rust_no_alloc_shim'
expect_no_allocator() {
    local found
    found=$({
        nm -C "$1" | grep -E "$ALLOC_SYMBOLS"
        strings -a "$1" | grep -m 3 '/library/alloc/src/'
    } || true)
    if [ -n "$found" ]; then
        echo "$found"
        echo "FAIL: $(basename "$1") links an allocator"
        exit 1
    fi
    echo "$(basename "$1"): no allocator linked"
}

# Prints the sections of ELFs that take memory on the target: what is loaded (vector
# table, code, read-only data, .data's initial values) and the static RAM (.data, .bss).
# Not the stack: riscv-rt gives it the rest of RAM, as a section.
report_size() {
    local elf
    for elf in "$@"; do
        echo "$(basename "$elf"):"
        size -A "$elf" | grep -E '^\.(vector_table|text|rodata|data|bss) '
    done
}

# Builds a panic check (package $1) and runs it, then its canary, which must fail to link.
panic_check() {
    local package=$1 out=$2
    cargo build --locked --release -p "$package"
    report_size "$out/$package"
    expect_exit 0 "the panic check" "$out/$package"
    echo "the core links with panic-never and runs"
    if cargo build --locked --release -p "$package" --features canary >"$WORK/canary.log" 2>&1; then
        echo "FAIL: the canary linked: panic-never no longer catches panicking branches"
        exit 1
    fi
    if ! grep -q "error(panic-never)" "$WORK/canary.log"; then
        cat "$WORK/canary.log"
        echo "FAIL: the canary failed for another reason than panic-never"
        exit 1
    fi
    echo "the canary failed to link, as it must"
}

step "ports, Cortex-M4: format and lints"
cd "$ROOT/ports/qemu-m4"
OUT=target/$M4_TARGET/release
QEMU=(qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic
    -semihosting-config enable=on,target=native -kernel)
cargo fmt --all -- --check
cargo clippy --locked --workspace --release -- -D warnings

step "ports, Cortex-M4: the loopback self-test"
cargo build --locked --release -p echoloop-m4-selftest
cp "$OUT/echoloop-m4-selftest" "$WORK/echoloop-m4-selftest"
cargo build --locked --release -p echoloop-m4-selftest --features expect-a-mismatch
cp "$OUT/echoloop-m4-selftest" "$WORK/echoloop-m4-selftest-mismatch"
cargo build --locked --release -p echoloop-m4-selftest --features pool
cp "$OUT/echoloop-m4-selftest" "$WORK/echoloop-m4-selftest-pool"
report_size "$WORK/echoloop-m4-selftest" "$WORK/echoloop-m4-selftest-pool"
expect_no_allocator "$WORK/echoloop-m4-selftest"
expect_exit 0 "the self-test" "$WORK/echoloop-m4-selftest" defmt
echo "the self-test passed under QEMU"

step "ports, Cortex-M4: 8 connections on a pool of 4 buffers (must exit 0)"
expect_exit 0 "the pooled self-test" "$WORK/echoloop-m4-selftest-pool" defmt
echo "the pooled self-test passed under QEMU"

step "ports, Cortex-M4: a wrong byte must fail the self-test (must exit 1)"
expect_exit 1 "the self-test that expects a wrong byte" "$WORK/echoloop-m4-selftest-mismatch" defmt
echo "a mismatch fails the run, as it must"

step "ports, Cortex-M4: the LAN9118 server"
cargo build --locked --release -p echoloop-m4-server
report_size "$OUT/echoloop-m4-server"
expect_no_allocator "$OUT/echoloop-m4-server"

step "ports, Cortex-M4: panic-never link check of the core"
panic_check echoloop-m4-panic-check "$OUT"

step "ports, RISC-V: format and lints"
cd "$ROOT/ports/qemu-riscv"
OUT=target/$RISCV_TARGET/release
QEMU=(qemu-system-riscv32 -machine virt -bios none -nographic -monitor none -serial stdio
    -kernel)
cargo fmt --all -- --check
cargo clippy --locked --workspace --release -- -D warnings
cargo clippy --locked --release -p echoloop-riscv-server --features alloc-canary -- -D warnings

step "ports, RISC-V: the allocator check is alive (a build with one must fail it)"
cargo build --locked --release -p echoloop-riscv-server --features alloc-canary
if (expect_no_allocator "$OUT/echoloop-riscv-server" >/dev/null); then
    echo "FAIL: the symbol check found no allocator in the build that links one"
    exit 1
fi
echo "the symbol check finds a linked allocator, as it must"

step "ports, RISC-V: the virtio-net server"
cargo build --locked --release -p echoloop-riscv-server
report_size "$OUT/echoloop-riscv-server"
expect_no_allocator "$OUT/echoloop-riscv-server"

step "ports, RISC-V: panic-never link check of the core"
panic_check echoloop-riscv-panic-check "$OUT"

step "ports: both servers, served to the host: the same tests against each"
# ports/qemu-*/serve boots them; echoloop client, echoloop-bench and raw sockets check
# every byte. One QEMU at a time.
cd "$ROOT"
cargo test --locked -p echoloop-tests --test firmware -- --ignored --test-threads=1 m4::
cargo test --locked -p echoloop-tests --test firmware -- --ignored --test-threads=1 riscv::

step "ports, Cortex-M4: the server on a TAP link (serve --netns; root)"
# UDP from the host, the flood and loop guards, 5 % loss each way, one seeded run through
# the impaired wire, and 64 simultaneous connects on 4 slots. One QEMU at a time.
cargo test --locked -p echoloop-tests --test firmware_link -- --ignored --test-threads=1 \
    tap_mode udp_datagrams guarded flood at_5_percent impaired burst

step "ports: the core from C (C ABI, lwIP over a TAP link)"
bash .ci/ports-c.sh

echo
echo "ports passed"
