//! Network namespaces the tests create and always delete, the links between them (veth
//! pairs, TAP devices) and random loss by nftables inside them. Every address the tests use
//! lives inside these namespaces: nothing they send can reach the machine's own network.
//!
//! A namespace is deleted when its [`Netns`] is dropped (panics included), when the test
//! that made it times out ([`crate::with_timeout`]), and, should the test process have
//! been killed, by the next [`Netns::new`] of any test process: a namespace's name carries
//! the PID of the process that made it, and one whose process is gone is swept.
//!
//! They need root, `ip` (iproute2) and `nft` (nftables); [`available`] says whether this
//! machine has them.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use crate::sock;

/// Every namespace name starts with this, so that the sweep touches only ours.
const PREFIX: &str = "echoloop-test-";

/// True when this process may create namespaces and has the tools to set them up.
pub fn available() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let has = |tool: &str| {
        Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    root && has("ip") && has("nft")
}

/// A network namespace with its loopback up, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// A fresh namespace named `echoloop-test-TAG-PID-N`. Panics if it cannot be made (not
    /// root, no `ip`).
    pub fn new(tag: &str) -> Netns {
        let name = Netns::fresh_name(tag);
        run("ip", &["netns", "add", &name]);
        let ns = Netns::adopt(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// A name for a namespace that something else will create (say `serve --netns`),
    /// under the same scheme, so that it is swept if this process dies.
    pub fn fresh_name(tag: &str) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        sweep();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("{PREFIX}{tag}-{}-{n}", std::process::id())
    }

    /// Takes charge of namespace `name` (made already, or about to be): it is deleted
    /// when dropped, or when the test times out, if it still exists.
    pub fn adopt(name: String) -> Netns {
        crate::own_netns(&name);
        Netns { name }
    }

    /// True while the namespace exists.
    pub fn exists(&self) -> bool {
        std::path::Path::new(&format!("/run/netns/{}", self.name)).exists()
    }

    /// Its name, for `ip netns exec` and `ip -n`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program`, to be run inside the namespace (`ip netns exec NAME program`, which
    /// execs it: the child's PID is the program's).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// `ip -n NAME ARGS...`; panics if it fails.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// Lets TCP in this namespace retry an unanswered SYN `n` times before it gives up
    /// (Linux's default, 6, is about 127 s of backoff): over a very lossy link a connect
    /// must wait, not fail.
    pub fn syn_retries(&self, n: u8) {
        let status = self
            .command("sysctl")
            .args(["-q", "-w", &format!("net.ipv4.tcp_syn_retries={n}")])
            .status()
            .expect("running sysctl");
        assert!(status.success(), "sysctl net.ipv4.tcp_syn_retries");
    }

    /// Adds `addr/24` to `dev` and brings it up.
    pub fn address(&self, dev: &str, addr: &str) {
        self.ip(&["addr", "add", &format!("{addr}/24"), "dev", dev]);
        self.ip(&["link", "set", dev, "up"]);
    }

    /// A TAP device `dev` inside the namespace, for QEMU or [`sock::open_tap`] to attach to.
    pub fn tap(&self, dev: &str) {
        self.ip(&["tuntap", "add", "dev", dev, "mode", "tap"]);
    }

    /// Drops, at random, `inbound` % of the IP packets this namespace receives and
    /// `outbound` % of those it sends (nftables `numgen random`), replacing any earlier
    /// rule. Both 0: no loss.
    ///
    /// A packet dropped on output is not lost on a wire: the sender's own stack is told
    /// (`EPERM`), and Linux drops a half-open connection whose SYN-ACK retransmission
    /// fails that way. So a namespace where a server listens gets inbound loss only, and
    /// the other direction is dropped on the way in at the client's end.
    pub fn set_loss(&self, inbound: u8, outbound: u8) {
        let rules = format!(
            "table inet echoloop_loss\n\
             delete table inet echoloop_loss\n\
             table inet echoloop_loss {{\n\
               chain inbound {{ type filter hook input priority 0; {} }}\n\
               chain outbound {{ type filter hook output priority 0; {} }}\n\
             }}\n",
            drop_rule(inbound),
            drop_rule(outbound)
        );
        let mut nft = self
            .command("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("running nft");
        nft.stdin
            .take()
            .expect("nft's stdin")
            .write_all(rules.as_bytes())
            .expect("writing the nftables rules");
        let status = nft.wait().expect("waiting for nft");
        assert!(status.success(), "nft refused the loss rules:\n{rules}");
    }

    /// Runs `body` on a thread inside the namespace: the sockets it opens live there.
    pub fn run<T: Send + 'static>(&self, body: impl FnOnce() -> T + Send + 'static) -> T {
        let name = self.name.clone();
        let worker = thread::spawn(move || {
            sock::enter_netns(&name);
            body()
        });
        match worker.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Spawns `body` on a thread inside the namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        body: impl FnOnce() -> T + Send + 'static,
    ) -> thread::JoinHandle<T> {
        let name = self.name.clone();
        thread::spawn(move || {
            sock::enter_netns(&name);
            body()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete(&self.name);
        crate::disown_netns(&self.name);
    }
}

/// The nftables statement dropping `percent` % of packets (`numgen` counts 0 to 99).
fn drop_rule(percent: u8) -> String {
    match percent {
        0 => String::new(),
        100.. => "drop;".to_owned(),
        p => format!("numgen random mod 100 < {p} drop;"),
    }
}

/// A veth pair between `a` and `b`, device `veth0` on both sides, with `a_addr/24` and
/// `b_addr/24`: the pair is made inside `a` with its peer inside `b`, so no device ever
/// appears in the machine's own namespace.
pub fn veth(a: &Netns, a_addr: &str, b: &Netns, b_addr: &str) {
    a.ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", &b.name,
    ]);
    a.address("veth0", a_addr);
    b.address("veth0", b_addr);
}

/// Deletes namespace `name`; quiet if it is already gone.
pub(crate) fn delete(name: &str) {
    let _ = Command::new("ip")
        .args(["netns", "delete", name])
        .stderr(Stdio::null())
        .status();
}

/// Deletes our namespaces whose creating process has exited (killed before it could).
fn sweep() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        // echoloop-test-TAG-PID-N: the PID is the second field from the end.
        let pid = rest.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                delete(&name);
            }
        }
    }
}

/// Runs a set-up command and panics with its output if it fails.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}
