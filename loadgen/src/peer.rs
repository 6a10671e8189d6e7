//! One load-generating connection: what it has sent, what came back, and what to do when
//! its readiness changes. The same code serves both modes: a ping-pong connection sends
//! one message and waits for its whole echo; a streaming one keeps up to a window of bytes
//! in flight. An idle connection is a ping-pong one with a quota of one message.
//!
//! Readiness is edge-triggered (`mio`), and a short `read` or `write` is taken as the end
//! of what the socket had or could take (as tokio does on Linux), so a connection never
//! makes the call that would only return `WouldBlock`: a ping-pong round trip costs one
//! `write` and one `read`.

use std::io::{self, Read, Write};
use std::time::Instant;

use mio::net::TcpStream;

use super::Mode;
use crate::histogram::Histogram;
use crate::pattern::Pattern;

/// Writes timed per streaming connection: enough to sample latency, a fixed array.
const MARKS: usize = 8;

/// What the measured window has seen; reset at the end of the warm-up.
#[derive(Default)]
pub struct Tally {
    /// Whole ping-pong messages echoed (a stream counts its bytes only).
    pub messages: u64,
    /// Echoed bytes verified.
    pub bytes: u64,
    /// Round-trip latencies.
    pub latency: Histogram,
}

/// Why a connection stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Fault {
    /// The server closed or reset it.
    Reset,
    /// An echoed byte differed from what was sent, or came unasked.
    Mismatch,
}

/// The message sizes and window shared by every connection.
pub struct Shape {
    /// Ping-pong or stream.
    pub mode: Mode,
    /// Message size (ping-pong) or write size (stream).
    pub size: u64,
    /// Stream: the most bytes in flight per connection.
    pub window: u64,
}

/// One connection.
pub struct Peer {
    stream: TcpStream,
    index: usize,
    /// Ping-pong: stop after this many messages (an idle connection: one).
    quota: Option<u64>,
    /// Where the current message (ping-pong) or the stream starts in the pattern.
    start: u64,
    /// Messages completed: seeds the next message's start.
    seq: u64,
    /// Bytes written, and echoed back and checked, since `start`.
    sent: u64,
    echoed: u64,
    /// The last `write` was short or would block: wait for a writable edge.
    write_blocked: bool,
    /// Ping-pong: when the current message was first written.
    began: Instant,
    /// Stream: (end offset, time) of a few writes in flight, oldest first.
    marks: [(u64, Instant); MARKS],
    marked: usize,
}

impl Peer {
    /// A connection, `index` among them, ready to start; `quota` bounds its messages.
    pub fn new(
        stream: TcpStream,
        index: usize,
        quota: Option<u64>,
        pattern: &Pattern,
        now: Instant,
    ) -> Self {
        Peer {
            stream,
            index,
            quota,
            start: pattern.start(index, 0) as u64,
            seq: 0,
            sent: 0,
            echoed: 0,
            write_blocked: false,
            began: now,
            marks: [(0, now); MARKS],
            marked: 0,
        }
    }

    /// The socket, to register with `mio`.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Whole messages echoed (ping-pong), or whether any echo came back at all (stream).
    pub fn completed(&self) -> u64 {
        self.seq.max(u64::from(self.echoed > 0))
    }

    fn wants_to_write(&self, shape: &Shape) -> bool {
        if self.quota.is_some_and(|q| self.seq >= q) {
            return false;
        }
        match shape.mode {
            Mode::PingPong => self.sent < shape.size,
            Mode::Stream => self.sent - self.echoed < shape.window,
        }
    }

    /// Serves a readiness event: reads and checks the echo, then writes what it may.
    pub fn on_ready(
        &mut self,
        event: &mio::event::Event,
        shape: &Shape,
        pattern: &Pattern,
        scratch: &mut [u8],
        tally: &mut Tally,
    ) -> Result<(), Fault> {
        if event.is_writable() {
            self.write_blocked = false;
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.read(shape, pattern, scratch, tally)?;
        }
        self.write(shape, pattern)
    }

    /// Writes until the socket or the mode says stop.
    pub fn write(&mut self, shape: &Shape, pattern: &Pattern) -> Result<(), Fault> {
        while !self.write_blocked && self.wants_to_write(shape) {
            let limit = match shape.mode {
                Mode::PingPong => shape.size - self.sent,
                Mode::Stream => shape.size.min(shape.window - (self.sent - self.echoed)),
            };
            let bytes = pattern.slice(self.start + self.sent, limit as usize);
            match self.stream.write(bytes) {
                Ok(0) => return Err(Fault::Reset),
                Ok(n) => {
                    self.sent += n as u64;
                    self.mark(shape);
                    // A short write: the send buffer is full; its edge says when not.
                    self.write_blocked = n < bytes.len();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.write_blocked = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Fault::Reset),
            }
        }
        Ok(())
    }

    /// Stream: remembers when this many bytes were in flight, while there is room.
    fn mark(&mut self, shape: &Shape) {
        if shape.mode == Mode::Stream && self.marked < MARKS {
            if let Some(m) = self.marks.get_mut(self.marked) {
                *m = (self.sent, Instant::now());
                self.marked += 1;
            }
        }
    }

    /// Reads and checks until the socket is drained (a short read) or nothing more is due.
    /// Each `read` asks for at most what is in flight, and at least one byte, so that an
    /// EOF or bytes nobody sent are seen.
    fn read(
        &mut self,
        shape: &Shape,
        pattern: &Pattern,
        scratch: &mut [u8],
        tally: &mut Tally,
    ) -> Result<(), Fault> {
        loop {
            let want = (self.sent - self.echoed).clamp(1, scratch.len() as u64) as usize;
            let buf = scratch.get_mut(..want).unwrap_or_default();
            let n = match self.stream.read(buf) {
                Ok(0) => return Err(Fault::Reset),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(_) => return Err(Fault::Reset),
            };
            let got = buf.get(..n).unwrap_or_default();
            if self.echoed + n as u64 > self.sent || !pattern.matches(self.start + self.echoed, got)
            {
                return Err(Fault::Mismatch);
            }
            self.echoed += n as u64;
            tally.bytes += n as u64;
            match shape.mode {
                Mode::PingPong => self.maybe_next_message(shape, pattern, tally),
                Mode::Stream => self.stream_progress(tally),
            }
            // Short: drained. Full with nothing more in flight: nothing more is due, and
            // anything unasked arrives as a new edge or ahead of the next echo.
            if n < want || self.sent == self.echoed {
                return Ok(());
            }
        }
    }

    /// Ping-pong: a whole echo is a round trip; the next message starts elsewhere.
    fn maybe_next_message(&mut self, shape: &Shape, pattern: &Pattern, tally: &mut Tally) {
        if self.echoed < shape.size {
            return;
        }
        let now = Instant::now();
        tally.latency.record(now - self.began);
        tally.messages += 1;
        self.seq += 1;
        self.start = pattern.start(self.index, self.seq) as u64;
        self.sent = 0;
        self.echoed = 0;
        self.began = now;
    }

    /// Stream: times the marked writes that are now echoed in full.
    fn stream_progress(&mut self, tally: &mut Tally) {
        let marked = self.marks.get(..self.marked).unwrap_or_default();
        let done = marked
            .iter()
            .take_while(|(end, _)| *end <= self.echoed)
            .count();
        if done == 0 {
            return;
        }
        let now = Instant::now();
        for (_, at) in marked.iter().take(done) {
            tally.latency.record(now - *at);
        }
        self.marks.copy_within(done..self.marked, 0);
        self.marked -= done;
    }

    /// An idle connection at the end of the run: still open, nothing unasked pending.
    pub fn still_open(&self) -> bool {
        let mut byte = [0u8; 1];
        matches!((&self.stream).read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}
