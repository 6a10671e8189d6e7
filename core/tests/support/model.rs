//! A simple reference model of the server, and the driver that checks the two agree.
//!
//! Shared by the property test (`tests/model.rs`) and the fuzz target (`fuzz/`), so both
//! check the same invariants. The model is the obvious, slow version of the rules: one
//! `VecDeque` per connection, a sequence number for "least recently active", and explicit
//! lists. After every step [`Model::apply`] checks that the server agrees with it: bytes echoed exactly once and in order, no
//! queue over capacity, interest consistent with state, the same actions in the same
//! order, the same stats. At the end it shuts the server down and checks that every
//! connection closed and every byte of every gracefully closed connection came back.

use std::collections::VecDeque;

use echoloop_core::{
    Action, CloseReason, Config, ConnId, Duration, Error, ErrorKind, Instant, Interest, Server,
};

/// Connection capacity of the server under test: small, so the table fills often.
pub const C: usize = 4;
/// Queue size: small, so queues fill and wrap often.
pub const Q: usize = 16;
type S = Server<C, Q>;

/// One event (or misuse) the driver reports; `pick` selects a known connection, open or not.
#[derive(Clone, Debug)]
pub enum Op {
    Accept,
    /// Receive up to `len` bytes on the `pick`-th known connection.
    Read {
        pick: usize,
        len: usize,
    },
    /// Report `extra` bytes more than the lent slice holds.
    ReadTooLong {
        pick: usize,
        extra: usize,
    },
    /// Send up to `len` bytes (a partial write when shorter than queued).
    Write {
        pick: usize,
        len: usize,
    },
    WriteTooLong {
        pick: usize,
        extra: usize,
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    Closing(CloseReason),
    Closed(CloseReason),
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
    server: S,
    cfg: Config,
    now: Instant,
    conns: Vec<Conn>,
    seq: u64,
    /// Conns whose actions are owed, in the order the core decided them.
    closing: VecDeque<usize>,
    shutdown_deadline: Option<Instant>,
    accepted: u64,
    refused: u64,
    bytes_in: u64,
    bytes_out: u64,
    discarded: u64,
    closed: Vec<CloseReason>,
}

impl Model {
    /// A fresh server and model with `cfg`.
    pub fn new(cfg: Config) -> Self {
        Model {
            server: S::new(cfg),
            cfg,
            now: Instant::ZERO,
            conns: Vec::new(),
            seq: 0,
            closing: VecDeque::new(),
            shutdown_deadline: None,
            accepted: 0,
            refused: 0,
            bytes_in: 0,
            bytes_out: 0,
            discarded: 0,
            closed: Vec::new(),
        }
    }

    /// Connections allowed at once: `max_conns` clamped to the compiled capacity.
    fn cap(&self) -> usize {
        self.cfg.max_conns.min(C)
    }

    fn held(&self) -> usize {
        self.conns
            .iter()
            .filter(|c| !matches!(c.phase, Phase::Closed(_)))
            .count()
    }

    fn interest(&self, c: &Conn) -> Interest {
        if c.phase != Phase::Open {
            return Interest::NONE;
        }
        Interest {
            read: !c.eof && self.shutdown_deadline.is_none() && c.queue.len() < Q,
            write: !c.queue.is_empty(),
        }
    }

    fn touch(&mut self, i: usize) {
        self.seq += 1;
        self.conns[i].seq = self.seq;
        self.conns[i].last_active = self.now;
    }

    fn start_closing(&mut self, i: usize, reason: CloseReason) {
        let c = &mut self.conns[i];
        assert_eq!(c.phase, Phase::Open);
        if !reason.is_graceful() {
            self.discarded += c.queue.len() as u64;
            c.queue.clear();
        }
        c.phase = Phase::Closing(reason);
        self.closing.push_back(i);
    }

    /// Open conns, least recently active first.
    fn live_in_order(&self) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.conns.len())
            .filter(|&i| self.conns[i].phase == Phase::Open)
            .collect();
        v.sort_by_key(|&i| self.conns[i].seq);
        v
    }

    /// Applies `op` to both, drains the actions and checks every invariant.
    pub fn apply(&mut self, op: Op) {
        let n = self.conns.len();
        match op {
            Op::Accept => self.accept(),
            Op::Read { pick, len } if n > 0 => self.read(pick % n, len),
            Op::ReadTooLong { pick, extra } if n > 0 => self.read_too_long(pick % n, extra),
            Op::Write { pick, len } if n > 0 => self.write(pick % n, len),
            Op::WriteTooLong { pick, extra } if n > 0 => self.write_too_long(pick % n, extra),
            Op::Eof { pick } if n > 0 => self.eof(pick % n),
            Op::Fail { pick, kind } if n > 0 => self.fail(pick % n, kind),
            Op::Advance { ms } => self.advance(ms),
            Op::Shutdown { grace } => self.shutdown(grace),
            _ => {}
        }
        self.drain_actions();
        self.check();
    }

    fn accept(&mut self) {
        let got = self.server.on_accepted(self.now);
        if self.shutdown_deadline.is_some() {
            assert_eq!(got, Err(Error::ShuttingDown));
            self.refused += 1;
        } else if self.held() >= self.cap() {
            assert_eq!(got, Err(Error::Full));
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

    fn read(&mut self, i: usize, len: usize) {
        let id = self.conns[i].id;
        let want = self.interest(&self.conns[i]);
        let buf = match self.server.read_buf(id) {
            Ok(buf) => buf,
            Err(e) => {
                assert!(!want.read, "read_buf refused ({e}) a readable conn");
                self.expect_refusal(i, e);
                return;
            }
        };
        assert!(want.read, "read_buf lent a buffer to an unreadable conn");
        assert!(!buf.is_empty() && buf.len() <= Q - self.conns[i].queue.len());
        let k = buf.len().min(len);
        let bytes: Vec<u8> = (0..k).map(|j| self.conns[i].next_byte(j)).collect();
        buf[..k].copy_from_slice(&bytes);
        self.server
            .on_read(self.now, id, k)
            .expect("a read within the lent slice");
        let c = &mut self.conns[i];
        c.received.extend_from_slice(&bytes);
        c.queue.extend(bytes.iter().copied());
        self.bytes_in += k as u64;
        self.touch(i);
    }

    fn read_too_long(&mut self, i: usize, extra: usize) {
        let id = self.conns[i].id;
        let before = self.server.queued(id);
        let lent = self.server.read_buf(id).map(|b| b.len()).unwrap_or(0);
        let got = self.server.on_read(self.now, id, lent + extra);
        match self.conns[i].phase {
            Phase::Open if self.conns[i].eof || self.shutdown_deadline.is_some() => {
                assert_eq!(got, Err(Error::ReadClosed))
            }
            Phase::Open => assert_eq!(got, Err(Error::TooLong)),
            Phase::Closing(_) => assert_eq!(got, Err(Error::Closing)),
            Phase::Closed(_) => assert_eq!(got, Err(Error::UnknownConn)),
        }
        assert_eq!(
            self.server.queued(id),
            before,
            "a refused read changes nothing"
        );
    }

    fn write(&mut self, i: usize, len: usize) {
        let id = self.conns[i].id;
        let buf = match self.server.write_buf(id) {
            Ok(buf) => buf,
            Err(e) => {
                self.expect_refusal(i, e);
                return;
            }
        };
        let c = &self.conns[i];
        assert_eq!(c.phase, Phase::Open);
        assert!(buf.len() <= c.queue.len());
        assert!(
            buf.iter().eq(c.queue.iter().take(buf.len())),
            "write_buf lends the oldest bytes"
        );
        assert_eq!(buf.is_empty(), c.queue.is_empty());
        let k = buf.len().min(len);
        let sent = buf[..k].to_vec();
        self.server
            .on_written(self.now, id, k)
            .expect("a write within the lent slice");
        let c = &mut self.conns[i];
        c.echoed.extend_from_slice(&sent);
        c.queue.drain(..k);
        self.bytes_out += k as u64;
        if k > 0 {
            self.touch(i);
            let c = &self.conns[i];
            if c.queue.is_empty() && c.eof {
                self.start_closing(i, CloseReason::PeerClosed);
            } else if c.queue.is_empty() && self.shutdown_deadline.is_some() {
                self.start_closing(i, CloseReason::Shutdown);
            }
        }
    }

    fn write_too_long(&mut self, i: usize, extra: usize) {
        let id = self.conns[i].id;
        let lent = self.server.write_buf(id).map(|b| b.len()).unwrap_or(0);
        let got = self.server.on_written(self.now, id, lent + extra);
        match self.conns[i].phase {
            Phase::Open => assert_eq!(got, Err(Error::TooLong)),
            Phase::Closing(_) => assert_eq!(got, Err(Error::Closing)),
            Phase::Closed(_) => assert_eq!(got, Err(Error::UnknownConn)),
        }
    }

    fn eof(&mut self, i: usize) {
        let id = self.conns[i].id;
        let got = self.server.on_read(self.now, id, 0);
        match self.conns[i].phase {
            Phase::Open if self.conns[i].eof => assert_eq!(got, Err(Error::ReadClosed)),
            Phase::Open => {
                got.expect("EOF on an open conn");
                self.conns[i].eof = true;
                self.touch(i);
                if self.conns[i].queue.is_empty() {
                    self.start_closing(i, CloseReason::PeerClosed);
                }
            }
            Phase::Closing(_) => assert_eq!(got, Err(Error::Closing)),
            Phase::Closed(_) => assert_eq!(got, Err(Error::UnknownConn)),
        }
    }

    fn fail(&mut self, i: usize, kind: ErrorKind) {
        let got = self.server.on_error(self.conns[i].id, kind);
        match self.conns[i].phase {
            Phase::Open => {
                got.expect("an error on an open conn");
                self.start_closing(i, CloseReason::Error(kind));
            }
            Phase::Closing(_) => assert_eq!(got, Err(Error::Closing)),
            Phase::Closed(_) => assert_eq!(got, Err(Error::UnknownConn)),
        }
    }

    fn expect_refusal(&self, i: usize, e: Error) {
        let c = &self.conns[i];
        let want = match c.phase {
            Phase::Closed(_) => Error::UnknownConn,
            Phase::Closing(_) => Error::Closing,
            Phase::Open if c.eof || self.shutdown_deadline.is_some() => Error::ReadClosed,
            Phase::Open => Error::QueueFull,
        };
        assert_eq!(e, want, "conn {i} in {:?}", c.phase);
    }

    fn advance(&mut self, ms: u64) {
        self.now = self.now.saturating_add(Duration::from_millis(ms));
        self.server.handle_timeout(self.now);
        if let Some(idle) = self.cfg.idle_timeout {
            for i in self.live_in_order() {
                if self.conns[i].last_active.saturating_add(idle) <= self.now {
                    self.start_closing(i, CloseReason::IdleTimeout);
                }
            }
        }
        if self.shutdown_deadline.is_some_and(|d| d <= self.now) {
            for i in self.live_in_order() {
                self.start_closing(i, CloseReason::ShutdownTimeout);
            }
        }
    }

    fn shutdown(&mut self, grace: u64) {
        self.server.shutdown(self.now, Duration::from_millis(grace));
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.shutdown_deadline = Some(self.now.saturating_add(Duration::from_millis(grace)));
        for i in self.live_in_order() {
            if self.conns[i].queue.is_empty() {
                self.start_closing(i, CloseReason::Shutdown);
            }
        }
    }

    fn drain_actions(&mut self) {
        while let Some(i) = self.closing.pop_front() {
            let Phase::Closing(reason) = self.conns[i].phase else {
                unreachable!()
            };
            let id = self.conns[i].id;
            if reason.is_graceful() {
                assert_eq!(self.server.poll_action(), Some(Action::ShutdownWrite(id)));
            }
            assert_eq!(self.server.poll_action(), Some(Action::Close(id, reason)));
            self.conns[i].phase = Phase::Closed(reason);
            self.closed.push(reason);
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
                Phase::Open => {
                    assert_eq!(self.server.interest(c.id), Ok(self.interest(c)));
                    assert_eq!(self.server.queued(c.id), Ok(c.queue.len()));
                    assert!(c.queue.len() <= Q);
                }
                Phase::Closing(_) => unreachable!("actions were drained"),
                Phase::Closed(_) => assert_eq!(self.server.interest(c.id), Err(Error::UnknownConn)),
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
            "conns() lists open conns, least recently active first"
        );
        assert_eq!(
            self.server.listener_interest(),
            self.shutdown_deadline.is_none() && self.held() < self.cap()
        );
        let st = self.server.stats();
        assert_eq!((st.accepted, st.refused), (self.accepted, self.refused));
        assert_eq!(
            (st.bytes_in, st.bytes_out, st.bytes_discarded),
            (self.bytes_in, self.bytes_out, self.discarded)
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
        assert!(st.peak_queue <= Q);
        assert!(st.peak_conns <= C);
        let expected_timeout = self.expected_poll_timeout();
        assert_eq!(self.server.poll_timeout(), expected_timeout);
    }

    fn expected_poll_timeout(&self) -> Option<Instant> {
        let live = self.live_in_order();
        let idle = match (live.first(), self.cfg.idle_timeout) {
            (Some(&i), Some(t)) => Some(self.conns[i].last_active.saturating_add(t)),
            _ => None,
        };
        let grace = self.shutdown_deadline.filter(|_| !live.is_empty());
        [idle, grace].into_iter().flatten().min()
    }

    /// Shuts down, delivers everything it can, lets the grace period run out, and checks
    /// that nothing is left and every gracefully closed connection echoed every byte.
    pub fn finish(mut self) {
        self.apply(Op::Shutdown { grace: 1000 });
        for i in 0..self.conns.len() {
            while self.conns[i].phase == Phase::Open && !self.conns[i].queue.is_empty() {
                self.apply(Op::Write { pick: i, len: Q });
            }
        }
        self.apply(Op::Advance { ms: 1000 });
        assert!(self.server.is_shut_down());
        assert_eq!(self.server.conn_count(), 0);
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
