//! Fuzzes the UDP echo with datagram, send and clock sequences decoded from the fuzzer's
//! bytes, on slot counts, slot sizes, budgets and source counts decoded from them too,
//! checking after every step the property test's reference model
//! (`core/tests/support/udp_model.rs`): every echo byte for byte to its sender and in
//! order, the guards' verdicts, every drop counted, and no panic.
#![no_main]

use echoloop_core::udp::{Budget, SendResult};
use libfuzzer_sys::fuzz_target;

#[path = "../../core/tests/support/udp_model.rs"]
mod udp_model;

use udp_model::{Model, Op, Sizes};

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.iter().copied();
    let sizes = Sizes {
        slots: 2 + next(&mut bytes) % 8,
        slot_size: 1 + next(&mut bytes) % 64,
        sources: 1 + next(&mut bytes) % 16,
    };
    let datagrams = budget(&mut bytes);
    let budget_bytes = budget(&mut bytes);
    let key = next(&mut bytes) as u64;
    let mut model = Model::new(sizes, datagrams, budget_bytes, key);
    while let Some(op) = decode(&mut bytes) {
        model.apply(op);
    }
    model.finish();
});

fn next(bytes: &mut impl Iterator<Item = u8>) -> usize {
    usize::from(bytes.next().unwrap_or(0))
}

/// Two bytes: a rate and a burst; 255 for either is unlimited.
fn budget(bytes: &mut impl Iterator<Item = u8>) -> Budget {
    let (rate, burst) = (next(bytes), next(bytes));
    if rate == 255 || burst == 255 {
        return Budget::UNLIMITED;
    }
    Budget {
        per_sec: (rate * 8) as u32,
        burst: burst as u32,
    }
}

/// One byte picks the operation, the next ones its arguments; `None` at the end.
fn decode(bytes: &mut impl Iterator<Item = u8>) -> Option<Op> {
    let tag = bytes.next()?;
    Some(match tag % 8 {
        0..=2 => Op::Recv {
            pick: next(bytes),
            len: next(bytes) % 80,
            fill: tag,
        },
        3 => Op::Send(SendResult::Sent),
        4 => Op::Send(if tag & 0x80 == 0 {
            SendResult::WouldBlock
        } else {
            SendResult::Failed
        }),
        5 => Op::Advance {
            ms: next(bytes) as u64 * 4,
        },
        6 => Op::RecvTruncated { pick: next(bytes) },
        _ => match tag >> 6 {
            0 => Op::RecvNothing,
            _ => Op::RecvGuarded {
                len: next(bytes) % 80,
            },
        },
    })
}
