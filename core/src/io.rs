//! Pumping one connection from an `embedded-io` socket.
//!
//! For stacks that expose their sockets through `embedded_io` rather than through
//! readiness events of their own. Readiness only promises that the *first* `read` or
//! `write` will not block, so the pump makes at most one call of each per readiness check
//! and never uses `read_exact` or `write_all`.

use embedded_io::{ErrorKind as IoErrorKind, Read, ReadReady, Write, WriteReady};

use crate::{
    ConnId, EofError, ErrorKind, Instant, RecvError, SendError, Server, Storage, UnknownConn,
};

/// What one [`pump`] moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Pumped {
    /// Bytes received into the queue.
    pub read: usize,
    /// Bytes sent from the queue.
    pub written: usize,
    /// The socket reported EOF.
    pub eof: bool,
}

/// Why a [`pump`] stopped early. Nothing more was read from the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PumpError<E> {
    /// The id names no open connection: a driver bug (see [`UnknownConn`]).
    UnknownConn,
    /// The core refused to lend for a receive.
    Recv(RecvError),
    /// The core refused to lend for a send.
    Send(SendError),
    /// The core refused the peer's EOF.
    Eof(EofError),
    /// The socket failed. It was already reported to the core with
    /// [`Server::on_error`]: poll its actions and close the socket.
    Io(E),
}

/// `From` each core error, so that the pump's calls convert with `?`.
macro_rules! pump_from {
    ($($error:ident => $variant:ident),*) => {
        $(
            impl<E> From<$error> for PumpError<E> {
                fn from(e: $error) -> Self {
                    PumpError::$variant(e)
                }
            }
        )*
    };
}

pump_from!(RecvError => Recv, SendError => Send, EofError => Eof);

impl<E> From<UnknownConn> for PumpError<E> {
    fn from(_: UnknownConn) -> Self {
        PumpError::UnknownConn
    }
}

/// Moves what can move now between `socket` and connection `id`: a send of queued bytes if
/// the socket is write-ready, a receive if it is read-ready and the core wants to read (EOF
/// counts as readable), and a send of what was just received. Returns what moved.
///
/// ```
/// use echoloop_core::{io::pump, Config, Instant, Server, StaticStorage};
/// # use core::convert::Infallible;
/// # struct Loop(Vec<u8>, Vec<u8>);
/// # impl embedded_io::ErrorType for Loop { type Error = Infallible; }
/// # impl embedded_io::Read for Loop {
/// #     fn read(&mut self, b: &mut [u8]) -> Result<usize, Infallible> {
/// #         let n = b.len().min(self.0.len()); b[..n].copy_from_slice(&self.0[..n]);
/// #         self.0.drain(..n); Ok(n) } }
/// # impl embedded_io::Write for Loop {
/// #     fn write(&mut self, b: &[u8]) -> Result<usize, Infallible> { self.1.extend_from_slice(b); Ok(b.len()) }
/// #     fn flush(&mut self) -> Result<(), Infallible> { Ok(()) } }
/// # impl embedded_io::ReadReady for Loop { fn read_ready(&mut self) -> Result<bool, Infallible> { Ok(true) } }
/// # impl embedded_io::WriteReady for Loop { fn write_ready(&mut self) -> Result<bool, Infallible> { Ok(true) } }
/// let mut server = Server::<StaticStorage<2, 2, 32>>::new_static(Config::new());
/// let now = Instant::ZERO;
/// let id = server.on_accepted(now).unwrap();
/// let mut socket = Loop(b"ping".to_vec(), Vec::new());
/// let moved = pump(&mut server, now, id, &mut socket).unwrap();
/// assert_eq!((moved.read, moved.written), (4, 4));
/// assert_eq!(socket.1, b"ping");
/// ```
pub fn pump<S, T>(
    server: &mut Server<T>,
    now: Instant,
    id: ConnId,
    socket: &mut S,
) -> Result<Pumped, PumpError<S::Error>>
where
    S: Read + Write + ReadReady + WriteReady,
    T: Storage,
{
    let mut moved = Pumped::default();
    // Send first: it may make room to receive.
    moved.written += send(server, now, id, socket)?;
    match receive(server, now, id, socket)? {
        Some(0) => moved.eof = true,
        Some(n) => moved.read = n,
        None => {}
    }
    if moved.read > 0 {
        // Echo straight back instead of waiting for the next pump.
        moved.written += send(server, now, id, socket)?;
    }
    Ok(moved)
}

fn send<S, T>(
    server: &mut Server<T>,
    now: Instant,
    id: ConnId,
    socket: &mut S,
) -> Result<usize, PumpError<S::Error>>
where
    S: Write + WriteReady,
    T: Storage,
{
    if !server.interest(id)?.write || !io(server, id, socket.write_ready())? {
        return Ok(0);
    }
    let written = server.send_with(now, id, |queued| match socket.write(queued) {
        Ok(n) => (n, Ok(n)),
        Err(e) => (0, Err(e)),
    })?;
    let n = io(server, id, written)?;
    if n == 0 {
        // embedded-io: a non-empty write of 0 bytes means the socket takes no more. The
        // id was just used, so a refusal can only say it is closing already.
        let _ = server.on_error(id, ErrorKind::Other);
    }
    Ok(n)
}

/// Receives once if ready: `None` if it did not try, `Some(0)` at EOF.
fn receive<S, T>(
    server: &mut Server<T>,
    now: Instant,
    id: ConnId,
    socket: &mut S,
) -> Result<Option<usize>, PumpError<S::Error>>
where
    S: Read + ReadReady,
    T: Storage,
{
    if !server.interest(id)?.read || !io(server, id, socket.read_ready())? {
        return Ok(None);
    }
    let read = server.recv_with(now, id, |buf| match socket.read(buf) {
        Ok(n) => (n, Ok(n)),
        Err(e) => (0, Err(e)),
    })?;
    let n = io(server, id, read)?;
    if n == 0 {
        // The buffer lent is never empty, so 0 is EOF, not "nothing read".
        server.on_eof(now, id)?;
    }
    Ok(Some(n))
}

/// Passes a socket result through, reporting a failure to the core first.
fn io<T, E: embedded_io::Error, St: Storage>(
    server: &mut Server<St>,
    id: ConnId,
    result: Result<T, E>,
) -> Result<T, PumpError<E>> {
    result.map_err(|e| {
        // The id was checked before the socket call, so this cannot fail.
        let _ = server.on_error(id, error_kind(e.kind()));
        PumpError::Io(e)
    })
}

/// Maps an `embedded-io` error kind onto the core's.
pub fn error_kind(kind: IoErrorKind) -> ErrorKind {
    match kind {
        IoErrorKind::ConnectionReset | IoErrorKind::ConnectionAborted | IoErrorKind::BrokenPipe => {
            ErrorKind::Reset
        }
        IoErrorKind::NotConnected => ErrorKind::HangUp,
        IoErrorKind::TimedOut => ErrorKind::TimedOut,
        _ => ErrorKind::Other,
    }
}
