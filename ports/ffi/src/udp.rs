//! The UDP echo through C: one datagram socket's queue and guards in caller memory.

use core::ffi::c_void;

use echoloop_core::udp::{
    Address, Budget, DatagramSlot, DropReason, Endpoint, RecvResult, SendResult, SourceKey,
    SourceSlot, UdpConfig, UdpEcho, UdpSliceStorage, Verdict,
};
use echoloop_core::Instant;

use crate::layout;
use crate::raw::{self, echoloop_udp_recv_fn, echoloop_udp_send_fn, UdpServer};
use crate::result::{code, echoloop_result};

/// A UDP echo living in memory the caller supplied. Opaque: only a pointer to it, from
/// `echoloop_udp_init`, is ever used.
pub struct echoloop_udp {
    _opaque: [u8; 0],
}

/// An IP address and port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct echoloop_endpoint {
    /// 4 (the address is `addr[0..4]`) or 6 (all 16 bytes).
    pub family: u8,
    /// The port, in host order.
    pub port: u16,
    /// The address, in network order.
    pub addr: [u8; 16],
}

impl echoloop_endpoint {
    fn to_core(self) -> Option<Endpoint> {
        match self.family {
            4 => {
                let [a, b, c, d, ..] = self.addr;
                Some(Endpoint::v4([a, b, c, d], self.port))
            }
            6 => Some(Endpoint::v6(self.addr, self.port)),
            _ => None,
        }
    }

    fn from_core(ep: Endpoint) -> Self {
        let mut addr = [0u8; 16];
        let family = match ep.addr {
            Address::V4(o) => {
                let [a, b, c, d] = o;
                addr[..4].copy_from_slice(&[a, b, c, d]);
                4
            }
            Address::V6(o) => {
                addr = o;
                6
            }
        };
        echoloop_endpoint {
            family,
            port: ep.port,
            addr,
        }
    }
}

/// The sizes and guards of a UDP echo. `echoloop_udp_config_default` fills the guards.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct echoloop_udp_config {
    /// Datagram slots, at least 2: `slots - 1` echoes may wait for the socket, and one
    /// slot is always free for the next datagram to land in.
    pub slots: u32,
    /// The largest datagram echoed (1472 on an Ethernet link); a longer one is dropped
    /// and counted as truncated.
    pub slot_size: u32,
    /// Recent sources the flood guard keeps a budget for: at least 1 (sets of 4).
    pub sources: u32,
    /// Datagrams a second each source may send on average.
    pub datagrams_per_sec: u32,
    /// Datagrams one source may send in a burst.
    pub datagrams_burst: u32,
    /// Bytes a second each source may send on average.
    pub bytes_per_sec: u32,
    /// Bytes one source may send in a burst (at least `slot_size`, or the largest
    /// datagrams never pass).
    pub bytes_burst: u32,
    /// One budget per address, whatever the port (false: per address and port).
    pub source_by_address: bool,
    /// A random number, so that a sender cannot aim forged sources at one set of the
    /// flood guard's table.
    pub hash_key: u64,
}

/// What the receive callback found, as it returns it (a `uint32_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum echoloop_udp_recv_kind {
    /// A datagram of `*datagram_len` bytes from `*from`, now at the start of the slot.
    Datagram = 0,
    /// A datagram from `*from` longer than the slot: dropped and counted.
    Truncated = 1,
    /// Nothing to receive: the slot stays free.
    Nothing = 2,
}

/// What the send callback did with the echo, as it returns it (a `uint32_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum echoloop_udp_send_result {
    /// It went out whole: its slot is free.
    Sent = 0,
    /// The stack will not take it now (lwIP's `ERR_MEM`): it waits; call again later.
    WouldBlock = 1,
    /// The stack refused it for good: dropped and counted.
    Failed = 2,
}

/// What became of one `echoloop_udp_recv`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum echoloop_udp_verdict {
    /// Queued for its echo: call `echoloop_udp_send`.
    Queued,
    /// The callback received nothing.
    Nothing,
    /// Dropped: from a guarded port (chargen, DNS...) or a broadcast or multicast source.
    DroppedLoopGuard,
    /// Dropped: longer than a slot.
    DroppedTruncated,
    /// Dropped: every slot held an echo waiting.
    DroppedQueueFull,
    /// Dropped: its source had spent its budget.
    DroppedFloodGuard,
}

/// What one `echoloop_udp_send` did.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum echoloop_udp_sent {
    /// No echo was waiting; the callback was not called.
    Idle,
    /// The oldest echo went out.
    Sent,
    /// The stack would not take it: it waits.
    WouldBlock,
    /// The stack refused it: dropped.
    Failed,
}

/// What a UDP echo has done, and holds now.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct echoloop_udp_stats {
    /// Datagrams received (echoed, waiting or dropped).
    pub received: u64,
    /// Echoes sent.
    pub echoed: u64,
    /// Bytes of datagrams queued.
    pub bytes_in: u64,
    /// Bytes of echoes sent.
    pub bytes_out: u64,
    /// Dropped by the loop guard.
    pub dropped_loop_guard: u64,
    /// Dropped as longer than a slot.
    pub dropped_truncated: u64,
    /// Dropped with every slot full.
    pub dropped_queue_full: u64,
    /// Dropped by the flood guard.
    pub dropped_flood_guard: u64,
    /// Echoes the stack refused.
    pub dropped_send_failed: u64,
    /// Sources the flood guard forgot to make room for new ones.
    pub sources_evicted: u64,
    /// The most echoes that waited at once.
    pub peak_queued: u64,
    /// Echoes waiting now.
    pub queued: u64,
}

/// Runs `f` on a live UDP echo and returns its code.
///
/// # Safety
/// As `raw::with`: `udp` is NULL or from `echoloop_udp_init`.
unsafe fn run(
    udp: *mut echoloop_udp,
    f: impl FnOnce(&mut UdpServer) -> Result<(), echoloop_result>,
) -> echoloop_result {
    code(raw::with::<UdpServer, ()>(udp.cast(), f))
}

fn sizes(config: &echoloop_udp_config) -> Result<(usize, usize, usize), echoloop_result> {
    let as_usize = |n: u32| usize::try_from(n).map_err(|_| echoloop_result::BadConfig);
    Ok((
        as_usize(config.slots)?,
        as_usize(config.slot_size)?,
        as_usize(config.sources)?,
    ))
}

/// Fills `*config` with the core's default guards (4,096 datagrams and 4 MiB a second
/// per source, bursts of 512 and 256 KiB, a budget per address and port, hash key 0);
/// the sizes are 0, to be set.
///
/// # Safety
/// `config` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn echoloop_udp_config_default(
    config: *mut echoloop_udp_config,
) -> echoloop_result {
    let d = UdpConfig::new();
    code(raw::put(
        config,
        echoloop_udp_config {
            datagrams_per_sec: d.datagrams.per_sec,
            datagrams_burst: d.datagrams.burst,
            bytes_per_sec: d.bytes.per_sec,
            bytes_burst: d.bytes.burst,
            source_by_address: matches!(d.source_key, SourceKey::Address),
            hash_key: d.hash_key,
            ..echoloop_udp_config::default()
        },
    ))
}

/// Writes to `*size` the bytes of memory a UDP echo of `*config` needs.
///
/// # Safety
/// `config` and `size` are NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn echoloop_udp_size(
    config: *const echoloop_udp_config,
    size: *mut usize,
) -> echoloop_result {
    code((|| {
        let (slots, slot_size, sources) = sizes(&raw::get(config)?)?;
        let layout = layout::udp(slots, slot_size, sources).ok_or(echoloop_result::BadConfig)?;
        raw::put(size, layout.total)
    })())
}

/// Makes a UDP echo in `mem` (`len` bytes aligned to `ECHOLOOP_ALIGN`, at least
/// `echoloop_udp_size` bytes) and writes its handle to `*udp`. The memory is the echo's
/// until `echoloop_udp_deinit`. The loop guard's ports are the core's (`GUARDED_PORTS`:
/// echo, discard, daytime, chargen, time, DNS, NTP and others that answer a datagram).
///
/// # Safety
/// As for `echoloop_server_init`.
#[no_mangle]
pub unsafe extern "C" fn echoloop_udp_init(
    mem: *mut c_void,
    len: usize,
    config: *const echoloop_udp_config,
    udp: *mut *mut echoloop_udp,
) -> echoloop_result {
    code((|| {
        let config = raw::get(config)?;
        let (slots, slot_size, sources) = sizes(&config)?;
        if udp.is_null() {
            return Err(echoloop_result::NullPointer);
        }
        let layout = layout::udp(slots, slot_size, sources).ok_or(echoloop_result::BadConfig)?;
        let base = raw::check_block(mem, len, layout.total)?;
        let bytes_len = slots.saturating_mul(slot_size);
        let slot_table = raw::table(base, layout.slots, slots, DatagramSlot::EMPTY);
        let source_table = raw::table(base, layout.sources, sources, SourceSlot::EMPTY);
        let bytes = raw::table(base, layout.bytes, bytes_len, 0u8);
        let storage = UdpSliceStorage::new(slot_table, bytes, slot_size, source_table)?;
        let mut core_config = UdpConfig::new();
        core_config.datagrams = Budget {
            per_sec: config.datagrams_per_sec,
            burst: config.datagrams_burst,
        };
        core_config.bytes = Budget {
            per_sec: config.bytes_per_sec,
            burst: config.bytes_burst,
        };
        core_config.source_key = if config.source_by_address {
            SourceKey::Address
        } else {
            SourceKey::Endpoint
        };
        core_config.hash_key = config.hash_key;
        let echo = UdpEcho::new(core_config, storage)?;
        let handle = raw::install(base, echo);
        raw::put(udp, handle.cast::<echoloop_udp>())
    })())
}

/// Ends a UDP echo: its handle is dead from now on, its memory the caller's again; echoes
/// still waiting are forgotten.
///
/// # Safety
/// `udp` is NULL or from `echoloop_udp_init`, its memory not yet reused.
#[no_mangle]
pub unsafe extern "C" fn echoloop_udp_deinit(udp: *mut echoloop_udp) -> echoloop_result {
    code(raw::retire::<UdpServer>(udp.cast()))
}

/// Lends `recv` the free slot: `recv(user, buf, len, from, datagram_len)` receives one
/// datagram into `buf` (at most `len` bytes, `len` being the slot size), writes its
/// sender to `*from` and its length to `*datagram_len`, and returns an
/// `echoloop_udp_recv_kind`. The guards then queue it or drop it; what became of it is
/// written to `*verdict` (if not NULL). A datagram longer than the slot may be reported as
/// `DATAGRAM` with its real length, or as `TRUNCATED`: it is dropped either way.
///
/// `BAD_ARGUMENT`: the callback returned no kind, or a sender whose family is not 4 or 6;
/// nothing was queued.
///
/// # Safety
/// `udp` is NULL or from `echoloop_udp_init`; `verdict` is NULL or valid; `recv` follows
/// the header's rules for callbacks.
#[no_mangle]
pub unsafe extern "C" fn echoloop_udp_recv(
    udp: *mut echoloop_udp,
    now_ms: u64,
    recv: echoloop_udp_recv_fn,
    user: *mut c_void,
    verdict: *mut echoloop_udp_verdict,
) -> echoloop_result {
    let Some(recv) = recv else {
        return echoloop_result::NullPointer;
    };
    run(udp, |echo| {
        let mut bad = false;
        let v = echo.recv_with(Instant::from_millis(now_ms), |buf| {
            let mut from = echoloop_endpoint::default();
            let mut len = 0usize;
            let kind = raw::call_udp_recv(recv, user, buf, &mut from, &mut len);
            let from = from.to_core();
            match (kind, from) {
                (k, _) if k == echoloop_udp_recv_kind::Nothing as u32 => RecvResult::Nothing,
                (k, Some(from)) if k == echoloop_udp_recv_kind::Datagram as u32 => {
                    RecvResult::Datagram { from, len }
                }
                (k, Some(from)) if k == echoloop_udp_recv_kind::Truncated as u32 => {
                    RecvResult::Truncated { from }
                }
                _ => {
                    bad = true;
                    RecvResult::Nothing
                }
            }
        });
        if bad {
            return Err(echoloop_result::BadArgument);
        }
        let v = match v {
            Verdict::Queued => echoloop_udp_verdict::Queued,
            Verdict::Nothing => echoloop_udp_verdict::Nothing,
            Verdict::Dropped(DropReason::LoopGuard) => echoloop_udp_verdict::DroppedLoopGuard,
            Verdict::Dropped(DropReason::Truncated) => echoloop_udp_verdict::DroppedTruncated,
            Verdict::Dropped(DropReason::QueueFull) => echoloop_udp_verdict::DroppedQueueFull,
            Verdict::Dropped(DropReason::FloodGuard) => echoloop_udp_verdict::DroppedFloodGuard,
            // A receive never fails a send; the core's type has one reason list for both.
            Verdict::Dropped(DropReason::SendFailed) => echoloop_udp_verdict::Nothing,
        };
        raw::put_opt(verdict, v)
    })
}

/// Lends `send` the oldest waiting echo: `send(user, buf, len, to)` sends `len` bytes
/// (possibly 0: an empty datagram is echoed too) to `*to` as one datagram and returns an
/// `echoloop_udp_send_result`. What happened is written to `*sent` (if not NULL):
/// `IDLE` when nothing waited. Call it while it says `SENT`; after `WOULD_BLOCK`, call it
/// again later (lwIP: from a timer).
///
/// `BAD_ARGUMENT`: the callback returned no result; the echo still waits.
///
/// # Safety
/// `udp` is NULL or from `echoloop_udp_init`; `sent` is NULL or valid; `send` follows the
/// header's rules for callbacks.
#[no_mangle]
pub unsafe extern "C" fn echoloop_udp_send(
    udp: *mut echoloop_udp,
    send: echoloop_udp_send_fn,
    user: *mut c_void,
    sent: *mut echoloop_udp_sent,
) -> echoloop_result {
    let Some(send) = send else {
        return echoloop_result::NullPointer;
    };
    run(udp, |echo| {
        let mut bad = false;
        let outcome = echo.send_with(|bytes, to| {
            let to = echoloop_endpoint::from_core(to);
            match raw::call_udp_send(send, user, bytes, &to) {
                r if r == echoloop_udp_send_result::Sent as u32 => SendResult::Sent,
                r if r == echoloop_udp_send_result::WouldBlock as u32 => SendResult::WouldBlock,
                r if r == echoloop_udp_send_result::Failed as u32 => SendResult::Failed,
                _ => {
                    bad = true;
                    SendResult::WouldBlock
                }
            }
        });
        if bad {
            return Err(echoloop_result::BadArgument);
        }
        let outcome = match outcome {
            None => echoloop_udp_sent::Idle,
            Some(SendResult::Sent) => echoloop_udp_sent::Sent,
            Some(SendResult::WouldBlock) => echoloop_udp_sent::WouldBlock,
            Some(SendResult::Failed) => echoloop_udp_sent::Failed,
        };
        raw::put_opt(sent, outcome)
    })
}

/// Writes the echo's counters to `*stats`.
///
/// # Safety
/// `udp` is NULL or from `echoloop_udp_init`; `stats` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn echoloop_udp_stats_get(
    udp: *mut echoloop_udp,
    stats: *mut echoloop_udp_stats,
) -> echoloop_result {
    if stats.is_null() {
        return echoloop_result::NullPointer;
    }
    run(udp, |echo| {
        let s = echo.stats();
        let d = s.dropped;
        raw::put(
            stats,
            echoloop_udp_stats {
                received: s.received,
                echoed: s.echoed,
                bytes_in: s.bytes_in,
                bytes_out: s.bytes_out,
                dropped_loop_guard: d.loop_guard,
                dropped_truncated: d.truncated,
                dropped_queue_full: d.queue_full,
                dropped_flood_guard: d.flood_guard,
                dropped_send_failed: d.send_failed,
                sources_evicted: s.sources_evicted,
                peak_queued: s.peak_queued as u64,
                queued: echo.queued() as u64,
            },
        )
    })
}
