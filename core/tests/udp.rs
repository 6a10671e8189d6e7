//! Drives a UDP echo with random sequences of datagrams, sends and clock steps against the
//! reference model in `support/udp_model.rs`, on random slot counts and sizes, budgets and
//! source counts (exact flood-guard checks with one table set, evictions beyond it).

#[path = "support/udp_model.rs"]
mod udp_model;

use echoloop_core::udp::{Budget, SendResult};
use proptest::prelude::*;
use udp_model::{Model, Op, Sizes};

fn op() -> impl Strategy<Value = Op> {
    let send = prop_oneof![
        6 => Just(SendResult::Sent),
        2 => Just(SendResult::WouldBlock),
        1 => Just(SendResult::Failed),
    ];
    prop_oneof![
        100 => (any::<usize>(), 0..40usize, any::<u8>())
            .prop_map(|(pick, len, fill)| Op::Recv { pick, len, fill }),
        5 => (0..40usize).prop_map(|len| Op::RecvGuarded { len }),
        5 => any::<usize>().prop_map(|pick| Op::RecvTruncated { pick }),
        5 => Just(Op::RecvNothing),
        80 => send.prop_map(Op::Send),
        30 => (0..400u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn budget(max_rate: u32, max_burst: u32) -> impl Strategy<Value = Budget> {
    prop_oneof![
        1 => Just(Budget::UNLIMITED),
        3 => (0..=max_rate, 0..=max_burst).prop_map(|(per_sec, burst)| Budget { per_sec, burst }),
    ]
}

fn sizes() -> impl Strategy<Value = Sizes> {
    (2..=8usize, 1..=32usize, 1..=12usize).prop_map(|(slots, slot_size, sources)| Sizes {
        slots,
        slot_size,
        sources,
    })
}

/// Miri runs a few short sequences: it checks for undefined behaviour, not coverage.
const MAX_OPS: usize = if cfg!(miri) { 80 } else { 300 };

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 2000 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn udp_echo_matches_the_model(
        sizes in sizes(),
        datagrams in budget(50, 10),
        bytes in budget(2000, 200),
        key in any::<u64>(),
        ops in prop::collection::vec(op(), 0..MAX_OPS),
    ) {
        let mut model = Model::new(sizes, datagrams, bytes, key);
        for op in ops {
            model.apply(op);
        }
        model.finish();
    }
}
