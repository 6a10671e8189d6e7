//! The UDP client: datagrams of a few sizes to the UDP echo, every echo checked byte for
//! byte, and one datagram from a guarded source port that must get no reply.

use smoltcp::socket::udp;
use smoltcp::wire::IpEndpoint;

use crate::sizes::MAX_DATAGRAM;

/// The sizes sent, one datagram each, waiting for each echo before the next: the empty
/// datagram, a few between, and the largest one loopback packet carries.
pub const SIZES: [usize; 5] = [0, 1, 64, 300, MAX_DATAGRAM];
/// The client's own (ephemeral) port.
pub const PORT: u16 = 50_000;
/// The port of the socket whose datagram must get no reply: chargen, the classic partner
/// of an echo storm, one of the core's `GUARDED_PORTS`.
pub const GUARDED_PORT: u16 = 19;
/// What the guarded socket sends.
pub const GUARDED: &[u8] = b"from chargen: must not be echoed";

/// Byte `i` of the datagram of `len` bytes: differs by size, so an echo of the wrong
/// datagram cannot pass.
fn byte(len: usize, i: usize) -> u8 {
    (i.wrapping_mul(131) ^ len ^ 0x5a) as u8
}

/// How the UDP client failed.
#[derive(Clone, Copy, defmt::Format)]
pub enum UdpFailure {
    /// An echo's byte differs from the byte sent.
    Mismatch {
        /// The datagram's size.
        len: usize,
        /// The offset in it.
        offset: usize,
        /// What came back.
        got: u8,
        /// What was sent.
        expected: u8,
    },
    /// An echo of another length than the datagram in flight.
    Length {
        /// Sent.
        sent: usize,
        /// Came back.
        got: usize,
    },
    /// A datagram from somewhere else than the echo's endpoint.
    Stranger,
    /// The guarded source port got a reply.
    GuardedAnswered,
    /// A socket refused to send or bind.
    Socket,
}

/// The client, working through [`SIZES`].
pub struct UdpClient {
    server: IpEndpoint,
    /// The index in [`SIZES`] of the datagram in flight or next to send.
    next: usize,
    in_flight: bool,
    guarded_sent: bool,
}

impl UdpClient {
    /// A client of the echo at `server`.
    pub const fn new(server: IpEndpoint) -> Self {
        UdpClient {
            server,
            next: 0,
            in_flight: false,
            guarded_sent: false,
        }
    }

    /// Binds the client's sockets.
    pub fn bind(
        socket: &mut udp::Socket<'_>,
        guarded: &mut udp::Socket<'_>,
    ) -> Result<(), UdpFailure> {
        socket.bind(PORT).map_err(|_| UdpFailure::Socket)?;
        guarded.bind(GUARDED_PORT).map_err(|_| UdpFailure::Socket)
    }

    /// True once every size came back.
    pub fn is_done(&self) -> bool {
        self.next == SIZES.len()
    }

    /// Datagrams echoed so far, and their bytes.
    pub fn echoed(&self) -> (usize, usize) {
        let done = SIZES.get(..self.next).unwrap_or(&SIZES);
        (done.len(), done.iter().sum())
    }

    /// Checks what came, sends what is next. The guarded socket's datagram goes out
    /// right after the first echo, so that the server has taken it (loopback keeps order)
    /// long before the last echo ends the run.
    pub fn step(
        &mut self,
        socket: &mut udp::Socket<'_>,
        guarded: &mut udp::Socket<'_>,
    ) -> Result<(), UdpFailure> {
        if guarded.can_recv() {
            return Err(UdpFailure::GuardedAnswered);
        }
        if self.in_flight {
            let Ok((data, meta)) = socket.recv() else {
                return Ok(());
            };
            if meta.endpoint != self.server {
                return Err(UdpFailure::Stranger);
            }
            let len = SIZES.get(self.next).copied().unwrap_or(0);
            check(len, data)?;
            defmt::info!("udp client: {} byte datagram echoed", len);
            self.in_flight = false;
            self.next += 1;
            if !self.guarded_sent {
                guarded
                    .send_slice(GUARDED, self.server)
                    .map_err(|_| UdpFailure::Socket)?;
                self.guarded_sent = true;
            }
        }
        let Some(&len) = SIZES.get(self.next) else {
            return Ok(());
        };
        if socket.can_send() {
            let buf = socket
                .send(len, self.server)
                .map_err(|_| UdpFailure::Socket)?;
            for (i, b) in buf.iter_mut().enumerate() {
                *b = byte(len, i);
            }
            self.in_flight = true;
        }
        Ok(())
    }
}

/// The echo `got` of the datagram of `len` bytes, byte for byte.
fn check(len: usize, got: &[u8]) -> Result<(), UdpFailure> {
    if got.len() != len {
        return Err(UdpFailure::Length {
            sent: len,
            got: got.len(),
        });
    }
    for (offset, &got) in got.iter().enumerate() {
        let expected = byte(len, offset);
        if got != expected {
            return Err(UdpFailure::Mismatch {
                len,
                offset,
                got,
                expected,
            });
        }
    }
    Ok(())
}
