//! The driver: a pool of smoltcp TCP sockets serving the core's connections.

use echoloop_core::{Action, ConnId, Duration, ErrorKind, Instant, Server, Storage};
use echoloop_core::{
    EofError, ErrorReportError, RecvError as CoreRecvError, SendError, UnknownConn,
};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, RecvError, State};
use smoltcp::socket::AnySocket;
use smoltcp::time::Instant as NetInstant;

use crate::time;

/// How many send-then-receive rounds one connection gets per [`Driver::poll`]. Two suffice
/// for a queue whose bytes wrap around its end; a few more let a fast peer move more per
/// poll, and the bound keeps one busy connection from starving the others.
const ROUNDS: usize = 4;

/// What the driver needs to know besides the core's [`echoloop_core::Config`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// The TCP port to listen on. Not 0: smoltcp cannot listen on it.
    pub port: u16,
    /// How long a closing socket may wait for its peer (smoltcp's `set_timeout`, set when
    /// the driver sends a FIN): a peer that never acknowledges must not keep it forever.
    pub close_timeout: Duration,
}

impl Config {
    /// Listen on `port`; give a closing handshake ten seconds.
    pub const fn new(port: u16) -> Self {
        Config {
            port,
            close_timeout: Duration::from_secs(10),
        }
    }
}

/// What one [`Driver::poll`] did. All zero: nothing happened, the application may sleep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Polled {
    /// Connections given to the core.
    pub accepted: usize,
    /// Connections the core refused (full or shutting down): they were aborted.
    pub refused: usize,
    /// Bytes received into the core's queues.
    pub received: usize,
    /// Bytes sent from the core's queues.
    pub sent: usize,
    /// Connections closed at the core's request.
    pub closed: usize,
}

impl Polled {
    /// True when nothing moved.
    pub const fn is_empty(&self) -> bool {
        self.accepted == 0
            && self.refused == 0
            && self.received == 0
            && self.sent == 0
            && self.closed == 0
    }
}

/// What one socket of the pool is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Closed, free to listen.
    Idle,
    /// Listening, or in the middle of the handshake of the next connection.
    Listening,
    /// Serving a connection of the core (draining included: the core decides that).
    Conn(ConnId),
}

/// One socket of the pool.
#[derive(Clone, Copy, Debug)]
struct Entry {
    handle: SocketHandle,
    role: Role,
}

/// Serves an [`echoloop_core::Server`] from a pool of `SOCKETS` smoltcp TCP sockets.
///
/// `SOCKETS` may exceed the server's capacity: a closed socket finishes its FIN handshake
/// (or sends its RST) before it listens again, and the spare sockets keep a listener ready
/// for each free slot of the core meanwhile. With as many sockets as connections a new
/// connection may be refused by smoltcp (a RST) until the handshake is over.
///
/// The driver holds only handles and roles; the sockets and their buffers stay in the
/// application's [`SocketSet`], and the server stays the application's too, so it can read
/// its [`Stats`](echoloop_core::Stats) or call [`Server::shutdown`].
///
/// Sockets are found by a linear search of the set rather than with `SocketSet::get_mut`,
/// which panics on a handle it does not hold, and connections by a linear search of the
/// pool: both are small, and a socket removed behind the driver's back becomes a hung-up
/// connection, not a crash.
#[derive(Debug)]
pub struct Driver<const SOCKETS: usize> {
    config: Config,
    pool: [Entry; SOCKETS],
}

impl<const SOCKETS: usize> Driver<SOCKETS> {
    /// A driver for the TCP sockets `handles` of the application's socket set. They should
    /// be closed; the first [`poll`](Self::poll) makes them listen.
    pub fn new(config: Config, handles: [SocketHandle; SOCKETS]) -> Self {
        Driver {
            config,
            pool: handles.map(|handle| Entry {
                handle,
                role: Role::Idle,
            }),
        }
    }

    /// The configuration in force.
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// One round of serving: accept the connections smoltcp established, move bytes both
    /// ways, report peer FINs and resets, let the core expire idle connections, carry out
    /// its actions, and keep one socket listening per free slot (on sockets whose close
    /// smoltcp has finished). Call it after every `Interface::poll`.
    pub fn poll<S: Storage>(
        &mut self,
        now: NetInstant,
        server: &mut Server<S>,
        sockets: &mut SocketSet<'_>,
    ) -> Polled {
        let now = time::to_core(now);
        let mut polled = Polled::default();
        self.accept(now, server, sockets, &mut polled);
        self.serve(now, server, sockets, &mut polled);
        server.on_timeout(now);
        self.carry_out(server, sockets, &mut polled);
        self.listen(server, sockets);
        polled
    }

    /// When [`poll`](Self::poll) must run again at the latest, smoltcp aside: the core's
    /// next deadline. `None`: only on network activity (smoltcp's own `poll_at` covers its
    /// sockets' closes).
    pub fn poll_at<S: Storage>(&self, server: &Server<S>) -> Option<NetInstant> {
        server.poll_timeout().map(time::to_smoltcp)
    }

    /// The socket serving connection `id`, if it is open.
    pub fn socket_of(&self, id: ConnId) -> Option<SocketHandle> {
        self.entry_of(id)
            .and_then(|k| self.pool.get(k))
            .map(|e| e.handle)
    }

    /// The connection a socket serves, if any.
    pub fn conn_of(&self, handle: SocketHandle) -> Option<ConnId> {
        self.pool.iter().find_map(|e| match e.role {
            Role::Conn(id) if e.handle == handle => Some(id),
            _ => None,
        })
    }

    /// Sockets listening (or completing a handshake) for the next connection.
    pub fn listening(&self) -> usize {
        self.count(|r| r == Role::Listening)
    }

    /// Sockets no longer serving a connection whose close smoltcp has not finished: a FIN
    /// handshake, or the RST of an abort still to go out.
    pub fn closing(&self, sockets: &SocketSet<'_>) -> usize {
        self.pool
            .iter()
            .filter(|e| e.role == Role::Idle)
            .filter(|e| find_socket(sockets, e.handle).is_some_and(|s| !closed(s)))
            .count()
    }

    /// True when no socket serves a connection or finishes closing one: after
    /// [`Server::is_shut_down`], the moment the application may stop polling.
    pub fn is_idle(&self, sockets: &SocketSet<'_>) -> bool {
        self.count(|r| matches!(r, Role::Conn(_))) == 0 && self.closing(sockets) == 0
    }

    fn count(&self, f: impl Fn(Role) -> bool) -> usize {
        self.pool.iter().filter(|e| f(e.role)).count()
    }

    /// The pool index serving `id` (generation included).
    fn entry_of(&self, id: ConnId) -> Option<usize> {
        self.pool.iter().position(|e| e.role == Role::Conn(id))
    }

    /// Hands the connections smoltcp established on listening sockets to the core.
    fn accept<S: Storage>(
        &mut self,
        now: Instant,
        server: &mut Server<S>,
        sockets: &mut SocketSet<'_>,
        polled: &mut Polled,
    ) {
        for entry in &mut self.pool {
            if entry.role != Role::Listening {
                continue;
            }
            let Some(socket) = tcp_socket(sockets, entry.handle) else {
                entry.role = Role::Idle;
                continue;
            };
            match socket.state() {
                State::Listen | State::SynReceived => {}
                // CloseWait: the peer sent its data and FIN before we looked; serve it all.
                State::Established | State::CloseWait => match server.on_accepted(now) {
                    Ok(id) => {
                        entry.role = Role::Conn(id);
                        polled.accepted += 1;
                    }
                    Err(_) => {
                        socket.abort();
                        entry.role = Role::Idle;
                        polled.refused += 1;
                    }
                },
                // The handshake failed (smoltcp usually returns to Listen by itself).
                _ => {
                    socket.abort();
                    entry.role = Role::Idle;
                }
            }
        }
    }

    /// Moves bytes on every connection and reports what smoltcp saw happen to it.
    fn serve<S: Storage>(
        &mut self,
        now: Instant,
        server: &mut Server<S>,
        sockets: &mut SocketSet<'_>,
        polled: &mut Polled,
    ) {
        for entry in &self.pool {
            let Role::Conn(id) = entry.role else {
                continue;
            };
            // A core error means the connection is closing: its actions say the rest.
            let _ = match tcp_socket(sockets, entry.handle) {
                Some(socket) => serve_conn(now, server, id, socket, polled),
                None => server
                    .on_error(id, ErrorKind::HangUp)
                    .map_err(Refused::from),
            };
        }
    }

    /// Carries out the core's actions: a FIN for a write-side shutdown (the core keeps
    /// the connection to drain it); for a close, a FIN if the close is graceful, else an
    /// abort. A closing socket gets smoltcp's timeout so that a silent peer cannot pin it;
    /// [`listen`](Self::listen) reuses it once smoltcp is done with it.
    fn carry_out<S: Storage>(
        &mut self,
        server: &mut Server<S>,
        sockets: &mut SocketSet<'_>,
        polled: &mut Polled,
    ) {
        let timeout = time::to_smoltcp_duration(self.config.close_timeout);
        while let Some(action) = server.poll_action() {
            let (id, close) = match action {
                Action::ShutdownWrite(id) => (id, None),
                Action::Close(id, reason) => (id, Some(reason)),
            };
            let Some(entry) = self.entry_of(id).and_then(|k| self.pool.get_mut(k)) else {
                continue;
            };
            let socket = tcp_socket(sockets, entry.handle);
            if let Some(socket) = socket {
                socket.set_timeout(Some(timeout));
                match close {
                    Some(reason) if !reason.is_graceful() => socket.abort(),
                    _ => socket.close(),
                }
            }
            if close.is_some() {
                entry.role = Role::Idle;
                polled.closed += 1;
            }
        }
    }

    /// Keeps exactly one socket listening per free slot of the core: more would accept
    /// connections the core must refuse, fewer would refuse ones it could serve.
    fn listen<S: Storage>(&mut self, server: &Server<S>, sockets: &mut SocketSet<'_>) {
        let wanted = if server.listener_interest() {
            server.capacity().saturating_sub(server.conn_count())
        } else {
            0
        };
        let mut listening = self.listening();
        for entry in &mut self.pool {
            if listening == wanted {
                break;
            }
            let Some(socket) = tcp_socket(sockets, entry.handle) else {
                continue;
            };
            if listening < wanted && entry.role == Role::Idle {
                // listen() fails on a socket smoltcp has not finished closing: next poll.
                if closed(socket) && socket.listen(self.config.port).is_ok() {
                    // An open connection may be idle for as long as the core allows.
                    socket.set_timeout(None);
                    entry.role = Role::Listening;
                    listening += 1;
                }
            } else if listening > wanted
                && entry.role == Role::Listening
                && socket.state() == State::Listen
            {
                // Only idle listeners: a handshake under way becomes a refused connection.
                socket.abort();
                entry.role = Role::Idle;
                listening -= 1;
            }
        }
    }
}

/// The core refused a call on a connection: it is closing, or the id is stale. Either way
/// its actions say the rest, so the driver moves on to the next connection.
struct Refused;

/// `From` each core error a connection's service can meet, for `?`.
macro_rules! refused_from {
    ($($error:ty),*) => {
        $(
            impl From<$error> for Refused {
                fn from(_: $error) -> Self {
                    Refused
                }
            }
        )*
    };
}

refused_from!(
    UnknownConn,
    CoreRecvError,
    SendError,
    EofError,
    ErrorReportError
);

/// Serves one connection: checks the socket is still connected, then sends and receives
/// until nothing moves or the round budget is spent.
fn serve_conn<S: Storage>(
    now: Instant,
    server: &mut Server<S>,
    id: ConnId,
    socket: &mut tcp::Socket<'_>,
    polled: &mut Polled,
) -> Result<(), Refused> {
    match socket.state() {
        // CloseWait: the peer's FIN arrived; its data may still be in the socket. FinWait:
        // the core shut down the write side and drains what the peer still sends.
        State::Established
        | State::CloseWait
        | State::FinWait1
        | State::FinWait2
        | State::Closing
        | State::TimeWait => {}
        // smoltcp goes to Closed on a RST (and on its own timeouts, which look the same).
        State::Closed => return Ok(server.on_error(id, ErrorKind::Reset)?),
        // We only close a socket after the core's Close, so anything else is a surprise.
        _ => return Ok(server.on_error(id, ErrorKind::HangUp)?),
    }
    for _ in 0..ROUNDS {
        let sent = send(now, server, id, socket)?;
        let received = receive(now, server, id, socket)?;
        polled.sent += sent;
        polled.received += received;
        if sent == 0 && received == 0 {
            break;
        }
    }
    Ok(())
}

/// Sends the core's queued bytes straight from its queue into the socket's send buffer.
fn send<S: Storage>(
    now: Instant,
    server: &mut Server<S>,
    id: ConnId,
    socket: &mut tcp::Socket<'_>,
) -> Result<usize, Refused> {
    if !server.interest(id)?.write || !socket.can_send() {
        return Ok(0);
    }
    match server.send_with(now, id, |queued| match socket.send_slice(queued) {
        Ok(n) => (n, Ok(n)),
        Err(e) => (0, Err(e)),
    })? {
        Ok(n) => Ok(n),
        // can_send() vouched for the state, so the connection is gone.
        Err(_) => Ok(server.on_error(id, ErrorKind::Other).map(|()| 0)?),
    }
}

/// Receives straight into the core's queue (or, for a draining connection, into a buffer
/// the core discards); reports the peer's FIN as EOF once the socket holds no more data.
/// Returns the bytes received.
fn receive<S: Storage>(
    now: Instant,
    server: &mut Server<S>,
    id: ConnId,
    socket: &mut tcp::Socket<'_>,
) -> Result<usize, Refused> {
    if !server.interest(id)?.read {
        return Ok(0);
    }
    match server.recv_with(now, id, |buf| match socket.recv_slice(buf) {
        Ok(n) => (n, Ok(n)),
        Err(e) => (0, Err(e)),
    })? {
        // 0 means "nothing yet" in smoltcp, and a commit of 0 is only that to the core.
        Ok(n) => Ok(n),
        // smoltcp says Finished only once the FIN arrived and every byte was received.
        Err(RecvError::Finished) => Ok(server.on_eof(now, id).map(|()| 0)?),
        Err(RecvError::InvalidState) => Ok(server.on_error(id, ErrorKind::HangUp).map(|()| 0)?),
    }
}

/// Whether a closing socket is done with its peer and may listen again.
fn closed(socket: &tcp::Socket<'_>) -> bool {
    match socket.state() {
        // An aborted socket forgets its peer once its RST is sent; listening before then
        // would reset it and swallow the RST, and the peer would wait forever.
        State::Closed => socket.remote_endpoint().is_none(),
        // TIME-WAIT guards against old segments of this connection being taken for a new
        // one on the same ports; a listening socket gets a new peer port, so it is done.
        State::TimeWait => true,
        _ => false,
    }
}

/// The TCP socket `handle` of the set, to read.
fn find_socket<'s, 'a>(
    sockets: &'s SocketSet<'a>,
    handle: SocketHandle,
) -> Option<&'s tcp::Socket<'a>> {
    sockets
        .iter()
        .find(|(h, _)| *h == handle)
        .and_then(|(_, socket)| tcp::Socket::downcast(socket))
}

/// The TCP socket `handle` of the set, if the set holds one.
fn tcp_socket<'s, 'a>(
    sockets: &'s mut SocketSet<'a>,
    handle: SocketHandle,
) -> Option<&'s mut tcp::Socket<'a>> {
    sockets
        .iter_mut()
        .find(|(h, _)| *h == handle)
        .and_then(|(_, socket)| tcp::Socket::downcast_mut(socket))
}
