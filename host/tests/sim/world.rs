//! The simulated operating system: a descriptor table, a listener with a backlog, the
//! signal pipe, a virtual clock and the peers, behind [`echoloop::Net`]. The peers act
//! each time the server calls `select` or `epoll_wait`, so the server never waits on
//! anything real.
//!
//! Its epoll keeps epoll's contract, with the rules that trip people: a registration
//! belongs to the open file description (closing the socket removes it; `EPOLL_CTL_MOD`
//! or `DEL` of a descriptor not registered fails with `ENOENT`, `ADD` of one registered
//! with `EEXIST`); `EPOLLHUP`/`EPOLLERR` arrive whether asked for or not; wakeups can be
//! spurious; and one wait may not report every ready descriptor (its `maxevents`).

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use echoloop::net::{Ctl, Polled, Source};
use echoloop::{FdSet, Net};
use echoloop_core::Interest;

use crate::datagrams::{self, Datagrams};
use crate::link::{Link, ServerClose};
use crate::peer::Peer;
use crate::rng::Rng;
use echoloop::PollerKind;

/// A simulated descriptor: a number, owned by exactly one holder.
#[derive(Debug)]
pub struct SimSocket(RawFd);

impl AsRawFd for SimSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// What a descriptor refers to.
#[derive(Clone, Copy, Debug)]
enum Obj {
    Listener,
    Signals,
    Reserve,
    Conn(usize),
    Udp,
    /// The relay pipe's ends (`host/src/relay.rs`).
    RelayRead,
    RelayWrite,
    /// An epoll instance.
    Epoll,
}

/// The three sets of a `select` call.
struct Sets<'a> {
    read: &'a mut FdSet,
    write: &'a mut FdSet,
    except: &'a mut FdSet,
}

/// This seed's fault profile: the chance of each fault at each opportunity.
pub struct Faults {
    spurious: f64,
    withhold: f64,
    urgent: f64,
    select_eintr: f64,
    call_eintr: f64,
    eagain: f64,
    short: f64,
    high_fd: f64,
    enfile: f64,
    abort: f64,
    jump: f64,
    arrive: f64,
    /// A step on a socket just accepted fails (its peer reset it first; macOS: EINVAL).
    prepare: f64,
}

impl Faults {
    fn draw(rng: &mut Rng) -> Self {
        Faults {
            spurious: rng.prob(0.0, 0.2),
            withhold: rng.prob(0.0, 0.3),
            urgent: rng.prob(0.0, 0.1),
            select_eintr: rng.prob(0.0, 0.05),
            call_eintr: rng.prob(0.0, 0.05),
            eagain: rng.prob(0.0, 0.1),
            short: rng.prob(0.0, 0.7),
            high_fd: rng.prob(0.0, 0.5),
            enfile: rng.prob(0.0, 0.03),
            abort: rng.prob(0.0, 0.03),
            jump: rng.prob(0.0, 0.002),
            arrive: rng.prob(0.05, 0.6),
            prepare: rng.prob(0.0, 0.1),
        }
    }
}

/// How many times each fault was injected (the kinds of peer are counted by the test).
#[derive(Default, Debug, Clone, Copy)]
pub struct Counts {
    pub spurious_readiness: u64,
    pub withheld_readiness: u64,
    pub urgent_only: u64,
    pub select_eintr: u64,
    pub call_eintr: u64,
    pub eagain: u64,
    pub short_io: u64,
    pub fd_beyond_setsize: u64,
    pub emfile: u64,
    pub enfile: u64,
    pub econnaborted: u64,
    pub clock_jump: u64,
    pub backlog_full: u64,
    pub naps: u64,
    pub failed_prepare: u64,
    pub udp_send_eagain: u64,
    pub udp_truncated: u64,
    pub udp_refused_recv: u64,
    pub udp_refused_send: u64,
    pub udp_loop_guard: u64,
    pub udp_queue_full: u64,
    pub udp_flood_guard: u64,
    pub udp_echoes: u64,
    pub relays: u64,
    pub relay_kept: u64,
    pub epoll_hangups: u64,
    pub epoll_spurious: u64,
    pub epoll_ctls: u64,
}

impl Counts {
    /// Each count with its name, and the backend it needs (`None`: either).
    pub fn named(&self) -> Vec<(&'static str, u64, Option<PollerKind>)> {
        let select = Some(PollerKind::Select);
        let epoll = Some(PollerKind::Epoll);
        let only = [
            ("readable reported in the except set only", select),
            (
                "spurious readiness (select says ready, call gets EAGAIN)",
                select,
            ),
            ("select EINTR (sets scrambled)", select),
            ("batching nap (loop busy, few sockets ready)", select),
            ("epoll: EPOLLHUP/EPOLLERR reported, asked for or not", epoll),
            ("epoll: spurious wakeup (reported, call gets EAGAIN)", epoll),
            ("epoll: epoll_ctl calls", epoll),
        ];
        self.all()
            .into_iter()
            .map(|(name, n)| {
                let needs = only.iter().find(|(o, _)| *o == name).and_then(|(_, k)| *k);
                (name, n, needs)
            })
            .collect()
    }

    fn all(&self) -> [(&'static str, u64); 28] {
        [
            (
                "spurious readiness (select says ready, call gets EAGAIN)",
                self.spurious_readiness,
            ),
            (
                "withheld readiness (ready, not reported this round)",
                self.withheld_readiness,
            ),
            ("readable reported in the except set only", self.urgent_only),
            ("select EINTR (sets scrambled)", self.select_eintr),
            ("EINTR on accept/recv/send", self.call_eintr),
            ("spurious EAGAIN on recv/send/accept", self.eagain),
            ("short read or write", self.short_io),
            (
                "accepted fd >= FD_SETSIZE (1024..=20000)",
                self.fd_beyond_setsize,
            ),
            ("EMFILE on accept (descriptor limit reached)", self.emfile),
            ("ENFILE on accept", self.enfile),
            ("ECONNABORTED on accept", self.econnaborted),
            ("clock jump of 1-60 s", self.clock_jump),
            ("backlog full, connection refused", self.backlog_full),
            ("batching nap (loop busy, few sockets ready)", self.naps),
            ("socket option failed after accept", self.failed_prepare),
            ("UDP: EAGAIN from sendto (echo waits)", self.udp_send_eagain),
            ("UDP: datagram longer than the slot", self.udp_truncated),
            (
                "UDP: ECONNREFUSED from recvfrom (ICMP error)",
                self.udp_refused_recv,
            ),
            ("UDP: ECONNREFUSED from sendto", self.udp_refused_send),
            ("UDP: dropped by the loop guard", self.udp_loop_guard),
            ("UDP: dropped, queue full", self.udp_queue_full),
            ("UDP: dropped by the flood guard", self.udp_flood_guard),
            ("UDP: echoes checked", self.udp_echoes),
            ("relay: splice from a socket into the pipe", self.relays),
            (
                "relay: bytes the socket would not take back, read out of the pipe",
                self.relay_kept,
            ),
            (
                "epoll: EPOLLHUP/EPOLLERR reported, asked for or not",
                self.epoll_hangups,
            ),
            (
                "epoll: spurious wakeup (reported, call gets EAGAIN)",
                self.epoll_spurious,
            ),
            ("epoll: epoll_ctl calls", self.epoll_ctls),
        ]
    }

    /// Adds another run's counts.
    pub fn add(&mut self, o: &Counts) {
        let f = |a: &mut u64, b: u64| *a += b;
        f(&mut self.spurious_readiness, o.spurious_readiness);
        f(&mut self.withheld_readiness, o.withheld_readiness);
        f(&mut self.urgent_only, o.urgent_only);
        f(&mut self.select_eintr, o.select_eintr);
        f(&mut self.call_eintr, o.call_eintr);
        f(&mut self.eagain, o.eagain);
        f(&mut self.short_io, o.short_io);
        f(&mut self.fd_beyond_setsize, o.fd_beyond_setsize);
        f(&mut self.emfile, o.emfile);
        f(&mut self.enfile, o.enfile);
        f(&mut self.econnaborted, o.econnaborted);
        f(&mut self.clock_jump, o.clock_jump);
        f(&mut self.backlog_full, o.backlog_full);
        f(&mut self.naps, o.naps);
        f(&mut self.failed_prepare, o.failed_prepare);
        f(&mut self.udp_send_eagain, o.udp_send_eagain);
        f(&mut self.udp_truncated, o.udp_truncated);
        f(&mut self.udp_refused_recv, o.udp_refused_recv);
        f(&mut self.udp_refused_send, o.udp_refused_send);
        f(&mut self.udp_loop_guard, o.udp_loop_guard);
        f(&mut self.udp_queue_full, o.udp_queue_full);
        f(&mut self.udp_flood_guard, o.udp_flood_guard);
        f(&mut self.udp_echoes, o.udp_echoes);
        f(&mut self.relays, o.relays);
        f(&mut self.relay_kept, o.relay_kept);
        f(&mut self.epoll_hangups, o.epoll_hangups);
        f(&mut self.epoll_spurious, o.epoll_spurious);
        f(&mut self.epoll_ctls, o.epoll_ctls);
    }
}

/// When the simulated run ends: after so many connections, one or two signals.
pub struct Plan {
    /// Connections to open in all.
    pub lifetimes: u64,
    /// Opened so far.
    pub started: u64,
    /// Send SIGTERM once this many were opened and, unless `early`, all active peers
    /// are done.
    signal_after: u64,
    early: bool,
    /// Send a second signal this long after the first (the hard stop).
    pub second_signal: Option<Duration>,
    /// Virtual time of the first signal.
    pub signalled_at: Option<Duration>,
    /// The second signal was sent.
    pub hard_stop: bool,
}

/// The whole simulated machine.
pub struct World {
    rng: Rng,
    faults: Faults,
    /// What was injected.
    pub counts: Counts,
    base: Instant,
    /// Virtual time since start.
    pub elapsed: Duration,
    fds: Vec<Option<Obj>>,
    /// The open file description behind each descriptor: a fresh one for each socket.
    descriptions: Vec<u64>,
    next_description: u64,
    /// The epoll registrations, by open file description: the descriptor number they
    /// report (epoll's event data) and what they ask for.
    registrations: BTreeMap<u64, (RawFd, Interest)>,
    /// Virtual time the clock jumped, in all: the peers' pace is kept in steady time.
    pub jumped: Duration,
    open: usize,
    nofile: usize,
    /// Every connection ever made, by index.
    pub links: Vec<Link>,
    /// Its client, same index.
    pub peers: Vec<Peer>,
    /// Indices of peers still acting.
    active: Vec<usize>,
    backlog: VecDeque<usize>,
    listening: bool,
    signals_pending: usize,
    /// The end of the run.
    pub plan: Plan,
    /// `select` calls so far, and the most allowed before calling it a livelock.
    pub selects: u64,
    max_selects: u64,
    /// Accepted sockets come with the listener's options (see [`World::prepared`]).
    options_inherited: bool,
    /// Its ping-pong peers pause between messages (`Kind::Sleeper`).
    pub sleepers: bool,
    /// Broken rules seen by the fake itself (a closed fd in a set, a send after FIN...).
    pub failures: Vec<String>,
    scratch: Vec<RawFd>,
    /// Readable (or urgent) in what the last `select` returned: the only sockets the
    /// loop may `recv` from until the next one.
    reported: Vec<RawFd>,
    /// `EMFILE`s in a row from `accept`, and when the first of them came.
    emfile_streak: (u32, Duration),
    /// Virtual time a byte last moved or a connection was accepted.
    progress: Duration,
    /// `SIM_LOG=N`: print what happens to connection N (for replaying a failure).
    log: Option<usize>,
    /// A step after `accept` failed with more connections pending: the loop owes the
    /// listener another `accept` before its next `select` (unless its round's budget of
    /// accepts ran out), not a pause.
    accept_owed: bool,
    /// `accept` calls since the last `select`.
    accepts_this_round: usize,
    /// The loop's budget of accepts per listener per round (`--accepts-per-round`).
    pub accept_budget: usize,
    /// The server's UDP socket and its sources, if this seed has one.
    pub udp: Option<Datagrams>,
    /// The bytes in the relay pipe, and the most it holds (drawn per seed; 0 before the
    /// driver asks for one).
    pipe: VecDeque<u8>,
    pipe_cap: usize,
}

/// No byte moved for this long: the plan sends the signal.
const STALL: Duration = Duration::from_secs(5);
/// The listen backlog.
const BACKLOG: usize = 16;
/// stdio: the lowest descriptors are taken, as in a real process.
const FIRST_FD: usize = 3;
/// Where libc's `fd_set` ends; the server's sets do not, and descriptors from here on are
/// served like any other.
const FD_SETSIZE: usize = 1024;
/// The highest descriptor accept may hand out, far beyond `FD_SETSIZE`.
const MAX_FD: usize = 20_000;

impl World {
    /// A world for `seed`: returns it, the listener and the signal pipe's read end.
    pub fn new(seed: u64, lifetimes: u64, nofile: usize) -> (World, SimSocket, SimSocket) {
        let mut rng = Rng::new(seed);
        let faults = Faults::draw(&mut rng);
        let early = rng.chance(0.3);
        let plan = Plan {
            lifetimes,
            started: 0,
            signal_after: if early {
                rng.range(lifetimes / 2, lifetimes)
            } else {
                lifetimes
            },
            early,
            second_signal: rng
                .chance(0.2)
                .then(|| Duration::from_millis(rng.range(1, 5_000))),
            signalled_at: None,
            hard_stop: false,
        };
        let mut world = World {
            rng,
            faults,
            counts: Counts::default(),
            base: Instant::now(),
            elapsed: Duration::ZERO,
            fds: (0..=MAX_FD).map(|_| None).collect(),
            descriptions: vec![0; MAX_FD + 1],
            next_description: 1,
            registrations: BTreeMap::new(),
            jumped: Duration::ZERO,
            open: FIRST_FD,
            nofile,
            links: Vec::new(),
            peers: Vec::new(),
            active: Vec::new(),
            backlog: VecDeque::new(),
            listening: true,
            signals_pending: 0,
            plan,
            selects: 0,
            max_selects: 2_000 * lifetimes + 100_000,
            options_inherited: seed.is_multiple_of(2),
            sleepers: false,
            failures: Vec::new(),
            scratch: Vec::new(),
            reported: Vec::new(),
            progress: Duration::ZERO,
            emfile_streak: (0, Duration::ZERO),
            log: std::env::var("SIM_LOG").ok().and_then(|v| v.parse().ok()),
            accept_owed: false,
            accepts_this_round: 0,
            accept_budget: 64,
            udp: None,
            pipe: VecDeque::new(),
            pipe_cap: 0,
        };
        let listener = world
            .alloc(Obj::Listener, false)
            .expect("a descriptor for the listener");
        let signals = world
            .alloc(Obj::Signals, false)
            .expect("a descriptor for signals");
        (world, listener, signals)
    }

    /// Opens the server's UDP socket, its sources drawn from this world's seed.
    pub fn open_udp(&mut self) -> SimSocket {
        let faults = datagrams::Faults::draw(&mut self.rng);
        self.udp = Some(Datagrams::new(faults));
        self.alloc(Obj::Udp, false)
            .expect("a descriptor for the UDP socket")
    }

    /// Peers still acting.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// Descriptors still open, other than the signal pipe and the reserve.
    pub fn leaked(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (fd, obj) in self.fds.iter().enumerate() {
            match obj {
                Some(Obj::Listener) => out.push(format!("fd {fd}: the listener")),
                Some(Obj::Conn(l)) => out.push(format!("fd {fd}: connection {l}")),
                _ => {}
            }
        }
        out
    }

    /// The lowest free descriptor (or, if `high`, a free one from a random point between
    /// FD_SETSIZE and MAX_FD), unless the process is at its descriptor limit.
    fn alloc(&mut self, obj: Obj, high: bool) -> Option<SimSocket> {
        if self.open >= self.nofile {
            return None;
        }
        let from = if high {
            self.rng.range(FD_SETSIZE as u64, MAX_FD as u64) as usize
        } else {
            FIRST_FD
        };
        let fd = (from..self.fds.len())
            .chain(FIRST_FD..from)
            .find(|&fd| self.fds[fd].is_none())?;
        self.fds[fd] = Some(obj);
        self.descriptions[fd] = self.next_description;
        self.next_description += 1;
        self.open += 1;
        Some(SimSocket(fd as RawFd))
    }

    fn log(&self, l: usize, what: std::fmt::Arguments<'_>) {
        if self.log == Some(l) {
            eprintln!("[{:?}] conn {l}: {what}", self.elapsed);
        }
    }

    fn link_of(&self, s: &SimSocket) -> io::Result<usize> {
        match self.fds.get(s.0 as usize) {
            Some(Some(Obj::Conn(l))) => Ok(*l),
            _ => Err(errno(libc::EBADF)),
        }
    }

    /// Out of descriptors, the loop must not spin on a listener it cannot accept from
    /// (host rule 6): after an `EMFILE` it must shed what is pending (the next `accept`
    /// succeeds) or stop watching the listener for a while.
    fn on_emfile(&mut self) {
        let (streak, since) = &mut self.emfile_streak;
        if *streak == 0 {
            *since = self.elapsed;
        }
        *streak += 1;
        if *streak >= 4 && self.elapsed - *since < Duration::from_millis(100) {
            self.failures.push(format!(
                "{streak} EMFILE in a row within {:?}: the accept loop spins",
                self.elapsed - *since
            ));
            *streak = 0;
        }
    }

    /// An injected `EINTR` or `EAGAIN` for a call, if this one gets one.
    fn call_fault(&mut self) -> Option<io::Error> {
        if self.rng.chance(self.faults.call_eintr) {
            self.counts.call_eintr += 1;
            return Some(errno(libc::EINTR));
        }
        if self.rng.chance(self.faults.eagain) {
            self.counts.eagain += 1;
            return Some(errno(libc::EAGAIN));
        }
        None
    }

    /// `n` or, if this call is short, fewer (at least 1).
    fn maybe_short(&mut self, n: usize) -> usize {
        if n > 1 && self.rng.chance(self.faults.short) {
            self.counts.short_io += 1;
            return self.rng.range(1, n as u64 - 1) as usize;
        }
        n
    }

    /// Time passes and the world moves: new connections, every peer's step, signals.
    pub fn tick(&mut self, step: Duration) {
        self.elapsed += step;
        self.arrive();
        if let Some(udp) = &mut self.udp {
            udp.tick(&mut self.rng);
        }
        let mut k = 0;
        while let Some(&i) = self.active.get(k) {
            let (peer, link) = (&mut self.peers[i], &mut self.links[i]);
            peer.step(
                link,
                &mut self.rng,
                self.elapsed.saturating_sub(self.jumped),
            );
            if peer.done {
                self.active.swap_remove(k);
            } else {
                k += 1;
            }
        }
        self.signal();
    }

    fn arrive(&mut self) {
        if !self.listening
            || self.plan.started >= self.plan.lifetimes
            || !self.rng.chance(self.faults.arrive)
        {
            return;
        }
        self.plan.started += 1;
        // Small kernel buffers make short writes and backpressure common.
        let in_cap = self.rng.range(256, 40_000) as usize;
        let out_cap = self.rng.range(256, 40_000) as usize;
        let mut link = Link::new(in_cap, out_cap);
        let mut peer = Peer::new(&mut self.rng);
        if self.sleepers {
            peer.sleep_between_messages(&mut self.rng);
        }
        if self.backlog.len() >= BACKLOG {
            self.counts.backlog_full += 1;
            link.reset();
            (peer.reset, peer.done) = (true, true);
        } else {
            self.backlog.push_back(self.links.len());
            self.active.push(self.links.len());
        }
        self.links.push(link);
        self.peers.push(peer);
    }

    /// SIGTERM when the plan says so; a second one for a hard stop.
    fn signal(&mut self) {
        let plan = &mut self.plan;
        match plan.signalled_at {
            None => {
                let quiet = self
                    .active
                    .iter()
                    .all(|&i| !self.peers[i].kind.healthy() || self.peers[i].done);
                // Without an idle timeout, vanished peers may hold every slot for ever
                // (slowloris): after a stall, stop as an operator would.
                let stalled = self.elapsed > self.progress + STALL;
                if plan.started >= plan.signal_after && (plan.early || quiet || stalled) {
                    plan.signalled_at = Some(self.elapsed);
                    self.signals_pending += 1;
                }
            }
            Some(at) => {
                if let Some(delay) = plan.second_signal.filter(|_| !plan.hard_stop) {
                    if self.elapsed >= at + delay {
                        plan.hard_stop = true;
                        self.signals_pending += 1;
                    }
                }
            }
        }
    }

    /// Whether `fd` is ready for the set `which` (0 read, 1 write), honestly.
    fn ready(&self, fd: RawFd, which: usize) -> bool {
        match (self.fds.get(fd as usize), which) {
            (Some(Some(Obj::Listener)), 0) => !self.backlog.is_empty(),
            (Some(Some(Obj::Signals)), 0) => self.signals_pending > 0,
            (Some(Some(Obj::Conn(l))), 0) => self.links[*l].readable(),
            (Some(Some(Obj::Conn(l))), 1) => self.links[*l].writable(),
            (Some(Some(Obj::Udp)), 0) => self.udp.as_ref().is_some_and(Datagrams::readable),
            (Some(Some(Obj::Udp)), 1) => self.udp.as_ref().is_some_and(Datagrams::writable),
            _ => false,
        }
    }

    /// Checks the sets name open descriptors only (a real select fails with EBADF).
    fn check_sets(&mut self, sets: &Sets<'_>) -> io::Result<()> {
        for set in [&sets.read, &sets.write, &sets.except] {
            for fd in set.iter() {
                if !matches!(self.fds.get(fd as usize), Some(Some(_))) {
                    self.failures.push(format!("select on closed fd {fd}"));
                    return Err(errno(libc::EBADF));
                }
            }
        }
        Ok(())
    }

    /// Rewrites the sets with what is ready (faults included); returns the count.
    fn report(&mut self, sets: &mut Sets<'_>) -> usize {
        let mut ready = [Vec::new(), Vec::new(), Vec::new()];
        let mut scratch = std::mem::take(&mut self.scratch);
        for (which, set) in [&sets.read, &sets.write].into_iter().enumerate() {
            scratch.clear();
            scratch.extend(set.iter());
            for &fd in &scratch {
                let mut is = self.ready(fd, which);
                if is && self.rng.chance(self.faults.withhold) {
                    self.counts.withheld_readiness += 1;
                    is = false;
                } else if !is && self.rng.chance(self.faults.spurious) {
                    // Linux select(2), BUGS: a descriptor may be reported ready when it is
                    // not. The signal pipe included: readiness alone is no signal.
                    self.counts.spurious_readiness += 1;
                    is = true;
                }
                if !is {
                    continue;
                }
                let urgent = which == 0 && sets.except.contains(fd);
                if urgent && self.rng.chance(self.faults.urgent) {
                    self.counts.urgent_only += 1;
                    ready[2].push(fd);
                } else {
                    ready[which].push(fd);
                }
            }
        }
        self.scratch = scratch;
        self.reported.clear();
        self.reported.extend(ready[0].iter().chain(&ready[2]));
        sets.read.clear();
        sets.write.clear();
        sets.except.clear();
        let n = ready.iter().map(Vec::len).sum();
        for (set, fds) in [&mut sets.read, &mut sets.write, &mut sets.except]
            .into_iter()
            .zip(&ready)
        {
            for &fd in fds {
                set.insert(fd);
            }
        }
        n
    }

    /// A small random step of virtual time, now and then a big jump.
    fn step(&mut self) -> Duration {
        if self.plan.signalled_at.is_none() && self.rng.chance(self.faults.jump) {
            self.counts.clock_jump += 1;
            let jump = Duration::from_millis(self.rng.range(1_000, 60_000));
            self.jumped += jump;
            return jump;
        }
        Duration::from_micros(self.rng.range(0, 3_000))
    }
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// The server's handle on the world; the test keeps another, to look and to let the
/// peers finish after the server is gone.
#[derive(Clone)]
pub struct SimNet(pub Rc<RefCell<World>>);

impl Net for SimNet {
    type Socket = SimSocket;
    type Datagram = SimSocket;

    fn select(
        &mut self,
        read: &mut FdSet,
        write: &mut FdSet,
        except: &mut FdSet,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let mut sets = Sets {
            read,
            write,
            except,
        };
        self.0.borrow_mut().select(&mut sets, timeout)
    }

    fn epoll_create(&mut self) -> io::Result<SimSocket> {
        self.0
            .borrow_mut()
            .alloc(Obj::Epoll, false)
            .ok_or_else(|| errno(libc::EMFILE))
    }

    fn epoll_ctl(
        &mut self,
        epoll: &SimSocket,
        op: Ctl,
        fd: Source<'_, Self>,
        interest: Interest,
    ) -> io::Result<()> {
        self.0.borrow_mut().epoll_ctl(epoll, op, fd.raw(), interest)
    }

    fn epoll_wait(
        &mut self,
        epoll: &SimSocket,
        events: &mut Vec<Polled>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        self.0.borrow_mut().epoll_wait(epoll, events, timeout)
    }

    fn accept(&mut self, listener: &SimSocket) -> io::Result<(SimSocket, SocketAddr)> {
        self.0.borrow_mut().accept(listener)
    }

    fn prepared(&mut self, socket: &SimSocket) -> io::Result<bool> {
        self.0.borrow_mut().prepared(socket)
    }

    fn prepare(&mut self, socket: &SimSocket) -> io::Result<()> {
        self.0.borrow_mut().prepare(socket)
    }

    fn recv(&mut self, socket: &SimSocket, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().recv(socket, buf)
    }

    fn send(&mut self, socket: &SimSocket, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().send(socket, buf)
    }

    fn recv_from(&mut self, socket: &SimSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.borrow_mut().recv_from(socket, buf)
    }

    fn relay_pipe(&mut self, size: usize) -> io::Result<(SimSocket, SimSocket)> {
        self.0.borrow_mut().relay_pipe(size)
    }

    fn splice(&mut self, from: &SimSocket, to: &SimSocket, len: usize) -> io::Result<usize> {
        self.0.borrow_mut().splice(from, to, len)
    }

    fn read(&mut self, from: &SimSocket, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read(from, buf)
    }

    fn send_to(&mut self, socket: &SimSocket, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.0.borrow_mut().send_to(socket, buf, to)
    }

    fn shutdown_write(&mut self, socket: &SimSocket) -> io::Result<()> {
        self.0.borrow_mut().shutdown_write(socket)
    }

    fn close(&mut self, socket: SimSocket) {
        self.0.borrow_mut().close(socket)
    }

    /// The fake kernel has no RST on close: a reset closes as `close` does, and the peers
    /// judge the close by the core's reason, which the world records.
    fn reset(&mut self, socket: SimSocket) {
        self.0.borrow_mut().close(socket)
    }

    fn drain(&mut self, pipe: &SimSocket, scratch: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().drain(pipe, scratch)
    }

    fn open_reserve(&mut self) -> io::Result<SimSocket> {
        self.0.borrow_mut().open_reserve()
    }

    fn nap(&mut self, d: Duration) {
        let mut world = self.0.borrow_mut();
        world.counts.naps += 1;
        world.tick(d);
    }

    fn now(&self) -> Instant {
        self.0.borrow().now()
    }
}

/// The calls, as the kernel would answer them (and as the faults bend them).
impl World {
    /// What every wait checks and does first: the loop's obligations, the livelock guard
    /// (`what` describes what it waits on), time passing.
    fn begin_wait(&mut self, what: impl FnOnce() -> String) -> io::Result<()> {
        self.selects += 1;
        if std::mem::take(&mut self.accept_owed) && self.accepts_this_round < self.accept_budget {
            self.failures.push(
                "a failed step on one accepted socket stopped the accepting of the others".into(),
            );
        }
        self.accepts_this_round = 0;
        if !self.pipe.is_empty() {
            // One pipe serves every connection: bytes left in it would go to the next.
            self.failures.push(format!(
                "the relay pipe holds {} bytes at a select",
                self.pipe.len()
            ));
            self.pipe.clear();
        }
        if self.selects > self.max_selects {
            let kinds: Vec<_> = self.active.iter().map(|&i| self.peers[i].kind).collect();
            self.failures.push(format!(
                "no end after {} select calls: {} started, active {kinds:?}, backlog {}, \
                 signalled {:?}, {} of {} fds open, waiting on {}",
                self.selects,
                self.plan.started,
                self.backlog.len(),
                self.plan.signalled_at,
                self.open,
                self.nofile,
                what(),
            ));
            return Err(io::Error::other("simulation: livelock"));
        }
        let step = self.step();
        self.tick(step);
        Ok(())
    }

    fn select(&mut self, sets: &mut Sets<'_>, timeout: Option<Duration>) -> io::Result<usize> {
        self.check_sets(sets)?;
        let saved = [&*sets.read, &*sets.write, &*sets.except].map(members);
        self.begin_wait(|| format!("sets {saved:?}"))?;
        if self.rng.chance(self.faults.select_eintr) {
            // The sets are unspecified after EINTR: the driver must rebuild them.
            self.counts.select_eintr += 1;
            self.reported.clear();
            sets.read.clear();
            sets.write.clear();
            sets.except.clear();
            return Err(errno(libc::EINTR));
        }
        // Nothing ready: let the world move on in small steps until something is, or
        // the timeout passes.
        let mut waited = Duration::ZERO;
        for _ in 0..5_000 {
            let n = self.report(sets);
            if n > 0 || timeout.is_some_and(|t| waited >= t) {
                return Ok(n);
            }
            restore(sets, &saved);
            let mut step = self.step();
            if let Some(t) = timeout {
                step = step.min(t - waited);
            }
            waited += step;
            self.tick(step);
        }
        self.failures
            .push("deadlock: nothing ready, server waits for ever".into());
        Err(io::Error::other("simulation: deadlock"))
    }

    fn epoll_ctl(
        &mut self,
        epoll: &SimSocket,
        op: Ctl,
        fd: RawFd,
        interest: Interest,
    ) -> io::Result<()> {
        self.counts.epoll_ctls += 1;
        if !matches!(self.fds.get(epoll.0 as usize), Some(Some(Obj::Epoll))) {
            self.failures
                .push(format!("epoll_ctl on fd {}, not an epoll", epoll.0));
            return Err(errno(libc::EBADF));
        }
        let Some(Some(_)) = self.fds.get(fd as usize) else {
            self.failures
                .push(format!("epoll_ctl {op:?} of closed fd {fd}"));
            return Err(errno(libc::EBADF));
        };
        let description = self.descriptions[fd as usize];
        let registered = self.registrations.contains_key(&description);
        match op {
            Ctl::Add if registered => {
                self.failures
                    .push(format!("EPOLL_CTL_ADD of fd {fd}, registered already"));
                return Err(errno(libc::EEXIST));
            }
            Ctl::Modify | Ctl::Delete if !registered => {
                // The trap: a registration went with the socket it belonged to.
                self.failures
                    .push(format!("EPOLL_CTL_{op:?} of fd {fd}, not registered"));
                return Err(errno(libc::ENOENT));
            }
            Ctl::Delete => {
                self.registrations.remove(&description);
            }
            Ctl::Add | Ctl::Modify => {
                if !interest.read && !interest.write {
                    // Legal, but a hang-up would then wake every wait for nothing.
                    self.failures
                        .push(format!("fd {fd} registered for no events"));
                }
                self.registrations.insert(description, (fd, interest));
            }
        }
        Ok(())
    }

    fn epoll_wait(
        &mut self,
        epoll: &SimSocket,
        events: &mut Vec<Polled>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        events.clear();
        if !matches!(self.fds.get(epoll.0 as usize), Some(Some(Obj::Epoll))) {
            self.failures
                .push(format!("epoll_wait on fd {}, not an epoll", epoll.0));
            return Err(errno(libc::EBADF));
        }
        let registered = self.registrations.len();
        self.begin_wait(|| format!("{registered} registrations"))?;
        if self.rng.chance(self.faults.select_eintr) {
            self.counts.select_eintr += 1;
            self.reported.clear();
            return Err(errno(libc::EINTR));
        }
        let mut waited = Duration::ZERO;
        for _ in 0..5_000 {
            self.poll_registrations(events);
            if !events.is_empty() || timeout.is_some_and(|t| waited >= t) {
                return Ok(events.len());
            }
            let mut step = self.step();
            if let Some(t) = timeout {
                step = step.min(t - waited);
            }
            waited += step;
            self.tick(step);
        }
        self.failures
            .push("deadlock: nothing ready, server waits for ever".into());
        Err(io::Error::other("simulation: deadlock"))
    }

    /// What an `epoll_wait` returns now: the registered descriptors that are ready for
    /// what they ask, and those hung up or in error whatever they ask; now and then one
    /// that is not ready (a spurious wakeup), or one ready but left for the next wait.
    fn poll_registrations(&mut self, events: &mut Vec<Polled>) {
        self.reported.clear();
        let registrations: Vec<(RawFd, Interest)> = self.registrations.values().copied().collect();
        for (fd, interest) in registrations {
            let hangup = match self.fds.get(fd as usize) {
                Some(Some(Obj::Conn(l))) => self.links[*l].reset,
                _ => false,
            };
            let mut read = interest.read && self.ready(fd, 0);
            let mut write = interest.write && self.ready(fd, 1);
            if (read || write || hangup) && self.rng.chance(self.faults.withhold) {
                self.counts.withheld_readiness += 1;
                continue;
            }
            if !read && !write && !hangup && self.rng.chance(self.faults.spurious / 4.0) {
                self.counts.epoll_spurious += 1;
                read = interest.read;
                write = interest.write;
            }
            if hangup {
                self.counts.epoll_hangups += 1;
            }
            if read || hangup {
                self.reported.push(fd);
            }
            if read || write || hangup {
                events.push(Polled {
                    fd,
                    read,
                    write,
                    hangup,
                });
            }
        }
    }

    pub fn accept(&mut self, listener: &SimSocket) -> io::Result<(SimSocket, SocketAddr)> {
        self.accept_owed = false;
        self.accepts_this_round += 1;
        if !matches!(self.fds.get(listener.0 as usize), Some(Some(Obj::Listener))) {
            self.failures
                .push(format!("accept on fd {}, not the listener", listener.0));
            return Err(errno(libc::EBADF));
        }
        if let Some(e) = self.call_fault() {
            // The loop may rightly give up shedding on this: a new streak starts.
            self.emfile_streak.0 = 0;
            return Err(e);
        }
        if self.backlog.is_empty() {
            self.emfile_streak.0 = 0;
            return Err(errno(libc::EAGAIN));
        }
        if self.rng.chance(self.faults.enfile) {
            self.counts.enfile += 1;
            self.emfile_streak.0 = 0;
            return Err(errno(libc::ENFILE));
        }
        if self.rng.chance(self.faults.abort) {
            self.counts.econnaborted += 1;
            if let Some(l) = self.backlog.pop_front() {
                self.links[l].reset();
            }
            return Err(errno(libc::ECONNABORTED));
        }
        let high = self.rng.chance(self.faults.high_fd);
        let Some(l) = self.backlog.front().copied() else {
            return Err(errno(libc::EAGAIN));
        };
        let Some(socket) = self.alloc(Obj::Conn(l), high) else {
            self.counts.emfile += 1;
            self.on_emfile();
            return Err(errno(libc::EMFILE));
        };
        self.emfile_streak.0 = 0;
        if high {
            self.counts.fd_beyond_setsize += 1;
        }
        self.backlog.pop_front();
        self.links[l].accepted = true;
        self.progress = self.elapsed;
        self.log(l, format_args!("accepted as fd {}", socket.0));
        // From four addresses, so that `--max-conns-per-ip` has several to count.
        let port = 10_000 + (l % 50_000) as u16;
        let ip = Ipv4Addr::new(127, 0, 0, 1 + (l % 4) as u8);
        Ok((socket, SocketAddr::from((ip, port))))
    }

    /// Whether the socket comes with its options from the listener: on even seeds, as on
    /// Linux (the loop then never calls `prepare`); on odd seeds never, so `prepare` and
    /// its failures stay exercised. Fails as `prepare` does on a socket already reset.
    pub fn prepared(&mut self, socket: &SimSocket) -> io::Result<bool> {
        self.prepare(socket)?;
        Ok(self.options_inherited)
    }

    /// The socket options, or `EINVAL` when the peer reset the connection first.
    pub fn prepare(&mut self, socket: &SimSocket) -> io::Result<()> {
        let l = self.link_of(socket)?;
        if self.rng.chance(self.faults.prepare) {
            self.counts.failed_prepare += 1;
            self.log(l, format_args!("prepare: EINVAL (the peer reset it)"));
            self.links[l].reset();
            self.accept_owed = !self.backlog.is_empty();
            return Err(errno(libc::EINVAL));
        }
        Ok(())
    }

    pub fn recv(&mut self, socket: &SimSocket, buf: &mut [u8]) -> io::Result<usize> {
        let l = self.link_of(socket)?;
        if !self.reported.contains(&socket.0) {
            // A select loop reads what select reported, nothing else: a `recv` elsewhere
            // is a probe (usually EAGAIN), or a sign the loop served stale sets.
            self.failures
                .push(format!("recv on fd {}, not reported readable", socket.0));
        }
        if let Some(e) = self.call_fault() {
            return Err(e);
        }
        let want = self.links[l].to_server.len().min(buf.len());
        let n = self.maybe_short(want);
        let link = &mut self.links[l];
        if link.reset {
            if link.reset_reported {
                return Ok(0);
            }
            link.reset_reported = true;
            return Err(errno(libc::ECONNRESET));
        }
        if n == 0 {
            let eof = link.peer_fin;
            self.log(l, format_args!("recv: eof {eof}"));
            if eof {
                self.links[l].last_io = self.elapsed;
                return Ok(0);
            }
            return Err(errno(libc::EAGAIN));
        }
        self.log(l, format_args!("recv {n} of {want} (buf {})", buf.len()));
        let link = &mut self.links[l];
        for (dst, src) in buf.iter_mut().zip(link.to_server.drain(..n)) {
            *dst = src;
        }
        if !link.server_fin {
            link.taken += n as u64;
        }
        link.last_io = self.elapsed;
        self.progress = self.elapsed;
        Ok(n)
    }

    pub fn send(&mut self, socket: &SimSocket, buf: &[u8]) -> io::Result<usize> {
        let l = self.link_of(socket)?;
        if let Some(e) = self.call_fault() {
            return Err(e);
        }
        let room = self.links[l]
            .out_cap
            .saturating_sub(self.links[l].to_peer.len());
        let n = self.maybe_short(room.min(buf.len()));
        let link = &mut self.links[l];
        if link.server_fin {
            self.failures
                .push(format!("send on connection {l} after its shutdown"));
            return Err(errno(libc::EPIPE));
        }
        if link.reset {
            return Err(errno(libc::EPIPE));
        }
        if link.peer_closed {
            // The peer's kernel takes it and answers with a RST.
            link.echoed += buf.len() as u64;
            link.reset();
            return Ok(buf.len());
        }
        if n == 0 {
            return Err(errno(libc::EAGAIN));
        }
        link.to_peer.extend(&buf[..n]);
        link.echoed += n as u64;
        link.last_io = self.elapsed;
        self.progress = self.elapsed;
        self.log(l, format_args!("send {n} of {}", buf.len()));
        Ok(n)
    }

    /// The UDP socket's datagrams, if `socket` is it.
    fn datagrams(&mut self, socket: &SimSocket) -> io::Result<&mut Datagrams> {
        match (self.fds.get(socket.0 as usize), self.udp.as_mut()) {
            (Some(Some(Obj::Udp)), Some(udp)) => Ok(udp),
            _ => {
                self.failures.push(format!(
                    "a datagram call on fd {}, not the UDP socket",
                    socket.0
                ));
                Err(errno(libc::EBADF))
            }
        }
    }

    pub fn recv_from(
        &mut self,
        socket: &SimSocket,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr)> {
        if !self.reported.contains(&socket.0) {
            self.failures.push(format!(
                "recvfrom on fd {}, not reported readable",
                socket.0
            ));
        }
        if let Some(e) = self.call_fault() {
            return Err(e);
        }
        self.datagrams(socket)?.recv_from(buf)
    }

    pub fn send_to(&mut self, socket: &SimSocket, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        if self.rng.chance(self.faults.call_eintr) {
            self.counts.call_eintr += 1;
            return Err(errno(libc::EINTR));
        }
        self.datagrams(socket)?;
        match &mut self.udp {
            Some(udp) => udp.send_to(buf, to, &mut self.rng),
            None => Err(errno(libc::EBADF)),
        }
    }

    pub fn shutdown_write(&mut self, socket: &SimSocket) -> io::Result<()> {
        let l = self.link_of(socket)?;
        let link = &mut self.links[l];
        if link.reset {
            return Err(errno(libc::ENOTCONN));
        }
        link.server_fin = true;
        self.log(l, format_args!("shutdown write"));
        Ok(())
    }

    pub fn close(&mut self, socket: SimSocket) {
        let Some(obj) = self.fds.get_mut(socket.0 as usize).and_then(Option::take) else {
            self.failures
                .push(format!("close of fd {} that is not open", socket.0));
            return;
        };
        self.open -= 1;
        // Its last descriptor closed, the open file description goes, and with it any
        // epoll registration.
        self.registrations
            .remove(&self.descriptions[socket.0 as usize]);
        match obj {
            Obj::Conn(l) => {
                self.log(l, format_args!("close"));
                let after_signal = self.plan.signalled_at.is_some();
                let link = &mut self.links[l];
                link.server_close = Some(ServerClose {
                    graceful: link.server_fin,
                    at: self.elapsed,
                    after_signal,
                });
                // close(2) with unread input sends a RST, destroying the echo in flight.
                if !link.to_server.is_empty() && !link.reset {
                    link.reset();
                }
            }
            Obj::Listener => {
                self.listening = false;
                for l in self.backlog.drain(..) {
                    self.links[l].reset();
                }
            }
            Obj::Signals
            | Obj::Reserve
            | Obj::Udp
            | Obj::RelayRead
            | Obj::RelayWrite
            | Obj::Epoll => {}
        }
    }

    pub fn drain(&mut self, pipe: &SimSocket, _scratch: &mut [u8]) -> io::Result<usize> {
        if !matches!(self.fds.get(pipe.0 as usize), Some(Some(Obj::Signals))) {
            return Err(errno(libc::EBADF));
        }
        Ok(std::mem::take(&mut self.signals_pending))
    }

    /// A pipe as Linux makes one: 64 KiB unless asked for more, here sometimes less (as if
    /// the skb pages were small), so relays are often short.
    pub fn relay_pipe(&mut self, size: usize) -> io::Result<(SimSocket, SimSocket)> {
        let read = self
            .alloc(Obj::RelayRead, false)
            .ok_or_else(|| errno(libc::EMFILE))?;
        let Some(write) = self.alloc(Obj::RelayWrite, false) else {
            self.close(read);
            return Err(errno(libc::EMFILE));
        };
        let cap = size.max(64 * 1024);
        self.pipe_cap = if self.rng.chance(0.5) {
            self.rng.range(1, 4096) as usize
        } else {
            cap
        };
        Ok((read, write))
    }

    /// A socket's bytes into the pipe (as `recv` would take them, with its faults), or the
    /// pipe's into a socket (as `send` would).
    pub fn splice(&mut self, from: &SimSocket, to: &SimSocket, len: usize) -> io::Result<usize> {
        let obj = |fd: &SimSocket| self.fds.get(fd.0 as usize).copied().flatten();
        match (obj(from), obj(to)) {
            (Some(Obj::Conn(_)), Some(Obj::RelayWrite)) => self.splice_in(from, len),
            (Some(Obj::RelayRead), Some(Obj::Conn(_))) => self.splice_out(to, len),
            (a, b) => {
                self.failures.push(format!(
                    "splice from fd {} ({a:?}) to fd {} ({b:?})",
                    from.0, to.0
                ));
                Err(errno(libc::EINVAL))
            }
        }
    }

    fn splice_in(&mut self, socket: &SimSocket, len: usize) -> io::Result<usize> {
        if !self.pipe.is_empty() {
            self.failures.push(format!(
                "a relay from fd {} into a pipe still holding {} bytes",
                socket.0,
                self.pipe.len()
            ));
        }
        let room = self.pipe_cap.saturating_sub(self.pipe.len()).min(len);
        if room == 0 {
            return Err(errno(libc::EAGAIN));
        }
        let mut bytes = vec![0; room];
        let n = self.recv(socket, &mut bytes)?;
        self.counts.relays += 1;
        self.pipe.extend(&bytes[..n]);
        Ok(n)
    }

    fn splice_out(&mut self, socket: &SimSocket, len: usize) -> io::Result<usize> {
        let bytes: Vec<u8> = self.pipe.iter().take(len).copied().collect();
        if bytes.is_empty() {
            return Err(errno(libc::EAGAIN));
        }
        let n = self.send(socket, &bytes)?;
        self.pipe.drain(..n.min(bytes.len()));
        Ok(n)
    }

    /// The pipe's bytes, perhaps fewer than asked (short reads are legal).
    pub fn read(&mut self, from: &SimSocket, buf: &mut [u8]) -> io::Result<usize> {
        if !matches!(self.fds.get(from.0 as usize), Some(Some(Obj::RelayRead))) {
            self.failures
                .push(format!("read from fd {}, not the relay pipe", from.0));
            return Err(errno(libc::EBADF));
        }
        if self.rng.chance(self.faults.call_eintr) {
            self.counts.call_eintr += 1;
            return Err(errno(libc::EINTR));
        }
        let n = self.maybe_short(self.pipe.len().min(buf.len()));
        if n == 0 {
            return Err(errno(libc::EAGAIN));
        }
        for (dst, src) in buf.iter_mut().zip(self.pipe.drain(..n)) {
            *dst = src;
        }
        self.counts.relay_kept += n as u64;
        Ok(n)
    }

    pub fn open_reserve(&mut self) -> io::Result<SimSocket> {
        self.alloc(Obj::Reserve, false)
            .ok_or_else(|| errno(libc::EMFILE))
    }

    pub fn now(&self) -> Instant {
        self.base + self.elapsed
    }
}

/// The descriptors in a set.
fn members(set: &FdSet) -> Vec<RawFd> {
    set.iter().collect()
}

fn restore(sets: &mut Sets<'_>, saved: &[Vec<RawFd>; 3]) {
    for (set, fds) in [&mut sets.read, &mut sets.write, &mut sets.except]
        .into_iter()
        .zip(saved)
    {
        set.clear();
        for &fd in fds {
            set.insert(fd);
        }
    }
}
