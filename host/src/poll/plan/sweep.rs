//! The sweep: watching thousands of idle connections a slice at a time.
//!
//! While the loop is busy its `select` calls watch the hot connections (`heat.rs`) and a
//! *window* of descriptor numbers that moves on with time, so that every
//! descriptor is watched once per *pass*. Watching every idle socket in one call instead
//! would hold the busy ones for that call's whole cost: under load the kernel takes 2–3 ms
//! to look at 10,000 sockets whose structures have left the cache, and each such call put
//! a 3 ms step in the busy connections' latency. Spread over the rounds of a pass, the
//! same work costs each round a few dozen microseconds.
//!
//! A pass lasts [`SPACING`] times what its windows cost the kernel, within
//! [`SHORTEST`]..=[`LONGEST`]: watching the idle connections takes at most about a
//! twentieth of a busy loop, and the first message on a connection idle for a while waits
//! at most about one pass.

use std::ops::Range;
use std::time::{Duration, Instant};

/// The shortest pass, however cheap: a handful of idle connections are watched at least
/// this often.
pub(crate) const SHORTEST: Duration = Duration::from_millis(5);

/// A pass lasts this many times what its windows cost, so the idle connections take at
/// most about 1/20 of a busy loop's time.
pub(crate) const SPACING: u32 = 19;

/// The longest pass, whatever it costs: the most a first message on a connection idle
/// for a while waits (plus one wait, see [`Sweep::patience`]) when the loop is busy.
pub(crate) const LONGEST: Duration = Duration::from_millis(100);

/// Where the sweep is in its pass, and what the pass costs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sweep {
    /// The first descriptor of the next window.
    next: usize,
    /// When this pass began.
    began: Instant,
    /// How long this pass lasts.
    period: Duration,
    /// What this pass's windows have cost so far.
    cost: Duration,
    /// The last window reached the end: the next [`looked`](Sweep::looked) ends the pass.
    ending: bool,
}

impl Sweep {
    /// A sweep whose first pass begins at `now` and is as short as a pass may be.
    pub(crate) fn new(now: Instant) -> Self {
        Sweep {
            next: 0,
            began: now,
            period: SHORTEST,
            cost: Duration::ZERO,
            ending: false,
        }
    }

    /// The descriptors to watch in a `select` at `now`, out of `0..len`: from where the
    /// last window ended to as far into `0..len` as `now` is into the pass.
    pub(crate) fn window(&mut self, now: Instant, len: usize) -> Range<usize> {
        let elapsed = now.saturating_duration_since(self.began);
        let end = if elapsed >= self.period {
            len
        } else {
            let share = elapsed.as_nanos() * len as u128 / self.period.as_nanos().max(1);
            // Never back: a clock that steps back leaves the window empty.
            usize::try_from(share)
                .unwrap_or(len)
                .max(self.next)
                .min(len)
        };
        let start = self.next.min(end);
        self.next = end;
        self.ending = end >= len;
        start..end
    }

    /// The `select` with the last window took `took` at `now`, watching `window`
    /// descriptors of the sweep among `watched` in all; the window's share of it is
    /// charged to the pass. The pass ends here if its last window reached the end.
    pub(crate) fn looked(&mut self, now: Instant, window: usize, watched: usize, took: Duration) {
        if watched > 0 {
            let share = took.as_nanos() * window as u128 / watched as u128;
            self.cost += Duration::from_nanos(u64::try_from(share).unwrap_or(u64::MAX));
        }
        if self.ending {
            self.period = self.cost.saturating_mul(SPACING).clamp(SHORTEST, LONGEST);
            self.restart(now);
        }
    }

    /// Everything was just watched (a `select` over every descriptor, or there is no idle
    /// connection to sweep): the next pass begins at `now`.
    pub(crate) fn restart(&mut self, now: Instant) {
        self.next = 0;
        self.began = now;
        self.cost = Duration::ZERO;
        self.ending = false;
    }

    /// How long the loop may wait on the hot connections alone: an eighth of a pass, so
    /// the window after it covers an eighth of the descriptors, but at least the
    /// shortest pass: a quiet loop with a few idle connections wakes 200 times a second
    /// at most, not 1,600.
    pub(crate) fn patience(&self) -> Duration {
        (self.period / 8).max(SHORTEST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn windows_cover_every_descriptor_once_per_pass_in_step_with_time() {
        let t0 = Instant::now();
        let mut sweep = Sweep::new(t0);
        assert_eq!(sweep.period, SHORTEST);
        let mut seen = Vec::new();
        for ms in 1..=5 {
            let window = sweep.window(t0 + ms * MS, 1_000);
            assert_eq!(window.len(), 200, "a fifth of the pass, a fifth of the fds");
            seen.extend(window);
            sweep.looked(t0 + ms * MS, 200, 300, 30 * Duration::from_micros(1));
        }
        assert_eq!(
            seen,
            (0..1_000).collect::<Vec<_>>(),
            "each fd once, in order"
        );
        // Five windows cost 5 × 30 × 200/300 = 100 µs: the next pass lasts 19 times that,
        // which is less than the shortest.
        assert_eq!(sweep.period, SHORTEST);
        assert_eq!(sweep.window(t0 + 5 * MS, 1_000), 0..0, "a new pass began");
    }

    #[test]
    fn a_pass_lasts_nineteen_times_its_cost_within_bounds() {
        let pass = |cost: Duration| {
            let t0 = Instant::now();
            let mut sweep = Sweep::new(t0);
            let _ = sweep.window(t0 + SHORTEST, 10);
            sweep.looked(t0 + SHORTEST, 10, 10, cost);
            sweep.period
        };
        assert_eq!(pass(Duration::from_micros(10)), SHORTEST, "a cheap pass");
        assert_eq!(pass(2 * MS), 38 * MS, "19 times its cost");
        assert_eq!(pass(20 * MS), LONGEST, "never longer than the longest");
    }

    #[test]
    fn a_late_window_takes_the_rest_and_a_restart_begins_again() {
        let t0 = Instant::now();
        let mut sweep = Sweep::new(t0);
        assert_eq!(sweep.window(t0 + MS, 100), 0..20);
        assert_eq!(
            sweep.window(t0 + 60 * MS, 100),
            20..100,
            "late: all the rest"
        );
        assert!(sweep.ending);
        sweep.restart(t0 + 60 * MS);
        assert!(!sweep.ending);
        assert_eq!(sweep.window(t0 + 61 * MS, 100), 0..20);
        assert_eq!(sweep.patience(), SHORTEST, "never under the shortest pass");
        sweep.period = LONGEST;
        assert_eq!(sweep.patience(), LONGEST / 8, "an eighth of a long pass");
    }

    #[test]
    fn a_clock_that_steps_back_or_a_table_that_shrinks_gives_empty_windows() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let mut sweep = Sweep::new(t0);
        assert_eq!(sweep.window(t0 + 2 * MS, 100), 0..40);
        assert_eq!(sweep.window(t0 - MS, 100), 40..40, "the clock went back");
        assert_eq!(
            sweep.window(t0 + 3 * MS, 10),
            10..10,
            "fewer descriptors now"
        );
    }
}
