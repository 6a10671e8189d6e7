//! The link-time proof that the echoloop core has no panicking branch, on riscv32imac.
//!
//! The Cortex-M4 check's calls (`ports/qemu-m4/panic-check/src/checks.rs`), built for this
//! target and linked against `panic-never`, whose panic handler calls a function that does
//! not exist: a release build links only if the optimizer removed every call to it. Another
//! instruction set means other code generation, so a branch that one target's optimizer
//! proves dead the other's might not.
//!
//! It also runs (under QEMU, exit status 0), so that the calls are real, not dead code.
#![no_std]
#![no_main]

// Only `exit` is used here; the rest of the board is the server's.
#[allow(dead_code)]
#[path = "../../board.rs"]
mod board;
#[path = "../../../qemu-m4/panic-check/src/checks.rs"]
mod checks;

use panic_never as _;

#[riscv_rt::entry]
fn main() -> ! {
    board::exit(if checks::all() { 0 } else { 1 })
}
