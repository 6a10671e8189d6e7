//! The select(2) driver: each round it asks the core what to wait for, waits, feeds the
//! core what happened, and carries out what the core decided.
//!
//! The shape of Redis's `ae_select.c`: the fd sets are rebuilt from the core's interest
//! before every call (host rule 2), so no stale descriptor is ever watched. Per-round work
//! is proportional to the open connections (the core lists them), never to the capacity.
//!
//! Every call the loop makes to the operating system goes through [`Net`], so the same
//! loop runs on real sockets ([`Sys`]) or on a simulated network (`host/tests/sim/main.rs`).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant as StdInstant};

use echoloop_core::{Action, CloseReason, ConnId, ConnSlot, ErrorKind, Instant};
use echoloop_core::{Parts, PartsRef, Storage};
use log::{debug, info, warn};

use crate::batch::Batching;
use crate::fd_set;
use crate::net::{Net, Sets, Sys};
use crate::sys;
use crate::trace::Trace;

/// The most connections `--max-conns` allows: with the process's own descriptors (stdio,
/// listeners, the self-pipe, the reserve fd) it fits the usual default `RLIMIT_NOFILE` of
/// 1024. `select` itself is not the limit (host rule 1).
pub const MAX_CONNS: usize = 1000;

/// The size of a pool buffer, so the most bytes held for a peer that does not read.
/// 16 KiB keeps a full streaming round (one `recv`, one `send`) to a few syscalls.
pub const QUEUE: usize = 16 * 1024;

/// The core this driver runs, on the heap.
pub type Core = echoloop_core::Server<HeapStorage>;

/// The core's memory on the heap: one slot per connection and one pool buffer per
/// connection (`--max-conns` of each). The pool's bytes are one zeroed allocation, which
/// the allocator takes straight from the kernel (calloc, mmap): its pages cost nothing until
/// a buffer is first used, so the resident memory follows the buffers in use.
pub struct HeapStorage {
    slots: Box<[ConnSlot]>,
    free: Box<[u16]>,
    bytes: Box<[u8]>,
}

impl HeapStorage {
    fn new(conns: usize) -> Self {
        HeapStorage {
            slots: vec![ConnSlot::EMPTY; conns].into_boxed_slice(),
            free: vec![0; conns].into_boxed_slice(),
            bytes: vec![0; conns * QUEUE].into_boxed_slice(),
        }
    }
}

impl Storage for HeapStorage {
    fn parts(&mut self) -> Parts<'_> {
        Parts {
            slots: &mut self.slots,
            free: &mut self.free,
            bytes: &mut self.bytes,
            queue_size: QUEUE,
        }
    }

    fn parts_ref(&self) -> PartsRef<'_> {
        PartsRef {
            slots: &self.slots,
            free: &self.free,
            bytes: &self.bytes,
            queue_size: QUEUE,
        }
    }
}

/// Entries of the descriptor → connection table to start with: every descriptor of the
/// usual 1024-descriptor process, so that only a server past it ever grows the table.
const BY_FD_INITIAL: usize = 1024;

/// Accepts per listener per round: new connections cannot starve open ones.
const ACCEPTS_PER_ROUND: usize = 64;

/// `recv` calls per connection per round: a fast sender cannot starve the others.
const READS_PER_ROUND: usize = 4;

/// The default batching nap (`--batch-wait`): long enough for several more sockets to
/// become ready under load, short next to the queueing delay such load already has
/// (p50 350 µs at 50 busy connections). BENCHMARKS.md has 0, 20, 40 and 80 µs side by side.
pub const BATCH_WAIT: Duration = Duration::from_micros(40);

/// How long a shutdown may take to deliver what is queued.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How long to stop accepting when out of descriptors and the reserve trick fails.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// What `echoloop serve` was asked for.
#[derive(Clone, Debug)]
pub struct Options {
    /// Addresses to listen on (IPv4 or IPv6; port 0 picks a free port).
    pub listen: Vec<SocketAddr>,
    /// At most this many connections at once; at most [`MAX_CONNS`].
    pub max_conns: usize,
    /// Close connections idle for this long.
    pub idle_timeout: Option<Duration>,
    /// Print each round's sets and events on stderr.
    pub trace: bool,
    /// When busy but few sockets are ready, nap this long before the next `select` so
    /// that one scan serves more of them (see `batch`); zero turns batching off.
    pub batch_wait: Duration,
}

/// A socket the driver owns, as it appears in logs: the peer's own address.
pub(crate) struct Conn<S> {
    pub(crate) id: ConnId,
    pub(crate) fd: S,
    pub(crate) peer: SocketAddr,
}

/// A listening socket.
pub(crate) struct Listener<S> {
    pub(crate) fd: S,
    pub(crate) addr: SocketAddr,
}

/// What one connection's turn moved, for `--trace`.
#[derive(Default)]
pub(crate) struct Moved {
    pub(crate) received: usize,
    pub(crate) sent: usize,
    pub(crate) eof: bool,
    pub(crate) error: Option<io::Error>,
}

/// A running echo server: the core, its sockets, and the driver's small tables, all
/// allocated once by [`Server::bind`] (or [`Server::new`]). `N` is the operating system
/// as the loop sees it: [`Sys`] for real sockets.
pub struct Server<N: Net = Sys> {
    net: N,
    core: Core,
    pub(crate) listeners: Vec<Listener<N::Socket>>,
    /// Indexed by `ConnId::index()`.
    pub(crate) conns: Vec<Option<Conn<N::Socket>>>,
    /// Connections watched this round, in the core's order: kept for `--trace` only.
    pub(crate) watched: Vec<ConnId>,
    /// The connection on each descriptor, so that a round serves what `select` reported
    /// ready without visiting every connection watched. Grown to the highest descriptor
    /// accepted, never shrunk.
    by_fd: Vec<Option<ConnId>>,
    pub(crate) sets: Sets,
    /// Where a look (a `select` that does not wait) writes, so that `sets` survive one
    /// that finds nothing.
    look: Sets,
    batching: Batching,
    pub(crate) signals: N::Socket,
    /// An open descriptor given up to accept-and-close when out of descriptors.
    reserve: Option<N::Socket>,
    accept_paused_until: Option<StdInstant>,
    /// A signal came: the next one aborts.
    shutting_down: bool,
    epoch: StdInstant,
    /// Where the signal pipe's bytes are read to.
    scratch: Box<[u8]>,
    trace: Option<Trace>,
}

impl Server<Sys> {
    /// Binds every address and allocates everything the server will ever use. `signals`
    /// is the read end of the signal self-pipe: readable (with a byte in it) means stop
    /// (see [`signals::self_pipe`](crate::signals::self_pipe)).
    pub fn bind(options: &Options, signals: OwnedFd) -> io::Result<Server> {
        let mut listeners = Vec::with_capacity(options.listen.len());
        for &addr in &options.listen {
            let what = format!("cannot listen on {addr}");
            let fd = sys::listen(addr).map_err(|e| sys::context(&what, e))?;
            let addr = sys::local_addr(fd.as_fd())?;
            listeners.push((fd, addr));
        }
        Server::new(Sys, options, listeners, signals)
    }
}

impl<N: Net> Server<N> {
    /// A server on `net` with listening sockets already bound (`options.listen` is not
    /// looked at) and the read end of the signal self-pipe: for simulations, or a caller
    /// that binds its own sockets.
    pub fn new(
        mut net: N,
        options: &Options,
        listeners: Vec<(N::Socket, SocketAddr)>,
        signals: N::Socket,
    ) -> io::Result<Self> {
        let config = core_config(options)?;
        let core = Core::new(config, HeapStorage::new(options.max_conns))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let reserve = net
            .open_reserve()
            .map_err(|e| sys::context("opening /dev/null", e))?;
        let epoch = net.now();
        Ok(Server {
            net,
            core,
            listeners: listeners
                .into_iter()
                .map(|(fd, addr)| Listener { fd, addr })
                .collect(),
            conns: (0..MAX_CONNS).map(|_| None).collect(),
            watched: Vec::with_capacity(MAX_CONNS),
            by_fd: vec![None; BY_FD_INITIAL],
            sets: Sets::default(),
            look: Sets::default(),
            batching: Batching::new(options.batch_wait),
            signals,
            reserve: Some(reserve),
            accept_paused_until: None,
            shutting_down: false,
            epoch,
            scratch: vec![0; 256].into_boxed_slice(),
            trace: options.trace.then(Trace::default),
        })
    }

    /// The operating system as this server sees it (for a simulation to inspect).
    pub fn net(&self) -> &N {
        &self.net
    }

    /// The addresses actually bound, in the order given (port 0 resolved).
    pub fn local_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.listeners.iter().map(|l| l.addr)
    }

    /// What the core has done so far.
    pub fn stats(&self) -> &echoloop_core::Stats {
        self.core.stats()
    }

    /// Serves until SIGINT or SIGTERM, then delivers what is queued (within
    /// [`SHUTDOWN_GRACE`]) and returns. Errors only if `select` itself fails.
    pub fn run(&mut self) -> io::Result<()> {
        sys::precise_timers();
        loop {
            self.apply_actions();
            if self.core.is_shut_down() {
                return Ok(());
            }
            let timeout = self.build_sets();
            if let Some(mut trace) = self.trace.take() {
                trace.before(self, timeout);
                self.trace = Some(trace);
            }
            match self.wait(timeout) {
                Ok(n) => {
                    if let Some(mut trace) = self.trace.take() {
                        trace.after(self, n);
                        self.trace = Some(trace);
                    }
                }
                // Host rule 3: a signal interrupted the wait; its byte is in the pipe.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    if let Some(trace) = &mut self.trace {
                        trace.interrupted();
                    }
                    continue;
                }
                Err(e) => return Err(sys::context("select", e)),
            }
            let now = self.now();
            if self.sets.read.contains(self.signals.as_raw_fd()) {
                self.on_signal(now);
            }
            self.accept_ready(now);
            self.serve_ready(now);
            self.core.handle_timeout(now);
        }
    }

    /// `select`: at once when batching is off or pointless; else a look that does not
    /// wait (after a nap if the last one found the loop busy but sparse), then, only if
    /// nothing was ready, the `select` that waits.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let conns = self.core.conn_count();
        if !self.batching.looks(conns) {
            return self.net.select(&mut self.sets, timeout);
        }
        if let Some(nap) = self.batching.nap(conns) {
            // Never past the core's next deadline.
            let nap = timeout.map_or(nap, |t| nap.min(t));
            if let Some(trace) = &mut self.trace {
                trace.nap(nap);
            }
            self.net.nap(nap);
        }
        self.look.clone_from(&self.sets);
        let ready = self.net.select(&mut self.look, Some(Duration::ZERO))?;
        self.batching.looked(ready);
        if ready > 0 {
            std::mem::swap(&mut self.sets, &mut self.look);
            return Ok(ready);
        }
        self.net.select(&mut self.sets, timeout)
    }

    /// The core's clock: milliseconds on a monotonic clock since start-up.
    fn now(&self) -> Instant {
        let elapsed = self.net.now().saturating_duration_since(self.epoch);
        Instant::from_millis(elapsed.as_millis() as u64)
    }

    /// Fills the sets from the core's interest; returns how long `select` may wait.
    fn build_sets(&mut self) -> Option<Duration> {
        let sets = &mut self.sets;
        sets.read.clear();
        sets.write.clear();
        sets.except.clear();
        sets.read.insert(self.signals.as_raw_fd());
        let clock = self.net.now();
        if self.accept_paused_until.is_some_and(|t| t <= clock) {
            self.accept_paused_until = None;
        }
        if self.core.listener_interest() && self.accept_paused_until.is_none() {
            for l in &self.listeners {
                sets.read.insert(l.fd.as_raw_fd());
            }
        }
        self.watched.clear();
        let tracing = self.trace.is_some();
        for (id, interest) in self.core.conns() {
            let Some(conn) = self.conns.get(id.index()).and_then(Option::as_ref) else {
                continue;
            };
            let fd = conn.fd.as_raw_fd();
            if interest.read {
                // Exceptional means urgent data (host rule 5): read in place, like input.
                sets.read.insert(fd);
                sets.except.insert(fd);
            }
            if interest.write {
                sets.write.insert(fd);
            }
            if tracing {
                self.watched.push(id);
            }
        }
        self.timeout(clock)
    }

    /// The earlier of the core's deadline and the end of an accept pause, as a wait from
    /// `clock`.
    fn timeout(&self, clock: StdInstant) -> Option<Duration> {
        let core = self.core.poll_timeout().map(|deadline| {
            let now = clock.saturating_duration_since(self.epoch).as_millis() as u64;
            Duration::from_millis(deadline.as_millis().saturating_sub(now))
        });
        let pause = self
            .accept_paused_until
            .map(|t| t.saturating_duration_since(clock));
        core.into_iter().chain(pause).min()
    }

    /// A signal arrived: stop accepting and start the graceful shutdown (host rule 8).
    /// A second signal aborts every connection at once.
    fn on_signal(&mut self, now: Instant) {
        match self.net.drain(&self.signals, &mut self.scratch) {
            // select may report a descriptor ready when it is not (select(2), BUGS):
            // without a byte in the pipe no signal came.
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
        // Closing the listeners makes new connection attempts fail at once.
        for listener in self.listeners.drain(..) {
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
            if !self.sets.read.contains(listener.fd.as_raw_fd()) {
                continue;
            }
            for _ in 0..ACCEPTS_PER_ROUND {
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
                self.admit(now, fd, peer);
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

    /// Gives an accepted socket a slot, or closes it when the core refuses. Any
    /// descriptor number is served (host rule 1).
    fn admit(&mut self, now: Instant, fd: N::Socket, peer: SocketAddr) {
        let raw = fd.as_raw_fd();
        match self.core.on_accepted(now) {
            Ok(id) => {
                info!("connection from {peer}");
                if let Some(trace) = &mut self.trace {
                    trace.event(peer, format_args!("accepted as {id} (fd {raw})"));
                }
                let index = usize::try_from(raw).unwrap_or(0);
                if index >= self.by_fd.len() {
                    // Doubling: a new highest descriptor allocates only now and then.
                    self.by_fd.resize((index + 1).next_power_of_two(), None);
                }
                if let Some(entry) = self.by_fd.get_mut(index) {
                    *entry = Some(id);
                }
                if let Some(slot) = self.conns.get_mut(id.index()) {
                    *slot = Some(Conn { id, fd, peer });
                }
            }
            Err(e) => {
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
            for _ in 0..ACCEPTS_PER_ROUND {
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

    /// Serves every connection `select` reported ready: the ready descriptors are read off
    /// the sets a word at a time, so a round costs what is ready, not what is watched.
    fn serve_ready(&mut self, now: Instant) {
        let sets = &self.sets;
        for raw in fd_set::ready(&sets.read, &sets.write, &sets.except) {
            // The listeners and the signal pipe have no entry.
            let Some(&Some(id)) = self.by_fd.get(raw as usize) else {
                continue;
            };
            let Some(conn) = self.conns.get(id.index()).and_then(Option::as_ref) else {
                continue;
            };
            if conn.id != id {
                continue;
            }
            let readable = sets.read.contains(raw) || sets.except.contains(raw);
            let writable = sets.write.contains(raw);
            let mut turn = Turn {
                core: &mut self.core,
                net: &mut self.net,
                now,
                id,
                fd: &conn.fd,
                moved: Moved::default(),
            };
            if writable {
                turn.flush();
            }
            if readable {
                turn.receive();
            }
            let moved = turn.moved;
            if let Some(trace) = &mut self.trace {
                trace.moved(conn.peer, &moved, self.core.queued(id).ok());
            }
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
        info!("closing {}: {reason}", conn.peer);
        if let Some(trace) = &mut self.trace {
            trace.event(conn.peer, format_args!("core: close ({reason})"));
        }
        self.net.close(conn.fd);
    }
}

/// The core's configuration, or an error naming the compiled limit.
fn core_config(options: &Options) -> io::Result<echoloop_core::Config> {
    if options.max_conns == 0 || options.max_conns > MAX_CONNS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "--max-conns {} is out of range: this build serves 1 to {MAX_CONNS} connections",
                options.max_conns
            ),
        ));
    }
    let idle_timeout = options.idle_timeout.map(|d| {
        echoloop_core::Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX))
    });
    Ok(echoloop_core::Config { idle_timeout })
}

/// One connection's turn in a round: what `select` reported ready is served here.
struct Turn<'a, N: Net> {
    core: &'a mut Core,
    net: &'a mut N,
    now: Instant,
    id: ConnId,
    fd: &'a N::Socket,
    /// What the turn moved, for `--trace`.
    moved: Moved,
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
                Err(_) => return,
            }
        }
    }

    /// Receives into the core's queue and echoes straight back in the same round. Reads
    /// again only if the last `recv` filled the whole lent slice, so no call is wasted on
    /// `EAGAIN`.
    fn receive(&mut self) {
        for _ in 0..READS_PER_ROUND {
            let (net, fd) = (&mut *self.net, self.fd);
            let received = self
                .core
                .recv_with(self.now, self.id, |buf| match net.recv(fd, buf) {
                    Ok(n) => (n, Ok((n, buf.len()))),
                    Err(e) => (0, Err(e)),
                });
            match received {
                // The lent buffer is never empty, so 0 is the peer's EOF.
                Ok(Ok((0, _))) => {
                    self.moved.eof = true;
                    let _ = self.core.on_eof(self.now, self.id);
                    return;
                }
                Ok(Ok((n, room))) => {
                    self.moved.received += n;
                    self.flush();
                    if n < room {
                        return;
                    }
                }
                Ok(Err(e)) => return self.fail(e),
                // Full queue, no free buffer, or closing: the core's interest says when.
                Err(_) => return,
            }
        }
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
    fn memory_is_the_cores_footprint() {
        // host/README.md quotes `echoloop_core::footprint` through the core's footprint
        // example: the heap storage is exactly what that formula counts.
        let storage = HeapStorage::new(MAX_CONNS);
        let lent = std::mem::size_of_val(&*storage.slots)
            + std::mem::size_of_val(&*storage.free)
            + storage.bytes.len();
        let fixed = echoloop_core::footprint(0, 0, QUEUE);
        assert_eq!(
            lent + fixed,
            echoloop_core::footprint(MAX_CONNS, MAX_CONNS, QUEUE)
        );
        assert!(std::mem::size_of::<Core>() <= fixed);
        let tables = MAX_CONNS * (2 * std::mem::size_of::<Option<Conn<OwnedFd>>>() + 8) + 256;
        assert!(tables < 200 * 1024, "driver tables: {tables} bytes");
    }

    #[test]
    fn max_conns_may_lower_the_capacity_but_not_raise_it() {
        let options = |max_conns| Options {
            listen: vec![],
            max_conns,
            idle_timeout: None,
            trace: false,
            batch_wait: BATCH_WAIT,
        };
        assert!(core_config(&options(10)).is_ok());
        assert!(core_config(&options(MAX_CONNS)).is_ok());
        for bad in [0, MAX_CONNS + 1] {
            let err = core_config(&options(bad)).unwrap_err().to_string();
            assert!(err.contains("1000"), "{err}");
        }
    }
}
