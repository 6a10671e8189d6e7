//! The select loop's UDP echo sockets (`serve --udp`): one [`UdpEcho`] per socket, served
//! in the same rounds as the TCP connections.
//!
//! One echo per socket, not one shared: an echo waits to go out on the socket it came in
//! on, so a socket whose send buffer is full must hold back only its own replies, and its
//! queue and counters are its own.
//!
//! A round reads at most [`DATAGRAMS_PER_ROUND`] datagrams from a readable socket and
//! sends each echo at once; an echo the socket will not take (`EAGAIN`) waits in the
//! core's queue, and the socket joins the write set until the queue is empty
//! ([`UdpEcho::write_interest`]). Errors concern one datagram and never stop the loop:
//! a failed receive (a late `ECONNREFUSED` from an ICMP error) is counted and the next
//! datagram read; a failed send drops that echo, counted by the core.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;

use echoloop_core::udp::{Budget, RecvResult, SendResult, UdpConfig, UdpEcho, UdpStats, Verdict};
use echoloop_core::Instant;
use log::debug;

use crate::net::Net;
use crate::storage::HeapUdpStorage;

/// A slot's size: more than any UDP payload (65,507 bytes over IPv4, 65,527 over IPv6),
/// so that every datagram fits, and a receive that fills a slot to the last byte can only
/// be one that the kernel cut short: it is dropped as truncated, never echoed in part.
pub const SLOT_SIZE: usize = 65_536;

/// Datagram slots per socket: 7 echoes may wait beside the one being received. An echo
/// goes out in the round it came in unless the socket's send buffer (about 200 KiB on
/// Linux) is full; a few slots absorb a burst behind it, and more would only delay
/// echoes the kernel is already refusing. 512 KiB of address space, resident as used.
pub const SLOTS: usize = 8;

/// Recent sources the flood guard remembers per socket (in sets of
/// [`WAYS`](echoloop_core::udp::WAYS)): 1,024 senders at once keep their own budget, a
/// forged flood of more only evicts the stalest. About 48 KiB.
pub const SOURCES: usize = 1024;

/// Datagrams read per socket per round: a flood fills its queue and its budget, not the
/// round, so the TCP connections are served between two such batches.
pub const DATAGRAMS_PER_ROUND: usize = 64;

/// `--udp-rate`: `per_sec` datagrams a second per source (`None`: no limit), in bursts
/// of an eighth of a second's worth; the default, 4,096, gives the core's default burst
/// of 512.
pub fn datagram_budget(per_sec: Option<u32>) -> Budget {
    match per_sec {
        None => Budget::UNLIMITED,
        Some(per_sec) => Budget {
            per_sec,
            burst: (per_sec / 8).max(1),
        },
    }
}

/// `--udp-bytes`: `per_sec` bytes a second per source (`None`: no limit), in bursts of a
/// sixteenth of a second's worth but never less than 64 KiB, so that the largest datagram
/// can always pass; the default, 4 MiB, gives the core's default burst of 256 KiB.
pub fn byte_budget(per_sec: Option<u32>) -> Budget {
    match per_sec {
        None => Budget::UNLIMITED,
        Some(per_sec) => Budget {
            per_sec,
            burst: (per_sec / 16).max(SLOT_SIZE as u32),
        },
    }
}

/// A UDP echo socket of the loop.
pub(crate) struct UdpSock<D> {
    pub(crate) socket: D,
    pub(crate) addr: SocketAddr,
    echo: UdpEcho<HeapUdpStorage>,
    /// Receives that failed with something other than `EAGAIN` or `EINTR`.
    recv_errors: u64,
}

impl<D> UdpSock<D> {
    /// An echo for `socket`, bound to `addr`, with its tables allocated now.
    pub(crate) fn new(socket: D, addr: SocketAddr, config: UdpConfig) -> io::Result<Self> {
        let storage = HeapUdpStorage::new(SLOTS, SLOT_SIZE, SOURCES)?;
        let echo = UdpEcho::new(config, storage)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(UdpSock {
            socket,
            addr,
            echo,
            recv_errors: 0,
        })
    }

    /// True while echoes wait for room in the socket's send buffer.
    pub(crate) fn write_interest(&self) -> bool {
        self.echo.write_interest()
    }

    /// What it has done so far.
    pub(crate) fn report(&self) -> UdpReport {
        UdpReport {
            addr: self.addr,
            stats: *self.echo.stats(),
            recv_errors: self.recv_errors,
            queued: self.echo.queued(),
        }
    }

    /// Sends waiting echoes until the socket refuses one or none is left.
    pub(crate) fn flush<N: Net<Datagram = D>>(&mut self, net: &mut N) {
        // Each call takes one echo off the queue or stops: bounded by the queue.
        loop {
            let socket = &self.socket;
            let sent = self.echo.send_with(|bytes, to| {
                match net.send_to(socket, bytes, SocketAddr::from(to)) {
                    // A datagram goes out whole or not at all.
                    Ok(n) if n == bytes.len() => SendResult::Sent,
                    Ok(_) => SendResult::Failed,
                    Err(e) if is_not_now(&e) => SendResult::WouldBlock,
                    Err(e) => {
                        debug!("udp: sending an echo to {to}: {e}");
                        SendResult::Failed
                    }
                }
            });
            match sent {
                Some(SendResult::Sent | SendResult::Failed) => {}
                Some(SendResult::WouldBlock) | None => return,
            }
        }
    }

    /// Reads up to [`DATAGRAMS_PER_ROUND`] datagrams, echoing each at once.
    pub(crate) fn receive<N: Net<Datagram = D>>(&mut self, net: &mut N, now: Instant) {
        for _ in 0..DATAGRAMS_PER_ROUND {
            let socket = &self.socket;
            let mut failed = None;
            let verdict = self
                .echo
                .recv_with(now, |buf| match net.recv_from(socket, buf) {
                    Ok((n, from)) if n >= buf.len() => RecvResult::Truncated { from: from.into() },
                    Ok((len, from)) => RecvResult::Datagram {
                        from: from.into(),
                        len,
                    },
                    Err(e) => {
                        failed = Some(e);
                        RecvResult::Nothing
                    }
                });
            match (verdict, failed) {
                (Verdict::Queued, _) => self.flush(net),
                (Verdict::Dropped(_), _) => {}
                (Verdict::Nothing, Some(e)) if !is_not_now(&e) => {
                    debug!("udp {}: receive: {e}", self.addr);
                    self.recv_errors = self.recv_errors.saturating_add(1);
                }
                (Verdict::Nothing, _) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rates_give_the_cores_default_budgets() {
        let core = UdpConfig::new();
        assert_eq!(datagram_budget(Some(4096)), core.datagrams);
        assert_eq!(byte_budget(Some(4 << 20)), core.bytes);
        assert_eq!(datagram_budget(None), Budget::UNLIMITED);
        assert_eq!(byte_budget(None), Budget::UNLIMITED);
    }

    #[test]
    fn a_low_byte_rate_still_lets_the_largest_datagram_through() {
        assert_eq!(byte_budget(Some(1000)).burst, 65_536);
        assert_eq!(datagram_budget(Some(3)).burst, 1);
    }
}

/// `EAGAIN` or `EINTR`: select will report the socket again.
fn is_not_now(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// A random key for the flood guard's hash, from the seed std draws from the operating
/// system for its hash maps: a sender cannot aim forged sources at one set of the table.
pub(crate) fn hash_key() -> u64 {
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u64(0x6563686f6c6f6f70);
    hasher.finish()
}

/// What one UDP echo socket did: the shutdown log's line.
#[derive(Clone, Copy, Debug)]
pub struct UdpReport {
    /// The address it was bound to.
    pub addr: SocketAddr,
    /// The core's counters: received, echoed, dropped by reason.
    pub stats: UdpStats,
    /// Receives that failed (a late `ECONNREFUSED`, say); the loop went on.
    pub recv_errors: u64,
    /// Echoes still waiting for the socket when the report was made.
    pub queued: usize,
}

impl fmt::Display for UdpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        let d = &s.dropped;
        write!(
            f,
            "udp {}: received {}, echoed {}, bytes in {}, bytes out {}, dropped {} \
             (loop guard {}, truncated {}, queue full {}, flood guard {}, send failed {}), \
             receive errors {}, sources evicted {}, peak queued {}, unsent {}",
            self.addr,
            s.received,
            s.echoed,
            s.bytes_in,
            s.bytes_out,
            d.total(),
            d.loop_guard,
            d.truncated,
            d.queue_full,
            d.flood_guard,
            d.send_failed,
            self.recv_errors,
            s.sources_evicted,
            s.peak_queued,
            self.queued,
        )
    }
}
