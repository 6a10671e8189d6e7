//! The driver: bring-up, the RX and TX FIFOs, and smoltcp's `Device`.

use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;

use crate::regs::{self, Registers};

/// The largest Ethernet frame the driver passes, without its FCS: 1500 bytes of payload
/// and a 14-byte header. Longer frames are dropped on receive.
pub const MAX_FRAME: usize = 1514;
/// The LAN9118's base address on QEMU's `mps2-an385` and `mps2-an386`.
pub const MPS2_BASE: usize = 0x4020_0000;
/// The LAN9118's interrupt line (NVIC external interrupt number) on those boards.
pub const MPS2_IRQ: u16 = 13;

/// How many times a self-clearing bit (reset, MAC CSR busy, fast-forward) is polled
/// before the chip is declared stuck: bounded, so a dead chip is an error, not a hang.
const SPINS: usize = 100_000;
/// The chip's ids with the LAN9118's register map (high half of `ID_REV`).
const KNOWN_IDS: [u16; 6] = [0x0115, 0x0116, 0x0117, 0x0118, 0x9220, 0x9221];
/// Frames one `receive` call may discard before it gives up for this poll, so a flood
/// of bad frames cannot hold the CPU.
const DISCARDS_PER_CALL: usize = 8;

/// How the driver is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The station address programmed into the MAC; frames to other unicast addresses
    /// are filtered out by the chip.
    pub mac: [u8; 6],
    /// TX FIFO size in KiB (2 to 14); the RX FIFO gets the rest of the chip's 16 KiB.
    pub tx_fifo_kib: u8,
    /// Discard a bad frame of 4 words or more with `RX_DP_CTRL`'s fast-forward, as the
    /// datasheet advises; otherwise (and always for shorter frames, as the datasheet
    /// requires) read its words out and drop them. QEMU's model (checked against 7.2)
    /// does not release the FIFO space on a fast-forward, so turn it off there.
    pub fast_forward: bool,
}

impl Config {
    /// `mac`, a 5 KiB TX FIFO, and fast-forward on, as on silicon.
    pub const fn new(mac: [u8; 6]) -> Self {
        Config {
            mac,
            tx_fifo_kib: 5,
            fast_forward: true,
        }
    }
}

/// Why the chip could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// `BYTE_TEST` did not read `0x8765_4321`: no chip, or a bus set up wrong.
    NotFound(u32),
    /// `ID_REV` names a chip without this register map.
    UnknownChip(u32),
    /// A self-clearing bit did not clear: the reset, a MAC CSR access or a PHY access.
    Timeout,
}

/// What the driver counted since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Frames handed to smoltcp.
    pub rx_frames: u32,
    /// Frames the chip flagged as errored (bad CRC, runt, too long, filter failure).
    pub rx_errors: u32,
    /// Frames too long for the driver's buffer, or too short to be Ethernet.
    pub rx_bad_length: u32,
    /// Frames pushed into the TX FIFO.
    pub tx_frames: u32,
    /// TX status words with the error bit set.
    pub tx_errors: u32,
    /// Frames smoltcp asked to send longer than [`MAX_FRAME`]: not sent.
    pub tx_too_long: u32,
}

/// The LAN9118 driver over register access `R`.
#[derive(Debug)]
pub struct Lan9118<R> {
    regs: R,
    config: Config,
    chip_id: u32,
    stats: Stats,
    rx_buf: [u8; MAX_FRAME],
    tx_buf: [u8; MAX_FRAME],
}

impl<R: Registers> Lan9118<R> {
    /// Finds the chip, resets it, programs the MAC address and turns the transmitter and
    /// receiver on. The IRQ pin is set up (active high, push-pull) but no interrupt is
    /// enabled: see [`enable_rx_interrupt`](Self::enable_rx_interrupt).
    pub fn new(regs: R, config: Config) -> Result<Self, Error> {
        let mut chip = Lan9118 {
            regs,
            config,
            chip_id: 0,
            stats: Stats::default(),
            rx_buf: [0; MAX_FRAME],
            tx_buf: [0; MAX_FRAME],
        };
        chip.bring_up()?;
        Ok(chip)
    }

    fn bring_up(&mut self) -> Result<(), Error> {
        let test = self.regs.read(regs::BYTE_TEST);
        if test != regs::BYTE_TEST_VALUE {
            return Err(Error::NotFound(test));
        }
        let id = self.regs.read(regs::ID_REV);
        if !KNOWN_IDS.contains(&((id >> 16) as u16)) {
            return Err(Error::UnknownChip(id));
        }
        self.chip_id = id;
        self.reset()?;
        let kib = u32::from(self.config.tx_fifo_kib.clamp(2, 14));
        self.regs.write(
            regs::HW_CFG,
            (kib << regs::HW_CFG_TX_FIF_SZ_SHIFT) | regs::HW_CFG_MBO,
        );
        self.regs.write(regs::INT_EN, 0);
        self.regs.write(regs::INT_STS, u32::MAX);
        self.regs
            .write(regs::IRQ_CFG, regs::IRQ_EN | regs::IRQ_POL | regs::IRQ_TYPE);
        // RSFL fires as soon as the RX status FIFO holds one frame (level 0).
        self.regs.write(regs::FIFO_INT, 0x4800_0000);
        self.set_mac_address(self.config.mac)?;
        self.phy_write(regs::PHY_BMCR, regs::BMCR_ANENABLE | regs::BMCR_ANRESTART)?;
        // No offset before a received frame, no end padding: words start at byte 0.
        self.regs.write(regs::RX_CFG, 0);
        self.regs.write(regs::TX_CFG, regs::TX_ON | regs::TXSAO);
        self.mac_write(
            regs::MAC_CR,
            regs::MAC_CR_TXEN | regs::MAC_CR_RXEN | regs::MAC_CR_FDPX,
        )
    }

    /// Soft reset, then wait for the chip to say it is ready.
    fn reset(&mut self) -> Result<(), Error> {
        self.regs.write(regs::HW_CFG, regs::HW_CFG_SRST);
        self.spin_until(regs::HW_CFG, |v| v & regs::HW_CFG_SRST == 0)?;
        self.spin_until(regs::PMT_CTRL, |v| v & regs::PMT_READY != 0)
    }

    /// Polls `offset` until `done` says so, at most [`SPINS`] reads.
    fn spin_until(&mut self, offset: usize, done: impl Fn(u32) -> bool) -> Result<(), Error> {
        for _ in 0..SPINS {
            if done(self.regs.read(offset)) {
                return Ok(());
            }
        }
        Err(Error::Timeout)
    }

    /// Programs the MAC's station address (`ADDRL` holds bytes 0 to 3, `ADDRH` 4 and 5,
    /// least significant byte first).
    pub fn set_mac_address(&mut self, mac: [u8; 6]) -> Result<(), Error> {
        let [a, b, c, d, e, f] = mac;
        self.mac_write(regs::MAC_ADDRL, u32::from_le_bytes([a, b, c, d]))?;
        self.mac_write(regs::MAC_ADDRH, u32::from_le_bytes([e, f, 0, 0]))?;
        self.config.mac = mac;
        Ok(())
    }

    /// The station address in use.
    pub const fn mac_address(&self) -> [u8; 6] {
        self.config.mac
    }

    /// `ID_REV` as read at start: chip id in the high half, revision in the low.
    pub const fn chip_id(&self) -> u32 {
        self.chip_id
    }

    /// What the driver counted.
    pub const fn stats(&self) -> Stats {
        self.stats
    }

    /// Reads a MAC register through the MAC CSR window.
    pub fn mac_read(&mut self, index: u32) -> Result<u32, Error> {
        self.spin_until(regs::MAC_CSR_CMD, |v| v & regs::MAC_CSR_BUSY == 0)?;
        self.regs.write(
            regs::MAC_CSR_CMD,
            regs::MAC_CSR_BUSY | regs::MAC_CSR_READ | index,
        );
        self.spin_until(regs::MAC_CSR_CMD, |v| v & regs::MAC_CSR_BUSY == 0)?;
        Ok(self.regs.read(regs::MAC_CSR_DATA))
    }

    /// Writes a MAC register through the MAC CSR window: data first, then the command.
    pub fn mac_write(&mut self, index: u32, value: u32) -> Result<(), Error> {
        self.spin_until(regs::MAC_CSR_CMD, |v| v & regs::MAC_CSR_BUSY == 0)?;
        self.regs.write(regs::MAC_CSR_DATA, value);
        self.regs
            .write(regs::MAC_CSR_CMD, regs::MAC_CSR_BUSY | index);
        self.spin_until(regs::MAC_CSR_CMD, |v| v & regs::MAC_CSR_BUSY == 0)
    }

    /// Writes a register of the internal PHY, through the MAC's MII registers.
    fn phy_write(&mut self, reg: u32, value: u32) -> Result<(), Error> {
        self.mac_write(regs::MII_DATA, value & 0xffff)?;
        let cmd = (regs::PHY_ADDR << regs::MII_PHY_SHIFT)
            | (reg << regs::MII_REG_SHIFT)
            | regs::MII_WRITE
            | regs::MII_BUSY;
        self.mac_write(regs::MII_ACC, cmd)?;
        for _ in 0..SPINS {
            if self.mac_read(regs::MII_ACC)? & regs::MII_BUSY == 0 {
                return Ok(());
            }
        }
        Err(Error::Timeout)
    }

    /// Lets the chip raise its IRQ line when a frame is received (`RSFL`: the RX status
    /// FIFO is not empty). The line stays up until [`ack_interrupts`](Self::ack_interrupts).
    pub fn enable_rx_interrupt(&mut self) {
        let enabled = self.regs.read(regs::INT_EN);
        self.regs.write(regs::INT_EN, enabled | regs::INT_RSFL);
    }

    /// Clears every pending interrupt status bit and returns them. Call it before
    /// draining the RX FIFO: a frame that arrives afterwards raises the line again.
    pub fn ack_interrupts(&mut self) -> u32 {
        let pending = self.regs.read(regs::INT_STS);
        self.regs.write(regs::INT_STS, pending);
        pending
    }

    /// Frames waiting in the RX FIFO (their status words).
    pub fn rx_pending(&mut self) -> u32 {
        (self.regs.read(regs::RX_FIFO_INF) >> regs::RXSUSED_SHIFT) & regs::COUNT_MASK
    }

    /// Pops the next good frame into the receive buffer and returns its length without
    /// FCS; drops errored and oversized frames on the way (a few per call at most).
    fn receive_frame(&mut self) -> Option<usize> {
        for _ in 0..DISCARDS_PER_CALL {
            if self.rx_pending() == 0 {
                return None;
            }
            let status = self.regs.read(regs::RX_STATUS_FIFO);
            let len = ((status >> regs::RX_STS_LEN_SHIFT) & regs::RX_STS_LEN_MASK) as usize;
            let words = len.div_ceil(4);
            if status & (regs::RX_STS_ES | regs::RX_STS_FILTER_FAIL) != 0 {
                self.stats.rx_errors += 1;
                self.discard(words);
                continue;
            }
            // The length counts the 4-byte FCS, which the chip leaves in the FIFO.
            let Some(frame) = len.checked_sub(4).filter(|n| (14..=MAX_FRAME).contains(n)) else {
                self.stats.rx_bad_length += 1;
                self.discard(words);
                continue;
            };
            self.read_words(frame, words);
            self.stats.rx_frames += 1;
            return Some(frame);
        }
        None
    }

    /// Reads a frame's `words` words and keeps its first `len` bytes in the RX buffer.
    fn read_words(&mut self, len: usize, words: usize) {
        let mut chunks = self.rx_buf.chunks_mut(4).take(len.div_ceil(4));
        for _ in 0..words {
            let word = self.regs.read(regs::RX_DATA_FIFO).to_le_bytes();
            if let Some(chunk) = chunks.next() {
                chunk.copy_from_slice(word.get(..chunk.len()).unwrap_or(&[]));
            }
        }
    }

    /// Drops the current frame of `words` words from the RX data FIFO.
    fn discard(&mut self, words: usize) {
        if self.config.fast_forward && words >= 4 {
            self.regs.write(regs::RX_DP_CTRL, regs::RX_FFWD);
            // A chip that never clears the bit has bigger problems; the next status
            // word will tell.
            let _ = self.spin_until(regs::RX_DP_CTRL, |v| v & regs::RX_FFWD == 0);
        } else {
            for _ in 0..words {
                let _ = self.regs.read(regs::RX_DATA_FIFO);
            }
        }
    }

    /// True when the TX data FIFO has room for the largest frame and its command words.
    fn tx_ready(&mut self) -> bool {
        let free = (self.regs.read(regs::TX_FIFO_INF) & regs::TDFREE_MASK) as usize;
        free >= MAX_FRAME.next_multiple_of(4) + 8
    }

    /// Pops the TX status words of frames already sent, counting the errored ones.
    fn reap_tx_status(&mut self) {
        let used = (self.regs.read(regs::TX_FIFO_INF) >> regs::TXSUSED_SHIFT) & regs::COUNT_MASK;
        for _ in 0..used {
            if self.regs.read(regs::TX_STATUS_FIFO) & regs::TX_STS_ES != 0 {
                self.stats.tx_errors += 1;
            }
        }
    }
}

/// Pushes `frame` into the TX FIFO as one segment: command A (first and last segment,
/// the length), command B (a tag, the length), then the bytes, little-endian words.
fn transmit<R: Registers>(regs: &mut R, frame: &[u8], tag: u32) {
    let len = frame.len() as u32;
    regs.write(
        regs::TX_DATA_FIFO,
        regs::TX_CMD_A_FIRST | regs::TX_CMD_A_LAST | len,
    );
    regs.write(regs::TX_DATA_FIFO, (tag << regs::TX_TAG_SHIFT) | len);
    for chunk in frame.chunks(4) {
        let mut word = [0; 4];
        for (to, from) in word.iter_mut().zip(chunk) {
            *to = *from;
        }
        regs.write(regs::TX_DATA_FIFO, u32::from_le_bytes(word));
    }
}

/// A received frame, lent to smoltcp.
#[derive(Debug)]
pub struct Rx<'a> {
    frame: &'a [u8],
}

impl RxToken for Rx<'_> {
    fn consume<T, F: FnOnce(&[u8]) -> T>(self, f: F) -> T {
        f(self.frame)
    }
}

/// Room for one frame to send: smoltcp writes it into the driver's buffer, then the
/// driver pushes it into the TX FIFO.
#[derive(Debug)]
pub struct Tx<'a, R> {
    regs: &'a mut R,
    buf: &'a mut [u8; MAX_FRAME],
    stats: &'a mut Stats,
}

impl<R: Registers> TxToken for Tx<'_, R> {
    fn consume<T, F: FnOnce(&mut [u8]) -> T>(self, len: usize, f: F) -> T {
        let Some(frame) = self.buf.get_mut(..len) else {
            // smoltcp never asks for more than the MTU it was given; if it did, the frame
            // is built in the whole buffer and not sent, rather than sent cut short.
            self.stats.tx_too_long += 1;
            return f(self.buf.as_mut_slice());
        };
        let value = f(frame);
        // The tag is only read back in the TX status; the frame count tells them apart.
        transmit(self.regs, frame, self.stats.tx_frames & 0xffff);
        self.stats.tx_frames += 1;
        value
    }
}

impl<R: Registers> Device for Lan9118<R> {
    type RxToken<'a>
        = Rx<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a, R>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_, R>)> {
        // The frame may need an answer: only take it when one could be sent.
        self.reap_tx_status();
        if !self.tx_ready() {
            return None;
        }
        let len = self.receive_frame()?;
        let frame = self.rx_buf.get(..len)?;
        let tx = Tx {
            regs: &mut self.regs,
            buf: &mut self.tx_buf,
            stats: &mut self.stats,
        };
        Some((Rx { frame }, tx))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_, R>> {
        self.reap_tx_status();
        if !self.tx_ready() {
            return None;
        }
        Some(Tx {
            regs: &mut self.regs,
            buf: &mut self.tx_buf,
            stats: &mut self.stats,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        // For Ethernet, smoltcp's MTU counts the 14-byte header.
        caps.max_transmission_unit = MAX_FRAME;
        // The default checksum capabilities (smoltcp computes and verifies every
        // checksum) are right: the chip, and QEMU's model of it, offload none.
        caps
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;
    use crate::fake::FakeChip;

    const MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

    fn chip() -> Lan9118<FakeChip> {
        Lan9118::new(FakeChip::new(), Config::new(MAC)).unwrap()
    }

    /// A frame of `len` bytes whose every byte differs from its neighbours.
    fn frame(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(37).wrapping_add(seed))
            .collect()
    }

    fn recv(eth: &mut Lan9118<FakeChip>) -> Option<Vec<u8>> {
        let (rx, _tx) = eth.receive(Instant::ZERO)?;
        Some(rx.consume(|bytes| bytes.to_vec()))
    }

    #[test]
    fn bring_up_resets_then_programs_the_mac_and_turns_tx_and_rx_on() {
        let eth = chip();
        let regs = &eth.regs;
        assert_eq!(
            regs.writes.first(),
            Some(&(regs::HW_CFG, regs::HW_CFG_SRST))
        );
        assert_eq!(regs.hw_cfg, (5 << 16) | regs::HW_CFG_MBO);
        assert_eq!(regs.mac[regs::MAC_ADDRL as usize], 0x3322_1102);
        assert_eq!(regs.mac[regs::MAC_ADDRH as usize], 0x5544);
        assert_eq!(
            regs.mac[regs::MAC_CR as usize],
            regs::MAC_CR_TXEN | regs::MAC_CR_RXEN | regs::MAC_CR_FDPX
        );
        assert_eq!(regs.tx_cfg, regs::TX_ON | regs::TXSAO);
        assert_eq!(regs.rx_cfg, 0);
        assert_eq!(regs.irq_cfg, regs::IRQ_EN | regs::IRQ_POL | regs::IRQ_TYPE);
        assert_eq!(regs.int_en, 0, "no interrupt until asked for");
        assert_eq!(
            regs.phy_writes,
            [(regs::PHY_BMCR, regs::BMCR_ANENABLE | regs::BMCR_ANRESTART)]
        );
        assert_eq!(eth.chip_id(), 0x0118_0001);
        assert_eq!(eth.mac_address(), MAC);
    }

    #[test]
    fn a_missing_or_unknown_chip_or_a_stuck_reset_is_an_error() {
        let mut absent = FakeChip::new();
        absent.byte_test = 0xffff_ffff;
        let err = Lan9118::new(absent, Config::new(MAC)).unwrap_err();
        assert_eq!(err, Error::NotFound(0xffff_ffff));

        let mut other = FakeChip::new();
        other.id_rev = 0x1234_0001;
        let err = Lan9118::new(other, Config::new(MAC)).unwrap_err();
        assert_eq!(err, Error::UnknownChip(0x1234_0001));

        let mut stuck = FakeChip::new();
        stuck.reset_reads = usize::MAX;
        let err = Lan9118::new(stuck, Config::new(MAC)).unwrap_err();
        assert_eq!(err, Error::Timeout);
    }

    #[test]
    fn the_mac_address_reads_back_through_the_csr_window() {
        let mut eth = chip();
        eth.set_mac_address([1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(eth.mac_read(regs::MAC_ADDRL).unwrap(), 0x0403_0201);
        assert_eq!(eth.mac_read(regs::MAC_ADDRH).unwrap(), 0x0605);
    }

    #[test]
    fn frames_of_every_length_modulo_4_arrive_whole_without_fcs() {
        let mut eth = chip();
        let frames: Vec<Vec<u8>> = (60..64)
            .chain([14, MAX_FRAME])
            .map(|n| frame(n, n as u8))
            .collect();
        for f in &frames {
            eth.regs.receive(f, 0);
        }
        assert_eq!(eth.rx_pending(), frames.len() as u32);
        for f in &frames {
            assert_eq!(recv(&mut eth).as_ref(), Some(f));
        }
        assert_eq!(recv(&mut eth), None);
        assert_eq!(eth.regs.rx_underflows, 0);
        assert!(
            eth.regs.rx_current.is_empty(),
            "every word of every frame read"
        );
        assert_eq!(eth.stats().rx_frames, frames.len() as u32);
    }

    #[test]
    fn errored_frames_are_fast_forwarded_or_read_out_and_the_next_arrives() {
        let mut eth = chip();
        let good = frame(64, 9);
        eth.regs.receive(&frame(100, 1), regs::RX_STS_ES); // 26 words: fast-forward
        eth.regs
            .receive_raw(&[1, 2, 3, 4, 5, 6, 7, 8], regs::RX_STS_ES); // 2 words: read out
        eth.regs.receive(&frame(80, 2), regs::RX_STS_FILTER_FAIL);
        eth.regs.receive(&good, 0);
        assert_eq!(recv(&mut eth), Some(good));
        assert_eq!(eth.regs.fast_forwards, 2);
        assert_eq!(eth.regs.rx_underflows, 0);
        assert_eq!(eth.stats().rx_errors, 3);
        assert_eq!(eth.stats().rx_frames, 1);
    }

    #[test]
    fn without_fast_forward_a_bad_frame_is_read_out_word_by_word() {
        let mut config = Config::new(MAC);
        config.fast_forward = false;
        let mut eth = Lan9118::new(FakeChip::new(), config).unwrap();
        let good = frame(61, 3);
        eth.regs.receive(&frame(200, 1), regs::RX_STS_ES);
        eth.regs.receive(&good, 0);
        assert_eq!(recv(&mut eth), Some(good));
        assert_eq!(eth.regs.fast_forwards, 0);
        assert_eq!(eth.regs.rx_underflows, 0);
        assert!(eth.regs.writes.iter().all(|&(o, _)| o != regs::RX_DP_CTRL));
    }

    #[test]
    fn oversized_and_runt_frames_are_dropped() {
        let mut eth = chip();
        let good = frame(42, 5);
        eth.regs.receive(&frame(MAX_FRAME + 1, 1), 0);
        eth.regs.receive(&frame(1600, 2), 0);
        eth.regs.receive(&frame(10, 3), 0);
        eth.regs.receive_raw(&[], 0); // a zero-length status: no FCS even
        eth.regs.receive(&good, 0);
        assert_eq!(recv(&mut eth), Some(good));
        assert_eq!(eth.stats().rx_bad_length, 4);
        assert_eq!(eth.regs.rx_underflows, 0);
        assert!(eth.regs.rx.is_empty() && eth.regs.rx_current.is_empty());
    }

    #[test]
    fn a_flood_of_bad_frames_is_worked_off_a_few_per_call() {
        let mut eth = chip();
        for _ in 0..DISCARDS_PER_CALL + 2 {
            eth.regs.receive(&frame(64, 0), regs::RX_STS_ES);
        }
        let good = frame(64, 7);
        eth.regs.receive(&good, 0);
        assert_eq!(recv(&mut eth), None, "gives up after a few");
        assert_eq!(eth.rx_pending(), 3);
        assert_eq!(recv(&mut eth), Some(good));
    }

    #[test]
    fn transmit_writes_command_a_b_and_the_bytes() {
        let mut eth = chip();
        for len in [60, 61, 62, 63, MAX_FRAME] {
            let bytes = frame(len, len as u8);
            let tx = eth.transmit(Instant::ZERO).unwrap();
            tx.consume(len, |buf| buf.copy_from_slice(&bytes));
            let (a, b, sent) = eth.regs.sent.last().unwrap();
            assert_eq!(*a, regs::TX_CMD_A_FIRST | regs::TX_CMD_A_LAST | len as u32);
            assert_eq!(b & 0xffff, len as u32);
            assert_eq!(sent, &bytes);
        }
        assert_eq!(eth.stats().tx_frames, 5);
        // The next call reaps the status words, and counts errored ones.
        eth.regs.tx_fail = true;
        let tx = eth.transmit(Instant::ZERO).unwrap();
        tx.consume(60, |buf| buf.fill(0));
        let _ = eth.transmit(Instant::ZERO).unwrap();
        assert!(eth.regs.tx_status.is_empty());
        assert_eq!(eth.stats().tx_errors, 1);
    }

    #[test]
    fn a_full_tx_fifo_gives_no_token_and_receive_waits_for_it() {
        let mut eth = chip();
        eth.regs.tx_free = 1000;
        eth.regs.receive(&frame(64, 1), 0);
        assert!(eth.transmit(Instant::ZERO).is_none());
        assert!(eth.receive(Instant::ZERO).is_none());
        assert_eq!(eth.rx_pending(), 1, "the frame waits in the FIFO");
        eth.regs.tx_free = 4608;
        assert_eq!(recv(&mut eth), Some(frame(64, 1)));
    }

    #[test]
    fn a_frame_too_long_for_the_buffer_is_not_sent() {
        let mut eth = chip();
        let tx = eth.transmit(Instant::ZERO).unwrap();
        let seen = tx.consume(MAX_FRAME + 1, |buf| buf.len());
        assert_eq!(seen, MAX_FRAME);
        assert!(eth.regs.sent.is_empty());
        assert_eq!(eth.stats().tx_too_long, 1);
    }

    #[test]
    fn the_rx_interrupt_is_enabled_and_acknowledged() {
        let mut eth = chip();
        eth.enable_rx_interrupt();
        assert_eq!(eth.regs.int_en, regs::INT_RSFL);
        eth.regs.receive(&frame(64, 1), 0);
        assert_eq!(eth.ack_interrupts(), regs::INT_RSFL);
        assert_eq!(eth.regs.int_sts, 0);
        assert_eq!(eth.ack_interrupts(), 0);
    }

    #[test]
    fn smoltcp_answers_an_arp_request_through_the_driver() {
        use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet};
        use smoltcp::wire::{
            ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
            EthernetRepr, HardwareAddress, IpCidr, Ipv4Address,
        };

        let mut eth = chip();
        let ours = EthernetAddress(MAC);
        let ip = Ipv4Address::new(10, 0, 2, 15);
        let mut iface = Interface::new(
            IfaceConfig::new(HardwareAddress::Ethernet(ours)),
            &mut eth,
            Instant::ZERO,
        );
        iface.update_ip_addrs(|a| a.push(IpCidr::new(ip.into(), 24)).unwrap());

        let peer = EthernetAddress([0x52, 0x55, 10, 0, 2, 2]);
        let peer_ip = Ipv4Address::new(10, 0, 2, 2);
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: peer,
            source_protocol_addr: peer_ip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: ip,
        };
        let repr = EthernetRepr {
            src_addr: peer,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EthernetProtocol::Arp,
        };
        let mut bytes = std::vec![0; repr.buffer_len() + arp.buffer_len()];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        repr.emit(&mut frame);
        arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        eth.regs.receive(&bytes, 0);

        let mut storage: [smoltcp::iface::SocketStorage; 1] = Default::default();
        let mut sockets = SocketSet::new(&mut storage[..]);
        iface.poll(Instant::ZERO, &mut eth, &mut sockets);

        let (_, _, reply) = eth.regs.sent.last().expect("an ARP reply");
        let frame = EthernetFrame::new_checked(&reply[..]).unwrap();
        assert_eq!(frame.dst_addr(), peer);
        assert_eq!(frame.src_addr(), ours);
        let answer = ArpRepr::parse(&ArpPacket::new_checked(frame.payload()).unwrap()).unwrap();
        assert_eq!(
            answer,
            ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_hardware_addr: ours,
                source_protocol_addr: ip,
                target_hardware_addr: peer,
                target_protocol_addr: peer_ip,
            }
        );
    }
}
