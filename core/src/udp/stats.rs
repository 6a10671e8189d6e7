//! What a UDP echo counts: every datagram received is echoed, waiting, or dropped for a
//! reason.

use core::fmt;

/// Why a datagram got no echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DropReason {
    /// From a guarded port or a source that is no single host
    /// ([`GUARDED_PORTS`](super::GUARDED_PORTS)).
    LoopGuard,
    /// Longer than a slot.
    Truncated,
    /// Every slot but the landing one held an echo waiting for the socket.
    QueueFull,
    /// Its source had spent its budget.
    FloodGuard,
    /// The socket refused the echo for good.
    SendFailed,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::LoopGuard => "loop guard",
            DropReason::Truncated => "truncated",
            DropReason::QueueFull => "queue full",
            DropReason::FloodGuard => "flood guard",
            DropReason::SendFailed => "send failed",
        })
    }
}

/// Datagrams dropped, one counter per [`DropReason`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Dropped {
    /// [`DropReason::LoopGuard`].
    pub loop_guard: u64,
    /// [`DropReason::Truncated`].
    pub truncated: u64,
    /// [`DropReason::QueueFull`].
    pub queue_full: u64,
    /// [`DropReason::FloodGuard`].
    pub flood_guard: u64,
    /// [`DropReason::SendFailed`].
    pub send_failed: u64,
}

impl Dropped {
    /// All dropped datagrams.
    pub const fn total(&self) -> u64 {
        self.loop_guard
            .saturating_add(self.truncated)
            .saturating_add(self.queue_full)
            .saturating_add(self.flood_guard)
            .saturating_add(self.send_failed)
    }

    pub(crate) fn count(&mut self, reason: DropReason) {
        let counter = match reason {
            DropReason::LoopGuard => &mut self.loop_guard,
            DropReason::Truncated => &mut self.truncated,
            DropReason::QueueFull => &mut self.queue_full,
            DropReason::FloodGuard => &mut self.flood_guard,
            DropReason::SendFailed => &mut self.send_failed,
        };
        *counter = counter.saturating_add(1);
    }
}

/// What a UDP echo has done since it was made. Counters saturate. At any time,
/// `received = echoed + dropped.total() + queued`, where `queued` is
/// [`UdpEcho::queued`](super::UdpEcho::queued): nothing is lost uncounted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UdpStats {
    /// Datagrams received.
    pub received: u64,
    /// Echoes sent.
    pub echoed: u64,
    /// Bytes of the datagrams queued.
    pub bytes_in: u64,
    /// Bytes echoed.
    pub bytes_out: u64,
    /// Datagrams dropped, by reason.
    pub dropped: Dropped,
    /// Sources that lost their flood-guard slot to a newer one.
    pub sources_evicted: u64,
    /// The most echoes ever waiting at once.
    pub peak_queued: usize,
}

pub(crate) const ZERO: UdpStats = UdpStats {
    received: 0,
    echoed: 0,
    bytes_in: 0,
    bytes_out: 0,
    dropped: Dropped {
        loop_guard: 0,
        truncated: 0,
        queue_full: 0,
        flood_guard: 0,
        send_failed: 0,
    },
    sources_evicted: 0,
    peak_queued: 0,
};
