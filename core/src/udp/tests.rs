use super::*;

type Small = UdpEcho<UdpStaticStorage<4, 16, 8>>;

const A: Endpoint = Endpoint::v4([192, 0, 2, 1], 40000);
const B: Endpoint = Endpoint::v6(
    [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
    40001,
);

fn recv(echo: &mut Small, ms: u64, from: Endpoint, data: &[u8]) -> Verdict {
    echo.recv_with(Instant::from_millis(ms), |buf| {
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        RecvResult::Datagram {
            from,
            len: data.len(),
        }
    })
}

fn send(echo: &mut Small) -> Option<(Vec<u8>, Endpoint)> {
    let mut out = None;
    echo.send_with(|bytes, to| {
        out = Some((bytes.to_vec(), to));
        SendResult::Sent
    })?;
    out
}

#[test]
fn echoes_in_order_to_each_sender() {
    let mut echo = Small::new_static(UdpConfig::new());
    assert_eq!(recv(&mut echo, 0, A, b"one"), Verdict::Queued);
    assert_eq!(recv(&mut echo, 0, B, b""), Verdict::Queued);
    assert_eq!(recv(&mut echo, 0, A, &[7; 16]), Verdict::Queued);
    assert!(echo.write_interest());
    assert_eq!(send(&mut echo), Some((b"one".to_vec(), A)));
    assert_eq!(send(&mut echo), Some((Vec::new(), B)));
    assert_eq!(send(&mut echo), Some((vec![7; 16], A)));
    assert_eq!(send(&mut echo), None);
    assert!(!echo.write_interest());
    let s = echo.stats();
    assert_eq!(
        (s.received, s.echoed, s.bytes_in, s.bytes_out),
        (3, 3, 19, 19)
    );
}

#[test]
fn a_full_queue_drops_and_counts_but_still_reads() {
    let mut echo = Small::new_static(UdpConfig::new());
    assert_eq!(echo.capacity(), 3);
    for i in 0..3u8 {
        assert_eq!(recv(&mut echo, 0, A, &[i]), Verdict::Queued);
    }
    // The landing slot takes the fourth, which is then dropped.
    assert_eq!(
        recv(&mut echo, 0, A, b"x"),
        Verdict::Dropped(DropReason::QueueFull)
    );
    assert_eq!(echo.stats().dropped.queue_full, 1);
    // The dropped datagram did not overwrite a waiting one.
    for i in 0..3u8 {
        assert_eq!(send(&mut echo), Some((vec![i], A)));
    }
}

#[test]
fn would_block_keeps_the_echo_and_failed_drops_it() {
    let mut echo = Small::new_static(UdpConfig::new());
    recv(&mut echo, 0, A, b"a");
    recv(&mut echo, 0, A, b"b");
    assert_eq!(
        echo.send_with(|_, _| SendResult::WouldBlock),
        Some(SendResult::WouldBlock)
    );
    assert_eq!(echo.queued(), 2);
    assert_eq!(
        echo.send_with(|_, _| SendResult::Failed),
        Some(SendResult::Failed)
    );
    assert_eq!(send(&mut echo), Some((b"b".to_vec(), A)));
    let s = echo.stats();
    assert_eq!((s.echoed, s.dropped.send_failed), (1, 1));
    assert_eq!(s.received, s.echoed + s.dropped.total());
}

#[test]
fn truncated_datagrams_are_dropped() {
    let mut echo = Small::new_static(UdpConfig::new());
    assert_eq!(
        recv(&mut echo, 0, A, &[1; 17]),
        Verdict::Dropped(DropReason::Truncated)
    );
    let v = echo.recv_with(Instant::ZERO, |_| RecvResult::Truncated { from: A });
    assert_eq!(v, Verdict::Dropped(DropReason::Truncated));
    assert_eq!(echo.stats().dropped.truncated, 2);
    assert_eq!(echo.queued(), 0);
}

#[test]
fn nothing_received_changes_nothing() {
    let mut echo = Small::new_static(UdpConfig::new());
    assert_eq!(
        echo.recv_with(Instant::ZERO, |_| RecvResult::Nothing),
        Verdict::Nothing
    );
    assert_eq!(*echo.stats(), UdpStats::default());
}

#[test]
fn loop_guard_refuses_service_ports() {
    let mut echo = Small::new_static(UdpConfig::new());
    for port in [0, 7, 19, 53] {
        let from = Endpoint::v4([192, 0, 2, 1], port);
        assert_eq!(
            recv(&mut echo, 0, from, b"x"),
            Verdict::Dropped(DropReason::LoopGuard)
        );
    }
    assert_eq!(echo.stats().dropped.loop_guard, 4);
    assert_eq!(echo.queued(), 0);
}

#[test]
fn flood_guard_limits_one_source_not_another() {
    let config = UdpConfig {
        datagrams: Budget {
            per_sec: 1,
            burst: 2,
        },
        ..UdpConfig::new()
    };
    let mut echo = Small::new_static(config);
    assert_eq!(recv(&mut echo, 0, A, b"1"), Verdict::Queued);
    assert_eq!(recv(&mut echo, 0, A, b"2"), Verdict::Queued);
    assert_eq!(
        recv(&mut echo, 0, A, b"3"),
        Verdict::Dropped(DropReason::FloodGuard)
    );
    assert_eq!(recv(&mut echo, 0, B, b"4"), Verdict::Queued);
    send(&mut echo);
    assert_eq!(
        recv(&mut echo, 1000, A, b"5"),
        Verdict::Queued,
        "one more a second"
    );
    assert_eq!(echo.stats().dropped.flood_guard, 1);
}

#[test]
fn address_key_shares_one_budget_across_ports() {
    let config = UdpConfig {
        datagrams: Budget {
            per_sec: 1,
            burst: 1,
        },
        source_key: SourceKey::Address,
        ..UdpConfig::new()
    };
    let mut echo = Small::new_static(config);
    let other_port = Endpoint { port: 50000, ..A };
    assert_eq!(recv(&mut echo, 0, A, b"1"), Verdict::Queued);
    assert_eq!(
        recv(&mut echo, 0, other_port, b"2"),
        Verdict::Dropped(DropReason::FloodGuard)
    );
    // The echo still goes to the port it came from.
    assert_eq!(send(&mut echo), Some((b"1".to_vec(), A)));
}

#[test]
fn slice_storage_is_checked() {
    let mut slots = [DatagramSlot::EMPTY; 3];
    let mut bytes = [0u8; 30];
    let mut sources = [SourceSlot::EMPTY; 4];
    assert_eq!(
        UdpSliceStorage::new(&mut slots, &mut bytes, 11, &mut sources).err(),
        Some(UdpStorageError::TooFewBytes)
    );
    assert_eq!(
        UdpSliceStorage::new(&mut slots[..1], &mut bytes, 10, &mut sources).err(),
        Some(UdpStorageError::TooFewSlots)
    );
    assert_eq!(
        UdpSliceStorage::new(&mut slots, &mut bytes, 0, &mut sources).err(),
        Some(UdpStorageError::SlotSize)
    );
    assert_eq!(
        UdpSliceStorage::new(&mut slots, &mut bytes, 10, &mut []).err(),
        Some(UdpStorageError::NoSources)
    );
    let storage = UdpSliceStorage::new(&mut slots, &mut bytes, 10, &mut sources).unwrap();
    let mut echo = UdpEcho::new(UdpConfig::new(), storage).unwrap();
    assert_eq!((echo.capacity(), echo.slot_size()), (2, 10));
}

#[test]
fn a_ring_wraps_many_times() {
    let mut echo = Small::new_static(UdpConfig {
        datagrams: Budget::UNLIMITED,
        ..UdpConfig::new()
    });
    for i in 0..100u8 {
        assert_eq!(recv(&mut echo, 0, A, &[i, i]), Verdict::Queued);
        if i % 2 == 1 {
            assert_eq!(send(&mut echo), Some((vec![i - 1, i - 1], A)));
            assert_eq!(send(&mut echo), Some((vec![i, i], A)));
        }
    }
    assert_eq!(echo.stats().echoed, 100);
}
