//! The LAN9118's interrupt wakes the CPU; the main loop does the work.
//!
//! The chip holds its IRQ line up while a received frame's status bit is set, so the
//! handler masks the line in the NVIC and leaves a note; the main loop acknowledges the
//! chip (which drops the line), unmasks, and drains the RX FIFO. The sleep check runs
//! with interrupts disabled: an interrupt that arrives after the check still ends the
//! `wfi` (a pending interrupt wakes the core even while PRIMASK holds it off), so a frame
//! can never arrive unnoticed between "nothing to do" and sleeping.

use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;
use cortex_m_rt::exception;
use echoloop_lan9118::MPS2_IRQ;

/// The LAN9118's line in the NVIC.
#[derive(Clone, Copy)]
struct Ethernet;

// SAFETY: MPS2_IRQ (13) is a valid external interrupt number of the mps2-an386's NVIC.
unsafe impl InterruptNumber for Ethernet {
    fn number(self) -> u16 {
        MPS2_IRQ
    }
}

/// Set by the handler, taken by the main loop.
static ETHERNET: AtomicBool = AtomicBool::new(false);

// SAFETY: cortex-m-rt requires the default handler to be an `unsafe fn`. It only masks a
// line and stores a flag.
#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn == MPS2_IRQ as i16 {
        NVIC::mask(Ethernet);
        ETHERNET.store(true, Ordering::Release);
    }
}

/// Lets the LAN9118's interrupt through.
pub fn unmask() {
    // SAFETY: the firmware has no mask-based critical section that unmasking could break;
    // its only critical sections use PRIMASK (`cortex_m::interrupt::free`).
    unsafe { NVIC::unmask(Ethernet) }
}

/// True once after the LAN9118 interrupted; the line is masked until [`unmask`].
pub fn take() -> bool {
    ETHERNET.swap(false, Ordering::Acquire)
}

/// Sleeps until an interrupt, unless `busy` says there is work or the LAN9118 has
/// interrupted since the last [`take`].
pub fn sleep_unless(busy: impl FnOnce() -> bool) {
    cortex_m::interrupt::free(|_| {
        if !ETHERNET.load(Ordering::Acquire) && !busy() {
            cortex_m::asm::wfi();
        }
    });
}
