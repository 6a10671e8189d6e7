//! The vocabulary a driver and the core share about one connection: its id, what to wait
//! for, why it failed or closed, and what the driver must do next.

use core::fmt;

/// A connection's handle: a slot index plus the slot's generation.
///
/// When a connection closes its slot is reused, with the next generation. An id kept past
/// its connection's [`Action::Close`] is therefore rejected with
/// [`UnknownConn`](crate::UnknownConn), never applied to the new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnId {
    pub(crate) index: u16,
    pub(crate) generation: u32,
}

impl ConnId {
    /// The slot index, below [`Server::capacity`](crate::Server::capacity): dense, so a driver can keep its own per-connection
    /// table (file descriptor, socket handle) in an array indexed by it.
    pub const fn index(self) -> usize {
        self.index as usize
    }

    /// How many connections used this slot before this one.
    pub const fn generation(self) -> u32 {
        self.generation
    }

    /// The id of these parts, as [`index`](Self::index) and
    /// [`generation`](Self::generation) gave them: for a driver that keeps ids outside
    /// Rust (a C driver, through `ports/ffi`). The server checks it like any id, so a
    /// made-up one is rejected as unknown, never applied to another connection.
    pub const fn from_parts(index: u16, generation: u32) -> Self {
        ConnId { index, generation }
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

/// What the driver should wait for on a connection: the seed's `inputs` and `outputs` lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Interest {
    /// Wait for readability: the queue has room (a buffer held with room, or a free one in
    /// the pool) and the peer has not sent EOF; or the connection is draining.
    pub read: bool,
    /// Wait for writability: bytes are queued.
    pub write: bool,
}

impl Interest {
    /// Interested in nothing (a closing connection).
    pub const NONE: Interest = Interest {
        read: false,
        write: false,
    };
}

/// What a relay moved: see [`Server::relay_with`](crate::Server::relay_with).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Relayed {
    /// Bytes received and sent straight back, never in the queue.
    pub through: usize,
    /// Bytes received into the lent slice (its first `kept`) because the socket would not
    /// take them back yet: they are queued.
    pub kept: usize,
}

/// A socket failure the driver reports with [`Server::on_error`](crate::Server::on_error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ErrorKind {
    /// The peer reset the connection (`ECONNRESET`, `EPIPE`, a TCP RST).
    Reset,
    /// The connection is gone without a reset (`POLLHUP`, a socket found closed).
    HangUp,
    /// The connection timed out in the stack (`ETIMEDOUT`, keep-alive failure).
    TimedOut,
    /// Any other failure of the socket.
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Reset => "reset by peer",
            ErrorKind::HangUp => "hung up",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::Other => "socket error",
        })
    }
}

/// Why a connection closed, and how the driver closes its socket:
///
/// | reason | close | why |
/// |---|---|---|
/// | [`PeerClosed`](Self::PeerClosed) | graceful (FIN) | every byte the peer sent was echoed |
/// | [`Shutdown`](Self::Shutdown) | graceful (FIN) | the queue was delivered before the deadline |
/// | [`Error`](Self::Error) | reset (RST) | the socket failed; queued bytes are lost |
/// | [`IdleTimeout`](Self::IdleTimeout) | reset (RST) | the peer stalled; what it did not read is lost |
/// | [`ShutdownTimeout`](Self::ShutdownTimeout) | reset (RST) | the grace period ended with bytes queued |
/// | [`Aborted`](Self::Aborted) | reset (RST) | [`Server::abort`](crate::Server::abort) |
///
/// [`is_graceful`](Self::is_graceful) is that table's middle column. On BSD sockets a reset
/// is `SO_LINGER` with a zero timeout, then `close(2)`: the peer learns at once that bytes
/// were lost, instead of taking a FIN for a complete echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CloseReason {
    /// The peer sent EOF and every byte it sent was echoed back.
    PeerClosed,
    /// The socket failed; queued bytes could not be delivered.
    Error(ErrorKind),
    /// No byte moved either way for [`Config::idle_timeout`](crate::Config).
    IdleTimeout,
    /// The server shut down and this connection's queue was fully delivered.
    Shutdown,
    /// The server shut down and the grace period ran out before the queue drained.
    ShutdownTimeout,
    /// [`Server::abort`](crate::Server::abort): every connection closed at once.
    Aborted,
}

impl CloseReason {
    /// True when every received byte was delivered: close with a FIN (`close(2)`, smoltcp's
    /// `close()`); otherwise abort (a RST).
    pub const fn is_graceful(self) -> bool {
        matches!(self, CloseReason::PeerClosed | CloseReason::Shutdown)
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed"),
            CloseReason::Error(kind) => kind.fmt(f),
            CloseReason::IdleTimeout => f.write_str("idle timeout"),
            CloseReason::Shutdown => f.write_str("server shutdown"),
            CloseReason::ShutdownTimeout => f.write_str("server shutdown, grace period over"),
            CloseReason::Aborted => f.write_str("server aborted"),
        }
    }
}

/// What the core asks the driver to do, besides reading and writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Action {
    /// The server is shutting down and every queued byte was delivered: shut down the write
    /// side (`shutdown(SHUT_WR)`, a FIN) and keep reading. The connection drains: what
    /// arrives is received and discarded, and its [`Action::Close`] comes on the peer's EOF
    /// or at the shutdown deadline, so closing never resets a peer still sending.
    ShutdownWrite(ConnId),
    /// Close the socket and forget the id. The slot was freed when this action was polled,
    /// not when the close was decided: until then the id still names the connection (its
    /// calls answer `Closing`), and from then on it is stale ([`UnknownConn`]) and the slot
    /// may be reused by the next accept. A graceful reason ([`CloseReason::is_graceful`])
    /// is a close that sends a FIN; any other, an abort.
    ///
    /// [`UnknownConn`]: crate::UnknownConn
    Close(ConnId, CloseReason),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graceful_reasons_are_the_drained_ones() {
        assert!(CloseReason::PeerClosed.is_graceful());
        assert!(CloseReason::Shutdown.is_graceful());
        assert!(!CloseReason::IdleTimeout.is_graceful());
        assert!(!CloseReason::ShutdownTimeout.is_graceful());
        assert!(!CloseReason::Error(ErrorKind::Reset).is_graceful());
        assert!(!CloseReason::Aborted.is_graceful());
    }

    #[test]
    fn ids_display_index_and_generation() {
        let id = ConnId {
            index: 3,
            generation: 7,
        };
        assert_eq!(format!("{id}"), "#3.7");
        assert_eq!((id.index(), id.generation()), (3, 7));
        assert_eq!(ConnId::from_parts(3, 7), id);
        assert_eq!(
            format!("{}", CloseReason::Error(ErrorKind::Reset)),
            "reset by peer"
        );
    }
}
