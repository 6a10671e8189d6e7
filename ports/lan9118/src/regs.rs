//! The LAN9118's register map (SMSC datasheet, section 5) and the [`Registers`] trait the
//! driver reaches them through.
//!
//! Only what the driver uses is named. Offsets are from the chip's base address; every
//! register is 32 bits wide and the chip is on a 32-bit bus.

/// Word-wide access to the chip's registers, by byte offset from its base.
///
/// [`Mmio`](crate::Mmio) is the real one; the unit tests implement it with a model of the
/// chip's FIFOs, so everything above this trait runs on the host.
pub trait Registers {
    /// Reads the register at `offset`. Reading a FIFO port pops a word.
    fn read(&mut self, offset: usize) -> u32;
    /// Writes `value` to the register at `offset`. Writing a FIFO port pushes a word.
    fn write(&mut self, offset: usize, value: u32);
}

/// RX data FIFO port: each read pops one word of the current frame.
pub const RX_DATA_FIFO: usize = 0x00;
/// TX data FIFO port: command A, command B, then the frame's words.
pub const TX_DATA_FIFO: usize = 0x20;
/// RX status FIFO port: one word per received frame, popped by reading.
pub const RX_STATUS_FIFO: usize = 0x40;
/// TX status FIFO port: one word per transmitted frame, popped by reading.
pub const TX_STATUS_FIFO: usize = 0x48;
/// Chip id (high half) and revision (low half).
pub const ID_REV: usize = 0x50;
/// Interrupt pin configuration.
pub const IRQ_CFG: usize = 0x54;
/// Interrupt status: write 1 to clear a bit.
pub const INT_STS: usize = 0x58;
/// Interrupt enables, bit for bit as [`INT_STS`].
pub const INT_EN: usize = 0x5c;
/// Reads `0x8765_4321` when the bus works and the chip is there.
pub const BYTE_TEST: usize = 0x64;
/// FIFO levels at which the FIFO interrupts fire.
pub const FIFO_INT: usize = 0x68;
/// Receive configuration.
pub const RX_CFG: usize = 0x6c;
/// Transmit configuration.
pub const TX_CFG: usize = 0x70;
/// Hardware configuration: soft reset, TX FIFO size.
pub const HW_CFG: usize = 0x74;
/// RX data path control: fast-forward past a frame.
pub const RX_DP_CTRL: usize = 0x78;
/// RX FIFO fill levels.
pub const RX_FIFO_INF: usize = 0x7c;
/// TX FIFO fill levels.
pub const TX_FIFO_INF: usize = 0x80;
/// Power management: the chip says it is ready after a reset here.
pub const PMT_CTRL: usize = 0x84;
/// MAC CSR command: the indirect window onto the MAC's own registers.
pub const MAC_CSR_CMD: usize = 0xa4;
/// MAC CSR data, read or written through [`MAC_CSR_CMD`].
pub const MAC_CSR_DATA: usize = 0xa8;

/// `BYTE_TEST`'s fixed value.
pub const BYTE_TEST_VALUE: u32 = 0x8765_4321;

/// `IRQ_CFG`: the IRQ pin is enabled.
pub const IRQ_EN: u32 = 1 << 8;
/// `IRQ_CFG`: the IRQ pin is active high.
pub const IRQ_POL: u32 = 1 << 4;
/// `IRQ_CFG`: the IRQ pin is push-pull (not open drain).
pub const IRQ_TYPE: u32 = 1 << 0;

/// `INT_STS`/`INT_EN`: the RX status FIFO holds more entries than `FIFO_INT`'s level.
pub const INT_RSFL: u32 = 1 << 3;

/// `HW_CFG`: soft reset, self-clearing.
pub const HW_CFG_SRST: u32 = 1 << 0;
/// `HW_CFG`: TX FIFO size in KiB, bits 19:16.
pub const HW_CFG_TX_FIF_SZ_SHIFT: u32 = 16;
/// `HW_CFG`: must be written as one.
pub const HW_CFG_MBO: u32 = 1 << 20;

/// `PMT_CTRL`: the chip is ready after a reset.
pub const PMT_READY: u32 = 1 << 0;

/// `TX_CFG`: the transmitter is on.
pub const TX_ON: u32 = 1 << 1;
/// `TX_CFG`: a full TX status FIFO does not stop the transmitter.
pub const TXSAO: u32 = 1 << 2;

/// `RX_DP_CTRL`: skip the rest of the current frame; self-clearing.
pub const RX_FFWD: u32 = 1 << 31;

/// `RX_FIFO_INF`: entries in the RX status FIFO, bits 23:16.
pub const RXSUSED_SHIFT: u32 = 16;
/// `TX_FIFO_INF`: free bytes in the TX data FIFO, bits 15:0.
pub const TDFREE_MASK: u32 = 0xffff;
/// `TX_FIFO_INF`: entries in the TX status FIFO, bits 23:16.
pub const TXSUSED_SHIFT: u32 = 16;
/// Mask of an 8-bit FIFO count once shifted down.
pub const COUNT_MASK: u32 = 0xff;

/// RX status: the frame's length in bytes, FCS included, bits 29:16.
pub const RX_STS_LEN_SHIFT: u32 = 16;
/// RX status: mask of the length once shifted down.
pub const RX_STS_LEN_MASK: u32 = 0x3fff;
/// RX status: error summary (CRC, too long, runt, collision, ...).
pub const RX_STS_ES: u32 = 1 << 15;
/// RX status: the address filter rejected the frame (only seen in receive-all mode).
pub const RX_STS_FILTER_FAIL: u32 = 1 << 30;

/// TX command A: first segment of a frame.
pub const TX_CMD_A_FIRST: u32 = 1 << 13;
/// TX command A: last segment of a frame.
pub const TX_CMD_A_LAST: u32 = 1 << 12;
/// TX command B and the TX status word: the packet tag, bits 31:16.
pub const TX_TAG_SHIFT: u32 = 16;
/// TX status: error summary (collisions, carrier lost, ...).
pub const TX_STS_ES: u32 = 1 << 15;

/// `MAC_CSR_CMD`: start the access; clears when it is done.
pub const MAC_CSR_BUSY: u32 = 1 << 31;
/// `MAC_CSR_CMD`: the access is a read.
pub const MAC_CSR_READ: u32 = 1 << 30;

/// MAC CSR index: MAC control.
pub const MAC_CR: u32 = 1;
/// MAC CSR index: MAC address, bytes 4 and 5.
pub const MAC_ADDRH: u32 = 2;
/// MAC CSR index: MAC address, bytes 0 to 3.
pub const MAC_ADDRL: u32 = 3;
/// MAC CSR index: MII (PHY) access.
pub const MII_ACC: u32 = 6;
/// MAC CSR index: MII (PHY) data.
pub const MII_DATA: u32 = 7;

/// `MAC_CR`: receiver on.
pub const MAC_CR_RXEN: u32 = 1 << 2;
/// `MAC_CR`: transmitter on.
pub const MAC_CR_TXEN: u32 = 1 << 3;
/// `MAC_CR`: full duplex.
pub const MAC_CR_FDPX: u32 = 1 << 20;

/// `MII_ACC`: busy; set to start an access.
pub const MII_BUSY: u32 = 1 << 0;
/// `MII_ACC`: the access is a write.
pub const MII_WRITE: u32 = 1 << 1;
/// `MII_ACC`: the PHY register index, bits 10:6.
pub const MII_REG_SHIFT: u32 = 6;
/// `MII_ACC`: the PHY address, bits 15:11 (the internal PHY is 1).
pub const MII_PHY_SHIFT: u32 = 11;
/// The internal PHY's address.
pub const PHY_ADDR: u32 = 1;
/// PHY register: basic control.
pub const PHY_BMCR: u32 = 0;
/// PHY BMCR: auto-negotiation on.
pub const BMCR_ANENABLE: u32 = 1 << 12;
/// PHY BMCR: restart auto-negotiation.
pub const BMCR_ANRESTART: u32 = 1 << 9;
