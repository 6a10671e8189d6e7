//! `virtio-drivers`' [`Hal`] on a static region: the virtqueues' pages come from a
//! page-aligned static and are never given back, and buffers are shared with the device by
//! their address. No allocator: the region is sized in `sizes.rs` and lives in `.bss`.
//!
//! Physical addresses are the CPU's: the firmware runs in machine mode without
//! translation, and QEMU's `virt` board has no IOMMU.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

use crate::sizes::DMA_PAGES;

/// The region the virtqueues are carved from.
#[repr(C, align(4096))]
struct Region(UnsafeCell<[u8; DMA_PAGES * PAGE_SIZE]>);

// SAFETY: pages are handed out once each (`NEXT` only grows), so no two owners share one.
unsafe impl Sync for Region {}

static REGION: Region = Region(UnsafeCell::new([0; DMA_PAGES * PAGE_SIZE]));
/// The first page not yet handed out.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// DMA through the static region.
pub struct StaticDma;

// SAFETY: `dma_alloc` hands out zeroed, page-aligned pages that nothing else uses, or fails
// with address 0; with no translation, the address the device sees is the CPU's.
unsafe impl Hal for StaticDma {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let first = NEXT.fetch_add(pages, Ordering::Relaxed);
        match first.checked_add(pages) {
            Some(end) if end <= DMA_PAGES => {
                let start = REGION.0.get().cast::<u8>().wrapping_add(first * PAGE_SIZE);
                match NonNull::new(start) {
                    Some(start) => (start.as_ptr() as usize as PhysAddr, start),
                    None => (0, NonNull::dangling()),
                }
            }
            // `virtio-drivers` turns address 0 into `Error::DmaError`.
            _ => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // The queues live as long as the firmware: nothing is freed, nothing reused.
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as usize as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr().cast::<u8>() as usize as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}
