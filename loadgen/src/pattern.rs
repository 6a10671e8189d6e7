//! The bytes the load generator sends: one pseudo-random pattern made at start, read
//! cyclically from an offset that differs per connection and per message. Sending is a
//! slice of it (no copy), checking an echo is a comparison with it (a `memcmp`).

/// The pattern.
pub struct Pattern {
    bytes: Box<[u8]>,
}

/// SplitMix64: a fast, well-mixed sequence from any seed.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Pattern {
    /// A pattern long enough that a message of `size` bytes has many possible starts.
    /// Its length is odd, so a stream of any power-of-two chunk size never lines up with it.
    pub fn new(size: usize) -> Self {
        let len = (2 * size).max(1 << 20) + 4093;
        let mut bytes = vec![0u8; len].into_boxed_slice();
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            let word = splitmix(i as u64).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Pattern { bytes }
    }

    /// Where message `seq` of connection `conn` starts.
    pub fn start(&self, conn: usize, seq: u64) -> usize {
        (splitmix(((conn as u64) << 40) ^ seq) % self.bytes.len() as u64) as usize
    }

    /// The pattern from `at` (taken cyclically), at most `max` bytes, without wrapping.
    pub fn slice(&self, at: u64, max: usize) -> &[u8] {
        let at = (at % self.bytes.len() as u64) as usize;
        let rest = self.bytes.get(at..).unwrap_or_default();
        rest.get(..max).unwrap_or(rest)
    }

    /// Whether `got` equals the pattern from `at`, cyclically.
    pub fn matches(&self, mut at: u64, mut got: &[u8]) -> bool {
        while !got.is_empty() {
            let want = self.slice(at, got.len());
            let (head, tail) = got.split_at(want.len());
            if head != want {
                return false;
            }
            at += want.len() as u64;
            got = tail;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_wrap_and_match() {
        let p = Pattern::new(64);
        let len = p.bytes.len() as u64;
        let tail = p.slice(len - 3, 10);
        assert_eq!(tail.len(), 3);
        let mut across = tail.to_vec();
        across.extend_from_slice(p.slice(0, 7));
        assert!(p.matches(len - 3, &across));
        across[5] ^= 1;
        assert!(!p.matches(len - 3, &across));
    }

    #[test]
    fn messages_differ_per_connection_and_sequence() {
        let p = Pattern::new(64);
        let a = p.slice(p.start(0, 0) as u64, 64);
        let b = p.slice(p.start(1, 0) as u64, 64);
        let c = p.slice(p.start(0, 1) as u64, 64);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }
}
