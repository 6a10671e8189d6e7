//! An allocator and one allocation, for CI only (`--features alloc-canary`): the symbol
//! check that proves the firmware links no allocator must find one in this build, which
//! shows that the check can fail.

extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};
use core::hint::black_box;

/// An allocator that never has memory.
struct Empty;

// SAFETY: `alloc` never returns memory (a null pointer is the documented failure), so
// there is nothing `dealloc` could be handed back.
unsafe impl GlobalAlloc for Empty {
    unsafe fn alloc(&self, _layout: Layout) -> *mut u8 {
        core::ptr::null_mut()
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: Empty = Empty;

/// Allocates a few bytes (and fails, which ends the run: the build is only for `nm`).
pub fn allocate() -> usize {
    alloc::vec![black_box(1u8); black_box(3)].len()
}
