//! The select backend's wait policy, in one place: which descriptors the next `select`
//! watches, and for how long. Pure: it sees what the last call observed (how many were
//! ready, how long the call took, whether a cold connection woke) and returns the next
//! call; it never touches a socket, so every rule below is a unit test.
//!
//! A round is one or more calls, each a [`Wait`]:
//! - with few connections, one `select` on everything ([`Wait::All`]): as cheap as anything
//!   cleverer;
//! - otherwise first a *look* ([`Wait::Look`]): a `select` that does not wait, on the hot
//!   connections (`heat.rs`) plus a window of the others (`sweep.rs`), after a batching nap
//!   if the last look found the loop busy but sparse (`batch.rs`);
//! - a look that found something ends the round: the loop serves it;
//! - a look that found nothing is followed by a wait on everything if nothing is hot (an
//!   idle server answers at once), else by a wait on the hot connections alone, for at most
//!   the sweep's patience, so that the next look's window comes in time ([`Wait::Hot`]).
//!
//! The rules it holds, each a test below: no connection goes unwatched for longer than a
//! sweep pass (at most 100 ms) plus two waits on the hot connections and two looks (an
//! eighth of a pass and one `select` each); an idle server waits on
//! everything, so it answers any connection at once; a nap is never taken when the last
//! look found nothing ready, so it never delays an idle server.

mod batch;
mod heat;
mod sweep;

use std::ops::Range;
use std::time::{Duration, Instant};

use batch::Batching;
use heat::Heat;
use sweep::Sweep;

/// One `select` of a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Every descriptor, for at most this long (`None`: until one is ready).
    All(Option<Duration>),
    /// A `select` that does not wait, on the hot descriptors and the sweep's next window,
    /// after a nap of this long if any.
    Look(Option<Duration>),
    /// The hot descriptors alone, for at most this long.
    Hot(Option<Duration>),
}

/// What a round starts from: the loop's connections and its deadline.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Round {
    /// Open connections.
    pub(crate) conns: usize,
    /// Of which hot: in every `select` of the round.
    pub(crate) hot: usize,
    /// The loop's next deadline (the core's timers, a reclaim), as a wait.
    pub(crate) timeout: Option<Duration>,
}

/// What one `select` observed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen {
    /// Descriptors ready.
    pub(crate) ready: usize,
    /// Connections of the sweep's window it watched (a look only).
    pub(crate) window: usize,
    /// When it returned.
    pub(crate) at: Instant,
    /// How long the call took.
    pub(crate) took: Duration,
}

/// The policy's state: the heat window, the sweep's place, the batching's last look.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Planner {
    heat: Heat,
    sweep: Sweep,
    batching: Batching,
    /// The loop's start: the heat counts in milliseconds from it, as the core does.
    epoch: Instant,
}

impl Planner {
    /// A planner whose naps last `nap` (zero: never), starting at `epoch`.
    pub(crate) fn new(nap: Duration, epoch: Instant) -> Self {
        Planner {
            heat: Heat::new(echoloop_core::Instant::from_millis(0)),
            sweep: Sweep::new(epoch),
            batching: Batching::new(nap),
            epoch,
        }
    }

    /// Connections that moved bytes within this long are hot.
    pub(crate) fn hot_window(&self) -> echoloop_core::Duration {
        self.heat.window()
    }

    /// The first `select` of a round.
    pub(crate) fn begin(&self, round: Round) -> Wait {
        if !self.batching.looks(round.conns) {
            return Wait::All(round.timeout);
        }
        let nap = self
            .batching
            .nap(round.hot)
            .map(|nap| round.timeout.map_or(nap, |t| nap.min(t)));
        Wait::Look(nap)
    }

    /// The descriptors of `0..fds` a look at `at` watches besides the hot ones.
    pub(crate) fn window(&mut self, round: Round, at: Instant, fds: usize) -> Range<usize> {
        if round.hot == round.conns {
            // Nothing cold to sweep: the pass starts over once some connection goes cold.
            self.sweep.restart(at);
        }
        self.sweep.window(at, fds)
    }

    /// What `wait` observed; the next `select` of the round, or `None`: serve what is ready.
    pub(crate) fn next(&mut self, round: Round, wait: Wait, seen: Seen) -> Option<Wait> {
        match wait {
            Wait::All(_) => {
                // Everything was watched: the sweep's pass begins again.
                self.sweep.restart(seen.at);
                None
            }
            Wait::Hot(_) => None,
            Wait::Look(_) => {
                let watched = round.hot + seen.window;
                self.sweep.looked(seen.at, seen.window, watched, seen.took);
                self.batching.looked(seen.ready);
                self.heat
                    .looked(self.core_time(seen.at), round.hot, seen.ready);
                if seen.ready > 0 {
                    None
                } else if round.hot == 0 {
                    // Nothing busy: wait on everything, so any connection is answered at once.
                    Some(Wait::All(round.timeout))
                } else if round.hot == round.conns {
                    Some(Wait::Hot(round.timeout))
                } else {
                    // Busy connections are only waiting on their peers: wait for them, and
                    // for the cold ones at the next window, rather than watch every idle one.
                    let patience = self.sweep.patience();
                    Some(Wait::Hot(Some(
                        round.timeout.map_or(patience, |t| t.min(patience)),
                    )))
                }
            }
        }
    }

    /// A connection that was not hot, and has spoken before, turned out ready at `at`.
    pub(crate) fn woke_cold(&mut self, at: Instant) {
        self.heat.woke_cold(self.core_time(at));
    }

    fn core_time(&self, at: Instant) -> echoloop_core::Instant {
        let ms = at.saturating_duration_since(self.epoch).as_millis();
        echoloop_core::Instant::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAP: Duration = Duration::from_micros(40);

    /// The most a look costs in these tests: 10,000 cold sockets out of the cache.
    const LOOK: Duration = Duration::from_millis(3);

    /// The longest a connection goes unwatched while the loop is busy: a pass of the
    /// sweep, and twice a wait on the hot connections (an eighth of the longest pass) and a
    /// look: once before the last window of a pass reaches the end, once before the first
    /// window of the next pass covers the first descriptors.
    const UNWATCHED_AT_MOST: Duration = Duration::from_micros(100_000 + 2 * (12_500 + 3_000));
    const MS: Duration = Duration::from_millis(1);

    fn seen(ready: usize, window: usize, at: Instant) -> Seen {
        Seen {
            ready,
            window,
            at,
            took: Duration::from_micros(50),
        }
    }

    #[test]
    fn few_connections_wait_on_everything_for_the_loops_deadline() {
        let p = Planner::new(NAP, Instant::now());
        for timeout in [None, Some(MS)] {
            let round = Round {
                conns: 8,
                hot: 8,
                timeout,
            };
            assert_eq!(p.begin(round), Wait::All(timeout));
        }
    }

    #[test]
    fn an_idle_server_answers_at_once() {
        let t0 = Instant::now();
        let mut p = Planner::new(NAP, t0);
        let round = Round {
            conns: 10_000,
            hot: 0,
            timeout: None,
        };
        let first = p.begin(round);
        assert_eq!(first, Wait::Look(None), "no nap before anything was seen");
        let _ = p.window(round, t0, 10_010);
        let then = p.next(round, first, seen(0, 100, t0));
        assert_eq!(
            then,
            Some(Wait::All(None)),
            "nothing hot, nothing ready: block on every descriptor, no timeout"
        );
        assert_eq!(p.next(round, Wait::All(None), seen(1, 0, t0 + MS)), None);
    }

    #[test]
    fn a_nap_never_delays_an_idle_server() {
        let t0 = Instant::now();
        let mut p = Planner::new(NAP, t0);
        let busy = Round {
            conns: 1_000,
            hot: 100,
            timeout: None,
        };
        let _ = p.window(busy, t0, 1_010);
        assert_eq!(p.next(busy, Wait::Look(None), seen(3, 10, t0)), None);
        assert_eq!(p.begin(busy), Wait::Look(Some(NAP)), "busy and sparse: nap");
        // The look after the nap finds nothing: the loop went idle.
        let _ = p.window(busy, t0, 1_010);
        assert!(matches!(
            p.next(busy, Wait::Look(Some(NAP)), seen(0, 10, t0)),
            Some(Wait::Hot(_))
        ));
        for hot in [0, 100] {
            let round = Round { hot, ..busy };
            assert_eq!(
                p.begin(round),
                Wait::Look(None),
                "{hot} hot: no nap when idle"
            );
        }
        // Nor past the loop's own deadline.
        let _ = p.window(busy, t0, 1_010);
        let _ = p.next(busy, Wait::Look(None), seen(3, 10, t0));
        let soon = Round {
            timeout: Some(Duration::from_micros(5)),
            ..busy
        };
        assert_eq!(p.begin(soon), Wait::Look(Some(Duration::from_micros(5))));
    }

    #[test]
    fn a_busy_loop_waits_on_the_hot_ones_no_longer_than_the_sweeps_patience() {
        let t0 = Instant::now();
        let mut p = Planner::new(NAP, t0);
        let round = Round {
            conns: 1_000,
            hot: 10,
            timeout: None,
        };
        let _ = p.window(round, t0, 1_010);
        match p.next(round, Wait::Look(None), seen(0, 10, t0)) {
            Some(Wait::Hot(Some(t))) => assert!(t <= sweep::LONGEST, "{t:?}"),
            other => panic!("{other:?}"),
        }
        let all_hot = Round {
            hot: 1_000,
            ..round
        };
        let _ = p.window(all_hot, t0, 1_010);
        assert_eq!(
            p.next(all_hot, Wait::Look(None), seen(0, 0, t0)),
            Some(Wait::Hot(None)),
            "every connection is hot: nothing to sweep, no reason to wake"
        );
    }

    /// Whatever the looks find and cost, and however the loop goes between busy and quiet,
    /// every descriptor is in some `select` within [`UNWATCHED_AT_MOST`].
    #[test]
    fn no_connection_waits_longer_than_the_sweeps_bound() {
        let fds = 1_010;
        let t0 = Instant::now();
        let mut p = Planner::new(NAP, t0);
        let mut last_seen = vec![t0; fds];
        let mut now = t0;
        let mut worst = Duration::ZERO;
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        for i in 0..5_000u32 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let round = Round {
                conns: 1_000,
                hot: 1 + (rng % 30) as usize,
                timeout: None,
            };
            let mut wait = p.begin(round);
            loop {
                let took = LOOK.mul_f64((rng % 1_000) as f64 / 1_000.0);
                let (window, ready) = match wait {
                    Wait::All(_) => {
                        now += took;
                        last_seen.fill(now);
                        (0, 1)
                    }
                    Wait::Look(nap) => {
                        now += nap.unwrap_or_default();
                        let window = p.window(round, now, fds);
                        now += took;
                        for seen in &mut last_seen[window.clone()] {
                            *seen = now;
                        }
                        // Busy most of the time; now and then quiet for a while.
                        let ready = if i % 500 < 450 { (rng % 5) as usize } else { 0 };
                        (window.len(), ready)
                    }
                    Wait::Hot(timeout) => {
                        now += timeout.expect("a busy loop waits with a timeout");
                        (0, 0)
                    }
                };
                for &seen in &last_seen {
                    worst = worst.max(now.saturating_duration_since(seen));
                }
                let seen = Seen {
                    ready,
                    window,
                    at: now,
                    took,
                };
                match p.next(round, wait, seen) {
                    Some(next) => wait = next,
                    None => break,
                }
            }
        }
        assert_eq!(sweep::LONGEST, Duration::from_millis(100));
        assert!(
            worst <= UNWATCHED_AT_MOST,
            "a descriptor went unwatched for {worst:?}"
        );
        eprintln!("longest unwatched: {worst:?}");
        assert!(
            worst >= sweep::SHORTEST,
            "the test never exercised the sweep"
        );
    }

    #[test]
    fn a_cold_connection_waking_widens_the_hot_window() {
        let t0 = Instant::now();
        let mut p = Planner::new(NAP, t0);
        let round = Round {
            conns: 10_000,
            hot: 10_000,
            timeout: None,
        };
        for _ in 0..20 {
            let _ = p.window(round, t0, 10_010);
            let _ = p.next(round, Wait::Look(None), seen(1, 0, t0));
        }
        let cut = p.hot_window();
        p.woke_cold(t0);
        assert_eq!(p.hot_window().as_millis(), cut.as_millis() * 2);
    }
}
