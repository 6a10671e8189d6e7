//! The impaired wire (`src/bin/wire.rs`) as a child process of a test: started between two
//! ports, stopped when dropped, its report kept.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The `wire` binary, built once per test process.
pub fn wire_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        escargot::CargoBuild::new()
            .manifest_path(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .package("echoloop-tests")
            .bin("wire")
            .current_release()
            .run()
            .unwrap_or_else(|e| panic!("building the wire binary: {e}"))
            .path()
            .to_path_buf()
    })
    .clone()
}

/// What the wire does to frames (see `wire --help`): percentages, and the largest delay.
#[derive(Clone, Copy, Debug)]
pub struct Impairment {
    /// Seeds every decision: the same seed replays the same run.
    pub seed: u64,
    /// Frames dropped, in percent.
    pub loss: u8,
    /// Frames sent twice, in percent.
    pub dup: u8,
    /// Frames held back so that later ones overtake them, in percent.
    pub reorder: u8,
    /// Each frame waits a random 0 to this many milliseconds.
    pub delay_ms: u32,
}

impl Impairment {
    /// The impairment CI replays, host and firmware alike (docs/reliability.md has its
    /// figures): 2 % lost, 2 % duplicated, 5 % reordered, up to 3 ms of delay, seeded by
    /// `ECHOLOOP_WIRE_SEED` (26 by default) so that a failing run can be replayed.
    pub fn ci() -> Impairment {
        let seed = std::env::var("ECHOLOOP_WIRE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(26);
        Impairment {
            seed,
            loss: 2,
            dup: 2,
            reorder: 5,
            delay_ms: 3,
        }
    }
}

/// A running wire, stopped (SIGTERM, then its final report) when dropped.
pub struct Wire {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Wire {
    /// Relays frames between ports `a` and `b` (`tap:NETNS:DEV` or `unix:PATH:PEER`).
    pub fn start(imp: Impairment, a: &str, b: &str) -> Wire {
        let mut child = Command::new(wire_bin())
            .args(["--seed", &imp.seed.to_string()])
            .args([
                "--loss",
                &imp.loss.to_string(),
                "--dup",
                &imp.dup.to_string(),
            ])
            .args(["--reorder", &imp.reorder.to_string()])
            .args(["--delay", &imp.delay_ms.to_string(), a, b])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the wire");
        let log = crate::collect(child.stderr.take().expect("the wire's stderr"));
        let wire = Wire { child, log };
        assert!(
            wire.wait_for("relaying", Duration::from_secs(10)),
            "the wire did not start: {}",
            wire.log()
        );
        wire
    }

    /// What the wire said so far: its start, and what it did each second.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn wait_for(&self, needle: &str, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Stops the wire and returns its final report line.
    pub fn stop(mut self) -> String {
        self.halt();
        let log = self.log();
        log.lines()
            .rev()
            .find(|l| l.contains("stopped"))
            .unwrap_or("(no final report)")
            .to_owned()
    }

    fn halt(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            crate::sock::kill(self.child.id(), libc::SIGTERM);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    // Let the collector read the last line.
                    std::thread::sleep(Duration::from_millis(50));
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.halt();
    }
}
