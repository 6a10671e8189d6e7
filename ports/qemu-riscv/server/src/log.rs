//! defmt's global logger, over the board's UART: QEMU writes its bytes to stdout, and
//! `defmt-print -e <the ELF>` turns the frames into text (`serve` pipes them through it).
//!
//! The firmware takes no traps (see `irq.rs`), so a frame is only ever interrupted by a
//! panic inside a `Format` impl; the panic handler logs too, and a second frame inside the
//! first would garble both, so that ends the run at once instead.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::board::{self, UART_LSR, UART_LSR_THRE, UART_THR};
use crate::clock;

defmt::timestamp!("{=u64:us}", clock::micros());

#[defmt::global_logger]
struct Logger;

/// The frame being written: taken by `acquire`, given back by `release`.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The encoder's state between `acquire` and `release`.
struct Frame(UnsafeCell<defmt::Encoder>);

// SAFETY: only the holder of `TAKEN` touches the encoder, and there is one at a time.
unsafe impl Sync for Frame {}

static FRAME: Frame = Frame(UnsafeCell::new(defmt::Encoder::new()));

/// Sends bytes out of the UART, waiting for room for each.
fn send(bytes: &[u8]) {
    for &byte in bytes {
        while UART_LSR.read() & UART_LSR_THRE == 0 {}
        UART_THR.write(byte);
    }
}

// SAFETY: `acquire` makes the caller the only writer until `release` (or ends the run), so
// the encoder is never used by two frames at once; defmt calls `write` and `release` only
// between them.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        if TAKEN.swap(true, Ordering::Acquire) {
            board::exit(1);
        }
        // SAFETY: this frame holds `TAKEN`.
        unsafe { (*FRAME.0.get()).start_frame(send) }
    }

    unsafe fn flush() {}

    unsafe fn release() {
        // SAFETY: defmt calls `release` only after `acquire`: this frame holds `TAKEN`.
        unsafe { (*FRAME.0.get()).end_frame(send) }
        TAKEN.store(false, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: defmt calls `write` only between `acquire` and `release`.
        unsafe { (*FRAME.0.get()).write(bytes, send) }
    }
}
