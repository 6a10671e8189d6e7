//! The port's only `unsafe`: `poll(2)`, which neither std nor socket2 offers.

use std::io;

/// Waits until one of `fds` is ready or `timeout_ms` passes (-1: no limit); returns how
/// many entries have `revents` set. `EINTR` (a signal arrived) comes back as
/// `ErrorKind::Interrupted`: the caller goes round again.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    let len = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors"))?;
    // SAFETY: `fds` is a live, exclusively borrowed array of `len` pollfd structs, which
    // the kernel reads and whose `revents` it writes before returning.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), len, timeout_ms) };
    // A negative count is the one failure; errno says which.
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}
