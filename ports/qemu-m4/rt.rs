//! How a firmware under QEMU ends: an exit status through semihosting, a logged panic, a
//! logged hard fault. Shared by the self-test and the server firmwares of this workspace, which
//! include this file by path.

use cortex_m_rt::{exception, ExceptionFrame};
use cortex_m_semihosting::debug::{self, ExitStatus};

/// Ends the run with `status` (QEMU exits with it).
pub fn exit(status: ExitStatus) -> ! {
    debug::exit(status);
    // Only without a debugger or QEMU to take the exit.
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(at) => defmt::error!("panicked at {=str}:{}", at.file(), at.line()),
        None => defmt::error!("panicked"),
    }
    exit(debug::EXIT_FAILURE)
}

// SAFETY: cortex-m-rt requires the HardFault handler to be an `unsafe fn`; it only logs
// and exits, so QEMU stops with status 1 instead of hanging until a timeout.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    defmt::error!("hard fault at pc {=u32:#x}", frame.pc());
    exit(debug::EXIT_FAILURE)
}
