//! Each lifecycle transition and each error path of the server, one at a time.

use super::*;
use crate::{footprint, SliceStorage};

type S = Server<StaticStorage<4, 4, 8>>;
/// Four connections sharing two buffers.
type Pooled = Server<StaticStorage<4, 2, 8>>;

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn new(config: Config) -> S {
    S::new_static(config)
}

/// Receives `data` into `id` the way a driver does: inside `recv_with`, in as many slices
/// as it takes.
fn recv<T: Storage>(s: &mut Server<T>, now: Instant, id: ConnId, data: &[u8]) {
    let mut rest = data;
    while !rest.is_empty() {
        let n = s
            .recv_with(now, id, |buf| {
                let n = buf.len().min(rest.len());
                buf[..n].copy_from_slice(&rest[..n]);
                (n, n)
            })
            .unwrap();
        rest = &rest[n..];
        s.check_invariants().unwrap();
    }
}

/// Sends everything queued on `id`, at most `chunk` bytes per call, and returns it.
fn send<T: Storage>(s: &mut Server<T>, now: Instant, id: ConnId, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while s.interest(id).unwrap().write {
        s.send_with(now, id, |buf| {
            let n = buf.len().min(chunk);
            out.extend_from_slice(&buf[..n]);
            (n, ())
        })
        .unwrap();
        s.check_invariants().unwrap();
    }
    out
}

/// Drains the actions, checking the invariants before and after.
fn actions<T: Storage>(s: &mut Server<T>) -> Vec<Action> {
    s.check_invariants().unwrap();
    let polled = core::iter::from_fn(|| s.poll_action()).collect();
    s.check_invariants().unwrap();
    polled
}

const READ: Interest = Interest {
    read: true,
    write: false,
};
const BOTH: Interest = Interest {
    read: true,
    write: true,
};
const WRITE: Interest = Interest {
    read: false,
    write: true,
};

#[test]
fn accept_echo_and_half_close_in_one_close() {
    let mut s = new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    assert_eq!(s.interest(id), Ok(READ));
    recv(&mut s, at(1), id, b"hello!");
    assert_eq!(s.interest(id), Ok(BOTH));
    // EOF arrives before the echo left: the echo is still delivered, then the close.
    s.on_eof(at(2), id).unwrap();
    assert_eq!(s.interest(id), Ok(WRITE));
    assert_eq!(
        s.poll_action(),
        None,
        "nothing to do while bytes are queued"
    );
    assert_eq!(send(&mut s, at(3), id, 4), b"hello!");
    assert_eq!(
        actions(&mut s),
        [Action::Close(id, CloseReason::PeerClosed)],
        "one action: a close after EOF sends the FIN"
    );
    assert_eq!(s.interest(id), Err(UnknownConn));
    let st = s.stats();
    assert_eq!((st.accepted, st.bytes_in, st.bytes_out), (1, 6, 6));
    assert_eq!(st.closed.peer_closed, 1);
}

#[test]
fn full_queue_stops_reading_until_written() {
    let mut s = new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    recv(&mut s, at(0), id, b"12345678");
    assert_eq!(s.interest(id), Ok(WRITE));
    let refused = s.recv_with(at(0), id, |_| -> (usize, ()) { unreachable!() });
    assert_eq!(refused, Err(RecvError::QueueFull));
    assert_eq!(s.stats().peak_queue, 8);
    s.send_with(at(0), id, |b| (b.len().min(3), ())).unwrap();
    let lent = s.recv_with(at(0), id, |b| (0, b.len())).unwrap();
    assert_eq!(lent, 3, "the freed bytes wrap to the front");
    recv(&mut s, at(0), id, b"abc");
    assert_eq!(send(&mut s, at(0), id, 8), b"45678abc");
}

#[test]
fn a_buffer_is_held_only_while_bytes_wait() {
    let mut s = new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    assert_eq!(s.free_buffers(), 4);
    s.recv_with(at(0), id, |b| {
        assert_eq!(b.len(), 8);
        (0, ())
    })
    .unwrap();
    assert_eq!(
        s.free_buffers(),
        4,
        "a receive of nothing gives it straight back"
    );
    recv(&mut s, at(0), id, b"abc");
    assert_eq!(s.free_buffers(), 3);
    send(&mut s, at(0), id, 2);
    assert_eq!(s.free_buffers(), 4, "a drained queue gives it back");
    // The next receive starts at the front of a buffer again.
    let lent = s.recv_with(at(0), id, |b| (0, b.len())).unwrap();
    assert_eq!(lent, 8);
}

#[test]
fn a_relay_counts_what_went_through_and_queues_what_stayed() {
    let cfg = Config {
        idle_timeout: Some(Duration::from_millis(100)),
    };
    let mut s = new(cfg);
    let id = s.on_accepted(at(0)).unwrap();
    let lent = s
        .relay_with(at(50), id, |b| {
            b[..3].copy_from_slice(b"xyz");
            (
                Relayed {
                    through: 20,
                    kept: 3,
                },
                b.len(),
            )
        })
        .unwrap();
    assert_eq!(lent, 8, "a relay is lent a whole buffer");
    assert_eq!(s.interest(id), Ok(BOTH), "the kept bytes wait to be sent");
    assert_eq!(s.free_buffers(), 3);
    let st = s.stats();
    assert_eq!((st.bytes_in, st.bytes_out, st.peak_queue), (23, 20, 3));
    let refused = s.relay_with(at(50), id, |_| -> (Relayed, ()) { unreachable!() });
    assert_eq!(
        refused,
        Err(RelayError::Queued),
        "new bytes may not overtake kept ones"
    );
    recv(&mut s, at(50), id, b"12");
    assert_eq!(send(&mut s, at(50), id, 8), b"xyz12", "kept bytes go first");
    assert_eq!(s.free_buffers(), 4);
    // What went straight through counts as activity: the idle timeout starts from it.
    s.relay_with(at(120), id, |_| {
        (
            Relayed {
                through: 5,
                kept: 0,
            },
            (),
        )
    })
    .unwrap();
    assert_eq!(s.free_buffers(), 4, "nothing kept: the buffer goes back");
    s.on_timeout(at(200));
    assert_eq!(actions(&mut s), [], "active at 120 ms, not idle at 200");
    assert_eq!(s.stats().bytes_out, 30);
}

#[test]
fn a_relay_is_refused_after_eof_and_while_draining() {
    let mut s = new(Config::new());
    let (a, b) = (s.on_accepted(at(0)).unwrap(), s.on_accepted(at(0)).unwrap());
    recv(&mut s, at(1), a, b"left");
    s.on_eof(at(1), a).unwrap();
    s.shutdown(at(1), Duration::from_millis(1000));
    assert_eq!(actions(&mut s), [Action::ShutdownWrite(b)], "b drains");
    for id in [a, b] {
        let refused = s.relay_with(at(2), id, |_| -> (Relayed, ()) { unreachable!() });
        assert_eq!(refused, Err(RelayError::ReadClosed));
    }
}

#[test]
fn without_a_free_buffer_a_connection_has_no_read_interest() {
    let mut s = Pooled::new_static(Config::new());
    let ids: Vec<ConnId> = (0..3).map(|_| s.on_accepted(at(0)).unwrap()).collect();
    recv(&mut s, at(0), ids[0], b"a");
    recv(&mut s, at(0), ids[1], b"b");
    assert_eq!(s.free_buffers(), 0);
    assert_eq!(
        s.interest(ids[0]),
        Ok(BOTH),
        "a held buffer with room reads"
    );
    assert_eq!(s.interest(ids[2]), Ok(Interest::NONE));
    let refused = s.recv_with(at(0), ids[2], |_| -> (usize, ()) { unreachable!() });
    assert_eq!(refused, Err(RecvError::NoBuffer));
    assert!(s.listener_interest(), "slots are not buffers");
    send(&mut s, at(1), ids[1], 8);
    assert_eq!(s.interest(ids[1]), Ok(READ));
    assert_eq!(s.interest(ids[2]), Ok(READ));
    recv(&mut s, at(1), ids[2], b"c");
    assert_eq!(s.interest(ids[1]), Ok(Interest::NONE));
}

#[test]
fn a_peer_that_never_reads_holds_its_buffer_only_until_the_idle_timeout() {
    // Fairness: two buffers, one held by a peer that never reads; the others take turns
    // with the second buffer, and the stuck one gives its buffer up at the idle timeout.
    let cfg = Config {
        idle_timeout: Some(Duration::from_millis(100)),
    };
    let mut s = Pooled::new_static(cfg);
    let stuck = s.on_accepted(at(0)).unwrap();
    let others: Vec<ConnId> = (0..3).map(|_| s.on_accepted(at(0)).unwrap()).collect();
    recv(&mut s, at(0), stuck, b"12345678");
    for t in 1..=99 {
        let id = others[t as usize % 3];
        let msg = [t as u8; 5];
        recv(&mut s, at(t), id, &msg);
        assert_eq!(send(&mut s, at(t), id, 3), msg, "served meanwhile");
    }
    assert_eq!(s.free_buffers(), 1);
    s.on_timeout(at(100));
    assert_eq!(
        actions(&mut s),
        [Action::Close(stuck, CloseReason::IdleTimeout)]
    );
    assert_eq!(s.free_buffers(), 2, "the stuck peer's buffer is back");
    assert_eq!(s.stats().bytes_discarded, 8);
}

#[test]
fn table_full_refuses_and_listener_loses_interest() {
    let mut s = new(Config::new());
    let ids: Vec<ConnId> = (0..4).map(|_| s.on_accepted(at(0)).unwrap()).collect();
    assert!(!s.listener_interest());
    assert_eq!(s.on_accepted(at(0)), Err(AcceptError::Full));
    assert_eq!(s.stats().refused, 1);
    s.on_error(ids[1], ErrorKind::Reset).unwrap();
    assert!(
        !s.listener_interest(),
        "the slot is held until its Close is polled"
    );
    assert_eq!(
        actions(&mut s),
        [Action::Close(ids[1], CloseReason::Error(ErrorKind::Reset))]
    );
    assert!(s.listener_interest());
    let again = s.on_accepted(at(0)).unwrap();
    assert_eq!(again.index(), ids[1].index());
    assert_ne!(again, ids[1]);
}

#[test]
fn storage_that_does_not_fit_is_refused() {
    let mut slots = [ConnSlot::EMPTY; 3];
    let mut free = [0u16; 2];
    let mut bytes = [0u8; 16];
    let ok = SliceStorage::new(&mut slots, &mut free, &mut bytes, 8).unwrap();
    let s = Server::new(Config::new(), ok).unwrap();
    assert_eq!(
        (s.capacity(), s.buffers(), s.queue_size(), s.free_buffers()),
        (3, 2, 8, 2)
    );
    let mut slots = [ConnSlot::EMPTY; 3];
    let mut free = [0u16; 2];
    let mut bytes = [0u8; 16];
    let short = SliceStorage::new(&mut slots, &mut free, &mut bytes, 9);
    assert_eq!(
        short.err(),
        Some(StorageError::BytesTooShort {
            needed: 18,
            got: 16
        })
    );
}

#[test]
fn slots_the_storage_started_with_are_never_trusted() {
    // A table reused from another server: its slots look open, yet no id reaches them
    // until the server hands them out itself.
    let mut old = S::new_static(Config::new());
    let ids: Vec<ConnId> = (0..4).map(|_| old.on_accepted(at(0)).unwrap()).collect();
    let mut slots = old.storage().parts_ref().slots.to_vec();
    let mut free = [0u16; 1];
    let mut bytes = [0u8; 8];
    let storage = SliceStorage::new(&mut slots, &mut free, &mut bytes, 8).unwrap();
    let mut s = Server::new(Config::new(), storage).unwrap();
    assert_eq!(s.interest(ids[2]), Err(UnknownConn));
    let fresh = s.on_accepted(at(0)).unwrap();
    assert_eq!(fresh.index(), 0);
    assert_eq!(s.interest(ids[1]), Err(UnknownConn));
    assert_eq!(s.conns().count(), 1);
}

/// A table that starts empty and grows one slot at a time, as the host's does.
struct Growing {
    slots: Vec<ConnSlot>,
    conns: usize,
    free: Vec<u16>,
    bytes: Vec<u8>,
    grown: usize,
}

impl Storage for Growing {
    fn parts(&mut self) -> crate::Parts<'_> {
        crate::Parts {
            slots: &mut self.slots,
            free: &mut self.free,
            bytes: &mut self.bytes,
            queue_size: 8,
        }
    }
    fn parts_ref(&self) -> crate::PartsRef<'_> {
        crate::PartsRef {
            slots: &self.slots,
            free: &self.free,
            bytes: &self.bytes,
            queue_size: 8,
        }
    }
    fn slots_capacity(&self) -> usize {
        self.conns
    }
    fn grow_slots(&mut self) -> bool {
        self.grown += 1;
        if self.slots.len() >= self.conns {
            return false;
        }
        self.slots.push(ConnSlot::EMPTY);
        true
    }
}

#[test]
fn a_growing_table_grows_only_when_every_slot_is_in_use() {
    let storage = Growing {
        slots: Vec::new(),
        conns: 3,
        free: vec![0; 2],
        bytes: vec![0; 16],
        grown: 0,
    };
    let mut s = Server::new(Config::new(), storage).unwrap();
    assert_eq!(s.capacity(), 3);
    let now = at(0);
    let a = s.on_accepted(now).unwrap();
    let b = s.on_accepted(now).unwrap();
    assert_eq!(s.storage().slots.len(), 2);
    recv(&mut s, now, a, b"hi");
    assert_eq!(send(&mut s, now, a, 8), b"hi");
    s.on_eof(now, a).unwrap();
    assert_eq!(actions(&mut s), [Action::Close(a, CloseReason::PeerClosed)]);
    // A freed slot is reused before the table grows again.
    let c = s.on_accepted(now).unwrap();
    assert_eq!(
        (c.index(), s.storage().slots.len(), s.storage().grown),
        (0, 2, 2)
    );
    let d = s.on_accepted(now).unwrap();
    assert_eq!((d.index(), s.storage().slots.len()), (2, 3));
    assert_eq!(
        s.on_accepted(now),
        Err(AcceptError::Full),
        "capacity reached"
    );
    assert_eq!(s.storage().grown, 3, "a full table is not asked to grow");
    for id in [b, c, d] {
        recv(&mut s, now, id, b"ok");
        assert_eq!(send(&mut s, now, id, 8), b"ok");
    }
}

#[test]
fn a_table_that_cannot_grow_refuses_the_connection() {
    let storage = Growing {
        slots: Vec::new(),
        conns: 2,
        free: vec![0; 1],
        bytes: vec![0; 8],
        grown: 0,
    };
    let mut s = Server::new(Config::new(), storage).unwrap();
    s.storage_mut().conns = 1; // the storage changed its mind: it grows no further
    assert!(s.on_accepted(at(0)).is_ok());
    assert_eq!(s.on_accepted(at(0)), Err(AcceptError::Full));
    assert_eq!(s.conn_count(), 1);
}

#[test]
fn stale_ids_are_rejected_everywhere() {
    let mut s = new(Config::new());
    let old = s.on_accepted(at(0)).unwrap();
    s.on_error(old, ErrorKind::HangUp).unwrap();
    actions(&mut s);
    // Fill every slot so the old one is reused.
    for _ in 0..4 {
        s.on_accepted(at(0)).unwrap();
    }
    let never = |_: &mut [u8]| -> (usize, ()) { unreachable!() };
    assert_eq!(s.interest(old), Err(UnknownConn));
    assert_eq!(s.recv_with(at(0), old, never), Err(RecvError::UnknownConn));
    assert_eq!(
        s.send_with(at(0), old, |_| -> (usize, ()) { unreachable!() }),
        Err(SendError::UnknownConn)
    );
    assert_eq!(s.on_eof(at(0), old), Err(EofError::UnknownConn));
    assert_eq!(
        s.on_error(old, ErrorKind::Reset),
        Err(ErrorReportError::UnknownConn)
    );
    assert_eq!(s.queued(old), Err(UnknownConn));
    let forged = ConnId {
        index: 200,
        generation: 0,
    };
    assert_eq!(s.interest(forged), Err(UnknownConn));
    assert_eq!(s.on_eof(at(0), forged), Err(EofError::UnknownConn));
}

#[test]
#[cfg(not(debug_assertions))]
fn lengths_longer_than_lent_are_clamped_in_release() {
    let mut s = new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    s.recv_with(at(0), id, |_| (99, ())).unwrap();
    assert_eq!(s.queued(id), Ok(8));
    s.send_with(at(0), id, |_| (99, ())).unwrap();
    assert_eq!(s.queued(id), Ok(0));
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "claimed 9 of 8 bytes lent")]
fn lengths_longer_than_lent_are_a_driver_bug_in_debug() {
    let mut s = new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    let _ = s.recv_with(at(0), id, |_| (9, ()));
}

#[test]
fn reads_after_eof_and_calls_on_closing_conns_are_errors() {
    let mut s = new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    recv(&mut s, at(0), id, b"x");
    s.on_eof(at(0), id).unwrap();
    let never = |_: &mut [u8]| -> (usize, ()) { unreachable!() };
    assert_eq!(s.recv_with(at(0), id, never), Err(RecvError::ReadClosed));
    assert_eq!(s.on_eof(at(0), id), Err(EofError::ReadClosed));
    s.on_error(id, ErrorKind::Other).unwrap();
    assert_eq!(s.interest(id), Ok(Interest::NONE));
    assert_eq!(
        s.send_with(at(0), id, |_| -> (usize, ()) { unreachable!() }),
        Err(SendError::Closing)
    );
    assert_eq!(s.on_eof(at(0), id), Err(EofError::Closing));
    assert_eq!(
        s.on_error(id, ErrorKind::Other),
        Err(ErrorReportError::Closing)
    );
    assert_eq!(
        s.conns().count(),
        0,
        "closing connections are not waited on"
    );
    assert_eq!(
        actions(&mut s),
        [Action::Close(id, CloseReason::Error(ErrorKind::Other))]
    );
    assert_eq!(s.stats().bytes_discarded, 1);
    assert_eq!(s.stats().closed.error, 1);
    assert_eq!(s.free_buffers(), 4);
}

#[test]
fn eof_on_an_empty_queue_closes_at_once() {
    let mut s = new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    s.on_eof(at(0), id).unwrap();
    assert_eq!(s.interest(id), Ok(Interest::NONE));
    assert_eq!(
        actions(&mut s),
        [Action::Close(id, CloseReason::PeerClosed)]
    );
}

#[test]
fn a_receive_of_nothing_is_not_eof() {
    let mut s = new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    s.recv_with(at(5), id, |_| (0, ())).unwrap();
    assert_eq!(s.interest(id), Ok(READ));
    assert_eq!(actions(&mut s), []);
}

#[test]
fn idle_connections_time_out_and_active_ones_do_not() {
    let cfg = Config {
        idle_timeout: Some(Duration::from_millis(100)),
    };
    let mut s = new(cfg);
    assert_eq!(s.poll_timeout(), None);
    let idle = s.on_accepted(at(0)).unwrap();
    let busy = s.on_accepted(at(10)).unwrap();
    assert_eq!(s.poll_timeout(), Some(at(100)));
    recv(&mut s, at(90), busy, b"hi");
    send(&mut s, at(95), busy, 8);
    s.on_timeout(at(99));
    assert_eq!(actions(&mut s), []);
    s.on_timeout(at(100));
    assert_eq!(
        actions(&mut s),
        [Action::Close(idle, CloseReason::IdleTimeout)]
    );
    assert_eq!(s.poll_timeout(), Some(at(195)));
    s.on_timeout(at(194));
    assert!(s.interest(busy).is_ok());
    s.on_timeout(at(500));
    assert_eq!(
        actions(&mut s),
        [Action::Close(busy, CloseReason::IdleTimeout)]
    );
    assert_eq!(s.stats().closed.idle_timeout, 2);
}

#[test]
fn a_clock_stepping_back_never_reorders_deadlines() {
    let cfg = Config {
        idle_timeout: Some(Duration::from_millis(10)),
    };
    let mut s = new(cfg);
    let a = s.on_accepted(at(100)).unwrap();
    let b = s.on_accepted(at(50)).unwrap(); // the clock went back
    assert_eq!(s.poll_timeout(), Some(at(110)));
    s.on_timeout(at(110));
    assert_eq!(
        actions(&mut s),
        [
            Action::Close(a, CloseReason::IdleTimeout),
            Action::Close(b, CloseReason::IdleTimeout)
        ]
    );
}

#[test]
fn shutdown_delivers_then_drains_until_the_peers_eof() {
    let mut s = new(Config::new());
    let empty = s.on_accepted(at(0)).unwrap();
    let busy = s.on_accepted(at(0)).unwrap();
    recv(&mut s, at(0), busy, b"queued");
    s.shutdown(at(1), Duration::from_millis(1000));
    assert!(!s.listener_interest());
    assert_eq!(s.on_accepted(at(1)), Err(AcceptError::ShuttingDown));
    assert_eq!(s.interest(busy), Ok(WRITE));
    let never = |_: &mut [u8]| -> (usize, ()) { unreachable!() };
    assert_eq!(s.recv_with(at(1), busy, never), Err(RecvError::ReadClosed));
    assert_eq!(actions(&mut s), [Action::ShutdownWrite(empty)]);
    // Draining: reads, and discards what arrives.
    assert_eq!(s.interest(empty), Ok(READ));
    recv(&mut s, at(2), empty, b"late bytes");
    assert_eq!(s.stats().bytes_drained, 10);
    assert_eq!(s.stats().bytes_in, 6);
    assert_eq!(s.queued(empty), Ok(0));
    assert_eq!(s.free_buffers(), 3, "a draining connection holds no buffer");
    s.on_eof(at(3), empty).unwrap();
    assert_eq!(
        actions(&mut s),
        [Action::Close(empty, CloseReason::Shutdown)]
    );
    assert!(!s.is_shut_down());
    assert_eq!(s.poll_timeout(), Some(at(1001)));
    assert_eq!(send(&mut s, at(4), busy, 2), b"queued");
    assert_eq!(actions(&mut s), [Action::ShutdownWrite(busy)]);
    // The peer never sends its EOF: the deadline closes it, still gracefully.
    s.on_timeout(at(1001));
    assert_eq!(
        actions(&mut s),
        [Action::Close(busy, CloseReason::Shutdown)]
    );
    assert!(s.is_shut_down());
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.stats().closed.shutdown, 2);
    assert_eq!(s.stats().refused, 1);
}

#[test]
fn a_peer_closing_during_shutdown_closes_once() {
    let mut s = new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    recv(&mut s, at(0), id, b"ab");
    s.shutdown(at(0), Duration::from_millis(50));
    s.on_eof(at(1), id).unwrap();
    send(&mut s, at(1), id, 8);
    assert_eq!(
        actions(&mut s),
        [Action::Close(id, CloseReason::PeerClosed)]
    );
}

#[test]
fn a_draining_connection_closes_on_failure_or_deadline_not_idleness() {
    let cfg = Config {
        idle_timeout: Some(Duration::from_millis(10)),
    };
    let mut s = new(cfg);
    let a = s.on_accepted(at(0)).unwrap();
    let b = s.on_accepted(at(0)).unwrap();
    s.shutdown(at(0), Duration::from_millis(1000));
    assert_eq!(
        actions(&mut s),
        [Action::ShutdownWrite(a), Action::ShutdownWrite(b)]
    );
    s.on_error(a, ErrorKind::Reset).unwrap();
    assert_eq!(
        s.poll_timeout(),
        Some(at(1000)),
        "no idle deadline while draining"
    );
    s.on_timeout(at(999));
    assert_eq!(
        actions(&mut s),
        [Action::Close(a, CloseReason::Error(ErrorKind::Reset))]
    );
    s.on_timeout(at(1000));
    assert_eq!(actions(&mut s), [Action::Close(b, CloseReason::Shutdown)]);
    assert!(s.is_shut_down());
}

#[test]
fn shutdown_grace_period_ends_in_an_abortive_close() {
    let mut s = new(Config::new());
    let stuck = s.on_accepted(at(0)).unwrap();
    recv(&mut s, at(0), stuck, b"unsent");
    s.shutdown(at(0), Duration::from_millis(20));
    s.shutdown(at(5), Duration::from_millis(9999)); // a second call changes nothing
    s.on_timeout(at(19));
    assert_eq!(actions(&mut s), []);
    s.on_timeout(at(20));
    assert_eq!(
        actions(&mut s),
        [Action::Close(stuck, CloseReason::ShutdownTimeout)]
    );
    assert!(s.is_shut_down());
}

#[test]
fn the_deadline_closes_a_connection_whose_shutdown_write_was_not_polled() {
    let mut s = new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    s.shutdown(at(0), Duration::from_millis(10));
    s.on_timeout(at(10));
    assert_eq!(actions(&mut s), [Action::Close(id, CloseReason::Shutdown)]);
    assert!(s.is_shut_down());
}

#[test]
fn abort_closes_everything_at_once() {
    let mut s = new(Config::new());
    let open = s.on_accepted(at(0)).unwrap();
    let full = s.on_accepted(at(0)).unwrap();
    let peer_done = s.on_accepted(at(0)).unwrap();
    let drain = s.on_accepted(at(0)).unwrap();
    recv(&mut s, at(0), full, b"xyz");
    s.on_eof(at(0), peer_done).unwrap();
    s.shutdown(at(0), Duration::from_secs(3));
    // `drain` and `open` owe a ShutdownWrite; `peer_done` its Close.
    assert_eq!(
        s.poll_action(),
        Some(Action::Close(peer_done, CloseReason::PeerClosed))
    );
    assert_eq!(s.poll_action(), Some(Action::ShutdownWrite(open)));
    s.abort();
    assert_eq!(s.on_accepted(at(1)), Err(AcceptError::ShuttingDown));
    assert!(!s.listener_interest());
    let mut got = actions(&mut s);
    got.sort_by_key(|a| match a {
        Action::Close(id, _) | Action::ShutdownWrite(id) => id.index(),
    });
    assert_eq!(
        got,
        [
            Action::Close(open, CloseReason::Aborted),
            Action::Close(full, CloseReason::Aborted),
            Action::Close(drain, CloseReason::Aborted),
        ]
    );
    assert!(s.is_shut_down());
    assert_eq!(s.stats().closed.aborted, 3);
    assert_eq!(s.stats().bytes_discarded, 3);
    assert_eq!(s.free_buffers(), 4);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn conns_lists_live_connections_with_their_interest() {
    let mut s = new(Config::new());
    let a = s.on_accepted(at(0)).unwrap();
    let b = s.on_accepted(at(0)).unwrap();
    recv(&mut s, at(1), a, b"x");
    let listed: Vec<_> = s.conns().collect();
    assert_eq!(
        listed,
        [(b, READ), (a, BOTH)],
        "least recently active first"
    );
    assert_eq!(s.conn_count(), 2);
    assert_eq!(s.stats().peak_conns, 2);
}

#[test]
fn recently_active_lists_the_busy_ones_newest_first_then_the_draining() {
    let mut s = new(Config::new());
    let idle = s.on_accepted(at(0)).unwrap();
    let quiet = s.on_accepted(at(0)).unwrap();
    let busy = s.on_accepted(at(0)).unwrap();
    let drain = s.on_accepted(at(0)).unwrap();
    recv(&mut s, at(900), quiet, b"q");
    send(&mut s, at(900), quiet, 8);
    recv(&mut s, at(1_500), busy, b"b");
    let within = Duration::from_millis(1_000);
    let listed: Vec<_> = s.recently_active(at(1_500), within).collect();
    assert_eq!(
        listed,
        [(busy, BOTH), (quiet, READ)],
        "active under a second ago, newest first; idle and drain since 0 ms"
    );
    let later: Vec<_> = s.recently_active(at(1_900), within).collect();
    assert_eq!(later, [(busy, BOTH)], "quiet's last byte is a second old");
    // A shutdown drains the connections with nothing queued: draining ones are always
    // listed, however long idle, after the live ones.
    s.shutdown(at(1_900), Duration::from_secs(3));
    while s.poll_action().is_some() {}
    let mut listed: Vec<_> = s
        .recently_active(at(1_900), within)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(listed.remove(0), busy, "{listed:?}");
    listed.sort_by_key(|id| id.index());
    assert_eq!(listed, [idle, quiet, drain]);
}

#[test]
fn driver_refusals_are_counted() {
    let mut s = new(Config::new());
    s.on_refused();
    assert_eq!(s.stats().refused, 1);
    assert_eq!(s.stats().accepted, 0);
}

#[test]
fn a_send_of_nothing_changes_nothing() {
    let mut s = new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    let empty = s.send_with(at(0), id, |b| (0, b.len())).unwrap();
    assert_eq!(empty, 0, "nothing queued: an empty slice");
    recv(&mut s, at(0), id, b"ab");
    s.send_with(at(0), id, |_| (0, ())).unwrap();
    assert_eq!(s.send_with(at(0), id, |b| (0, b.to_vec())).unwrap(), b"ab");
}

#[test]
fn cold_buffers_are_reported_once_as_byte_ranges() {
    let mut s = new(Config::new());
    let ids: Vec<ConnId> = (0..4).map(|_| s.on_accepted(at(0)).unwrap()).collect();
    assert_eq!(s.reclaimable(0).count(), 0, "never used: never touched");
    for (k, &id) in ids.iter().enumerate() {
        recv(&mut s, at(0), id, &[k as u8; 3]);
    }
    for &id in &ids {
        send(&mut s, at(1), id, 8); // buffers 0, 1, 2, 3 freed in that order
    }
    let cold: Vec<Range<usize>> = s.reclaimable(1).collect();
    assert_eq!(cold, [0..8, 8..16, 16..24], "all but the warmest");
    assert_eq!(s.reclaimable(1).count(), 0);
    recv(&mut s, at(2), ids[0], b"warm");
    assert_eq!(s.free_buffers(), 3);
    send(&mut s, at(2), ids[0], 8);
    let cold: Vec<Range<usize>> = s.reclaimable(0).collect();
    assert_eq!(cold, vec![24..32], "only the buffer reused since");
}

#[test]
fn memory_is_the_documented_formula() {
    let size = core::mem::size_of::<Server<StaticStorage<64, 16, 4096>>>();
    assert!(size <= footprint(64, 16, 4096), "{size}");
    assert!(size >= 64 * 32 + 16 * 4098, "{size}");
}

#[test]
fn cold_buffers_wiped_through_storage_mut_serve_again() {
    // What a host's `madvise(MADV_DONTNEED)` does to a reclaimable buffer: its bytes read
    // as zeros. The server must not care, as the buffer holds nothing it needs.
    let mut s = new(Config::new());
    let ids: Vec<ConnId> = (0..3).map(|_| s.on_accepted(at(0)).unwrap()).collect();
    for (i, &id) in ids.iter().enumerate() {
        recv(&mut s, at(1), id, &[b'a' + i as u8; 8]);
    }
    for &id in &ids {
        send(&mut s, at(2), id, 3);
    }
    let cold: Vec<Range<usize>> = s.reclaimable(1).collect();
    assert_eq!(cold.len(), 2, "three freed, the warmest kept");
    for range in cold {
        s.storage_mut().parts().bytes[range].fill(0);
    }
    for (i, &id) in ids.iter().enumerate() {
        let msg = [b'x' + i as u8; 8];
        recv(&mut s, at(3), id, &msg);
        assert_eq!(send(&mut s, at(3), id, 5), msg);
    }
}
