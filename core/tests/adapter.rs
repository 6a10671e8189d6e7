//! The embedded-io pump against an in-memory socket that reads and writes short.

use echoloop_core::io::{pump, PumpError};
use echoloop_core::{Action, CloseReason, Config, ErrorKind, Instant, Server, StaticStorage};

/// Two connections sharing one buffer of 64 bytes.
type Echo = Server<StaticStorage<2, 1, 64>>;
use embedded_io::{
    ErrorKind as IoKind, ErrorType, Read, ReadExactError, ReadReady, Write, WriteReady,
};

/// A peer on the far side of a socket: it has `inbound` to send, takes what comes back,
/// and the socket between moves at most `max_read`/`max_write` bytes a call, and is ready
/// only every other time it is asked, like a real stack under load.
struct MemSocket {
    inbound: Vec<u8>,
    sent: usize,
    echoed: Vec<u8>,
    max_read: usize,
    max_write: usize,
    tick: u32,
    /// Fail every call with this kind once `sent` reaches this many bytes.
    fail_after: Option<(usize, IoKind)>,
    /// Set by a ready answer, spent by the one call it allows.
    read_permit: bool,
    write_permit: bool,
}

#[derive(Debug)]
struct SockError(IoKind);

impl core::fmt::Display for SockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
impl core::error::Error for SockError {}
impl embedded_io::Error for SockError {
    fn kind(&self) -> IoKind {
        self.0
    }
}

impl MemSocket {
    fn new(inbound: Vec<u8>, max_read: usize, max_write: usize) -> Self {
        MemSocket {
            inbound,
            sent: 0,
            echoed: Vec::new(),
            max_read,
            max_write,
            tick: 0,
            fail_after: None,
            read_permit: false,
            write_permit: false,
        }
    }

    fn check_failure(&self) -> Result<(), SockError> {
        match self.fail_after {
            Some((at, kind)) if self.sent >= at => Err(SockError(kind)),
            _ => Ok(()),
        }
    }
}

impl ErrorType for MemSocket {
    type Error = SockError;
}

impl ReadReady for MemSocket {
    fn read_ready(&mut self) -> Result<bool, SockError> {
        self.check_failure()?;
        self.tick += 1;
        // Ready every other call; at EOF always ready (EOF counts as readable).
        self.read_permit = self.sent == self.inbound.len() || self.tick % 2 == 0;
        Ok(self.read_permit)
    }
}

impl WriteReady for MemSocket {
    fn write_ready(&mut self) -> Result<bool, SockError> {
        self.check_failure()?;
        self.tick += 1;
        self.write_permit = self.tick % 3 != 0;
        Ok(self.write_permit)
    }
}

impl Read for MemSocket {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SockError> {
        self.check_failure()?;
        assert!(!buf.is_empty(), "the pump must never lend an empty buffer");
        assert!(
            std::mem::take(&mut self.read_permit),
            "read without a ready answer"
        );
        let n = buf
            .len()
            .min(self.max_read)
            .min(self.inbound.len() - self.sent);
        buf[..n].copy_from_slice(&self.inbound[self.sent..self.sent + n]);
        self.sent += n;
        Ok(n)
    }

    fn read_exact(&mut self, _: &mut [u8]) -> Result<(), ReadExactError<SockError>> {
        panic!("readiness promises one read, never read_exact");
    }
}

impl Write for MemSocket {
    fn write(&mut self, buf: &[u8]) -> Result<usize, SockError> {
        self.check_failure()?;
        assert!(
            std::mem::take(&mut self.write_permit),
            "write without a ready answer"
        );
        let n = buf.len().min(self.max_write);
        self.echoed.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), SockError> {
        Ok(())
    }

    fn write_all(&mut self, _: &[u8]) -> Result<(), SockError> {
        panic!("readiness promises one write, never write_all");
    }
}

/// Bytes per stream: Miri is thousands of times slower, and 1-byte reads of 5000 bytes take minutes there.
const LEN: usize = if cfg!(miri) { 400 } else { 5000 };

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Pumps until the server asks to close, returning the actions it asked for.
fn run(server: &mut Echo, sock: &mut MemSocket) -> Vec<Action> {
    let id = server.on_accepted(Instant::ZERO).unwrap();
    let mut actions = Vec::new();
    for step in 0..100_000u64 {
        match pump(server, Instant::from_millis(step), id, sock) {
            Ok(_) => {}
            Err(PumpError::Io(_)) => {}
            Err(e) => panic!("core refused: {e:?}"),
        }
        actions.extend(core::iter::from_fn(|| server.poll_action()));
        if actions.iter().any(|a| matches!(a, Action::Close(..))) {
            return actions;
        }
    }
    panic!("the connection never closed");
}

#[test]
fn short_reads_and_writes_echo_every_byte_then_close() {
    for (seed, (max_read, max_write)) in [(1, 1), (3, 2), (7, 64), (64, 5), (13, 17)]
        .into_iter()
        .enumerate()
    {
        let data = pattern(LEN, seed as u64 + 1);
        let mut server = Echo::new_static(Config::new());
        let mut sock = MemSocket::new(data.clone(), max_read, max_write);
        let actions = run(&mut server, &mut sock);
        assert_eq!(
            sock.echoed, data,
            "max_read {max_read} max_write {max_write}"
        );
        assert!(matches!(
            actions[..],
            [Action::Close(_, CloseReason::PeerClosed)]
        ));
        assert_eq!(server.stats().bytes_out, LEN as u64);
    }
}

#[test]
fn a_reset_mid_stream_closes_with_the_error() {
    let data = pattern(1000, 9);
    let mut server = Echo::new_static(Config::new());
    let mut sock = MemSocket::new(data.clone(), 10, 3);
    sock.fail_after = Some((500, IoKind::ConnectionReset));
    let actions = run(&mut server, &mut sock);
    assert_eq!(actions.len(), 1);
    assert!(matches!(
        actions[0],
        Action::Close(_, CloseReason::Error(ErrorKind::Reset))
    ));
    assert!(
        data.starts_with(&sock.echoed),
        "what was echoed is a prefix, in order"
    );
    assert_eq!(server.stats().closed.reset, 1);
}

#[test]
fn a_socket_that_takes_no_more_bytes_is_an_error() {
    let mut server = Echo::new_static(Config::new());
    let mut sock = MemSocket::new(b"abc".to_vec(), 8, 0);
    let actions = run(&mut server, &mut sock);
    assert!(matches!(
        actions[..],
        [Action::Close(_, CloseReason::Error(ErrorKind::Other))]
    ));
}

#[test]
fn a_stale_id_is_refused_before_touching_the_socket() {
    let mut server = Echo::new_static(Config::new());
    let id = server.on_accepted(Instant::ZERO).unwrap();
    server.on_error(id, ErrorKind::HangUp).unwrap();
    while server.poll_action().is_some() {}
    let mut sock = MemSocket::new(b"abc".to_vec(), 8, 8);
    let got = pump(&mut server, Instant::ZERO, id, &mut sock);
    assert!(matches!(got, Err(PumpError::UnknownConn)));
    assert_eq!((sock.sent, sock.tick), (0, 0));
}
