//! Datagrams in the simulated world: sources sending to the server's UDP socket, a
//! receive buffer, a send buffer that fills (`EAGAIN`), datagrams longer than the slot
//! the driver lends (cut to it, as Linux's `recvfrom` without `MSG_TRUNC` does) and a
//! pending `ECONNREFUSED` after an ICMP error, reported by the next call on the socket.
//!
//! Every echo is checked: it must go to a source that sent, carry exactly the bytes of
//! one of that source's datagrams, in order (drops may skip some, nothing may reorder or
//! change them), and never go to a guarded port.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use crate::rng::Rng;

/// Datagrams the receive buffer holds; more are dropped by the "kernel", uncounted by
/// the server, as a real one does.
const RECV_BUFFER: usize = 32;
/// Datagrams the sources send in all, per seed.
const TOTAL: u64 = 400;
/// Sources with an ordinary port, plus one with the echo port 7 (loop guard).
const SOURCES: u16 = 4;

/// This seed's datagram profile.
pub struct Faults {
    arrive: f64,
    burst: u64,
    eagain: f64,
    refused: f64,
    oversize: f64,
}

impl Faults {
    pub fn draw(rng: &mut Rng) -> Self {
        Faults {
            arrive: rng.prob(0.05, 0.5),
            burst: rng.range(1, 12),
            eagain: rng.prob(0.0, 0.4),
            refused: rng.prob(0.0, 0.05),
            oversize: rng.prob(0.0, 0.05),
        }
    }
}

/// What happened to datagrams, on the world's side.
#[derive(Default, Debug, Clone, Copy)]
pub struct Seen {
    /// Handed to the server by `recv_from` (truncated ones included).
    pub delivered: u64,
    /// Of those, longer than the buffer the driver lent.
    pub truncated: u64,
    /// Of those, from the guarded port.
    pub guarded: u64,
    /// Echoes received by the sources, each checked.
    pub echoes: u64,
    /// `EAGAIN` from `send_to`.
    pub send_eagain: u64,
    /// `ECONNREFUSED` reported by `recv_from`.
    pub refused_recv: u64,
    /// `ECONNREFUSED` reported by `send_to` (that echo is lost).
    pub refused_send: u64,
}

/// The server's UDP socket and its sources.
pub struct Datagrams {
    faults: Faults,
    /// Waiting in the socket's receive buffer: sender and bytes.
    inbox: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Per source, the datagrams the server received whole, not yet echoed.
    expected: HashMap<SocketAddr, VecDeque<Vec<u8>>>,
    sent: u64,
    /// An ICMP error arrived: the next call on the socket reports `ECONNREFUSED`.
    icmp_pending: bool,
    /// Room in the send buffer, in datagrams; the link drains it a little each tick.
    room: usize,
    pub seen: Seen,
    pub failures: Vec<String>,
}

impl Datagrams {
    pub fn new(faults: Faults) -> Self {
        Datagrams {
            faults,
            inbox: VecDeque::new(),
            expected: HashMap::new(),
            sent: 0,
            icmp_pending: false,
            room: 4,
            seen: Seen::default(),
            failures: Vec::new(),
        }
    }

    fn source(k: u16) -> SocketAddr {
        let port = if k == SOURCES { 7 } else { 40_000 + k };
        SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), port))
    }

    /// Time passes: the send buffer drains, perhaps a burst of datagrams arrives.
    pub fn tick(&mut self, rng: &mut Rng) {
        self.room = (self.room + 2).min(8);
        if self.sent >= TOTAL || !rng.chance(self.faults.arrive) {
            return;
        }
        // A burst from one source: the flood guard's case.
        let from = Self::source(rng.range(0, u64::from(SOURCES)) as u16);
        for _ in 0..rng.range(1, self.faults.burst) {
            if self.sent >= TOTAL {
                break;
            }
            self.sent += 1;
            let len = if rng.chance(self.faults.oversize) {
                rng.range(65_536, 70_000) as usize
            } else {
                [0, 1, 64, 512, 1472, 9000][rng.range(0, 5) as usize]
            };
            let seed = rng.next_u64();
            let bytes: Vec<u8> = (0..len)
                .map(|i| (seed >> (i % 8 * 8)) as u8 ^ i as u8)
                .collect();
            if self.inbox.len() < RECV_BUFFER {
                self.inbox.push_back((from, bytes));
            }
        }
    }

    pub fn readable(&self) -> bool {
        !self.inbox.is_empty() || self.icmp_pending
    }

    pub fn writable(&self) -> bool {
        self.room > 0 || self.icmp_pending
    }

    pub fn recv_from(&mut self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        if std::mem::take(&mut self.icmp_pending) {
            self.seen.refused_recv += 1;
            return Err(io::Error::from_raw_os_error(libc::ECONNREFUSED));
        }
        let Some((from, bytes)) = self.inbox.pop_front() else {
            return Err(io::Error::from_raw_os_error(libc::EAGAIN));
        };
        self.seen.delivered += 1;
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        // The core's order: the loop guard first, then the length. A datagram that fills
        // the slot to the last byte counts as cut short (`udp::SLOT_SIZE` is larger than
        // any real UDP payload, so only a cut one can fill it).
        if from.port() == 7 {
            self.seen.guarded += 1;
        } else if bytes.len() >= buf.len() {
            self.seen.truncated += 1;
        } else {
            self.expected.entry(from).or_default().push_back(bytes);
        }
        Ok((n, from))
    }

    pub fn send_to(&mut self, buf: &[u8], to: SocketAddr, rng: &mut Rng) -> io::Result<usize> {
        if std::mem::take(&mut self.icmp_pending) {
            self.seen.refused_send += 1;
            return Err(io::Error::from_raw_os_error(libc::ECONNREFUSED));
        }
        if self.room == 0 || rng.chance(self.faults.eagain) {
            self.seen.send_eagain += 1;
            return Err(io::Error::from_raw_os_error(libc::EAGAIN));
        }
        self.room -= 1;
        self.check_echo(buf, to);
        // Now and then the source has gone: its host answers with an ICMP error.
        if rng.chance(self.faults.refused) {
            self.icmp_pending = true;
        }
        Ok(buf.len())
    }

    /// Records a failure; the first few say enough.
    fn fail(&mut self, what: String) {
        if self.failures.len() < 5 {
            self.failures.push(what);
        }
    }

    /// The echo must be the next of `to`'s datagrams not dropped.
    fn check_echo(&mut self, buf: &[u8], to: SocketAddr) {
        self.seen.echoes += 1;
        let Some(queue) = self.expected.get_mut(&to) else {
            self.failures.push(format!(
                "an echo of {} bytes to {to}, which never sent",
                buf.len()
            ));
            return;
        };
        while let Some(sent) = queue.pop_front() {
            if sent == buf {
                return;
            }
        }
        self.fail(format!(
            "an echo of {} bytes to {to} matches none of its datagrams (or comes out of order)",
            buf.len()
        ));
    }
}
