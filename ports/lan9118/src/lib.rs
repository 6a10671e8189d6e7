//! A `no_std` driver for the SMSC LAN9118 Ethernet controller, as a
//! [smoltcp](https://docs.rs/smoltcp) [`phy::Device`](smoltcp::phy::Device).
//!
//! The LAN9118 is the network controller QEMU emulates on its Arm MPS2 boards
//! (`mps2-an385`, `mps2-an386`: base `0x4020_0000`, interrupt 13). The chip holds whole
//! frames in on-chip FIFOs, so the driver needs no DMA and no descriptor rings: it pops a
//! received frame word by word from the RX data FIFO into its own buffer, and pushes an
//! outgoing frame, behind two command words, into the TX data FIFO.
//!
//! - No allocation: the driver owns one receive and one transmit buffer of
//!   [`MAX_FRAME`] bytes each, and nothing else.
//! - No `unsafe` but in [`Mmio`], the volatile register access. Everything else goes
//!   through the [`Registers`] trait, which the unit tests implement with a model of the
//!   chip's FIFOs.
//! - No checksum offload (QEMU's model has none): smoltcp computes and checks every
//!   checksum itself, which is its default.
//!
//! ```no_run
//! # fn demo() -> Result<(), echoloop_lan9118::Error> {
//! use echoloop_lan9118::{Config, Lan9118, Mmio, MPS2_BASE};
//! // SAFETY: the chip is at MPS2_BASE on this board and nothing else touches it.
//! let regs = unsafe { Mmio::new(MPS2_BASE) };
//! let mut eth = Lan9118::new(regs, Config::new([0x02, 0, 0, 0, 0, 1]))?;
//! eth.enable_rx_interrupt();
//! // `eth` is a smoltcp Device: Interface::new(config, &mut eth, now), iface.poll(...).
//! # Ok(()) }
//! ```
//!
//! # Features
//! - `defmt`: `defmt::Format` for [`Error`] and [`Stats`].
#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs)]
// No panicking call on any path the network can reach.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod device;
mod mmio;
pub mod regs;

#[cfg(test)]
mod fake;

pub use device::{Config, Error, Lan9118, Rx, Stats, Tx, MAX_FRAME, MPS2_BASE, MPS2_IRQ};
pub use mmio::Mmio;
pub use regs::Registers;
