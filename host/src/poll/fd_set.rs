//! Descriptor sets for `select(2)` of any size: bitmaps of words the host owns, grown to
//! the highest descriptor watched (host rule 1).
//!
//! libc's `fd_set` holds descriptors below `FD_SETSIZE` (1024) only, and its macros are
//! no way past it: glibc's fortified `FD_SET` aborts the process on a descriptor at or
//! above 1024, and the `libc` crate's index a fixed array. The kernel does not share the
//! limit: it reads as many bits as `nfds` says, from whatever memory it is given (Linux,
//! FreeBSD; macOS through the entry point [`sys::select`](crate::sys::select) links). So
//! the set here is a `Vec` of the very words an `fd_set` is made of, laid out as the C
//! macros lay them out (descriptor `fd` is bit `fd % BITS` of word `fd / BITS`), and long
//! enough for its highest descriptor. It only grows: once a round has watched its highest
//! descriptor, clearing and refilling the set allocates nothing. An empty set is simply a
//! zeroed one.

use std::os::fd::RawFd;

/// One word of the bitmap: the C library's `fd_mask`. Darwin's is a 32-bit integer; glibc,
/// musl and FreeBSD use a `long`. Same size and bit order, so the kernel reads our words
/// exactly as it would read an `fd_set`'s.
#[cfg(target_vendor = "apple")]
type Word = u32;
#[cfg(not(target_vendor = "apple"))]
type Word = libc::c_ulong;

/// Descriptors per word.
const BITS: usize = Word::BITS as usize;

/// How many words hold descriptors `0..n`.
fn words_for(n: usize) -> usize {
    n.div_ceil(BITS)
}

/// A set of file descriptors for `select`, of any size.
#[derive(Default, Debug)]
pub struct FdSet {
    /// Zero beyond the word that holds `max`: clearing touches only the words in use.
    words: Vec<Word>,
    max: RawFd,
}

impl FdSet {
    /// An empty set. It allocates on its first [`insert`](FdSet::insert).
    pub const fn new() -> Self {
        FdSet {
            words: Vec::new(),
            max: -1,
        }
    }

    /// Empties the set; its memory is kept for the next round.
    pub fn clear(&mut self) {
        let used = self.used_words();
        if let Some(words) = self.words.get_mut(..used) {
            words.fill(0);
        }
        self.max = -1;
    }

    /// Adds `fd`, growing the set if `fd` is beyond it. A negative descriptor (never an
    /// open one) is ignored.
    pub fn insert(&mut self, fd: RawFd) {
        let Ok(i) = usize::try_from(fd) else {
            return;
        };
        let (k, bit) = (i / BITS, i % BITS);
        if k >= self.words.len() {
            // `resize` reserves at least double the old capacity: growing to a high
            // descriptor one connection at a time allocates a logarithmic number of times.
            self.words.resize(k + 1, 0);
        }
        if let Some(word) = self.words.get_mut(k) {
            *word |= 1 << bit;
        }
        self.max = self.max.max(fd);
    }

    /// Whether `fd` is in the set.
    pub fn contains(&self, fd: RawFd) -> bool {
        let Ok(i) = usize::try_from(fd) else {
            return false;
        };
        self.word(i / BITS) & (1 << (i % BITS)) != 0
    }

    /// The highest descriptor inserted since the last clear, -1 if none.
    pub fn max(&self) -> RawFd {
        self.max
    }

    /// The descriptors in the set, in increasing order.
    pub fn iter(&self) -> Ready<'_> {
        ready(self, self, self)
    }

    /// Word `k` of the bitmap; zero beyond its end.
    fn word(&self, k: usize) -> Word {
        self.words.get(k).copied().unwrap_or(0)
    }

    /// Words holding `0..=max`.
    fn used_words(&self) -> usize {
        words_for(usize::try_from(self.max + 1).unwrap_or(0))
    }

    /// The set as `select` takes it, for a call with this `nfds`: grown (with zeroes) to at
    /// least `nfds` bits, which the kernel reads and overwrites; null when `nfds` is 0.
    pub(crate) fn as_raw(&mut self, nfds: RawFd) -> *mut libc::fd_set {
        let words = words_for(usize::try_from(nfds).unwrap_or(0));
        if words == 0 {
            return std::ptr::null_mut();
        }
        if self.words.len() < words {
            self.words.resize(words, 0);
        }
        // `fd_set` is a struct holding an array of these words, so a pointer to the first
        // has the layout and alignment the kernel expects.
        self.words.as_mut_ptr().cast()
    }
}

impl Clone for FdSet {
    fn clone(&self) -> Self {
        FdSet {
            words: self.words.clone(),
            max: self.max,
        }
    }

    /// Reuses this set's memory: copying the sets before each look allocates nothing once
    /// both are grown.
    fn clone_from(&mut self, source: &Self) {
        self.words.clone_from(&source.words);
        self.max = source.max;
    }
}

/// The descriptors in any of the three sets, in increasing order. After `select` these are
/// the ready ones: one step per word up to the highest watched, plus one per ready
/// descriptor, however many others are watched.
pub fn ready<'a>(read: &'a FdSet, write: &'a FdSet, except: &'a FdSet) -> Ready<'a> {
    Ready {
        sets: [read, write, except],
        words: read
            .used_words()
            .max(write.used_words())
            .max(except.used_words()),
        next: 0,
        bits: 0,
        base: 0,
    }
}

/// Iterator of [`ready`] and [`FdSet::iter`].
pub struct Ready<'a> {
    sets: [&'a FdSet; 3],
    words: usize,
    next: usize,
    bits: Word,
    base: usize,
}

impl Iterator for Ready<'_> {
    type Item = RawFd;

    fn next(&mut self) -> Option<RawFd> {
        while self.bits == 0 {
            if self.next >= self.words {
                return None;
            }
            let [r, w, e] = self.sets;
            let k = self.next;
            self.bits = r.word(k) | w.word(k) | e.word(k);
            self.base = k * BITS;
            self.next += 1;
        }
        let i = self.base + self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        RawFd::try_from(i).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Descriptors on both sides of every word boundary a 32- or 64-bit word has near them,
    /// and far beyond `FD_SETSIZE`.
    const EDGES: [RawFd; 10] = [0, 31, 32, 63, 64, 1023, 1024, 1025, 4096, 20_000];

    #[test]
    fn holds_descriptors_far_beyond_fd_setsize() {
        let mut set = FdSet::new();
        assert_eq!(set.iter().count(), 0);
        for fd in EDGES {
            assert!(!set.contains(fd));
            set.insert(fd);
            assert!(set.contains(fd), "{fd}");
        }
        for fd in [
            1,
            30,
            33,
            62,
            65,
            1022,
            1026,
            4095,
            4097,
            19_999,
            20_001,
            1 << 20,
        ] {
            assert!(!set.contains(fd), "{fd} was never inserted");
        }
        assert!(!set.contains(-1));
        assert_eq!(set.max(), 20_000);
        assert_eq!(set.iter().collect::<Vec<_>>(), EDGES);
    }

    #[test]
    fn clearing_keeps_the_memory_and_forgets_every_descriptor() {
        let mut set = FdSet::new();
        for fd in EDGES {
            set.insert(fd);
        }
        let words = set.words.as_ptr();
        set.clear();
        assert_eq!(set.max(), -1);
        assert_eq!(set.iter().count(), 0);
        assert!(EDGES.iter().all(|&fd| !set.contains(fd)));
        assert!(set.words.iter().all(|&w| w == 0));
        set.insert(1024);
        assert_eq!(set.words.as_ptr(), words, "refilling reallocated");
        assert_eq!(set.iter().collect::<Vec<_>>(), [1024]);
    }

    #[test]
    fn a_negative_descriptor_is_ignored() {
        let mut set = FdSet::new();
        set.insert(-1);
        assert_eq!(set.max(), -1);
        assert_eq!(set.iter().count(), 0);
    }

    #[test]
    fn ready_lists_the_union_of_the_sets_in_order() {
        let (mut r, mut w, mut e) = (FdSet::new(), FdSet::new(), FdSet::new());
        assert_eq!(ready(&r, &w, &e).count(), 0);
        for fd in [0, 63, 500, 1023, 1024, 20_000] {
            r.insert(fd);
        }
        for fd in [64, 500, 900, 4096] {
            w.insert(fd);
        }
        e.insert(65);
        let got: Vec<RawFd> = ready(&r, &w, &e).collect();
        assert_eq!(got, [0, 63, 64, 65, 500, 900, 1023, 1024, 4096, 20_000]);
        r.clear();
        w.clear();
        let got: Vec<RawFd> = ready(&r, &w, &e).collect();
        assert_eq!(got, [65]);
    }

    #[test]
    fn the_raw_set_covers_nfds_and_clone_from_reuses_memory() {
        let mut set = FdSet::new();
        assert!(set.as_raw(0).is_null());
        set.insert(3);
        assert!(!set.as_raw(20_001).is_null());
        assert!(set.words.len() * BITS >= 20_001);
        assert_eq!(set.iter().collect::<Vec<_>>(), [3]);
        let mut copy = FdSet::new();
        copy.insert(19_999);
        let words = copy.words.as_ptr();
        copy.clone_from(&set);
        assert_eq!(copy.words.as_ptr(), words, "clone_from reallocated");
        assert_eq!(copy.iter().collect::<Vec<_>>(), [3]);
        assert_eq!(copy.max(), 3);
    }
}
