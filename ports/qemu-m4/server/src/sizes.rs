//! Every size the server's memory depends on, in one place: the echo's
//! (`echo_sizes.rs`, shared with the RISC-V server) and the LAN9118 board's. All of it is
//! static: the firmware has no heap, and `size` on the ELF is its whole footprint (plus the
//! stack).

pub use crate::echo_sizes::*;

/// SYNs held while every slot is busy (the listen backlog smoltcp does not have): a burst
/// of this many clients beyond the slots waits; a SYN beyond it is dropped and its client
/// retransmits.
pub const BACKLOG_SYNS: usize = 64;
/// The longest SYN frame held: Ethernet, and IPv4 and TCP headers with the most options.
pub const SYN_FRAME: usize = 14 + 60 + 60;
/// Each TCP socket's receive buffer: the window a peer gets. Every slot's window together
/// must fit the LAN9118's RX FIFO (QEMU's model: about 10 KiB, frames and their status),
/// or a burst from the host overflows it, QEMU drops frames, and TCP waits for a
/// retransmission.
pub const TCP_RX_BUFFER: usize = 2048;
