//! A loopback device without a heap.
//!
//! smoltcp's `Loopback` queues packets in a `VecDeque<Vec<u8>>`, so it needs `alloc`; a
//! firmware without a heap that wants to talk to itself needs this instead: a ring of
//! `PACKETS` fixed buffers of `MTU` bytes. Packets come back in the order they were sent.
//! When the ring is full the device refuses to transmit and smoltcp tries again later,
//! as it would with a busy network card.

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// A loopback device holding at most `PACKETS` packets of at most `MTU` bytes, in
/// `PACKETS * MTU + MTU` bytes plus a few words. `const`-constructible, so it can live in
/// a `static`.
///
/// ```
/// use echoloop_smoltcp::StaticLoopback;
/// use smoltcp::phy::{Device, Medium, RxToken, TxToken};
/// use smoltcp::time::Instant;
///
/// let mut device = StaticLoopback::<2, 64>::new(Medium::Ip);
/// let now = Instant::ZERO;
/// device.transmit(now).unwrap().consume(3, |buf| buf.copy_from_slice(b"abc"));
/// let (rx, _tx) = device.receive(now).unwrap();
/// rx.consume(|packet| assert_eq!(packet, b"abc"));
/// assert!(device.receive(now).is_none());
/// ```
#[derive(Debug)]
pub struct StaticLoopback<const PACKETS: usize, const MTU: usize> {
    medium: Medium,
    ring: Ring<PACKETS, MTU>,
    /// The packet being received: copied out of the ring so that the ring can take the
    /// reply smoltcp sends with the same call.
    rx: [u8; MTU],
}

impl<const PACKETS: usize, const MTU: usize> StaticLoopback<PACKETS, MTU> {
    /// An empty loopback device for `medium` (smoltcp's loopback example uses
    /// `Medium::Ethernet`; `Medium::Ip` needs no neighbour discovery).
    pub const fn new(medium: Medium) -> Self {
        const { assert!(PACKETS > 0, "PACKETS must be at least 1") };
        StaticLoopback {
            medium,
            ring: Ring {
                packets: [[0; MTU]; PACKETS],
                lens: [0; PACKETS],
                head: 0,
                len: 0,
            },
            rx: [0; MTU],
        }
    }

    /// Packets sent and not yet received.
    pub const fn queued(&self) -> usize {
        self.ring.len
    }
}

impl<const PACKETS: usize, const MTU: usize> Device for StaticLoopback<PACKETS, MTU> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, MTU>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let len = self.ring.pop_into(&mut self.rx)?;
        // The pop made room, so the reply always has a slot.
        let tx = self.ring.reserve()?;
        let packet = self.rx.get(..len)?;
        Some((RxToken { packet }, tx))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Self::TxToken<'_>> {
        self.ring.reserve()
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = self.medium;
        // smoltcp never asks for a longer packet than this, so every packet fits a slot.
        caps.max_transmission_unit = MTU;
        caps
    }
}

/// The packets in flight, oldest first.
#[derive(Debug)]
struct Ring<const PACKETS: usize, const MTU: usize> {
    packets: [[u8; MTU]; PACKETS],
    lens: [usize; PACKETS],
    /// Index of the oldest packet; `< PACKETS`.
    head: usize,
    /// Packets queued; `<= PACKETS`.
    len: usize,
}

impl<const PACKETS: usize, const MTU: usize> Ring<PACKETS, MTU> {
    /// `i` wrapped into the ring, for `i < 2 * PACKETS`.
    fn wrap(i: usize) -> usize {
        if i >= PACKETS {
            i - PACKETS
        } else {
            i
        }
    }

    /// Copies the oldest packet into `dst` and forgets it; returns its length.
    fn pop_into(&mut self, dst: &mut [u8; MTU]) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let len = *self.lens.get(self.head)?;
        let packet = self.packets.get(self.head)?.get(..len)?;
        dst.get_mut(..len)?.copy_from_slice(packet);
        self.head = Self::wrap(self.head + 1);
        self.len -= 1;
        Some(len)
    }

    /// The next free slot, to be filled by a [`TxToken`]; `None` when the ring is full.
    fn reserve(&mut self) -> Option<TxToken<'_, MTU>> {
        if self.len >= PACKETS {
            return None;
        }
        let tail = Self::wrap(self.head + self.len);
        Some(TxToken {
            slot: self.packets.get_mut(tail)?,
            slot_len: self.lens.get_mut(tail)?,
            queued: &mut self.len,
        })
    }
}

/// A received packet, lent to smoltcp.
#[doc(hidden)]
#[derive(Debug)]
pub struct RxToken<'a> {
    packet: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.packet)
    }
}

/// A free slot of the ring, reserved for one packet.
#[doc(hidden)]
#[derive(Debug)]
pub struct TxToken<'a, const MTU: usize> {
    slot: &'a mut [u8; MTU],
    slot_len: &'a mut usize,
    queued: &'a mut usize,
}

impl<const MTU: usize> phy::TxToken for TxToken<'_, MTU> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        // len <= MTU because the capabilities say so; clamp rather than trust it.
        let len = len.min(MTU);
        *self.slot_len = len;
        *self.queued += 1;
        f(self.slot.get_mut(..len).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::{RxToken as _, TxToken as _};

    fn send<const P: usize, const M: usize>(d: &mut StaticLoopback<P, M>, bytes: &[u8]) -> bool {
        match d.transmit(Instant::ZERO) {
            Some(tx) => {
                tx.consume(bytes.len(), |buf| buf.copy_from_slice(bytes));
                true
            }
            None => false,
        }
    }

    fn recv<const P: usize, const M: usize>(d: &mut StaticLoopback<P, M>) -> Option<[u8; 4]> {
        let (rx, _) = d.receive(Instant::ZERO)?;
        Some(rx.consume(|p| {
            let mut out = [0; 4];
            out[..p.len()].copy_from_slice(p);
            out
        }))
    }

    #[test]
    fn fifo_and_wraps_around() {
        let mut d = StaticLoopback::<3, 4>::new(Medium::Ip);
        for round in 0u8..5 {
            assert!(send(&mut d, &[round, 1]));
            assert!(send(&mut d, &[round, 2, 2]));
            assert_eq!(recv(&mut d), Some([round, 1, 0, 0]));
            assert_eq!(recv(&mut d), Some([round, 2, 2, 0]));
        }
        assert_eq!(recv(&mut d), None);
    }

    #[test]
    fn refuses_to_transmit_when_full() {
        let mut d = StaticLoopback::<2, 4>::new(Medium::Ip);
        assert!(send(&mut d, b"a"));
        assert!(send(&mut d, b"b"));
        assert!(!send(&mut d, b"c"));
        assert_eq!(d.queued(), 2);
        // Receiving frees a slot for the reply that comes with it.
        let (rx, tx) = d.receive(Instant::ZERO).unwrap();
        rx.consume(|p| assert_eq!(p, b"a"));
        tx.consume(1, |buf| buf.copy_from_slice(b"r"));
        assert_eq!(recv(&mut d), Some(*b"b\0\0\0"));
        assert_eq!(recv(&mut d), Some(*b"r\0\0\0"));
    }

    #[test]
    fn advertises_its_mtu() {
        let d = StaticLoopback::<1, 576>::new(Medium::Ip);
        assert_eq!(d.capabilities().max_transmission_unit, 576);
        assert_eq!(d.capabilities().medium, Medium::Ip);
    }
}
