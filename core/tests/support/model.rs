//! A simple reference model of the server, and the driver that checks the two agree.
//!
//! Shared by the property test (`tests/model.rs`) and the fuzz target (`fuzz/`), so both
//! check the same invariants. The model is the obvious, slow version of the rules: one
//! `VecDeque` per connection, a count of the buffers held, a sequence number for "least
//! recently active", and explicit lists. After every step [`Model::apply`] checks that the
//! server agrees with it: bytes echoed exactly once and in order, no queue over the queue
//! size, a buffer held exactly while bytes wait, interest consistent with state (no buffer
//! free, no read interest for a connection without one), the same actions in the same
//! order, the same stats. At the end it shuts the server down and checks that every
//! connection closed and every byte of every gracefully closed connection came back.

use std::collections::VecDeque;

use echoloop_core::{
    AcceptError, Action, CloseReason, Config, ConnId, ConnSlot, Duration, EofError, ErrorKind,
    ErrorReportError, Instant, Interest, Parts, PartsRef, RecvError, RelayError, Relayed,
    SendError, Server, Storage, UnknownConn,
};

/// The storage of the server under test: three vectors, as a host would hold them.
pub struct VecStorage {
    slots: Vec<ConnSlot>,
    free: Vec<u16>,
    bytes: Vec<u8>,
    queue_size: usize,
}

impl VecStorage {
    /// Tables for `conns` connections sharing `buffers` buffers of `queue_size` bytes.
    pub fn new(conns: usize, buffers: usize, queue_size: usize) -> Self {
        VecStorage {
            slots: vec![ConnSlot::EMPTY; conns],
            free: vec![0; buffers],
            bytes: vec![0; buffers * queue_size],
            queue_size,
        }
    }
}

impl Storage for VecStorage {
    fn parts(&mut self) -> Parts<'_> {
        Parts {
            slots: &mut self.slots,
            free: &mut self.free,
            bytes: &mut self.bytes,
            queue_size: self.queue_size,
        }
    }
    fn parts_ref(&self) -> PartsRef<'_> {
        PartsRef {
            slots: &self.slots,
            free: &self.free,
            bytes: &self.bytes,
            queue_size: self.queue_size,
        }
    }
}

/// The sizes of the server under test.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Connections (the table's length).
    pub conns: usize,
    /// Buffers in the pool, at most `conns`.
    pub buffers: usize,
    /// Bytes per buffer.
    pub queue: usize,
}

/// One event (or misuse) the driver reports; `pick` selects a known connection, open or not.
#[derive(Clone, Debug)]
pub enum Op {
    Accept,
    /// Receive up to `len` bytes (0: a receive that finds nothing) on the `pick`-th known
    /// connection.
    Read {
        pick: usize,
        len: usize,
    },
    /// Send up to `len` bytes (a partial write when shorter than queued).
    Write {
        pick: usize,
        len: usize,
    },
    /// Relay on the `pick`-th known connection: `through` bytes go straight back, the
    /// next `kept` (at most a buffer) are written into the lent slice.
    Relay {
        pick: usize,
        through: usize,
        kept: usize,
    },
    Eof {
        pick: usize,
    },
    Fail {
        pick: usize,
        kind: ErrorKind,
    },
    Advance {
        ms: u64,
    },
    Shutdown {
        grace: u64,
    },
    Abort,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    /// ShutdownWrite owed.
    Announcing,
    Draining,
    Closing(CloseReason),
    Closed(CloseReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Serving,
    ShuttingDown(Instant),
    Aborted,
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    serial: u64,
    phase: Phase,
    eof: bool,
    queue: VecDeque<u8>,
    received: Vec<u8>,
    echoed: Vec<u8>,
    last_active: Instant,
    /// Order of last activity, for "least recently active first".
    seq: u64,
}

impl Conn {
    fn next_byte(&self, k: usize) -> u8 {
        let x = (self.serial + 1).wrapping_mul(0x9E37_79B9)
            ^ ((self.received.len() + k) as u64).wrapping_mul(0x85EB_CA6B);
        (x >> 13) as u8
    }
}

/// The server under test beside the model it must agree with.
pub struct Model {
    server: Server<VecStorage>,
    cfg: Config,
    sizes: Sizes,
    now: Instant,
    conns: Vec<Conn>,
    seq: u64,
    /// Conns whose actions are owed, in the order the core decided them.
    pending: VecDeque<usize>,
    /// Draining conns, in the order their ShutdownWrite was polled.
    draining: Vec<usize>,
    mode: Mode,
    accepted: u64,
    refused: u64,
    bytes_in: u64,
    bytes_out: u64,
    discarded: u64,
    drained: u64,
    peak_queue: usize,
    closed: Vec<CloseReason>,
}

impl Model {
    /// A fresh server of `sizes` and model with `cfg`.
    pub fn new(cfg: Config, sizes: Sizes) -> Self {
        let storage = VecStorage::new(sizes.conns, sizes.buffers, sizes.queue);
        let server = Server::new(cfg, storage).expect("sizes that fit");
        assert_eq!(
            (server.capacity(), server.buffers(), server.queue_size()),
            (sizes.conns, sizes.buffers, sizes.queue)
        );
        Model {
            server,
            cfg,
            sizes,
            now: Instant::ZERO,
            conns: Vec::new(),
            seq: 0,
            pending: VecDeque::new(),
            draining: Vec::new(),
            mode: Mode::Serving,
            accepted: 0,
            refused: 0,
            bytes_in: 0,
            bytes_out: 0,
            discarded: 0,
            drained: 0,
            peak_queue: 0,
            closed: Vec::new(),
        }
    }

    fn held(&self) -> usize {
        self.conns
            .iter()
            .filter(|c| !matches!(c.phase, Phase::Closed(_)))
            .count()
    }

    /// Buffers no connection holds: a buffer is held exactly while bytes are queued.
    fn free_buffers(&self) -> usize {
        let holding = self.conns.iter().filter(|c| !c.queue.is_empty()).count();
        assert!(holding <= self.sizes.buffers);
        self.sizes.buffers - holding
    }

    fn interest(&self, c: &Conn) -> Interest {
        let pool = self.free_buffers() > 0;
        match c.phase {
            Phase::Open => Interest {
                read: !c.eof
                    && self.mode == Mode::Serving
                    && if c.queue.is_empty() {
                        pool
                    } else {
                        c.queue.len() < self.sizes.queue
                    },
                write: !c.queue.is_empty(),
            },
            Phase::Draining => Interest {
                read: pool,
                write: false,
            },
            _ => Interest::NONE,
        }
    }

    fn touch(&mut self, i: usize) {
        self.seq += 1;
        self.conns[i].seq = self.seq;
        self.conns[i].last_active = self.now;
    }

    fn start_closing(&mut self, i: usize, reason: CloseReason) {
        let c = &mut self.conns[i];
        let reason = match (c.phase, reason) {
            (Phase::Open, r) => r,
            (Phase::Draining, r @ (CloseReason::Error(_) | CloseReason::Aborted)) => r,
            (Phase::Draining, _) => CloseReason::Shutdown,
            (phase, _) => panic!("closing a conn in {phase:?}"),
        };
        self.discarded += c.queue.len() as u64;
        c.queue.clear();
        c.phase = Phase::Closing(reason);
        self.draining.retain(|&j| j != i);
        self.pending.push_back(i);
    }

    fn announce(&mut self, i: usize) {
        let c = &mut self.conns[i];
        assert!(c.phase == Phase::Open && c.queue.is_empty() && !c.eof);
        c.phase = Phase::Announcing;
        self.pending.push_back(i);
    }

    /// Open conns, least recently active first, then draining ones as they began to drain.
    fn live_in_order(&self) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.conns.len())
            .filter(|&i| self.conns[i].phase == Phase::Open)
            .collect();
        v.sort_by_key(|&i| self.conns[i].seq);
        v.extend(&self.draining);
        v
    }

    /// `recently_active` lists the open connections active within the window, newest
    /// first, then every draining one: checked for windows from nothing to everything.
    fn check_recently_active(&self) {
        for within in [0, 1, 7, 50, u64::MAX].map(Duration::from_millis) {
            let listed: Vec<(ConnId, Interest)> =
                self.server.recently_active(self.now, within).collect();
            let mut open = self.live_in_order();
            open.truncate(open.len() - self.draining.len());
            let recent = open
                .into_iter()
                .rev()
                .take_while(|&i| self.now.saturating_since(self.conns[i].last_active) < within);
            let want: Vec<(ConnId, Interest)> = recent
                .chain(self.draining.iter().copied())
                .map(|i| (self.conns[i].id, self.interest(&self.conns[i])))
                .collect();
            assert_eq!(listed, want, "recently_active within {within:?}");
        }
    }

    /// Applies `op` to both, drains the actions and checks every invariant.
    pub fn apply(&mut self, op: Op) {
        let n = self.conns.len();
        let what = op.clone();
        match op {
            Op::Accept => self.accept(),
            Op::Read { pick, len } if n > 0 => self.read(pick % n, len),
            Op::Write { pick, len } if n > 0 => self.write(pick % n, len),
            Op::Relay {
                pick,
                through,
                kept,
            } if n > 0 => self.relay(pick % n, through, kept),
            Op::Eof { pick } if n > 0 => self.eof(pick % n),
            Op::Fail { pick, kind } if n > 0 => self.fail(pick % n, kind),
            Op::Advance { ms } => self.advance(ms),
            Op::Shutdown { grace } => self.shutdown(grace),
            Op::Abort => self.abort(),
            _ => {}
        }
        // With actions owed, then with them polled: the core's own invariants hold in both.
        self.check_invariants(&what);
        self.drain_actions();
        self.check_invariants(&what);
        self.check();
    }

    fn check_invariants(&self, after: &Op) {
        if let Err(broken) = self.server.check_invariants() {
            panic!("after {after:?}: {broken}");
        }
    }

    fn accept(&mut self) {
        let got = self.server.on_accepted(self.now);
        if self.mode != Mode::Serving {
            assert_eq!(got, Err(AcceptError::ShuttingDown));
            self.refused += 1;
        } else if self.held() >= self.sizes.conns {
            assert_eq!(got, Err(AcceptError::Full));
            self.refused += 1;
        } else {
            let id = got.expect("a free slot");
            assert!(
                self.conns.iter().all(|c| c.id != id),
                "ids are never reused"
            );
            self.accepted += 1;
            self.conns.push(Conn {
                id,
                serial: self.conns.len() as u64,
                phase: Phase::Open,
                eof: false,
                queue: VecDeque::new(),
                received: Vec::new(),
                echoed: Vec::new(),
                last_active: self.now,
                seq: 0,
            });
            self.touch(self.conns.len() - 1);
        }
    }

    /// What `recv_with` must refuse on conn `i`, if anything.
    fn read_refusal(&self, i: usize) -> Option<RecvError> {
        let c = &self.conns[i];
        let no_buffer = c.queue.is_empty() && self.free_buffers() == 0;
        match c.phase {
            Phase::Closed(_) => Some(RecvError::UnknownConn),
            Phase::Open if c.eof || self.mode != Mode::Serving => Some(RecvError::ReadClosed),
            Phase::Open if c.queue.len() >= self.sizes.queue => Some(RecvError::QueueFull),
            Phase::Open | Phase::Draining if no_buffer => Some(RecvError::NoBuffer),
            Phase::Open | Phase::Draining => None,
            _ => Some(RecvError::Closing),
        }
    }

    fn read(&mut self, i: usize, len: usize) {
        let id = self.conns[i].id;
        let want = self.interest(&self.conns[i]);
        let refusal = self.read_refusal(i);
        let draining = self.conns[i].phase == Phase::Draining;
        let bytes: Vec<u8> = (0..len).map(|j| self.conns[i].next_byte(j)).collect();
        let queued = self.conns[i].queue.len();
        let q = self.sizes.queue;
        let got = self.server.recv_with(self.now, id, |buf| {
            assert!(
                !buf.is_empty() && buf.len() <= q - queued,
                "lent {}",
                buf.len()
            );
            if queued == 0 {
                assert_eq!(buf.len(), q, "an empty queue lends a whole buffer");
            }
            let k = buf.len().min(len);
            buf[..k].copy_from_slice(&bytes[..k]);
            (k, k)
        });
        let k = match (got, refusal) {
            (Ok(k), None) => k,
            (Err(e), Some(r)) => {
                assert_eq!(e, r);
                assert!(
                    !want.read || e == RecvError::Closing,
                    "{e} on a readable conn"
                );
                return;
            }
            (got, refusal) => panic!("recv_with gave {got:?}, the model expects {refusal:?}"),
        };
        assert!(want.read, "recv_with lent a buffer to an unreadable conn");
        if draining {
            self.drained += k as u64;
        } else {
            let c = &mut self.conns[i];
            c.received.extend_from_slice(&bytes[..k]);
            c.queue.extend(bytes[..k].iter().copied());
            self.bytes_in += k as u64;
            self.peak_queue = self.peak_queue.max(c.queue.len());
        }
        if k > 0 && !draining {
            self.touch(i);
        }
    }

    /// What `relay_with` must refuse on conn `i`, if anything.
    fn relay_refusal(&self, i: usize) -> Option<RelayError> {
        let c = &self.conns[i];
        match c.phase {
            Phase::Closed(_) => Some(RelayError::UnknownConn),
            Phase::Open if c.eof || self.mode != Mode::Serving => Some(RelayError::ReadClosed),
            Phase::Open if !c.queue.is_empty() => Some(RelayError::Queued),
            Phase::Open if self.free_buffers() == 0 => Some(RelayError::NoBuffer),
            Phase::Open => None,
            Phase::Draining => Some(RelayError::ReadClosed),
            _ => Some(RelayError::Closing),
        }
    }

    fn relay(&mut self, i: usize, through: usize, kept: usize) {
        let id = self.conns[i].id;
        let want = self.interest(&self.conns[i]);
        let refusal = self.relay_refusal(i);
        let kept = kept.min(self.sizes.queue);
        let bytes: Vec<u8> = (0..through + kept)
            .map(|j| self.conns[i].next_byte(j))
            .collect();
        let q = self.sizes.queue;
        let got = self.server.relay_with(self.now, id, |buf| {
            assert_eq!(buf.len(), q, "a relay is lent a whole buffer");
            buf[..kept].copy_from_slice(&bytes[through..]);
            (Relayed { through, kept }, ())
        });
        match (got, refusal) {
            (Ok(()), None) => {}
            (Err(e), Some(r)) => return assert_eq!(e, r),
            (got, refusal) => panic!("relay_with gave {got:?}, the model expects {refusal:?}"),
        }
        assert!(want.read, "relay_with lent a buffer to an unreadable conn");
        let c = &mut self.conns[i];
        c.received.extend_from_slice(&bytes);
        c.echoed.extend_from_slice(&bytes[..through]);
        c.queue.extend(bytes[through..].iter().copied());
        self.bytes_in += bytes.len() as u64;
        self.bytes_out += through as u64;
        self.peak_queue = self.peak_queue.max(kept);
        if !bytes.is_empty() {
            self.touch(i);
        }
    }

    fn write(&mut self, i: usize, len: usize) {
        let id = self.conns[i].id;
        let expected: Vec<u8> = self.conns[i].queue.iter().copied().collect();
        let got = self.server.send_with(self.now, id, |buf| {
            assert!(buf.len() <= expected.len());
            assert_eq!(
                buf,
                &expected[..buf.len()],
                "send_with lends the oldest bytes"
            );
            assert_eq!(buf.is_empty(), expected.is_empty());
            let k = buf.len().min(len);
            (k, buf[..k].to_vec())
        });
        let sent = match (got, self.conns[i].phase) {
            (Ok(sent), Phase::Open | Phase::Draining) => sent,
            (Err(e), Phase::Closed(_)) => return assert_eq!(e, SendError::UnknownConn),
            (got, phase) => panic!("send_with gave {got:?} in {phase:?}"),
        };
        let k = sent.len();
        let c = &mut self.conns[i];
        c.echoed.extend_from_slice(&sent);
        c.queue.drain(..k);
        self.bytes_out += k as u64;
        if k > 0 {
            self.touch(i);
            let c = &self.conns[i];
            if c.queue.is_empty() && c.eof {
                self.start_closing(i, CloseReason::PeerClosed);
            } else if c.queue.is_empty() && self.mode != Mode::Serving {
                self.announce(i);
            }
        }
    }

    fn eof(&mut self, i: usize) {
        let id = self.conns[i].id;
        let got = self.server.on_eof(self.now, id);
        match self.conns[i].phase {
            Phase::Open if self.conns[i].eof => assert_eq!(got, Err(EofError::ReadClosed)),
            Phase::Open => {
                got.expect("EOF on an open conn");
                self.conns[i].eof = true;
                self.touch(i);
                if self.conns[i].queue.is_empty() {
                    self.start_closing(i, CloseReason::PeerClosed);
                }
            }
            Phase::Draining => {
                got.expect("EOF on a draining conn");
                self.start_closing(i, CloseReason::Shutdown);
            }
            Phase::Closed(_) => assert_eq!(got, Err(EofError::UnknownConn)),
            phase => panic!("{phase:?} between ops"),
        }
    }

    fn fail(&mut self, i: usize, kind: ErrorKind) {
        let got = self.server.on_error(self.conns[i].id, kind);
        match self.conns[i].phase {
            Phase::Open | Phase::Draining => {
                got.expect("an error on a live conn");
                self.start_closing(i, CloseReason::Error(kind));
            }
            Phase::Closed(_) => assert_eq!(got, Err(ErrorReportError::UnknownConn)),
            phase => panic!("{phase:?} between ops"),
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now = self.now.saturating_add(Duration::from_millis(ms));
        self.server.on_timeout(self.now);
        if let Some(idle) = self.cfg.idle_timeout() {
            for i in self.live_in_order() {
                // Draining conns wait for their EOF or the shutdown deadline only.
                if self.conns[i].phase == Phase::Open
                    && self.conns[i].last_active.saturating_add(idle) <= self.now
                {
                    self.start_closing(i, CloseReason::IdleTimeout);
                }
            }
        }
        if matches!(self.mode, Mode::ShuttingDown(d) if d <= self.now) {
            for i in self.live_in_order() {
                self.start_closing(i, CloseReason::ShutdownTimeout);
            }
        }
    }

    fn shutdown(&mut self, grace: u64) {
        self.server.shutdown(self.now, Duration::from_millis(grace));
        if self.mode != Mode::Serving {
            return;
        }
        self.mode = Mode::ShuttingDown(self.now.saturating_add(Duration::from_millis(grace)));
        for i in self.live_in_order() {
            if self.conns[i].queue.is_empty() {
                self.announce(i);
            }
        }
    }

    fn abort(&mut self) {
        self.server.abort();
        self.mode = Mode::Aborted;
        for i in self.live_in_order() {
            self.start_closing(i, CloseReason::Aborted);
        }
    }

    fn drain_actions(&mut self) {
        while let Some(i) = self.pending.pop_front() {
            let id = self.conns[i].id;
            match self.conns[i].phase {
                Phase::Announcing => {
                    assert_eq!(self.server.poll_action(), Some(Action::ShutdownWrite(id)));
                    self.conns[i].phase = Phase::Draining;
                    self.draining.push(i);
                }
                Phase::Closing(reason) => {
                    assert_eq!(self.server.poll_action(), Some(Action::Close(id, reason)));
                    self.conns[i].phase = Phase::Closed(reason);
                    self.closed.push(reason);
                }
                phase => panic!("{phase:?} pending"),
            }
        }
        assert_eq!(self.server.poll_action(), None);
    }

    fn check(&self) {
        for c in &self.conns {
            // Bytes leave exactly once, in order: what was echoed plus what is queued is
            // exactly what was received, unless the queue was discarded by a failure.
            assert!(c.received.starts_with(&c.echoed));
            match c.phase {
                Phase::Closed(r) if !r.is_graceful() => {}
                _ => {
                    let mut all = c.echoed.clone();
                    all.extend(c.queue.iter());
                    assert_eq!(all, c.received);
                }
            }
            match c.phase {
                Phase::Open | Phase::Draining => {
                    assert_eq!(self.server.interest(c.id), Ok(self.interest(c)));
                    assert_eq!(self.server.queued(c.id), Ok(c.queue.len()));
                    assert!(c.queue.len() <= self.sizes.queue);
                }
                Phase::Closed(_) => assert_eq!(self.server.interest(c.id), Err(UnknownConn)),
                phase => panic!("{phase:?} after the actions were drained"),
            }
        }
        let listed: Vec<(ConnId, Interest)> = self.server.conns().collect();
        let want: Vec<(ConnId, Interest)> = self
            .live_in_order()
            .into_iter()
            .map(|i| (self.conns[i].id, self.interest(&self.conns[i])))
            .collect();
        assert_eq!(
            listed, want,
            "conns() lists live conns, least recently active first"
        );
        self.check_recently_active();
        assert_eq!(self.server.free_buffers(), self.free_buffers());
        assert_eq!(
            self.server.listener_interest(),
            self.mode == Mode::Serving && self.held() < self.sizes.conns
        );
        let st = self.server.stats();
        assert_eq!((st.accepted, st.refused), (self.accepted, self.refused));
        assert_eq!(
            (
                st.bytes_in,
                st.bytes_out,
                st.bytes_discarded,
                st.bytes_drained
            ),
            (self.bytes_in, self.bytes_out, self.discarded, self.drained)
        );
        assert_eq!(st.closed.total(), self.closed.len() as u64);
        let count =
            |f: fn(&CloseReason) -> bool| self.closed.iter().filter(|r| f(r)).count() as u64;
        assert_eq!(
            st.closed.peer_closed,
            count(|r| *r == CloseReason::PeerClosed)
        );
        assert_eq!(
            st.closed.reset,
            count(|r| *r == CloseReason::Error(ErrorKind::Reset))
        );
        assert_eq!(
            st.closed.idle_timeout,
            count(|r| *r == CloseReason::IdleTimeout)
        );
        assert_eq!(st.closed.shutdown, count(|r| *r == CloseReason::Shutdown));
        assert_eq!(
            st.closed.shutdown_timeout,
            count(|r| *r == CloseReason::ShutdownTimeout)
        );
        assert_eq!(st.closed.aborted, count(|r| *r == CloseReason::Aborted));
        assert_eq!(st.peak_queue, self.peak_queue);
        assert!(st.peak_conns <= self.sizes.conns);
        assert_eq!(self.server.poll_timeout(), self.expected_poll_timeout());
    }

    fn expected_poll_timeout(&self) -> Option<Instant> {
        let live = self.live_in_order();
        let oldest_open = live.iter().find(|&&i| self.conns[i].phase == Phase::Open);
        let idle = match (oldest_open, self.cfg.idle_timeout()) {
            (Some(&i), Some(t)) => Some(self.conns[i].last_active.saturating_add(t)),
            _ => None,
        };
        let grace = match self.mode {
            Mode::ShuttingDown(d) if !live.is_empty() => Some(d),
            _ => None,
        };
        [idle, grace].into_iter().flatten().min()
    }

    /// Shuts down, delivers everything it can, lets the grace period run out, and checks
    /// that nothing is left and every gracefully closed connection echoed every byte.
    pub fn finish(mut self) {
        self.apply(Op::Shutdown { grace: 1000 });
        for i in 0..self.conns.len() {
            while self.conns[i].phase == Phase::Open && !self.conns[i].queue.is_empty() {
                self.apply(Op::Write {
                    pick: i,
                    len: self.sizes.queue,
                });
            }
        }
        self.apply(Op::Advance { ms: 1000 });
        assert!(self.server.is_shut_down());
        assert_eq!(self.server.conn_count(), 0);
        assert_eq!(self.server.free_buffers(), self.sizes.buffers);
        for c in &self.conns {
            let Phase::Closed(reason) = c.phase else {
                panic!("conn left {:?}", c.phase)
            };
            if reason.is_graceful() {
                assert_eq!(
                    c.echoed, c.received,
                    "every byte echoed exactly once, in order"
                );
            }
        }
    }
}
