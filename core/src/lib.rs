//! The echoloop core: a `no_std`, allocation-free, panic-free state machine for a
//! readiness-driven TCP echo server.
//!
//! It is the heart of the select model of the seed tutorial (`inputs`, `outputs`, one
//! message queue per client) without the sockets: a driver, be it POSIX `select(2)` on a
//! host or smoltcp on a microcontroller, reports readiness and results, and the core keeps
//! the connection table, the queues and the rules (backpressure, half-close, idle
//! timeouts, graceful shutdown with draining, abort, stale-id rejection), and says what to
//! do.
//!
//! # Memory
//! The caller lends it (see [`Storage`]): a table of [`ConnSlot`]s, one per connection,
//! and a pool of buffers the connections share, each holding one only while bytes wait in
//! its queue. [`StaticStorage`] puts it all in one `static` on a microcontroller;
//! [`SliceStorage`], or a type of the caller's, takes sizes known at run time only.
//! [`footprint`] is the formula.
//!
//! # A driver's round
//! Drain [`Server::poll_action`]; wait as [`Server::listener_interest`] and each
//! connection's [`Interest`] (from [`Server::conns`]) say, until [`Server::poll_timeout`];
//! feed what happened through the `on_*` calls and the lending calls
//! ([`Server::recv_with`], [`Server::send_with`]). The repository's
//! `docs/architecture.md` is the one statement of that contract, with the rules a BSD
//! sockets driver must keep in `docs/porting.md`; each call's rustdoc gives its errors,
//! every variant marked expected flow or driver bug ([`error`]).
//!
//! A heap-backed server on a host, with sizes known at run time:
//!
//! ```
//! use echoloop_core::{Config, ConnSlot, Instant, Server, SliceStorage};
//!
//! let (conns, buffers, queue_size) = (1000, 1000, 16 * 1024);
//! let mut slots = vec![ConnSlot::EMPTY; conns];
//! let mut free = vec![0u16; buffers];
//! // A large zeroed Vec comes from calloc: its pages are not resident until touched.
//! let mut bytes = vec![0u8; buffers * queue_size];
//! let storage = SliceStorage::new(&mut slots, &mut free, &mut bytes, queue_size)?;
//! let mut server = Server::new(Config::new(), storage)?;
//! let id = server.on_accepted(Instant::ZERO)?;
//! let n = server.recv_with(Instant::ZERO, id, |buf| {
//!     buf[..4].copy_from_slice(b"ping");
//!     (4, 4)
//! })?;
//! assert_eq!(server.queued(id)?, n);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A microcontroller's: 8 connections sharing 4 buffers of 256 bytes, in one `static`
//! (here a local; a firmware puts it in a `static_cell::ConstStaticCell`):
//!
//! ```
//! use echoloop_core::{Config, Server, StaticStorage};
//!
//! type Echo = Server<StaticStorage<8, 4, 256>>;
//! let server: Echo = Server::new_static(Config::new());
//! // Its whole RAM, at compile time.
//! assert!(core::mem::size_of::<Echo>() <= echoloop_core::footprint(8, 4, 256));
//! assert_eq!(server.free_buffers(), 4);
//! ```
//!
//! # UDP
//! [`udp::UdpEcho`] is the Echo Protocol's datagram half, with the same lent memory and no
//! I/O of its own: a queue of datagrams, a loop guard and a per-source flood guard.
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
pub mod error;
pub mod io;
mod list;
mod macros;
mod pool;
mod queue;
mod server;
mod slot;
mod stats;
mod storage;
mod time;
pub mod udp;

pub use conn::{Action, CloseReason, ConnId, ErrorKind, Interest, Relayed};
pub use error::{
    AcceptError, EofError, ErrorReportError, RecvError, RelayError, SendError, UnknownConn,
};
pub use server::{Config, Conns, Recent, Reclaimable, Server};
pub use slot::ConnSlot;
pub use stats::{Closed, Stats};
pub use storage::{
    footprint, Parts, PartsRef, SliceStorage, StaticStorage, Storage, StorageError, MAX_CONNS,
};
pub use time::{Duration, Instant};

/// The Rust snippets of `docs/architecture.md` and `docs/porting.md`, compiled and run as
/// doctests so that a porter's first copy works.
#[cfg(doctest)]
#[doc = include_str!("../../docs/architecture.md")]
#[doc = include_str!("../../docs/porting.md")]
pub struct DriverDocs;
