//! A simulated monotonic clock, as in smoltcp's loopback example.
//!
//! Over a loopback device nothing happens between two polls, so there is nothing to wait
//! for in real time: each round the main loop advances the clock straight to the next
//! deadline smoltcp or the driver asked for (or by a millisecond when none). Timers
//! (retransmissions, delayed ACKs, the core's idle timeout) behave as on a real clock,
//! and a run takes the same simulated time on any host. A board would read SysTick or a
//! hardware timer here instead.

use core::sync::atomic::{AtomicU32, Ordering};

use smoltcp::time::{Duration, Instant};

/// The time for defmt's timestamps: the clock is not reachable from there otherwise.
static MILLIS: AtomicU32 = AtomicU32::new(0);

defmt::timestamp!("{=u32:ms}", MILLIS.load(Ordering::Relaxed));

/// The simulated time.
pub struct Clock {
    now: Instant,
}

impl Clock {
    /// Time zero.
    pub const fn new() -> Self {
        Clock { now: Instant::ZERO }
    }

    /// Now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Lets `d` pass.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        let millis = u32::try_from(self.now.total_millis()).unwrap_or(u32::MAX);
        MILLIS.store(millis, Ordering::Relaxed);
    }
}
