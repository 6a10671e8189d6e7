//! Fuzzes the core with event sequences decoded from the fuzzer's bytes, on table, pool and
//! queue sizes decoded from them too, checking after every step the same invariants as the
//! property test (it runs the same reference model): bytes echoed exactly once and in
//! order, capacity respected, a buffer held exactly while bytes wait, interest consistent
//! with state, the expected actions, stats in agreement, and no panic.
#![no_main]

use echoloop_core::{Config, Duration, ErrorKind};
use libfuzzer_sys::fuzz_target;

#[path = "../../core/tests/support/model.rs"]
mod model;

use model::{Model, Op, Sizes};

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.iter().copied();
    let cfg = config(&mut bytes);
    let sizes = sizes(&mut bytes);
    let mut model = Model::new(cfg, sizes);
    while let Some(op) = decode(&mut bytes) {
        model.apply(op);
    }
    model.finish();
});

fn next(bytes: &mut impl Iterator<Item = u8>) -> usize {
    usize::from(bytes.next().unwrap_or(0))
}

/// The first byte: an idle timeout (0 = none).
fn config(bytes: &mut impl Iterator<Item = u8>) -> Config {
    let idle = next(bytes) as u64;
    Config::new().with_idle_timeout((idle > 0).then(|| Duration::from_millis(idle)))
}

/// The next three: 1 to 8 connections, 1 buffer to one each, queues of 1 to 32 bytes.
fn sizes(bytes: &mut impl Iterator<Item = u8>) -> Sizes {
    let conns = next(bytes) % 8 + 1;
    Sizes {
        conns,
        buffers: next(bytes) % conns + 1,
        queue: next(bytes) % 32 + 1,
    }
}

/// One op per tag byte, its arguments from the bytes after it (zero when they run out).
fn decode(bytes: &mut impl Iterator<Item = u8>) -> Option<Op> {
    let tag = bytes.next()?;
    let pick = next(bytes);
    Some(match tag % 10 {
        0 | 1 => Op::Accept,
        2 | 3 => Op::Read {
            pick,
            len: next(bytes) % 48,
        },
        4 => Op::Write {
            pick,
            len: next(bytes) % 48,
        },
        5 => Op::Eof { pick },
        6 => Op::Fail {
            pick,
            kind: [
                ErrorKind::Reset,
                ErrorKind::HangUp,
                ErrorKind::TimedOut,
                ErrorKind::Other,
            ][pick % 4],
        },
        7 => Op::Advance {
            ms: (pick as u64) % 120,
        },
        8 => Op::Shutdown { grace: pick as u64 },
        // An abort ends a sequence's interest: only one tag value in 2,560.
        _ if pick == 255 => Op::Abort,
        _ if pick % 2 == 1 => Op::Relay {
            pick,
            through: next(bytes) % 48,
            kept: next(bytes) % 48,
        },
        _ => Op::Write { pick, len: 48 },
    })
}
