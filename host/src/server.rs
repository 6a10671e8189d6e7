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

use echoloop_core::{Action, CloseReason, ConnId, ErrorKind, Instant};
use log::{debug, info, warn};

use crate::batch::Batching;
use crate::fd_set;
use crate::net::{Net, Sets, Sys};
use crate::sys;
use crate::trace::Trace;

/// The compiled connection capacity: with the process's own descriptors (stdio,
/// listeners, the self-pipe, the reserve fd) it fits the usual default `RLIMIT_NOFILE` of
/// 1024. `select` itself is not the limit (host rule 1).
pub const MAX_CONNS: usize = 1000;

/// The compiled per-connection queue: the most bytes held for a peer that does not read.
/// 16 KiB keeps a full streaming round (one `recv`, one `send`) to a few syscalls.
pub const QUEUE: usize = 16 * 1024;

/// The core this driver runs.
pub type Core = echoloop_core::Server<MAX_CONNS, QUEUE>;

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
    core: Box<Core>,
    pub(crate) listeners: Vec<Listener<N::Socket>>,
    /// Indexed by `ConnId::index()`.
    pub(crate) conns: Vec<Option<Conn<N::Socket>>>,
    /// Connections watched this round, in the core's order: kept for `--trace` only.
    pub(crate) watched: Vec<ConnId>,
    /// The connection on each descriptor, so that a round serves what `select` reported
    /// ready without visiting every connection watched. Grown to the highest descriptor
    /// accepted, never shrunk.
    by_fd: Vec<Option<ConnId>>,
    /// Shut down by the server and still being read (and discarded) until the peer's EOF,
    /// so that closing with unread input does not reset the connection and destroy the
    /// echo still in flight.
    pub(crate) lingering: Vec<Conn<N::Socket>>,
    pub(crate) sets: Sets,
    /// Where a look (a `select` that does not wait) writes, so that `sets` survive one
    /// that finds nothing.
    look: Sets,
    batching: Batching,
    pub(crate) signals: N::Socket,
    /// An open descriptor given up to accept-and-close when out of descriptors.
    reserve: Option<N::Socket>,
    accept_paused_until: Option<StdInstant>,
    /// When the shutdown grace period ends, once a signal came.
    shutdown_deadline: Option<StdInstant>,
    epoch: StdInstant,
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
        let reserve = net
            .open_reserve()
            .map_err(|e| sys::context("opening /dev/null", e))?;
        let epoch = net.now();
        Ok(Server {
            net,
            core: boxed_core(config)?,
            listeners: listeners
                .into_iter()
                .map(|(fd, addr)| Listener { fd, addr })
                .collect(),
            conns: (0..MAX_CONNS).map(|_| None).collect(),
            watched: Vec::with_capacity(MAX_CONNS),
            by_fd: vec![None; BY_FD_INITIAL],
            lingering: Vec::with_capacity(MAX_CONNS),
            sets: Sets::default(),
            look: Sets::default(),
            batching: Batching::new(options.batch_wait),
            signals,
            reserve: Some(reserve),
            accept_paused_until: None,
            shutdown_deadline: None,
            epoch,
            scratch: vec![0; QUEUE].into_boxed_slice(),
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
            if self.core.is_shut_down() && self.lingering.is_empty() {
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
            self.linger();
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
        for conn in &self.lingering {
            sets.read.insert(conn.fd.as_raw_fd());
        }
        self.timeout(clock)
    }

    /// The earliest of the core's deadline, the end of an accept pause and the end of the
    /// shutdown grace period, as a wait from `clock`.
    fn timeout(&self, clock: StdInstant) -> Option<Duration> {
        let core = self.core.poll_timeout().map(|deadline| {
            let now = clock.saturating_duration_since(self.epoch).as_millis() as u64;
            Duration::from_millis(deadline.as_millis().saturating_sub(now))
        });
        let other = [
            self.accept_paused_until,
            self.shutdown_deadline
                .filter(|_| !self.lingering.is_empty()),
        ];
        let other = other
            .into_iter()
            .flatten()
            .map(|t| t.saturating_duration_since(clock));
        core.into_iter().chain(other).min()
    }

    /// A signal arrived: stop accepting and start the graceful shutdown (host rule 8).
    /// A second signal ends the grace period at once.
    fn on_signal(&mut self, now: Instant) {
        match self.net.drain(&self.signals, &mut self.scratch) {
            // select may report a descriptor ready when it is not (select(2), BUGS):
            // without a byte in the pipe no signal came.
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => warn!("reading the signal pipe: {e}"),
        }
        let grace = echoloop_core::Duration::from_millis(SHUTDOWN_GRACE.as_millis() as u64);
        if self.shutdown_deadline.is_some() {
            info!("signal received again: closing every connection now");
            self.core.handle_timeout(now.saturating_add(grace));
            for conn in self.lingering.drain(..) {
                self.net.close(conn.fd);
            }
            return;
        }
        info!(
            "signal received: shutting down, delivering what is queued (grace {SHUTDOWN_GRACE:?})"
        );
        self.shutdown_deadline = Some(self.net.now() + SHUTDOWN_GRACE);
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
            // The listeners, the signal pipe and lingering sockets have no entry.
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
        if reason == CloseReason::Shutdown {
            self.lingering.push(conn);
        } else {
            self.net.close(conn.fd);
        }
    }

    /// Reads and discards from connections shut down by the server until the peer's EOF
    /// or the end of the grace period, then closes them.
    fn linger(&mut self) {
        let expired = self.shutdown_deadline.is_some_and(|d| d <= self.net.now());
        let mut i = 0;
        while let Some(conn) = self.lingering.get(i) {
            let done = expired
                || (self.sets.read.contains(conn.fd.as_raw_fd())
                    && match self.net.recv(&conn.fd, &mut self.scratch) {
                        Ok(n) => n == 0,
                        Err(e) => !matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ),
                    });
            if done {
                let conn = self.lingering.swap_remove(i);
                self.net.close(conn.fd);
            } else {
                i += 1;
            }
        }
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
    Ok(echoloop_core::Config {
        idle_timeout,
        max_conns: options.max_conns,
    })
}

/// The core on the heap. Built on a thread with a stack large enough to hold it: the value
/// is constructed on the stack before it is moved into the box (unoptimised builds make
/// more copies), and `size_of::<Core>()` (16 MiB) is more than a main thread's stack.
/// Allocating the box first and writing into it leaves one stack copy in release builds
/// instead of two: every copy touches 16 MiB, so this is what the peak RSS (VmHWM) of a
/// server is made of, 35 MB instead of 50 MB; once the thread exits, 19 MB stay resident.
fn boxed_core(config: echoloop_core::Config) -> io::Result<Box<Core>> {
    let stack = 4 * std::mem::size_of::<Core>() + (1 << 20);
    std::thread::Builder::new()
        .name("core-init".into())
        .stack_size(stack)
        .spawn(move || Box::write(Box::new_uninit(), Core::new(config)))?
        .join()
        .map_err(|_| io::Error::other("building the connection table failed"))
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
            let Ok(buf) = self.core.write_buf(self.id) else {
                return;
            };
            let len = buf.len();
            if len == 0 {
                return;
            }
            match self.net.send(self.fd, buf) {
                Ok(n) => {
                    self.moved.sent += n;
                    if self.core.on_written(self.now, self.id, n).is_err() || n < len {
                        return;
                    }
                }
                Err(e) => return self.fail(e),
            }
        }
    }

    /// Receives into the core's queue and echoes straight back in the same round. Reads
    /// again only if the last `recv` filled the whole lent slice, so no call is wasted on
    /// `EAGAIN`.
    fn receive(&mut self) {
        for _ in 0..READS_PER_ROUND {
            let Ok(buf) = self.core.read_buf(self.id) else {
                return;
            };
            let room = buf.len();
            match self.net.recv(self.fd, buf) {
                Ok(0) => {
                    self.moved.eof = true;
                    let _ = self.core.on_read(self.now, self.id, 0);
                    return;
                }
                Ok(n) => {
                    self.moved.received += n;
                    if self.core.on_read(self.now, self.id, n).is_err() {
                        return;
                    }
                    self.flush();
                    if n < room {
                        return;
                    }
                }
                Err(e) => return self.fail(e),
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
    fn memory_is_the_documented_figure() {
        // host/README.md quotes these figures: keep them in step.
        let core = std::mem::size_of::<Core>();
        // 16_420_168 bytes on x86_64 and aarch64: QUEUE plus 36 bytes per connection.
        assert!(
            core <= MAX_CONNS * (QUEUE + 64) + 4096,
            "core: {core} bytes"
        );
        let tables = MAX_CONNS * (2 * std::mem::size_of::<Option<Conn<OwnedFd>>>() + 8) + QUEUE;
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
        assert_eq!(core_config(&options(10)).unwrap().max_conns, 10);
        assert_eq!(
            core_config(&options(MAX_CONNS)).unwrap().max_conns,
            MAX_CONNS
        );
        for bad in [0, MAX_CONNS + 1] {
            let err = core_config(&options(bad)).unwrap_err().to_string();
            assert!(err.contains("1000"), "{err}");
        }
    }
}
