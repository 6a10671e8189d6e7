//! The sockets a supervisor hands over: systemd's socket activation (`LISTEN_FDS`,
//! `LISTEN_PID`, `LISTEN_FDNAMES`, sd_listen_fds(3)) for `serve`, and inetd's one
//! connection on descriptors 0 and 1 for `serve --inetd` (inetd `nowait`, systemd
//! `Accept=yes`). docs/deployment.md says how the unit files use them.
//!
//! By hand rather than with the `listenfd` crate: the protocol is three variables and
//! consecutive descriptors from 3, and what echoloop checks of each socket (its type,
//! `SO_ACCEPTCONN`, the names `tcp` and `udp`, one readable line per fault) would sit on
//! top of the crate anyway.

use std::env;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

use log::debug;
use socket2::{SockRef, Socket, Type};

use crate::sys;

/// The first descriptor socket activation hands over (`SD_LISTEN_FDS_START`).
pub const FIRST_FD: RawFd = 3;

/// The most descriptors one activation may hand over: far more than any unit lists, and
/// small enough that a garbled `LISTEN_FDS` is refused instead of walked.
pub const MAX_FDS: usize = 4096;

/// The name (`FileDescriptorName=`, `--fdname`) that says a socket must be a listening
/// TCP one.
pub const TCP_NAME: &str = "tcp";

/// The name that says a socket must be a UDP one.
pub const UDP_NAME: &str = "udp";

/// The activation variables, as read from the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    /// `LISTEN_PID`: the process the descriptors are for.
    pub pid: Option<String>,
    /// `LISTEN_FDS`: how many descriptors, from [`FIRST_FD`] on.
    pub fds: Option<String>,
    /// `LISTEN_FDNAMES`: their names, separated by colons.
    pub names: Option<String>,
}

/// One descriptor handed over, and its name if the supervisor gave one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handed {
    /// Its number.
    pub fd: RawFd,
    /// Its name in `LISTEN_FDNAMES`.
    pub name: Option<String>,
}

/// The sockets an activation handed over, sorted by kind, in the order handed.
#[derive(Debug, Default)]
pub struct Sockets {
    /// Listening TCP sockets, non-blocking, with the address each is bound to.
    pub tcp: Vec<(OwnedFd, SocketAddr)>,
    /// UDP sockets, non-blocking, with the address each is bound to.
    pub udp: Vec<(UdpSocket, SocketAddr)>,
}

impl Sockets {
    /// Whether the activation handed over nothing (or there was none).
    pub fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.udp.is_empty()
    }
}

impl Env {
    /// Reads the three variables and removes them from the environment, so that no
    /// process started later inherits them (and takes this process's sockets for its
    /// own). Call it first thing, while the process has one thread: changing the
    /// environment races with any other thread reading it.
    pub fn take() -> Env {
        let take = |name: &str| {
            let value = env::var_os(name);
            env::remove_var(name);
            value.map(|v| v.to_string_lossy().into_owned())
        };
        Env {
            pid: take("LISTEN_PID"),
            fds: take("LISTEN_FDS"),
            names: take("LISTEN_FDNAMES"),
        }
    }

    /// The descriptors handed to process `pid`, with their names: none without
    /// `LISTEN_FDS` (or with `LISTEN_FDS=0`). Refused, with one line saying why: a
    /// `LISTEN_PID` naming another process (they were meant for it), a count that is not
    /// a number, or names that do not match the count.
    pub fn handed(&self, pid: u32) -> Result<Vec<Handed>, String> {
        let Some(fds) = &self.fds else {
            return Ok(Vec::new());
        };
        let count: usize = fds
            .parse()
            .ok()
            .filter(|&n| n <= MAX_FDS)
            .ok_or_else(|| format!("LISTEN_FDS={fds} is not a count from 0 to {MAX_FDS}"))?;
        if count == 0 {
            return Ok(Vec::new());
        }
        match self.pid.as_deref().map(str::parse::<u32>) {
            Some(Ok(to)) if to == pid => {}
            Some(Ok(to)) => {
                return Err(format!(
                    "LISTEN_PID={to} is another process (this is {pid}): its sockets are not \
                     this one's to serve"
                ))
            }
            Some(Err(_)) => {
                return Err(format!(
                    "LISTEN_PID={} is not a process id",
                    self.pid.as_deref().unwrap_or_default()
                ))
            }
            None => return Err("LISTEN_FDS without LISTEN_PID: whose sockets are they?".into()),
        }
        let names: Vec<Option<String>> = match &self.names {
            None => vec![None; count],
            Some(names) => names.split(':').map(|n| Some(n.to_owned())).collect(),
        };
        if names.len() != count {
            return Err(format!(
                "LISTEN_FDNAMES names {} descriptors, LISTEN_FDS={count}",
                names.len()
            ));
        }
        Ok((FIRST_FD..)
            .zip(names)
            .map(|(fd, name)| Handed { fd, name })
            .collect())
    }
}

/// The sockets `env` hands to this process, each checked: an open descriptor, an IPv4 or
/// IPv6 socket, TCP and listening or UDP, and of the kind its name (`tcp`, `udp`) says
/// if it has one of those names. The first fault is refused with one line naming the
/// descriptor.
pub fn sockets(env: &Env) -> Result<Sockets, String> {
    let mut sockets = Sockets::default();
    for handed in env.handed(std::process::id())? {
        let what = match &handed.name {
            Some(name) => format!("descriptor {} ({name})", handed.fd),
            None => format!("descriptor {}", handed.fd),
        };
        let fd = sys::inherit(handed.fd).map_err(|e| {
            format!(
                "LISTEN_FDS={} but {what} is not open: {e}",
                env.fds.as_deref().unwrap_or_default()
            )
        })?;
        match classify(fd.as_fd(), handed.name.as_deref()) {
            Ok(Kind::Tcp(addr)) => sockets.tcp.push((listener(fd, &what)?, addr)),
            Ok(Kind::Udp(addr)) => {
                let socket = UdpSocket::from(fd);
                socket
                    .set_nonblocking(true)
                    .map_err(|e| format!("{what}: O_NONBLOCK: {e}"))?;
                sockets.udp.push((socket, addr));
            }
            Err(fault) => return Err(format!("{what} {fault}")),
        }
    }
    Ok(sockets)
}

/// Closes the descriptors `env` hands to this process, if any: `serve --inetd` serves
/// descriptor 0, and systemd's `Accept=yes` also passes the connection as descriptor 3,
/// which would hold it open after the server closed its side.
pub fn release(env: &Env) {
    for handed in env.handed(std::process::id()).unwrap_or_default() {
        if let Ok(fd) = sys::inherit(handed.fd) {
            debug!("--inetd: closing descriptor {} (LISTEN_FDS)", handed.fd);
            drop(fd);
        }
    }
}

/// What a handed-over socket is.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Tcp(SocketAddr),
    Udp(SocketAddr),
}

/// What `fd` is, or what is wrong with it (said after the descriptor's name).
fn classify(fd: BorrowedFd<'_>, name: Option<&str>) -> Result<Kind, String> {
    let socket = SockRef::from(&fd);
    let kind = socket
        .r#type()
        .map_err(|e| format!("is not a socket ({e})"))?;
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or("is not an IPv4 or IPv6 socket: echoloop serves TCP and UDP")?;
    let kind = match kind {
        Type::STREAM => {
            let listening = sys::is_listening(fd).map_err(|e| format!("cannot be checked: {e}"))?;
            if !listening {
                return Err(format!(
                    "is a TCP socket on {addr} that is not listening (a connection? \
                     `Accept=yes` units run `serve --inetd`)"
                ));
            }
            Kind::Tcp(addr)
        }
        Type::DGRAM => Kind::Udp(addr),
        _ => return Err(format!("on {addr} is neither a TCP nor a UDP socket")),
    };
    match (name, &kind) {
        (Some(TCP_NAME), Kind::Udp(_)) => Err(format!(
            "is a UDP socket on {addr}, where a listening TCP socket was expected"
        )),
        (Some(UDP_NAME), Kind::Tcp(_)) => Err(format!(
            "is a TCP socket on {addr}, where a UDP socket was expected"
        )),
        _ => Ok(kind),
    }
}

/// A handed-over listener made ready for the loop: non-blocking, and with what the
/// server's own listeners give the sockets they accept (`sys::listen`).
fn listener(fd: OwnedFd, what: &str) -> Result<OwnedFd, String> {
    let socket = Socket::from(fd);
    let fault = |option: &str, e: std::io::Error| format!("{what}: {option}: {e}");
    socket
        .set_nonblocking(true)
        .map_err(|e| fault("O_NONBLOCK", e))?;
    socket
        .set_out_of_band_inline(true)
        .map_err(|e| fault("SO_OOBINLINE", e))?;
    socket
        .set_tcp_nodelay(true)
        .map_err(|e| fault("TCP_NODELAY", e))?;
    Ok(socket.into())
}

/// `serve --inetd`: the TCP connection on descriptor 0 as a non-blocking socket of this
/// process's own, and its peer. Descriptors 0 and 1, and 2 if it is the connection too
/// (inetd passes it on all three), then point at `/dev/null`: no log line or stray print
/// can reach the peer, and closing the socket closes the connection.
pub fn inetd() -> Result<(OwnedFd, SocketAddr), String> {
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let socket = SockRef::from(&fd);
    match socket.r#type() {
        Ok(Type::STREAM) => {}
        Ok(_) => return Err("descriptor 0 is not a TCP connection".into()),
        Err(e) => {
            return Err(format!(
                "descriptor 0 is not a socket ({e}): --inetd serves the connection inetd or \
                 systemd (Accept=yes) hands over"
            ))
        }
    }
    let (local, peer) = ends(fd).ok_or("descriptor 0 is not a connected TCP socket")?;
    let own = fd
        .try_clone_to_owned()
        .map_err(|e| format!("duplicating descriptor 0: {e}"))?;
    SockRef::from(&own)
        .set_nonblocking(true)
        .map_err(|e| format!("descriptor 0: O_NONBLOCK: {e}"))?;
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    let is_the_connection = |fd: BorrowedFd<'_>| ends(fd) == Some((local, peer));
    let mut to_null = vec![0];
    to_null.extend(is_the_connection(stdout.as_fd()).then_some(1));
    to_null.extend(is_the_connection(stderr.as_fd()).then_some(2));
    for n in to_null {
        sys::to_null(n).map_err(|e| format!("descriptor {n}: {e}"))?;
    }
    Ok((own, peer))
}

/// A connected socket's local and peer addresses, if it is an IPv4 or IPv6 one.
fn ends(fd: BorrowedFd<'_>) -> Option<(SocketAddr, SocketAddr)> {
    let socket = SockRef::from(&fd);
    let local = socket.local_addr().ok()?.as_socket()?;
    let peer = socket.peer_addr().ok()?.as_socket()?;
    Some((local, peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pid: Option<&str>, fds: Option<&str>, names: Option<&str>) -> Env {
        Env {
            pid: pid.map(str::to_owned),
            fds: fds.map(str::to_owned),
            names: names.map(str::to_owned),
        }
    }

    #[test]
    fn taking_the_variables_removes_them_from_the_environment() {
        // Only this test touches these variables.
        env::set_var("LISTEN_PID", "7");
        env::set_var("LISTEN_FDS", "2");
        env::set_var("LISTEN_FDNAMES", "tcp:udp");
        assert_eq!(Env::take(), env_of(Some("7"), Some("2"), Some("tcp:udp")));
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            assert_eq!(env::var_os(name), None, "{name} is still set");
        }
    }

    #[test]
    fn no_listen_fds_is_no_activation() {
        assert_eq!(Env::default().handed(7), Ok(vec![]));
        assert_eq!(env_of(Some("7"), Some("0"), None).handed(7), Ok(vec![]));
        // LISTEN_PID alone hands nothing over.
        assert_eq!(env_of(Some("8"), None, None).handed(7), Ok(vec![]));
    }

    #[test]
    fn descriptors_count_from_three_with_their_names() {
        let handed = env_of(Some("7"), Some("2"), Some("tcp:udp"))
            .handed(7)
            .unwrap();
        assert_eq!(
            handed,
            [
                Handed {
                    fd: 3,
                    name: Some("tcp".into())
                },
                Handed {
                    fd: 4,
                    name: Some("udp".into())
                }
            ]
        );
        let unnamed = env_of(Some("7"), Some("1"), None).handed(7).unwrap();
        assert_eq!(unnamed, [Handed { fd: 3, name: None }]);
    }

    #[test]
    fn bad_variables_are_refused_with_the_variable_named() {
        let cases = [
            (
                env_of(Some("8"), Some("1"), None),
                "LISTEN_PID=8 is another process",
            ),
            (
                env_of(None, Some("1"), None),
                "LISTEN_FDS without LISTEN_PID",
            ),
            (env_of(Some("x"), Some("1"), None), "LISTEN_PID=x is not"),
            (env_of(Some("7"), Some("-1"), None), "LISTEN_FDS=-1 is not"),
            (
                env_of(Some("7"), Some("4097"), None),
                "LISTEN_FDS=4097 is not",
            ),
            (
                env_of(Some("7"), Some("2"), Some("tcp")),
                "LISTEN_FDNAMES names 1",
            ),
        ];
        for (env, start) in cases {
            let err = env.handed(7).unwrap_err();
            assert!(err.starts_with(start), "{err}");
        }
    }

    #[test]
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    fn sockets_are_told_apart_by_type_and_checked_against_their_names() {
        let tcp = sys::listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let udp = sys::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let tcp_addr = sys::local_addr(tcp.as_fd()).unwrap();
        let udp_addr = udp.local_addr().unwrap();
        assert_eq!(classify(tcp.as_fd(), None), Ok(Kind::Tcp(tcp_addr)));
        assert_eq!(classify(tcp.as_fd(), Some("tcp")), Ok(Kind::Tcp(tcp_addr)));
        assert_eq!(classify(udp.as_fd(), None), Ok(Kind::Udp(udp_addr)));
        assert_eq!(
            classify(udp.as_fd(), Some("echoloop.socket")),
            Ok(Kind::Udp(udp_addr))
        );
        let err = classify(udp.as_fd(), Some("tcp")).unwrap_err();
        assert!(err.starts_with("is a UDP socket"), "{err}");
        let err = classify(tcp.as_fd(), Some("udp")).unwrap_err();
        assert!(err.starts_with("is a TCP socket"), "{err}");
        let bound = Socket::new(socket2::Domain::IPV4, Type::STREAM, None).unwrap();
        bound
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let err = classify(bound.as_fd(), None).unwrap_err();
        assert!(err.contains("not listening"), "{err}");
        let (unix, _) = std::os::unix::net::UnixStream::pair().unwrap();
        let err = classify(unix.as_fd(), None).unwrap_err();
        assert!(err.contains("not an IPv4 or IPv6 socket"), "{err}");
        let file = std::fs::File::open("/dev/null").unwrap();
        let err = classify(file.as_fd(), None).unwrap_err();
        assert!(err.starts_with("is not a socket"), "{err}");
    }
}
