//! The C boundary's `unsafe`, all of it: handles made in caller-supplied memory, checked
//! and lent as references, out-parameters written, and the caller's callbacks called.
//!
//! A handle is its magic number (which kind of handle, and alive), a busy flag and the
//! core's state machine. The flag is set while a call runs, so a call made from inside one
//! of that call's callbacks finds it set and returns `Reentered` instead of taking a
//! second `&mut` to the state machine. It is read and written through raw pointers to its
//! own field only, never through a reference to the whole handle, so the reference the
//! outer call holds (to the state machine field) is never aliased.

use core::ffi::c_void;
use core::mem::align_of;
use core::ptr::{self, addr_of, addr_of_mut};

use echoloop_core::udp::{UdpEcho, UdpSliceStorage};
use echoloop_core::{Server, SliceStorage};

use crate::layout::ECHOLOOP_ALIGN;
use crate::result::echoloop_result;

/// The server in the caller's memory. Its tables borrow the same block; `'static` stands
/// for "until `echoloop_server_deinit`", which the header makes the caller's promise.
pub(crate) type TcpServer = Server<SliceStorage<'static>>;
/// The UDP echo in the caller's memory; `'static` as for [`TcpServer`].
pub(crate) type UdpServer = UdpEcho<UdpSliceStorage<'static>>;

/// "echo" and "echu": a live TCP or UDP handle. Zeroed by deinit.
const TCP_MAGIC: u32 = 0x6563_686f;
const UDP_MAGIC: u32 = 0x6563_6875;

/// A state machine in caller memory, with what the boundary checks.
pub(crate) struct Handle<T> {
    magic: u32,
    busy: bool,
    inner: T,
}

pub(crate) type TcpHandle = Handle<TcpServer>;
pub(crate) type UdpHandle = Handle<UdpServer>;

/// A kind of handle: its magic number.
pub(crate) trait Kind {
    const MAGIC: u32;
}
impl Kind for TcpServer {
    const MAGIC: u32 = TCP_MAGIC;
}
impl Kind for UdpServer {
    const MAGIC: u32 = UDP_MAGIC;
}

/// Checks a block of caller memory: not NULL, aligned, at least `needed` bytes.
pub(crate) fn check_block(
    mem: *mut c_void,
    len: usize,
    needed: usize,
) -> Result<*mut u8, echoloop_result> {
    if mem.is_null() {
        return Err(echoloop_result::NullPointer);
    }
    if mem as usize % ECHOLOOP_ALIGN != 0 {
        return Err(echoloop_result::Misaligned);
    }
    if len < needed {
        return Err(echoloop_result::TooSmall);
    }
    Ok(mem.cast())
}

/// Fills `count` items at `offset` bytes into `base` with `value` and lends them until
/// deinit.
///
/// # Safety
/// `base` is a block checked by [`check_block`] for a length covering `offset + count`
/// items, `offset` is aligned for `T` (the layout's offsets are), and nothing else
/// refers to those bytes while the handle lives.
pub(crate) unsafe fn table<T: Copy>(
    base: *mut u8,
    offset: usize,
    count: usize,
    value: T,
) -> &'static mut [T] {
    let first = base.add(offset).cast::<T>();
    for i in 0..count {
        // SAFETY: within the block and aligned (the caller's contract); writing makes
        // every item initialised before a slice covers it.
        unsafe { first.add(i).write(value) };
    }
    // SAFETY: `count` initialised, aligned items of the block, referred to by nothing
    // else until deinit.
    unsafe { core::slice::from_raw_parts_mut(first, count) }
}

/// Moves a freshly built state machine into the block's head, marked live.
///
/// # Safety
/// `base` is a block checked by [`check_block`] for at least `size_of::<Handle<T>>()`
/// bytes (the layouts start their tables after it).
pub(crate) unsafe fn install<T: Kind>(base: *mut u8, inner: T) -> *mut Handle<T> {
    let handle = base.cast::<Handle<T>>();
    debug_assert!(align_of::<Handle<T>>() <= ECHOLOOP_ALIGN);
    // SAFETY: the block's head is aligned and large enough (the caller's contract).
    unsafe {
        handle.write(Handle {
            magic: T::MAGIC,
            busy: false,
            inner,
        })
    };
    handle
}

/// Lends the state machine behind a C handle to `f`, or says why not.
///
/// # Safety
/// `handle` is NULL, or points to memory of at least a handle's size that the caller
/// owns: a handle made by the matching init (then its magic matches), or anything else
/// readable (then its magic does not match, but for a 1 in 2^32 chance).
pub(crate) unsafe fn with<T: Kind, R>(
    handle: *mut c_void,
    f: impl FnOnce(&mut T) -> Result<R, echoloop_result>,
) -> Result<R, echoloop_result> {
    let handle = handle.cast::<Handle<T>>();
    if handle.is_null() {
        return Err(echoloop_result::NullPointer);
    }
    if handle as usize % ECHOLOOP_ALIGN != 0 {
        return Err(echoloop_result::Misaligned);
    }
    // SAFETY: readable and aligned (the caller's contract); only the magic's and the
    // flag's own fields are touched, never the state machine a callback's caller holds.
    let (magic, busy) = unsafe {
        (
            addr_of!((*handle).magic).read(),
            addr_of!((*handle).busy).read(),
        )
    };
    if magic != T::MAGIC {
        return Err(echoloop_result::BadHandle);
    }
    if busy {
        return Err(echoloop_result::Reentered);
    }
    // SAFETY: a live handle not in use: this is the only reference to its state machine
    // until the flag is cleared below.
    unsafe { addr_of_mut!((*handle).busy).write(true) };
    // SAFETY: as above.
    let result = f(unsafe { &mut *addr_of_mut!((*handle).inner) });
    // SAFETY: as above; the reference lent to `f` is gone.
    unsafe { addr_of_mut!((*handle).busy).write(false) };
    result
}

/// Marks a live handle dead, so that any later call with it returns `BadHandle`; the
/// memory is the caller's again. Nothing to drop: the core holds no resource.
///
/// # Safety
/// As for [`with`].
pub(crate) unsafe fn retire<T: Kind>(handle: *mut c_void) -> Result<(), echoloop_result> {
    // SAFETY: the caller's contract; `with` checked the handle is live and not in use.
    unsafe { with::<T, ()>(handle, |_| Ok(()))? };
    // SAFETY: as above: a live handle, not in use.
    unsafe { addr_of_mut!((*handle.cast::<Handle<T>>()).magic).write(0) };
    Ok(())
}

/// Writes `value` to a required out-parameter.
///
/// # Safety
/// `out` is NULL or valid for a write of a `T`.
pub(crate) unsafe fn put<T>(out: *mut T, value: T) -> Result<(), echoloop_result> {
    if out.is_null() {
        return Err(echoloop_result::NullPointer);
    }
    if out as usize % align_of::<T>() != 0 {
        return Err(echoloop_result::Misaligned);
    }
    // SAFETY: not NULL, aligned, writable (the caller's contract).
    unsafe { ptr::write(out, value) };
    Ok(())
}

/// Writes `value` to an optional out-parameter (NULL: not wanted).
///
/// # Safety
/// As for [`put`].
pub(crate) unsafe fn put_opt<T>(out: *mut T, value: T) -> Result<(), echoloop_result> {
    if out.is_null() {
        return Ok(());
    }
    // SAFETY: the caller's contract.
    unsafe { put(out, value) }
}

/// Copies `text` into the caller's buffer `out` of `len` bytes, cut to fit and
/// NUL-terminated; nothing if `out` is NULL or `len` is 0.
///
/// # Safety
/// `out` is NULL or valid for writes of `len` bytes.
#[cfg(feature = "invariants")]
pub(crate) unsafe fn put_text(out: *mut core::ffi::c_char, len: usize, text: &str) {
    if out.is_null() || len == 0 {
        return;
    }
    let n = text.len().min(len - 1);
    // SAFETY: `out` holds `len` bytes (the caller's contract) and `n + 1 <= len`.
    unsafe {
        ptr::copy_nonoverlapping(text.as_ptr(), out.cast::<u8>(), n);
        out.add(n).write(0);
    }
}

/// Reads a required in-parameter.
///
/// # Safety
/// `p` is NULL or valid for a read of an initialised `T`.
pub(crate) unsafe fn get<T: Copy>(p: *const T) -> Result<T, echoloop_result> {
    if p.is_null() {
        return Err(echoloop_result::NullPointer);
    }
    if p as usize % align_of::<T>() != 0 {
        return Err(echoloop_result::Misaligned);
    }
    // SAFETY: not NULL, aligned, readable and initialised (the caller's contract).
    Ok(unsafe { ptr::read(p) })
}

/// The callback that receives into a lent slice: returns the bytes it wrote.
pub type echoloop_recv_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, buf: *mut u8, len: usize) -> usize>;
/// The callback that sends from a lent slice: returns the bytes it took.
pub type echoloop_send_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, buf: *const u8, len: usize) -> usize>;

/// Calls a receive callback on `buf`.
pub(crate) fn call_recv(
    f: unsafe extern "C" fn(*mut c_void, *mut u8, usize) -> usize,
    user: *mut c_void,
    buf: &mut [u8],
) -> usize {
    // SAFETY: the header's contract for callbacks: `f` writes at most `len` bytes at `buf`
    // (writing more is not caught), returns, and does not unwind; `buf` is valid for it.
    unsafe { f(user, buf.as_mut_ptr(), buf.len()) }
}

/// Calls a send callback on `buf`.
pub(crate) fn call_send(
    f: unsafe extern "C" fn(*mut c_void, *const u8, usize) -> usize,
    user: *mut c_void,
    buf: &[u8],
) -> usize {
    // SAFETY: as for `call_recv`, reading instead of writing.
    unsafe { f(user, buf.as_ptr(), buf.len()) }
}

/// The callback that receives one datagram into a lent slot: see `echoloop_udp_recv`.
pub type echoloop_udp_recv_fn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        buf: *mut u8,
        len: usize,
        from: *mut crate::udp::echoloop_endpoint,
        datagram_len: *mut usize,
    ) -> u32,
>;
/// The callback that sends the oldest echo: see `echoloop_udp_send`.
pub type echoloop_udp_send_fn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        buf: *const u8,
        len: usize,
        to: *const crate::udp::echoloop_endpoint,
    ) -> u32,
>;

/// Calls a datagram receive callback on `buf`, with `from` and `datagram_len` for it to
/// fill.
pub(crate) fn call_udp_recv(
    f: unsafe extern "C" fn(
        *mut c_void,
        *mut u8,
        usize,
        *mut crate::udp::echoloop_endpoint,
        *mut usize,
    ) -> u32,
    user: *mut c_void,
    buf: &mut [u8],
    from: &mut crate::udp::echoloop_endpoint,
    datagram_len: &mut usize,
) -> u32 {
    // SAFETY: as for `call_recv`; `from` and `datagram_len` are valid for writes.
    unsafe { f(user, buf.as_mut_ptr(), buf.len(), from, datagram_len) }
}

/// Calls a datagram send callback on `buf`, for `to`.
pub(crate) fn call_udp_send(
    f: unsafe extern "C" fn(
        *mut c_void,
        *const u8,
        usize,
        *const crate::udp::echoloop_endpoint,
    ) -> u32,
    user: *mut c_void,
    buf: &[u8],
    to: &crate::udp::echoloop_endpoint,
) -> u32 {
    // SAFETY: as for `call_send`; `to` is valid for reads.
    unsafe { f(user, buf.as_ptr(), buf.len(), to) }
}
