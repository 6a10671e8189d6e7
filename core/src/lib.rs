//! The echoloop core: a `no_std`, allocation-free, panic-free state machine for a
//! readiness-driven TCP echo server.
//!
//! It is the heart of the select model of the seed tutorial (`inputs`, `outputs`, one
//! message queue per client) without the sockets: a driver, be it POSIX `select(2)` on a
//! host or smoltcp on a microcontroller, reports readiness and results, and the core keeps
//! the connection table, the per-connection queues and the rules (backpressure, half-close,
//! idle timeouts, graceful shutdown, stale-id rejection), and says what to do.
//!
//! # A driver's round
//! 1. Drain [`Server::poll_action`]: shut down write sides, close sockets.
//! 2. Wait for the listener if [`Server::listener_interest`], for each connection of
//!    [`Server::conns`] as its [`Interest`] says, until [`Server::poll_timeout`].
//! 3. Feed what happened: [`Server::on_accepted`]; receive into [`Server::read_buf`] then
//!    [`Server::on_read`] (0 is EOF); send from [`Server::write_buf`] then
//!    [`Server::on_written`]; [`Server::on_error`]; [`Server::handle_timeout`].
//!
//! # Features
//! - `defmt`: every public type implements `defmt::Format`; lifecycle events are logged
//!   with defmt.
//! - `log`: lifecycle events are logged through the `log` facade. Not with `defmt`.
// Tests link std for their harness and collections; the library itself never does.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![deny(missing_docs)]
// No panicking call on any path the network can reach; tests may.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod conn;
mod error;
pub mod io;
mod list;
mod macros;
mod queue;
mod server;
mod stats;
mod time;

pub use conn::{Action, CloseReason, ConnId, ErrorKind, Interest};
pub use error::Error;
pub use queue::{Queue, TooLong};
pub use server::{Config, Conns, Server};
pub use stats::{Closed, Stats};
pub use time::{Duration, Instant};
