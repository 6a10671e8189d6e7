//! Every size the server's memory depends on, in one place: the echo's
//! (`ports/qemu-m4/server/src/echo_sizes.rs`, the Cortex-M4 server's, so that the two
//! compare like for like) and the virtio-net device's. All of it is static: the firmware
//! has no heap, and `size` on the ELF is its whole footprint (plus the stack).

pub use crate::echo_sizes::*;

/// Each TCP socket's receive buffer: the window a peer gets (the LAN9118 server's, for a
/// like-for-like comparison; virtio-net has no FIFO to fit).
pub const TCP_RX_BUFFER: usize = 2048;

/// An Ethernet frame without its FCS: what smoltcp sends and receives.
pub const FRAME: usize = 1514;
/// Descriptors in each of the device's two virtqueues (a power of two); every receive
/// buffer takes one.
pub const QUEUE_SIZE: usize = 16;
/// Receive buffers posted to the device. Frames the device cannot place wait in QEMU's
/// queue rather than being dropped, so these only need to cover a burst: four slots'
/// windows of 2 KiB are six full frames.
pub const RX_BUFFERS: usize = 8;
/// A receive buffer: the virtio-net header (12 bytes at most) and a frame.
pub const RX_BUFFER: usize = 12 + FRAME;
/// Send buffers: frames handed to the device and not yet sent, one descriptor each.
pub const TX_BUFFERS: usize = 4;
/// A send buffer: the virtio-net header and a frame.
pub const TX_BUFFER: usize = 12 + FRAME;
/// Pages of 4 KiB for the virtqueues: two per queue (the descriptor table and the
/// available ring in one, the used ring in the other, whichever layout the transport
/// asks for).
pub const DMA_PAGES: usize = 4;
