//! QEMU's `virt` board (hw/riscv/virt.c): where its devices sit, and the firmware's only
//! raw access to them. Shared by the server and the panic check, which include this file
//! by path.
//!
//! A [`Reg`] can be made only here, from the board's memory map, so reading and writing
//! one is safe everywhere else. The virtio transports are handed out as addresses for
//! `virtio-drivers` to map ([`VIRTIO_BASE`]).

use core::ptr;

/// One 32-bit device register of the board.
#[derive(Clone, Copy)]
pub struct Reg(usize);

impl Reg {
    /// Reads the register.
    pub fn read(self) -> u32 {
        // SAFETY: every `Reg` is made in this module from the board's memory map: a mapped,
        // aligned 32-bit device register, which reads without side effects on memory.
        unsafe { ptr::read_volatile(self.0 as *const u32) }
    }

    /// Writes the register.
    pub fn write(self, value: u32) {
        // SAFETY: as for `read`; the devices behind these registers own no memory the
        // program uses, so a write changes nothing the compiler relies on.
        unsafe { ptr::write_volatile(self.0 as *mut u32, value) }
    }
}

/// The board's test device (SiFive's "test finisher"): a write ends QEMU.
const TEST: Reg = Reg(0x0010_0000);

/// The CLINT's machine timer: `mtime` (counts at [`TIMEBASE_HZ`]) and hart 0's
/// `mtimecmp`, each 64 bits as two words.
pub const MTIME_LO: Reg = Reg(0x0200_bff8);
/// The high word of `mtime`.
pub const MTIME_HI: Reg = Reg(0x0200_bffc);
/// The low word of hart 0's `mtimecmp`.
pub const MTIMECMP_LO: Reg = Reg(0x0200_4000);
/// The high word of hart 0's `mtimecmp`.
pub const MTIMECMP_HI: Reg = Reg(0x0200_4004);
/// `mtime` ticks per second (the device tree's `timebase-frequency`).
pub const TIMEBASE_HZ: u64 = 10_000_000;

const PLIC: usize = 0x0c00_0000;

/// A source's priority in the PLIC (0 masks it).
pub fn plic_priority(irq: u32) -> Reg {
    Reg(PLIC + 4 * (irq as usize % 1024))
}
/// Hart 0 machine mode's enable bits for sources 0 to 31.
pub const PLIC_ENABLE: Reg = Reg(PLIC + 0x2000);
/// Hart 0 machine mode's priority threshold.
pub const PLIC_THRESHOLD: Reg = Reg(PLIC + 0x20_0000);
/// Hart 0 machine mode's claim (read) and complete (write) register.
pub const PLIC_CLAIM: Reg = Reg(PLIC + 0x20_0004);

/// The 16550 UART's transmit holding register.
pub const UART_THR: Reg8 = Reg8(0x1000_0000);
/// The UART's line status register.
pub const UART_LSR: Reg8 = Reg8(0x1000_0005);
/// Line status: the transmit holding register is empty.
pub const UART_LSR_THRE: u8 = 1 << 5;

/// One 8-bit device register of the board (the UART's).
#[derive(Clone, Copy)]
pub struct Reg8(usize);

impl Reg8 {
    /// Reads the register.
    pub fn read(self) -> u8 {
        // SAFETY: as for `Reg::read`, for a byte-wide register.
        unsafe { ptr::read_volatile(self.0 as *const u8) }
    }

    /// Writes the register.
    pub fn write(self, value: u8) {
        // SAFETY: as for `Reg::write`, for a byte-wide register.
        unsafe { ptr::write_volatile(self.0 as *mut u8, value) }
    }
}

/// The first of the board's eight virtio-mmio transports.
pub const VIRTIO_BASE: usize = 0x1000_1000;
/// Each transport's register window; transport `i` is at `VIRTIO_BASE + i * VIRTIO_SIZE`.
pub const VIRTIO_SIZE: usize = 0x1000;
/// Transports on the board.
pub const VIRTIO_COUNT: usize = 8;
/// Transport `i` raises PLIC source `VIRTIO_IRQ + i`.
pub const VIRTIO_IRQ: u32 = 1;

/// Ends the run: QEMU exits with `status` (0 to 65535).
pub fn exit(status: u16) -> ! {
    TEST.write(match status {
        0 => 0x5555,
        // FAIL, with the exit status in the upper half.
        status => (u32::from(status) << 16) | 0x3333,
    });
    // Only on a board without the test device.
    loop {
        riscv::asm::wfi();
    }
}
