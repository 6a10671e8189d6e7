//! A model of the chip behind the [`Registers`] trait, for the unit tests: the FIFOs, the
//! MAC CSR window and the PHY behave as the datasheet (and QEMU's model) say.

extern crate std;

use std::collections::VecDeque;
use std::vec::Vec;

use crate::regs::{self, Registers};

/// The chip, as the tests see it.
#[derive(Debug, Default)]
pub struct FakeChip {
    /// Every register write, in order.
    pub writes: Vec<(usize, u32)>,
    /// The MAC's registers, by CSR index.
    pub mac: [u32; 16],
    /// PHY register writes (register, value).
    pub phy_writes: Vec<(u32, u32)>,
    /// Frames waiting: status word and data words.
    pub rx: VecDeque<(u32, Vec<u32>)>,
    /// The data words of the frame whose status was popped.
    pub rx_current: VecDeque<u32>,
    /// RX data words read past the end of a frame (an underflow: a driver bug).
    pub rx_underflows: usize,
    /// Fast-forwards requested.
    pub fast_forwards: usize,
    /// Frames transmitted: (command A, command B, bytes).
    pub sent: Vec<(u32, u32, Vec<u8>)>,
    /// TX status words not yet read.
    pub tx_status: VecDeque<u32>,
    /// Set the error bit in the TX status of every frame sent.
    pub tx_fail: bool,
    /// Free bytes `TX_FIFO_INF` reports.
    pub tx_free: u32,
    tx_words: Vec<u32>,
    /// Reads of `HW_CFG` before a soft reset completes; `usize::MAX`: never.
    pub reset_reads: usize,
    resetting: usize,
    pub int_sts: u32,
    pub int_en: u32,
    pub irq_cfg: u32,
    pub hw_cfg: u32,
    pub tx_cfg: u32,
    pub rx_cfg: u32,
    pub byte_test: u32,
    pub id_rev: u32,
    mac_data: u32,
}

impl FakeChip {
    /// A LAN9118 with an empty RX FIFO, a free TX FIFO, and a reset that takes 3 reads.
    pub fn new() -> Self {
        FakeChip {
            byte_test: regs::BYTE_TEST_VALUE,
            id_rev: 0x0118_0001,
            tx_free: 4608,
            reset_reads: 3,
            ..FakeChip::default()
        }
    }

    /// Queues a received frame as the chip stores it: the status word (length with
    /// FCS), then the bytes and a 4-byte FCS in little-endian words.
    pub fn receive(&mut self, frame: &[u8], status_flags: u32) {
        let mut bytes = frame.to_vec();
        bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        self.receive_raw(&bytes, status_flags);
    }

    /// Queues `bytes` (FCS included) with its status word.
    pub fn receive_raw(&mut self, bytes: &[u8], status_flags: u32) {
        let words = bytes
            .chunks(4)
            .map(|c| {
                let mut w = [0; 4];
                w[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(w)
            })
            .collect();
        let status = ((bytes.len() as u32) << regs::RX_STS_LEN_SHIFT) | status_flags;
        self.rx.push_back((status, words));
        self.int_sts |= regs::INT_RSFL;
    }

    fn mac_access(&mut self, cmd: u32) {
        let index = (cmd & 0xf) as usize;
        if cmd & regs::MAC_CSR_READ != 0 {
            self.mac_data = self.mac[index];
            return;
        }
        self.mac[index] = self.mac_data;
        if index == regs::MII_ACC as usize {
            let reg = (self.mac_data >> regs::MII_REG_SHIFT) & 0x1f;
            if self.mac_data & regs::MII_WRITE != 0 {
                self.phy_writes
                    .push((reg, self.mac[regs::MII_DATA as usize]));
            }
            // The access completes at once.
            self.mac[index] &= !regs::MII_BUSY;
        }
    }

    fn tx_push(&mut self, word: u32) {
        self.tx_words.push(word);
        let [a, b, data @ ..] = self.tx_words.as_slice() else {
            return;
        };
        let len = (a & 0x7ff) as usize;
        if data.len() < len.div_ceil(4) {
            return;
        }
        let bytes: Vec<u8> = data
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .take(len)
            .collect();
        let (a, b) = (*a, *b);
        self.sent.push((a, b, bytes));
        let status = (b & 0xffff_0000) | if self.tx_fail { regs::TX_STS_ES } else { 0 };
        self.tx_status.push_back(status);
        self.tx_words.clear();
    }
}

impl Registers for FakeChip {
    fn read(&mut self, offset: usize) -> u32 {
        match offset {
            regs::RX_DATA_FIFO => self.rx_current.pop_front().unwrap_or_else(|| {
                self.rx_underflows += 1;
                0
            }),
            regs::RX_STATUS_FIFO => match self.rx.pop_front() {
                Some((status, words)) => {
                    assert!(
                        self.rx_current.is_empty(),
                        "status popped before the last frame's data was read"
                    );
                    self.rx_current = words.into();
                    status
                }
                None => 0,
            },
            regs::TX_STATUS_FIFO => self.tx_status.pop_front().unwrap_or(0),
            regs::ID_REV => self.id_rev,
            regs::BYTE_TEST => self.byte_test,
            regs::INT_STS => self.int_sts,
            regs::INT_EN => self.int_en,
            regs::IRQ_CFG => self.irq_cfg,
            regs::HW_CFG => {
                if self.resetting > 0 {
                    self.resetting -= 1;
                    regs::HW_CFG_SRST
                } else {
                    self.hw_cfg
                }
            }
            regs::PMT_CTRL => regs::PMT_READY,
            regs::RX_DP_CTRL => 0,
            regs::RX_FIFO_INF => (self.rx.len() as u32) << regs::RXSUSED_SHIFT,
            regs::TX_FIFO_INF => {
                ((self.tx_status.len() as u32) << regs::TXSUSED_SHIFT) | self.tx_free
            }
            regs::MAC_CSR_CMD => 0,
            regs::MAC_CSR_DATA => self.mac_data,
            _ => panic!("read of unmodelled register {offset:#x}"),
        }
    }

    fn write(&mut self, offset: usize, value: u32) {
        self.writes.push((offset, value));
        match offset {
            regs::TX_DATA_FIFO => self.tx_push(value),
            regs::INT_STS => self.int_sts &= !value,
            regs::INT_EN => self.int_en = value,
            regs::IRQ_CFG => self.irq_cfg = value,
            regs::FIFO_INT => {}
            regs::RX_CFG => self.rx_cfg = value,
            regs::TX_CFG => self.tx_cfg = value,
            regs::HW_CFG if value & regs::HW_CFG_SRST != 0 => {
                self.resetting = self.reset_reads;
                self.hw_cfg = 0;
            }
            regs::HW_CFG => self.hw_cfg = value,
            regs::RX_DP_CTRL if value & regs::RX_FFWD != 0 => {
                self.fast_forwards += 1;
                self.rx_current.clear();
            }
            regs::MAC_CSR_DATA => self.mac_data = value,
            regs::MAC_CSR_CMD if value & regs::MAC_CSR_BUSY != 0 => self.mac_access(value),
            _ => panic!("write of {value:#x} to unmodelled register {offset:#x}"),
        }
    }
}
