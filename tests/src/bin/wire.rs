//! `wire`: an impaired Ethernet wire. Relays frames both ways between two ports and, from a
//! seed, drops, duplicates, delays and reorders them, so that a run that failed can be
//! replayed with the same decisions (the kernel has no `netem` here).
//!
//! ```text
//! wire --seed N [--loss PCT] [--dup PCT] [--reorder PCT] [--delay MS] PORT PORT
//! PORT: tap:NETNS:DEV   the TAP device DEV inside network namespace NETNS (made beforehand)
//!       unix:PATH:PEER  a Unix datagram socket bound at PATH, sending to PEER: QEMU's
//!                       `-netdev dgram` with local.path=PEER and remote.path=PATH
//! ```
//!
//! Each frame is delayed by a random 0 to `--delay` ms (frames close together may pass
//! each other); `--reorder` % are held back a further `2 × delay + 1` ms, so that later
//! frames overtake them. Each direction draws from its own generator, seeded from the seed
//! and the direction, in frame order: the same seed makes the same decisions for the same
//! frames. Every second with traffic, and at exit (SIGTERM or SIGINT) it prints what it
//! did on stderr. Bad arguments: one line on stderr, exit 2.

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use echoloop_tests::{sock, Rng};
use signal_hook::consts::{SIGINT, SIGTERM};

/// What to do to frames, in percent and milliseconds.
#[derive(Clone, Copy, Debug)]
struct Impairment {
    seed: u64,
    loss: u64,
    dup: u64,
    reorder: u64,
    delay_ms: u64,
}

/// One end of the wire.
enum Port {
    Tap(File),
    Unix(UnixDatagram),
}

impl Port {
    fn open(spec: &str) -> Result<Port, String> {
        let parts: Vec<&str> = spec.splitn(3, ':').collect();
        match parts.as_slice() {
            ["tap", netns, dev] => {
                if !std::path::Path::new(&format!("/run/netns/{netns}")).exists() {
                    return Err(format!("no network namespace {netns}"));
                }
                let (netns, dev) = (netns.to_string(), dev.to_string());
                // setns(2) moves only the calling thread: open the TAP from one made for it.
                thread::spawn(move || {
                    sock::enter_netns(&netns);
                    sock::open_tap(&dev)
                })
                .join()
                .map_err(|_| format!("cannot enter namespace of {spec}"))?
                .map(Port::Tap)
                .map_err(|e| format!("TAP {spec}: {e}"))
            }
            ["unix", path, peer] => {
                let _ = std::fs::remove_file(path);
                let sock = UnixDatagram::bind(path).map_err(|e| format!("bind {path}: {e}"))?;
                // QEMU binds its end when it starts: the connect is retried on each send.
                let _ = sock.connect(peer);
                Ok(Port::Unix(sock))
            }
            _ => Err(format!(
                "bad port {spec:?}: tap:NETNS:DEV or unix:PATH:PEER"
            )),
        }
    }

    fn try_clone(&self) -> std::io::Result<Port> {
        match self {
            Port::Tap(f) => f.try_clone().map(Port::Tap),
            Port::Unix(s) => s.try_clone().map(Port::Unix),
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Port::Tap(f) => f.as_raw_fd(),
            Port::Unix(s) => s.as_raw_fd(),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Port::Tap(f) => f.read(buf),
            Port::Unix(s) => s.recv(buf),
        }
    }

    /// Sends one frame; a frame the other side cannot take now is lost, as on a wire.
    fn send(&mut self, frame: &[u8], peer: Option<&str>) {
        let _ = match (self, peer) {
            (Port::Tap(f), _) => f.write(frame),
            (Port::Unix(s), Some(peer)) => s.send(frame).or_else(|_| s.send_to(frame, peer)),
            (Port::Unix(s), None) => s.send(frame),
        };
    }
}

/// A frame waiting for its time to go out.
struct Due {
    at: Instant,
    seq: u64,
    frame: Vec<u8>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    // Earliest first from a max-heap.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Counters of one direction.
#[derive(Default)]
struct Tally {
    frames: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
}

impl Tally {
    fn line(&self, name: &str) -> String {
        format!(
            "{name}: {} frames, {} dropped, {} duplicated, {} held back",
            self.frames.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
            self.duplicated.load(Ordering::Relaxed),
            self.reordered.load(Ordering::Relaxed)
        )
    }
}

/// Relays `from` to `to` until `stop`, impairing as told with generator `rng`.
fn relay(
    mut from: Port,
    mut to: Port,
    peer: Option<String>,
    imp: Impairment,
    mut rng: Rng,
    tally: &Tally,
    stop: &AtomicBool,
) {
    let mut queue = BinaryHeap::new();
    let mut buf = vec![0u8; 65_536];
    let mut seq = 0u64;
    let chance = |rng: &mut Rng, pct: u64| pct > 0 && rng.next_u64() % 100 < pct;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while queue.peek().is_some_and(|d: &Due| d.at <= now) {
            if let Some(due) = queue.pop() {
                to.send(&due.frame, peer.as_deref());
            }
        }
        let wait = queue
            .peek()
            .map(|d| d.at.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(100))
            .min(Duration::from_millis(100));
        let mut fds = [libc::pollfd {
            fd: from.fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let ready = sock::poll(&mut fds, wait.as_millis().max(1) as i32).unwrap_or(0);
        if ready == 0 {
            continue;
        }
        let Ok(n) = from.recv(&mut buf) else {
            continue;
        };
        tally.frames.fetch_add(1, Ordering::Relaxed);
        // Every frame draws the same four numbers, so that one decision never shifts the
        // next frame's.
        let (lost, dup, late) = (
            chance(&mut rng, imp.loss),
            chance(&mut rng, imp.dup),
            chance(&mut rng, imp.reorder),
        );
        let jitter = rng.next_u64() % (imp.delay_ms + 1);
        if lost {
            tally.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let mut delay = jitter;
        if late {
            tally.reordered.fetch_add(1, Ordering::Relaxed);
            delay += 2 * imp.delay_ms + 1;
        }
        let at = Instant::now() + Duration::from_millis(delay);
        let copies = if dup { 2 } else { 1 };
        if dup {
            tally.duplicated.fetch_add(1, Ordering::Relaxed);
        }
        for _ in 0..copies {
            seq += 1;
            queue.push(Due {
                at,
                seq,
                frame: buf[..n].to_vec(),
            });
        }
    }
}

fn parse() -> Result<(Impairment, String, String), String> {
    let mut imp = Impairment {
        seed: 0,
        loss: 0,
        dup: 0,
        reorder: 0,
        delay_ms: 0,
    };
    let mut seed = None;
    let mut ports = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str, max: u64| -> Result<u64, String> {
            let v = args.next().ok_or(format!("{name} needs a value"))?;
            v.parse::<u64>()
                .ok()
                .filter(|v| *v <= max)
                .ok_or(format!("invalid value {v:?} for {name}: 0 to {max}"))
        };
        match arg.as_str() {
            "--seed" => seed = Some(value("--seed", u64::MAX)?),
            "--loss" => imp.loss = value("--loss", 100)?,
            "--dup" => imp.dup = value("--dup", 100)?,
            "--reorder" => imp.reorder = value("--reorder", 100)?,
            "--delay" => imp.delay_ms = value("--delay", 10_000)?,
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}")),
            _ => ports.push(arg),
        }
    }
    imp.seed = seed.ok_or("--seed is required (it makes a run replayable)")?;
    match <[String; 2]>::try_from(ports) {
        Ok([a, b]) => Ok((imp, a, b)),
        Err(_) => Err("two ports needed: tap:NETNS:DEV or unix:PATH:PEER".into()),
    }
}

/// The peer path of a `unix:PATH:PEER` port, to retry the connect when QEMU comes up.
fn unix_peer(spec: &str) -> Option<String> {
    spec.strip_prefix("unix:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, peer)| peer.to_string())
}

fn main() -> ExitCode {
    let (imp, a_spec, b_spec) = match parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("wire: {e}");
            return ExitCode::from(2);
        }
    };
    let open = |spec: &str| Port::open(spec).map_err(|e| eprintln!("wire: {e}"));
    let (Ok(a), Ok(b)) = (open(&a_spec), open(&b_spec)) else {
        return ExitCode::from(1);
    };
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        eprintln!("wire: cannot duplicate a port");
        return ExitCode::from(1);
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            eprintln!("wire: cannot handle signal {signal}: {e}");
            return ExitCode::from(1);
        }
    }
    let tallies = Arc::new([Tally::default(), Tally::default()]);
    let ab = {
        let (stop, tallies, peer) = (stop.clone(), tallies.clone(), unix_peer(&b_spec));
        let rng = Rng::new(imp.seed ^ 0xA2B);
        thread::spawn(move || relay(a, b2, peer, imp, rng, &tallies[0], &stop))
    };
    let ba = {
        let (stop, tallies, peer) = (stop.clone(), tallies.clone(), unix_peer(&a_spec));
        let rng = Rng::new(imp.seed ^ 0xB2A);
        thread::spawn(move || relay(b, a2, peer, imp, rng, &tallies[1], &stop))
    };
    eprintln!("wire: relaying {a_spec} <-> {b_spec} with {imp:?}");
    let mut last = String::new();
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_secs(1));
        let now = format!("{}; {}", tallies[0].line("a->b"), tallies[1].line("b->a"));
        if now != last && !stop.load(Ordering::Relaxed) {
            eprintln!("wire: {now}");
            last = now;
        }
    }
    let _ = (ab.join(), ba.join());
    eprintln!(
        "wire: stopped: {}; {}",
        tallies[0].line("a->b"),
        tallies[1].line("b->a")
    );
    ExitCode::SUCCESS
}
