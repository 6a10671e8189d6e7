//! The event loop: each round it tells the readiness backend what the core wants of each
//! descriptor, waits, feeds the core what happened, and carries out what the core decided.
//!
//! The shape of Redis's `aeProcessEvents`: one loop over a backend (`poll`), `select` by
//! default or `epoll` (`--poller`), which owns its sets or registrations and decides how
//! it waits. The loop's part is the order of a round: the signal first, then accepts,
//! UDP, and the ready connections longest-waiting first.
//!
//! Every call the loop makes to the operating system goes through [`Net`], so the same
//! loop runs on real sockets ([`Sys`]) or on a simulated network (`host/tests/sim/main.rs`).

use std::cmp::Reverse;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant as StdInstant};

use echoloop_core::udp::UdpConfig;
use echoloop_core::{Action, CloseReason, ConnId, ErrorKind, Instant, Interest, RecvError, Server};
use log::{debug, error, info, warn};

use crate::config::ServeConfig;
use crate::net::{Net, Source, Sys};
use crate::nofile;
use crate::per_ip::PerIp;
use crate::poll::{Poller, PollerKind, Ready, Role, View};
use crate::relay::Relay;
use crate::storage::HeapStorage;
use crate::sys;
use crate::trace::{Moved, Names, Trace};
use crate::udp::{self, UdpReport, UdpSock};

/// The core this driver runs.
type Core = Server<HeapStorage>;

/// `recv` calls per connection per round: a fast sender cannot starve the others.
const READS_PER_ROUND: usize = 4;

/// How long a shutdown may take to deliver what is queued.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How long to stop accepting when out of descriptors and the reserve trick fails.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// How often cold free buffers are handed back to the operating system.
const RECLAIM_EVERY: Duration = Duration::from_secs(1);

/// Free buffers kept warm (resident) when the others are handed back: the last freed are
/// reused first, so a few serve a whole idle crowd.
const WARM_BUFFERS: usize = 16;

/// A socket the driver owns, as it appears in logs: the peer's own address.
struct Conn<S> {
    id: ConnId,
    fd: S,
    peer: SocketAddr,
    /// When the loop last served it, as a count of turns served (wrapping): a round
    /// serves its ready connections oldest first (see [`Driver::serve_ready`]).
    served: u32,
    /// Served before: its peer has a pace the select backend's heat should keep up with.
    spoke: bool,
    /// Its last read was large: its next receive is a relay (`relay.rs`).
    bulk: bool,
}

/// What the driver tells an observer ([`Driver::observe`]): `notify.rs` makes systemd's
/// `STATUS=` and `STOPPING=1` of it.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// Now and then: how many connections are open, and what the core has done so far.
    Tick {
        /// Connections open now.
        open: usize,
        /// The core's counts.
        stats: &'a echoloop_core::Stats,
    },
    /// A signal came: no more connections are accepted, the queued bytes go out.
    Stopping,
}

/// An observer and when it next hears from the driver.
struct Observer {
    every: Duration,
    next: StdInstant,
    hear: Box<dyn FnMut(Event<'_>) + Send>,
}

/// A listening socket.
struct Listener<S> {
    fd: S,
    addr: SocketAddr,
    /// Whether the sockets it accepts come prepared (`Net::prepared`), copied from it:
    /// asked of the first one, then trusted, saving two system calls per connection.
    inherits: Option<bool>,
}

/// The select loop: the core, its sockets, and the driver's tables. Everything a round
/// uses is allocated by [`Driver::bind`] (or [`Driver::new`]); the per-connection tables
/// reserve their capacity then and are touched only as connections arrive. `N` is the
/// operating system as the loop sees it: [`Sys`] for real sockets.
pub struct Driver<N: Net = Sys> {
    net: N,
    core: Core,
    listeners: Vec<Listener<N::Socket>>,
    /// The UDP echo sockets ([`Driver::add_udp`]).
    udp: Vec<UdpSock<N::Datagram>>,
    /// How each UDP echo guards itself.
    udp_config: UdpConfig,
    /// Indexed by `ConnId::index()`; grown (within its reserved capacity) to the highest
    /// index the core has handed out.
    conns: Vec<Option<Conn<N::Socket>>>,
    /// The connection on each descriptor, so that a round serves what the wait reported
    /// ready without visiting every connection watched. Grown to the highest descriptor
    /// accepted, never shrunk.
    by_fd: Vec<Option<ConnId>>,
    /// The readiness backend: its sets or registrations, and how it waits.
    poller: Poller<N>,
    /// Connections whose interest may have changed since the backend last heard of it:
    /// accepted or served this round.
    touched: Vec<ConnId>,
    /// What every connection's interest depends on besides its own state (the loop is
    /// shutting down; a buffer is free), as the backend last heard it.
    rules: (bool, bool),
    /// The ready connections of a round, as (turns since last served, what is ready):
    /// sorted, the order they are served in.
    turns: Vec<(u32, Ready)>,
    /// The ready listeners and UDP sockets of a round.
    own_ready: Vec<Ready>,
    /// Turns served so far, wrapping (a connection unserved for 2³² turns, hours at full
    /// load, is merely served out of order once).
    served: u32,
    /// `--accepts-per-round`.
    accepts_per_round: u32,
    /// The pipe that relays large reads; `None` where there is no `splice(2)`, or with
    /// `--splice-from off`.
    relay: Option<Relay<N::Socket>>,
    signals: N::Socket,
    /// An open descriptor given up to accept-and-close when out of descriptors.
    reserve: Option<N::Socket>,
    accept_paused_until: Option<StdInstant>,
    /// Connections per peer address, with `--max-conns-per-ip`.
    per_ip: Option<PerIp>,
    /// Buffers may have gone cold since this time (a connection moved bytes): hand them
    /// back at the next reclaim.
    reclaim_at: Option<StdInstant>,
    /// Where the reclaimable buffers are listed before their pages go back.
    cold: Vec<Range<usize>>,
    /// The last wait found a byte in the signal pipe, perhaps.
    signalled: bool,
    /// A signal came: the next one aborts.
    shutting_down: bool,
    epoch: StdInstant,
    /// Told of the counts now and then, and of the shutdown ([`Driver::observe`]).
    observer: Option<Observer>,
    /// Where the signal pipe's bytes are read to.
    scratch: Box<[u8]>,
    trace: Option<Trace>,
}

impl Driver<Sys> {
    /// Binds every address, fits the capacity to the open-file limit (raising it if it
    /// can; else lowering `max_conns`, with a log line) and allocates what the server will
    /// use. `signals` is the read end of the signal self-pipe: readable (with a byte in it)
    /// means stop (see [`signals::self_pipe`](crate::signals::self_pipe)).
    pub fn bind(options: &ServeConfig, signals: OwnedFd) -> io::Result<Driver> {
        Driver::bind_with(options, signals, Vec::new(), Vec::new())
    }

    /// As [`Driver::bind`], serving also sockets already open (socket activation,
    /// `activation.rs`): listening TCP sockets and bound UDP ones, non-blocking, each
    /// with its address. They come first in [`Driver::local_addrs`] and
    /// [`Driver::udp_addrs`].
    pub fn bind_with(
        options: &ServeConfig,
        signals: OwnedFd,
        tcp: Vec<(OwnedFd, SocketAddr)>,
        udp: Vec<(UdpSocket, SocketAddr)>,
    ) -> io::Result<Driver> {
        let mut listeners = tcp;
        listeners.reserve(options.listen.len());
        for &addr in &options.listen {
            let what = format!("cannot listen on {addr}");
            let fd = sys::listen(addr).map_err(|e| sys::context(&what, e))?;
            let addr = sys::local_addr(fd.as_fd())?;
            listeners.push((fd, addr));
        }
        let mut datagrams = udp;
        datagrams.reserve(options.udp.len());
        for &addr in &options.udp {
            let what = format!("cannot bind udp {addr}");
            let socket = sys::bind_udp(addr).map_err(|e| sys::context(&what, e))?;
            let addr = socket.local_addr()?;
            datagrams.push((socket, addr));
        }
        let mut options = options.clone();
        check(&options)?;
        let own = nofile::OWN_FDS + listeners.len() + datagrams.len();
        options.lower_max_conns(nofile::fit(options.max_conns, own));
        let mut driver = Driver::new(Sys, &options, listeners, signals)?;
        for (socket, addr) in datagrams {
            driver.add_udp(socket, addr)?;
        }
        Ok(driver)
    }
}

impl<N: Net> Driver<N> {
    /// A driver on `net` with listening sockets already bound (`options.listen` is not
    /// looked at) and the read end of the signal self-pipe: for simulations, or a caller
    /// that binds its own sockets. Refused, as on the command line, if `options` does not
    /// pass [`ServeConfig::check`].
    pub fn new(
        mut net: N,
        options: &ServeConfig,
        listeners: Vec<(N::Socket, SocketAddr)>,
        signals: N::Socket,
    ) -> io::Result<Self> {
        check(options)?;
        let storage = HeapStorage::new(options.max_conns, options.buffers(), options.queue_size)?;
        let core = Core::new(options.core(), storage)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let reserve = net
            .open_reserve()
            .map_err(|e| sys::context("opening /dev/null", e))?;
        let epoch = net.now();
        let fds = options.max_conns + nofile::OWN_FDS + 64;
        let poller = Poller::open(options.poller, &mut net, options.batch_wait(), epoch, fds)
            .map_err(|e| sys::context(&format!("--poller {}", options.poller), e))?;
        let relay = options.splice_from.0.and_then(|from| {
            Relay::open(&mut net, options.queue_size, from)
                .map_err(|e| debug!("relaying off: {e}"))
                .ok()
        });
        Ok(Driver {
            net,
            core,
            listeners: listeners
                .into_iter()
                .map(|(fd, addr)| Listener {
                    fd,
                    addr,
                    inherits: None,
                })
                .collect(),
            udp: Vec::with_capacity(options.udp.len()),
            udp_config: UdpConfig {
                datagrams: options.udp_datagrams(),
                bytes: options.udp_byte_budget(),
                hash_key: udp::hash_key(),
                ..UdpConfig::new()
            },
            // Reserved, not touched: the pages come as connections do.
            conns: Vec::with_capacity(options.max_conns),
            by_fd: Vec::with_capacity(fds),
            poller,
            touched: Vec::with_capacity(options.max_conns),
            rules: (false, true),
            turns: Vec::with_capacity(options.max_conns),
            own_ready: Vec::new(),
            served: 0,
            accepts_per_round: options.accepts_per_round,
            relay,
            signals,
            reserve: Some(reserve),
            accept_paused_until: None,
            per_ip: options
                .max_conns_per_ip
                .map(|limit| PerIp::new(options.max_conns, limit)),
            reclaim_at: None,
            cold: Vec::with_capacity(options.buffers()),
            signalled: false,
            shutting_down: false,
            epoch,
            observer: None,
            scratch: vec![0; 256].into_boxed_slice(),
            trace: options.trace.then(|| {
                let mut trace = Trace::default();
                trace.poller(options.poller);
                trace
            }),
        })
    }

    /// The readiness backend this driver waits with.
    pub fn poller(&self) -> PollerKind {
        self.poller.kind()
    }

    /// Adds a bound UDP socket to the loop, with its echo's tables (about 560 KiB of
    /// address space, resident as datagrams land). `options.udp` is not looked at: for
    /// simulations, or a caller that binds its own sockets.
    pub fn add_udp(&mut self, socket: N::Datagram, addr: SocketAddr) -> io::Result<()> {
        self.udp.push(UdpSock::new(socket, addr, self.udp_config)?);
        Ok(())
    }

    /// Serves `socket`, a connection already open, as if accepted (`serve --inetd`: the
    /// one inetd hands over). It must be non-blocking. Once it closes, with no listener
    /// or UDP socket to serve, [`Driver::run`] returns.
    pub fn adopt(&mut self, socket: N::Socket, peer: SocketAddr) -> io::Result<()> {
        self.net.prepare(&socket)?;
        let now = self.now();
        self.admit(now, socket, peer);
        Ok(())
    }

    /// Has `hear` told, every `every`, how many connections are open and the core's
    /// counts, and when a signal starts the shutdown (see [`Event`]).
    pub fn observe(&mut self, every: Duration, hear: Box<dyn FnMut(Event<'_>) + Send>) {
        let next = self.net.now() + every;
        self.observer = Some(Observer { every, next, hear });
    }

    /// The UDP sockets' addresses, in the order added (port 0 resolved).
    pub fn udp_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.udp.iter().map(|u| u.addr)
    }

    /// What each UDP echo socket has done so far.
    pub fn udp_reports(&self) -> impl Iterator<Item = UdpReport> + '_ {
        self.udp.iter().map(UdpSock::report)
    }

    /// The operating system as this driver sees it (for a simulation to inspect).
    pub fn net(&self) -> &N {
        &self.net
    }

    /// The addresses actually bound, in the order given (port 0 resolved).
    pub fn local_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.listeners.iter().map(|l| l.addr)
    }

    /// How many connections this driver serves at once (`--max-conns`, perhaps lowered to
    /// the open-file limit).
    pub fn capacity(&self) -> usize {
        self.core.capacity()
    }

    /// Buffers in the pool.
    pub fn buffers(&self) -> usize {
        self.core.buffers()
    }

    /// What the core has done so far.
    pub fn stats(&self) -> &echoloop_core::Stats {
        self.core.stats()
    }

    /// Serves until SIGINT or SIGTERM, then delivers what is queued (within
    /// [`SHUTDOWN_GRACE`]) and returns; or until nothing is left to serve (no listener,
    /// no UDP socket, no connection: `serve --inetd` once its connection closed). Errors
    /// only if the wait itself fails.
    pub fn run(&mut self) -> io::Result<()> {
        sys::precise_timers();
        loop {
            self.apply_actions();
            if self.core.is_shut_down() || self.nothing_to_serve() {
                return Ok(());
            }
            let clock = self.net.now();
            if self.accept_paused_until.is_some_and(|t| t <= clock) {
                self.accept_paused_until = None;
            }
            self.sync();
            match self.wait(self.timeout(clock)) {
                Ok(()) => {}
                // Host rule 3: a signal interrupted the wait; its byte is in the pipe.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    if let Some(trace) = &mut self.trace {
                        trace.interrupted();
                    }
                    continue;
                }
                Err(e) => return Err(sys::context(self.poller.kind().name(), e)),
            }
            let now = self.now();
            self.sort_ready();
            if self.signalled {
                self.on_signal(now);
            }
            self.accept_ready(now);
            self.serve_udp(now);
            self.serve_ready(now);
            self.core.on_timeout(now);
            self.reclaim();
            self.tell_observer();
        }
    }

    /// No listener, no UDP socket, no connection: nothing could ever arrive.
    fn nothing_to_serve(&self) -> bool {
        self.listeners.is_empty() && self.udp.is_empty() && self.core.conn_count() == 0
    }

    /// Tells the observer the counts, if its time has come.
    fn tell_observer(&mut self) {
        // Without an observer, not even the clock is read.
        let Some(observer) = self.observer.as_mut() else {
            return;
        };
        let clock = self.net.now();
        if clock < observer.next {
            return;
        }
        observer.next = clock + observer.every;
        (observer.hear)(Event::Tick {
            open: self.core.conn_count(),
            stats: self.core.stats(),
        });
    }

    /// Tells the backend what the core wants of the loop's own descriptors, and of every
    /// connection whose interest may have changed: those accepted or served since, or all
    /// of them when what every interest depends on changed (a shutdown began, the pool ran
    /// out of free buffers or got one back). Only a backend that keeps registrations
    /// needs the connections'.
    fn sync(&mut self) {
        let listening = self.core.listener_interest() && self.accept_paused_until.is_none();
        let read = Interest {
            read: true,
            write: false,
        };
        let own = [(&self.signals, read)]
            .into_iter()
            .chain(self.listeners.iter().map(|l| {
                (
                    &l.fd,
                    Interest {
                        read: listening,
                        write: false,
                    },
                )
            }));
        for (fd, interest) in own {
            let trace = self.trace.as_mut();
            let source = Source::Socket(fd);
            if let Err(e) = self
                .poller
                .watch(&mut self.net, source, Role::Own, interest, trace)
            {
                warn!("watching fd {}: {e}", fd.as_raw_fd());
            }
        }
        for u in &self.udp {
            // After a signal no new datagram is taken; waiting echoes still go out.
            let interest = Interest {
                read: !self.shutting_down,
                write: u.write_interest(),
            };
            let trace = self.trace.as_mut();
            let source = Source::Datagram(&u.socket);
            if let Err(e) = self
                .poller
                .watch(&mut self.net, source, Role::Own, interest, trace)
            {
                warn!("watching udp {}: {e}", u.addr);
            }
        }
        if !self.poller.follows_interest() {
            // Read from the core every round instead (host rule 2).
            self.touched.clear();
            return;
        }
        let rules = (self.shutting_down, self.core.free_buffers() > 0);
        if rules != self.rules {
            self.rules = rules;
            self.touched.clear();
            self.touched.extend(self.core.conns().map(|(id, _)| id));
        }
        let mut touched = std::mem::take(&mut self.touched);
        for id in touched.drain(..) {
            let Ok(interest) = self.core.interest(id) else {
                continue;
            };
            let Some(conn) = self.conns.get(id.index()).and_then(Option::as_ref) else {
                continue;
            };
            if conn.id != id {
                continue;
            }
            let trace = self.trace.as_mut();
            let source = Source::Socket(&conn.fd);
            if let Err(e) = self
                .poller
                .watch(&mut self.net, source, Role::Conn, interest, trace)
            {
                // ENOMEM, ENOSPC (max_user_watches): this connection only.
                warn!("watching {}: {e}; closing it", conn.peer);
                let _ = self.core.on_error(id, ErrorKind::Other);
            }
        }
        self.touched = touched;
    }

    /// One round's wait, however the backend waits.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let tables = Tables {
            core: &self.core,
            conns: &self.conns,
            by_fd: &self.by_fd,
            listeners: &self.listeners,
            udp: &self.udp,
            signals: self.signals.as_raw_fd(),
            now: self.core_time(self.net.now()),
        };
        self.poller
            .wait(&mut self.net, &tables, timeout, self.trace.as_mut())
    }

    /// Sorts what the wait found ready: the signal pipe, the listeners and UDP sockets, and
    /// the connections, longest waiting first (see [`Driver::serve_ready`]).
    fn sort_ready(&mut self) {
        self.signalled = false;
        self.turns.clear();
        self.own_ready.clear();
        let signals = self.signals.as_raw_fd();
        for &ready in self.poller.ready() {
            if ready.fd == signals {
                self.signalled = ready.read;
            } else if let Some(conn) = conn_on(&self.by_fd, &self.conns, ready.fd) {
                self.turns
                    .push((self.served.wrapping_sub(conn.served), ready));
            } else {
                self.own_ready.push(ready);
            }
        }
        longest_waiting_first(&mut self.turns);
    }

    /// Whether the last wait found `fd` (a listener or UDP socket) ready.
    fn own_ready(&self, fd: RawFd) -> Option<Ready> {
        self.own_ready.iter().find(|r| r.fd == fd).copied()
    }

    /// The core's clock: milliseconds on a monotonic clock since start-up.
    fn now(&self) -> Instant {
        self.core_time(self.net.now())
    }

    /// A reading of the monotonic clock as the core's time.
    fn core_time(&self, clock: StdInstant) -> Instant {
        let elapsed = clock.saturating_duration_since(self.epoch);
        Instant::from_millis(elapsed.as_millis() as u64)
    }

    /// The earliest of the core's deadline, the end of an accept pause, the next reclaim
    /// and the observer's next tick, as a wait from `clock`.
    fn timeout(&self, clock: StdInstant) -> Option<Duration> {
        let now = self.core_time(clock).as_millis();
        let core = self
            .core
            .poll_timeout()
            .map(|deadline| Duration::from_millis(deadline.as_millis().saturating_sub(now)));
        let pause = self
            .accept_paused_until
            .map(|t| t.saturating_duration_since(clock));
        let reclaim = self.reclaim_at.map(|t| t.saturating_duration_since(clock));
        let observer = self
            .observer
            .as_ref()
            .map(|o| o.next.saturating_duration_since(clock));
        core.into_iter()
            .chain(pause)
            .chain(reclaim)
            .chain(observer)
            .min()
    }

    /// Once a second after bytes moved, hands the pages of cold free buffers back to the
    /// operating system (`madvise`), so that the resident memory follows the bytes waiting.
    fn reclaim(&mut self) {
        let clock = self.net.now();
        match self.reclaim_at {
            Some(at) if at <= clock => {}
            Some(_) => return,
            None => {
                if self.core.free_buffers() < self.core.buffers() {
                    self.reclaim_at = Some(clock + RECLAIM_EVERY);
                }
                return;
            }
        }
        // Listed first: the core lends its list, the storage is then free to change.
        self.cold.clear();
        self.cold.extend(self.core.reclaimable(WARM_BUFFERS));
        let storage = self.core.storage_mut();
        for range in self.cold.drain(..) {
            storage.discard(range);
        }
        // Keep watching while buffers are in use: they may go cold by the next time.
        let busy = self.core.free_buffers() < self.core.buffers();
        self.reclaim_at = busy.then(|| clock + RECLAIM_EVERY);
    }

    /// A signal arrived: stop accepting and start the graceful shutdown (host rule 8).
    /// A second signal aborts every connection at once.
    fn on_signal(&mut self, now: Instant) {
        match self.net.drain(&self.signals, &mut self.scratch) {
            // select may report a descriptor ready when it is not (select(2), BUGS), and
            // epoll too: without a byte in the pipe no signal came.
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => warn!("reading the signal pipe: {e}"),
        }
        let grace = echoloop_core::Duration::from_millis(SHUTDOWN_GRACE.as_millis() as u64);
        if self.shutting_down {
            info!("signal received again: closing every connection now");
            self.core.abort();
            return;
        }
        info!(
            "signal received: shutting down, delivering what is queued (grace {SHUTDOWN_GRACE:?})"
        );
        self.shutting_down = true;
        if let Some(observer) = &mut self.observer {
            (observer.hear)(Event::Stopping);
        }
        // Closing the listeners makes new connection attempts fail at once.
        for listener in self.listeners.drain(..) {
            self.poller.forget(listener.fd.as_raw_fd());
            self.net.close(listener.fd);
        }
        self.core.shutdown(now, grace);
    }

    /// Accepts from every readable listener, a bounded number each (host rule 6).
    fn accept_ready(&mut self, now: Instant) {
        for i in 0..self.listeners.len() {
            let Some(listener) = self.listeners.get(i) else {
                break;
            };
            if !self
                .own_ready(listener.fd.as_raw_fd())
                .is_some_and(|r| r.read)
            {
                continue;
            }
            for _ in 0..self.accepts_per_round {
                if !self.core.listener_interest() || !self.accept_one(i, now) {
                    break;
                }
            }
        }
    }

    /// One `accept` on listener `i`; false when the listener has nothing more for now.
    fn accept_one(&mut self, i: usize, now: Instant) -> bool {
        let Some(listener) = self.listeners.get(i) else {
            return false;
        };
        match self.net.accept(&listener.fd) {
            Ok((fd, peer)) => {
                match self.prepare(i, &fd) {
                    Ok(()) => self.admit(now, fd, peer),
                    // The peer reset it already (macOS: EINVAL): this socket only.
                    Err(e) => {
                        debug!("closing a connection just accepted: {e}");
                        self.net.close(fd);
                        self.core.on_refused();
                    }
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
            Err(e) => match e.raw_os_error() {
                // The peer gave up while queued (or a protocol hiccup): try the next one.
                Some(libc::ECONNABORTED | libc::EPROTO | libc::EPERM) => true,
                Some(libc::EMFILE | libc::ENFILE) => {
                    self.shed_load(i, &e);
                    false
                }
                _ => {
                    warn!(
                        "accept on {}: {e}; pausing accepts for {ACCEPT_PAUSE:?}",
                        listener.addr
                    );
                    self.accept_paused_until = Some(self.net.now() + ACCEPT_PAUSE);
                    false
                }
            },
        }
    }

    /// Urgent data inline and no Nagle delay on a socket listener `i` just accepted, unless
    /// the listener's sockets come with both (learnt from its first one).
    fn prepare(&mut self, i: usize, fd: &N::Socket) -> io::Result<()> {
        let Some(listener) = self.listeners.get_mut(i) else {
            return self.net.prepare(fd);
        };
        let inherits = match listener.inherits {
            Some(inherits) => inherits,
            None => {
                let inherits = self.net.prepared(fd)?;
                listener.inherits = Some(inherits);
                inherits
            }
        };
        if inherits {
            Ok(())
        } else {
            self.net.prepare(fd)
        }
    }

    /// Gives an accepted socket a slot, or closes it when its address holds its share
    /// already or the core refuses. Any descriptor number is served (host rule 1).
    fn admit(&mut self, now: Instant, fd: N::Socket, peer: SocketAddr) {
        if let Some(per_ip) = &mut self.per_ip {
            if !per_ip.admit(peer.ip()) {
                self.net.close(fd);
                self.core.on_refused();
                info!("refusing {peer}: its address holds --max-conns-per-ip connections");
                return;
            }
        }
        let raw = fd.as_raw_fd();
        match self.core.on_accepted(now) {
            Ok(id) => {
                info!("connection from {peer}");
                if let Some(trace) = &mut self.trace {
                    trace.event(peer, format_args!("accepted as {id} (fd {raw})"));
                }
                set(&mut self.by_fd, usize::try_from(raw).unwrap_or(0), Some(id));
                let served = self.served;
                let conn = Conn {
                    id,
                    fd,
                    peer,
                    served,
                    spoke: false,
                    bulk: false,
                };
                set(&mut self.conns, id.index(), Some(conn));
                self.touched.push(id);
            }
            Err(e) => {
                if let Some(per_ip) = &mut self.per_ip {
                    per_ip.release(peer.ip());
                }
                self.net.close(fd);
                info!("refusing {peer}: {e}");
            }
        }
    }

    /// Out of descriptors (host rule 6): accepting would fail again at once and `select`
    /// would report the listener readable for ever. Like libuv's `uv__emfile_trick`, give
    /// up the reserve descriptor, accept and close what is pending, and take the reserve
    /// back; failing that, stop watching the listener for a moment.
    fn shed_load(&mut self, i: usize, err: &io::Error) {
        let Some(listener) = self.listeners.get(i) else {
            return;
        };
        warn!(
            "accept on {}: {err}; closing pending connections",
            listener.addr
        );
        if let Some(reserve) = self.reserve.take() {
            self.net.close(reserve);
            for _ in 0..self.accepts_per_round {
                match self.net.accept(&listener.fd) {
                    Ok((fd, peer)) => {
                        self.net.close(fd);
                        self.core.on_refused();
                        info!("refusing {peer}: out of file descriptors");
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            self.reserve = self.net.open_reserve().ok();
        }
        if self.reserve.is_none() {
            self.accept_paused_until = Some(self.net.now() + ACCEPT_PAUSE);
        }
    }

    /// Serves the UDP sockets the wait reported ready: echoes that waited go first, then at
    /// most [`udp::DATAGRAMS_PER_ROUND`] new datagrams each.
    fn serve_udp(&mut self, now: Instant) {
        for i in 0..self.udp.len() {
            let Some(fd) = self.udp.get(i).map(|u| u.socket.as_raw_fd()) else {
                break;
            };
            let Some(ready) = self.own_ready(fd) else {
                continue;
            };
            let Some(u) = self.udp.get_mut(i) else {
                break;
            };
            if ready.write {
                u.flush(&mut self.net);
            }
            if ready.read && !self.shutting_down {
                u.receive(&mut self.net, now);
            }
        }
    }

    /// Serves every connection the wait reported ready, the one served longest ago first.
    /// `select` says what is ready, not since when; but a connection's next message comes
    /// about as long after its last echo as the next one's, so the order they were last
    /// served in is the order they became ready in. First come, first served (what an
    /// epoll loop gets from its ready list) is what keeps the tail short: in descriptor
    /// order a connection that missed one round waited almost two.
    fn serve_ready(&mut self, now: Instant) {
        // Lent out while the turns are served, then put back with its capacity.
        let turns = std::mem::take(&mut self.turns);
        for &(_, ready) in &turns {
            self.serve(ready, now);
        }
        self.turns = turns;
    }

    /// Serves one connection the wait reported ready.
    fn serve(&mut self, ready: Ready, now: Instant) {
        let Some(id) = conn_on(&self.by_fd, &self.conns, ready.fd).map(|conn| conn.id) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(id.index()).and_then(Option::as_mut) else {
            return;
        };
        self.served = self.served.wrapping_add(1);
        conn.served = self.served;
        conn.spoke = true;
        self.touched.push(id);
        let mut turn = Turn {
            core: &mut self.core,
            net: &mut self.net,
            relay: self.relay.as_mut(),
            now,
            id,
            fd: &conn.fd,
            bulk: &mut conn.bulk,
            moved: Moved::default(),
        };
        if ready.write {
            turn.flush();
        }
        if ready.read {
            turn.receive();
        }
        let moved = turn.moved;
        if let Some(trace) = &mut self.trace {
            trace.moved(conn.peer, &moved, self.core.queued(id).ok());
        }
        if self.relay.as_ref().is_some_and(|relay| relay.broken) {
            self.stop_relaying();
        }
    }

    /// The relay's pipe lost bytes (see `relay.rs`): close it, and receive and send from
    /// now on.
    fn stop_relaying(&mut self) {
        if let Some(relay) = self.relay.take() {
            error!("the relay pipe lost bytes: relaying stops, the connection closes");
            relay.close(&mut self.net);
        }
    }

    /// Carries out the core's decisions: shut down write sides, close sockets.
    fn apply_actions(&mut self) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::ShutdownWrite(id) => {
                    let Some(conn) = self.conns.get(id.index()).and_then(Option::as_ref) else {
                        continue;
                    };
                    if conn.id != id {
                        continue;
                    }
                    if let Err(e) = self.net.shutdown_write(&conn.fd) {
                        debug!("shutdown of {}: {e}", conn.peer);
                    }
                    if let Some(trace) = &mut self.trace {
                        trace.event(conn.peer, format_args!("core: shut down write side"));
                    }
                }
                Action::Close(id, reason) => self.close(id, reason),
            }
        }
    }

    fn close(&mut self, id: ConnId, reason: CloseReason) {
        let Some(slot) = self.conns.get_mut(id.index()) else {
            return;
        };
        let Some(conn) = slot.take_if(|c| c.id == id) else {
            return;
        };
        if let Some(entry) = self.by_fd.get_mut(conn.fd.as_raw_fd() as usize) {
            *entry = None;
        }
        self.poller.forget(conn.fd.as_raw_fd());
        if let Some(per_ip) = &mut self.per_ip {
            per_ip.release(conn.peer.ip());
        }
        info!("closing {}: {reason}", conn.peer);
        if let Some(trace) = &mut self.trace {
            trace.event(conn.peer, format_args!("core: close ({reason})"));
        }
        if reason.is_graceful() {
            self.net.close(conn.fd);
        } else {
            self.net.reset(conn.fd);
        }
    }
}

/// Sets `table[index]`, first growing the table with `None`s if it is shorter. Within the
/// capacity reserved at start-up this allocates nothing; past it (a descriptor beyond
/// what the open-file limit suggested), the table doubles.
fn set<T>(table: &mut Vec<Option<T>>, index: usize, value: Option<T>) {
    if index >= table.len() {
        let len = if index < table.capacity() {
            index + 1
        } else {
            (index + 1).next_power_of_two()
        };
        table.resize_with(len, || None);
    }
    if let Some(entry) = table.get_mut(index) {
        *entry = value;
    }
}

/// The connection on descriptor `raw`, if any (the listeners, the signal pipe and the
/// UDP sockets have none).
fn conn_on<'a, S>(
    by_fd: &[Option<ConnId>],
    conns: &'a [Option<Conn<S>>],
    raw: RawFd,
) -> Option<&'a Conn<S>> {
    let id = (*by_fd.get(usize::try_from(raw).ok()?)?)?;
    let conn = conns.get(id.index())?.as_ref()?;
    (conn.id == id).then_some(conn)
}

/// The driver's tables as the backend reads them while it waits, and the names `--trace`
/// gives descriptors.
struct Tables<'a, S, D> {
    core: &'a Core,
    conns: &'a [Option<Conn<S>>],
    by_fd: &'a [Option<ConnId>],
    listeners: &'a [Listener<S>],
    udp: &'a [UdpSock<D>],
    signals: RawFd,
    /// The core's time at the wait.
    now: Instant,
}

impl<S: AsRawFd, D: AsRawFd> View for Tables<'_, S, D> {
    fn conns(&self) -> usize {
        self.core.conn_count()
    }

    fn fds(&self) -> usize {
        self.by_fd.len()
    }

    fn recent(&self, within: echoloop_core::Duration, visit: &mut dyn FnMut(RawFd, Interest)) {
        for (id, interest) in self.core.recently_active(self.now, within) {
            if let Some(conn) = self.conns.get(id.index()).and_then(Option::as_ref) {
                visit(conn.fd.as_raw_fd(), interest);
            }
        }
    }

    fn all(&self, visit: &mut dyn FnMut(RawFd, Interest)) {
        for (id, interest) in self.core.conns() {
            if let Some(conn) = self.conns.get(id.index()).and_then(Option::as_ref) {
                visit(conn.fd.as_raw_fd(), interest);
            }
        }
    }

    fn interest(&self, fd: RawFd) -> Option<Interest> {
        let id = conn_on(self.by_fd, self.conns, fd)?.id;
        self.core.interest(id).ok()
    }

    fn spoke(&self, fd: RawFd) -> bool {
        conn_on(self.by_fd, self.conns, fd).is_some_and(|conn| conn.spoke)
    }
}

impl<S: AsRawFd, D: AsRawFd> Names for Tables<'_, S, D> {
    fn name(&self, fd: RawFd, out: &mut String) {
        use std::fmt::Write as _;
        if fd == self.signals {
            out.push_str("signals");
        } else if let Some(l) = self.listeners.iter().find(|l| l.fd.as_raw_fd() == fd) {
            let _ = write!(out, "listener {}", l.addr);
        } else if let Some(u) = self.udp.iter().find(|u| u.socket.as_raw_fd() == fd) {
            let _ = write!(out, "udp {}", u.addr);
        } else if let Some(conn) = conn_on(self.by_fd, self.conns, fd) {
            let _ = write!(out, "{}", conn.peer);
        } else {
            let _ = write!(out, "fd {fd}");
        }
    }
}

/// [`ServeConfig::check`], as an I/O error for the driver's callers.
fn check(options: &ServeConfig) -> io::Result<()> {
    options
        .check()
        .map_err(|text| io::Error::new(io::ErrorKind::InvalidInput, text))
}

/// Orders a round's turns, (turns served since, what is ready), the one served longest
/// ago first; ties (connections not served since they were accepted) by descriptor.
fn longest_waiting_first(turns: &mut [(u32, Ready)]) {
    turns.sort_unstable_by_key(|&(waited, ready)| (Reverse(waited), ready.fd));
}

/// One connection's turn in a round: what `select` reported ready is served here.
struct Turn<'a, N: Net> {
    core: &'a mut Core,
    net: &'a mut N,
    relay: Option<&'a mut Relay<N::Socket>>,
    now: Instant,
    id: ConnId,
    fd: &'a N::Socket,
    /// The connection's last read was large: relay the next one.
    bulk: &'a mut bool,
    /// What the turn moved, for `--trace`.
    moved: Moved,
}

/// What one read (a `recv` or a relay) took from a socket.
struct Got {
    /// Bytes taken from the socket; 0 is its peer's EOF.
    taken: usize,
    /// The most it could have taken: the lent slice.
    room: usize,
    /// For a relay, the bytes that went straight back.
    through: Option<usize>,
}

impl Got {
    fn received(taken: usize, room: usize) -> Self {
        Got {
            taken,
            room,
            through: None,
        }
    }
}

impl<N: Net> Turn<'_, N> {
    /// Sends what is queued until the socket takes no more (partial writes, host rule 4).
    fn flush(&mut self) {
        // At most twice: the queued bytes may wrap around the end of the ring.
        loop {
            let (net, fd) = (&mut *self.net, self.fd);
            let sent = self.core.send_with(self.now, self.id, |buf| {
                if buf.is_empty() {
                    return (0, Ok((0, 0)));
                }
                match net.send(fd, buf) {
                    Ok(n) => (n, Ok((n, buf.len()))),
                    Err(e) => (0, Err(e)),
                }
            });
            match sent {
                Ok(Ok((n, len))) => {
                    self.moved.sent += n;
                    if n == 0 || n < len {
                        return;
                    }
                }
                Ok(Err(e)) => return self.fail(e),
                // Closing: its action says the rest.
                Err(e) => return debug_assert!(!e.is_driver_bug(), "send_with: {e}"),
            }
        }
    }

    /// Receives (or relays) and echoes straight back in the same round. Reads again only
    /// if the last read filled the whole lent slice, so no call is wasted on `EAGAIN`.
    fn receive(&mut self) {
        for _ in 0..READS_PER_ROUND {
            let got = match self.relay_once() {
                Some(relayed) => Ok(relayed),
                None => self.recv_once(),
            };
            match got {
                // The lent buffer is never empty, so 0 is the peer's EOF.
                Ok(Ok(Got { taken: 0, .. })) => {
                    self.moved.eof = true;
                    let _ = self.core.on_eof(self.now, self.id);
                    return;
                }
                Ok(Ok(got)) => {
                    self.moved.received += got.taken;
                    if let Some(relay) = &self.relay {
                        *self.bulk = got.taken >= relay.from;
                    }
                    match got.through {
                        // What the socket did not take back waits for it to drain.
                        Some(through) => self.moved.sent += through,
                        None => self.flush(),
                    }
                    if got.taken < got.room {
                        return;
                    }
                }
                Ok(Err(e)) => return self.fail(e),
                // Full queue, no free buffer, or closing: the core's interest says when.
                Err(e) => return debug_assert!(!e.is_driver_bug(), "recv_with: {e}"),
            }
        }
    }

    /// One `recv` into the core's queue.
    fn recv_once(&mut self) -> Result<io::Result<Got>, RecvError> {
        let (net, fd) = (&mut *self.net, self.fd);
        self.core
            .recv_with(self.now, self.id, |buf| match net.recv(fd, buf) {
                Ok(taken) => (taken, Ok(Got::received(taken, buf.len()))),
                Err(e) => (0, Err(e)),
            })
    }

    /// One relay, if the connection's reads are large and the core lends it a buffer for
    /// one (nothing queued: relayed bytes must not overtake queued ones); `None`: receive
    /// instead.
    fn relay_once(&mut self) -> Option<io::Result<Got>> {
        if !*self.bulk {
            return None;
        }
        let relay = self.relay.as_deref_mut()?;
        let (net, fd) = (&mut *self.net, self.fd);
        let relayed = self.core.relay_with(self.now, self.id, |buf| {
            let room = buf.len();
            let (relayed, taken) = relay.pass(net, fd, buf);
            let got = taken.map(|taken| Got {
                taken,
                room,
                through: Some(relayed.through),
            });
            (relayed, got)
        });
        // Bytes queued, or a connection that only drains or is done: `recv_with` knows
        // what to do with those.
        relayed.ok()
    }

    /// A failed `recv`/`send`: `EAGAIN` and `EINTR` are "not now" (select will report the
    /// socket again); anything else closes this connection only (host rule 4).
    fn fail(&mut self, err: io::Error) {
        if matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        ) {
            return;
        }
        let kind = match err.raw_os_error() {
            Some(libc::ECONNRESET | libc::EPIPE) => ErrorKind::Reset,
            Some(libc::ETIMEDOUT) => ErrorKind::TimedOut,
            Some(libc::ENOTCONN | libc::ESHUTDOWN) => ErrorKind::HangUp,
            _ => ErrorKind::Other,
        };
        debug!("{}: {err}", self.id);
        let _ = self.core.on_error(self.id, kind);
        self.moved.error = Some(err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_connections_are_served_longest_waiting_first_across_the_wrap() {
        // Served at turns 7 (fds 5 and 2), 9 (fd 3), u32::MAX (fd 8) and 1 after the
        // counter wrapped (fd 4); it now reads 10.
        let now: u32 = 10;
        let mut turns: Vec<(u32, Ready)> = [(7, 5), (9, 3), (u32::MAX, 8), (1, 4), (7, 2)]
            .iter()
            .map(|&(served, fd)| {
                let ready = Ready {
                    fd,
                    read: true,
                    write: false,
                };
                (now.wrapping_sub(served), ready)
            })
            .collect();
        longest_waiting_first(&mut turns);
        let order: Vec<RawFd> = turns.iter().map(|&(_, r)| r.fd).collect();
        assert_eq!(order, [8, 4, 2, 5, 3]);
    }

    #[test]
    fn tables_grow_within_their_reserved_capacity_without_moving() {
        let mut table: Vec<Option<u32>> = Vec::with_capacity(100);
        let at = table.as_ptr();
        set(&mut table, 41, Some(1));
        assert_eq!(table.len(), 42);
        set(&mut table, 99, Some(2));
        assert_eq!((table.len(), table.as_ptr()), (100, at));
        set(&mut table, 100, Some(3));
        assert_eq!(table.len(), 128);
        assert_eq!(
            (table[41], table[99], table[100], table[0]),
            (Some(1), Some(2), Some(3), None)
        );
    }
}
