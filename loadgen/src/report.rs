//! What `echoloop-bench` measured, as text for people or one JSON object for scripts.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::Mode;

/// The measured window's results.
#[derive(Clone, Debug)]
pub struct Report {
    /// Ping-pong or stream.
    pub mode: Mode,
    /// Busy connections that were opened.
    pub conns: usize,
    /// Idle connections that were opened beside them.
    pub idle: usize,
    /// Idle connections that echoed their message and were still open, and had received
    /// nothing unasked, at the end.
    pub idle_open: usize,
    /// Message (or write) size in bytes.
    pub size: usize,
    /// Length of the measured window.
    pub elapsed: Duration,
    /// Round trips completed (stream: echoed bytes / size).
    pub messages: u64,
    /// Echoed bytes, every one checked.
    pub bytes: u64,
    /// Round trips during the warm-up (with `messages`: every round trip of the run, for
    /// dividing a server's whole-run counters by).
    pub warmup_messages: u64,
    /// Round-trip latency percentiles (stream: from a write to the end of its echo).
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest.
    pub max: Duration,
    /// Latencies recorded.
    pub samples: u64,
    /// Connections that could not be opened.
    pub connect_failures: u64,
    /// Connections the server closed or reset.
    pub resets: u64,
    /// Connections whose echo differed from what was sent.
    pub mismatches: u64,
    /// Busy connections, neither reset nor mismatched, that completed no round trip in the
    /// whole run: the server never served them (e.g. left them in its listen backlog).
    pub stalled: u64,
    /// CPU time (user + system) the load generator used in the window.
    pub cpu: Duration,
    /// With `--udp`: the datagrams' fates (then `mismatches` counts datagrams).
    pub udp: Option<UdpFigures>,
}

/// What became of the datagrams of `echoloop-bench --udp`, in the measured window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UdpFigures {
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams whose echo did not come within `timeout` (the next one was sent).
    pub timed_out: u64,
    /// Timed out and never echoed: `timed_out − late`.
    pub lost: u64,
    /// Echoes that came after their timeout.
    pub late: u64,
    /// Echoes of a datagram older than one already echoed.
    pub reordered: u64,
    /// Echoes of a datagram already echoed.
    pub duplicates: u64,
    /// ICMP port-unreachable reports (`ECONNREFUSED`).
    pub refused: u64,
    /// The wait for one echo.
    #[serde(skip)]
    pub timeout: Duration,
}

impl UdpFigures {
    /// Lost datagrams in percent of those sent.
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        100.0 * self.lost as f64 / self.sent as f64
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

impl Report {
    /// The window in seconds; a run that ended before measuring has rates of zero.
    fn per_sec(&self, x: f64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            x / secs
        } else {
            0.0
        }
    }

    /// Round trips per second.
    pub fn messages_per_sec(&self) -> f64 {
        self.per_sec(self.messages as f64)
    }

    /// Echoed megabytes (10^6 bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.per_sec(self.bytes as f64) / 1e6
    }

    /// The load generator's CPU use, in percent of one CPU.
    pub fn cpu_percent(&self) -> f64 {
        100.0 * self.per_sec(self.cpu.as_secs_f64())
    }

    /// One JSON object on one line.
    pub fn to_json(&self) -> String {
        let json = Json {
            mode: match self.mode {
                Mode::PingPong => "pingpong",
                Mode::Stream => "stream",
            },
            conns: self.conns,
            idle: self.idle,
            idle_open: self.idle_open,
            size: self.size,
            seconds: self.elapsed.as_secs_f64(),
            messages: self.messages,
            bytes: self.bytes,
            warmup_messages: self.warmup_messages,
            messages_per_sec: self.messages_per_sec(),
            mb_per_sec: self.mb_per_sec(),
            latency_us: Latency {
                p50: micros(self.p50),
                p99: micros(self.p99),
                p999: micros(self.p999),
                max: micros(self.max),
                samples: self.samples,
            },
            connect_failures: self.connect_failures,
            resets: self.resets,
            mismatches: self.mismatches,
            stalled: self.stalled,
            cpu_seconds: self.cpu.as_secs_f64(),
            cpu_percent: self.cpu_percent(),
            udp: self.udp,
        };
        // Serialising plain numbers and strings cannot fail; an empty object never shows.
        serde_json::to_string(&json).unwrap_or_else(|_| "{}".into())
    }
}

/// The JSON object, field for field (scripts read these names: bench/compare.py).
#[derive(Serialize)]
struct Json {
    mode: &'static str,
    conns: usize,
    idle: usize,
    idle_open: usize,
    size: usize,
    seconds: f64,
    messages: u64,
    bytes: u64,
    warmup_messages: u64,
    messages_per_sec: f64,
    mb_per_sec: f64,
    latency_us: Latency,
    connect_failures: u64,
    resets: u64,
    mismatches: u64,
    stalled: u64,
    cpu_seconds: f64,
    cpu_percent: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    udp: Option<UdpFigures>,
}

/// Round-trip latency percentiles in microseconds.
#[derive(Serialize)]
struct Latency {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    samples: u64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match (self.mode, self.udp.is_some()) {
            (_, true) => "UDP ping-pong",
            (Mode::PingPong, false) => "ping-pong",
            (Mode::Stream, false) => "stream",
        };
        writeln!(
            f,
            "{mode}, {} connections x {} bytes, {:.1} s measured",
            self.conns,
            self.size,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "  throughput: {:.0} messages/s, {:.2} MB/s echoed and checked",
            self.messages_per_sec(),
            self.mb_per_sec()
        )?;
        writeln!(
            f,
            "  latency:    p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs ({} samples)",
            micros(self.p50),
            micros(self.p99),
            micros(self.p999),
            micros(self.max),
            self.samples
        )?;
        writeln!(
            f,
            "  errors:     {} connect failures, {} resets, {} mismatches, {} stalled",
            self.connect_failures, self.resets, self.mismatches, self.stalled
        )?;
        if let Some(u) = &self.udp {
            writeln!(
                f,
                "  datagrams:  {} sent, {} lost ({:.2} %), {} late (after {} ms), {} reordered, {} duplicates, {} ICMP refusals",
                u.sent,
                u.lost,
                u.loss_percent(),
                u.late,
                u.timeout.as_millis(),
                u.reordered,
                u.duplicates,
                u.refused
            )?;
        }
        if self.idle > 0 {
            writeln!(
                f,
                "  idle:       {} of {} idle connections still open at the end",
                self.idle_open, self.idle
            )?;
        }
        write!(
            f,
            "  bench CPU:  {:.2} s ({:.0} % of one CPU)",
            self.cpu.as_secs_f64(),
            self.cpu_percent()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_one_object_with_the_rates() {
        let r = Report {
            mode: Mode::Stream,
            conns: 2,
            idle: 3,
            idle_open: 2,
            size: 10,
            elapsed: Duration::from_secs(2),
            messages: 100,
            bytes: 1000,
            warmup_messages: 7,
            p50: Duration::from_micros(5),
            p99: Duration::from_micros(9),
            p999: Duration::from_micros(10),
            max: Duration::from_micros(11),
            samples: 100,
            connect_failures: 0,
            resets: 1,
            mismatches: 0,
            stalled: 4,
            cpu: Duration::from_millis(500),
            udp: None,
        };
        let json = r.to_json();
        assert!(!json.contains('\n'), "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["mode"], "stream");
        assert_eq!(v["conns"], 2);
        assert_eq!(v["idle"], 3);
        assert_eq!(v["idle_open"], 2);
        assert_eq!(v["messages_per_sec"], 50.0);
        assert_eq!(v["mb_per_sec"], 0.0005);
        assert_eq!(v["latency_us"]["p99"], 9.0);
        assert_eq!(v["latency_us"]["samples"], 100);
        assert_eq!(v["resets"], 1);
        assert_eq!(v["stalled"], 4);
        assert_eq!(v["cpu_percent"], 25.0);
        assert_eq!(v["seconds"], 2.0);
    }
}
