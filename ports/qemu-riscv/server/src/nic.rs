//! The virtio-net device as a smoltcp [`Device`]: `virtio-drivers`' raw driver over the
//! board's MMIO transport, with the receive buffers in statics.
//!
//! Every receive buffer is posted to the device, which fills one per frame. smoltcp gets a
//! filled one lent for the length of a receive token, and it goes back to the device on
//! the next `receive`. A frame to send is built in a free send buffer, after the
//! virtio-net header, and handed to the device without waiting; the buffer is free again
//! once the device has used it (reclaimed on the next `receive` or `transmit`). With no
//! send buffer free, smoltcp gets no token and tries again on its next poll.

use core::ptr::NonNull;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use static_cell::ConstStaticCell;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};

use crate::board::{VIRTIO_BASE, VIRTIO_COUNT, VIRTIO_IRQ, VIRTIO_SIZE};
use crate::dma::StaticDma;
use crate::sizes::{FRAME, QUEUE_SIZE, RX_BUFFER, RX_BUFFERS, TX_BUFFER, TX_BUFFERS};

type Raw = VirtIONetRaw<StaticDma, MmioTransport<'static>, QUEUE_SIZE>;

static RX: ConstStaticCell<[[u8; RX_BUFFER]; RX_BUFFERS]> =
    ConstStaticCell::new([[0; RX_BUFFER]; RX_BUFFERS]);
static TX: ConstStaticCell<[[u8; TX_BUFFER]; TX_BUFFERS]> =
    ConstStaticCell::new([[0; TX_BUFFER]; TX_BUFFERS]);

/// Why there is no network device.
#[derive(defmt::Format)]
pub enum NicError {
    /// No virtio transport of the board holds a network device.
    NotFound,
    /// The driver refused the device.
    Driver(#[defmt(Debug2Format)] virtio_drivers::Error),
}

/// The virtio-net device, its PLIC source and its buffers.
pub struct VirtioNet {
    raw: Raw,
    irq: u32,
    rx: &'static mut [[u8; RX_BUFFER]; RX_BUFFERS],
    /// The receive buffer each descriptor token holds.
    posted: [Option<usize>; QUEUE_SIZE],
    /// The buffer lent to smoltcp by the last `receive`: posted again on the next.
    lent: Option<usize>,
    tx: &'static mut [[u8; TX_BUFFER]; TX_BUFFERS],
    /// The device's token for each send buffer it holds; `None`: the buffer is free.
    sending: [Option<u16>; TX_BUFFERS],
}

impl VirtioNet {
    /// Finds the network device on the board's virtio transports, sets it up and posts
    /// every receive buffer. Call once: the buffers are statics.
    pub fn new() -> Result<Self, NicError> {
        let (transport, slot) = find().ok_or(NicError::NotFound)?;
        let raw = Raw::new(transport).map_err(NicError::Driver)?;
        let mut nic = VirtioNet {
            raw,
            irq: VIRTIO_IRQ + slot as u32,
            rx: RX.take(),
            posted: [None; QUEUE_SIZE],
            lent: None,
            tx: TX.take(),
            sending: [None; TX_BUFFERS],
        };
        for index in 0..RX_BUFFERS {
            nic.post(index);
        }
        Ok(nic)
    }

    /// The device's MAC address (QEMU's default, 52:54:00:12:34:56, unless told).
    pub fn mac(&self) -> [u8; 6] {
        self.raw.mac_address()
    }

    /// The PLIC source of the device's interrupt.
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// Acknowledges the device's interrupt, which lowers its line.
    pub fn ack_interrupt(&mut self) {
        self.raw.ack_interrupt();
    }

    /// True when a received frame waits for smoltcp.
    pub fn rx_pending(&self) -> bool {
        self.raw.poll_receive().is_some()
    }

    /// Takes back every send buffer the device has finished with.
    fn reclaim(&mut self) {
        while let Some(token) = self.raw.poll_transmit() {
            let index = self.sending.iter().position(|t| *t == Some(token));
            let Some(buffer) = index.and_then(|i| self.tx.get(i)) else {
                // A token we did not hand out: nothing to take back, and nothing to wait for.
                defmt::error!("virtio-net: unknown send token {}", token);
                return;
            };
            // SAFETY: `buffer` is the one handed to `transmit_begin` with `token`.
            if let Err(e) = unsafe { self.raw.transmit_complete(token, buffer) } {
                defmt::warn!("virtio-net: send failed: {}", defmt::Debug2Format(&e));
            }
            if let Some(slot) = index.and_then(|i| self.sending.get_mut(i)) {
                *slot = None;
            }
        }
    }

    /// Room for one frame: a free send buffer, or `None`.
    fn tx_token(&mut self) -> Option<TxToken<'_>> {
        self.reclaim();
        let index = self.sending.iter().position(Option::is_none)?;
        Some(TxToken {
            raw: &mut self.raw,
            buffer: self.tx.get_mut(index)?,
            token: self.sending.get_mut(index)?,
        })
    }

    /// Hands receive buffer `index` to the device.
    fn post(&mut self, index: usize) {
        let Some(buffer) = self.rx.get_mut(index) else {
            return;
        };
        // SAFETY: the buffer is a static that only this driver reaches, and it is touched
        // again only once `receive_complete` has taken it back from the device.
        match unsafe { self.raw.receive_begin(buffer) } {
            Ok(token) => {
                if let Some(entry) = self.posted.get_mut(usize::from(token)) {
                    *entry = Some(index);
                }
            }
            Err(e) => defmt::error!(
                "virtio-net: receive buffer {} not posted: {}",
                index,
                defmt::Debug2Format(&e)
            ),
        }
    }
}

/// The first of the board's virtio transports that holds a network device, and its slot.
fn find() -> Option<(MmioTransport<'static>, usize)> {
    (0..VIRTIO_COUNT).find_map(|slot| {
        let header = NonNull::new((VIRTIO_BASE + slot * VIRTIO_SIZE) as *mut VirtIOHeader)?;
        // SAFETY: the board maps a virtio-mmio transport of VIRTIO_SIZE bytes, header and
        // configuration space, at each of these addresses for as long as it runs, and
        // nothing else in the firmware touches them.
        let transport = unsafe { MmioTransport::new(header, VIRTIO_SIZE) }.ok()?;
        (transport.device_type() == DeviceType::Network).then_some((transport, slot))
    })
}

impl Device for VirtioNet {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        if let Some(index) = self.lent.take() {
            self.post(index);
        }
        self.reclaim();
        if !self.sending.contains(&None) {
            // No room to answer: leave the frame with the device until a send completes.
            return None;
        }
        let token = self.raw.poll_receive()?;
        let index = self.posted.get_mut(usize::from(token))?.take()?;
        let buffer = self.rx.get_mut(index)?;
        // Whatever the outcome, the buffer goes back to the device on the next call.
        self.lent = Some(index);
        // SAFETY: `buffer` is the one posted with `token`.
        let (header, len) = match unsafe { self.raw.receive_complete(token, buffer) } {
            Ok(lengths) => lengths,
            Err(e) => {
                defmt::warn!("virtio-net: frame dropped: {}", defmt::Debug2Format(&e));
                return None;
            }
        };
        let frame = buffer.get(header..header.saturating_add(len))?;
        let index = self.sending.iter().position(Option::is_none)?;
        Some((
            RxToken { frame },
            TxToken {
                raw: &mut self.raw,
                buffer: self.tx.get_mut(index)?,
                token: self.sending.get_mut(index)?,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        self.tx_token()
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = FRAME;
        caps
    }
}

/// A received frame, lent until the next `receive`.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

/// Room for one frame to send: a free send buffer.
pub struct TxToken<'a> {
    raw: &'a mut Raw,
    buffer: &'a mut [u8; TX_BUFFER],
    /// Where the device's token for the buffer goes, which marks it busy.
    token: &'a mut Option<u16>,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let header = self.raw.fill_buffer_header(self.buffer).unwrap_or(0);
        // smoltcp asks for at most the MTU it was given: FRAME, which fits after the header.
        let end = header.saturating_add(len).min(TX_BUFFER);
        let (used, _) = self.buffer.split_at_mut(end);
        let result = f(used.get_mut(header..).unwrap_or_default());
        // SAFETY: the buffer is marked busy with the token until `reclaim` sees the device
        // finish with it; nothing touches it meanwhile (`tx_token` lends only free ones).
        match unsafe { self.raw.transmit_begin(used) } {
            Ok(token) => *self.token = Some(token),
            Err(e) => defmt::warn!("virtio-net: frame not sent: {}", defmt::Debug2Format(&e)),
        }
        result
    }
}
