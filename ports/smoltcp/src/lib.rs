//! Runs the [`echoloop_core`] echo server on [smoltcp](https://docs.rs/smoltcp) TCP sockets.
//!
//! `no_std`, no allocation, no `unsafe`, and no panicking call of its own: a worked example
//! of a driver for the sans-IO core, small enough to read in one sitting.
//!
//! smoltcp has no accept queue: a TCP socket listens, and the connection it accepts lives
//! in that same socket. So the [`Driver`] owns a pool of sockets (their handles; the
//! sockets and their buffers stay in the application's [`SocketSet`]) and keeps one of
//! them listening for each slot the core has free. It maps each socket to the core's
//! [`ConnId`] and back, feeds readiness, peer FIN, resets and time into the core, moves
//! bytes straight between the socket buffers and the core's queues, and carries out the
//! core's actions.
//!
//! # A round
//! ```text
//! loop {
//!     iface.poll(now, &mut device, &mut sockets);        // smoltcp moves packets
//!     driver.poll(now, &mut server, &mut sockets);       // the core moves bytes
//!     sleep until min(iface.poll_at(..), driver.poll_at(&server));
//! }
//! ```
//!
//! smoltcp has no listen backlog either: a SYN no listening socket takes is answered
//! with a RST. [`SynBacklog`] wraps the network device and holds such SYNs until the
//! driver has a socket listening again, so a burst of clients waits instead.
//!
//! [`UdpDriver`] serves UDP echo (RFC 862's datagram half) on one smoltcp UDP socket
//! through the core's [`UdpEcho`](echoloop_core::udp::UdpEcho), guards included.
//!
//! [`StaticLoopback`] is a heap-free loopback device, for tests and for firmware that
//! talks to itself (smoltcp's own `Loopback` needs `alloc`).
//!
//! # Features
//! - `defmt`: `defmt::Format` for the driver's types, and the core logs with defmt.
//!
//! [`SocketSet`]: smoltcp::iface::SocketSet
//! [`ConnId`]: echoloop_core::ConnId
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// No panicking call on any path the network can reach.
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

mod backlog;
mod driver;
mod loopback;
pub mod time;
mod udp;

pub use backlog::{BacklogStats, Gate, GateRx, Held, SynBacklog};
pub use driver::{Config, Driver, Polled};
pub use loopback::StaticLoopback;
pub use udp::{UdpDriver, UdpPolled};
