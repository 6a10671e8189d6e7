//! The core's memory on the host: sized at run time, on the heap, and resident only as it
//! is used.
//!
//! The connection table (`--max-conns` slots of 32 bytes) and the pool's free stack
//! (`--buffers` entries of 2 bytes) are ordinary heap allocations, reserved at start-up
//! and touched only as they are used: the table grows a slot at a time (within its
//! reserved capacity, so growing never allocates) when the core first needs one, and the
//! free stack comes zeroed from `calloc`. The pool's bytes
//! (`--buffers × --queue-size`, 640 MiB at the defaults) are a [`Region`]: address space
//! reserved with `MAP_NORESERVE`, so the defaults start on a machine with far less memory,
//! and a page becomes resident only when a buffer is first written. Free buffers that went
//! cold are handed back with [`HeapStorage::discard`], so the resident memory follows the
//! bytes actually waiting.
//!
//! A UDP echo socket's tables ([`HeapUdpStorage`]) are boxed slices from `calloc`: their
//! pages, too, become resident only as datagrams land in them.

use std::io;
use std::ops::Range;

use echoloop_core::udp::{DatagramSlot, SourceSlot, UdpParts, UdpStorage};
use echoloop_core::{ConnSlot, Parts, PartsRef, Storage};

use crate::sys::Region;

/// Where the pool starts in its mapping: half a page in. With the pool page-aligned, the
/// kernel's copy out of a buffer in `send` cost more on the benchmark machine (AMD EPYC):
/// streaming one connection at 64 KiB, 25.4 µs of server CPU per 64 KiB against 21.0 at
/// 2,048 B in, and no case slower (bench/results/pool-offset.md). Likely 4K aliasing
/// between our buffer and the page-aligned socket buffer pages it is copied to: half a
/// page is as far from both as an offset gets. Costs 2 KiB of address space.
const POOL_SKEW: usize = 2048;

/// The core's three tables: slots, free stack, pool bytes.
pub struct HeapStorage {
    /// Grows to `conns`, never beyond: its capacity is reserved up front.
    slots: Vec<ConnSlot>,
    conns: usize,
    free: Box<[u16]>,
    /// The pool's bytes from [`POOL_SKEW`] on.
    bytes: Region,
    queue_size: usize,
}

impl HeapStorage {
    /// Tables for `conns` connections sharing `buffers` buffers of `queue_size` bytes.
    /// The core checks the sizes (see `echoloop_core::Server::new`); this only fails when
    /// the address space cannot be reserved.
    pub fn new(conns: usize, buffers: usize, queue_size: usize) -> io::Result<Self> {
        let len = buffers
            .checked_mul(queue_size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pool size overflows"))?;
        Ok(HeapStorage {
            // Reserved, not touched: a large allocation is fresh pages from the kernel.
            slots: Vec::with_capacity(conns),
            conns,
            // Zeroed: calloc hands out untouched pages; the core fills it as buffers free.
            free: vec![0; buffers].into_boxed_slice(),
            bytes: Region::reserve(len.saturating_add(POOL_SKEW))?,
            queue_size,
        })
    }

    /// Gives the pages of a free buffer's bytes back to the operating system.
    pub fn discard(&mut self, range: Range<usize>) {
        let end = range.end.saturating_add(POOL_SKEW);
        self.bytes
            .discard(range.start.saturating_add(POOL_SKEW)..end);
    }

    /// The pool's bytes as the core indexes them.
    fn pool(&self) -> &[u8] {
        self.bytes.get(POOL_SKEW..).unwrap_or_default()
    }

    /// The heap and address space these tables take, in bytes (the core's `footprint`
    /// less its fixed part).
    pub fn size(&self) -> usize {
        self.conns * std::mem::size_of::<ConnSlot>()
            + std::mem::size_of_val(&*self.free)
            + self.pool().len()
    }
}

impl Storage for HeapStorage {
    fn parts(&mut self) -> Parts<'_> {
        Parts {
            slots: &mut self.slots,
            free: &mut self.free,
            bytes: self.bytes.get_mut(POOL_SKEW..).unwrap_or_default(),
            queue_size: self.queue_size,
        }
    }

    fn parts_ref(&self) -> PartsRef<'_> {
        PartsRef {
            slots: &self.slots,
            free: &self.free,
            bytes: self.pool(),
            queue_size: self.queue_size,
        }
    }

    fn slots_capacity(&self) -> usize {
        self.conns
    }

    fn grow_slots(&mut self) -> bool {
        // Within the reserved capacity `push` never reallocates: growing allocates nothing.
        if self.slots.len() >= self.conns.min(self.slots.capacity()) {
            return false;
        }
        self.slots.push(ConnSlot::EMPTY);
        true
    }
}

/// One UDP echo socket's tables: `slots` datagram slots of `slot_size` bytes and the
/// flood guard's `sources` recent sources.
pub struct HeapUdpStorage {
    slots: Box<[DatagramSlot]>,
    bytes: Box<[u8]>,
    slot_size: usize,
    sources: Box<[SourceSlot]>,
}

impl HeapUdpStorage {
    /// Zeroed tables (the core checks their sizes in `UdpEcho::new`).
    pub fn new(slots: usize, slot_size: usize, sources: usize) -> io::Result<Self> {
        let len = slots
            .checked_mul(slot_size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "UDP queue overflows"))?;
        Ok(HeapUdpStorage {
            slots: vec![DatagramSlot::EMPTY; slots].into_boxed_slice(),
            // Zeroed: calloc hands out untouched pages, resident as datagrams land.
            bytes: vec![0; len].into_boxed_slice(),
            slot_size,
            sources: vec![SourceSlot::EMPTY; sources].into_boxed_slice(),
        })
    }
}

impl UdpStorage for HeapUdpStorage {
    fn parts(&mut self) -> UdpParts<'_> {
        UdpParts {
            slots: &mut self.slots,
            bytes: &mut self.bytes,
            slot_size: self.slot_size,
            sources: &mut self.sources,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_are_what_the_cores_footprint_counts() {
        let (conns, buffers, queue) = (10_000, 2_500, 64 * 1024);
        let storage = HeapStorage::new(conns, buffers, queue).unwrap();
        assert_eq!(
            storage.size() + echoloop_core::footprint(0, 0, queue),
            echoloop_core::footprint(conns, buffers, queue)
        );
    }

    // 4 KiB pages and MADV_DONTNEED zero-filling private anonymous pages: Linux on x86-64.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn the_pool_starts_half_a_page_in_and_discards_whole_pages_inside_a_range() {
        let mut storage = HeapStorage::new(2, 2, 8192).unwrap();
        let start = storage.pool().as_ptr() as usize;
        assert_eq!(start % 4096, POOL_SKEW);
        assert_eq!(storage.pool().len(), 2 * 8192);
        storage.parts().bytes.fill(7);
        storage.discard(0..8192);
        let pool = storage.pool();
        // Only the page wholly inside buffer 0 ([2048, 10240) of the mapping) reads as 0.
        assert!(pool[..2048].iter().all(|&b| b == 7));
        assert!(pool[2048..6144].iter().all(|&b| b == 0));
        assert!(pool[6144..].iter().all(|&b| b == 7));
    }

    #[test]
    fn the_table_grows_a_slot_at_a_time_up_to_its_capacity_without_reallocating() {
        let mut storage = HeapStorage::new(3, 1, 8).unwrap();
        assert!(
            storage.parts_ref().slots.is_empty(),
            "nothing touched at start-up"
        );
        let reserved = storage.slots.as_ptr();
        assert_eq!(storage.slots_capacity(), 3);
        assert!(storage.grow_slots() && storage.grow_slots() && storage.grow_slots());
        assert!(!storage.grow_slots(), "never past --max-conns");
        assert_eq!(storage.parts_ref().slots.len(), 3);
        assert_eq!(
            storage.slots.as_ptr(),
            reserved,
            "growing never reallocated"
        );
    }
}
