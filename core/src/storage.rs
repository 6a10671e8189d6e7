//! Where a server's memory lives: lent by the caller, checked once, then used for ever.
//!
//! A server needs three tables, sized at run time: one [`ConnSlot`] per connection, the
//! buffer pool's free stack (one `u16` per buffer) and the pool's bytes (`buffers ×
//! queue_size`). [`Storage`] hands all three out together so that their borrows split, in
//! the manner of smoltcp's `SocketSet::new(&mut storage[..])` and heapless 0.9's
//! `VecInner<T, S>`, which is generic over owned or borrowed memory.
//!
//! - [`StaticStorage`]: arrays sized by const generics, for a `static` on a microcontroller,
//!   where `size_of` is the whole RAM at compile time;
//! - [`SliceStorage`]: borrowed slices of any length, for a caller with run-time sizes;
//! - anything else that implements [`Storage`] (the host keeps its tables on the heap).

use core::fmt;
use core::mem::size_of;

use crate::list::NIL;
use crate::slot::ConnSlot;
use crate::Server;

/// The most connections a server can serve: indices are `u16`, and `u16::MAX` marks "none".
pub const MAX_CONNS: usize = NIL as usize - 1;

/// The three tables a server works in, borrowed together. See [`Storage`].
#[derive(Debug)]
pub struct Parts<'a> {
    /// One slot per connection: the table's length is the server's capacity.
    pub slots: &'a mut [ConnSlot],
    /// The buffer pool's free stack: one entry per buffer, never initialised by the caller.
    pub free: &'a mut [u16],
    /// The pool's bytes: buffer `k` is `[k × queue_size, (k + 1) × queue_size)`.
    pub bytes: &'a mut [u8],
    /// The size of one buffer, which bounds one connection's queue.
    pub queue_size: usize,
}

/// The three tables, shared: what a query of the server reads.
#[derive(Debug, Clone, Copy)]
pub struct PartsRef<'a> {
    /// See [`Parts::slots`].
    pub slots: &'a [ConnSlot],
    /// See [`Parts::free`].
    pub free: &'a [u16],
    /// See [`Parts::bytes`].
    pub bytes: &'a [u8],
    /// See [`Parts::queue_size`].
    pub queue_size: usize,
}

/// Memory a [`Server`] works in. An implementation must hand out the same tables every
/// time: the server checks their sizes once, in [`Server::new`], and relies on them after
/// (a table that shrinks behind its back costs connections, never a panic).
///
/// The connection table may start shorter than the server's capacity and grow as slots
/// are first used ([`slots_capacity`](Storage::slots_capacity),
/// [`grow_slots`](Storage::grow_slots)): a host that reserves room for ten thousand
/// connections then touches the memory of only those it has served.
pub trait Storage {
    /// The tables, to change.
    fn parts(&mut self) -> Parts<'_>;
    /// The tables, to read.
    fn parts_ref(&self) -> PartsRef<'_>;
    /// How long the connection table can grow: the server's capacity. By default the
    /// table is as long as it will ever be.
    fn slots_capacity(&self) -> usize {
        self.parts_ref().slots.len()
    }
    /// Appends one [`ConnSlot::EMPTY`] to the connection table, within
    /// [`slots_capacity`](Storage::slots_capacity); false if it cannot (the server then
    /// refuses the connection it wanted the slot for). Called only when every slot of the
    /// table is in use, once per slot. By default the table never grows.
    fn grow_slots(&mut self) -> bool {
        false
    }
}

/// A server may borrow its storage, say from a `StaticCell`.
impl<T: Storage + ?Sized> Storage for &mut T {
    fn parts(&mut self) -> Parts<'_> {
        (**self).parts()
    }
    fn parts_ref(&self) -> PartsRef<'_> {
        (**self).parts_ref()
    }
    fn slots_capacity(&self) -> usize {
        (**self).slots_capacity()
    }
    fn grow_slots(&mut self) -> bool {
        (**self).grow_slots()
    }
}

/// Tables that do not fit: what [`Server::new`] and [`SliceStorage::new`] refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StorageError {
    /// The connection table is empty.
    NoConns,
    /// The connection table is longer than [`MAX_CONNS`].
    TooManyConns {
        /// Its length.
        conns: usize,
    },
    /// The free stack is empty: the pool has no buffer.
    NoBuffers,
    /// More buffers than connections: a connection holds one buffer at most, so the rest
    /// would never be used.
    MoreBuffersThanConns {
        /// Buffers (the free stack's length).
        buffers: usize,
        /// Connections (the table's length).
        conns: usize,
    },
    /// A queue size of 0 bytes.
    NoQueue,
    /// A queue size above `u32::MAX` bytes.
    QueueTooLarge {
        /// The queue size asked for.
        queue_size: usize,
    },
    /// The pool's bytes are shorter than `buffers × queue_size`.
    BytesTooShort {
        /// `buffers × queue_size` (`usize::MAX` when that overflows).
        needed: usize,
        /// The length handed in.
        got: usize,
    },
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StorageError::NoConns => f.write_str("the connection table is empty"),
            StorageError::TooManyConns { conns } => {
                write!(f, "{conns} connections: at most {MAX_CONNS} are possible")
            }
            StorageError::NoBuffers => f.write_str("the buffer pool is empty"),
            StorageError::MoreBuffersThanConns { buffers, conns } => write!(
                f,
                "{buffers} buffers for {conns} connections: at most one buffer per connection"
            ),
            StorageError::NoQueue => f.write_str("the queue size is 0 bytes"),
            StorageError::QueueTooLarge { queue_size } => write!(
                f,
                "a queue of {queue_size} bytes: at most {} are possible",
                u32::MAX
            ),
            StorageError::BytesTooShort { needed, got } => write!(
                f,
                "the buffer pool needs {needed} bytes and was given {got}"
            ),
        }
    }
}

impl core::error::Error for StorageError {}

/// Checks that tables of these sizes make a server.
pub(crate) const fn check(
    conns: usize,
    buffers: usize,
    queue_size: usize,
    bytes: usize,
) -> Result<(), StorageError> {
    if conns == 0 {
        return Err(StorageError::NoConns);
    }
    if conns > MAX_CONNS {
        return Err(StorageError::TooManyConns { conns });
    }
    if buffers == 0 {
        return Err(StorageError::NoBuffers);
    }
    if buffers > conns {
        return Err(StorageError::MoreBuffersThanConns { buffers, conns });
    }
    if queue_size == 0 {
        return Err(StorageError::NoQueue);
    }
    if queue_size > u32::MAX as usize {
        return Err(StorageError::QueueTooLarge { queue_size });
    }
    let needed = match buffers.checked_mul(queue_size) {
        Some(n) => n,
        None => usize::MAX,
    };
    if bytes < needed {
        return Err(StorageError::BytesTooShort { needed, got: bytes });
    }
    Ok(())
}

/// The whole memory of a server of `conns` connections and `buffers` buffers of
/// `queue_size` bytes, in bytes: the one home of the formula.
///
/// `size_of::<ConnSlot>()` per connection (32 bytes), `queue_size + 2` per buffer (its
/// bytes and its free-stack entry), and a fixed part: the [`Server`] itself holding three
/// slice references (`size_of::<Server<SliceStorage>>()`; `cargo run -p echoloop-core
/// --example footprint` prints it, 248 bytes on 64-bit targets).
/// A [`StaticStorage`] server is at most this (its arrays replace the references).
/// Saturates rather than overflow.
///
/// ```
/// use echoloop_core::footprint;
/// // The host's default: 1,000 connections, one 16 KiB buffer each.
/// assert!(footprint(1000, 1000, 16 * 1024) < 17 * 1000 * 1024);
/// ```
pub const fn footprint(conns: usize, buffers: usize, queue_size: usize) -> usize {
    let per_conn = conns.saturating_mul(size_of::<ConnSlot>());
    let per_buffer = buffers.saturating_mul(queue_size.saturating_add(size_of::<u16>()));
    FIXED.saturating_add(per_conn).saturating_add(per_buffer)
}

/// The fixed part of [`footprint`].
const FIXED: usize = size_of::<Server<SliceStorage<'static>>>();

/// Tables in arrays: `CONNS` connections, `BUFFERS` buffers of `QUEUE` bytes. `const`, so
/// one `static` holds a whole server (see [`Server::new_static`]) and its size is known at
/// compile time; the sizes are checked at compile time too.
///
/// ```
/// use echoloop_core::{footprint, Config, Server, StaticStorage};
/// type Firmware = Server<StaticStorage<8, 4, 256>>;
/// // The RAM is known before the firmware runs.
/// const _: () = assert!(core::mem::size_of::<Firmware>() <= footprint(8, 4, 256));
/// let server: Firmware = Server::new_static(Config::new());
/// assert_eq!((server.capacity(), server.buffers(), server.queue_size()), (8, 4, 256));
/// ```
#[derive(Clone, Debug)]
pub struct StaticStorage<const CONNS: usize, const BUFFERS: usize, const QUEUE: usize> {
    slots: [ConnSlot; CONNS],
    free: [u16; BUFFERS],
    bytes: [[u8; QUEUE]; BUFFERS],
}

impl<const CONNS: usize, const BUFFERS: usize, const QUEUE: usize>
    StaticStorage<CONNS, BUFFERS, QUEUE>
{
    /// Empty tables. Fails to compile for sizes [`Server::new`] would refuse.
    pub const fn new() -> Self {
        const {
            assert!(CONNS >= 1, "CONNS must be at least 1");
            assert!(CONNS <= MAX_CONNS, "CONNS must be at most 65,534");
            assert!(BUFFERS >= 1, "BUFFERS must be at least 1");
            assert!(BUFFERS <= CONNS, "BUFFERS must be at most CONNS");
            assert!(QUEUE >= 1, "QUEUE must be at least 1 byte");
            assert!(QUEUE <= u32::MAX as usize, "QUEUE must fit a u32");
        }
        StaticStorage {
            slots: [ConnSlot::EMPTY; CONNS],
            free: [0; BUFFERS],
            bytes: [[0; QUEUE]; BUFFERS],
        }
    }
}

impl<const CONNS: usize, const BUFFERS: usize, const QUEUE: usize> Default
    for StaticStorage<CONNS, BUFFERS, QUEUE>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<const CONNS: usize, const BUFFERS: usize, const QUEUE: usize> Storage
    for StaticStorage<CONNS, BUFFERS, QUEUE>
{
    fn parts(&mut self) -> Parts<'_> {
        Parts {
            slots: &mut self.slots,
            free: &mut self.free,
            bytes: self.bytes.as_flattened_mut(),
            queue_size: QUEUE,
        }
    }

    fn parts_ref(&self) -> PartsRef<'_> {
        PartsRef {
            slots: &self.slots,
            free: &self.free,
            bytes: self.bytes.as_flattened(),
            queue_size: QUEUE,
        }
    }
}

/// Tables in borrowed slices of any length, checked when made.
///
/// ```
/// use echoloop_core::{Config, ConnSlot, Server, SliceStorage, StorageError};
/// let mut slots = [ConnSlot::EMPTY; 16];
/// let mut free = [0u16; 4];
/// let mut bytes = [0u8; 4 * 512];
/// let storage = SliceStorage::new(&mut slots, &mut free, &mut bytes, 512)?;
/// let server = Server::new(Config::new(), storage)?;
/// assert_eq!((server.capacity(), server.buffers()), (16, 4));
/// # Ok::<(), StorageError>(())
/// ```
#[derive(Debug)]
pub struct SliceStorage<'a> {
    slots: &'a mut [ConnSlot],
    free: &'a mut [u16],
    bytes: &'a mut [u8],
    queue_size: usize,
}

impl<'a> SliceStorage<'a> {
    /// Tables for `slots.len()` connections and `free.len()` buffers of `queue_size`
    /// bytes, or why they do not make a server.
    pub fn new(
        slots: &'a mut [ConnSlot],
        free: &'a mut [u16],
        bytes: &'a mut [u8],
        queue_size: usize,
    ) -> Result<Self, StorageError> {
        check(slots.len(), free.len(), queue_size, bytes.len())?;
        Ok(SliceStorage {
            slots,
            free,
            bytes,
            queue_size,
        })
    }
}

impl Storage for SliceStorage<'_> {
    fn parts(&mut self) -> Parts<'_> {
        Parts {
            slots: self.slots,
            free: self.free,
            bytes: self.bytes,
            queue_size: self.queue_size,
        }
    }

    fn parts_ref(&self) -> PartsRef<'_> {
        PartsRef {
            slots: self.slots,
            free: self.free,
            bytes: self.bytes,
            queue_size: self.queue_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_misfit_is_named() {
        let cases = [
            ((0, 1, 1, 1), StorageError::NoConns),
            (
                (MAX_CONNS + 1, 1, 1, 1),
                StorageError::TooManyConns {
                    conns: MAX_CONNS + 1,
                },
            ),
            ((1, 0, 1, 1), StorageError::NoBuffers),
            (
                (2, 3, 1, 3),
                StorageError::MoreBuffersThanConns {
                    buffers: 3,
                    conns: 2,
                },
            ),
            ((1, 1, 0, 1), StorageError::NoQueue),
            (
                (4, 2, 8, 15),
                StorageError::BytesTooShort {
                    needed: 16,
                    got: 15,
                },
            ),
            (
                (4, 4, usize::MAX / 2, 0),
                StorageError::QueueTooLarge {
                    queue_size: usize::MAX / 2,
                },
            ),
        ];
        for ((c, b, q, n), want) in cases {
            assert_eq!(check(c, b, q, n), Err(want), "{c} {b} {q} {n}");
            assert!(!want.to_string().is_empty());
        }
        assert_eq!(check(MAX_CONNS, 1, 1, 1), Ok(()));
        assert_eq!(
            StorageError::BytesTooShort {
                needed: 16,
                got: 15
            }
            .to_string(),
            "the buffer pool needs 16 bytes and was given 15"
        );
    }

    #[test]
    fn a_slot_is_32_bytes_and_the_formula_bounds_static_servers() {
        assert_eq!(size_of::<ConnSlot>(), 32);
        let s = size_of::<Server<StaticStorage<8, 4, 256>>>();
        assert!(s <= footprint(8, 4, 256), "{s}");
        assert!(s >= 8 * 32 + 4 * 258, "{s}");
        assert_eq!(
            footprint(10, 5, 100) - footprint(0, 0, 100),
            10 * 32 + 5 * 102
        );
        assert_eq!(footprint(usize::MAX, 1, 1), usize::MAX);
    }

    #[test]
    fn slice_storage_checks_its_slices() {
        let mut slots = [ConnSlot::EMPTY; 2];
        let mut free = [0u16; 2];
        let mut bytes = [0u8; 7];
        let got = SliceStorage::new(&mut slots, &mut free, &mut bytes, 4);
        assert_eq!(
            got.err(),
            Some(StorageError::BytesTooShort { needed: 8, got: 7 })
        );
    }
}
