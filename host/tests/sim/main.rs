//! Deterministic simulation of the host loop: the real `echoloop::Driver` (its loop, both
//! readiness backends, and the core) runs against a simulated operating system
//! (`world.rs`) whose readiness, short
//! reads and writes, `EAGAIN`, `EINTR`, resets, descriptor exhaustion, descriptors far
//! beyond `FD_SETSIZE` (up to 20,000, served like any other), failures on a socket just
//! accepted and clock jumps are all drawn from one seed, and so are the capacities the
//! driver is given at run time (connections, a pool often smaller than the connections,
//! the queue size, a per-address limit). No real socket is opened.
//!
//! Four seeds in five relay reads (`host/src/relay.rs`) through a simulated `splice` pipe,
//! often far smaller than a buffer, so relays are short and leave bytes behind; the pipe
//! must be empty at every `select`.
//!
//! Every peer checks every byte it gets back; the fake itself checks the loop's use of
//! descriptors (no closed fd in a set, none leaked, no send after shutdown). A failure
//! names its seed; `SIM_SEED=123 cargo test -p echoloop --test sim` replays it alone,
//! `SIM_LOG=7` adds a trace of connection 7's socket calls, and `SIM_SEEDS=5000` runs more
//! seeds than the default (add `--release` for speed).
//!
//! Every seed runs twice: on the select backend and on the epoll backend, whose fake keeps
//! epoll's contract (registrations belong to the socket, hang-ups arrive unasked, spurious
//! wakeups). In the seeds with many paced peers, some idle past the hot window among busy
//! ones; each of their messages must come back within a second of virtual time, or the
//! select backend's sweep has stopped reaching the idle connections.
//!
//! Three seeds in four also serve a UDP socket (`datagrams.rs`): send `EAGAIN`, datagrams
//! longer than the slot, `ECONNREFUSED` after an ICMP error, a guarded source port and
//! bursts against the flood guard; every echo is checked, and the core's counters must
//! agree with what the sockets saw.

mod datagrams;
mod link;
mod peer;
mod rng;
mod world;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use echoloop::config::Limit;
use echoloop::driver::SHUTDOWN_GRACE;
use echoloop::udp::UdpReport;
use echoloop::{Driver, PollerKind, ServeConfig};

use crate::link::Link;
use crate::peer::{Kind, Peer, IDLER_PATIENCE};
use crate::rng::Rng;
use crate::world::{Counts, Plan, SimNet, World};

/// Connections opened per seed.
const LIFETIMES: u64 = 250;
/// Seeds in the normal run: about two seconds in a debug build on two cores.
const DEFAULT_SEEDS: u64 = 24;

/// What one seed exercised.
#[derive(Default)]
struct Summary {
    lifetimes: u64,
    complete: u64,
    by_kind: [u64; 8],
    counts: Counts,
    selects: u64,
}

impl Summary {
    fn add(&mut self, o: &Summary) {
        self.lifetimes += o.lifetimes;
        self.complete += o.complete;
        self.selects += o.selects;
        self.counts.add(&o.counts);
        for (t, k) in self.by_kind.iter_mut().zip(o.by_kind) {
            *t += k;
        }
    }
}

/// Runs one seed; `Err` says what went wrong.
fn run_seed(seed: u64, poller: PollerKind) -> Result<Summary, String> {
    let mut rng = Rng::new(seed.rotate_left(17) ^ 0xC0FF);
    let max_conns = rng.range(2, 64) as usize;
    // One seed in eight holds up to four times as many connections, its ping-pong peers
    // pausing between messages: enough quiet hot connections for the loop to cut its hot
    // window, and peers that then speak while cold (host/src/poll/plan/heat.rs).
    let sleepers = seed % 8 == 5;
    let max_conns = if sleepers { max_conns * 4 } else { max_conns };
    // Four seeds in five relay, from reads of a byte up (a relay on nearly every read)
    // to the default's 16 KiB; the fifth always receives and sends.
    let splice_from = (seed % 5 != 2).then(|| [1, 64, 1024, 16 * 1024][rng.range(0, 3) as usize]);
    // A quarter of the seeds run out of descriptors before the core's table is full,
    // half have an idle timeout: by seed, so that every run has some of each. (The relay
    // pipe's two ends count: the server's own descriptors, as in `nofile::OWN_FDS`.)
    let nofile = if seed % 4 == 1 {
        6 + 2 * usize::from(splice_from.is_some()) + rng.range(1, max_conns as u64) as usize
    } else {
        1_000
    };
    let idle_timeout = seed
        .is_multiple_of(2)
        .then(|| Duration::from_millis(rng.range(2_000, 10_000)));
    let (mut world, listener, signals) = World::new(seed, LIFETIMES, nofile);
    world.sleepers = sleepers;
    let world = Rc::new(RefCell::new(world));
    // Half the seeds share a pool smaller than the table, so connections wait for a
    // buffer (the core's no-buffer path); queues from tiny to the default.
    let buffers = if seed % 4 >= 2 {
        rng.range(1, max_conns as u64) as usize
    } else {
        max_conns
    };
    let queue_size = [64, 1024, 16 * 1024, 64 * 1024][rng.range(0, 3) as usize];
    // One seed in five limits each of the peers' four addresses.
    let max_conns_per_ip = (seed % 5 == 4).then(|| rng.range(1, max_conns as u64 / 2 + 2) as u32);
    let udp = seed % 4 != 3;
    // One UDP seed in three has a tight flood guard, so its bursts are cut.
    // 32 a second gives bursts of 4 (`--udp-rate`'s eighth), below the peers' bursts.
    let udp_rate = Limit((seed % 3 == 1).then_some(32));
    // From one accept a round (bursts wait in the backlog) to more than any seed opens.
    let accepts_per_round = [1, 3, 64, 4096][rng.range(0, 3) as usize];
    let options = ServeConfig {
        listen: vec![],
        udp: vec![],
        udp_rate,
        udp_bytes: Limit(None),
        max_conns,
        queue_size,
        buffers: Some(buffers),
        max_conns_per_ip,
        idle_timeout,
        trace: false,
        poller,
        // Batching on for two seeds in three: the look-nap-wait path and the plain one.
        batch_wait: if seed.is_multiple_of(3) {
            0
        } else {
            rng.range(1, 200)
        },
        accepts_per_round,
        splice_from: Limit(splice_from),
        inetd: false,
    };
    world.borrow_mut().accept_budget = accepts_per_round as usize;
    let addr: SocketAddr = ([127, 0, 0, 1], 8090).into();
    let mut server = Driver::new(
        SimNet(world.clone()),
        &options,
        vec![(listener, addr)],
        signals,
    )
    .map_err(|e| format!("Driver::new: {e}"))?;
    if udp {
        let socket = world.borrow_mut().open_udp();
        let addr: SocketAddr = ([127, 0, 0, 1], 7).into();
        server
            .add_udp(socket, addr)
            .map_err(|e| format!("add_udp: {e}"))?;
    }
    let result = server.run();
    let stats = *server.stats();
    let report = server.udp_reports().next();
    drop(server);
    let mut world = world.borrow_mut();
    let w = &mut *world;
    if let Err(e) = result {
        return Err(format!("run failed: {e}; {:?}", w.failures));
    }
    // Let the peers read what is left in their buffers, now that the server is gone.
    for _ in 0..100_000 {
        if w.active() == 0 {
            break;
        }
        w.tick(Duration::from_millis(1));
    }
    if !w.failures.is_empty() {
        return Err(w.failures.join("; "));
    }
    if let Some(report) = report {
        check_datagrams(w, &report)?;
    }
    let leaked = w.leaked();
    if !leaked.is_empty() {
        return Err(format!("descriptors left open: {leaked:?}"));
    }
    let mut summary = Summary {
        lifetimes: w.peers.len() as u64,
        counts: w.counts,
        selects: w.selects,
        ..Summary::default()
    };
    for (i, (peer, link)) in w.peers.iter().zip(&w.links).enumerate() {
        if let Some(bad) = &peer.bad {
            return Err(format!("connection {i}: {bad}"));
        }
        if peer.longest_wait > IDLER_PATIENCE {
            return Err(format!(
                "connection {i} ({:?}): an echo took {:?} after an idle pause",
                peer.kind, peer.longest_wait
            ));
        }
        if peer.kind.healthy() {
            check_healthy(peer, link, idle_timeout, &w.plan).map_err(|e| {
                format!(
                    "connection {i} ({:?}): {e}; closed {:?}, signal at {:?}",
                    peer.kind, link.server_close, w.plan.signalled_at
                )
            })?;
        }
        summary.complete += u64::from(peer.complete());
        summary.by_kind[peer.kind as usize] += 1;
    }
    let taken: u64 = w.links.iter().map(|l| l.taken).sum();
    let echoed: u64 = w.links.iter().map(|l| l.echoed).sum();
    if (taken, echoed) != (stats.bytes_in, stats.bytes_out) {
        return Err(format!(
            "the core counted {} in, {} out; the sockets saw {taken} in, {echoed} out",
            stats.bytes_in, stats.bytes_out
        ));
    }
    Ok(summary)
}

/// Every echo was checked as it went out; here the core's counters must agree with what
/// the socket saw, and every datagram received is accounted for.
fn check_datagrams(w: &mut World, report: &UdpReport) -> Result<(), String> {
    let Some(udp) = &w.udp else {
        return Err("a UDP report without a UDP socket".into());
    };
    if !udp.failures.is_empty() {
        return Err(udp.failures.join("; "));
    }
    let (s, seen) = (&report.stats, &udp.seen);
    let d = &s.dropped;
    let pairs = [
        ("received", s.received, seen.delivered),
        ("echoed", s.echoed, seen.echoes),
        ("dropped as truncated", d.truncated, seen.truncated),
        ("dropped by the loop guard", d.loop_guard, seen.guarded),
        ("sends failed", d.send_failed, seen.refused_send),
        ("receive errors", report.recv_errors, seen.refused_recv),
        (
            "received = echoed + dropped + unsent",
            s.received,
            s.echoed + d.total() + report.queued as u64,
        ),
    ];
    for (what, core, world) in pairs {
        if core != world {
            return Err(format!(
                "UDP {what}: the core says {core}, the socket {world}; {report}"
            ));
        }
    }
    let c = &mut w.counts;
    c.udp_send_eagain = seen.send_eagain;
    c.udp_truncated = seen.truncated;
    c.udp_refused_recv = seen.refused_recv;
    c.udp_refused_send = seen.refused_send;
    c.udp_loop_guard = d.loop_guard;
    c.udp_queue_full = d.queue_full;
    c.udp_flood_guard = d.flood_guard;
    c.udp_echoes = seen.echoes;
    Ok(())
}

/// A healthy peer either got its whole echo and a clean EOF, or the way its connection
/// ended explains what it missed.
fn check_healthy(
    peer: &Peer,
    link: &Link,
    idle: Option<Duration>,
    plan: &Plan,
) -> Result<(), String> {
    if peer.complete() {
        return Ok(());
    }
    let state = format!(
        "sent {} of {}, received {}, server took {}, eof {}, reset {}",
        peer.sent, peer.total, peer.received, link.taken, peer.eof, peer.reset
    );
    let Some(close) = link.server_close else {
        // Never accepted (backlog full, aborted, listener closed): nothing was taken.
        return match !link.accepted && link.taken == 0 {
            true => Ok(()),
            false => Err(format!("not closed by the server; {state}")),
        };
    };
    if close.graceful {
        // The server shut down its write side after the echo: every byte it took must
        // have come back, then EOF; a RST here means the close destroyed the echo.
        // Unless the shutdown's grace period ran out, or a second signal cut it short.
        let grace_over = plan
            .signalled_at
            .is_some_and(|at| close.at >= at + SHUTDOWN_GRACE);
        if plan.hard_stop || grace_over || (peer.eof && !peer.reset && peer.received == link.taken)
        {
            return Ok(());
        }
        return Err(format!("graceful close lost the echo; {state}"));
    }
    // An abortive close: allowed for a connection the server refused before reading it,
    // at the end of the shutdown grace, or once no byte moved for the idle timeout (the
    // core counts in whole milliseconds).
    let idle_for = close.at.saturating_sub(link.last_io) + Duration::from_millis(1);
    if link.taken == 0 || close.after_signal || idle.is_some_and(|t| idle_for >= t) {
        return Ok(());
    }
    Err(format!(
        "closed abortively at {:?} without cause (idle timeout {idle:?}); {state}",
        close.at
    ))
}

/// Runs the seeds: what they exercised, and each failure with how to replay it.
fn run_seeds(seeds: impl Iterator<Item = u64>, poller: PollerKind) -> (Summary, Vec<String>) {
    let mut total = Summary::default();
    let mut failed = Vec::new();
    for seed in seeds {
        match run_seed(seed, poller) {
            Ok(s) => total.add(&s),
            Err(e) => failed.push(format!(
                "seed {seed} on {poller}: {e}\n  replay: SIM_SEED={seed} cargo test -p echoloop --test sim {poller}"
            )),
        }
    }
    (total, failed)
}

/// The seeds to run: the one in `SIM_SEED`, or `SIM_SEEDS` of them (default
/// [`DEFAULT_SEEDS`]) from 0.
fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        return vec![seed.parse().expect("SIM_SEED is a number")];
    }
    let n = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_SEEDS);
    (0..n).collect()
}

/// Every seed on the select backend.
#[test]
fn select() {
    simulated_seeds_lose_no_byte(PollerKind::Select);
}

/// Every seed on the epoll backend.
#[test]
fn epoll() {
    simulated_seeds_lose_no_byte(PollerKind::Epoll);
}

/// Every seed, on a few threads (each seed's world is its own, single-threaded); then the
/// default run must have exercised every fault and every kind of peer, or the simulation
/// has silently stopped testing something.
fn simulated_seeds_lose_no_byte(poller: PollerKind) {
    let seeds = seeds();
    let threads = 4;
    let parts: Vec<Vec<u64>> = (0..threads)
        .map(|t| seeds.iter().copied().skip(t).step_by(threads).collect())
        .collect();
    let mut total = Summary::default();
    let mut failed = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || run_seeds(part.into_iter(), poller)))
            .collect();
        for handle in handles {
            let (summary, errors) = handle.join().expect("a simulation thread");
            total.add(&summary);
            failed.extend(errors);
        }
    });
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    eprintln!(
        "{poller}: {} seeds: {} connection lifetimes ({} complete), {} waits",
        seeds.len(),
        total.lifetimes,
        total.complete,
        total.selects
    );
    let counts: Vec<_> = total
        .counts
        .named()
        .into_iter()
        .filter(|&(_, _, needs)| needs.is_none_or(|k| k == poller))
        .collect();
    for &(name, n, _) in &counts {
        eprintln!("  {n:>10}  {name}");
    }
    if seeds.len() as u64 >= DEFAULT_SEEDS {
        for &(name, n, _) in &counts {
            assert!(n > 0, "never injected on {poller}: {name}");
        }
        for (kind, n) in Kind::ALL.iter().zip(total.by_kind) {
            assert!(n > 0, "no {kind:?} peer");
        }
    }
}
