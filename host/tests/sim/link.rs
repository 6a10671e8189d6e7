//! One simulated TCP connection: two bounded byte pipes and the flags TCP keeps for them.

use std::collections::VecDeque;
use std::time::Duration;

/// How the server's side of a connection ended, recorded when it called `close`.
#[derive(Clone, Copy, Debug)]
pub struct ServerClose {
    /// The server had shut down its write side first (a FIN after the echo).
    pub graceful: bool,
    /// Virtual time of the close.
    pub at: Duration,
    /// A shutdown signal had been delivered before the close.
    pub after_signal: bool,
}

/// Both directions of one connection, as the two kernels would hold them.
pub struct Link {
    /// Peer → server bytes not yet received by the server.
    pub to_server: VecDeque<u8>,
    /// The peer's send buffer plus the server's receive buffer.
    pub in_cap: usize,
    /// Server → peer bytes not yet read by the peer.
    pub to_peer: VecDeque<u8>,
    /// The server's send buffer plus the peer's receive buffer.
    pub out_cap: usize,
    /// The peer sent FIN.
    pub peer_fin: bool,
    /// The peer closed its socket.
    pub peer_closed: bool,
    /// The server sent FIN (`shutdown(SHUT_WR)`).
    pub server_fin: bool,
    /// The server has accepted it (it got a descriptor).
    pub accepted: bool,
    /// Set once the server closed its descriptor.
    pub server_close: Option<ServerClose>,
    /// A RST went either way: both ends see errors, queued bytes are gone.
    pub reset: bool,
    /// The server's `recv` has already reported `ECONNRESET` once.
    pub reset_reported: bool,
    /// Bytes the server received before shutting down its write side: those must come back.
    pub taken: u64,
    /// Bytes the server's `send` took.
    pub echoed: u64,
    /// Virtual time a byte (or EOF) last moved through the server's socket calls.
    pub last_io: Duration,
}

impl Link {
    /// A fresh connection with the given buffer sizes.
    pub fn new(in_cap: usize, out_cap: usize) -> Self {
        Link {
            to_server: VecDeque::new(),
            in_cap,
            to_peer: VecDeque::new(),
            out_cap,
            peer_fin: false,
            peer_closed: false,
            server_fin: false,
            accepted: false,
            server_close: None,
            reset: false,
            reset_reported: false,
            taken: 0,
            echoed: 0,
            last_io: Duration::ZERO,
        }
    }

    /// A RST: both queues are dropped, every later call fails.
    pub fn reset(&mut self) {
        self.reset = true;
        self.to_server.clear();
        self.to_peer.clear();
    }

    /// Whether the server's `recv` would not block.
    pub fn readable(&self) -> bool {
        !self.to_server.is_empty() || self.peer_fin || self.reset
    }

    /// Whether the server's `send` would not block.
    pub fn writable(&self) -> bool {
        self.reset || self.server_fin || self.to_peer.len() < self.out_cap
    }
}
