//! The errors the core returns to a driver that called it wrongly or too late.

use core::fmt;

/// A call the core refused. Nothing changed when one is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// The id names no open connection: never issued, or its slot was closed (and perhaps
    /// reused since).
    UnknownConn,
    /// The connection is closing; only [`Server::poll_action`](crate::Server::poll_action)
    /// concerns it now.
    Closing,
    /// Every slot is taken: close the accepted socket.
    Full,
    /// The server is shutting down and accepts no connection: close the accepted socket.
    ShuttingDown,
    /// The connection takes no more bytes: the peer sent EOF, or the server is shutting down.
    ReadClosed,
    /// The connection's queue is full: wait until it is written.
    QueueFull,
    /// The connection holds no buffer and the pool has none free: wait for read interest,
    /// which comes back when a buffer is freed.
    NoBuffer,
    /// Bytes are queued for the connection: relaying now would send new bytes ahead of
    /// them. Send the queue first, or receive into it.
    Queued,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::UnknownConn => "unknown connection id",
            Error::Closing => "connection is closing",
            Error::Full => "connection table is full",
            Error::ShuttingDown => "server is shutting down",
            Error::ReadClosed => "connection is closed for reading",
            Error::QueueFull => "connection queue is full",
            Error::NoBuffer => "no free buffer in the pool",
            Error::Queued => "bytes are queued ahead of a relay",
        })
    }
}

impl core::error::Error for Error {}
