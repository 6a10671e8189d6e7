//! The errors the core returns, one type per operation, as smoltcp does: a driver matches
//! only the outcomes its call can have.
//!
//! Each variant is one of two kinds, and its documentation says which:
//! - **expected flow**: the network or the server's own state said no (a full queue, an
//!   empty pool, a peer that already sent EOF). A correct driver meets these and goes on:
//!   wait for the interest the core reports, and call again.
//! - **driver bug**: the driver called with an id it should no longer hold, or reported an
//!   event that cannot have happened. [`is_driver_bug`](RecvError::is_driver_bug) says so,
//!   and a driver should log it loudly (or assert in a debug build), never wait on it.
//!
//! Nothing changed when an error is returned.

use core::fmt;

/// Declares an error enum with its variants' documentation and messages, its `Display`, its
/// [`core::error::Error`] impl, `is_driver_bug`, and `From<UnknownConn>` where it has that
/// variant: one place for each operation's list of outcomes.
macro_rules! op_error {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $message:literal, $bug:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[must_use]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// True when the driver, not the network, is at fault: see the
            /// [module documentation](crate::error).
            pub const fn is_driver_bug(self) -> bool {
                match self {
                    $( $name::$variant => $bug, )*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self {
                    $( $name::$variant => $message, )*
                })
            }
        }

        impl core::error::Error for $name {}
    };
}

/// Implements `From<UnknownConn>` for an error that has an `UnknownConn` variant, so that a
/// lookup's failure converts with `?`.
macro_rules! from_unknown {
    ($($name:ident),*) => {
        $(
            impl From<UnknownConn> for $name {
                fn from(_: UnknownConn) -> Self {
                    $name::UnknownConn
                }
            }
        )*
    };
}

/// The id names no open connection: it was never issued, or its slot was freed when the
/// driver polled its [`Action::Close`](crate::Action::Close) (and may have been reused
/// since, under a newer generation). Always a driver bug: the driver kept an id past the
/// close it was told to carry out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use]
pub struct UnknownConn;

impl fmt::Display for UnknownConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown connection id")
    }
}

impl core::error::Error for UnknownConn {}

op_error! {
    /// Why [`Server::on_accepted`](crate::Server::on_accepted) refused a connection. Both
    /// are expected flow: close the accepted socket (with a reset, so that the peer knows
    /// at once); it was counted in [`Stats::refused`](crate::Stats::refused).
    AcceptError {
        /// Every slot is taken. Expected flow: it happens when the driver accepts while
        /// [`listener_interest`](crate::Server::listener_interest) is false.
        Full => "connection table is full", false;
        /// The server is shutting down and accepts no connection. Expected flow.
        ShuttingDown => "server is shutting down", false;
    }
}

op_error! {
    /// Why [`Server::recv_with`](crate::Server::recv_with) lent nothing.
    RecvError {
        /// The connection takes no more bytes: the peer sent EOF, or the server is shutting
        /// down. Expected flow: stop reading it ([`Interest::read`](crate::Interest) is
        /// false).
        ReadClosed => "connection is closed for reading", false;
        /// The queue is full. Expected flow (backpressure): wait until the socket is
        /// writable and [`send_with`](crate::Server::send_with) has drained some of it.
        QueueFull => "connection queue is full", false;
        /// The connection holds no buffer and the pool has none free. Expected flow: read
        /// interest comes back when a buffer is freed.
        NoBuffer => "no free buffer in the pool", false;
        /// The connection is closing: only its pending action concerns it now. Expected
        /// flow between a close being decided and the driver polling it.
        Closing => "connection is closing", false;
        /// See [`UnknownConn`]. Driver bug.
        UnknownConn => "unknown connection id", true;
    }
}

op_error! {
    /// Why [`Server::relay_with`](crate::Server::relay_with) lent nothing.
    RelayError {
        /// Bytes are queued: relaying now would send new bytes ahead of them. Expected
        /// flow: send the queue first, or receive into it with
        /// [`recv_with`](crate::Server::recv_with).
        Queued => "bytes are queued ahead of a relay", false;
        /// The connection takes no more bytes (EOF, shutdown) or is draining. Expected
        /// flow: a draining connection reads with `recv_with`.
        ReadClosed => "connection is closed for reading", false;
        /// The connection holds no buffer and the pool has none free. Expected flow.
        NoBuffer => "no free buffer in the pool", false;
        /// The connection is closing. Expected flow, as for [`RecvError::Closing`].
        Closing => "connection is closing", false;
        /// See [`UnknownConn`]. Driver bug.
        UnknownConn => "unknown connection id", true;
    }
}

op_error! {
    /// Why [`Server::send_with`](crate::Server::send_with) lent nothing.
    SendError {
        /// The connection is closing. Expected flow, as for [`RecvError::Closing`].
        Closing => "connection is closing", false;
        /// See [`UnknownConn`]. Driver bug.
        UnknownConn => "unknown connection id", true;
    }
}

op_error! {
    /// Why [`Server::on_eof`](crate::Server::on_eof) was refused.
    EofError {
        /// The peer's EOF was reported already. Driver bug: after EOF the core asks for no
        /// read interest, so a second one was read where none was asked for.
        ReadClosed => "EOF was already reported", true;
        /// The connection is closing. Expected flow, as for [`RecvError::Closing`].
        Closing => "connection is closing", false;
        /// See [`UnknownConn`]. Driver bug.
        UnknownConn => "unknown connection id", true;
    }
}

op_error! {
    /// Why [`Server::on_error`](crate::Server::on_error) was refused.
    ErrorReportError {
        /// The connection is closing already; the error changes nothing. Expected flow.
        Closing => "connection is closing", false;
        /// See [`UnknownConn`]. Driver bug.
        UnknownConn => "unknown connection id", true;
    }
}

from_unknown!(RecvError, RelayError, SendError, EofError, ErrorReportError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_conn_is_the_only_bug_in_the_flow_of_data() {
        assert!(RecvError::from(UnknownConn).is_driver_bug());
        assert!(SendError::from(UnknownConn).is_driver_bug());
        assert!(RelayError::from(UnknownConn).is_driver_bug());
        assert!(!RecvError::QueueFull.is_driver_bug());
        assert!(!RecvError::NoBuffer.is_driver_bug());
        assert!(!RelayError::Queued.is_driver_bug());
        assert!(!AcceptError::Full.is_driver_bug());
        assert!(EofError::ReadClosed.is_driver_bug());
    }
}
