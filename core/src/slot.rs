//! One connection's bookkeeping: its place in the table, the lists and the buffer pool.

use crate::list::{Linked, Links, NIL};
use crate::{CloseReason, ConnId, Instant};

/// Where a slot is in its life. Which list a slot is on follows from this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) enum State {
    /// On the free list (or never used).
    Free,
    /// Echoing, on the live list (ordered by last activity).
    Open,
    /// Shut down by the server with every byte delivered: on the pending list until
    /// [`Action::ShutdownWrite`](crate::Action) is polled, then [`State::Draining`].
    Announcing,
    /// Write side shut down; reading and discarding until the peer's EOF or the shutdown
    /// deadline. On the draining list.
    Draining,
    /// On the pending list until its [`Action::Close`](crate::Action) is polled.
    Closing(CloseReason),
}

/// The bookkeeping of one connection: 32 bytes, whatever the queue size. A server's
/// connection table is a slice of these (see [`Storage`](crate::Storage)); the fields are
/// the server's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnSlot {
    pub(crate) last_active: Instant,
    pub(crate) generation: u32,
    /// Offset of the oldest queued byte in the buffer.
    pub(crate) head: u32,
    /// Bytes queued.
    pub(crate) len: u32,
    pub(crate) links: Links,
    /// The pool buffer held, or `NIL`: held only while bytes are queued (or lent).
    pub(crate) buffer: u16,
    pub(crate) state: State,
    /// The peer sent EOF: read no more, close once the queue is delivered.
    pub(crate) eof: bool,
}

impl ConnSlot {
    /// A slot never used. A table may start with anything: the server initialises a slot
    /// when it first uses it.
    pub const EMPTY: ConnSlot = ConnSlot {
        last_active: Instant::ZERO,
        generation: 0,
        head: 0,
        len: 0,
        links: Links::UNLINKED,
        buffer: NIL,
        state: State::Free,
        eof: false,
    };

    pub(crate) fn id(&self, index: u16) -> ConnId {
        ConnId {
            index,
            generation: self.generation,
        }
    }

    pub(crate) fn has_buffer(&self) -> bool {
        self.buffer != NIL
    }
}

impl Default for ConnSlot {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl Linked for ConnSlot {
    fn links(&self) -> Links {
        self.links
    }
    fn set_links(&mut self, links: Links) {
        self.links = links;
    }
}
