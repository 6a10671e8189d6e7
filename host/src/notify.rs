//! Readiness notification to a service manager through `$NOTIFY_SOCKET` (sd_notify(3),
//! systemd's `Type=notify`): `READY=1` once every listener is open, `STATUS=` with the
//! connection counts now and then, `STOPPING=1` when a signal starts the shutdown.
//!
//! By hand rather than with the `sd-notify` crate: a notification is one datagram on a
//! Unix socket, which std sends (abstract names included, on Linux). Without the variable
//! nothing is sent; with one that does not work, one warning line and the server goes on
//! without notifying.

use std::env;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use log::{debug, warn};

use crate::driver::Event;

/// How often the connection counts go out as `STATUS=`, when they changed.
pub const STATUS_EVERY: Duration = Duration::from_secs(2);

/// How long `READY=1` and `STOPPING=1` wait for room in a full receiver; a `STATUS=`
/// that finds no room is dropped (the next one says more).
const PATIENCE: Duration = Duration::from_secs(1);

/// Where notifications go.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    /// A socket in the file system.
    Path(PathBuf),
    /// A name in Linux's abstract socket namespace (`@name` in the variable).
    Abstract(Vec<u8>),
}

/// The service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    target: Target,
    /// The variable as given, for the warning.
    given: String,
    /// The last `STATUS=` sent: the same one is not sent again.
    status: String,
}

/// Reads `$NOTIFY_SOCKET` and removes it from the environment: no process started later
/// should notify in this one's name. Call it while the process has one thread.
pub fn take_env() -> Option<String> {
    let given = env::var_os("NOTIFY_SOCKET")?;
    env::remove_var("NOTIFY_SOCKET");
    Some(given.to_string_lossy().into_owned())
}

impl Notifier {
    /// A notifier to `given` (what `$NOTIFY_SOCKET` held), or, with one warning line,
    /// `None` if it is unusable. It opens a socket: after socket activation took its
    /// descriptors, so that the number is not taken for one of them.
    pub fn open(given: &str) -> Option<Notifier> {
        let opened = parse(given).and_then(|target| {
            let socket = UnixDatagram::unbound().map_err(|e| e.to_string())?;
            socket.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(Notifier {
                socket,
                target,
                given: given.to_owned(),
                status: String::new(),
            })
        });
        opened
            .map_err(|e| warn!("NOTIFY_SOCKET={given}: {e}; not notifying"))
            .ok()
    }

    /// `READY=1`, with a first `STATUS=`. False (after one warning line) if it could not
    /// be sent: the caller drops the notifier.
    pub fn ready(&mut self, status: &str) -> bool {
        self.status = status.to_owned();
        self.send(&format!("READY=1\nSTATUS={status}"), PATIENCE)
    }

    /// Says what the driver reports: `STATUS=` when the counts changed, `STOPPING=1`.
    /// False once a notification failed (the caller stops notifying).
    pub fn on(&mut self, event: Event<'_>) -> bool {
        match event {
            Event::Tick { open, stats } => {
                let status = status(open, stats.accepted, stats.refused);
                if status == self.status {
                    return true;
                }
                let sent = self.send(&format!("STATUS={status}"), Duration::ZERO);
                self.status = status;
                sent
            }
            Event::Stopping => self.send("STOPPING=1", PATIENCE),
        }
    }

    /// Sends one notification, waiting up to `patience` for room; false (with one
    /// warning line) if the socket refused it.
    fn send(&mut self, message: &str, patience: Duration) -> bool {
        let step = Duration::from_millis(10);
        let mut waited = Duration::ZERO;
        loop {
            match self.send_once(message.as_bytes()) {
                Ok(_) => return true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if waited >= patience {
                        debug!("NOTIFY_SOCKET: no room, dropping {message:?}");
                        return true;
                    }
                    thread::sleep(step);
                    waited += step;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!("NOTIFY_SOCKET={}: {e}; not notifying", self.given);
                    return false;
                }
            }
        }
    }

    fn send_once(&self, message: &[u8]) -> io::Result<usize> {
        match &self.target {
            Target::Path(path) => self.socket.send_to(message, path),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Target::Abstract(name) => {
                #[cfg(target_os = "android")]
                use std::os::android::net::SocketAddrExt;
                #[cfg(target_os = "linux")]
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                self.socket.send_to_addr(message, &addr)
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            Target::Abstract(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }
}

/// The `STATUS=` text for these counts.
pub fn status(open: usize, accepted: u64, refused: u64) -> String {
    let s = if open == 1 { "" } else { "s" };
    format!("{open} connection{s} open; {accepted} accepted, {refused} refused since start")
}

/// Where `$NOTIFY_SOCKET` points: an absolute path, or `@name` for an abstract socket.
fn parse(given: &str) -> Result<Target, String> {
    if given.starts_with('/') {
        return Ok(Target::Path(PathBuf::from(given)));
    }
    if let Some(name) = given.strip_prefix('@') {
        if !cfg!(any(target_os = "linux", target_os = "android")) {
            return Err("abstract socket names are Linux's".into());
        }
        return Ok(Target::Abstract(name.as_bytes().to_vec()));
    }
    Err("neither an absolute path nor an abstract name (@name)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_abstract_names_are_understood_and_the_rest_refused() {
        assert_eq!(
            parse("/run/systemd/notify"),
            Ok(Target::Path("/run/systemd/notify".into()))
        );
        if cfg!(target_os = "linux") {
            assert_eq!(
                parse("@sd/notify"),
                Ok(Target::Abstract(b"sd/notify".to_vec()))
            );
        }
        assert!(parse("relative/path").is_err());
        assert!(parse("vsock:2:1234").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn the_variable_is_taken_from_the_environment_and_a_bad_one_ignored() {
        // Only this test touches the variable.
        env::set_var("NOTIFY_SOCKET", "/run/nothing/here");
        assert_eq!(take_env().as_deref(), Some("/run/nothing/here"));
        assert_eq!(env::var_os("NOTIFY_SOCKET"), None);
        assert_eq!(take_env(), None, "absent: nothing to notify");
        assert!(Notifier::open("not/absolute").is_none());
        let mut notifier = Notifier::open("/run/nothing/here").unwrap();
        assert!(
            !notifier.ready("up"),
            "no socket there: the caller stops notifying"
        );
    }

    #[test]
    fn status_reads_as_a_sentence() {
        assert_eq!(
            status(1, 3, 0),
            "1 connection open; 3 accepted, 0 refused since start"
        );
        assert_eq!(
            status(0, 3, 2),
            "0 connections open; 3 accepted, 2 refused since start"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_abstract_socket_receives_the_notification() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("echoloop-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&addr).unwrap();
        let mut notifier = Notifier {
            socket: UnixDatagram::unbound().unwrap(),
            target: parse(&format!("@{name}")).unwrap(),
            given: format!("@{name}"),
            status: String::new(),
        };
        assert!(notifier.ready("up"));
        let mut buf = [0; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up");
    }
}
