//! Each lifecycle transition and each error path of the server, one at a time.

use super::*;

type S = Server<4, 8>;

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Receives `data` into `id` the way a driver does: through `read_buf`, in as many slices as it takes.
fn recv(s: &mut S, now: Instant, id: ConnId, data: &[u8]) {
    let mut rest = data;
    while !rest.is_empty() {
        let buf = s.read_buf(id).unwrap();
        let n = buf.len().min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        s.on_read(now, id, n).unwrap();
        rest = &rest[n..];
    }
}

/// Sends everything queued on `id`, at most `chunk` bytes per call, and returns it.
fn send(s: &mut S, now: Instant, id: ConnId, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while s.interest(id).unwrap().write {
        let buf = s.write_buf(id).unwrap();
        let n = buf.len().min(chunk);
        out.extend_from_slice(&buf[..n]);
        s.on_written(now, id, n).unwrap();
    }
    out
}

fn actions(s: &mut S) -> Vec<Action> {
    core::iter::from_fn(|| s.poll_action()).collect()
}

#[test]
fn accept_echo_and_half_close() {
    let mut s = S::new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    assert_eq!(
        s.interest(id),
        Ok(Interest {
            read: true,
            write: false
        })
    );
    recv(&mut s, at(1), id, b"hello!");
    assert_eq!(
        s.interest(id),
        Ok(Interest {
            read: true,
            write: true
        })
    );
    // EOF arrives before the echo left: the echo is still delivered, then the close.
    s.on_read(at(2), id, 0).unwrap();
    assert_eq!(
        s.interest(id),
        Ok(Interest {
            read: false,
            write: true
        })
    );
    assert_eq!(
        s.poll_action(),
        None,
        "nothing to do while bytes are queued"
    );
    assert_eq!(send(&mut s, at(3), id, 4), b"hello!");
    assert_eq!(
        actions(&mut s),
        [
            Action::ShutdownWrite(id),
            Action::Close(id, CloseReason::PeerClosed)
        ]
    );
    assert_eq!(s.interest(id), Err(Error::UnknownConn));
    let st = s.stats();
    assert_eq!((st.accepted, st.bytes_in, st.bytes_out), (1, 6, 6));
    assert_eq!(st.closed.peer_closed, 1);
}

#[test]
fn full_queue_stops_reading_until_written() {
    let mut s = S::new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    recv(&mut s, at(0), id, b"12345678");
    assert_eq!(
        s.interest(id),
        Ok(Interest {
            read: false,
            write: true
        })
    );
    assert_eq!(s.read_buf(id).err(), Some(Error::QueueFull));
    assert_eq!(s.stats().peak_queue, 8);
    s.on_written(at(0), id, 3).unwrap();
    assert_eq!(
        s.read_buf(id).unwrap().len(),
        3,
        "the freed bytes wrap to the front"
    );
    recv(&mut s, at(0), id, b"abc");
    assert_eq!(send(&mut s, at(0), id, 8), b"45678abc");
}

#[test]
fn table_full_refuses_and_listener_loses_interest() {
    let mut s = S::new(Config::new());
    let ids: Vec<ConnId> = (0..4).map(|_| s.on_accepted(at(0)).unwrap()).collect();
    assert!(!s.listener_interest());
    assert_eq!(s.on_accepted(at(0)), Err(Error::Full));
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
fn max_conns_lowers_the_capacity() {
    let mut s = S::new(Config {
        max_conns: 2,
        ..Config::new()
    });
    assert_eq!(s.max_conns(), 2);
    s.on_accepted(at(0)).unwrap();
    s.on_accepted(at(0)).unwrap();
    assert_eq!(s.on_accepted(at(0)), Err(Error::Full));
    let big = S::new(Config {
        max_conns: 99,
        ..Config::new()
    });
    assert_eq!(big.max_conns(), S::CAPACITY);
}

#[test]
fn stale_ids_are_rejected_everywhere() {
    let mut s = S::new(Config::new());
    let old = s.on_accepted(at(0)).unwrap();
    s.on_error(old, ErrorKind::HangUp).unwrap();
    actions(&mut s);
    // Fill every slot so the old one is reused.
    for _ in 0..4 {
        s.on_accepted(at(0)).unwrap();
    }
    assert_eq!(s.interest(old), Err(Error::UnknownConn));
    assert_eq!(s.read_buf(old).err(), Some(Error::UnknownConn));
    assert_eq!(s.on_read(at(0), old, 1), Err(Error::UnknownConn));
    assert_eq!(s.write_buf(old).err(), Some(Error::UnknownConn));
    assert_eq!(s.on_written(at(0), old, 0), Err(Error::UnknownConn));
    assert_eq!(s.on_error(old, ErrorKind::Reset), Err(Error::UnknownConn));
    assert_eq!(s.queued(old), Err(Error::UnknownConn));
    let forged = ConnId {
        index: 200,
        generation: 0,
    };
    assert_eq!(s.interest(forged), Err(Error::UnknownConn));
    assert_eq!(s.on_read(at(0), forged, 0), Err(Error::UnknownConn));
}

#[test]
fn lengths_longer_than_lent_are_errors_and_change_nothing() {
    let mut s = S::new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    assert_eq!(s.on_read(at(0), id, 9), Err(Error::TooLong));
    assert_eq!(s.queued(id), Ok(0));
    recv(&mut s, at(0), id, b"abc");
    assert_eq!(s.on_written(at(0), id, 4), Err(Error::TooLong));
    assert_eq!(s.write_buf(id).unwrap(), b"abc");
    assert_eq!(s.stats().bytes_out, 0);
}

#[test]
fn reads_after_eof_and_calls_on_closing_conns_are_errors() {
    let mut s = S::new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    recv(&mut s, at(0), id, b"x");
    s.on_read(at(0), id, 0).unwrap();
    assert_eq!(s.read_buf(id).err(), Some(Error::ReadClosed));
    assert_eq!(s.on_read(at(0), id, 0), Err(Error::ReadClosed));
    s.on_error(id, ErrorKind::Other).unwrap();
    assert_eq!(s.interest(id), Ok(Interest::NONE));
    assert_eq!(s.write_buf(id).err(), Some(Error::Closing));
    assert_eq!(s.on_written(at(0), id, 1), Err(Error::Closing));
    assert_eq!(s.on_error(id, ErrorKind::Other), Err(Error::Closing));
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
}

#[test]
fn eof_on_an_empty_queue_closes_at_once() {
    let mut s = S::new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    s.on_read(at(0), id, 0).unwrap();
    assert_eq!(s.interest(id), Ok(Interest::NONE));
    assert_eq!(
        actions(&mut s),
        [
            Action::ShutdownWrite(id),
            Action::Close(id, CloseReason::PeerClosed)
        ]
    );
}

#[test]
fn idle_connections_time_out_and_active_ones_do_not() {
    let cfg = Config {
        idle_timeout: Some(Duration::from_millis(100)),
        ..Config::new()
    };
    let mut s = S::new(cfg);
    assert_eq!(s.poll_timeout(), None);
    let idle = s.on_accepted(at(0)).unwrap();
    let busy = s.on_accepted(at(10)).unwrap();
    assert_eq!(s.poll_timeout(), Some(at(100)));
    recv(&mut s, at(90), busy, b"hi");
    send(&mut s, at(95), busy, 8);
    s.handle_timeout(at(99));
    assert_eq!(actions(&mut s), []);
    s.handle_timeout(at(100));
    assert_eq!(
        actions(&mut s),
        [Action::Close(idle, CloseReason::IdleTimeout)]
    );
    assert_eq!(s.poll_timeout(), Some(at(195)));
    s.handle_timeout(at(194));
    assert!(s.interest(busy).is_ok());
    s.handle_timeout(at(500));
    assert_eq!(
        actions(&mut s),
        [Action::Close(busy, CloseReason::IdleTimeout)]
    );
    assert_eq!(s.stats().closed.idle_timeout, 2);
}

#[test]
fn a_peer_that_never_reads_times_out_with_its_queue_discarded() {
    let cfg = Config {
        idle_timeout: Some(Duration::from_millis(50)),
        ..Config::new()
    };
    let mut s = S::new(cfg);
    let id = s.on_accepted(at(0)).unwrap();
    recv(&mut s, at(0), id, b"12345678");
    s.handle_timeout(at(50));
    assert_eq!(
        actions(&mut s),
        [Action::Close(id, CloseReason::IdleTimeout)]
    );
    assert_eq!(s.stats().bytes_discarded, 8);
}

#[test]
fn a_clock_stepping_back_never_reorders_deadlines() {
    let cfg = Config {
        idle_timeout: Some(Duration::from_millis(10)),
        ..Config::new()
    };
    let mut s = S::new(cfg);
    let a = s.on_accepted(at(100)).unwrap();
    let b = s.on_accepted(at(50)).unwrap(); // the clock went back
    assert_eq!(s.poll_timeout(), Some(at(110)));
    s.handle_timeout(at(110));
    assert_eq!(
        actions(&mut s),
        [
            Action::Close(a, CloseReason::IdleTimeout),
            Action::Close(b, CloseReason::IdleTimeout)
        ]
    );
}

#[test]
fn shutdown_drains_then_closes_and_refuses_new_connections() {
    let mut s = S::new(Config::new());
    let empty = s.on_accepted(at(0)).unwrap();
    let busy = s.on_accepted(at(0)).unwrap();
    recv(&mut s, at(0), busy, b"queued");
    s.shutdown(at(1), Duration::from_millis(1000));
    assert!(!s.listener_interest());
    assert_eq!(s.on_accepted(at(1)), Err(Error::ShuttingDown));
    assert_eq!(
        s.interest(busy),
        Ok(Interest {
            read: false,
            write: true
        })
    );
    assert_eq!(s.read_buf(busy).err(), Some(Error::ReadClosed));
    assert_eq!(
        actions(&mut s),
        [
            Action::ShutdownWrite(empty),
            Action::Close(empty, CloseReason::Shutdown)
        ]
    );
    assert!(!s.is_shut_down());
    assert_eq!(s.poll_timeout(), Some(at(1001)));
    assert_eq!(send(&mut s, at(2), busy, 2), b"queued");
    assert_eq!(
        actions(&mut s),
        [
            Action::ShutdownWrite(busy),
            Action::Close(busy, CloseReason::Shutdown)
        ]
    );
    assert!(s.is_shut_down());
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.stats().closed.shutdown, 2);
    assert_eq!(s.stats().refused, 1);
}

#[test]
fn shutdown_grace_period_ends_in_an_abortive_close() {
    let mut s = S::new(Config::new());
    let stuck = s.on_accepted(at(0)).unwrap();
    recv(&mut s, at(0), stuck, b"unsent");
    s.shutdown(at(0), Duration::from_millis(20));
    s.shutdown(at(5), Duration::from_millis(9999)); // a second call changes nothing
    s.handle_timeout(at(19));
    assert_eq!(actions(&mut s), []);
    s.handle_timeout(at(20));
    assert_eq!(
        actions(&mut s),
        [Action::Close(stuck, CloseReason::ShutdownTimeout)]
    );
    assert!(s.is_shut_down());
}

#[test]
fn conns_lists_open_connections_with_their_interest() {
    let mut s = S::new(Config::new());
    let a = s.on_accepted(at(0)).unwrap();
    let b = s.on_accepted(at(0)).unwrap();
    recv(&mut s, at(1), a, b"x");
    let listed: Vec<_> = s.conns().collect();
    assert_eq!(
        listed,
        [
            (
                b,
                Interest {
                    read: true,
                    write: false
                }
            ),
            (
                a,
                Interest {
                    read: true,
                    write: true
                }
            ),
        ],
        "least recently active first"
    );
    assert_eq!(s.conn_count(), 2);
    assert_eq!(s.stats().peak_conns, 2);
}

#[test]
fn driver_refusals_are_counted() {
    let mut s = S::new(Config::new());
    s.on_refused();
    assert_eq!(s.stats().refused, 1);
    assert_eq!(s.stats().accepted, 0);
}

#[test]
fn zero_length_write_is_a_no_op() {
    let mut s = S::new(Config::new());
    let id = s.on_accepted(at(0)).unwrap();
    recv(&mut s, at(0), id, b"ab");
    s.on_written(at(0), id, 0).unwrap();
    assert_eq!(s.write_buf(id).unwrap(), b"ab");
}

#[test]
fn memory_is_the_struct_and_nothing_else() {
    // The figure the README quotes: slots of QUEUE bytes plus a few words each.
    let size = core::mem::size_of::<Server<64, 4096>>();
    assert!(
        (64 * 4096..=64 * (4096 + 64) + 256).contains(&size),
        "{size}"
    );
}
