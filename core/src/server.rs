//! The connection table and its lifecycle: the state machine a driver feeds with events.

use crate::list::{self, Links, List};
use crate::{Action, CloseReason, ConnId, Duration, Error, ErrorKind, Instant, Interest, Queue};
use crate::{Closed, Stats};

/// How a server behaves, within the capacities fixed by its const generics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Close a connection when no byte has moved either way for this long (a slowloris
    /// peer, or one that never reads). `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Serve at most this many connections at once. Values above the compiled `MAX_CONNS`
    /// are clamped to it: check against [`Server::CAPACITY`] to report the limit.
    pub max_conns: usize,
}

impl Config {
    /// No idle timeout, every slot usable.
    pub const fn new() -> Self {
        Config {
            idle_timeout: None,
            max_conns: usize::MAX,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a slot is in its life. Which list a slot is on follows from this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// On the free list (or never used).
    Free,
    /// On the live list, ordered by last activity.
    Open,
    /// On the closing list until [`Server::poll_action`] has told the driver.
    Closing {
        reason: CloseReason,
        /// A [`Action::ShutdownWrite`] is still owed before the [`Action::Close`].
        shutdown_write: bool,
    },
}

/// One connection's memory: its queue and what the core knows of it.
struct Slot<const Q: usize> {
    generation: u32,
    state: State,
    /// The peer sent EOF: read no more, close once the queue is delivered.
    eof: bool,
    last_active: Instant,
    queue: Queue<Q>,
}

impl<const Q: usize> Slot<Q> {
    const FREE: Slot<Q> = Slot {
        generation: 0,
        state: State::Free,
        eof: false,
        last_active: Instant::ZERO,
        queue: Queue::new(),
    };

    fn id(&self, index: u16) -> ConnId {
        ConnId {
            index,
            generation: self.generation,
        }
    }
}

/// An echo server of at most `MAX_CONNS` connections, each with a queue of `QUEUE` bytes.
///
/// The server is a pure state machine: it never touches a socket or a clock. A driver
/// reports what happened (`on_*` methods, [`handle_timeout`](Self::handle_timeout)),
/// moves bytes through the slices the server lends ([`read_buf`](Self::read_buf),
/// [`write_buf`](Self::write_buf)), asks what to wait for
/// ([`listener_interest`](Self::listener_interest), [`conns`](Self::conns),
/// [`poll_timeout`](Self::poll_timeout)) and carries out what it is told
/// ([`poll_action`](Self::poll_action)).
///
/// Memory is fixed: `size_of::<Server<MAX_CONNS, QUEUE>>()` is all of it: with `QUEUE` a
/// multiple of 8, `MAX_CONNS * (QUEUE + 36) + 168` bytes on 64-bit targets and
/// `MAX_CONNS * (QUEUE + 28) + 160` on 32-bit ones. Every operation is O(1) except
/// [`shutdown`](Self::shutdown), which visits each open connection once.
///
/// ```
/// use echoloop_core::{Action, CloseReason, Config, Instant, Server};
///
/// let mut server = Server::<4, 64>::new(Config::new());
/// let now = Instant::from_millis(0);
/// let id = server.on_accepted(now).unwrap();
///
/// // The socket is readable: receive straight into the queue.
/// let buf = server.read_buf(id).unwrap();
/// buf[..5].copy_from_slice(b"hello");
/// server.on_read(now, id, 5).unwrap();
///
/// // The socket is writable: send straight from the queue, perhaps in part.
/// assert_eq!(server.write_buf(id).unwrap(), b"hello");
/// server.on_written(now, id, 5).unwrap();
///
/// // EOF with nothing queued: shut down the write side, then close.
/// server.on_read(now, id, 0).unwrap();
/// assert_eq!(server.poll_action(), Some(Action::ShutdownWrite(id)));
/// assert_eq!(server.poll_action(), Some(Action::Close(id, CloseReason::PeerClosed)));
/// assert_eq!(server.poll_action(), None);
/// ```
pub struct Server<const MAX_CONNS: usize, const QUEUE: usize> {
    slots: [Slot<QUEUE>; MAX_CONNS],
    links: [Links; MAX_CONNS],
    /// Slots freed by a close, oldest first (reusing the oldest keeps stale ids stale).
    free: List,
    /// Open connections, least recently active first.
    live: List,
    /// Connections with actions owed to the driver, in the order they were decided.
    closing: List,
    /// Slots at this index and above have never been used, so are on no list.
    fresh: u16,
    config: Config,
    /// Set by [`Server::shutdown`]: when the grace period ends.
    shutdown_deadline: Option<Instant>,
    stats: Stats,
}

impl<const MAX_CONNS: usize, const QUEUE: usize> Server<MAX_CONNS, QUEUE> {
    /// The compiled connection capacity.
    pub const CAPACITY: usize = MAX_CONNS;
    /// The compiled per-connection queue size in bytes.
    pub const QUEUE_SIZE: usize = QUEUE;

    /// A server with no connection. `const`, so it can live in a `static`.
    pub const fn new(config: Config) -> Self {
        const {
            assert!(MAX_CONNS > 0, "MAX_CONNS must be at least 1");
            assert!(
                MAX_CONNS < u16::MAX as usize,
                "MAX_CONNS must fit a u16 index"
            );
            assert!(QUEUE > 0, "QUEUE must be at least 1 byte");
        }
        Server {
            slots: [const { Slot::FREE }; MAX_CONNS],
            links: [Links::UNLINKED; MAX_CONNS],
            free: List::EMPTY,
            live: List::EMPTY,
            closing: List::EMPTY,
            fresh: 0,
            config,
            shutdown_deadline: None,
            stats: Stats {
                accepted: 0,
                refused: 0,
                closed: Closed {
                    peer_closed: 0,
                    reset: 0,
                    error: 0,
                    idle_timeout: 0,
                    shutdown: 0,
                    shutdown_timeout: 0,
                },
                bytes_in: 0,
                bytes_out: 0,
                bytes_discarded: 0,
                peak_queue: 0,
                peak_conns: 0,
            },
        }
    }

    /// The configuration in force.
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// How many connections may be open at once: `Config::max_conns` clamped to `MAX_CONNS`.
    pub const fn max_conns(&self) -> usize {
        if self.config.max_conns < MAX_CONNS {
            self.config.max_conns
        } else {
            MAX_CONNS
        }
    }

    /// Connections holding a slot: open ones, and closing ones whose actions are owed.
    pub const fn conn_count(&self) -> usize {
        self.live.len() + self.closing.len()
    }

    /// What the server has done so far.
    pub const fn stats(&self) -> &Stats {
        &self.stats
    }

    // ----- what to wait for -----

    /// Whether the driver should wait for the listener to be readable: a slot is free and
    /// the server is not shutting down. Backpressure for accepts.
    pub const fn listener_interest(&self) -> bool {
        self.shutdown_deadline.is_none() && self.conn_count() < self.max_conns()
    }

    /// What to wait for on one connection. A closing connection wants nothing.
    pub fn interest(&self, id: ConnId) -> Result<Interest, Error> {
        let slot = self.slot(id)?;
        Ok(self.slot_interest(slot))
    }

    fn slot_interest(&self, slot: &Slot<QUEUE>) -> Interest {
        if slot.state != State::Open {
            return Interest::NONE;
        }
        Interest {
            read: !slot.eof && self.shutdown_deadline.is_none() && !slot.queue.is_full(),
            write: !slot.queue.is_empty(),
        }
    }

    /// Every open connection with its interest, least recently active first: what a
    /// `select` driver puts in its fd sets. Closing connections are not listed.
    pub fn conns(&self) -> Conns<'_, MAX_CONNS, QUEUE> {
        Conns {
            server: self,
            inner: self.live.iter(&self.links),
        }
    }

    /// Bytes queued on a connection.
    pub fn queued(&self, id: ConnId) -> Result<usize, Error> {
        Ok(self.slot(id)?.queue.len())
    }

    /// When the driver must call [`handle_timeout`](Self::handle_timeout) at the latest:
    /// the earliest idle deadline, or the end of the shutdown grace period. `None`: no
    /// deadline, wait for events only.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let oldest = self
            .live
            .front()
            .and_then(|i| self.slots.get(usize::from(i)));
        let idle = match (oldest, self.config.idle_timeout) {
            (Some(slot), Some(timeout)) => Some(slot.last_active.saturating_add(timeout)),
            _ => None,
        };
        let grace = self.shutdown_deadline.filter(|_| self.live.len() > 0);
        match (idle, grace) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- what happened -----

    /// The driver accepted a socket. `Err(Full)` or `Err(ShuttingDown)`: close it, it was
    /// counted as refused.
    pub fn on_accepted(&mut self, now: Instant) -> Result<ConnId, Error> {
        if self.shutdown_deadline.is_some() {
            self.on_refused();
            return Err(Error::ShuttingDown);
        }
        let index = match self.take_free_slot() {
            Some(index) => index,
            None => {
                self.on_refused();
                return Err(Error::Full);
            }
        };
        let last_active = self.monotonic(now);
        let Some(slot) = self.slots.get_mut(usize::from(index)) else {
            return Err(Error::Full);
        };
        slot.state = State::Open;
        slot.eof = false;
        slot.last_active = last_active;
        slot.queue.clear();
        let id = slot.id(index);
        self.live.push_back(&mut self.links, index);
        self.stats.accepted = self.stats.accepted.saturating_add(1);
        self.stats.peak_conns = self.stats.peak_conns.max(self.conn_count());
        crate::macros::debug!("accepted {}", id);
        Ok(id)
    }

    fn take_free_slot(&mut self) -> Option<u16> {
        if self.conn_count() >= self.max_conns() {
            return None;
        }
        if let Some(index) = self.free.pop_front(&mut self.links) {
            return Some(index);
        }
        if usize::from(self.fresh) < MAX_CONNS {
            self.fresh += 1;
            return Some(self.fresh - 1);
        }
        None
    }

    /// The driver refused a connection on its own (say, a file descriptor it cannot
    /// watch): counted in [`Stats::refused`].
    pub fn on_refused(&mut self) {
        self.stats.refused = self.stats.refused.saturating_add(1);
    }

    /// The free space of a connection's queue, to receive into. Never empty: a full queue
    /// is `Err(QueueFull)`, so a driver cannot mistake a zero-length receive for EOF.
    pub fn read_buf(&mut self, id: ConnId) -> Result<&mut [u8], Error> {
        let shutting_down = self.shutdown_deadline.is_some();
        let slot = open_slot(&mut self.slots, id)?;
        if slot.eof || shutting_down {
            return Err(Error::ReadClosed);
        }
        if slot.queue.is_full() {
            return Err(Error::QueueFull);
        }
        Ok(slot.queue.free_mut())
    }

    /// The driver received `n` bytes into [`read_buf`](Self::read_buf); `0` means the peer
    /// sent EOF. After EOF the queue is still delivered, then the connection closes.
    pub fn on_read(&mut self, now: Instant, id: ConnId, n: usize) -> Result<(), Error> {
        let shutting_down = self.shutdown_deadline.is_some();
        let slot = open_slot(&mut self.slots, id)?;
        // During shutdown no buffer is lent, so no byte can have been received into one;
        // EOF is still news worth having.
        if slot.eof || (shutting_down && n > 0) {
            return Err(Error::ReadClosed);
        }
        if n == 0 {
            slot.eof = true;
            let drained = slot.queue.is_empty();
            self.touch(id.index, now);
            if drained {
                self.start_closing(id.index, CloseReason::PeerClosed);
            }
            return Ok(());
        }
        slot.queue.commit(n).map_err(|_| Error::TooLong)?;
        let depth = slot.queue.len();
        self.stats.bytes_in = self.stats.bytes_in.saturating_add(n as u64);
        self.stats.peak_queue = self.stats.peak_queue.max(depth);
        self.touch(id.index, now);
        Ok(())
    }

    /// The oldest queued bytes, to send. Empty when nothing is queued.
    pub fn write_buf(&self, id: ConnId) -> Result<&[u8], Error> {
        let slot = self.slot(id)?;
        if slot.state != State::Open {
            return Err(Error::Closing);
        }
        Ok(slot.queue.queued())
    }

    /// The driver sent the first `n` bytes of [`write_buf`](Self::write_buf).
    pub fn on_written(&mut self, now: Instant, id: ConnId, n: usize) -> Result<(), Error> {
        let slot = open_slot(&mut self.slots, id)?;
        slot.queue.consume(n).map_err(|_| Error::TooLong)?;
        if n == 0 {
            return Ok(());
        }
        let drained = slot.queue.is_empty();
        let eof = slot.eof;
        self.stats.bytes_out = self.stats.bytes_out.saturating_add(n as u64);
        self.touch(id.index, now);
        if drained && eof {
            self.start_closing(id.index, CloseReason::PeerClosed);
        } else if drained && self.shutdown_deadline.is_some() {
            self.start_closing(id.index, CloseReason::Shutdown);
        }
        Ok(())
    }

    /// The connection's socket failed: it closes at once, its queue is discarded.
    pub fn on_error(&mut self, id: ConnId, kind: ErrorKind) -> Result<(), Error> {
        open_slot(&mut self.slots, id)?;
        self.start_closing(id.index, CloseReason::Error(kind));
        Ok(())
    }

    /// Time has passed: close idle connections, and at the end of the shutdown grace
    /// period every connection still open.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(timeout) = self.config.idle_timeout {
            while let Some(i) = self.live.front() {
                let expired = self
                    .slots
                    .get(usize::from(i))
                    .is_some_and(|s| s.last_active.saturating_add(timeout) <= now);
                if !expired {
                    break;
                }
                self.start_closing(i, CloseReason::IdleTimeout);
            }
        }
        if self.shutdown_deadline.is_some_and(|d| d <= now) {
            while let Some(i) = self.live.front() {
                self.start_closing(i, CloseReason::ShutdownTimeout);
            }
        }
    }

    /// Begins a graceful shutdown: accept nothing more, read nothing more, deliver every
    /// queued byte, then close; after `grace`, close whatever is left. Calling it again
    /// changes nothing. [`is_shut_down`](Self::is_shut_down) tells when it is over.
    pub fn shutdown(&mut self, now: Instant, grace: Duration) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.shutdown_deadline = Some(now.saturating_add(grace));
        crate::macros::debug!("shutting down, {} open", self.live.len());
        let mut next = self.live.front();
        while let Some(i) = next {
            next = list::next(&self.links, i);
            let drained = self
                .slots
                .get(usize::from(i))
                .is_some_and(|s| s.queue.is_empty());
            if drained {
                self.start_closing(i, CloseReason::Shutdown);
            }
        }
    }

    /// True once [`shutdown`](Self::shutdown) was called and every connection is closed
    /// and its actions polled: the driver can exit.
    pub const fn is_shut_down(&self) -> bool {
        self.shutdown_deadline.is_some() && self.conn_count() == 0
    }

    // ----- what to do -----

    /// The next thing the driver must do. Drain it after every batch of events (until
    /// `None`) and before waiting again. A [`Action::Close`] frees the slot: the id is
    /// stale from then on.
    pub fn poll_action(&mut self) -> Option<Action> {
        let index = self.closing.front()?;
        let slot = self.slots.get_mut(usize::from(index))?;
        let id = slot.id(index);
        let State::Closing {
            reason,
            shutdown_write,
        } = slot.state
        else {
            // Unreachable by construction; drop it from the list rather than loop on it.
            self.closing.remove(&mut self.links, index);
            return None;
        };
        if shutdown_write {
            slot.state = State::Closing {
                reason,
                shutdown_write: false,
            };
            return Some(Action::ShutdownWrite(id));
        }
        slot.state = State::Free;
        slot.generation = slot.generation.wrapping_add(1);
        slot.queue.clear();
        self.closing.remove(&mut self.links, index);
        self.free.push_back(&mut self.links, index);
        self.stats.closed.count(reason);
        crate::macros::debug!("closed {}: {}", id, reason);
        Some(Action::Close(id, reason))
    }

    // ----- internals -----

    /// The slot of an id that is open or closing.
    fn slot(&self, id: ConnId) -> Result<&Slot<QUEUE>, Error> {
        match self.slots.get(id.index()) {
            Some(s) if s.generation == id.generation && s.state != State::Free => Ok(s),
            _ => Err(Error::UnknownConn),
        }
    }

    /// `now`, but never earlier than the most recent activity, so the live list stays
    /// ordered even if the driver's clock steps back.
    fn monotonic(&self, now: Instant) -> Instant {
        self.live
            .back()
            .and_then(|i| self.slots.get(usize::from(i)))
            .map_or(now, |s| s.last_active.max(now))
    }

    /// Marks activity on an open slot: it becomes the most recently active.
    fn touch(&mut self, index: u16, now: Instant) {
        let now = self.monotonic(now);
        if let Some(slot) = self.slots.get_mut(usize::from(index)) {
            slot.last_active = now;
        }
        if self.live.back() != Some(index) {
            self.live.remove(&mut self.links, index);
            self.live.push_back(&mut self.links, index);
        }
    }

    /// Moves an open slot to the closing list; its actions are polled next.
    fn start_closing(&mut self, index: u16, reason: CloseReason) {
        let Some(slot) = self.slots.get_mut(usize::from(index)) else {
            return;
        };
        if slot.state != State::Open {
            return;
        }
        let graceful = reason.is_graceful();
        if !graceful {
            let lost = slot.queue.len() as u64;
            self.stats.bytes_discarded = self.stats.bytes_discarded.saturating_add(lost);
            slot.queue.clear();
        }
        slot.state = State::Closing {
            reason,
            shutdown_write: graceful,
        };
        self.live.remove(&mut self.links, index);
        self.closing.push_back(&mut self.links, index);
    }
}

/// The slot of an id that is open; `Err(Closing)` for one that is closing.
fn open_slot<const Q: usize>(slots: &mut [Slot<Q>], id: ConnId) -> Result<&mut Slot<Q>, Error> {
    match slots.get_mut(id.index()) {
        Some(s) if s.generation == id.generation && s.state == State::Open => Ok(s),
        Some(s) if s.generation == id.generation && s.state != State::Free => Err(Error::Closing),
        _ => Err(Error::UnknownConn),
    }
}

/// The open connections of a [`Server`] with their interest: see [`Server::conns`].
pub struct Conns<'a, const MAX_CONNS: usize, const QUEUE: usize> {
    server: &'a Server<MAX_CONNS, QUEUE>,
    inner: list::Iter<'a>,
}

impl<const MAX_CONNS: usize, const QUEUE: usize> Iterator for Conns<'_, MAX_CONNS, QUEUE> {
    type Item = (ConnId, Interest);

    fn next(&mut self) -> Option<Self::Item> {
        let index = self.inner.next()?;
        let slot = self.server.slots.get(usize::from(index))?;
        Some((slot.id(index), self.server.slot_interest(slot)))
    }
}

impl<const MAX_CONNS: usize, const QUEUE: usize> core::fmt::Debug for Server<MAX_CONNS, QUEUE> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server")
            .field("capacity", &MAX_CONNS)
            .field("queue_size", &QUEUE)
            .field("open", &self.live.len())
            .field("closing", &self.closing.len())
            .field("shutting_down", &self.shutdown_deadline.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl<const MAX_CONNS: usize, const QUEUE: usize> defmt::Format for Server<MAX_CONNS, QUEUE> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Server {{ capacity: {}, queue_size: {}, open: {}, closing: {}, stats: {} }}",
            MAX_CONNS,
            QUEUE,
            self.live.len(),
            self.closing.len(),
            self.stats
        )
    }
}

#[cfg(feature = "defmt")]
impl<const MAX_CONNS: usize, const QUEUE: usize> defmt::Format for Conns<'_, MAX_CONNS, QUEUE> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Conns")
    }
}

impl<const MAX_CONNS: usize, const QUEUE: usize> core::fmt::Debug for Conns<'_, MAX_CONNS, QUEUE> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Conns")
    }
}

#[cfg(test)]
mod tests;
