//! The echoloop core behind a C ABI: `include/echoloop.h`, generated from this crate by
//! cbindgen, is its whole contract (ownership, callbacks, threads are documented there).
//!
//! - [`tcp`]: the TCP echo server (`echoloop_server_*` and the event calls);
//! - [`udp`]: the UDP echo (`echoloop_udp_*`);
//! - [`result`]: every error as a returned code, mapped from the core's errors in one
//!   place;
//! - `raw`: the only `unsafe`: C pointers checked and turned into references, and the
//!   calls of the caller's callbacks.
//!
//! No allocator: the caller supplies the memory, sized by `echoloop_server_size` and
//! `echoloop_udp_size`. No unwinding: every profile aborts on panic, the core and this
//! crate have no panicking path, and the panic handler calls C's `abort`.
#![no_std]
#![deny(missing_docs)]
// C names: the header reads like a C library's.
#![allow(non_camel_case_types)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::undocumented_unsafe_blocks
)]

pub mod layout;
mod raw;
pub mod result;
pub mod tcp;
pub mod udp;

/// A panicking branch on purpose (`--features canary`): see `.ci/ports-c.sh`.
#[cfg(feature = "canary")]
#[no_mangle]
pub extern "C" fn echoloop_canary(i: usize) -> u8 {
    #[allow(clippy::indexing_slicing)]
    [1u8, 2, 3][i]
}

/// A panic cannot unwind into C: end the program as C's `abort` does. No path of the core
/// or of this crate panics; this is the handler the language requires of a `no_std`
/// library.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    extern "C" {
        fn abort() -> !;
    }
    // SAFETY: `abort` is C's, in every C runtime a program linking this library has
    // (glibc, newlib, picolibc); it takes nothing and never returns.
    unsafe { abort() }
}
