//! What `echoloop bench` measured, as text for people or one JSON object for scripts.

use std::fmt;
use std::time::Duration;

use super::Mode;

/// The measured window's results.
#[derive(Clone, Debug)]
pub struct Report {
    /// Ping-pong or stream.
    pub mode: Mode,
    /// Connections that were opened.
    pub conns: usize,
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
    /// CPU time (user + system) the load generator used in the window.
    pub cpu: Duration,
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
        let mode = match self.mode {
            Mode::PingPong => "pingpong",
            Mode::Stream => "stream",
        };
        format!(
            concat!(
                "{{\"mode\":\"{}\",\"conns\":{},\"size\":{},\"seconds\":{:.3},",
                "\"messages\":{},\"bytes\":{},\"warmup_messages\":{},\"messages_per_sec\":{:.1},\"mb_per_sec\":{:.3},",
                "\"latency_us\":{{\"p50\":{:.1},\"p99\":{:.1},\"p999\":{:.1},\"max\":{:.1},",
                "\"samples\":{}}},",
                "\"connect_failures\":{},\"resets\":{},\"mismatches\":{},",
                "\"cpu_seconds\":{:.3},\"cpu_percent\":{:.1}}}"
            ),
            mode,
            self.conns,
            self.size,
            self.elapsed.as_secs_f64(),
            self.messages,
            self.bytes,
            self.warmup_messages,
            self.messages_per_sec(),
            self.mb_per_sec(),
            micros(self.p50),
            micros(self.p99),
            micros(self.p999),
            micros(self.max),
            self.samples,
            self.connect_failures,
            self.resets,
            self.mismatches,
            self.cpu.as_secs_f64(),
            self.cpu_percent(),
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            Mode::PingPong => "ping-pong",
            Mode::Stream => "stream",
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
            "  errors:     {} connect failures, {} resets, {} mismatches",
            self.connect_failures, self.resets, self.mismatches
        )?;
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
            cpu: Duration::from_millis(500),
        };
        let json = r.to_json();
        assert!(json.starts_with("{\"mode\":\"stream\""), "{json}");
        assert!(json.contains("\"messages_per_sec\":50.0"), "{json}");
        assert!(json.contains("\"p99\":9.0"), "{json}");
        assert!(json.contains("\"cpu_percent\":25.0"), "{json}");
        assert!(!json.contains('\n'));
        assert_eq!(json.matches('{').count(), json.matches('}').count());
    }
}
