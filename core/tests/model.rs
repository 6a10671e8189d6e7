//! Drives a server with random event sequences against the reference model in
//! `support/model.rs`: 2,000 sequences of up to 300 events on random table, pool and queue
//! sizes (often fewer buffers than connections), checked after every step.

mod support;

use echoloop_core::{Config, Duration, ErrorKind};
use proptest::prelude::*;
use support::model::{Model, Op, Sizes};

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        Just(ErrorKind::Reset),
        Just(ErrorKind::HangUp),
        Just(ErrorKind::TimedOut),
        Just(ErrorKind::Other)
    ];
    prop_oneof![
        40 => Just(Op::Accept),
        100 => (any::<usize>(), 0..40usize).prop_map(|(pick, len)| Op::Read { pick, len }),
        100 => (any::<usize>(), 0..40usize).prop_map(|(pick, len)| Op::Write { pick, len }),
        40 => (any::<usize>(), 0..40usize, 0..40usize)
            .prop_map(|(pick, through, kept)| Op::Relay { pick, through, kept }),
        20 => any::<usize>().prop_map(|pick| Op::Eof { pick }),
        10 => (any::<usize>(), kind).prop_map(|(pick, kind)| Op::Fail { pick, kind }),
        30 => (0..80u64).prop_map(|ms| Op::Advance { ms }),
        10 => (0..200u64).prop_map(|grace| Op::Shutdown { grace }),
        // Rare, so that most sequences run long before it ends them.
        1 => Just(Op::Abort),
    ]
}

fn sizes() -> impl Strategy<Value = Sizes> {
    (1..=6usize)
        .prop_flat_map(|conns| (Just(conns), 1..=conns, 1..=20usize))
        .prop_map(|(conns, buffers, queue)| Sizes {
            conns,
            buffers,
            queue,
        })
}

fn config() -> impl Strategy<Value = Config> {
    prop::option::of(1..200u64)
        .prop_map(|idle| Config::new().with_idle_timeout(idle.map(Duration::from_millis)))
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
    fn server_agrees_with_the_model(
        cfg in config(),
        sizes in sizes(),
        ops in prop::collection::vec(op(), 0..MAX_OPS),
    ) {
        let mut model = Model::new(cfg, sizes);
        for op in ops {
            model.apply(op);
        }
        model.finish();
    }
}
