//! A fixed-capacity byte FIFO that lends its free space and its queued bytes as slices.
//!
//! Why not a heapless type: `heapless::Deque` lends its queued bytes (`as_slices`) but not
//! its free space, so the driver would have to `recv` into a scratch buffer and copy; and
//! `heapless::Vec::spare_capacity_mut` lends uninitialised memory that only `unsafe`
//! `set_len` can commit, which the core forbids. An echo server's hot path is exactly
//! "receive into the queue, send from the queue", so the queue is a small ring of our own,
//! in the manner of smoltcp's `RingBuffer`: the driver `recv`s straight into
//! [`Queue::free_mut`] and `send`s straight from [`Queue::queued`]. No byte is ever copied
//! by the core.
//!
//! When the queue empties, its read position goes back to the start of the buffer, so a
//! request/response peer (the common case) always gets the whole capacity as one slice.

use core::fmt;

/// A byte FIFO of capacity `N`.
///
/// ```
/// use echoloop_core::Queue;
///
/// let mut q = Queue::<8>::new();
/// let free = q.free_mut();
/// free[..3].copy_from_slice(b"abc");
/// q.commit(3).unwrap();
/// assert_eq!(q.queued(), b"abc");
/// q.consume(2).unwrap();
/// assert_eq!(q.queued(), b"c");
/// ```
#[derive(Clone)]
pub struct Queue<const N: usize> {
    buf: [u8; N],
    /// Index of the oldest queued byte; always `< N` (or 0 when `N` is 0).
    head: usize,
    /// Number of queued bytes; always `<= N`.
    len: usize,
}

/// A length handed to [`Queue::commit`] or [`Queue::consume`] was longer than the slice lent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TooLong;

impl<const N: usize> Queue<N> {
    /// The capacity in bytes.
    pub const CAPACITY: usize = N;

    /// An empty queue.
    pub const fn new() -> Self {
        Queue {
            buf: [0; N],
            head: 0,
            len: 0,
        }
    }

    /// Bytes queued.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True when no byte is queued.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when no byte more fits.
    pub const fn is_full(&self) -> bool {
        self.len >= N
    }

    /// Bytes that still fit (not necessarily contiguous).
    pub const fn free_len(&self) -> usize {
        N - self.len
    }

    /// Index one past the newest queued byte, wrapped into the buffer.
    fn tail(&self) -> usize {
        let end = self.head + self.len;
        if end >= N {
            end - N
        } else {
            end
        }
    }

    /// The contiguous free space after the newest byte, for the driver to receive into.
    ///
    /// Empty only when the queue is full. It may be shorter than [`free_len`](Self::free_len)
    /// when the free space wraps around the end of the buffer; after a [`commit`](Self::commit)
    /// of the whole slice, the rest is lent by the next call.
    pub fn free_mut(&mut self) -> &mut [u8] {
        if self.is_full() {
            return &mut [];
        }
        let tail = self.tail();
        let end = if tail >= self.head { N } else { self.head };
        self.buf.get_mut(tail..end).unwrap_or_default()
    }

    /// Marks the first `n` bytes of [`free_mut`](Self::free_mut) as queued.
    pub fn commit(&mut self, n: usize) -> Result<(), TooLong> {
        if n > self.contiguous_free() {
            return Err(TooLong);
        }
        self.len += n;
        Ok(())
    }

    fn contiguous_free(&self) -> usize {
        if self.is_full() {
            return 0;
        }
        let tail = self.tail();
        if tail >= self.head {
            N - tail
        } else {
            self.head - tail
        }
    }

    /// The oldest queued bytes that are contiguous in the buffer, for the driver to send.
    ///
    /// Empty only when the queue is empty.
    pub fn queued(&self) -> &[u8] {
        self.buf
            .get(self.head..self.head + self.contiguous_queued())
            .unwrap_or_default()
    }

    fn contiguous_queued(&self) -> usize {
        let to_end = N - self.head;
        if self.len < to_end {
            self.len
        } else {
            to_end
        }
    }

    /// Drops the first `n` bytes of [`queued`](Self::queued): they have been sent.
    pub fn consume(&mut self, n: usize) -> Result<(), TooLong> {
        if n > self.contiguous_queued() {
            return Err(TooLong);
        }
        self.len -= n;
        self.head = if self.len == 0 {
            // Back to the start: the next receive gets the whole buffer in one slice.
            0
        } else {
            let head = self.head + n;
            if head >= N {
                head - N
            } else {
                head
            }
        };
        Ok(())
    }

    /// Forgets every queued byte.
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

impl<const N: usize> Default for Queue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for Queue<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("capacity", &N)
            .field("head", &self.head)
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl<const N: usize> defmt::Format for Queue<N> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Queue {{ capacity: {}, head: {}, len: {} }}",
            N,
            self.head,
            self.len
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `data` through `free_mut`/`commit`, as a driver would, in as many slices as it takes.
    fn push<const N: usize>(q: &mut Queue<N>, mut data: &[u8]) {
        while !data.is_empty() {
            let free = q.free_mut();
            let n = free.len().min(data.len());
            assert!(n > 0, "queue full");
            free[..n].copy_from_slice(&data[..n]);
            q.commit(n).unwrap();
            data = &data[n..];
        }
    }

    /// Pops `n` bytes through `queued`/`consume`.
    fn pop<const N: usize>(q: &mut Queue<N>, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < n {
            let run = q.queued();
            let k = run.len().min(n - out.len());
            assert!(k > 0, "queue empty");
            out.extend_from_slice(&run[..k]);
            q.consume(k).unwrap();
        }
        out
    }

    #[test]
    fn fifo_through_every_wrap_position() {
        const N: usize = 7;
        for start in 0..N {
            for fill in 1..N {
                let mut q = Queue::<N>::new();
                // Park the head at `start` with one marker byte queued, so it does not reset.
                push(&mut q, &vec![0; start + 1]);
                pop(&mut q, start);
                let data: Vec<u8> = (1..=fill as u8).collect();
                push(&mut q, &data);
                assert_eq!(pop(&mut q, 1), [0]);
                assert_eq!(q.len(), fill);
                assert_eq!(pop(&mut q, fill), data, "start {start} fill {fill}");
                assert!(q.is_empty());
                assert_eq!(q.free_mut().len(), N, "an empty queue lends all of it");
            }
        }
    }

    #[test]
    fn empty_queue_lends_whole_buffer() {
        let mut q = Queue::<16>::new();
        push(&mut q, &[1; 10]);
        pop(&mut q, 10);
        assert_eq!(q.free_mut().len(), 16);
        assert!(q.queued().is_empty());
    }

    #[test]
    fn full_queue_lends_nothing() {
        let mut q = Queue::<4>::new();
        push(&mut q, b"abcd");
        assert!(q.is_full());
        assert!(q.free_mut().is_empty());
        assert_eq!(q.commit(1), Err(TooLong));
        assert_eq!(q.free_len(), 0);
    }

    #[test]
    fn commit_longer_than_lent_slice_is_an_error() {
        let mut q = Queue::<8>::new();
        push(&mut q, b"abcdef");
        pop(&mut q, 4); // head 4, len 2, tail 6: lent slice is [6, 8)
        assert_eq!(q.free_mut().len(), 2);
        assert_eq!(q.commit(3), Err(TooLong));
        assert_eq!(q.len(), 2, "a refused commit changes nothing");
        q.commit(2).unwrap();
        assert_eq!(q.free_mut().len(), 4);
    }

    #[test]
    fn consume_more_than_queued_is_an_error() {
        let mut q = Queue::<8>::new();
        push(&mut q, b"xy");
        assert_eq!(q.consume(3), Err(TooLong));
        assert_eq!(q.queued(), b"xy");
        q.clear();
        assert!(q.is_empty());
    }

    #[test]
    fn queued_run_stops_at_the_wrap() {
        let mut q = Queue::<4>::new();
        push(&mut q, b"abc");
        pop(&mut q, 2);
        push(&mut q, b"def"); // c at 2, d at 3, e f at 0 1
        assert_eq!(q.queued(), b"cd");
        assert_eq!(q.consume(3), Err(TooLong), "longer than the lent run");
        q.consume(2).unwrap();
        assert_eq!(q.queued(), b"ef");
        assert_eq!(q.free_mut().len(), 2);
    }

    #[test]
    fn zero_capacity_is_always_full_and_empty() {
        let mut q = Queue::<0>::new();
        assert!(q.is_full() && q.is_empty());
        assert!(q.free_mut().is_empty());
        assert!(q.queued().is_empty());
        assert_eq!(q.commit(1), Err(TooLong));
        assert_eq!(q.consume(0), Ok(()));
    }
}
