//! Where each table lies in the memory a caller supplies: the handle first, then the
//! tables, each at its own alignment. Safe arithmetic only, all of it checked.

use core::mem::{align_of, size_of};

use echoloop_core::udp::{DatagramSlot, SourceSlot};
use echoloop_core::ConnSlot;

use crate::raw::{TcpHandle, UdpHandle};

/// The alignment every block of memory given to `echoloop_server_init` and
/// `echoloop_udp_init` must have (`_Alignas(ECHOLOOP_ALIGN)` on a static array, or
/// `aligned_alloc`); `malloc`'s memory has it on every common platform.
pub const ECHOLOOP_ALIGN: usize = 8;

const _: () = {
    assert!(align_of::<TcpHandle>() <= ECHOLOOP_ALIGN);
    assert!(align_of::<UdpHandle>() <= ECHOLOOP_ALIGN);
    assert!(align_of::<ConnSlot>() <= ECHOLOOP_ALIGN);
    assert!(align_of::<DatagramSlot>() <= ECHOLOOP_ALIGN);
    assert!(align_of::<SourceSlot>() <= ECHOLOOP_ALIGN);
};

/// Byte offsets of a TCP server's tables after its handle, and the whole size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TcpLayout {
    pub slots: usize,
    pub free: usize,
    pub bytes: usize,
    pub total: usize,
}

/// Byte offsets of a UDP echo's tables after its handle, and the whole size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UdpLayout {
    pub slots: usize,
    pub bytes: usize,
    pub sources: usize,
    pub total: usize,
}

/// `count` items of `T` placed at or after `at`: their offset and where they end.
fn place<T>(at: usize, count: usize) -> Option<(usize, usize)> {
    let offset = at.checked_next_multiple_of(align_of::<T>())?;
    let end = offset.checked_add(count.checked_mul(size_of::<T>())?)?;
    Some((offset, end))
}

/// The whole must also be a valid slice length (`isize::MAX` bytes at most).
fn total(end: usize) -> Option<usize> {
    let end = end.checked_next_multiple_of(ECHOLOOP_ALIGN)?;
    (end <= isize::MAX as usize).then_some(end)
}

/// A TCP server of `conns` connections and `buffers` buffers of `queue_size` bytes.
pub(crate) fn tcp(conns: usize, buffers: usize, queue_size: usize) -> Option<TcpLayout> {
    let (slots, end) = place::<ConnSlot>(size_of::<TcpHandle>(), conns)?;
    let (free, end) = place::<u16>(end, buffers)?;
    let (bytes, end) = place::<u8>(end, buffers.checked_mul(queue_size)?)?;
    Some(TcpLayout {
        slots,
        free,
        bytes,
        total: total(end)?,
    })
}

/// A UDP echo of `slots` datagram slots of `slot_size` bytes and `sources` flood-guard
/// sources.
pub(crate) fn udp(slots: usize, slot_size: usize, sources: usize) -> Option<UdpLayout> {
    let (slots_at, end) = place::<DatagramSlot>(size_of::<UdpHandle>(), slots)?;
    let (sources_at, end) = place::<SourceSlot>(end, sources)?;
    let (bytes, end) = place::<u8>(end, slots.checked_mul(slot_size)?)?;
    Some(UdpLayout {
        slots: slots_at,
        bytes,
        sources: sources_at,
        total: total(end)?,
    })
}
