//! A soak worker: one thread owning a share of the connections, all non-blocking, waited
//! on with one `poll` per round, so a thousand sockets need a handful of threads.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echoloop_tests::{sock, Rng};

use crate::conn::{Conn, Outcome};
use crate::report::Tally;

/// What every worker shares with the main thread.
#[derive(Default)]
pub struct Shared {
    /// Set when the soak's time is up: open nothing more, finish what is open.
    pub finish: AtomicBool,
    /// Connections open across workers.
    pub open: AtomicUsize,
    /// Set by a worker that reached its target once.
    pub ramped: AtomicUsize,
}

/// One worker's settings.
pub struct Plan {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// Connections this worker keeps open.
    pub target: usize,
    /// Once ramped up, one new connection per this interval (while below target).
    pub arrival: Duration,
    /// How long the closing phase may take before unfinished connections fail.
    pub drain_limit: Duration,
    /// Seed of this worker's choices.
    pub seed: u64,
}

/// Runs a worker until the soak ends and every connection finished.
pub fn run(plan: Plan, shared: Arc<Shared>) -> Tally {
    let mut tally = Tally::default();
    let mut rng = Rng::new(plan.seed);
    let mut conns: Vec<Conn> = Vec::with_capacity(plan.target);
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(plan.target);
    let (mut buf, mut want) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    let mut ramped = false;
    let mut next_arrival = Instant::now();
    let mut finish_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if finish_at.is_none() && shared.finish.load(Ordering::Relaxed) {
            finish_at = Some(now);
            let mut k = 0;
            while k < conns.len() {
                let end = conns[k].finish(now, &mut buf);
                k += settle(&mut conns, k, end, &mut tally, &shared);
            }
        }
        match finish_at {
            None => arrive(
                &plan,
                &mut conns,
                &mut rng,
                &mut tally,
                &shared,
                &mut ramped,
                &mut next_arrival,
            ),
            Some(_) if conns.is_empty() => return tally,
            Some(t) if now.duration_since(t) > plan.drain_limit => {
                for conn in conns.drain(..) {
                    let what = format!(
                        "{:?} connection did not finish in {:?}",
                        conn.kind, plan.drain_limit
                    );
                    tally.end(&conn, Outcome::Failed(what));
                    shared.open.fetch_sub(1, Ordering::Relaxed);
                }
                return tally;
            }
            Some(_) => {}
        }
        fds.clear();
        fds.extend(conns.iter().map(|c| libc::pollfd {
            fd: c.fd(),
            events: c.events(),
            revents: 0,
        }));
        if let Err(e) = sock::poll(&mut fds, 20) {
            tally.fail(format!("poll: {e}"));
            return tally;
        }
        // Back to front, so that removing a finished connection keeps the indices of
        // those not yet served.
        let now = Instant::now();
        for k in (0..conns.len()).rev() {
            let revents = fds[k].revents;
            let mut end = None;
            if revents != 0 {
                end = conns[k].on_ready(revents, now, &mut buf, &mut want);
            }
            if end.is_none() {
                end = conns[k].on_tick(now, &mut buf);
            }
            settle(&mut conns, k, end, &mut tally, &shared);
        }
    }
}

/// Records a finished connection and removes it; returns how far to step the index.
fn settle(
    conns: &mut Vec<Conn>,
    k: usize,
    end: Option<Outcome>,
    tally: &mut Tally,
    shared: &Shared,
) -> usize {
    let Some(end) = end else { return 1 };
    let conn = conns.swap_remove(k);
    tally.end(&conn, end);
    shared.open.fetch_sub(1, Ordering::Relaxed);
    0
}

/// Opens connections: as fast as possible up to the target at first, then at the
/// steady arrival rate whenever below it.
fn arrive(
    plan: &Plan,
    conns: &mut Vec<Conn>,
    rng: &mut Rng,
    tally: &mut Tally,
    shared: &Shared,
    ramped: &mut bool,
    next_arrival: &mut Instant,
) {
    let now = Instant::now();
    while conns.len() < plan.target && (!*ramped || *next_arrival <= now) {
        match Conn::open(plan.addr, rng, now) {
            Ok(conn) => {
                tally.start(conn.kind, *ramped);
                conns.push(conn);
                shared.open.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tally.fail(format!("connect: {e}"));
                return;
            }
        }
        if *ramped {
            *next_arrival += plan.arrival;
        }
    }
    if !*ramped && conns.len() >= plan.target {
        *ramped = true;
        *next_arrival = now + plan.arrival;
        shared.ramped.fetch_add(1, Ordering::Relaxed);
    }
    // Arrivals owed while at the target are skipped, not saved up into a burst.
    if *next_arrival + plan.arrival < now {
        *next_arrival = now;
    }
}
