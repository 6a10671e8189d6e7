//! The connection table and its lifecycle: the state machine a driver feeds with events.

use core::ops::Range;

use crate::error::{
    AcceptError, EofError, ErrorReportError, RecvError, RelayError, SendError, UnknownConn,
};
use crate::list::{self, List, NIL};
use crate::pool::Pool;
use crate::queue;
use crate::slot::{ConnSlot, State};
use crate::storage::{self, StaticStorage, Storage, StorageError};
use crate::{Action, CloseReason, ConnId, Duration, ErrorKind, Instant, Interest, Relayed};
use crate::{Closed, Stats};

/// How a server behaves, within the capacities of its [`Storage`]. Built with methods, so
/// that a setting added later breaks no caller:
///
/// ```
/// use echoloop_core::{Config, Duration};
///
/// let config = Config::new().with_idle_timeout(Some(Duration::from_secs(30)));
/// assert_eq!(config.idle_timeout(), Some(Duration::from_secs(30)));
/// assert_eq!(Config::default().idle_timeout(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Config {
    idle_timeout: Option<Duration>,
}

impl Config {
    /// The defaults: no idle timeout.
    pub const fn new() -> Self {
        Config { idle_timeout: None }
    }

    /// Closes a connection when no byte has moved either way for `timeout` (a slowloris
    /// peer, or one that never reads), with [`CloseReason::IdleTimeout`], which resets.
    /// `None`: never.
    pub const fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// See [`with_idle_timeout`](Self::with_idle_timeout).
    pub const fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

/// Serving, shutting down gracefully, or aborted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Mode {
    Serving,
    /// [`Server::shutdown`]: until this deadline.
    ShuttingDown(Instant),
    /// [`Server::abort`].
    Aborted,
}

/// An echo server over memory lent by its [`Storage`]: a table of connections and a pool
/// of buffers that they share.
///
/// The server is a pure state machine: it never touches a socket or a clock. A driver
/// reports what happened (`on_*` methods, [`on_timeout`](Self::on_timeout)),
/// moves bytes through the slices the server lends to a closure
/// ([`recv_with`](Self::recv_with), [`send_with`](Self::send_with)), asks what to wait for
/// ([`listener_interest`](Self::listener_interest), [`conns`](Self::conns),
/// [`poll_timeout`](Self::poll_timeout)) and carries out what it is told
/// ([`poll_action`](Self::poll_action)).
///
/// # Memory
/// The storage is all of it: [`footprint`](crate::footprint) gives the bytes. A
/// connection holds a pool buffer only while bytes wait in its queue (or while one is lent
/// to [`recv_with`](Self::recv_with)); the moment its queue drains the buffer goes back to
/// the pool, so an idle connection costs its 32-byte [`ConnSlot`] only. A queue never holds
/// more than [`queue_size`](Self::queue_size) bytes.
///
/// # Fairness with fewer buffers than connections
/// A connection without a buffer has no read interest while the pool is empty, and gets a
/// buffer the next time it is readable after one is freed (whoever the driver serves
/// first). Buffers are held only by connections with bytes waiting, so they come back as
/// fast as those bytes are echoed; a peer that never reads holds its buffer only until the
/// idle timeout closes it, and the other connections are served meanwhile with the rest of
/// the pool. With as many buffers as connections no connection ever waits for one.
///
/// Every operation is O(1) except [`shutdown`](Self::shutdown) and
/// [`abort`](Self::abort), which visit each connection once.
///
/// # Invariants
/// Between calls, for every slot the server has used:
/// - **state ⇔ list**: a slot is on exactly one list, the one its state names: free
///   (closed, reusable), live (open, ordered by last activity, least recent first),
///   draining (write side shut down), or pending (an action owed to the driver: a
///   [`ShutdownWrite`](Action::ShutdownWrite) to announce or a [`Close`](Action::Close)).
/// - **bytes ⇔ buffer**: a slot holds a pool buffer exactly while bytes are queued in it,
///   and never more than [`queue_size`](Self::queue_size) of them; free, draining and
///   closing slots hold none.
/// - **buffer ownership**: each of the pool's buffers is held by one slot or free, once.
///
/// [`check_invariants`](Self::check_invariants) checks all three; the unit tests, the
/// reference-model property test and the fuzz targets run it after every event.
///
/// ```
/// use echoloop_core::{Action, CloseReason, Config, Instant, Server, StaticStorage};
///
/// let mut server = Server::new(Config::new(), StaticStorage::<4, 2, 64>::new())?;
/// let now = Instant::from_millis(0);
/// let id = server.on_accepted(now)?;
///
/// // The socket is readable: receive straight into the queue.
/// server.recv_with(now, id, |buf| {
///     buf[..5].copy_from_slice(b"hello");
///     (5, ())
/// })?;
///
/// // The socket is writable: send straight from the queue, perhaps in part.
/// let sent = server.send_with(now, id, |queued| {
///     assert_eq!(queued, b"hello");
///     (queued.len(), queued.len())
/// })?;
/// assert_eq!(sent, 5);
/// assert_eq!(server.free_buffers(), 2, "an empty queue holds no buffer");
///
/// // EOF with nothing queued: one close, which sends the FIN.
/// server.on_eof(now, id)?;
/// assert_eq!(server.poll_action(), Some(Action::Close(id, CloseReason::PeerClosed)));
/// assert_eq!(server.poll_action(), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Server<S> {
    storage: S,
    /// The table's length, checked.
    capacity: u16,
    /// Slots at this index and above were never used: they are on no list and their
    /// contents are whatever the storage started with.
    opened: u16,
    queue_size: u32,
    pool: Pool,
    /// Slots freed by a close, oldest first (reusing the oldest keeps stale ids stale).
    free: List,
    /// Open connections, least recently active first.
    live: List,
    /// Draining connections, in the order their write side was shut down. Not subject to
    /// the idle timeout: the shutdown deadline bounds them.
    draining: List,
    /// Connections with an action owed to the driver, in the order it was decided.
    pending: List,
    config: Config,
    mode: Mode,
    stats: Stats,
}

const STATS: Stats = Stats {
    accepted: 0,
    refused: 0,
    closed: Closed {
        peer_closed: 0,
        reset: 0,
        error: 0,
        idle_timeout: 0,
        shutdown: 0,
        shutdown_timeout: 0,
        aborted: 0,
    },
    bytes_in: 0,
    bytes_out: 0,
    bytes_discarded: 0,
    bytes_drained: 0,
    peak_queue: 0,
    peak_conns: 0,
};

impl<const CONNS: usize, const BUFFERS: usize, const QUEUE: usize>
    Server<StaticStorage<CONNS, BUFFERS, QUEUE>>
{
    /// A server in a [`StaticStorage`], checked at compile time: `const`, so that one
    /// `static` holds the whole server and `size_of` is its whole RAM.
    pub const fn new_static(config: Config) -> Self {
        const {
            assert!(
                core::mem::size_of::<Self>() <= storage::footprint(CONNS, BUFFERS, QUEUE),
                "footprint() must bound a static server"
            );
        }
        Server::empty(
            StaticStorage::new(),
            config,
            CONNS as u16,
            BUFFERS as u16,
            QUEUE as u32,
        )
    }
}

impl<S> Server<S> {
    /// A server with no connection in `storage`, whose sizes the caller has checked.
    const fn empty(
        storage: S,
        config: Config,
        capacity: u16,
        buffers: u16,
        queue_size: u32,
    ) -> Self {
        Server {
            storage,
            capacity,
            opened: 0,
            queue_size,
            pool: Pool::new(buffers),
            free: List::EMPTY,
            live: List::EMPTY,
            draining: List::EMPTY,
            pending: List::EMPTY,
            config,
            mode: Mode::Serving,
            stats: STATS,
        }
    }
}

impl<S: Storage> Server<S> {
    /// A server with no connection, in `storage`: as many connections as its table holds,
    /// sharing the buffers of its pool. Refused, never a panic, if the tables do not fit:
    /// 1 to [`MAX_CONNS`](crate::MAX_CONNS) connections, 1 buffer to one per connection, a
    /// queue size of 1 byte to `u32::MAX`, and `buffers × queue_size` bytes.
    pub fn new(config: Config, mut storage: S) -> Result<Self, StorageError> {
        let conns = storage.slots_capacity();
        let parts = storage.parts();
        let (buffers, queue_size) = (parts.free.len(), parts.queue_size);
        if parts.slots.len() > conns {
            return Err(StorageError::TooManyConns {
                conns: parts.slots.len(),
            });
        }
        storage::check(conns, buffers, queue_size, parts.bytes.len())?;
        // The check bounds all three.
        let (Ok(capacity), Ok(buffers), Ok(queue_size)) = (
            u16::try_from(conns),
            u16::try_from(buffers),
            u32::try_from(queue_size),
        ) else {
            return Err(StorageError::TooManyConns { conns });
        };
        Ok(Server::empty(
            storage, config, capacity, buffers, queue_size,
        ))
    }

    /// The configuration in force.
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// How many connections may be open at once: the connection table's length.
    pub const fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Buffers in the pool.
    pub const fn buffers(&self) -> usize {
        self.pool.buffers as usize
    }

    /// The size of one buffer: the most bytes one connection's queue holds.
    pub const fn queue_size(&self) -> usize {
        self.queue_size as usize
    }

    /// Buffers no connection holds now.
    pub const fn free_buffers(&self) -> usize {
        self.pool.available()
    }

    /// Connections holding a slot: open, draining, and those whose actions are owed.
    pub const fn conn_count(&self) -> usize {
        self.live.len() + self.draining.len() + self.pending.len()
    }

    /// Actions decided and not yet polled ([`poll_action`](Self::poll_action)). Zero after
    /// a driver drains them; a count that only grows means they are not being drained,
    /// and each holds a slot.
    pub const fn pending_actions(&self) -> usize {
        self.pending.len()
    }

    /// What the server has done so far.
    pub const fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The storage, to read (say, the address of the pool's bytes for `madvise`).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The storage, to change: say, to give the pages of the buffers
    /// [`reclaimable`](Server::reclaimable) reported back to the operating system. The
    /// tables must keep their sizes (see [`Storage`]); their contents are the server's.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    // ----- what to wait for -----

    /// Whether the driver should wait for the listener to be readable: a slot is free and
    /// the server is serving. Backpressure for accepts.
    pub const fn listener_interest(&self) -> bool {
        matches!(self.mode, Mode::Serving) && self.conn_count() < self.capacity()
    }

    /// What to wait for on one connection. A closing connection wants nothing.
    pub fn interest(&self, id: ConnId) -> Result<Interest, UnknownConn> {
        let parts = self.storage.parts_ref();
        let slot = lookup(parts.slots, self.opened, id)?;
        Ok(self.rules().interest(slot))
    }

    fn rules(&self) -> Rules {
        Rules {
            reading: matches!(self.mode, Mode::Serving),
            pool_free: self.pool.available() > 0,
            queue_size: self.queue_size as usize,
        }
    }

    /// Every open connection with its interest, least recently active first, then every
    /// draining one: what a `select` driver puts in its fd sets. Closing connections are
    /// not listed.
    pub fn conns(&self) -> Conns<'_> {
        let slots = self.storage.parts_ref().slots;
        Conns {
            slots,
            inner: self.live.iter(slots).chain(self.draining.iter(slots)),
            rules: self.rules(),
        }
    }

    /// The open connections that moved bytes (or were accepted) less than `within` before
    /// `now`, most recently active first, then every draining one, with their interest.
    /// It costs what it lists, not what is open: a driver watching thousands of idle
    /// connections finds the busy ones without visiting the rest.
    pub fn recently_active(&self, now: Instant, within: Duration) -> Recent<'_> {
        let slots = self.storage.parts_ref().slots;
        Recent {
            slots,
            live: Some(self.live.iter_rev(slots)),
            draining: self.draining.iter(slots),
            now,
            within,
            rules: self.rules(),
        }
    }

    /// Bytes queued on a connection.
    pub fn queued(&self, id: ConnId) -> Result<usize, UnknownConn> {
        let parts = self.storage.parts_ref();
        Ok(lookup(parts.slots, self.opened, id)?.len as usize)
    }

    /// When the driver must call [`on_timeout`](Self::on_timeout) at the latest:
    /// the earliest idle deadline, or the end of the shutdown grace period. `None`: no
    /// deadline, wait for events only.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let slots = self.storage.parts_ref().slots;
        let oldest = self.live.front().and_then(|i| slots.get(usize::from(i)));
        let idle = match (oldest, self.config.idle_timeout) {
            (Some(slot), Some(timeout)) => Some(slot.last_active.saturating_add(timeout)),
            _ => None,
        };
        let grace = match self.mode {
            Mode::ShuttingDown(deadline) if self.live.len() + self.draining.len() > 0 => {
                Some(deadline)
            }
            _ => None,
        };
        match (idle, grace) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- what happened -----

    /// The driver accepted a socket. An [`AcceptError`]: close it (with a reset), it was
    /// counted as refused. `Full` while [`conns`](Self::conns) lists fewer connections than
    /// the capacity means actions are waiting to be polled ([`pending_actions`](Self::pending_actions)).
    pub fn on_accepted(&mut self, now: Instant) -> Result<ConnId, AcceptError> {
        if !matches!(self.mode, Mode::Serving) {
            self.on_refused();
            return Err(AcceptError::ShuttingDown);
        }
        let Some(index) = self.take_free_slot() else {
            self.on_refused();
            return Err(AcceptError::Full);
        };
        let last_active = self.monotonic(now);
        let slots = self.storage.parts().slots;
        let Some(slot) = slots.get_mut(usize::from(index)) else {
            debug_assert!(false, "a free slot out of range");
            return Err(AcceptError::Full);
        };
        *slot = ConnSlot {
            last_active,
            state: State::Open,
            ..ConnSlot {
                generation: slot.generation,
                ..ConnSlot::EMPTY
            }
        };
        let id = slot.id(index);
        self.live.push_back(slots, index);
        self.stats.accepted = self.stats.accepted.saturating_add(1);
        self.stats.peak_conns = self.stats.peak_conns.max(self.conn_count());
        crate::macros::debug!("accepted {}", id);
        Ok(id)
    }

    fn take_free_slot(&mut self) -> Option<u16> {
        if self.conn_count() >= self.capacity() {
            return None;
        }
        let slots = self.storage.parts().slots;
        if let Some(index) = self.free.pop_front(slots) {
            return Some(index);
        }
        if self.opened < self.capacity {
            let fresh = usize::from(self.opened);
            if fresh >= slots.len() && !self.storage.grow_slots() {
                return None;
            }
            // A slot never used: whatever the storage held there is overwritten.
            match self.storage.parts().slots.get_mut(fresh) {
                Some(slot) => *slot = ConnSlot::EMPTY,
                None => {
                    debug_assert!(false, "grow_slots said yes but the table did not grow");
                    return None;
                }
            }
            self.opened += 1;
            return Some(self.opened - 1);
        }
        debug_assert!(false, "a slot is free but on no list");
        None
    }

    /// The driver refused a connection on its own (say, a file descriptor it cannot
    /// watch): counted in [`Stats::refused`].
    pub fn on_refused(&mut self) {
        self.stats.refused = self.stats.refused.saturating_add(1);
    }

    /// Lends `f` the free space of a connection's queue to receive into, and queues the
    /// bytes `f` says it wrote (the first `n` of the slice; `R` is passed through). The
    /// slice is never empty. The connection takes a buffer from the pool if it holds none;
    /// if `f` writes nothing the buffer goes straight back.
    ///
    /// The slice is the *contiguous* free space: when the free space wraps around the end
    /// of the ring, it ends at the buffer's end and the rest is lent by the next call. A
    /// short slice is not a full queue: [`Interest::read`] says when to call again.
    /// Committing 0 bytes means "nothing received", never EOF: a BSD `recv()` of 0 into
    /// this non-empty slice is the peer's FIN, to report with [`on_eof`](Self::on_eof).
    ///
    /// A draining connection (see [`Action::ShutdownWrite`]) is lent a whole buffer whose
    /// bytes are discarded ([`Stats::bytes_drained`]).
    ///
    /// Errors, with `f` not called: a [`RecvError`], each variant documented as expected
    /// flow or a driver bug. `f` claiming
    /// more than the slice holds is a driver bug: a debug build asserts, a release build
    /// takes the whole slice.
    pub fn recv_with<R>(
        &mut self,
        now: Instant,
        id: ConnId,
        f: impl FnOnce(&mut [u8]) -> (usize, R),
    ) -> Result<R, RecvError> {
        let serving = matches!(self.mode, Mode::Serving);
        let q = self.queue_size as usize;
        let parts = self.storage.parts();
        let slot = lookup_mut(parts.slots, self.opened, id)?;
        let admit = |reader| match reader {
            Reader::Closed => Err(RecvError::ReadClosed),
            Reader::Open { queued } if queued as usize >= q => Err(RecvError::QueueFull),
            Reader::Open { .. } => Ok(false),
            Reader::Draining => Ok(true),
            Reader::Closing => Err(RecvError::Closing),
        };
        let draining = open_read(
            &mut self.pool,
            parts.free,
            slot,
            serving,
            admit,
            RecvError::NoBuffer,
        )?;
        let run = if draining {
            0..q
        } else {
            queue::free_run(slot.head as usize, slot.len as usize, q)
        };
        let lent = buffer_run(parts.bytes, slot.buffer, q, run);
        debug_assert!(!lent.is_empty(), "the pool's bytes were checked");
        let (n, result) = f(lent);
        debug_assert!(n <= lent.len(), "claimed {n} of {} bytes lent", lent.len());
        let n = n.min(lent.len());
        if draining {
            self.stats.bytes_drained = self.stats.bytes_drained.saturating_add(n as u64);
        } else {
            slot.len = slot.len.saturating_add(n as u32);
            self.stats.bytes_in = self.stats.bytes_in.saturating_add(n as u64);
            self.stats.peak_queue = self.stats.peak_queue.max(slot.len as usize);
        }
        if draining || slot.len == 0 {
            release(&mut self.pool, parts.free, slot);
        }
        if n > 0 && !draining {
            self.touch(id.index, now);
        }
        Ok(result)
    }

    /// Lends `f` a whole empty buffer for a relay: a driver that can move bytes from a
    /// connection's socket back into it without reading them (Linux `splice(2)` through a
    /// pipe) moves what it can, and writes into the slice only what the socket would not
    /// take back. `f` returns a [`Relayed`]: `through` bytes were received and sent
    /// straight back, and the first `kept` bytes of the slice were received and are now
    /// queued, to send as usual (`R` is passed through). Only a connection with nothing
    /// queued is lent one, so relayed bytes never overtake queued ones.
    ///
    /// Errors, with `f` not called: a [`RelayError`]; `Queued` when bytes are queued (send
    /// them or [`recv_with`](Server::recv_with)), `ReadClosed` after EOF, during a
    /// shutdown, or while draining (a draining connection reads with `recv_with`).
    /// `f` keeping more than the slice holds is a driver bug: a debug build asserts, a
    /// release build keeps the whole slice.
    pub fn relay_with<R>(
        &mut self,
        now: Instant,
        id: ConnId,
        f: impl FnOnce(&mut [u8]) -> (Relayed, R),
    ) -> Result<R, RelayError> {
        let serving = matches!(self.mode, Mode::Serving);
        let q = self.queue_size as usize;
        let parts = self.storage.parts();
        let slot = lookup_mut(parts.slots, self.opened, id)?;
        let admit = |reader| match reader {
            Reader::Closed | Reader::Draining => Err(RelayError::ReadClosed),
            Reader::Open { queued } if queued > 0 => Err(RelayError::Queued),
            Reader::Open { .. } => Ok(()),
            Reader::Closing => Err(RelayError::Closing),
        };
        open_read(
            &mut self.pool,
            parts.free,
            slot,
            serving,
            admit,
            RelayError::NoBuffer,
        )?;
        let lent = buffer_run(parts.bytes, slot.buffer, q, 0..q);
        debug_assert!(!lent.is_empty(), "the pool's bytes were checked");
        let (relayed, result) = f(lent);
        debug_assert!(
            relayed.kept <= lent.len(),
            "kept {} of {} bytes lent",
            relayed.kept,
            lent.len()
        );
        let kept = relayed.kept.min(lent.len());
        let through = relayed.through as u64;
        slot.len = kept as u32;
        self.stats.bytes_in = self
            .stats
            .bytes_in
            .saturating_add(through.saturating_add(kept as u64));
        self.stats.bytes_out = self.stats.bytes_out.saturating_add(through);
        self.stats.peak_queue = self.stats.peak_queue.max(kept);
        if kept == 0 {
            release(&mut self.pool, parts.free, slot);
        }
        if through > 0 || kept > 0 {
            self.touch(id.index, now);
        }
        Ok(result)
    }

    /// Lends `f` the oldest queued bytes that are contiguous, to send, and drops the first
    /// `n` that `f` says went out (`R` is passed through). The slice is empty when nothing
    /// is queued (always, for a draining connection); [`Interest::write`] says when it is
    /// not. Bytes that wrap around the end of the buffer are lent by the next call.
    ///
    /// When the queue drains its buffer goes back to the pool, and then: after the peer's
    /// EOF the connection closes ([`CloseReason::PeerClosed`]); during a shutdown it is shut
    /// down for writing and drains ([`Action::ShutdownWrite`]).
    ///
    /// Errors, with `f` not called: a [`SendError`]. `f` claiming more than the slice
    /// holds is a driver bug: a debug build asserts, a release build takes the whole slice.
    pub fn send_with<R>(
        &mut self,
        now: Instant,
        id: ConnId,
        f: impl FnOnce(&[u8]) -> (usize, R),
    ) -> Result<R, SendError> {
        let q = self.queue_size as usize;
        let parts = self.storage.parts();
        let slot = lookup_mut(parts.slots, self.opened, id)?;
        if !matches!(slot.state, State::Open | State::Draining) {
            return Err(SendError::Closing);
        }
        let run = queue::queued_run(slot.head as usize, slot.len as usize, q);
        let lent = if slot.has_buffer() {
            buffer_run(parts.bytes, slot.buffer, q, run)
        } else {
            &mut []
        };
        let (n, result) = f(lent);
        debug_assert!(n <= lent.len(), "claimed {n} of {} bytes lent", lent.len());
        let n = n.min(lent.len());
        if n == 0 {
            return Ok(result);
        }
        slot.len = slot.len.saturating_sub(n as u32);
        slot.head = queue::advance(slot.head as usize, n, q) as u32;
        self.stats.bytes_out = self.stats.bytes_out.saturating_add(n as u64);
        let drained = slot.len == 0;
        let eof = slot.eof;
        if drained {
            release(&mut self.pool, parts.free, slot);
        }
        self.touch(id.index, now);
        if drained && eof {
            self.start_closing(id.index, CloseReason::PeerClosed);
        } else if drained && !matches!(self.mode, Mode::Serving) {
            self.start_announcing(id.index);
        }
        Ok(result)
    }

    /// The peer sent EOF (a FIN): read no more. Once every byte it sent is echoed the
    /// connection closes with [`CloseReason::PeerClosed`], at once if nothing is queued;
    /// a draining connection closes with [`CloseReason::Shutdown`]. `Err(ReadClosed)` for
    /// a second EOF.
    pub fn on_eof(&mut self, now: Instant, id: ConnId) -> Result<(), EofError> {
        let slots = self.storage.parts().slots;
        let slot = lookup_mut(slots, self.opened, id)?;
        match slot.state {
            State::Open if slot.eof => Err(EofError::ReadClosed),
            State::Open => {
                slot.eof = true;
                let drained = slot.len == 0;
                self.touch(id.index, now);
                if drained {
                    self.start_closing(id.index, CloseReason::PeerClosed);
                }
                Ok(())
            }
            State::Draining => {
                self.start_closing(id.index, CloseReason::Shutdown);
                Ok(())
            }
            _ => Err(EofError::Closing),
        }
    }

    /// The socket failed: the connection closes at once, its queue is discarded.
    pub fn on_error(&mut self, id: ConnId, kind: ErrorKind) -> Result<(), ErrorReportError> {
        let slots = self.storage.parts().slots;
        match lookup_mut(slots, self.opened, id)?.state {
            State::Open | State::Draining => {
                self.start_closing(id.index, CloseReason::Error(kind));
                Ok(())
            }
            _ => Err(ErrorReportError::Closing),
        }
    }

    /// Time has passed: close idle connections, and at the end of the shutdown grace
    /// period every connection still open or draining.
    pub fn on_timeout(&mut self, now: Instant) {
        if let Some(timeout) = self.config.idle_timeout {
            while let Some(i) = self.live.front() {
                let slots = self.storage.parts_ref().slots;
                let expired = slots
                    .get(usize::from(i))
                    .is_some_and(|s| s.last_active.saturating_add(timeout) <= now);
                if !expired {
                    break;
                }
                self.start_closing(i, CloseReason::IdleTimeout);
            }
        }
        if matches!(self.mode, Mode::ShuttingDown(d) if d <= now) {
            self.close_all(CloseReason::ShutdownTimeout);
        }
    }

    /// Closes every open connection, then every draining one; one whose write side is
    /// yet to be shut down closes instead (gracefully, unless aborted: its echo is
    /// delivered).
    fn close_all(&mut self, reason: CloseReason) {
        while let Some(i) = self.live.front().or(self.draining.front()) {
            self.start_closing(i, reason);
        }
        let announced = match reason {
            CloseReason::Aborted => CloseReason::Aborted,
            _ => CloseReason::Shutdown,
        };
        let slots = self.storage.parts().slots;
        let mut next = self.pending.front();
        while let Some(i) = next {
            next = list::next(slots, i);
            if let Some(slot) = slots.get_mut(usize::from(i)) {
                if slot.state == State::Announcing {
                    slot.state = State::Closing(announced);
                }
            }
        }
    }

    /// Begins a graceful shutdown: accept nothing more, read nothing more, deliver every
    /// queued byte, then shut down the write side and drain ([`Action::ShutdownWrite`]);
    /// after `grace`, close whatever is left. Calling it again changes nothing.
    /// [`is_shut_down`](Self::is_shut_down) tells when it is over.
    pub fn shutdown(&mut self, now: Instant, grace: Duration) {
        if !matches!(self.mode, Mode::Serving) {
            return;
        }
        self.mode = Mode::ShuttingDown(now.saturating_add(grace));
        crate::macros::debug!("shutting down, {} open", self.live.len());
        let mut next = self.live.front();
        while let Some(i) = next {
            let slots = self.storage.parts_ref().slots;
            next = list::next(slots, i);
            if slots.get(usize::from(i)).is_some_and(|s| s.len == 0) {
                self.start_announcing(i);
            }
        }
    }

    /// Closes every connection now with [`CloseReason::Aborted`] (queued bytes are
    /// discarded) and accepts nothing more: for a second signal. Closes already decided
    /// keep their reason. [`is_shut_down`](Self::is_shut_down) once they are polled.
    pub fn abort(&mut self) {
        self.mode = Mode::Aborted;
        crate::macros::debug!("aborting, {} open", self.live.len());
        self.close_all(CloseReason::Aborted);
    }

    /// True once [`shutdown`](Self::shutdown) or [`abort`](Self::abort) was called and
    /// every connection is closed and its actions polled: the driver can exit.
    pub const fn is_shut_down(&self) -> bool {
        !matches!(self.mode, Mode::Serving) && self.conn_count() == 0
    }

    /// The byte ranges, in the pool's bytes, of free buffers that went cold: freed since the
    /// last call and not among the `keep` freed last (the warm ones, reused first). A host
    /// may give their pages back (`madvise(MADV_DONTNEED)`), say once a second; each buffer
    /// is reported once per time it is freed, so a call costs what it returns. Buffers never
    /// used are never reported: they were never touched.
    pub fn reclaimable(&mut self, keep: usize) -> Reclaimable<'_> {
        let positions = self.pool.reclaimable(keep);
        let free = self.storage.parts_ref().free;
        Reclaimable {
            stack: free.get(positions).unwrap_or_default().iter(),
            queue_size: self.queue_size as usize,
        }
    }

    // ----- what to do -----

    /// The next thing the driver must do. Drain it after every batch of events (until
    /// `None`) and before waiting again. A [`Action::Close`] frees the slot when it is
    /// polled, not before: the id is stale from then on. A driver that forgets to drain
    /// keeps every closed connection's slot, and its accepts fail with
    /// [`AcceptError::Full`] while [`conns`](Self::conns) lists none:
    /// [`pending_actions`](Self::pending_actions) tells it apart.
    pub fn poll_action(&mut self) -> Option<Action> {
        loop {
            let index = self.pending.front()?;
            let slots = self.storage.parts().slots;
            let Some(slot) = slots.get_mut(usize::from(index)) else {
                debug_assert!(false, "a pending slot out of range");
                self.pending = List::EMPTY;
                return None;
            };
            let id = slot.id(index);
            match slot.state {
                State::Announcing => {
                    slot.state = State::Draining;
                    self.pending.remove(slots, index);
                    self.draining.push_back(slots, index);
                    return Some(Action::ShutdownWrite(id));
                }
                State::Closing(reason) => {
                    slot.state = State::Free;
                    slot.generation = slot.generation.wrapping_add(1);
                    self.pending.remove(slots, index);
                    self.free.push_back(slots, index);
                    self.stats.closed.count(reason);
                    crate::macros::debug!("closed {}: {}", id, reason);
                    return Some(Action::Close(id, reason));
                }
                _ => {
                    debug_assert!(false, "slot {index} pending in state {:?}", slot.state);
                    self.pending.remove(slots, index);
                }
            }
        }
    }

    // ----- internals -----

    fn live_back_activity(&self) -> Option<Instant> {
        let slots = self.storage.parts_ref().slots;
        self.live
            .back()
            .and_then(|i| slots.get(usize::from(i)))
            .map(|s| s.last_active)
    }

    /// `now`, but never earlier than the most recent activity, so the live list stays
    /// ordered even if the driver's clock steps back.
    fn monotonic(&self, now: Instant) -> Instant {
        self.live_back_activity().map_or(now, |b| b.max(now))
    }

    /// Marks activity on an open slot: it becomes the most recently active.
    fn touch(&mut self, index: u16, now: Instant) {
        let now = self.monotonic(now);
        let slots = self.storage.parts().slots;
        if let Some(slot) = slots.get_mut(usize::from(index)) {
            slot.last_active = now;
        }
        if self.live.back() != Some(index) {
            self.live.remove(slots, index);
            self.live.push_back(slots, index);
        }
    }

    /// Moves a live slot to the pending list with its close decided. A draining
    /// connection closes gracefully unless its socket failed: its echo was delivered.
    fn start_closing(&mut self, index: u16, reason: CloseReason) {
        let parts = self.storage.parts();
        let Some(slot) = parts.slots.get_mut(usize::from(index)) else {
            debug_assert!(false, "slot {index} out of range");
            return;
        };
        let open = slot.state == State::Open;
        let reason = match (slot.state, reason) {
            (State::Open, reason) | (State::Draining, reason @ CloseReason::Error(_)) => reason,
            (State::Draining, CloseReason::Aborted) => CloseReason::Aborted,
            (State::Draining, _) => CloseReason::Shutdown,
            (state, _) => {
                debug_assert!(false, "closing slot {index} in state {state:?}");
                return;
            }
        };
        let lost = u64::from(slot.len);
        self.stats.bytes_discarded = self.stats.bytes_discarded.saturating_add(lost);
        slot.len = 0;
        slot.head = 0;
        if slot.has_buffer() {
            release(&mut self.pool, parts.free, slot);
        }
        slot.state = State::Closing(reason);
        if open {
            self.live.remove(parts.slots, index);
        } else {
            self.draining.remove(parts.slots, index);
        }
        self.pending.push_back(parts.slots, index);
    }

    /// Moves an open slot with nothing queued to the pending list: its write side is to be
    /// shut down, then it drains.
    fn start_announcing(&mut self, index: u16) {
        let slots = self.storage.parts().slots;
        let Some(slot) = slots.get_mut(usize::from(index)) else {
            debug_assert!(false, "slot {index} out of range");
            return;
        };
        debug_assert!(slot.state == State::Open && slot.len == 0 && !slot.eof);
        slot.state = State::Announcing;
        self.live.remove(slots, index);
        self.pending.push_back(slots, index);
    }
}

/// Gives a slot's buffer back to the pool.
fn release(pool: &mut Pool, free: &mut [u16], slot: &mut ConnSlot) {
    debug_assert!(slot.len == 0, "releasing a buffer with bytes queued");
    pool.give(free, slot.buffer);
    slot.buffer = NIL;
    slot.head = 0;
}

/// `run` of buffer `k` in the pool's bytes.
fn buffer_run(bytes: &mut [u8], k: u16, q: usize, run: Range<usize>) -> &mut [u8] {
    let base = usize::from(k).saturating_mul(q);
    bytes
        .get_mut(base.saturating_add(run.start)..base.saturating_add(run.end))
        .unwrap_or_default()
}

/// Whether `slot`, at `id`'s index, is the one `id` names: issued, of its generation, and
/// not yet freed (open, draining or closing).
fn names(slot: &ConnSlot, opened: u16, id: ConnId) -> bool {
    id.index < opened && slot.generation == id.generation && slot.state != State::Free
}

/// The slot of an id that holds one.
fn lookup(slots: &[ConnSlot], opened: u16, id: ConnId) -> Result<&ConnSlot, UnknownConn> {
    let slot = slots.get(id.index()).ok_or(UnknownConn)?;
    names(slot, opened, id).then_some(slot).ok_or(UnknownConn)
}

/// [`lookup`], to change.
fn lookup_mut(
    slots: &mut [ConnSlot],
    opened: u16,
    id: ConnId,
) -> Result<&mut ConnSlot, UnknownConn> {
    let slot = slots.get_mut(id.index()).ok_or(UnknownConn)?;
    names(slot, opened, id).then_some(slot).ok_or(UnknownConn)
}

/// How a connection may read, before any buffer is taken for it.
#[derive(Clone, Copy)]
enum Reader {
    /// Open, but it reads no more: the peer sent EOF, or the server is shutting down.
    Closed,
    /// Open and reading, with this many bytes queued.
    Open { queued: u32 },
    /// Its write side is shut down: what it reads is discarded.
    Draining,
    /// Closing: only its pending action concerns it.
    Closing,
}

impl Reader {
    fn of(slot: &ConnSlot, serving: bool) -> Self {
        match slot.state {
            State::Open if slot.eof || !serving => Reader::Closed,
            State::Open => Reader::Open { queued: slot.len },
            State::Draining => Reader::Draining,
            _ => Reader::Closing,
        }
    }
}

/// The opening the lending reads ([`Server::recv_with`], [`Server::relay_with`]) share:
/// `admit` decides from how the connection may read whether it reads (its answer is passed
/// through), and then the slot gets a pool buffer if it holds none, or `no_buffer`.
fn open_read<T, E>(
    pool: &mut Pool,
    free: &mut [u16],
    slot: &mut ConnSlot,
    serving: bool,
    admit: impl FnOnce(Reader) -> Result<T, E>,
    no_buffer: E,
) -> Result<T, E> {
    let admitted = admit(Reader::of(slot, serving))?;
    if !slot.has_buffer() {
        slot.buffer = pool.take(free).ok_or(no_buffer)?;
    }
    Ok(admitted)
}

/// What decides a connection's interest besides its own slot.
#[derive(Clone, Copy)]
struct Rules {
    /// Serving: open connections may read.
    reading: bool,
    /// A buffer is free for a connection that holds none.
    pool_free: bool,
    queue_size: usize,
}

impl Rules {
    fn interest(self, slot: &ConnSlot) -> Interest {
        match slot.state {
            State::Open => Interest {
                read: !slot.eof
                    && self.reading
                    && if slot.has_buffer() {
                        (slot.len as usize) < self.queue_size
                    } else {
                        self.pool_free
                    },
                write: slot.len > 0,
            },
            State::Draining => Interest {
                read: self.pool_free,
                write: false,
            },
            _ => Interest::NONE,
        }
    }
}

/// The open and draining connections of a [`Server`] with their interest: see
/// [`Server::conns`].
pub struct Conns<'a> {
    slots: &'a [ConnSlot],
    inner: core::iter::Chain<list::Iter<'a, ConnSlot>, list::Iter<'a, ConnSlot>>,
    rules: Rules,
}

impl Iterator for Conns<'_> {
    type Item = (ConnId, Interest);

    fn next(&mut self) -> Option<Self::Item> {
        let index = self.inner.next()?;
        let slot = self.slots.get(usize::from(index))?;
        Some((slot.id(index), self.rules.interest(slot)))
    }
}

/// The recently active and the draining connections of a [`Server`] with their
/// interest: see [`Server::recently_active`].
pub struct Recent<'a> {
    slots: &'a [ConnSlot],
    /// `None` once a connection idle for `within` or longer was reached.
    live: Option<list::RevIter<'a, ConnSlot>>,
    draining: list::Iter<'a, ConnSlot>,
    now: Instant,
    within: Duration,
    rules: Rules,
}

impl Iterator for Recent<'_> {
    type Item = (ConnId, Interest);

    fn next(&mut self) -> Option<Self::Item> {
        // The live list is ordered by activity: the first idle one ends the recent ones.
        let recent = self.live.as_mut().and_then(|live| {
            let index = live.next()?;
            let slot = self.slots.get(usize::from(index))?;
            (self.now.saturating_since(slot.last_active) < self.within).then_some((index, slot))
        });
        let (index, slot) = match recent {
            Some(found) => found,
            None => {
                self.live = None;
                let index = self.draining.next()?;
                (index, self.slots.get(usize::from(index))?)
            }
        };
        Some((slot.id(index), self.rules.interest(slot)))
    }
}

/// Byte ranges of cold free buffers: see [`Server::reclaimable`].
pub struct Reclaimable<'a> {
    stack: core::slice::Iter<'a, u16>,
    queue_size: usize,
}

impl Iterator for Reclaimable<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        let k = usize::from(*self.stack.next()?);
        let start = k.saturating_mul(self.queue_size);
        Some(start..start.saturating_add(self.queue_size))
    }
}

impl<S> core::fmt::Debug for Server<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server")
            .field("capacity", &self.capacity)
            .field("buffers", &self.pool.buffers)
            .field("queue_size", &self.queue_size)
            .field("free_buffers", &self.pool.available())
            .field("live", &self.live.len())
            .field("draining", &self.draining.len())
            .field("pending", &self.pending.len())
            .field("mode", &self.mode)
            .field("stats", &self.stats)
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl<S> defmt::Format for Server<S> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Server {{ capacity: {}, buffers: {} x {} B, free buffers: {}, live: {}, pending: {}, stats: {} }}",
            self.capacity,
            self.pool.buffers,
            self.queue_size,
            self.pool.available(),
            self.live.len(),
            self.pending.len(),
            self.stats
        )
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Conns<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Conns")
    }
}

impl core::fmt::Debug for Conns<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Conns")
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Reclaimable<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Reclaimable({} buffers)", self.stack.len())
    }
}

impl core::fmt::Debug for Reclaimable<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Reclaimable({} buffers)", self.stack.len())
    }
}

mod invariants;
#[cfg(test)]
mod tests;
