//! What `echoloop serve` runs with: every option, its default and its validation, in one
//! type that clap parses and the driver runs from. A default is written once, as a
//! constant here; clap's help shows it, and [`ServeConfig::new`] uses it.

use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::TypedValueParser as _;
use clap::Args;
use echoloop_core::udp::{Budget, UdpConfig};

use crate::poll::PollerKind;
use crate::udp;

/// Where the server listens by default: the seed's address, on loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8090";

/// The most connections the core can index (16-bit ids, one value reserved).
pub const MAX_CONNS: usize = echoloop_core::MAX_CONNS;

/// The default `--max-conns`, as Redis's `maxclients`: the pool it reserves is address
/// space, not resident memory (docs/capacity.md).
pub const DEFAULT_MAX_CONNS: usize = 10_000;

/// The default `--queue-size`: what the comparison's peers hold, and what lets one `recv`
/// and one `send` move a whole socket buffer's worth when streaming.
pub const DEFAULT_QUEUE: usize = 64 * 1024;

/// The largest `--queue-size`: 1 GiB.
pub const MAX_QUEUE: usize = 1 << 30;

/// The default `--accepts-per-round`: new connections cannot starve open ones. Chosen by
/// data (docs/benchmarks.md, "Defaults chosen by data").
pub const ACCEPTS_PER_ROUND: u32 = 64;

/// The default `--batch-wait`, in microseconds: long enough for several more sockets to
/// become ready under load, short next to the queueing delay such load already has (p50
/// 350 µs at 50 busy connections). docs/benchmarks.md has 0, 20, 40 and 80 µs side by side.
pub const BATCH_WAIT_MICROS: u64 = 40;

/// The longest `--batch-wait`, in microseconds.
pub const MAX_BATCH_WAIT_MICROS: u64 = 10_000;

/// The default `--splice-from`: a read of at least this many bytes makes a connection's
/// next receive a relay. Chosen by data (docs/benchmarks.md, "Defaults chosen by data"):
/// at 16 KiB ping-pong the two ways cost the same, above it the relay wins.
pub const SPLICE_FROM: usize = 16 * 1024;

/// The default `--poller`, on every platform: `select` is the reference backend, what the
/// core was designed against.
pub const POLLER: PollerKind = PollerKind::Select;

/// The flood guard's defaults are the core's ([`UdpConfig::new`]).
const UDP_DEFAULTS: UdpConfig = UdpConfig::new();

/// `echoloop serve`'s options. Built by clap from the command line, or by
/// [`ServeConfig::new`] with every default; [`ServeConfig::check`] refuses what the
/// command line's parsers would.
#[derive(Clone, Debug, Args)]
pub struct ServeConfig {
    /// Address to listen on, IPv4 or IPv6 (`[::1]:8090`); repeat for several. Port 0 picks
    /// a free port (printed).
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_LISTEN)]
    pub listen: Vec<SocketAddr>,
    /// Serve at most N connections at once (1 to 65534, what the core can index). Lowered,
    /// with a log line, if the open-file limit cannot be raised to hold them.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNS,
          value_parser = clap::value_parser!(u16).range(1..=MAX_CONNS as i64)
              .map(usize::from))]
    pub max_conns: usize,
    /// Bytes held for a peer that does not read: the size of a pool buffer. Plain bytes or
    /// with a KiB or MiB suffix. Worst-case memory, every peer having stopped reading:
    /// --buffers × --queue-size, reserved at start-up but resident only while bytes wait.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_QUEUE, value_parser = parse_size)]
    pub queue_size: usize,
    /// Buffers in the pool, shared by the connections that have bytes waiting: 1 to
    /// --max-conns (more could never be used, and is refused). Default: --max-conns, so
    /// that every connection can hold its queue at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..)
              .map(usize::from))]
    pub buffers: Option<usize>,
    /// Refuse a connection from an address that already holds N (off by default: load
    /// generators connect from one address). Refusals are counted and logged.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_conns_per_ip: Option<u32>,
    /// Close connections on which no byte moved for this long (fractions allowed), with a
    /// reset. Off by default.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub idle_timeout: Option<Duration>,
    /// Print, each round, what went into the wait (select or epoll_wait), what came back
    /// and what the core did.
    #[arg(long)]
    pub trace: bool,
    /// How to wait for readiness: select (every platform, the default) or epoll (Linux).
    #[arg(long, value_name = "POLLER", default_value_t = POLLER, value_parser = parse_poller)]
    pub poller: PollerKind,
    /// When busy but few sockets are ready, wait this many microseconds for more before
    /// the next select, so one scan serves several (0: never).
    #[arg(long, value_name = "MICROS", default_value_t = BATCH_WAIT_MICROS,
          value_parser = clap::value_parser!(u64).range(0..=MAX_BATCH_WAIT_MICROS))]
    pub batch_wait: u64,
    /// Connections accepted per listener per select round, at most: more drains a burst
    /// of new connections sooner, fewer keeps the open ones' round trips short meanwhile.
    #[arg(long, value_name = "N", default_value_t = ACCEPTS_PER_ROUND,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub accepts_per_round: u32,
    /// Linux: a connection whose last read brought at least this many bytes relays its
    /// next ones with splice(2), from its socket back into it without copying them into
    /// the server (plain, KiB or MiB); smaller reads go through recv and send. `off`:
    /// always recv and send. Elsewhere than Linux there is no splice, and this is ignored.
    #[arg(long, value_name = "BYTES", default_value_t = Limit(Some(SPLICE_FROM)),
          value_parser = |text: &str| parse_off_or(text, parse_size))]
    pub splice_from: Limit<usize>,
    /// Also echo UDP datagrams on this address, IPv4 or IPv6; repeat for several. Port 0
    /// picks a free port (printed as `listening on udp ADDR:PORT`).
    #[arg(long, value_name = "ADDR:PORT")]
    pub udp: Vec<SocketAddr>,
    /// UDP flood guard: datagrams a second each source (address and port) may send, in
    /// bursts of an eighth of that; more are dropped and counted. `off`: no limit (for a
    /// benchmark from one machine).
    #[arg(long, value_name = "DATAGRAMS",
          default_value_t = Limit(Some(UDP_DEFAULTS.datagrams.per_sec)),
          value_parser = |text: &str| parse_off_or(text, parse_count))]
    pub udp_rate: Limit<u32>,
    /// UDP flood guard: bytes a second each source may send (plain, KiB or MiB), in
    /// bursts of a sixteenth of that but at least 64 KiB; `off`: no limit.
    #[arg(long, value_name = "BYTES",
          default_value_t = Limit(Some(UDP_DEFAULTS.bytes.per_sec)),
          value_parser = |text: &str| parse_off_or(text, parse_byte_rate))]
    pub udp_bytes: Limit<u32>,
    /// Serve the one TCP connection on descriptors 0 and 1, as inetd (`nowait`) or
    /// systemd (`Accept=yes`) hands it over, and exit when it closes. Nothing is printed
    /// on standard output, which is the connection.
    #[arg(long, conflicts_with_all = ["listen", "udp"])]
    pub inetd: bool,
}

/// A limit, or none: `off` on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit<T>(pub Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for Limit<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(n) => n.fmt(f),
            None => f.write_str("off"),
        }
    }
}

impl ServeConfig {
    /// Every default, listening on `listen`.
    pub fn new(listen: Vec<SocketAddr>) -> Self {
        ServeConfig {
            listen,
            max_conns: DEFAULT_MAX_CONNS,
            queue_size: DEFAULT_QUEUE,
            buffers: None,
            max_conns_per_ip: None,
            idle_timeout: None,
            trace: false,
            poller: POLLER,
            batch_wait: BATCH_WAIT_MICROS,
            accepts_per_round: ACCEPTS_PER_ROUND,
            splice_from: Limit(Some(SPLICE_FROM)),
            udp: Vec::new(),
            udp_rate: Limit(Some(UDP_DEFAULTS.datagrams.per_sec)),
            udp_bytes: Limit(Some(UDP_DEFAULTS.bytes.per_sec)),
            inetd: false,
        }
    }

    /// Buffers in the pool: `--buffers`, or one per connection.
    pub fn buffers(&self) -> usize {
        self.buffers.unwrap_or(self.max_conns)
    }

    /// `--batch-wait` as a duration.
    pub fn batch_wait(&self) -> Duration {
        Duration::from_micros(self.batch_wait)
    }

    /// Refuses what the command line would, with one line naming the flag: for a caller
    /// that builds its configuration in code. The one rule no single flag's parser can
    /// hold: `--buffers` above `--max-conns` is an error, never lowered in silence.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=MAX_CONNS).contains(&self.max_conns) {
            return Err(format!(
                "--max-conns {} is out of range: 1 to {MAX_CONNS} connections",
                self.max_conns
            ));
        }
        if !(1..=MAX_QUEUE).contains(&self.queue_size) {
            return Err(format!(
                "--queue-size {} is out of range: 1 byte to {MAX_QUEUE} bytes (1 GiB)",
                self.queue_size
            ));
        }
        match self.buffers {
            Some(0) => Err("--buffers 0: the pool needs at least one buffer".into()),
            Some(n) if n > self.max_conns => Err(format!(
                "--buffers {n} is more than --max-conns {}: a connection holds one buffer \
                 at most",
                self.max_conns
            )),
            _ if self.batch_wait > MAX_BATCH_WAIT_MICROS => Err(format!(
                "--batch-wait {} is out of range: 0 to {MAX_BATCH_WAIT_MICROS} microseconds",
                self.batch_wait
            )),
            _ if self.accepts_per_round == 0 => {
                Err("--accepts-per-round 0: accept at least one connection a round".into())
            }
            _ if self.inetd && !self.udp.is_empty() => {
                Err("--inetd serves the one connection on descriptor 0: no --udp".into())
            }
            _ if !self.poller.offered() => Err(not_offered(self.poller.name())),
            _ => Ok(()),
        }
    }

    /// Lowers `--max-conns` to `to` when the open-file limit cannot hold more, and
    /// `--buffers` with it: the one clamp, logged by its caller.
    pub fn lower_max_conns(&mut self, to: usize) {
        self.max_conns = self.max_conns.min(to);
        self.buffers = self.buffers.map(|n| n.min(self.max_conns));
    }

    /// The core's configuration.
    pub fn core(&self) -> echoloop_core::Config {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        echoloop_core::Config::new().with_idle_timeout(
            self.idle_timeout
                .map(|d| echoloop_core::Duration::from_millis(millis(d))),
        )
    }

    /// The flood guard's datagram budget per source.
    pub fn udp_datagrams(&self) -> Budget {
        udp::datagram_budget(self.udp_rate.0)
    }

    /// The flood guard's byte budget per source.
    pub fn udp_byte_budget(&self) -> Budget {
        udp::byte_budget(self.udp_bytes.0)
    }
}

impl Default for ServeConfig {
    /// Every default, listening on [`DEFAULT_LISTEN`].
    fn default() -> Self {
        ServeConfig::new(
            DEFAULT_LISTEN
                .parse()
                .map(|addr| vec![addr])
                .unwrap_or_default(),
        )
    }
}

/// `off`, or what `parse` takes.
fn parse_off_or<T>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Limit<T>, String> {
    match text {
        "off" => Ok(Limit(None)),
        _ => parse(text).map(|n| Limit(Some(n))),
    }
}

/// A backend this platform offers, by name.
fn parse_poller(text: &str) -> Result<PollerKind, String> {
    PollerKind::ALL
        .into_iter()
        .find(|k| k.name() == text && k.offered())
        .ok_or_else(|| format!("this platform offers {}", PollerKind::offered_here()))
}

/// The one line for a backend this platform does not offer.
fn not_offered(name: &str) -> String {
    format!(
        "--poller {name}: this platform offers {}",
        PollerKind::offered_here()
    )
}

/// A whole number from 1 to 2^32 - 1.
fn parse_count(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "'{text}' is not a rate: a whole number from 1, or off"
        )),
    }
}

/// A size as `--queue-size` takes it, that fits in 32 bits.
fn parse_byte_rate(text: &str) -> Result<u32, String> {
    u32::try_from(parse_size(text)?).map_err(|e| e.to_string())
}

/// A size in bytes: plain, or with a `KiB` or `MiB` suffix; 1 byte to 1 GiB.
pub fn parse_size(text: &str) -> Result<usize, String> {
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
        .filter(|n| (1..=MAX_QUEUE).contains(n))
        .ok_or_else(bad)
}

/// A positive number of seconds, fractions allowed.
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("'{text}' is not a positive number of seconds"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        config: ServeConfig,
    }

    fn parse(args: &[&str]) -> Result<ServeConfig, clap::Error> {
        let argv = std::iter::once("serve").chain(args.iter().copied());
        Serve::try_parse_from(argv).map(|s| s.config)
    }

    #[test]
    fn the_command_line_defaults_are_the_types_defaults() {
        let parsed = parse(&[]).unwrap();
        let built = ServeConfig::default();
        assert_eq!(format!("{parsed:?}"), format!("{built:?}"));
        assert_eq!(built.buffers(), DEFAULT_MAX_CONNS);
        assert_eq!(built.udp_datagrams(), UDP_DEFAULTS.datagrams);
        assert_eq!(built.udp_byte_budget(), UDP_DEFAULTS.bytes);
        assert!(built.check().is_ok());
    }

    #[test]
    fn off_and_sizes_parse_as_the_help_says() {
        let c = parse(&[
            "--splice-from",
            "off",
            "--udp-rate",
            "off",
            "--queue-size",
            "1MiB",
        ])
        .unwrap();
        assert_eq!((c.splice_from, c.udp_rate), (Limit(None), Limit(None)));
        assert_eq!(c.queue_size, 1 << 20);
        assert_eq!(c.udp_datagrams(), Budget::UNLIMITED);
        let c = parse(&["--udp-bytes", "64KiB", "--splice-from", "4KiB"]).unwrap();
        assert_eq!(
            (c.udp_bytes, c.splice_from),
            (Limit(Some(65_536)), Limit(Some(4096)))
        );
    }

    #[test]
    fn bad_capacities_are_refused_with_the_flag_named() {
        type Spoil = fn(&mut ServeConfig);
        let cases: [(&str, Spoil); 9] = [
            ("--max-conns 0", |c| c.max_conns = 0),
            ("--max-conns 65535", |c| c.max_conns = MAX_CONNS + 1),
            ("--queue-size 0", |c| c.queue_size = 0),
            ("--queue-size 1073741825", |c| c.queue_size = MAX_QUEUE + 1),
            ("--buffers 0", |c| c.buffers = Some(0)),
            ("--buffers 10001", |c| c.buffers = Some(10_001)),
            ("--batch-wait 10001", |c| c.batch_wait = 10_001),
            ("--accepts-per-round 0", |c| c.accepts_per_round = 0),
            ("--inetd", |c| {
                c.inetd = true;
                c.udp = vec!["127.0.0.1:0".parse().unwrap()];
            }),
        ];
        for (flag, spoil) in cases {
            let mut c = ServeConfig::default();
            spoil(&mut c);
            let err = c.check().unwrap_err();
            assert!(err.starts_with(flag), "{err}");
        }
        let most = ServeConfig {
            max_conns: MAX_CONNS,
            ..ServeConfig::default()
        };
        assert!(most.check().is_ok(), "65,534 is what the core can index");
    }

    #[test]
    fn only_the_pollers_this_platform_offers_are_taken() {
        assert_eq!(parse(&[]).unwrap().poller, PollerKind::Select);
        let here = PollerKind::offered_here();
        for name in ["x", "kqueue", "", "Select"] {
            let err = parse(&["--poller", name]).unwrap_err().to_string();
            assert!(
                err.contains(&format!("this platform offers {here}")),
                "{err}"
            );
        }
        let epoll = parse(&["--poller", "epoll"]);
        #[cfg(target_os = "linux")]
        assert_eq!(epoll.unwrap().poller, PollerKind::Epoll);
        #[cfg(not(target_os = "linux"))]
        assert!(epoll.is_err());
        for kind in PollerKind::ALL {
            let c = ServeConfig {
                poller: kind,
                ..ServeConfig::default()
            };
            assert_eq!(c.check().is_ok(), kind.offered(), "{kind}");
        }
    }

    #[test]
    fn buffers_above_max_conns_is_an_error_on_the_command_line_too() {
        let c = parse(&["--max-conns", "10", "--buffers", "11"]).unwrap();
        assert!(c.check().unwrap_err().starts_with("--buffers 11"));
        let c = parse(&["--max-conns", "10", "--buffers", "10"]).unwrap();
        assert!(c.check().is_ok());
    }

    #[test]
    fn lowering_max_conns_lowers_the_buffers_with_it() {
        let mut c = parse(&["--max-conns", "100", "--buffers", "80"]).unwrap();
        c.lower_max_conns(50);
        assert_eq!((c.max_conns, c.buffers()), (50, 50));
        assert!(c.check().is_ok());
        let mut c = parse(&["--max-conns", "100", "--buffers", "20"]).unwrap();
        c.lower_max_conns(50);
        assert_eq!((c.max_conns, c.buffers()), (50, 20));
        let mut c = parse(&["--max-conns", "100"]).unwrap();
        c.lower_max_conns(50);
        assert_eq!(
            c.buffers(),
            50,
            "one buffer per connection follows --max-conns"
        );
    }
}
