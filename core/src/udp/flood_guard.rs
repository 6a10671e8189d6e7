//! The flood guard: a token bucket per source, in a fixed table of recent sources.
//!
//! The table is set-associative, like a CPU cache: a keyed hash of the source picks a set
//! of [`WAYS`] slots, the source is looked for there only, and a new source takes an empty
//! slot of its set or else the one whose source was heard from longest ago. Lookup and
//! eviction are O(1) whatever the table's size; the hash is keyed by the driver
//! ([`UdpConfig::hash_key`](super::UdpConfig::hash_key)) so that a sender cannot aim many
//! sources at one set without knowing the key.
//!
//! Tokens are kept in thousandths, so a bucket refills by `elapsed_ms × per_sec`
//! thousandths with integer arithmetic only, exactly, and saturating.

use super::endpoint::{Address, Endpoint};
use crate::Instant;

/// Slots per set.
pub const WAYS: usize = 4;

/// A rate and a burst: a bucket of `burst` tokens that refills at `per_sec` a second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Budget {
    /// Tokens added per second.
    pub per_sec: u32,
    /// The bucket's size: the most spent at once after a quiet spell.
    pub burst: u32,
}

impl Budget {
    /// No limit at all.
    pub const UNLIMITED: Budget = Budget {
        per_sec: u32::MAX,
        burst: u32::MAX,
    };

    fn cap(self) -> u64 {
        u64::from(self.burst).saturating_mul(1000)
    }
}

/// One source's slot in the flood guard's table. Opaque; [`SourceSlot::EMPTY`] to fill a
/// table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SourceSlot {
    source: Endpoint,
    used: bool,
    last: Instant,
    datagrams: u64,
    bytes: u64,
}

impl SourceSlot {
    /// A slot with no source.
    pub const EMPTY: SourceSlot = SourceSlot {
        source: Endpoint::UNSPECIFIED,
        used: false,
        last: Instant::ZERO,
        datagrams: 0,
        bytes: 0,
    };
}

/// What the flood guard decided about one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Within budget (and charged), or not (and not charged).
    pub allowed: bool,
    /// Another source lost its slot to this one.
    pub evicted: bool,
}

/// Charges `len` bytes and one datagram to `source`'s bucket at `now`.
pub(crate) fn charge(
    table: &mut [SourceSlot],
    key: u64,
    source: Endpoint,
    len: usize,
    now: Instant,
    datagrams: Budget,
    bytes: Budget,
) -> Verdict {
    // No table (refused by the storage check): nothing to remember, so nothing to limit.
    let Some((slot, evicted)) = set_of(table, key, &source)
        .and_then(|set| find_or_evict(set, source, now, datagrams, bytes))
    else {
        return Verdict {
            allowed: true,
            evicted: false,
        };
    };
    refill(slot, now, datagrams, bytes);
    let cost_d = 1000;
    let cost_b = (len as u64).saturating_mul(1000);
    let allowed = slot.datagrams >= cost_d && slot.bytes >= cost_b;
    if allowed {
        slot.datagrams -= cost_d;
        slot.bytes -= cost_b;
    }
    Verdict { allowed, evicted }
}

fn set_of<'t>(
    table: &'t mut [SourceSlot],
    key: u64,
    source: &Endpoint,
) -> Option<&'t mut [SourceSlot]> {
    let ways = WAYS.min(table.len());
    let sets = table.len().checked_div(ways)?;
    let set = usize::try_from(hash(key, source) % sets as u64).ok()?;
    let start = set.checked_mul(ways)?;
    table.get_mut(start..start.checked_add(ways)?)
}

/// The source's slot, or a fresh one for it with a full bucket: an empty slot of the set,
/// else the stalest (true: a source was evicted). `None` only for an empty set.
fn find_or_evict(
    set: &mut [SourceSlot],
    source: Endpoint,
    now: Instant,
    datagrams: Budget,
    bytes: Budget,
) -> Option<(&mut SourceSlot, bool)> {
    let mut victim = 0;
    let mut found = None;
    for (i, slot) in set.iter().enumerate() {
        if slot.used && slot.source == source {
            found = Some(i);
            break;
        }
        if set.get(victim).is_some_and(|v| staler(slot, v)) {
            victim = i;
        }
    }
    let fresh = found.is_none();
    let slot = set.get_mut(found.unwrap_or(victim))?;
    let evicted = fresh && slot.used;
    if fresh {
        *slot = SourceSlot {
            source,
            used: true,
            last: now,
            datagrams: datagrams.cap(),
            bytes: bytes.cap(),
        };
    }
    Some((slot, evicted))
}

/// An empty slot is the stalest of all; otherwise the one heard from longest ago.
fn staler(a: &SourceSlot, b: &SourceSlot) -> bool {
    match (a.used, b.used) {
        (false, true) => true,
        (true, false) => false,
        _ => a.last < b.last,
    }
}

/// Adds the tokens earned since the slot was last charged, up to the burst.
fn refill(slot: &mut SourceSlot, now: Instant, datagrams: Budget, bytes: Budget) {
    let elapsed = now.saturating_since(slot.last).as_millis();
    slot.datagrams = earn(slot.datagrams, elapsed, datagrams);
    slot.bytes = earn(slot.bytes, elapsed, bytes);
    // A clock that went backwards keeps the later time: no token is earned twice.
    slot.last = slot.last.max(now);
}

fn earn(tokens: u64, elapsed_ms: u64, budget: Budget) -> u64 {
    tokens
        .saturating_add(elapsed_ms.saturating_mul(u64::from(budget.per_sec)))
        .min(budget.cap())
}

/// A keyed mix of the source's bytes (64-bit multiply-xorshift, the finaliser of
/// SplitMix64 after each word): uniform enough to spread sources over sets, and keyed.
fn hash(key: u64, source: &Endpoint) -> u64 {
    let (words, family) = match source.addr {
        Address::V4(o) => ([u64::from(u32::from_be_bytes(o)), 0], 4),
        Address::V6(o) => (
            [
                u64::from_be_bytes([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]]),
                u64::from_be_bytes([o[8], o[9], o[10], o[11], o[12], o[13], o[14], o[15]]),
            ],
            6,
        ),
    };
    let mut h = key ^ (family << 16 | u64::from(source.port));
    for w in words {
        h = mix(h ^ w);
    }
    mix(h ^ key.rotate_left(32))
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Budget = Budget {
        per_sec: 10,
        burst: 2,
    };
    const B: Budget = Budget {
        per_sec: 1000,
        burst: 1500,
    };

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut table = [SourceSlot::EMPTY; 8];
        let a = Endpoint::v4([10, 0, 0, 1], 4000);
        let ok = |t: &mut [SourceSlot], ms, len| charge(t, 1, a, len, at(ms), D, B).allowed;
        assert!(ok(&mut table, 0, 10));
        assert!(ok(&mut table, 0, 10));
        assert!(!ok(&mut table, 0, 10), "burst of 2 datagrams spent");
        assert!(!ok(&mut table, 99, 10), "one datagram a 100 ms");
        assert!(ok(&mut table, 100, 10));
        // Bytes: 1500 burst, 1 a millisecond; full again after a second.
        assert!(!ok(&mut table, 1000, 1501), "over the byte budget");
        assert!(ok(&mut table, 1000, 1500));
        assert!(!ok(&mut table, 1000, 1), "no bytes left");
        assert!(ok(&mut table, 1001, 1), "one byte a millisecond");
    }

    #[test]
    fn sources_have_their_own_buckets() {
        let mut table = [SourceSlot::EMPTY; 8];
        let a = Endpoint::v4([10, 0, 0, 1], 4000);
        let b = Endpoint::v4([10, 0, 0, 1], 4001);
        for _ in 0..2 {
            assert!(charge(&mut table, 1, a, 1, at(0), D, B).allowed);
        }
        assert!(!charge(&mut table, 1, a, 1, at(0), D, B).allowed);
        assert!(charge(&mut table, 1, b, 1, at(0), D, B).allowed);
    }

    #[test]
    fn the_stalest_of_a_set_is_evicted() {
        // One set of four ways: every source lands in it.
        let mut table = [SourceSlot::EMPTY; 4];
        let src = |p| Endpoint::v6([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], p);
        for p in 0..4u16 {
            let v = charge(&mut table, 7, src(1000 + p), 1, at(u64::from(p)), D, B);
            assert!(v.allowed && !v.evicted);
        }
        // Source 1000 was heard from first: it goes; a fifth takes its slot.
        let v = charge(&mut table, 7, src(2000), 1, at(10), D, B);
        assert!(v.allowed && v.evicted);
        assert!(!table.iter().any(|s| s.source == src(1000)));
        assert!(table.iter().any(|s| s.source == src(1001)));
    }

    #[test]
    fn a_backwards_clock_earns_nothing() {
        let mut table = [SourceSlot::EMPTY; 4];
        let a = Endpoint::v4([10, 0, 0, 1], 4000);
        for _ in 0..2 {
            assert!(charge(&mut table, 1, a, 1, at(5000), D, B).allowed);
        }
        assert!(!charge(&mut table, 1, a, 1, at(0), D, B).allowed);
        assert!(!charge(&mut table, 1, a, 1, at(5000), D, B).allowed);
    }

    #[test]
    fn unlimited_never_refuses() {
        let mut table = [SourceSlot::EMPTY; 4];
        let a = Endpoint::v4([10, 0, 0, 1], 4000);
        for _ in 0..10_000 {
            let v = charge(
                &mut table,
                1,
                a,
                65_507,
                at(0),
                Budget::UNLIMITED,
                Budget::UNLIMITED,
            );
            assert!(v.allowed);
        }
    }

    #[test]
    fn hash_spreads_and_depends_on_the_key() {
        let a = Endpoint::v4([10, 0, 0, 1], 4000);
        assert_ne!(hash(1, &a), hash(2, &a));
        let mut seen = [0u32; 16];
        for p in 0..1600u16 {
            seen[(hash(9, &Endpoint::v4([127, 0, 0, 1], 40000 + p)) % 16) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (50..150).contains(&n)), "{seen:?}");
    }
}
