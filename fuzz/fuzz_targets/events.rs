//! Fuzzes the core with event sequences decoded from the fuzzer's bytes, checking after
//! every step the same invariants as the property test (it runs the same reference model):
//! bytes echoed exactly once and in order, capacity respected, interest consistent with
//! state, the expected actions, stats in agreement, and no panic.
#![no_main]

use echoloop_core::{Config, Duration, ErrorKind};
use libfuzzer_sys::fuzz_target;

#[path = "../../core/tests/support/model.rs"]
mod model;

use model::{Model, Op};

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.iter().copied();
    let mut model = Model::new(config(&mut bytes));
    while let Some(op) = decode(&mut bytes) {
        model.apply(op);
    }
    model.finish();
});

fn next(bytes: &mut impl Iterator<Item = u8>) -> usize {
    usize::from(bytes.next().unwrap_or(0))
}

/// The first two bytes: an idle timeout (0 = none) and a `max_conns` (which may exceed the
/// capacity, to check the clamp).
fn config(bytes: &mut impl Iterator<Item = u8>) -> Config {
    let idle = next(bytes) as u64;
    Config {
        idle_timeout: (idle > 0).then(|| Duration::from_millis(idle)),
        max_conns: next(bytes) % (model::C + 2),
    }
}

/// One op per tag byte, its arguments from the bytes after it (zero when they run out).
fn decode(bytes: &mut impl Iterator<Item = u8>) -> Option<Op> {
    let tag = bytes.next()?;
    let pick = next(bytes);
    Some(match tag % 10 {
        0 | 1 => Op::Accept,
        2 => Op::Read {
            pick,
            len: next(bytes) % 48 + 1,
        },
        3 => Op::ReadTooLong {
            pick,
            extra: next(bytes) % 8 + 1,
        },
        4 => Op::Write {
            pick,
            len: next(bytes) % 48,
        },
        5 => Op::WriteTooLong {
            pick,
            extra: next(bytes) % 8 + 1,
        },
        6 => Op::Eof { pick },
        7 => Op::Fail {
            pick,
            kind: [
                ErrorKind::Reset,
                ErrorKind::HangUp,
                ErrorKind::TimedOut,
                ErrorKind::Other,
            ][pick % 4],
        },
        8 => Op::Advance {
            ms: (pick as u64) % 120,
        },
        _ => Op::Shutdown { grace: pick as u64 },
    })
}
