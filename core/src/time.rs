//! Time as the core sees it: plain milliseconds handed in by the driver.
//!
//! The core never reads a clock (it would not be `no_std`-portable, and it would make the
//! state machine impossible to test deterministically). Like smoltcp's `time` module, these
//! are small newtypes of our own rather than `core::time::Duration`, so that deadlines are
//! one `u64` and all arithmetic saturates instead of panicking on overflow.

use core::fmt;

/// A point in time, in milliseconds since an epoch chosen by the driver.
///
/// Only differences matter; the driver must use a monotonic clock. A clock that goes
/// backwards is tolerated (elapsed time is taken as zero), never a panic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant {
    millis: u64,
}

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant { millis: 0 };

    /// An instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Instant { millis }
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    /// `self + d`, saturating at the far future.
    pub const fn saturating_add(self, d: Duration) -> Instant {
        Instant::from_millis(self.millis.saturating_add(d.millis))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.millis.saturating_sub(earlier.millis))
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.millis)
    }
}

/// A span of time in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Duration {
    millis: u64,
}

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration { millis: 0 };

    /// A span of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Duration { millis }
    }

    /// A span of `secs` seconds, saturating.
    pub const fn from_secs(secs: u64) -> Self {
        Duration::from_millis(secs.saturating_mul(1000))
    }

    /// The span in milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(u64::MAX - 1);
        assert_eq!(
            t.saturating_add(Duration::from_secs(5)).as_millis(),
            u64::MAX
        );
        assert_eq!(Duration::from_secs(u64::MAX).as_millis(), u64::MAX);
    }

    #[test]
    fn backwards_clock_is_zero_elapsed() {
        let a = Instant::from_millis(10);
        let b = Instant::from_millis(4);
        assert_eq!(b.saturating_since(a), Duration::ZERO);
        assert_eq!(a.saturating_since(b), Duration::from_millis(6));
    }

    #[test]
    fn secs_are_thousand_millis() {
        assert_eq!(Duration::from_secs(3).as_millis(), 3000);
        assert!(Instant::from_millis(1) > Instant::ZERO);
    }
}
