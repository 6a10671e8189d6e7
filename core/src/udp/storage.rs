//! Where a UDP echo's memory lives, lent like the TCP server's (see [`Storage`](crate::Storage)).
//!
//! Three tables: the ring of datagram slots (one [`DatagramSlot`] each: who gets the echo,
//! how long it is), their bytes (`slots × slot_size`: one fixed-size buffer per slot, so a
//! datagram is received straight into the slot it will be sent from), and the flood
//! guard's table of recent sources.

use super::endpoint::Endpoint;
use super::flood_guard::SourceSlot;
use core::fmt;

/// One slot of the queue of datagrams: where its echo goes and its length. Opaque;
/// [`DatagramSlot::EMPTY`] to fill a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DatagramSlot {
    pub(crate) to: Endpoint,
    pub(crate) len: u32,
}

impl DatagramSlot {
    /// A slot holding nothing.
    pub const EMPTY: DatagramSlot = DatagramSlot {
        to: Endpoint::UNSPECIFIED,
        len: 0,
    };
}

/// The tables a [`UdpEcho`](super::UdpEcho) works in, borrowed together.
#[derive(Debug)]
pub struct UdpParts<'a> {
    /// The ring of datagram slots: up to `len − 1` echoes wait, and one slot is always
    /// free for the next datagram to land in.
    pub slots: &'a mut [DatagramSlot],
    /// The slots' bytes: slot `k` is `[k × slot_size, (k + 1) × slot_size)`.
    pub bytes: &'a mut [u8],
    /// The largest datagram a slot holds; a longer one is dropped as truncated.
    pub slot_size: usize,
    /// The flood guard's table of recent sources (sets of
    /// [`WAYS`](super::WAYS) slots).
    pub sources: &'a mut [SourceSlot],
}

/// Memory a [`UdpEcho`](super::UdpEcho) works in. Like [`Storage`](crate::Storage), an
/// implementation must hand out the same tables every time: they are checked once, in
/// [`UdpEcho::new`](super::UdpEcho::new).
pub trait UdpStorage {
    /// The tables.
    fn parts(&mut self) -> UdpParts<'_>;
}

impl<T: UdpStorage + ?Sized> UdpStorage for &mut T {
    fn parts(&mut self) -> UdpParts<'_> {
        (**self).parts()
    }
}

/// Tables that do not fit: what [`UdpEcho::new`](super::UdpEcho::new) refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum UdpStorageError {
    /// Fewer than two datagram slots: no room for one echo to wait beside the landing slot.
    TooFewSlots,
    /// A slot size of 0, or over `u32::MAX`.
    SlotSize,
    /// Fewer bytes than `slots × slot_size`.
    TooFewBytes,
    /// No source table: the flood guard would have nowhere to count.
    NoSources,
}

impl fmt::Display for UdpStorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UdpStorageError::TooFewSlots => "a UDP echo needs at least 2 datagram slots",
            UdpStorageError::SlotSize => "a datagram slot must hold 1 to u32::MAX bytes",
            UdpStorageError::TooFewBytes => "fewer bytes than slots x slot_size",
            UdpStorageError::NoSources => "the flood guard needs at least one source slot",
        })
    }
}

impl core::error::Error for UdpStorageError {}

/// Checks tables once; after this every index the echo computes is in range.
pub(crate) fn check(parts: &UdpParts<'_>) -> Result<(), UdpStorageError> {
    if parts.slots.len() < 2 {
        return Err(UdpStorageError::TooFewSlots);
    }
    if parts.slot_size == 0 || u32::try_from(parts.slot_size).is_err() {
        return Err(UdpStorageError::SlotSize);
    }
    match parts.slots.len().checked_mul(parts.slot_size) {
        Some(need) if need <= parts.bytes.len() => {}
        _ => return Err(UdpStorageError::TooFewBytes),
    }
    if parts.sources.is_empty() {
        return Err(UdpStorageError::NoSources);
    }
    Ok(())
}

/// Tables in arrays sized by const generics, for a `static` on a microcontroller:
/// `SLOTS` datagram slots of `SLOT_SIZE` bytes (`SLOTS − 1` echoes may wait) and a flood
/// guard of `SOURCES` recent sources.
#[derive(Clone, Debug)]
pub struct UdpStaticStorage<const SLOTS: usize, const SLOT_SIZE: usize, const SOURCES: usize> {
    slots: [DatagramSlot; SLOTS],
    bytes: [[u8; SLOT_SIZE]; SLOTS],
    sources: [SourceSlot; SOURCES],
}

impl<const SLOTS: usize, const SLOT_SIZE: usize, const SOURCES: usize>
    UdpStaticStorage<SLOTS, SLOT_SIZE, SOURCES>
{
    /// Empty tables. Fails to compile for sizes [`UdpEcho::new`](super::UdpEcho::new)
    /// would refuse.
    pub const fn new() -> Self {
        const {
            assert!(SLOTS >= 2, "SLOTS must be at least 2");
            assert!(SLOT_SIZE >= 1, "SLOT_SIZE must be at least 1 byte");
            assert!(SLOT_SIZE <= u32::MAX as usize, "SLOT_SIZE must fit a u32");
            assert!(SOURCES >= 1, "SOURCES must be at least 1");
        }
        UdpStaticStorage {
            slots: [DatagramSlot::EMPTY; SLOTS],
            bytes: [[0; SLOT_SIZE]; SLOTS],
            sources: [SourceSlot::EMPTY; SOURCES],
        }
    }
}

impl<const SLOTS: usize, const SLOT_SIZE: usize, const SOURCES: usize> Default
    for UdpStaticStorage<SLOTS, SLOT_SIZE, SOURCES>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<const SLOTS: usize, const SLOT_SIZE: usize, const SOURCES: usize> UdpStorage
    for UdpStaticStorage<SLOTS, SLOT_SIZE, SOURCES>
{
    fn parts(&mut self) -> UdpParts<'_> {
        UdpParts {
            slots: &mut self.slots,
            bytes: self.bytes.as_flattened_mut(),
            slot_size: SLOT_SIZE,
            sources: &mut self.sources,
        }
    }
}

/// Borrowed tables of any length, for sizes known at run time (a host's boxed slices).
#[derive(Debug)]
pub struct UdpSliceStorage<'a> {
    slots: &'a mut [DatagramSlot],
    bytes: &'a mut [u8],
    slot_size: usize,
    sources: &'a mut [SourceSlot],
}

impl<'a> UdpSliceStorage<'a> {
    /// Lends the tables, checked as [`UdpEcho::new`](super::UdpEcho::new) checks them.
    pub fn new(
        slots: &'a mut [DatagramSlot],
        bytes: &'a mut [u8],
        slot_size: usize,
        sources: &'a mut [SourceSlot],
    ) -> Result<Self, UdpStorageError> {
        let mut storage = UdpSliceStorage {
            slots,
            bytes,
            slot_size,
            sources,
        };
        check(&storage.parts())?;
        Ok(storage)
    }
}

impl UdpStorage for UdpSliceStorage<'_> {
    fn parts(&mut self) -> UdpParts<'_> {
        UdpParts {
            slots: self.slots,
            bytes: self.bytes,
            slot_size: self.slot_size,
            sources: self.sources,
        }
    }
}
