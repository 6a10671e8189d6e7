//! The simulated clients: what each kind does at every step, and the check of every byte
//! it gets back.

use std::time::Duration;

use crate::link::Link;
use crate::rng::{mix, Rng};

/// How a peer behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Sends a stream in random chunks while reading, then half-closes and reads to EOF.
    Stream,
    /// Sends a message, waits for its whole echo, again; then half-closes.
    PingPong,
    /// Sends everything and half-closes before reading a single byte.
    HalfClose,
    /// Sends and never reads; then closes with unread data (a RST).
    NeverReads,
    /// Sends and reads a while, then resets (`SO_LINGER` 0).
    Resets,
    /// Sends a little, then is never heard of again (no FIN, no RST).
    Vanishes,
    /// Ping-pong with a pause of tens to hundreds of milliseconds after each echo: cold
    /// between its messages once the loop shortens its hot window (host/src/poll/plan/heat.rs).
    /// Drawn only in the seeds that hold many connections at once (`World::sleepers`).
    Sleeper,
    /// A sleeper whose pause is longer than the longest hot window (a second): it idles
    /// among busy connections until the select backend has it cold, then speaks. Each echo
    /// after its first must come back within [`IDLER_PATIENCE`].
    Idler,
}

/// How long an idler waits for an echo at most, in steady virtual time: the select
/// backend's sweep reaches an idle connection within about a pass (at most 100 ms, plus
/// two short waits), and withheld readiness may cost it a few passes more.
pub const IDLER_PATIENCE: Duration = Duration::from_secs(1);

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Kind; 8] = [
        Kind::Stream,
        Kind::PingPong,
        Kind::HalfClose,
        Kind::NeverReads,
        Kind::Resets,
        Kind::Vanishes,
        Kind::Sleeper,
        Kind::Idler,
    ];

    /// Healthy peers must get back every byte the server took, then a clean EOF.
    pub fn healthy(self) -> bool {
        matches!(
            self,
            Kind::Stream | Kind::PingPong | Kind::HalfClose | Kind::Sleeper | Kind::Idler
        )
    }

    /// Ping-pong, paced or not: one message at a time.
    fn one_at_a_time(self) -> bool {
        matches!(self, Kind::PingPong | Kind::Sleeper | Kind::Idler)
    }

    /// Paces itself: pauses after each echo.
    fn pauses(self) -> bool {
        matches!(self, Kind::Sleeper | Kind::Idler)
    }

    fn draw(rng: &mut Rng) -> Self {
        match rng.below(100) {
            0..=29 => Kind::Stream,
            30..=54 => Kind::PingPong,
            55..=64 => Kind::HalfClose,
            65..=74 => Kind::NeverReads,
            75..=89 => Kind::Resets,
            _ => Kind::Vanishes,
        }
    }
}

/// The byte a peer sends at offset `i` of its stream: a reordered, repeated or lost
/// byte shows up at once.
pub fn pattern(seed: u64, i: u64) -> u8 {
    (mix(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 56) as u8
}

/// One client and what it has seen.
pub struct Peer {
    /// Its behaviour.
    pub kind: Kind,
    seed: u64,
    /// Bytes it means to send.
    pub total: u64,
    /// Bytes sent so far.
    pub sent: u64,
    /// Bytes of echo received so far, each checked.
    pub received: u64,
    /// Ping-pong: the current message ends at this offset.
    msg_end: u64,
    msg_size: u64,
    /// Chance to read at a step (slow readers).
    read_p: f64,
    /// For peers that give up: after this many steps.
    stop_after: u64,
    steps: u64,
    /// A sleeper's pause after each echo, and when it may send again.
    pause: Duration,
    wake_at: Duration,
    rested: bool,
    /// When its current message was all sent (after the first), until its echo is back.
    asked_at: Option<Duration>,
    /// The longest it waited for an echo of a message after its first.
    pub longest_wait: Duration,
    /// Saw the server's EOF.
    pub eof: bool,
    /// Saw a reset.
    pub reset: bool,
    /// Finished: closed, reset or gone.
    pub done: bool,
    /// The first wrong byte, if any.
    pub bad: Option<String>,
}

impl Peer {
    /// A new peer of a random kind.
    pub fn new(rng: &mut Rng) -> Self {
        let kind = Kind::draw(rng);
        let total = match kind {
            Kind::NeverReads => rng.range(20_000, 80_000),
            Kind::PingPong => rng.range(1, 12_000),
            // It reads nothing until it has sent everything: more than the server's queue
            // would deadlock any echo server, so it stays below.
            Kind::HalfClose => rng.range(0, 16_000),
            _ => rng.range(0, 24_000),
        };
        let msg_size = rng.range(1, 3_000);
        Peer {
            kind,
            seed: rng.next_u64(),
            total,
            sent: 0,
            received: 0,
            msg_end: msg_size.min(total),
            msg_size,
            read_p: rng.prob(0.1, 1.0),
            stop_after: rng.range(1, 400),
            steps: 0,
            pause: Duration::ZERO,
            wake_at: Duration::ZERO,
            rested: false,
            asked_at: None,
            longest_wait: Duration::ZERO,
            eof: false,
            reset: false,
            done: false,
            bad: None,
        }
    }

    /// Makes this ping-pong peer a sleeper (see [`Kind::Sleeper`]), or one in four an
    /// idler (three short messages, [`Kind::Idler`]).
    pub fn sleep_between_messages(&mut self, rng: &mut Rng) {
        if self.kind != Kind::PingPong {
            return;
        }
        if rng.chance(0.25) {
            self.kind = Kind::Idler;
            self.pause = Duration::from_millis(rng.range(1_200, 2_500));
            self.msg_size = rng.range(1, 64);
            self.total = 3 * self.msg_size;
            self.msg_end = self.msg_size;
        } else {
            self.kind = Kind::Sleeper;
            self.pause = Duration::from_millis(rng.range(20, 400));
        }
    }

    /// Healthy and finished: everything sent came back, then EOF.
    pub fn complete(&self) -> bool {
        self.eof && !self.reset && self.received == self.total
    }

    /// One step of the peer's life.
    pub fn step(&mut self, link: &mut Link, rng: &mut Rng, now: Duration) {
        if self.done {
            return;
        }
        self.steps += 1;
        if self.steps >= self.stop_after && self.give_up(link) {
            return;
        }
        let reads = match self.kind {
            Kind::NeverReads | Kind::Vanishes => false,
            Kind::HalfClose => link.peer_fin,
            _ => true,
        };
        if reads && rng.chance(self.read_p) {
            self.read(link, rng, now);
        }
        if !self.done && now >= self.wake_at {
            self.send(link, rng, now);
        }
    }

    /// Peers that give up do it here; true if this one did.
    fn give_up(&mut self, link: &mut Link) -> bool {
        match self.kind {
            Kind::Resets => link.reset(),
            // close(2) with unread input sends a RST; with none, a FIN.
            Kind::NeverReads if !link.to_peer.is_empty() => link.reset(),
            Kind::NeverReads => {
                link.peer_fin = true;
                link.peer_closed = true;
            }
            Kind::Vanishes => {}
            _ => return false,
        }
        self.done = true;
        true
    }

    fn read(&mut self, link: &mut Link, rng: &mut Rng, now: Duration) {
        if link.to_peer.is_empty() {
            if link.reset {
                self.reset = true;
                self.done = true;
            } else if link.server_fin || link.server_close.is_some() {
                self.eof = true;
                // The echo is over: half-close if not yet, and close.
                link.peer_fin = true;
                link.peer_closed = true;
                self.done = true;
            }
            return;
        }
        let n = rng.range(1, link.to_peer.len() as u64) as usize;
        for byte in link.to_peer.drain(..n) {
            let want = pattern(self.seed, self.received);
            if byte != want || self.received >= self.sent {
                self.bad.get_or_insert_with(|| {
                    format!(
                        "{:?} peer: byte {} is {byte:#04x}, sent {want:#04x} ({} sent)",
                        self.kind, self.received, self.sent
                    )
                });
            }
            self.received += 1;
        }
        if self.received == self.msg_end {
            if let Some(at) = self.asked_at.take() {
                self.longest_wait = self.longest_wait.max(now.saturating_sub(at));
            }
        }
    }

    fn send(&mut self, link: &mut Link, rng: &mut Rng, now: Duration) {
        if link.peer_fin {
            return;
        }
        let echoed = self.received == self.sent && self.sent == self.msg_end;
        if self.kind.one_at_a_time() && echoed && self.sent < self.total {
            if self.kind.pauses() && self.sent > 0 && !self.rested {
                // The echo just came back: pause before the next message.
                self.rested = true;
                self.wake_at = now + self.pause;
                return;
            }
            self.rested = false;
            self.msg_end = (self.sent + self.msg_size).min(self.total);
        }
        let limit = match self.kind {
            Kind::PingPong | Kind::Sleeper | Kind::Idler => self.msg_end,
            Kind::Vanishes => self.total.min(2_000),
            _ => self.total,
        };
        if self.sent < limit {
            self.push(link, rng, limit);
            if self.kind == Kind::Idler && self.sent == limit && self.sent > self.msg_size {
                self.asked_at = Some(now);
            }
        }
        let finished = match self.kind {
            Kind::Stream | Kind::HalfClose => self.sent == self.total,
            Kind::PingPong | Kind::Sleeper | Kind::Idler => self.received == self.total,
            _ => false,
        };
        if finished && !self.done {
            link.peer_fin = true;
        }
    }

    fn push(&mut self, link: &mut Link, rng: &mut Rng, limit: u64) {
        if link.reset {
            self.reset = true;
            self.done = true;
            return;
        }
        if link.server_close.is_some() {
            // Data for a closed socket: its kernel answers with a RST.
            link.reset();
            self.reset = true;
            self.done = true;
            return;
        }
        let room = link.in_cap.saturating_sub(link.to_server.len()) as u64;
        let n = rng.range(0, room.min(limit - self.sent).min(8_192));
        for i in self.sent..self.sent + n {
            link.to_server.push_back(pattern(self.seed, i));
        }
        self.sent += n;
    }
}
