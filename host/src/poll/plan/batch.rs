//! Batching: letting readiness gather when the loop is busy but few sockets are ready.
//!
//! `select` costs the kernel a look at every watched socket on every call (about 80 ns
//! each on the benchmark machine, more when it must also queue a waiter on each), where
//! epoll pays per ready socket. Under load that is the one cost a select loop has and an
//! epoll loop has not, and it is paid per call: a loop that goes back to `select` after
//! serving one connection of fifty pays for fifty. So when the loop is *busy* (its last
//! look found sockets already ready) but that look found only a few of many, it naps
//! briefly first, and the next scan serves several sockets instead of one.
//!
//! It never naps when idle: a look that finds nothing ready is followed by a blocking
//! `select`, which wakes at the first byte, so a lone client among idle ones is answered
//! at once. The nap is bounded (`--batch-wait`, 40 µs by default; 0: never),
//! and it is only ever taken while events are already queueing, where it is small next
//! to the queueing delay itself.

use std::time::Duration;

/// Batching needs more connections than this, and naps while fewer than one in this
/// many was ready: below it a scan is cheap next to the work it finds.
const SPARSE: usize = 8;

/// The nap policy: what the last look found, and how long a nap may be.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Batching {
    wait: Duration,
    busy: bool,
    ready: usize,
}

impl Batching {
    /// Naps of `wait` (zero: never look first, never nap).
    pub(crate) fn new(wait: Duration) -> Self {
        Batching {
            wait,
            busy: false,
            ready: 0,
        }
    }

    /// Whether to look (a `select` that does not wait) before waiting: with more than
    /// [`SPARSE`] connections, whatever the nap. A look is what a nap follows, and what
    /// lets a round watch only the busy connections and a window of the idle ones (the
    /// driver's sweep); with fewer, one `select` on everything is as cheap.
    pub(crate) fn looks(&self, conns: usize) -> bool {
        conns > SPARSE
    }

    /// How long to nap before the next look: the whole wait when the last look found
    /// the loop busy with fewer than one in [`SPARSE`] of `conns` ready, else none.
    pub(crate) fn nap(&self, conns: usize) -> Option<Duration> {
        let sparse = self.ready.saturating_mul(SPARSE) < conns;
        let naps = !self.wait.is_zero() && self.looks(conns);
        (naps && self.busy && sparse).then_some(self.wait)
    }

    /// A look found `ready` descriptors ready (0: the loop goes on to wait for one).
    pub(crate) fn looked(&mut self, ready: usize) {
        self.busy = ready > 0;
        self.ready = ready;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_micros(20);

    #[test]
    fn naps_only_when_busy_and_sparse() {
        let mut b = Batching::new(WAIT);
        assert_eq!(b.nap(50), None, "nothing looked at yet: not busy");
        b.looked(1);
        assert_eq!(b.nap(50), Some(WAIT), "busy, 1 of 50 ready");
        b.looked(6);
        assert_eq!(b.nap(50), Some(WAIT), "6 of 50 is fewer than one in eight");
        b.looked(7);
        assert_eq!(b.nap(50), None, "7 of 50 is not");
        b.looked(0);
        assert_eq!(
            b.nap(50),
            None,
            "idle: the next byte must be answered at once"
        );
    }

    #[test]
    fn few_connections_are_never_batched() {
        let mut b = Batching::new(WAIT);
        b.looked(1);
        assert!(!b.looks(SPARSE));
        assert_eq!(b.nap(SPARSE), None);
        assert!(b.looks(SPARSE + 1));
        assert_eq!(b.nap(SPARSE + 1), Some(WAIT));
    }

    #[test]
    fn a_zero_wait_never_naps_but_still_looks() {
        let mut b = Batching::new(Duration::ZERO);
        b.looked(1);
        assert!(
            b.looks(1000),
            "the sweep of idle connections needs the look"
        );
        assert_eq!(b.nap(1000), None);
    }
}
