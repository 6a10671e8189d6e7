//! A reference model of `echoloop_core::udp::UdpEcho`, written the plain way (a `VecDeque`
//! of owned datagrams, a map of token buckets), and a driver that applies the same
//! operation to both and compares them after every step. Shared by the property test
//! (`core/tests/udp.rs`) and the fuzz target (`fuzz/fuzz_targets/udp.rs`).

use std::collections::{HashMap, VecDeque};

use echoloop_core::udp::{
    Budget, DatagramSlot, DropReason, Endpoint, RecvResult, SendResult, SourceSlot, UdpConfig,
    UdpEcho, UdpParts, UdpStorage, Verdict, WAYS,
};
use echoloop_core::Instant;

/// Table sizes, and whether the flood guard is modelled exactly.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Datagram slots (the queue holds one fewer).
    pub slots: usize,
    /// Bytes per slot.
    pub slot_size: usize,
    /// Sources the test sends from. At most [`WAYS`] makes the flood guard exact: the
    /// table is then one set that never evicts. More, and the table is [`WAYS`] slots
    /// that do evict: the model then takes the guard's verdict and checks the rest.
    pub sources: usize,
}

impl Sizes {
    fn exact(&self) -> bool {
        self.sources <= WAYS
    }
}

/// One step.
#[derive(Clone, Debug)]
pub enum Op {
    /// A datagram of `len` bytes (`fill` repeated, then its index) from source `pick`.
    Recv { pick: usize, len: usize, fill: u8 },
    /// A datagram from a loop-guarded port.
    RecvGuarded { len: usize },
    /// A datagram too long for a slot, reported truncated.
    RecvTruncated { pick: usize },
    /// The socket had nothing.
    RecvNothing,
    /// The socket takes the oldest echo, refuses it for now, or refuses it for good.
    Send(SendResult),
    /// The clock moves on.
    Advance { ms: u64 },
}

/// Storage on the heap, as a host's own type would hold it.
pub struct Heap {
    slots: Vec<DatagramSlot>,
    bytes: Vec<u8>,
    slot_size: usize,
    sources: Vec<SourceSlot>,
}

impl UdpStorage for Heap {
    fn parts(&mut self) -> UdpParts<'_> {
        UdpParts {
            slots: &mut self.slots,
            bytes: &mut self.bytes,
            slot_size: self.slot_size,
            sources: &mut self.sources,
        }
    }
}

/// The model beside the real echo.
pub struct Model {
    real: UdpEcho<Heap>,
    sizes: Sizes,
    config: UdpConfig,
    now: u64,
    queue: VecDeque<(Vec<u8>, Endpoint)>,
    /// Tokens in thousandths and the last time, per source.
    buckets: HashMap<Endpoint, (u64, u64, u64)>,
    received: u64,
    echoed: u64,
    dropped: HashMap<&'static str, u64>,
    serial: u64,
}

fn source(pick: usize, sizes: &Sizes) -> Endpoint {
    let i = pick % sizes.sources.max(1);
    Endpoint::v4([192, 0, 2, (i / 200) as u8], 40000 + i as u16)
}

impl Model {
    /// A model and a real echo of these sizes and budgets.
    pub fn new(sizes: Sizes, datagrams: Budget, bytes: Budget, hash_key: u64) -> Self {
        let heap = Heap {
            slots: vec![DatagramSlot::EMPTY; sizes.slots],
            bytes: vec![0; sizes.slots * sizes.slot_size],
            slot_size: sizes.slot_size,
            sources: vec![SourceSlot::EMPTY; WAYS],
        };
        let config = UdpConfig {
            datagrams,
            bytes,
            hash_key,
            ..UdpConfig::new()
        };
        let real = UdpEcho::new(config, heap).expect("sizes the model makes are valid");
        Model {
            real,
            sizes,
            config,
            now: 0,
            queue: VecDeque::new(),
            buckets: HashMap::new(),
            received: 0,
            echoed: 0,
            dropped: HashMap::new(),
            serial: 0,
        }
    }

    /// Applies `op` to both and compares them.
    pub fn apply(&mut self, op: Op) {
        match op {
            Op::Recv { pick, len, fill } => {
                let from = source(pick, &self.sizes);
                self.serial += 1;
                let mut data = vec![fill; len];
                let tag = self.serial.to_le_bytes();
                for (d, t) in data.iter_mut().rev().zip(tag) {
                    *d = t;
                }
                self.recv(from, data);
            }
            Op::RecvGuarded { len } => {
                self.recv(Endpoint::v4([192, 0, 2, 1], 19), vec![1; len]);
            }
            Op::RecvTruncated { pick } => {
                let from = source(pick, &self.sizes);
                let v = self.real.recv_with(Instant::from_millis(self.now), |_| {
                    RecvResult::Truncated { from }
                });
                self.received += 1;
                self.expect_drop(v, DropReason::Truncated);
            }
            Op::RecvNothing => {
                let v = self
                    .real
                    .recv_with(Instant::from_millis(self.now), |_| RecvResult::Nothing);
                assert_eq!(v, Verdict::Nothing);
            }
            Op::Send(result) => self.send(result),
            Op::Advance { ms } => self.now += ms,
        }
        self.check();
    }

    fn recv(&mut self, from: Endpoint, data: Vec<u8>) {
        let v = self.real.recv_with(Instant::from_millis(self.now), |buf| {
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            RecvResult::Datagram {
                from,
                len: data.len(),
            }
        });
        self.received += 1;
        let guarded = self.config.guarded_ports.contains(&from.port) || from.port == 0;
        let expected = if guarded {
            Some(DropReason::LoopGuard)
        } else if data.len() > self.sizes.slot_size {
            Some(DropReason::Truncated)
        } else if self.queue.len() >= self.sizes.slots - 1 {
            Some(DropReason::QueueFull)
        } else if !self.flood_allows(from, data.len(), v) {
            Some(DropReason::FloodGuard)
        } else {
            None
        };
        match expected {
            Some(reason) => self.expect_drop(v, reason),
            None => {
                assert_eq!(v, Verdict::Queued, "{from} {} bytes", data.len());
                self.queue.push_back((data, from));
            }
        }
    }

    /// The bucket's verdict, charging it when it allows. Inexact tables take the real
    /// verdict (an evicted source comes back with a full bucket).
    fn flood_allows(&mut self, from: Endpoint, len: usize, real: Verdict) -> bool {
        if !self.sizes.exact() {
            return real == Verdict::Queued;
        }
        let (d, b) = (self.config.datagrams, self.config.bytes);
        let cap = |budget: Budget| u64::from(budget.burst) * 1000;
        let now = self.now;
        let bucket = self.buckets.entry(from).or_insert((cap(d), cap(b), now));
        let elapsed = now - bucket.2;
        bucket.0 = (bucket.0 + elapsed * u64::from(d.per_sec)).min(cap(d));
        bucket.1 = (bucket.1 + elapsed * u64::from(b.per_sec)).min(cap(b));
        bucket.2 = now;
        let cost = len as u64 * 1000;
        if bucket.0 >= 1000 && bucket.1 >= cost {
            bucket.0 -= 1000;
            bucket.1 -= cost;
            true
        } else {
            false
        }
    }

    fn expect_drop(&mut self, v: Verdict, reason: DropReason) {
        assert_eq!(v, Verdict::Dropped(reason));
        *self.dropped.entry(reason_name(reason)).or_default() += 1;
    }

    fn send(&mut self, result: SendResult) {
        let mut lent = None;
        let got = self.real.send_with(|bytes, to| {
            lent = Some((bytes.to_vec(), to));
            result
        });
        let Some(front) = self.queue.front().cloned() else {
            assert_eq!(got, None, "sent with nothing queued");
            assert_eq!(lent, None);
            return;
        };
        assert_eq!(got, Some(result));
        assert_eq!(
            lent.as_ref(),
            Some(&front),
            "the oldest echo, byte for byte"
        );
        match result {
            SendResult::Sent => {
                self.echoed += 1;
                self.queue.pop_front();
            }
            SendResult::Failed => {
                *self.dropped.entry("send_failed").or_default() += 1;
                self.queue.pop_front();
            }
            SendResult::WouldBlock => {}
        }
    }

    fn check(&self) {
        let s = self.real.stats();
        assert_eq!(self.real.queued(), self.queue.len());
        assert_eq!(self.real.write_interest(), !self.queue.is_empty());
        assert_eq!(s.received, self.received);
        assert_eq!(s.echoed, self.echoed);
        let d = &s.dropped;
        let get = |k| self.dropped.get(k).copied().unwrap_or(0);
        assert_eq!(d.loop_guard, get("loop_guard"));
        assert_eq!(d.truncated, get("truncated"));
        assert_eq!(d.queue_full, get("queue_full"));
        assert_eq!(d.flood_guard, get("flood_guard"));
        assert_eq!(d.send_failed, get("send_failed"));
        assert_eq!(s.received, s.echoed + d.total() + self.queue.len() as u64);
        if self.sizes.exact() {
            assert_eq!(s.sources_evicted, 0);
        }
        assert!(s.peak_queued < self.sizes.slots);
    }

    /// Sends everything left and checks the final counts.
    pub fn finish(&mut self) {
        while !self.queue.is_empty() {
            self.apply(Op::Send(SendResult::Sent));
        }
        self.apply(Op::Send(SendResult::Sent));
    }
}

fn reason_name(reason: DropReason) -> &'static str {
    match reason {
        DropReason::LoopGuard => "loop_guard",
        DropReason::Truncated => "truncated",
        DropReason::QueueFull => "queue_full",
        DropReason::FloodGuard => "flood_guard",
        DropReason::SendFailed => "send_failed",
    }
}
