//! The loop guard: datagrams the echo must never answer.
//!
//! Two services that answer whatever they receive, pointed at each other, bounce one
//! datagram for ever; a forged source address makes the pair out of any two hosts. So the
//! echo does not reply to a source port where such a service lives. Legitimate echo
//! clients send from ephemeral ports, never from a server's well-known port, so the guard
//! costs them nothing.

use super::endpoint::Endpoint;

/// Source ports the echo never answers, and why ([`UdpConfig::guarded_ports`] defaults to
/// this list; port 0 is refused whatever the list says).
///
/// - 0: not a port a datagram can be answered on; a source port 0 is forged.
/// - inetd's built-in services, which answer anything: 7 echo, 9 discard (never answers,
///   but inetd guards it too and it costs nothing), 11 systat, 13 daytime, 17 qotd,
///   19 chargen (the classic echo–chargen storm), 37 time.
/// - Services that answer malformed input with an error, so an echoed reply would be
///   answered again: 53 DNS (`FORMERR`), 69 TFTP (an `ERROR` packet).
/// - The usual UDP reflection services, which answer short generic queries and are what a
///   forged source would point us at: 111 portmapper, 123 NTP, 137 NetBIOS name service,
///   161 SNMP, 389 CLDAP, 1900 SSDP, 5353 mDNS, 11211 memcached.
///
/// [`UdpConfig::guarded_ports`]: super::UdpConfig::guarded_ports
pub const GUARDED_PORTS: &[u16] = &[
    0, 7, 9, 11, 13, 17, 19, 37, 53, 69, 111, 123, 137, 161, 389, 1900, 5353, 11211,
];

/// True when no echo may go to `from`: a guarded source port, or a source address that is
/// no single host (see [`Address::is_bad_source`](super::Address::is_bad_source)).
pub(crate) fn refuses(from: &Endpoint, guarded: &[u16]) -> bool {
    from.port == 0 || guarded.contains(&from.port) || from.addr.is_bad_source()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_ports_and_sources() {
        for port in [0, 7, 9, 13, 17, 19, 37, 53, 123] {
            assert!(refuses(&Endpoint::v4([127, 0, 0, 1], port), GUARDED_PORTS));
        }
        for port in [1, 8, 1024, 8090, 65535] {
            assert!(!refuses(&Endpoint::v4([127, 0, 0, 1], port), GUARDED_PORTS));
        }
        assert!(refuses(&Endpoint::v4([127, 0, 0, 1], 0), &[]));
        assert!(!refuses(&Endpoint::v4([127, 0, 0, 1], 7), &[]));
        assert!(refuses(&Endpoint::v4([255, 255, 255, 255], 4000), &[]));
    }
}
