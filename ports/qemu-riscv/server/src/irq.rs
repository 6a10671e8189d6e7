//! Interrupts wake the hart; the main loop does the work.
//!
//! No trap handler runs: `mstatus.MIE` stays clear (riscv-rt starts the hart with it
//! clear), so a pending interrupt never traps, yet `wfi` still returns as soon as an
//! interrupt enabled in `mie` is pending, whatever `mstatus.MIE` says (the privileged
//! specification's rule for `wfi`). Two sources are enabled: machine external (the PLIC,
//! which forwards the virtio-net device's line) and machine timer (`mtimecmp`, set by
//! `clock::wake_at`). Because nothing traps, checking for work and then sleeping cannot
//! lose a wake-up: an interrupt that arrives after the check stays pending, and `wfi`
//! returns at once.

use riscv::interrupt::Interrupt;

use crate::board::{plic_priority, PLIC_CLAIM, PLIC_ENABLE, PLIC_THRESHOLD};

/// Routes PLIC source `irq` (below 32) to hart 0 in machine mode and lets it and the
/// machine timer wake the hart.
pub fn enable(irq: u32) {
    plic_priority(irq).write(1);
    PLIC_THRESHOLD.write(0);
    PLIC_ENABLE.write(1u32.checked_shl(irq).unwrap_or(0));
    // SAFETY: enabling a source in `mie` could only break a critical section that relies
    // on it being masked; this firmware has none, and with `mstatus.MIE` clear the sources
    // wake `wfi` without ever trapping.
    unsafe {
        riscv::interrupt::enable_interrupt(Interrupt::MachineExternal);
        riscv::interrupt::enable_interrupt(Interrupt::MachineTimer);
    }
}

/// Takes the PLIC's pending source, if any: the caller quiets the device, then
/// [`complete`]s it, after which the PLIC forwards that source again.
pub fn claim() -> Option<u32> {
    let irq = PLIC_CLAIM.read();
    (irq != 0).then_some(irq)
}

/// Ends the handling of a source [`claim`] returned.
pub fn complete(irq: u32) {
    PLIC_CLAIM.write(irq);
}

/// Sleeps until an interrupt is pending, unless `busy` says there is work.
pub fn sleep_unless(busy: impl FnOnce() -> bool) {
    if !busy() {
        riscv::asm::wfi();
    }
}
