//! The real register access: volatile loads and stores at the chip's base address. The
//! only `unsafe` code of the crate.
#![allow(unsafe_code)]

use crate::regs::Registers;

/// The chip's registers, memory-mapped at a fixed address.
#[derive(Debug)]
pub struct Mmio {
    base: usize,
}

impl Mmio {
    /// The LAN9118 at `base` (`0x4020_0000` on QEMU's `mps2-an385`/`mps2-an386`).
    ///
    /// # Safety
    /// `base` must be the address of a LAN9118's 256-byte register window, mapped as
    /// device memory, and nothing else may access that window while this value lives
    /// (reading a FIFO port pops data: two owners would steal each other's frames).
    pub const unsafe fn new(base: usize) -> Self {
        Mmio { base }
    }

    /// The address of the register at `offset`, kept inside the 256-byte window.
    fn at(&self, offset: usize) -> *mut u32 {
        (self.base + (offset & 0xfc)) as *mut u32
    }
}

impl Registers for Mmio {
    fn read(&mut self, offset: usize) -> u32 {
        // SAFETY: `new`'s contract makes `base..base + 256` this chip's registers, owned by
        // this value; `at` keeps the address word-aligned inside that window.
        unsafe { self.at(offset).read_volatile() }
    }

    fn write(&mut self, offset: usize, value: u32) {
        // SAFETY: as in `read`: an aligned register of the window this value owns.
        unsafe { self.at(offset).write_volatile(value) }
    }
}
