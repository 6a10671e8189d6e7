//! Drives a server with random event sequences against the reference model in
//! `support/model.rs`: 2,000 sequences of up to 300 events, checked after every step.

mod support;

use echoloop_core::{Config, Duration, ErrorKind};
use proptest::prelude::*;
use support::model::{Model, Op, C};

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        Just(ErrorKind::Reset),
        Just(ErrorKind::HangUp),
        Just(ErrorKind::TimedOut),
        Just(ErrorKind::Other)
    ];
    prop_oneof![
        4 => Just(Op::Accept),
        10 => (any::<usize>(), 1..40usize).prop_map(|(pick, len)| Op::Read { pick, len }),
        1 => (any::<usize>(), 1..5usize).prop_map(|(pick, extra)| Op::ReadTooLong { pick, extra }),
        10 => (any::<usize>(), 0..40usize).prop_map(|(pick, len)| Op::Write { pick, len }),
        1 => (any::<usize>(), 1..5usize).prop_map(|(pick, extra)| Op::WriteTooLong { pick, extra }),
        2 => any::<usize>().prop_map(|pick| Op::Eof { pick }),
        1 => (any::<usize>(), kind).prop_map(|(pick, kind)| Op::Fail { pick, kind }),
        3 => (0..80u64).prop_map(|ms| Op::Advance { ms }),
        1 => (0..200u64).prop_map(|grace| Op::Shutdown { grace }),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (prop::option::of(1..200u64), 1..=C + 1).prop_map(|(idle, max)| Config {
        idle_timeout: idle.map(Duration::from_millis),
        max_conns: max,
    })
}

/// Events per sequence, at most.
const MAX_OPS: usize = if cfg!(miri) { 80 } else { 300 };

proptest! {
    // Miri runs the same test with fewer and shorter cases: it is thousands of times slower.
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 2000 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn server_agrees_with_the_model(cfg in config(), ops in prop::collection::vec(op(), 0..MAX_OPS)) {
        let mut model = Model::new(cfg);
        for op in ops {
            model.apply(op);
        }
        model.finish();
    }
}
