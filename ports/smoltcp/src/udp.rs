//! UDP echo on one smoltcp UDP socket, through the core's [`UdpEcho`]: the core keeps the
//! queue of datagrams and the guards, this moves datagrams between it and the socket.

use core::net::{Ipv4Addr, SocketAddr};

use echoloop_core::udp::{Address, Endpoint, RecvResult, SendResult, UdpEcho, UdpStorage};
use echoloop_core::Instant;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{udp, AnySocket};
use smoltcp::wire::{IpAddress, IpEndpoint};

/// Datagrams moved per [`UdpDriver::poll`] each way, so one flood cannot hold the loop.
const BATCH: usize = 16;

/// What one [`UdpDriver::poll`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UdpPolled {
    /// Datagrams taken from the socket (queued or dropped by the core).
    pub received: usize,
    /// Echoes handed to the socket.
    pub sent: usize,
}

impl UdpPolled {
    /// True when nothing moved.
    pub const fn is_empty(&self) -> bool {
        self.received == 0 && self.sent == 0
    }
}

/// Serves a [`UdpEcho`] on one smoltcp UDP socket of the application's [`SocketSet`],
/// bound to `port` on the first poll. IPv4 only, as this crate's smoltcp features are: an
/// echo for an IPv6 source is dropped as a failed send.
#[derive(Debug)]
pub struct UdpDriver {
    handle: SocketHandle,
    port: u16,
}

impl UdpDriver {
    /// A driver for the UDP socket `handle`, to serve on `port` (not 0).
    pub const fn new(port: u16, handle: SocketHandle) -> Self {
        UdpDriver { handle, port }
    }

    /// Sends what waits, then receives what came, through `echo`. A socket missing from
    /// the set does nothing.
    pub fn poll<S: UdpStorage>(
        &mut self,
        now: Instant,
        echo: &mut UdpEcho<S>,
        sockets: &mut SocketSet<'_>,
    ) -> UdpPolled {
        let mut polled = UdpPolled::default();
        let Some(socket) = sockets
            .iter_mut()
            .find(|(h, _)| *h == self.handle)
            .and_then(|(_, s)| udp::Socket::downcast_mut(s))
        else {
            return polled;
        };
        if !socket.is_open() && socket.bind(self.port).is_err() {
            return polled;
        }
        for _ in 0..BATCH {
            if send_one(socket, echo) != Some(SendResult::Sent) {
                break;
            }
            polled.sent += 1;
        }
        while polled.received < BATCH && socket.can_recv() {
            echo.recv_with(now, |buf| recv_one(socket, buf));
            polled.received += 1;
            // An echo may go out at once, leaving room in the core's queue.
            while send_one(socket, echo) == Some(SendResult::Sent) {
                polled.sent += 1;
            }
        }
        polled
    }
}

fn send_one<S: UdpStorage>(
    socket: &mut udp::Socket<'_>,
    echo: &mut UdpEcho<S>,
) -> Option<SendResult> {
    echo.send_with(|bytes, to| {
        let Some(to) = to_smoltcp(to) else {
            return SendResult::Failed;
        };
        // A datagram larger than the whole buffer would wait for ever.
        if bytes.len() > socket.payload_send_capacity() {
            return SendResult::Failed;
        }
        match socket.send_slice(bytes, to) {
            Ok(()) => SendResult::Sent,
            Err(udp::SendError::BufferFull) => SendResult::WouldBlock,
            Err(udp::SendError::Unaddressable) => SendResult::Failed,
        }
    })
}

/// Copies the next datagram into `buf` (or finds it too long) and dequeues it.
fn recv_one(socket: &mut udp::Socket<'_>, buf: &mut [u8]) -> RecvResult {
    let result = match socket.peek() {
        Err(_) => return RecvResult::Nothing,
        Ok((data, meta)) => {
            let from = Endpoint::from(SocketAddr::from(meta.endpoint));
            match buf.get_mut(..data.len()) {
                Some(dst) => {
                    dst.copy_from_slice(data);
                    RecvResult::Datagram {
                        from,
                        len: data.len(),
                    }
                }
                None => RecvResult::Truncated { from },
            }
        }
    };
    let _ = socket.recv();
    result
}

fn to_smoltcp(ep: Endpoint) -> Option<IpEndpoint> {
    match ep.addr {
        Address::V4(o) => Some(IpEndpoint::new(IpAddress::Ipv4(Ipv4Addr::from(o)), ep.port)),
        Address::V6(_) => None,
    }
}
