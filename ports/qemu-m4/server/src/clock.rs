//! A real monotonic clock: SysTick interrupts 100 times a second, and the counter's
//! current value gives the microseconds within the tick.
//!
//! The tick is also what wakes the CPU from `wfi` to run smoltcp's timers: an idle
//! firmware wakes 100 times a second, does a few microseconds of work and sleeps again.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;
use smoltcp::time::Instant;

/// The core clock of QEMU's `mps2-an386`, which clocks SysTick.
const CPU_HZ: u32 = 25_000_000;
/// Ticks per second.
const TICK_HZ: u32 = 100;
/// SysTick counts down from this to 0, then reloads: one tick.
const RELOAD: u32 = CPU_HZ / TICK_HZ - 1;
const MICROS_PER_TICK: u64 = 1_000_000 / TICK_HZ as u64;

/// Ticks since start; only the SysTick handler writes it.
static TICKS: AtomicU32 = AtomicU32::new(0);

defmt::timestamp!("{=u64:us}", micros_raw());

#[exception]
fn SysTick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// Microseconds since start, as the counter reads now.
fn micros_raw() -> u64 {
    loop {
        let before = TICKS.load(Ordering::Relaxed);
        let counter = SYST::get_current();
        // A tick between the two reads would pair the old count with the new counter.
        if TICKS.load(Ordering::Relaxed) == before {
            let within = u64::from(RELOAD.saturating_sub(counter)) / u64::from(CPU_HZ / 1_000_000);
            return u64::from(before) * MICROS_PER_TICK + within;
        }
    }
}

/// The clock, once SysTick runs.
pub struct Clock {
    last: u64,
}

impl Clock {
    /// Starts SysTick on the core clock, interrupting every tick.
    pub fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Clock { last: 0 }
    }

    /// Now, never earlier than the last reading: a counter that wrapped an instant before
    /// its interrupt was taken must not move time back.
    pub fn now(&mut self) -> Instant {
        self.last = self.last.max(micros_raw());
        Instant::from_micros(i64::try_from(self.last).unwrap_or(i64::MAX))
    }
}
