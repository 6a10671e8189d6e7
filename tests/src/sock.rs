//! The few calls std does not offer the tests: each one `unsafe` libc call.

use std::net::TcpStream;
use std::os::fd::AsRawFd;

/// `SO_LINGER` with a zero timeout: closing the socket then sends a reset, not a FIN.
pub fn set_linger_zero(sock: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `sock` is open; `linger` is a live value whose size is passed.
    let ret = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(ret, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

/// Sends one byte as TCP urgent data (`MSG_OOB`).
pub fn send_urgent(sock: &TcpStream, byte: u8) {
    // SAFETY: `sock` is open; `byte` is a live byte.
    let n = unsafe {
        libc::send(
            sock.as_raw_fd(),
            (&byte as *const u8).cast(),
            1,
            libc::MSG_OOB,
        )
    };
    assert_eq!(n, 1, "send MSG_OOB: {}", std::io::Error::last_os_error());
}

/// Sends `signal` to process `pid`.
pub fn kill(pid: u32, signal: i32) {
    // SAFETY: kill(2) with integer arguments only; the caller owns the child process.
    let ret = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(ret, 0, "kill: {}", std::io::Error::last_os_error());
}
