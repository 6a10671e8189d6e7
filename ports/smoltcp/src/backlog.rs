//! A listen backlog for smoltcp, which has none.
//!
//! smoltcp answers a SYN that no socket in LISTEN takes with a RST, so a burst of
//! connections larger than the listening sockets is refused in part (smoltcp issues 852
//! and 943). [`SynBacklog`] sits between the interface and the network device: a SYN for
//! the served port that arrives while no socket listens is not shown to smoltcp but held,
//! and handed over, oldest first, as soon as [`Driver`](crate::Driver) has a socket
//! listening again. The client sees a slow handshake, never a reset; if the backlog is
//! full, the SYN is dropped silently, and the client's retransmission tries again.
//!
//! Holding rather than only dropping matters: clients retransmit an unanswered SYN after
//! 1, 3, 7, 15... seconds, all at about the same moment after a burst, so a server that
//! merely drops what it cannot take serves a few clients per retransmission round and
//! the rest run out of retries.
//!
//! Only IPv4 SYNs are held; anything else passes through untouched. A SYN from a peer a
//! socket already serves (a retransmission crossing its SYN-ACK) passes too, so that its
//! socket answers it rather than a second listener.

use smoltcp::iface::SocketSet;
use smoltcp::phy::{self, Device, DeviceCapabilities};
use smoltcp::socket::tcp::{self, State};
use smoltcp::socket::AnySocket;
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

/// TCP header flags the backlog looks at.
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// What the backlog did since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BacklogStats {
    /// SYNs held because no socket was listening.
    pub held: u64,
    /// Held SYNs handed to a listening socket.
    pub released: u64,
    /// SYNs dropped because the backlog was full (or the frame too long to keep): their
    /// clients retransmit.
    pub dropped: u64,
}

/// A held SYN frame.
#[derive(Clone, Copy, Debug)]
pub struct Held<const FRAME: usize> {
    frame: [u8; FRAME],
    len: usize,
    source: IpEndpoint,
    /// Arrival number: the smallest is handed over first.
    order: u32,
}

/// Holds up to `HELD` SYN frames of up to `FRAME` bytes for port `port` while no socket
/// listens; remembers the peers of up to `PEERS` sockets serving that port. Memory:
/// `HELD * (FRAME + 28)` bytes and a little more; `const`-constructible for a `static`.
///
/// Each round: [`update`](Self::update) from the socket set, then poll the interface
/// with [`gate`](Self::gate) wrapping the device:
///
/// ```text
/// backlog.update(&sockets);
/// iface.poll(now, &mut backlog.gate(&mut device), &mut sockets);
/// driver.poll(now, &mut server, &mut sockets);
/// backlog.update(&sockets);
/// if backlog.can_release() { /* poll again at once rather than sleep */ }
/// ```
#[derive(Debug)]
pub struct SynBacklog<const HELD: usize, const FRAME: usize, const PEERS: usize> {
    port: u16,
    /// Where the IPv4 header starts in a frame: after the Ethernet header, or at 0.
    ip_offset: usize,
    held: [Option<Held<FRAME>>; HELD],
    next_order: u32,
    /// SYNs smoltcp may still see this round: sockets in LISTEN not yet given one.
    admit: usize,
    peers: [Option<IpEndpoint>; PEERS],
    stats: BacklogStats,
}

impl<const HELD: usize, const FRAME: usize, const PEERS: usize> SynBacklog<HELD, FRAME, PEERS> {
    /// A backlog for TCP port `port` on an Ethernet device.
    pub const fn ethernet(port: u16) -> Self {
        Self::new(port, 14)
    }

    /// A backlog for TCP port `port` on an IP device (no link-layer header).
    pub const fn ip(port: u16) -> Self {
        Self::new(port, 0)
    }

    const fn new(port: u16, ip_offset: usize) -> Self {
        SynBacklog {
            port,
            ip_offset,
            held: [None; HELD],
            next_order: 0,
            admit: 0,
            peers: [None; PEERS],
            stats: BacklogStats {
                held: 0,
                released: 0,
                dropped: 0,
            },
        }
    }

    /// Counts the sockets listening on the port and notes the peers of those serving it.
    /// Call before each `Interface::poll`.
    pub fn update(&mut self, sockets: &SocketSet<'_>) {
        self.admit = 0;
        self.peers = [None; PEERS];
        let mut slots = self.peers.iter_mut();
        for (_, socket) in sockets.iter() {
            let Some(socket) = tcp::Socket::downcast(socket) else {
                continue;
            };
            match socket.state() {
                State::Listen if socket.listen_endpoint().port == self.port => self.admit += 1,
                State::Listen | State::Closed => {}
                _ if socket.local_endpoint().is_some_and(|e| e.port == self.port) => {
                    if let (Some(peer), Some(slot)) = (socket.remote_endpoint(), slots.next()) {
                        *slot = Some(peer);
                    }
                }
                _ => {}
            }
        }
    }

    /// `device` as the interface should see it this round: SYNs no socket can take are
    /// held, held ones come first once a socket listens.
    pub fn gate<'a, D: Device + ?Sized>(
        &'a mut self,
        device: &'a mut D,
    ) -> Gate<'a, D, HELD, FRAME, PEERS> {
        Gate {
            device,
            backlog: self,
        }
    }

    /// SYNs waiting for a listening socket.
    pub fn waiting(&self) -> usize {
        self.held.iter().filter(|h| h.is_some()).count()
    }

    /// True when a held SYN and a listening socket are both there: poll the interface
    /// again now rather than sleep.
    pub fn can_release(&self) -> bool {
        self.admit > 0 && self.waiting() > 0
    }

    /// What the backlog did so far.
    pub const fn stats(&self) -> BacklogStats {
        self.stats
    }

    /// The source of `frame` if it opens a connection to the port (SYN without ACK nor
    /// RST, in an unfragmented IPv4 packet), else `None`.
    fn syn_source(&self, frame: &[u8]) -> Option<IpEndpoint> {
        if self.ip_offset == 14 && frame.get(12..14)? != [0x08, 0x00] {
            return None;
        }
        let ip = frame.get(self.ip_offset..)?;
        let first = *ip.first()?;
        let fragment = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x1fff;
        if first >> 4 != 4 || *ip.get(9)? != 6 || fragment != 0 {
            return None;
        }
        let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
        let tcp = ip.get(usize::from(first & 0x0f) * 4..)?;
        let source_port = u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]);
        let port = u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]);
        let flags = *tcp.get(13)?;
        (port == self.port && flags & (SYN | ACK | RST) == SYN)
            .then(|| IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::from(src)), source_port))
    }

    /// Keeps `frame` from `source`: in place of an earlier SYN of the same peer (a
    /// retransmission keeps its turn), else in a free slot, else not at all.
    fn hold(&mut self, frame: &[u8], source: IpEndpoint) {
        let slot = match self
            .held
            .iter()
            .position(|h| h.is_some_and(|h| h.source == source))
        {
            Some(k) => self.held.get_mut(k),
            None => self.held.iter_mut().find(|h| h.is_none()),
        };
        let (Some(slot), Some(copy)) = (slot, copy_frame::<FRAME>(frame)) else {
            self.stats.dropped += 1;
            return;
        };
        let order = match slot {
            Some(earlier) => earlier.order,
            None => {
                self.stats.held += 1;
                self.next_order = self.next_order.wrapping_add(1);
                self.next_order
            }
        };
        *slot = Some(Held {
            frame: copy,
            len: frame.len(),
            source,
            order,
        });
    }

    /// Takes the SYN that waited longest.
    fn take_oldest(&mut self) -> Option<Held<FRAME>> {
        let next = self.next_order;
        self.held
            .iter_mut()
            .filter(|h| h.is_some())
            .max_by_key(|h| h.map_or(0, |h| next.wrapping_sub(h.order)))
            .and_then(Option::take)
    }
}

/// `frame` in a `FRAME`-byte array, if it fits.
fn copy_frame<const FRAME: usize>(frame: &[u8]) -> Option<[u8; FRAME]> {
    let mut copy = [0u8; FRAME];
    copy.get_mut(..frame.len())?.copy_from_slice(frame);
    Some(copy)
}

/// A device seen through a [`SynBacklog`] for one interface poll.
#[derive(Debug)]
pub struct Gate<'a, D: Device + ?Sized, const HELD: usize, const FRAME: usize, const PEERS: usize> {
    device: &'a mut D,
    backlog: &'a mut SynBacklog<HELD, FRAME, PEERS>,
}

impl<D: Device + ?Sized, const HELD: usize, const FRAME: usize, const PEERS: usize> Device
    for Gate<'_, D, HELD, FRAME, PEERS>
{
    type RxToken<'b>
        = GateRx<'b, D::RxToken<'b>, HELD, FRAME, PEERS>
    where
        Self: 'b;
    type TxToken<'b>
        = D::TxToken<'b>
    where
        Self: 'b;

    fn receive(&mut self, now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        if self.backlog.admit > 0 && self.backlog.waiting() > 0 {
            let tx = self.device.transmit(now)?;
            let held = self.backlog.take_oldest()?;
            self.backlog.admit -= 1;
            self.backlog.stats.released += 1;
            return Some((GateRx::Held(held), tx));
        }
        let (rx, tx) = self.device.receive(now)?;
        Some((
            GateRx::Live {
                rx,
                backlog: &mut *self.backlog,
            },
            tx,
        ))
    }

    fn transmit(&mut self, now: Instant) -> Option<Self::TxToken<'_>> {
        self.device.transmit(now)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.device.capabilities()
    }
}

/// A frame for the interface: one the device just received, or a held SYN.
#[derive(Debug)]
pub enum GateRx<'b, R, const HELD: usize, const FRAME: usize, const PEERS: usize> {
    /// From the device; a SYN no socket can take is held instead of shown.
    Live {
        /// The device's token.
        rx: R,
        /// The backlog deciding.
        backlog: &'b mut SynBacklog<HELD, FRAME, PEERS>,
    },
    /// A held SYN, handed over now that a socket listens.
    Held(Held<FRAME>),
}

impl<R: phy::RxToken, const HELD: usize, const FRAME: usize, const PEERS: usize> phy::RxToken
    for GateRx<'_, R, HELD, FRAME, PEERS>
{
    fn consume<T, F>(self, f: F) -> T
    where
        F: FnOnce(&[u8]) -> T,
    {
        match self {
            GateRx::Held(held) => f(held.frame.get(..held.len).unwrap_or_default()),
            GateRx::Live { rx, backlog } => rx.consume(|frame| {
                match backlog.syn_source(frame) {
                    Some(source) if !backlog.peers.contains(&Some(source)) => {
                        if backlog.admit > 0 {
                            backlog.admit -= 1;
                            f(frame)
                        } else {
                            backlog.hold(frame, source);
                            // An empty frame: smoltcp finds no header in it and drops it.
                            f(&[])
                        }
                    }
                    _ => f(frame),
                }
            }),
        }
    }
}
