//! The command line of `echoloop-bench`, and how its errors read: as `echoloop`'s, one
//! line on stderr, exit 2 for a bad flag and 1 for a failed run.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use echoloop::cli::usage_error;
use echoloop::config::parse_secs;

use crate::{Mode, Options, MAX_CONNS, MAX_SIZE};

/// Load an echo server with many connections, check every echoed byte, report rates and
/// latency.
#[derive(Debug, Parser)]
#[command(name = "echoloop-bench", version)]
pub struct Cli {
    /// The server's address.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8090")]
    pub connect: SocketAddr,
    /// pingpong: send a message, wait for its whole echo, repeat; stream: write
    /// continuously and read the echo back.
    #[arg(long, value_enum, default_value_t = BenchMode::Pingpong)]
    pub mode: BenchMode,
    /// Connections, all loaded at once.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u16).range(1..=MAX_CONNS as i64))]
    pub conns: u16,
    /// Idle connections held open beside the busy ones: each echoes one 64-byte message
    /// first, then stays silent; the run checks they are all still open at the end.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u16).range(0..=MAX_CONNS as i64))]
    pub idle: u16,
    /// Message size (pingpong) or write size (stream), in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=MAX_SIZE as i64))]
    pub size: u32,
    /// How long to measure (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,
    /// How long to load the server before measuring; 0 for no warm-up.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs_or_zero)]
    pub warmup: Duration,
    /// Give up when no echo arrives for this long (a dead or stuck server).
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Print one JSON object instead of text (and no progress display).
    #[arg(long)]
    pub json: bool,
    /// Ping-pong over UDP: one datagram in flight per socket, each echo checked, a lost
    /// one given up after 200 ms; loss, reordering and duplicates reported.
    #[arg(long, conflicts_with_all = ["mode", "idle"])]
    pub udp: bool,
}

/// `--mode`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BenchMode {
    /// One message at a time per connection.
    Pingpong,
    /// Continuous writes per connection.
    Stream,
}

fn parse_secs_or_zero(text: &str) -> Result<Duration, String> {
    if text.parse::<f64>() == Ok(0.0) {
        return Ok(Duration::ZERO);
    }
    parse_secs(text)
}

/// Parses the command line and runs it; every error is one line on stderr.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error("echoloop-bench", e),
    };
    run(cli).unwrap_or_else(|e| {
        eprintln!("echoloop-bench: {e}");
        ExitCode::FAILURE
    })
}

fn run(args: Cli) -> io::Result<ExitCode> {
    let options = Options {
        connect: args.connect,
        mode: match args.mode {
            BenchMode::Pingpong => Mode::PingPong,
            BenchMode::Stream => Mode::Stream,
        },
        conns: usize::from(args.conns),
        idle: usize::from(args.idle),
        size: args.size as usize,
        duration: args.duration,
        warmup: args.warmup,
        timeout: args.timeout,
        progress: !args.json && crate::stderr_is_terminal(),
        udp: args.udp,
    };
    let report = crate::run(&options)?;
    let mut stdout = io::stdout().lock();
    if args.json {
        let _ = writeln!(stdout, "{}", report.to_json());
    } else {
        let _ = writeln!(stdout, "{report}");
    }
    let _ = stdout.flush();
    if report.mismatches > 0 {
        return Err(io::Error::other(format!(
            "{} connections received an echo that differs from what was sent",
            report.mismatches
        )));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_are_positive_or_a_warmup_of_zero() {
        assert_eq!(parse_secs("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
        assert_eq!(parse_secs_or_zero("0"), Ok(Duration::ZERO));
        assert_eq!(parse_secs_or_zero("1.5"), Ok(Duration::from_millis(1500)));
    }
}
