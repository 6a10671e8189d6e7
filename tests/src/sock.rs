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

/// `poll(2)` on `fds`, waiting up to `timeout_ms`: how many have events. `EINTR` counts as
/// none ready.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> std::io::Result<usize> {
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n >= 0 {
        return Ok(n as usize);
    }
    let err = std::io::Error::last_os_error();
    match err.kind() {
        std::io::ErrorKind::Interrupted => Ok(0),
        _ => Err(err),
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to `want` (or the hard limit, if lower);
/// returns the soft limit now in force.
pub fn raise_nofile(want: libc::rlim_t) -> std::io::Result<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live rlimit that getrlimit fills in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let target = want.min(lim.rlim_max);
    if lim.rlim_cur < target {
        lim.rlim_cur = target;
        // SAFETY: `lim` is a live rlimit, soft limit not above the hard one.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

/// Moves the calling thread (not the process) into the network namespace `name` (one
/// `ip netns add` made, so `/run/netns/NAME`): its sockets, the threads it spawns and the
/// processes it starts are then inside. Needs root.
pub fn enter_netns(name: &str) {
    let ns = std::fs::File::open(format!("/run/netns/{name}"))
        .unwrap_or_else(|e| panic!("network namespace {name}: {e}"));
    // SAFETY: setns(2) with an open namespace descriptor; it changes this thread only.
    let ret = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(ret, 0, "setns {name}: {}", std::io::Error::last_os_error());
}

/// Attaches to the TAP device `name` of the calling thread's network namespace (made
/// beforehand with `ip tuntap add dev NAME mode tap`): one `read` is one Ethernet frame in,
/// one `write` one frame out, without the packet-information header.
pub fn open_tap(name: &str) -> std::io::Result<std::fs::File> {
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    // struct ifreq: the name (IFNAMSIZ bytes, NUL-terminated) then the flags.
    let mut ifreq = [0u8; 40];
    let bytes = name.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("interface name {name:?} is too long"),
        ));
    }
    ifreq[..bytes.len()].copy_from_slice(bytes);
    let flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    ifreq[libc::IFNAMSIZ..libc::IFNAMSIZ + 2].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: `tun` is open; TUNSETIFF reads and writes a struct ifreq, which `ifreq` is
    // large enough to hold (40 bytes on Linux).
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, ifreq.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(tun)
}
