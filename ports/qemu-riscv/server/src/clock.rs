//! The clock and the wake-up timer: the CLINT's 64-bit `mtime`, counting at 10 MHz from
//! reset, and hart 0's `mtimecmp`, which raises the machine timer interrupt once `mtime`
//! reaches it.
//!
//! No periodic tick: before sleeping, the main loop sets `mtimecmp` to the next deadline
//! smoltcp or the core asked for, so an idle firmware sleeps until then.

use smoltcp::time::Instant;

use crate::board::{MTIMECMP_HI, MTIMECMP_LO, MTIME_HI, MTIME_LO, TIMEBASE_HZ};

const TICKS_PER_MICRO: u64 = TIMEBASE_HZ / 1_000_000;

/// `mtime`, read as two words.
fn ticks() -> u64 {
    loop {
        let hi = MTIME_HI.read();
        let lo = MTIME_LO.read();
        // The low word wrapped between the two reads: read again.
        if MTIME_HI.read() == hi {
            return (u64::from(hi) << 32) | u64::from(lo);
        }
    }
}

/// Microseconds since reset.
pub fn micros() -> u64 {
    ticks() / TICKS_PER_MICRO
}

/// Now, as smoltcp counts time.
pub fn now() -> Instant {
    Instant::from_micros(i64::try_from(micros()).unwrap_or(i64::MAX))
}

/// Raises the timer interrupt at `at`, or never with `None`; an `at` already past raises
/// it at once.
pub fn wake_at(at: Option<Instant>) {
    let when = match at {
        Some(at) => u64::try_from(at.total_micros())
            .unwrap_or(0)
            .saturating_mul(TICKS_PER_MICRO),
        None => u64::MAX,
    };
    // Two 32-bit writes: park the low word at its maximum first, so that no value between
    // the old compare and the new one can be earlier than both and fire by mistake.
    MTIMECMP_LO.write(u32::MAX);
    MTIMECMP_HI.write((when >> 32) as u32);
    MTIMECMP_LO.write(when as u32);
}
