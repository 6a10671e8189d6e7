//! UDP echo (RFC 862's datagram half): a sans-IO state machine for one UDP socket.
//!
//! Each datagram goes back to its sender byte for byte, as one datagram, unless a guard
//! stops it; nothing is dropped without a counter saying why ([`UdpStats`]).
//!
//! - **The queue** is a ring of fixed-size datagram slots lent by the caller
//!   ([`UdpStorage`]). The driver receives straight into the next free slot inside
//!   [`UdpEcho::recv_with`] and sends straight from the oldest inside
//!   [`UdpEcho::send_with`]; an echo the socket will not take yet waits there. One slot is
//!   always free for the next datagram to land in, so the socket can be read even when the
//!   queue is full: that datagram is then dropped ([`DropReason::QueueFull`]) rather than
//!   left to the kernel to drop uncounted.
//! - **The loop guard** ([`GUARDED_PORTS`]) refuses sources that could bounce a datagram
//!   for ever.
//! - **The flood guard** gives each source a token bucket of datagrams and bytes per
//!   second ([`Budget`]), in a fixed table of recent sources: one source, forged or not,
//!   cannot take the queue and the link from the others.
//!
//! Checks run in that order, cheapest first: loop guard, truncation, a full queue, then
//! the flood guard, which charges only a datagram it lets through, so a dropped datagram
//! never costs its source budget.
//!
//! ```
//! use echoloop_core::udp::{Endpoint, RecvResult, SendResult, UdpConfig, UdpEcho, UdpStaticStorage};
//! use echoloop_core::Instant;
//!
//! // 8 slots of 512 bytes (7 echoes may wait), 16 recent sources.
//! let mut echo: UdpEcho<UdpStaticStorage<8, 512, 16>> = UdpEcho::new_static(UdpConfig::new());
//! let from = Endpoint::v4([192, 0, 2, 1], 40000);
//! echo.recv_with(Instant::ZERO, |buf| {
//!     buf[..4].copy_from_slice(b"ping");
//!     RecvResult::Datagram { from, len: 4 }
//! });
//! let sent = echo.send_with(|bytes, to| {
//!     assert_eq!((bytes, to), (&b"ping"[..], from));
//!     SendResult::Sent
//! });
//! assert_eq!(sent, Some(SendResult::Sent));
//! assert_eq!(echo.stats().echoed, 1);
//! ```

mod endpoint;
mod flood_guard;
mod loop_guard;
mod stats;
mod storage;
#[cfg(test)]
mod tests;

pub use endpoint::{Address, Endpoint};
pub use flood_guard::{Budget, SourceSlot, WAYS};
pub use loop_guard::GUARDED_PORTS;
pub use stats::{DropReason, Dropped, UdpStats};
pub use storage::{
    DatagramSlot, UdpParts, UdpSliceStorage, UdpStaticStorage, UdpStorage, UdpStorageError,
};

use crate::macros::debug;
use crate::Instant;

/// How the echo guards itself. [`UdpConfig::new`] gives the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UdpConfig {
    /// Datagrams per source: 4,096 a second, bursts of 512 by default.
    pub datagrams: Budget,
    /// Bytes per source: 4 MiB a second, bursts of 256 KiB by default (a burst must hold
    /// the largest datagram served, or that size never passes).
    pub bytes: Budget,
    /// Source ports never answered; [`GUARDED_PORTS`] by default. Port 0 always is.
    pub guarded_ports: &'static [u16],
    /// What the flood guard calls one source; [`SourceKey::Endpoint`] by default.
    pub source_key: SourceKey,
    /// The key of the flood guard's hash: a random number from the driver, so that a
    /// sender cannot aim sources at one set of the table. 0 by default.
    pub hash_key: u64,
}

impl UdpConfig {
    /// The defaults: limits that a ping-pong client never meets but that cap what one
    /// forged source can make the echo send at a third party (about 32 Mbit/s).
    pub const fn new() -> Self {
        UdpConfig {
            datagrams: Budget {
                per_sec: 4096,
                burst: 512,
            },
            bytes: Budget {
                per_sec: 4 << 20,
                burst: 256 << 10,
            },
            guarded_ports: GUARDED_PORTS,
            source_key: SourceKey::Endpoint,
            hash_key: 0,
        }
    }
}

impl Default for UdpConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// What the flood guard counts as one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SourceKey {
    /// Address and port: every socket its own budget (two clients behind one NAT, or two
    /// sockets of one host, are two sources).
    Endpoint,
    /// Address only: one host, however many ports it sends from, shares one budget.
    Address,
}

/// What a driver's receive into the lent slot found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RecvResult {
    /// A datagram of `len` bytes from `from`, now at the start of the slot. A `len` longer
    /// than the slot (a receive with `MSG_TRUNC` reports the real length) is truncated.
    Datagram {
        /// The sender.
        from: Endpoint,
        /// The datagram's length.
        len: usize,
    },
    /// A datagram from `from` did not fit the slot (smoltcp's `Truncated`).
    Truncated {
        /// The sender.
        from: Endpoint,
    },
    /// Nothing to receive (`EAGAIN`), or an error that concerns no datagram (a late
    /// `ECONNREFUSED`): the slot stays free.
    Nothing,
}

/// What a driver's send of the oldest echo did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SendResult {
    /// The datagram went out whole: its slot is free again.
    Sent,
    /// The socket will not take it now (`EAGAIN`, a full smoltcp buffer): it waits.
    WouldBlock,
    /// The socket refused this datagram for good (unreachable, too big): dropped and
    /// counted as [`DropReason::SendFailed`].
    Failed,
}

/// What became of one receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Verdict {
    /// Queued for its echo.
    Queued,
    /// Dropped, and counted under this reason.
    Dropped(DropReason),
    /// The driver received nothing.
    Nothing,
}

/// A UDP echo over the memory of `S`. See the [module](self) documentation.
#[derive(Debug)]
pub struct UdpEcho<S: UdpStorage> {
    storage: S,
    config: UdpConfig,
    /// The oldest waiting echo's slot.
    head: usize,
    /// Echoes waiting.
    len: usize,
    stats: UdpStats,
}

impl<const SLOTS: usize, const SLOT_SIZE: usize, const SOURCES: usize>
    UdpEcho<UdpStaticStorage<SLOTS, SLOT_SIZE, SOURCES>>
{
    /// An echo in a static's arrays: sizes checked at compile time, so it cannot fail.
    pub const fn new_static(config: UdpConfig) -> Self {
        UdpEcho {
            storage: UdpStaticStorage::new(),
            config,
            head: 0,
            len: 0,
            stats: stats::ZERO,
        }
    }
}

impl<S: UdpStorage> UdpEcho<S> {
    /// An echo with nothing queued, in `storage`, if its tables fit.
    pub fn new(config: UdpConfig, mut storage: S) -> Result<Self, UdpStorageError> {
        storage::check(&storage.parts())?;
        Ok(UdpEcho {
            storage,
            config,
            head: 0,
            len: 0,
            stats: stats::ZERO,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &UdpConfig {
        &self.config
    }

    /// What it has done so far.
    pub fn stats(&self) -> &UdpStats {
        &self.stats
    }

    /// Echoes waiting for the socket.
    pub fn queued(&self) -> usize {
        self.len
    }

    /// The most echoes that can wait: one slot fewer than the table has.
    pub fn capacity(&mut self) -> usize {
        self.storage.parts().slots.len().saturating_sub(1)
    }

    /// The largest datagram echoed; a longer one is dropped as truncated.
    pub fn slot_size(&mut self) -> usize {
        self.storage.parts().slot_size
    }

    /// True while echoes wait: watch the socket for writability. (Always watch it for
    /// reading: a datagram can always be received, if only to be dropped and counted.)
    pub fn write_interest(&self) -> bool {
        self.len > 0
    }

    /// Lends the free slot to `recv`, which receives one datagram into it and says what it
    /// got; then the guards decide whether it is queued for its echo.
    pub fn recv_with<F>(&mut self, now: Instant, recv: F) -> Verdict
    where
        F: FnOnce(&mut [u8]) -> RecvResult,
    {
        let config = self.config;
        let tail = self.slot_index(self.len);
        let parts = self.storage.parts();
        let slot_size = parts.slot_size;
        let Some(buf) = slot_bytes(parts.bytes, tail, slot_size) else {
            return Verdict::Nothing;
        };
        let (from, len) = match recv(buf) {
            RecvResult::Nothing => return Verdict::Nothing,
            RecvResult::Truncated { from } => (from, usize::MAX),
            RecvResult::Datagram { from, len } => (from, len),
        };
        self.stats.received = self.stats.received.saturating_add(1);
        let reason = if loop_guard::refuses(&from, config.guarded_ports) {
            Some(DropReason::LoopGuard)
        } else if len > slot_size {
            Some(DropReason::Truncated)
        } else if self.len >= parts.slots.len().saturating_sub(1) {
            Some(DropReason::QueueFull)
        } else {
            let source = match config.source_key {
                SourceKey::Endpoint => from,
                SourceKey::Address => Endpoint {
                    addr: from.addr,
                    port: 0,
                },
            };
            let v = flood_guard::charge(
                parts.sources,
                config.hash_key,
                source,
                len,
                now,
                config.datagrams,
                config.bytes,
            );
            if v.evicted {
                self.stats.sources_evicted = self.stats.sources_evicted.saturating_add(1);
            }
            (!v.allowed).then_some(DropReason::FloodGuard)
        };
        if let Some(reason) = reason {
            debug!("udp: dropped a datagram from {}: {}", from, reason);
            self.stats.dropped.count(reason);
            return Verdict::Dropped(reason);
        }
        let Some(slot) = parts.slots.get_mut(tail) else {
            return Verdict::Nothing;
        };
        // `len ≤ slot_size ≤ u32::MAX`, checked above and in `new`.
        *slot = DatagramSlot {
            to: from,
            len: len as u32,
        };
        self.len += 1;
        self.stats.bytes_in = self.stats.bytes_in.saturating_add(len as u64);
        self.stats.peak_queued = self.stats.peak_queued.max(self.len);
        Verdict::Queued
    }

    /// Lends the oldest waiting echo and its destination to `send`; `None` when nothing
    /// waits. Call it while it returns `Some(SendResult::Sent)`.
    pub fn send_with<F>(&mut self, send: F) -> Option<SendResult>
    where
        F: FnOnce(&[u8], Endpoint) -> SendResult,
    {
        if self.len == 0 {
            return None;
        }
        let head = self.head;
        let parts = self.storage.parts();
        let slot = *parts.slots.get(head)?;
        let buf = slot_bytes(parts.bytes, head, parts.slot_size)?;
        let bytes = buf.get(..slot.len as usize)?;
        let result = send(bytes, slot.to);
        match result {
            SendResult::WouldBlock => return Some(result),
            SendResult::Sent => {
                self.stats.echoed = self.stats.echoed.saturating_add(1);
                self.stats.bytes_out = self.stats.bytes_out.saturating_add(u64::from(slot.len));
            }
            SendResult::Failed => {
                debug!("udp: could not send the echo to {}", slot.to);
                self.stats.dropped.count(DropReason::SendFailed);
            }
        }
        self.head = self.slot_index(1);
        self.len -= 1;
        Some(result)
    }

    /// The slot `offset` places after the head, around the ring.
    fn slot_index(&mut self, offset: usize) -> usize {
        let n = self.storage.parts().slots.len().max(1);
        (self.head % n + offset % n) % n
    }
}

fn slot_bytes(bytes: &mut [u8], index: usize, slot_size: usize) -> Option<&mut [u8]> {
    let start = index.checked_mul(slot_size)?;
    bytes.get_mut(start..start.checked_add(slot_size)?)
}
