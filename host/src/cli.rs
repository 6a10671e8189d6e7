//! The command line: `echoloop serve`, `client` and `bench`, and how their errors read.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{bench, client, driver, signals, udp};

/// A readiness-driven TCP echo server on select(2), and its client.
#[derive(Debug, Parser)]
#[command(name = "echoloop", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the echo server until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Send messages on several sockets and check that every byte comes back.
    Client(ClientArgs),
    /// Load a server with many connections, check every echoed byte, report rates and latency.
    Bench(BenchArgs),
}

/// `echoloop serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, IPv4 or IPv6 (`[::1]:8090`); repeat for several. Port 0 picks a
    /// free port (printed).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8090")]
    pub listen: Vec<SocketAddr>,
    /// Serve at most N connections at once (1 to 65534, what the core can index). Lowered,
    /// with a log line, if the open-file limit cannot be raised to hold them.
    #[arg(long, value_name = "N", default_value_t = driver::DEFAULT_MAX_CONNS,
          value_parser = clap::value_parser!(u16).range(1..=driver::MAX_CONNS as i64)
              .map(usize::from))]
    pub max_conns: usize,
    /// Bytes held for a peer that does not read: the size of a pool buffer. Plain bytes or
    /// with a KiB or MiB suffix. The default, 64 KiB, is what the comparison's peers hold
    /// and lets one recv and one send move a whole socket buffer's worth when streaming.
    /// Worst-case memory, every peer having stopped reading: --buffers × --queue-size
    /// (10000 × 64 KiB = 625 MiB at the defaults), reserved at start-up but resident only
    /// while bytes wait.
    #[arg(long, value_name = "BYTES", default_value = "64KiB", value_parser = parse_size)]
    pub queue_size: usize,
    /// Buffers in the pool, shared by the connections that have bytes waiting (1 to
    /// --max-conns; default: --max-conns, so every connection can hold its queue at once).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..)
              .map(usize::from))]
    pub buffers: Option<usize>,
    /// Refuse a connection from an address that already holds N (off by default: load
    /// generators connect from one address). Refusals are counted and logged.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_conns_per_ip: Option<u32>,
    /// Close connections on which no byte moved for this long (fractions allowed).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub idle_timeout: Option<Duration>,
    /// Print, each round, what went into select, what came back and what the core did.
    #[arg(long)]
    pub trace: bool,
    /// When busy but few sockets are ready, wait this many microseconds for more before
    /// the next select, so one scan serves several (0: never).
    #[arg(long, value_name = "MICROS", default_value_t = driver::BATCH_WAIT.as_micros() as u64,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub batch_wait: u64,
    /// Connections accepted per listener per select round, at most: more drains a burst
    /// of new connections sooner, fewer keeps the open ones' round trips short meanwhile.
    #[arg(long, value_name = "N", default_value_t = driver::ACCEPTS_PER_ROUND,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub accepts_per_round: u32,
    /// Linux: a connection whose last read brought at least this many bytes relays its
    /// next ones with splice(2), from its socket back into it without copying them into
    /// the server (plain, KiB or MiB); smaller reads go through recv and send. `off`:
    /// always recv and send. Elsewhere than Linux there is no splice, and this is ignored.
    #[arg(long, value_name = "BYTES", default_value = "16KiB", value_parser = parse_splice_from)]
    pub splice_from: SpliceFrom,
    /// Also echo UDP datagrams on this address, IPv4 or IPv6; repeat for several. Port 0
    /// picks a free port (printed as `listening on udp ADDR:PORT`).
    #[arg(long, value_name = "ADDR:PORT")]
    pub udp: Vec<SocketAddr>,
    /// UDP flood guard: datagrams a second each source (address and port) may send, in
    /// bursts of an eighth of that; more are dropped and counted. `off`: no limit (for a
    /// benchmark from one machine).
    #[arg(long, value_name = "DATAGRAMS", default_value = "4096", value_parser = parse_rate)]
    pub udp_rate: Rate,
    /// UDP flood guard: bytes a second each source may send (plain, KiB or MiB), in
    /// bursts of a sixteenth of that but at least 64 KiB; `off`: no limit.
    #[arg(long, value_name = "BYTES", default_value = "4MiB", value_parser = parse_byte_rate)]
    pub udp_bytes: Rate,
}

/// A per-second limit, or none (`off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate(pub Option<u32>);

/// `off`, or a whole number of datagrams from 1 to 2^32 - 1.
fn parse_rate(text: &str) -> Result<Rate, String> {
    if text == "off" {
        return Ok(Rate(None));
    }
    match text.parse::<u32>() {
        Ok(n) if n > 0 => Ok(Rate(Some(n))),
        _ => Err(format!(
            "'{text}' is not a rate: a whole number from 1, or off"
        )),
    }
}

/// The smallest read that makes a connection relay, or never (`off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpliceFrom(pub Option<usize>);

/// `off`, or a size as `--queue-size` takes it.
fn parse_splice_from(text: &str) -> Result<SpliceFrom, String> {
    if text == "off" {
        return Ok(SpliceFrom(None));
    }
    parse_size(text).map(|n| SpliceFrom(Some(n)))
}

/// `off`, or a size as `--queue-size` takes it.
fn parse_byte_rate(text: &str) -> Result<Rate, String> {
    if text == "off" {
        return Ok(Rate(None));
    }
    let n = parse_size(text)?;
    Ok(Rate(Some(u32::try_from(n).map_err(|e| e.to_string())?)))
}

/// `echoloop client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server's address.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8090")]
    pub connect: SocketAddr,
    /// How many sockets send the messages at once.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub sockets: u16,
    /// Give up after this long without the whole echo (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Messages to send on every socket; by default the seed's four.
    #[arg(value_name = "MESSAGE")]
    pub messages: Vec<String>,
    /// Send each message as one UDP datagram and check its echo (retried, loss reported).
    #[arg(long)]
    pub udp: bool,
}

/// `echoloop bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The server's address.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8090")]
    pub connect: SocketAddr,
    /// pingpong: send a message, wait for its whole echo, repeat; stream: write
    /// continuously and read the echo back.
    #[arg(long, value_enum, default_value_t = BenchMode::Pingpong)]
    pub mode: BenchMode,
    /// Connections, all loaded at once.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u16).range(1..=bench::MAX_CONNS as i64))]
    pub conns: u16,
    /// Idle connections held open beside the busy ones: each echoes one 64-byte message
    /// first, then stays silent; the run checks they are all still open at the end.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u16).range(0..=bench::MAX_CONNS as i64))]
    pub idle: u16,
    /// Message size (pingpong) or write size (stream), in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=bench::MAX_SIZE as i64))]
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

/// `echoloop bench --mode`.
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

/// A size in bytes: plain, or with a `KiB` or `MiB` suffix; 1 byte to 1 GiB.
fn parse_size(text: &str) -> Result<usize, String> {
    let (number, unit) = if let Some(n) = text.strip_suffix("KiB") {
        (n, 1024)
    } else if let Some(n) = text.strip_suffix("MiB") {
        (n, 1024 * 1024)
    } else {
        (text, 1)
    };
    let bad = || format!("'{text}' is not a size from 1 byte to 1 GiB (BYTES, or N KiB or N MiB)");
    let n: usize = number.trim().parse().map_err(|_| bad())?;
    n.checked_mul(unit)
        .filter(|n| (1..=driver::MAX_QUEUE).contains(n))
        .ok_or_else(bad)
}

fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("'{text}' is not a positive number of seconds"))
}

/// Parses the command line and runs it; every error is one line on stderr.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let level = env_logger::Env::default().default_filter_or("info");
    env_logger::Builder::from_env(level).init();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Client(args) => client(args),
        Command::Bench(args) => run_bench(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("echoloop: {e}");
        ExitCode::FAILURE
    })
}

/// Help and version go out as clap writes them; a usage error becomes its first line
/// (clap adds a usage block and a hint below it).
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("echoloop: {first} (see --help)");
    ExitCode::from(2)
}

fn serve(args: ServeArgs) -> io::Result<ExitCode> {
    let buffers = args.buffers.unwrap_or(args.max_conns);
    if buffers > args.max_conns {
        eprintln!(
            "echoloop: --buffers {buffers} is more than --max-conns {}: a connection holds \
             one buffer at most (see --help)",
            args.max_conns
        );
        return Ok(ExitCode::from(2));
    }
    let options = driver::Options {
        listen: args.listen,
        max_conns: args.max_conns,
        queue_size: args.queue_size,
        buffers,
        max_conns_per_ip: args.max_conns_per_ip,
        idle_timeout: args.idle_timeout,
        trace: args.trace,
        batch_wait: Duration::from_micros(args.batch_wait),
        accepts_per_round: args.accepts_per_round,
        splice_from: args.splice_from.0,
        udp: args.udp,
        udp_datagrams: udp::datagram_budget(args.udp_rate.0),
        udp_bytes: udp::byte_budget(args.udp_bytes.0),
    };
    // Process-wide handlers: installed here, at start-up, for the server to watch.
    let signals = signals::self_pipe()?;
    let mut server = driver::Driver::bind(&options, signals)?;
    let mut stdout = io::stdout().lock();
    for addr in server.local_addrs() {
        let _ = writeln!(stdout, "listening on {addr}");
    }
    for addr in server.udp_addrs() {
        let _ = writeln!(stdout, "listening on udp {addr}");
    }
    // Tests and scripts wait for these lines: they must not sit in a buffer.
    let _ = stdout.flush();
    drop(stdout);
    log::debug!(
        "serving up to {} connections, {} buffers of {} bytes",
        server.capacity(),
        server.buffers(),
        options.queue_size
    );
    server.run()?;
    let stats = server.stats();
    log::info!(
        "shut down: accepted {}, refused {}, bytes in {}, bytes out {}, discarded {}",
        stats.accepted,
        stats.refused,
        stats.bytes_in,
        stats.bytes_out,
        stats.bytes_discarded
    );
    for report in server.udp_reports() {
        log::info!("shut down: {report}");
    }
    Ok(ExitCode::SUCCESS)
}

fn client(args: ClientArgs) -> io::Result<ExitCode> {
    let options = client::Options {
        connect: args.connect,
        sockets: usize::from(args.sockets),
        messages: args.messages,
        timeout: args.timeout,
        udp: args.udp,
    };
    let mut stdout = io::stdout().lock();
    if client::run(&options, &mut stdout)? {
        return Ok(ExitCode::SUCCESS);
    }
    let _ = stdout.flush();
    Err(io::Error::other("some echoes differ from what was sent"))
}

fn run_bench(args: BenchArgs) -> io::Result<ExitCode> {
    let options = bench::Options {
        connect: args.connect,
        mode: match args.mode {
            BenchMode::Pingpong => bench::Mode::PingPong,
            BenchMode::Stream => bench::Mode::Stream,
        },
        conns: usize::from(args.conns),
        idle: usize::from(args.idle),
        size: args.size as usize,
        duration: args.duration,
        warmup: args.warmup,
        timeout: args.timeout,
        progress: !args.json && bench::stderr_is_terminal(),
        udp: args.udp,
    };
    let report = bench::run(&options)?;
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
