//! Counters a server keeps about itself, in the manner of quinn-proto's `stats`.

use crate::CloseReason;

/// What a server has done since it was made. Counters saturate rather than wrap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Connections given a slot.
    pub accepted: u64,
    /// Connections refused: table full, shutting down, or refused by the driver.
    pub refused: u64,
    /// Connections closed, by reason.
    pub closed: Closed,
    /// Bytes received and queued.
    pub bytes_in: u64,
    /// Bytes echoed back.
    pub bytes_out: u64,
    /// Bytes still queued when a connection failed or timed out: they had nowhere to go.
    pub bytes_discarded: u64,
    /// Bytes received and dropped from draining connections, after the server shut down
    /// their write side: never echoed, by design.
    pub bytes_drained: u64,
    /// The most bytes one connection's queue ever held.
    pub peak_queue: usize,
    /// The most connections open at once.
    pub peak_conns: usize,
}

/// Closed connections, one counter per [`CloseReason`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Closed {
    /// [`CloseReason::PeerClosed`].
    pub peer_closed: u64,
    /// [`CloseReason::Error`] with [`ErrorKind::Reset`](crate::ErrorKind::Reset).
    pub reset: u64,
    /// [`CloseReason::Error`] with any other [`ErrorKind`](crate::ErrorKind).
    pub error: u64,
    /// [`CloseReason::IdleTimeout`].
    pub idle_timeout: u64,
    /// [`CloseReason::Shutdown`].
    pub shutdown: u64,
    /// [`CloseReason::ShutdownTimeout`].
    pub shutdown_timeout: u64,
    /// [`CloseReason::Aborted`].
    pub aborted: u64,
}

impl Closed {
    /// All closed connections.
    pub const fn total(&self) -> u64 {
        self.peer_closed
            .saturating_add(self.reset)
            .saturating_add(self.error)
            .saturating_add(self.idle_timeout)
            .saturating_add(self.shutdown)
            .saturating_add(self.shutdown_timeout)
            .saturating_add(self.aborted)
    }

    pub(crate) fn count(&mut self, reason: CloseReason) {
        let counter = match reason {
            CloseReason::PeerClosed => &mut self.peer_closed,
            CloseReason::Error(crate::ErrorKind::Reset) => &mut self.reset,
            CloseReason::Error(_) => &mut self.error,
            CloseReason::IdleTimeout => &mut self.idle_timeout,
            CloseReason::Shutdown => &mut self.shutdown,
            CloseReason::ShutdownTimeout => &mut self.shutdown_timeout,
            CloseReason::Aborted => &mut self.aborted,
        };
        *counter = counter.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn each_reason_has_its_counter() {
        let mut c = Closed::default();
        for reason in [
            CloseReason::PeerClosed,
            CloseReason::Error(ErrorKind::Reset),
            CloseReason::Error(ErrorKind::HangUp),
            CloseReason::Error(ErrorKind::Other),
            CloseReason::IdleTimeout,
            CloseReason::Shutdown,
            CloseReason::ShutdownTimeout,
            CloseReason::Aborted,
        ] {
            c.count(reason);
        }
        assert_eq!(
            c,
            Closed {
                peer_closed: 1,
                reset: 1,
                error: 2,
                idle_timeout: 1,
                shutdown: 1,
                shutdown_timeout: 1,
                aborted: 1,
            }
        );
        assert_eq!(c.total(), 8);
    }
}
