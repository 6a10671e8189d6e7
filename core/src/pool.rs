//! The buffer pool: which of the `buffers` buffers are free, and which went cold.
//!
//! Free buffers are a stack of indices (the storage's `free` slice), so the buffer freed
//! last is reused first: the same few warm buffers serve everyone, as lwIP's pbuf pools
//! do. Buffers never used yet are handed out in index order by a counter instead, so the
//! stack needs no initialisation and a pool is touched from its low end only as far as
//! it is needed. A low-water mark of the stack tells which free buffers have not been
//! taken since they were last reported: see [`Pool::reclaimable`].

use core::ops::Range;

/// The pool's counters; the stack itself is the storage's `free` slice.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) struct Pool {
    /// Buffers in the pool.
    pub(crate) buffers: u16,
    /// Entries on the free stack.
    top: u16,
    /// Buffers at this index and above were never handed out.
    fresh: u16,
    /// The stack's entries below this were reported by [`Pool::reclaimable`] and have not
    /// been taken since.
    cold: u16,
}

impl Pool {
    pub(crate) const fn new(buffers: u16) -> Self {
        Pool {
            buffers,
            top: 0,
            fresh: 0,
            cold: 0,
        }
    }

    /// Buffers that can be taken now.
    pub(crate) const fn available(&self) -> usize {
        self.top as usize + self.buffers.saturating_sub(self.fresh) as usize
    }

    /// The warmest free buffer: the one freed last, or else one never used.
    pub(crate) fn take(&mut self, free: &[u16]) -> Option<u16> {
        if self.top > 0 {
            self.top -= 1;
            self.cold = self.cold.min(self.top);
            let k = free.get(usize::from(self.top)).copied();
            debug_assert!(k.is_some(), "free stack shorter than the pool");
            return k;
        }
        if self.fresh < self.buffers {
            self.fresh += 1;
            return Some(self.fresh - 1);
        }
        None
    }

    /// The free buffers: the stack's entries, and the range never handed out.
    pub(crate) fn free_entries<'a>(&self, free: &'a [u16]) -> (&'a [u16], Range<u16>) {
        let stack = free.get(..usize::from(self.top)).unwrap_or_default();
        (stack, self.fresh..self.buffers)
    }

    /// Puts buffer `k` back on top of the stack.
    pub(crate) fn give(&mut self, free: &mut [u16], k: u16) {
        match free.get_mut(usize::from(self.top)) {
            Some(entry) => {
                *entry = k;
                self.top += 1;
            }
            None => debug_assert!(false, "more buffers freed than the pool holds"),
        }
    }

    /// Stack positions of the free buffers below the top `keep` entries that were not
    /// reported since they were last freed; they count as reported from now on. O(what it
    /// returns): the positions below the low-water mark were reported before.
    pub(crate) fn reclaimable(&mut self, keep: usize) -> Range<usize> {
        let keep = u16::try_from(keep).unwrap_or(u16::MAX);
        let limit = self.top.saturating_sub(keep);
        if limit <= self.cold {
            return 0..0;
        }
        let newly = usize::from(self.cold)..usize::from(limit);
        self.cold = limit;
        newly
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_buffers_in_order_then_last_in_first_out() {
        let mut free = [0u16; 3];
        let mut p = Pool::new(3);
        assert_eq!(p.available(), 3);
        assert_eq!(p.take(&free), Some(0));
        assert_eq!(p.take(&free), Some(1));
        p.give(&mut free, 0);
        assert_eq!(p.available(), 2);
        assert_eq!(p.take(&free), Some(0), "the warm buffer before a fresh one");
        assert_eq!(p.take(&free), Some(2));
        assert_eq!(p.take(&free), None);
        p.give(&mut free, 2);
        p.give(&mut free, 1);
        assert_eq!(p.take(&free), Some(1), "last in, first out");
    }

    #[test]
    fn reclaimable_reports_each_cold_buffer_once() {
        let mut free = [0u16; 4];
        let mut p = Pool::new(4);
        let held: Vec<u16> = (0..4).map(|_| p.take(&free).unwrap()).collect();
        for &k in &held {
            p.give(&mut free, k); // stack: 0 1 2 3 (3 on top)
        }
        assert_eq!(p.reclaimable(1), 0..3, "all but the warmest");
        assert_eq!(p.reclaimable(1), 0..0, "nothing new since");
        assert_eq!(p.reclaimable(0), 3..4);
        // Take two (the stack drops to 2 entries) and give them back: only they are new.
        let a = p.take(&free).unwrap();
        let b = p.take(&free).unwrap();
        assert_eq!((a, b), (3, 2));
        p.give(&mut free, b);
        p.give(&mut free, a);
        assert_eq!(p.reclaimable(0), 2..4);
        assert_eq!(&free[2..4], &[2, 3]);
        assert_eq!(p.reclaimable(usize::MAX), 0..0);
    }
}
