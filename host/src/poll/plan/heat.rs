//! Heat: which connections every `select` watches.
//!
//! A connection that moved bytes recently is *hot*: every `select` watches it, so its next
//! message is answered in the same round. The rest are swept a window at a time
//! (`sweep.rs`). "Recently" is not a constant. Watching a socket costs the kernel a look
//! on every call whether or not it is ready, so the hot set pays only while a fair share
//! of it is ready: after a burst of new connections that each echoed once and went quiet
//! (10,000 of them), a fixed second of heat had every call visit all 10,000 for that
//! second to find the hundred busy ones ready, about a millisecond per call.
//!
//! So the window is halved by each look that finds fewer than one in [`SPARSE`] of the
//! hot connections ready, down to [`SHORTEST`]. It grows back by the time that passes
//! between looks, up to [`LONGEST`], and no faster: the cut-off moment stays where the
//! last halving put it, so connections that were quiet then stay cold until they speak,
//! while every connection that speaks since is hot for as long as before. A busy
//! connection stays hot however short the window, since it was served moments ago. With at
//! most [`FEW`] hot connections a look is cheap next to the work it finds, and the window
//! only grows.
//!
//! The cut can be wrong: a thousand peers that each speak five times a second are few in
//! any one look, yet every one of them is about to speak. A cold connection that turns
//! out ready, having spoken before, says so. It doubles the window at once and keeps it
//! from shrinking for [`HOLD`], so such peers stay hot and are answered in the round their
//! bytes arrive, paying the looks' cost, instead of waiting for the sweep every time
//! (1,000 peers each sending 64 B every 200 ms: p50 0.19 ms either way; without the hold,
//! 3.5 ms, for a fifth of the server's CPU). A connection's first message does not count:
//! a peer may open its connection long before it speaks, and the load generator opens all
//! of its connections before any of them speaks.

use echoloop_core::{Duration, Instant};

/// The longest window: longer than a busy peer's gap between messages even when the
/// server is saturated (10,000 ping-pong connections have round trips of about 100 ms:
/// with 100 ms here half of them went cold, p99 200 ms against 149 ms at 1 s), short next
/// to an idle connection's life. Such a saturated loop finds thousands ready in each look,
/// so its window stays here.
pub(crate) const LONGEST: Duration = Duration::from_millis(1000);

/// The shortest window: a few of the core's millisecond ticks, longer than a round trip
/// on a busy loop (under a millisecond at 100 busy connections).
pub(crate) const SHORTEST: Duration = Duration::from_millis(8);

/// The window shrinks while fewer than one in this many hot connections is ready.
pub(crate) const SPARSE: usize = 8;

/// With at most this many hot connections the window never shrinks: a look at them costs
/// a few microseconds.
pub(crate) const FEW: usize = 64;

/// After a cold connection turned out ready, the window does not shrink for this long:
/// peers with a pace seldom stop all at once, and each time the hold runs out while they
/// go on, some of their messages wait for the sweep until the window is back.
pub(crate) const HOLD: Duration = Duration::from_secs(60);

/// How long a connection stays hot after moving bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heat {
    window: Duration,
    /// When the last look was.
    looked: Instant,
    /// When a cold connection last turned out ready, if ever.
    woke: Option<Instant>,
}

impl Heat {
    /// The longest window: until looks show otherwise, everything recent is hot.
    pub(crate) fn new(now: Instant) -> Self {
        Heat {
            window: LONGEST,
            looked: now,
            woke: None,
        }
    }

    /// Connections active within this long are hot.
    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    /// A look at `now` at `hot` hot connections (and whatever else it watched) found
    /// `ready` descriptors ready.
    pub(crate) fn looked(&mut self, now: Instant, hot: usize, ready: usize) {
        let ms = self.window.as_millis();
        let held = self
            .woke
            .is_some_and(|woke| now.saturating_since(woke) < HOLD);
        let ms = if hot > FEW && ready.saturating_mul(SPARSE) < hot && !held {
            (ms / 2).max(SHORTEST.as_millis())
        } else {
            let passed = now.saturating_since(self.looked).as_millis();
            ms.saturating_add(passed).min(LONGEST.as_millis())
        };
        self.window = Duration::from_millis(ms);
        self.looked = now;
    }

    /// A connection that was not hot turned out ready at `now`: the window was cut too
    /// short for its peer's pace.
    pub(crate) fn woke_cold(&mut self, now: Instant) {
        let ms = self.window.as_millis().saturating_mul(2);
        self.window = Duration::from_millis(ms.min(LONGEST.as_millis()));
        self.woke = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn sparse_looks_halve_the_window_down_to_the_shortest() {
        let mut heat = Heat::new(at(0));
        assert_eq!(heat.window(), LONGEST);
        heat.looked(at(0), 10_000, 100);
        assert_eq!(heat.window().as_millis(), 500);
        for _ in 0..20 {
            heat.looked(at(0), 10_000, 100);
        }
        assert_eq!(heat.window(), SHORTEST);
    }

    #[test]
    fn it_grows_back_by_the_time_passed_so_the_cut_off_stays() {
        let mut heat = Heat::new(at(0));
        for _ in 0..20 {
            heat.looked(at(5_000), 1_000, 0);
        }
        let cut_off = 5_000 - SHORTEST.as_millis();
        heat.looked(at(5_003), 1_000, 125);
        assert_eq!(
            heat.window().as_millis(),
            SHORTEST.as_millis() + 3,
            "1 in 8 is not sparse"
        );
        heat.looked(at(5_100), 1_000, 500);
        assert_eq!(5_100 - heat.window().as_millis(), cut_off);
        heat.looked(at(9_000), 1_000, 500);
        assert_eq!(heat.window(), LONGEST);
    }

    #[test]
    fn a_cold_connection_that_speaks_doubles_it_and_holds_it() {
        let mut heat = Heat::new(at(0));
        for _ in 0..20 {
            heat.looked(at(2_000), 1_000, 0);
        }
        heat.woke_cold(at(2_000));
        assert_eq!(heat.window().as_millis(), SHORTEST.as_millis() * 2);
        heat.looked(at(2_000), 1_000, 0);
        assert_eq!(heat.window().as_millis(), SHORTEST.as_millis() * 2, "held");
        let later = 2_000 + HOLD.as_millis();
        heat.looked(at(later - 1), 1_000, 0);
        assert_eq!(heat.window(), LONGEST, "held, and growing with time");
        heat.looked(at(later), 1_000, 0);
        assert_eq!(
            heat.window().as_millis(),
            LONGEST.as_millis() / 2,
            "the hold is over"
        );
    }

    #[test]
    fn a_few_hot_connections_never_shrink_it() {
        let mut heat = Heat::new(at(0));
        heat.looked(at(0), FEW, 0);
        assert_eq!(heat.window(), LONGEST);
        heat.looked(at(0), FEW + 1, 0);
        assert!(heat.window() < LONGEST);
    }
}
