//! What the soak counts, and the fault matrix it prints in Markdown.

use std::fmt::Write as _;

use crate::conn::{Conn, Kind, Outcome};

/// One row of the matrix: one kind of client.
#[derive(Clone, Copy, Default)]
pub struct Row {
    /// Connections opened.
    pub tried: u64,
    /// Ended as their kind expects.
    pub done: u64,
    /// Ended any other way.
    pub failed: u64,
    /// Bytes sent to the server.
    pub sent: u64,
    /// Echoed bytes received, each checked against what was sent.
    pub verified: u64,
    /// Bytes a healthy connection sent and never got back, or got back wrong.
    pub lost: u64,
}

/// A worker's counts; added up by the main thread.
#[derive(Default)]
pub struct Tally {
    /// Per kind, in `Kind::ALL` order.
    pub rows: [Row; 5],
    /// Connections opened after the ramp-up: the steady arrivals.
    pub arrivals: u64,
    /// Failures, described (the first few are printed).
    pub failures: Vec<String>,
    /// Failures not tied to a connection (connect, poll).
    pub other_failures: u64,
}

impl Tally {
    /// A connection of `kind` opened; `steady` once past the ramp-up.
    pub fn start(&mut self, kind: Kind, steady: bool) {
        self.rows[kind as usize].tried += 1;
        self.arrivals += u64::from(steady);
    }

    /// A connection ended.
    pub fn end(&mut self, conn: &Conn, outcome: Outcome) {
        let row = &mut self.rows[conn.kind as usize];
        row.sent += conn.sent as u64;
        row.verified += conn.received as u64;
        match outcome {
            Outcome::Done => row.done += 1,
            Outcome::Failed(what) => {
                row.failed += 1;
                if conn.kind.healthy() {
                    row.lost += (conn.sent - conn.received) as u64;
                }
                self.failures.push(what);
            }
        }
    }

    /// A failure outside any connection.
    pub fn fail(&mut self, what: String) {
        self.other_failures += 1;
        self.failures.push(what);
    }

    /// Adds another worker's counts.
    pub fn add(&mut self, o: Tally) {
        for (a, b) in self.rows.iter_mut().zip(o.rows) {
            a.tried += b.tried;
            a.done += b.done;
            a.failed += b.failed;
            a.sent += b.sent;
            a.verified += b.verified;
            a.lost += b.lost;
        }
        self.arrivals += o.arrivals;
        self.other_failures += o.other_failures;
        self.failures.extend(o.failures);
    }

    /// Every failure of any kind.
    pub fn failed(&self) -> u64 {
        self.rows.iter().map(|r| r.failed).sum::<u64>() + self.other_failures
    }

    /// Bytes lost on healthy connections.
    pub fn lost(&self) -> u64 {
        self.rows.iter().map(|r| r.lost).sum()
    }
}

/// What each kind of client does to the server, and what "as expected" means for it.
fn what(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::PingPong => (
            "ping-pong: 1-4,096 B message, wait for the whole echo, think 0.1-1.6 s, again; half-close",
            "every byte back in order, then EOF",
        ),
        Kind::Stream => (
            "stream 256 KiB-4 MiB while reading; half-close",
            "every byte back in order, then EOF",
        ),
        Kind::HalfClose => (
            "send up to 16 KB, half-close, only then read",
            "every byte back in order, then EOF",
        ),
        Kind::NeverReads => (
            "for 5-30 s send what the server takes (until every buffer is full), never read; close with unread data (RST)",
            "server keeps it open without growing, then takes the reset",
        ),
        Kind::Reset => (
            "stream while reading, reset mid-stream (`SO_LINGER` 0)",
            "what came back was a correct prefix; only that connection closes",
        ),
    }
}

/// The whole run, for the table.
pub struct Summary {
    /// Seconds the load ran (before the closing phase).
    pub secs: u64,
    /// Most connections open at once (soak side).
    pub peak_open: usize,
    /// Server resident memory: idle, after the ramp-up, at the end of the load, highest.
    pub rss_kib: [u64; 4],
    /// Server CPU seconds used during the load.
    pub cpu_secs: f64,
    /// The server died during the run.
    pub server_died: bool,
    /// How the server exited on SIGTERM at the end.
    pub exit: String,
}

/// The fault matrix and the run's figures, in Markdown.
pub fn markdown(t: &Tally, s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| client / fault | what it does | tried | as expected | failed | bytes sent | bytes echoed and verified | bytes lost | expected |");
    let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|---|");
    for kind in Kind::ALL {
        let r = t.rows[kind as usize];
        let (does, expect) = what(kind);
        let _ = writeln!(
            out,
            "| {kind:?} | {does} | {} | {} | {} | {} | {} | {} | {expect} |",
            r.tried, r.done, r.failed, r.sent, r.verified, r.lost
        );
    }
    let _ = writeln!(
        out,
        "| new connections | arriving at a steady rate after the ramp-up, replacing those that end | {} | | {} | | | | connect and served |",
        t.arrivals, t.other_failures
    );
    let [idle, start, end, peak] = s.rss_kib.map(|k| k as f64 / 1024.0);
    let _ = writeln!(out);
    let _ = writeln!(out, "| figure | value |");
    let _ = writeln!(out, "|---|--:|");
    let _ = writeln!(out, "| load duration | {} s |", s.secs);
    let _ = writeln!(out, "| peak concurrent connections | {} |", s.peak_open);
    let _ = writeln!(
        out,
        "| connections in all | {} |",
        t.rows.iter().map(|r| r.tried).sum::<u64>()
    );
    let _ = writeln!(out, "| bytes lost (healthy connections) | {} |", t.lost());
    let _ = writeln!(out, "| failures | {} |", t.failed());
    let _ = writeln!(
        out,
        "| server restarts (process died) | {} |",
        u8::from(s.server_died)
    );
    let _ = writeln!(out, "| server RSS idle / after ramp-up / at end / peak | {idle:.1} / {start:.1} / {end:.1} / {peak:.1} MiB |");
    let _ = writeln!(
        out,
        "| server CPU during the load | {:.1} s ({:.0}% of one core) |",
        s.cpu_secs,
        100.0 * s.cpu_secs / s.secs.max(1) as f64
    );
    let _ = writeln!(out, "| server exit on SIGTERM | {} |", s.exit);
    out
}
