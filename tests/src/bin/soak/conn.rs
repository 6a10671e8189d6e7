//! One soak connection: a small state machine per kind of client, driven by `poll`
//! readiness on a non-blocking socket, checking every echoed byte as it arrives.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use echoloop_tests::{fill_stream, sock, Rng};

/// The kinds of client the soak mixes, each a fault the server must survive or a load it
/// must carry without losing a byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Sends a message, waits for its whole echo, thinks, again; then half-closes.
    PingPong,
    /// Streams 256 KiB to 4 MiB while reading the echo; then half-closes.
    Stream,
    /// Sends up to 16 KB and half-closes before reading a byte.
    HalfClose,
    /// For 5-30 s sends whatever the server and the kernels take (until its queue in the
    /// server and both socket buffers are full), never reads, then closes with unread
    /// data (a reset).
    NeverReads,
    /// Streams while reading, then resets mid-stream (`SO_LINGER` 0).
    Reset,
}

impl Kind {
    /// Every kind, in table order.
    pub const ALL: [Kind; 5] = [
        Kind::PingPong,
        Kind::Stream,
        Kind::HalfClose,
        Kind::NeverReads,
        Kind::Reset,
    ];

    /// Healthy clients must get every byte back, then a clean EOF.
    pub fn healthy(self) -> bool {
        matches!(self, Kind::PingPong | Kind::Stream | Kind::HalfClose)
    }

    fn draw(rng: &mut Rng) -> Kind {
        match rng.range(0, 99) {
            0..=49 => Kind::PingPong,
            50..=64 => Kind::Stream,
            65..=79 => Kind::HalfClose,
            80..=89 => Kind::NeverReads,
            _ => Kind::Reset,
        }
    }
}

/// How a connection ended.
pub enum Outcome {
    /// As its kind expects.
    Done,
    /// Something the server must never do (a lost, wrong or unexpected byte, a reset or
    /// EOF on a healthy connection, a stall).
    Failed(String),
}

/// A connection that made no progress for this long, while waiting on the server, failed.
/// Far beyond any scheduling delay: a liveness check, not a timing assertion.
const STALL: Duration = Duration::from_secs(120);

/// Writes of up to 64 KiB per readiness report.
const WRITES_PER_TURN: usize = 4;

/// One client connection.
pub struct Conn {
    /// Its kind.
    pub kind: Kind,
    sock: TcpStream,
    seed: u64,
    /// Bytes it will send in all.
    total: usize,
    /// Bytes sent so far.
    pub sent: usize,
    /// Echoed bytes received and checked so far.
    pub received: usize,
    /// Ping-pong: the current message ends here; the next one is this long.
    msg_end: usize,
    msg_size: usize,
    /// Ping-pong: do not send before this (think time).
    think_until: Option<Instant>,
    /// Half-closed (FIN sent).
    fin: bool,
    /// Never-reader: close at this time.
    hold_until: Option<Instant>,
    /// Reset: after sending this many bytes.
    reset_at: usize,
    last_progress: Instant,
}

impl Conn {
    /// Connects to `addr` with a kind drawn from `rng`.
    pub fn open(addr: SocketAddr, rng: &mut Rng, now: Instant) -> io::Result<Conn> {
        let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(30))?;
        sock.set_nonblocking(true)?;
        sock.set_nodelay(true)?;
        let kind = Kind::draw(rng);
        let total = match kind {
            Kind::PingPong => rng.range(1_000, 64_000),
            Kind::Stream => rng.range(256 << 10, 4 << 20),
            Kind::HalfClose => rng.range(1, 16_000),
            Kind::NeverReads => usize::MAX,
            Kind::Reset => rng.range(64 << 10, 1 << 20),
        };
        let msg_size = rng.range(1, 4_096);
        Ok(Conn {
            kind,
            sock,
            seed: rng.next_u64(),
            total,
            sent: 0,
            received: 0,
            msg_end: msg_size.min(total),
            msg_size,
            think_until: None,
            fin: false,
            hold_until: (kind == Kind::NeverReads)
                .then(|| now + Duration::from_millis(rng.range(5_000, 30_000) as u64)),
            reset_at: rng.range(1, total.min(1 << 20)),
            last_progress: now,
        })
    }

    /// The socket, for `poll`.
    pub fn fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.sock.as_raw_fd()
    }

    /// What to wait for.
    pub fn events(&self) -> i16 {
        let (r, w) = (libc::POLLIN, libc::POLLOUT);
        match self.kind {
            Kind::PingPong if self.sent < self.msg_end && self.think_until.is_none() => r | w,
            Kind::PingPong => r,
            Kind::Stream | Kind::Reset if !self.fin => r | w,
            Kind::Stream | Kind::Reset => r,
            Kind::HalfClose if self.fin => r,
            Kind::HalfClose => w,
            // Still hears a reset or hang-up: poll reports those whatever was asked.
            Kind::NeverReads => w,
        }
    }

    /// The socket is ready (`revents` from poll): move what can be moved.
    pub fn on_ready(
        &mut self,
        revents: i16,
        now: Instant,
        buf: &mut [u8],
        want: &mut [u8],
    ) -> Option<Outcome> {
        if revents & libc::POLLOUT != 0 {
            if let Some(end) = self.write(now, buf) {
                return Some(end);
            }
        }
        let trouble = libc::POLLERR | libc::POLLHUP;
        if revents & (libc::POLLIN | trouble) != 0 {
            if self.kind == Kind::NeverReads {
                return Some(Outcome::Failed(
                    "the server closed a client that never reads".into(),
                ));
            }
            if let Some(end) = self.read(now, buf, want) {
                return Some(end);
            }
            // An echo completed: the next message may go at once.
            return self.write(now, buf);
        }
        None
    }

    /// Timers: think time over, hold over, stall.
    pub fn on_tick(&mut self, now: Instant, buf: &mut [u8]) -> Option<Outcome> {
        if self.think_until.is_some_and(|t| t <= now) {
            self.think_until = None;
            self.last_progress = now;
            return self.write(now, buf);
        }
        if self.hold_until.is_some_and(|t| t <= now) {
            // Dropping it with unread input resets the connection.
            return Some(Outcome::Done);
        }
        let waiting = self.think_until.is_none() && self.hold_until.is_none();
        if waiting && now.duration_since(self.last_progress) > STALL {
            return Some(self.failed(format_args!("no progress for {STALL:?}")));
        }
        None
    }

    /// The soak is ending: finish what is in flight and half-close; faults end now.
    pub fn finish(&mut self, now: Instant, buf: &mut [u8]) -> Option<Outcome> {
        match self.kind {
            Kind::NeverReads | Kind::Reset => Some(Outcome::Done),
            Kind::PingPong => {
                // No new message: what is in flight comes back, then EOF.
                self.total = self.sent;
                self.msg_end = self.sent;
                self.think_until = None;
                self.half_close_if_done()
            }
            Kind::Stream => {
                self.total = self.sent;
                self.write(now, buf)
            }
            Kind::HalfClose => None,
        }
    }

    fn write(&mut self, now: Instant, buf: &mut [u8]) -> Option<Outcome> {
        let limit = match self.kind {
            Kind::PingPong if self.think_until.is_some() => self.sent,
            Kind::PingPong => self.msg_end,
            _ => self.total,
        };
        // A few writes per turn, so that a fast stream also reads its echo in between
        // and shares the thread with the others.
        for _ in 0..WRITES_PER_TURN {
            if self.sent >= limit || self.fin {
                break;
            }
            let n = (limit - self.sent).min(buf.len());
            fill_stream(self.seed, self.sent, &mut buf[..n]);
            match self.sock.write(&buf[..n]) {
                Ok(k) => {
                    self.sent += k;
                    self.last_progress = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => return Some(self.failed(format_args!("send: {e}"))),
            }
            if self.kind == Kind::Reset && self.sent >= self.reset_at {
                sock::set_linger_zero(&self.sock);
                return Some(Outcome::Done);
            }
        }
        match self.kind {
            Kind::Stream | Kind::HalfClose | Kind::Reset if self.sent == self.total => {
                self.half_close()
            }
            _ => None,
        }
    }

    fn read(&mut self, now: Instant, buf: &mut [u8], want: &mut [u8]) -> Option<Outcome> {
        loop {
            match self.sock.read(buf) {
                Ok(0) => return Some(self.on_eof()),
                Ok(n) => {
                    if let Some(bad) = self.check(&buf[..n], want) {
                        return Some(bad);
                    }
                    self.received += n;
                    self.last_progress = now;
                    if let Some(end) = self.on_echoed(now) {
                        return Some(end);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => return Some(self.failed(format_args!("recv: {e}"))),
            }
        }
    }

    /// The bytes just received must be the next ones sent.
    fn check(&self, got: &[u8], want: &mut [u8]) -> Option<Outcome> {
        if self.received + got.len() > self.sent {
            return Some(self.failed(format_args!("{} bytes more than sent", got.len())));
        }
        let want = &mut want[..got.len()];
        fill_stream(self.seed, self.received, want);
        let at = got.iter().zip(want.iter()).position(|(a, b)| a != b)?;
        Some(self.failed(format_args!("wrong byte at offset {}", self.received + at)))
    }

    /// Ping-pong: a whole echo is back; think, then the next message, or half-close.
    fn on_echoed(&mut self, now: Instant) -> Option<Outcome> {
        if self.kind != Kind::PingPong || self.received != self.msg_end {
            return None;
        }
        if self.msg_end == self.total {
            return self.half_close_if_done();
        }
        self.msg_end = (self.msg_end + self.msg_size).min(self.total);
        let think = Duration::from_millis(self.seed % 1_500 + 100);
        self.think_until = Some(now + think);
        None
    }

    fn half_close_if_done(&mut self) -> Option<Outcome> {
        (self.received == self.total && self.sent == self.total)
            .then(|| self.half_close())
            .flatten()
    }

    fn half_close(&mut self) -> Option<Outcome> {
        if self.fin {
            return None;
        }
        self.fin = true;
        match self.sock.shutdown(Shutdown::Write) {
            Ok(()) => None,
            Err(e) => Some(self.failed(format_args!("shutdown: {e}"))),
        }
    }

    fn on_eof(&self) -> Outcome {
        if self.kind.healthy() && self.fin && self.received == self.total {
            return Outcome::Done;
        }
        self.failed(format_args!("EOF from the server"))
    }

    fn failed(&self, what: std::fmt::Arguments<'_>) -> Outcome {
        Outcome::Failed(format!(
            "{:?} connection (stream {:#x}): {what}; sent {}, received {}",
            self.kind, self.seed, self.sent, self.received
        ))
    }
}
