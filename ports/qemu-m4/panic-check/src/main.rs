//! The link-time proof that the echoloop core has no panicking branch, on a Cortex-M4.
//!
//! `panic-never`'s panic handler calls a function that does not exist, so a release build
//! links only if the optimizer removed every call to the panic handler. This firmware
//! makes the calls of `checks.rs`: every public entry point of the core, with inputs the
//! optimizer cannot see.
//!
//! It also runs (under QEMU, exit status 0), so that the calls are real, not dead code.
//! No logging: defmt-semihosting has a panicking branch of its own.
#![no_std]
#![no_main]

mod checks;

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use panic_never as _;

#[entry]
fn main() -> ! {
    debug::exit(if checks::all() {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}
