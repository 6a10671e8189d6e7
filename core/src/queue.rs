//! One connection's queue: a byte ring inside the pool buffer the connection holds.
//!
//! The core lends the ring's free space and its queued bytes as slices, in the manner of
//! smoltcp's `RingBuffer`: the driver receives straight into the free space and sends
//! straight from the queued bytes, and no byte is ever copied by the core. A ring is two
//! numbers (`head`, `len`) in the connection's slot; the bytes are the buffer's. When the
//! queue empties its buffer goes back to the pool, so the next one starts at offset 0 and a
//! request/response peer (the common case) always gets the whole buffer as one slice.

use core::ops::Range;

/// The contiguous free space after the newest byte of a ring of `size` bytes holding `len`
/// bytes from `head`: where the driver receives. Empty only when the ring is full; shorter
/// than the free space when that wraps around the end (the rest is lent next time).
pub(crate) fn free_run(head: usize, len: usize, size: usize) -> Range<usize> {
    if len >= size {
        return 0..0;
    }
    let tail = wrap(head.saturating_add(len), size);
    let end = if tail >= head { size } else { head };
    tail..end
}

/// The oldest queued bytes that are contiguous: what the driver sends. Empty only when the
/// ring is empty.
pub(crate) fn queued_run(head: usize, len: usize, size: usize) -> Range<usize> {
    let to_end = size.saturating_sub(head);
    head..head.saturating_add(len.min(to_end))
}

/// `head` after `n` bytes were sent from it.
pub(crate) fn advance(head: usize, n: usize, size: usize) -> usize {
    wrap(head.saturating_add(n), size)
}

/// `i` wrapped into `[0, size)`, for `i < 2 × size`: no division, so no panicking branch.
fn wrap(i: usize, size: usize) -> usize {
    if i >= size {
        i - size
    } else {
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring over a plain array, moved the way the server moves one.
    struct Ring<const N: usize> {
        buf: [u8; N],
        head: usize,
        len: usize,
    }

    impl<const N: usize> Ring<N> {
        fn new() -> Self {
            Ring {
                buf: [0; N],
                head: 0,
                len: 0,
            }
        }

        fn push(&mut self, mut data: &[u8]) {
            while !data.is_empty() {
                let run = free_run(self.head, self.len, N);
                let n = run.len().min(data.len());
                assert!(n > 0, "ring full");
                self.buf[run.start..run.start + n].copy_from_slice(&data[..n]);
                self.len += n;
                data = &data[n..];
            }
        }

        fn pop(&mut self, n: usize) -> Vec<u8> {
            let mut out = Vec::new();
            while out.len() < n {
                let run = queued_run(self.head, self.len, N);
                let k = run.len().min(n - out.len());
                assert!(k > 0, "ring empty");
                out.extend_from_slice(&self.buf[run.start..run.start + k]);
                self.len -= k;
                self.head = if self.len == 0 {
                    0
                } else {
                    advance(self.head, k, N)
                };
            }
            out
        }
    }

    #[test]
    fn fifo_through_every_wrap_position() {
        const N: usize = 7;
        for start in 0..N {
            for fill in 1..N {
                let mut q = Ring::<N>::new();
                // Park the head at `start` with one marker byte queued, so it does not reset.
                q.push(&vec![0; start + 1]);
                q.pop(start);
                let data: Vec<u8> = (1..=fill as u8).collect();
                q.push(&data);
                assert_eq!(q.pop(1), [0]);
                assert_eq!(q.len, fill);
                assert_eq!(q.pop(fill), data, "start {start} fill {fill}");
                assert_eq!(free_run(q.head, q.len, N), 0..N, "an empty ring lends all");
            }
        }
    }

    #[test]
    fn full_ring_lends_nothing_and_empty_ring_sends_nothing() {
        assert!(free_run(3, 4, 4).is_empty());
        assert!(queued_run(0, 0, 4).is_empty());
        assert_eq!(free_run(0, 0, 4), 0..4);
    }

    #[test]
    fn runs_stop_at_the_wrap() {
        let mut q = Ring::<4>::new();
        q.push(b"abc");
        q.pop(2);
        q.push(b"def"); // c at 2, d at 3, e f at 0 1
        assert_eq!(queued_run(q.head, q.len, 4), 2..4);
        assert_eq!(q.pop(4), b"cdef");
        let mut q = Ring::<8>::new();
        q.push(b"abcdef");
        q.pop(4); // head 4, len 2: free space is [6, 8) then [0, 4)
        assert_eq!(free_run(q.head, q.len, 8), 6..8);
        q.push(b"gh");
        assert_eq!(free_run(q.head, q.len, 8), 0..4);
    }
}
