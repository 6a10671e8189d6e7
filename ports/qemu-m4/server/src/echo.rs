//! The echo service: the echoloop core and its smoltcp driver. The firmware's only
//! contact with `echoloop-core` and `echoloop-smoltcp` is here, so that a change of
//! their API is a change of this module.

use core::mem::size_of;

use echoloop_core::{Config as CoreConfig, Duration, Server, StaticStorage};
use echoloop_smoltcp::{Config, Driver};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::time::Instant;
use static_cell::ConstStaticCell;

use crate::sizes::{BUFFERS, CONNS, QUEUE, SOCKETS};

/// The echo port (RFC 862).
pub const PORT: u16 = 7;
/// A connection with nothing to read nor to write for this long is closed.
pub const IDLE_TIMEOUT_SECS: u64 = 30;

type EchoServer = Server<StaticStorage<CONNS, BUFFERS, QUEUE>>;

/// The core, in `.bss` where `size` counts it, taken once at start.
static SERVER: ConstStaticCell<EchoServer> = ConstStaticCell::new(Server::new_static(
    CoreConfig::new().with_idle_timeout(Some(Duration::from_secs(IDLE_TIMEOUT_SECS))),
));

/// The echo server on the application's sockets.
pub struct Echo {
    server: &'static mut EchoServer,
    driver: Driver<SOCKETS>,
}

impl Echo {
    /// The server on the TCP sockets `handles` (closed; the first poll makes them listen).
    /// Call once: the core's memory is a static.
    pub fn new(handles: [SocketHandle; SOCKETS]) -> Self {
        defmt::info!(
            "echo: {} connections x {} B queue ({} buffers) on port {}, idle timeout {} s; core {} B, driver {} B",
            CONNS,
            QUEUE,
            BUFFERS,
            PORT,
            IDLE_TIMEOUT_SECS,
            size_of::<EchoServer>(),
            size_of::<Driver<SOCKETS>>()
        );
        Echo {
            server: SERVER.take(),
            driver: Driver::new(Config::new(PORT), handles),
        }
    }

    /// One round after smoltcp's: accept, move bytes, close. True when anything moved, so
    /// smoltcp has packets to send at once.
    pub fn poll(&mut self, now: Instant, sockets: &mut SocketSet<'_>) -> bool {
        let polled = self.driver.poll(now, self.server, sockets);
        if polled.refused > 0 {
            defmt::info!(
                "echo: refused {} connection(s): all slots busy",
                polled.refused
            );
        }
        !polled.is_empty()
    }

    /// The latest time the next [`poll`](Self::poll) must run, smoltcp aside.
    pub fn poll_at(&self) -> Option<Instant> {
        self.driver.poll_at(self.server)
    }

    /// Sockets listening for the next connection.
    pub fn listening(&self) -> usize {
        self.driver.listening()
    }
}
