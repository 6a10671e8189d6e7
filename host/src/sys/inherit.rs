//! Descriptors a supervisor hands over: the sockets of systemd's socket activation (from
//! descriptor 3 on) and inetd's connection on the standard descriptors.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use socket2::Socket;

use super::{context, cvt};

/// Takes descriptor `fd`, inherited from the parent process, as this process's own, and
/// marks it close-on-exec (supervisors pass them without). Fails with `EBADF` if no such
/// descriptor is open. The caller must take each number at most once, and only numbers
/// the supervisor's protocol says are this process's to own.
pub fn inherit(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD reads a descriptor's flags and touches no memory; on a number that
    // is not open it fails with EBADF, which is the answer sought.
    cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: `fd` is open (F_GETFD succeeded), and nothing else in the process owns it:
    // it was inherited for this process to own, and the caller takes it only once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let socket = Socket::from(owned);
    socket
        .set_cloexec(true)
        .map_err(|e| context("FD_CLOEXEC", e))?;
    Ok(socket.into())
}

/// Points standard descriptor `fd` (0, 1 or 2) at `/dev/null`, closing what it referred
/// to: under inetd, standard output is the connection, and nothing may write there but
/// the echo.
pub fn to_null(fd: RawFd) -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| context("/dev/null", e))?;
    let replaced = match fd {
        0 => rustix::stdio::dup2_stdin(&null),
        1 => rustix::stdio::dup2_stdout(&null),
        2 => rustix::stdio::dup2_stderr(&null),
        _ => return Err(io::ErrorKind::InvalidInput.into()),
    };
    replaced.map_err(|e| context("dup2", e.into()))
}
