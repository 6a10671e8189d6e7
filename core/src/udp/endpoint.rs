//! Who sent a datagram: an address and a port, in a type of the core's own.
//!
//! The core is `no_std` and driver-agnostic, so it names addresses with plain bytes rather
//! than a stack's type (smoltcp's `IpEndpoint`, libc's `sockaddr`). Conversions to and from
//! `core::net::SocketAddr` are here; a driver for another stack converts its own.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An IP address, as its bytes in network order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Address {
    /// IPv4.
    V4([u8; 4]),
    /// IPv6 (an IPv4-mapped `::ffff:a.b.c.d` stays IPv6: the reply goes where it came from).
    V6([u8; 16]),
}

impl Address {
    /// An address no datagram may come from: unspecified, broadcast or multicast. A reply
    /// to it would go nowhere or to many hosts at once.
    pub fn is_bad_source(&self) -> bool {
        match self {
            Address::V4(o) => {
                let ip = Ipv4Addr::from(*o);
                ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast()
            }
            Address::V6(o) => {
                let ip = Ipv6Addr::from(*o);
                match ip.to_ipv4_mapped() {
                    Some(v4) => Address::V4(v4.octets()).is_bad_source(),
                    None => ip.is_unspecified() || ip.is_multicast(),
                }
            }
        }
    }
}

/// A UDP endpoint: where a datagram came from, and where its echo goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Endpoint {
    /// The IP address.
    pub addr: Address,
    /// The UDP port.
    pub port: u16,
}

impl Endpoint {
    /// `0.0.0.0:0`: what an empty table slot holds.
    pub const UNSPECIFIED: Endpoint = Endpoint::v4([0; 4], 0);

    /// An IPv4 endpoint.
    pub const fn v4(octets: [u8; 4], port: u16) -> Self {
        Endpoint {
            addr: Address::V4(octets),
            port,
        }
    }

    /// An IPv6 endpoint.
    pub const fn v6(octets: [u8; 16], port: u16) -> Self {
        Endpoint {
            addr: Address::V6(octets),
            port,
        }
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        match addr.ip() {
            IpAddr::V4(ip) => Endpoint::v4(ip.octets(), addr.port()),
            IpAddr::V6(ip) => Endpoint::v6(ip.octets(), addr.port()),
        }
    }
}

impl From<Endpoint> for SocketAddr {
    fn from(ep: Endpoint) -> Self {
        let ip = match ep.addr {
            Address::V4(o) => IpAddr::V4(Ipv4Addr::from(o)),
            Address::V6(o) => IpAddr::V6(Ipv6Addr::from(o)),
        };
        SocketAddr::new(ip, ep.port)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        SocketAddr::from(*self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addr_round_trips() {
        for text in ["127.0.0.1:7", "[::1]:65535", "[::ffff:10.0.0.1]:9"] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(SocketAddr::from(Endpoint::from(addr)), addr);
            assert_eq!(Endpoint::from(addr).to_string(), text);
        }
    }

    #[test]
    fn bad_sources() {
        let bad = [
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "239.1.2.3",
            "::",
            "ff02::1",
        ];
        for ip in bad {
            let ep = Endpoint::from(SocketAddr::new(ip.parse().unwrap(), 1));
            assert!(ep.addr.is_bad_source(), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.0.2.2",
            "223.255.255.255",
            "240.0.0.1",
            "::1",
            "fe80::1",
        ] {
            let ep = Endpoint::from(SocketAddr::new(ip.parse().unwrap(), 1));
            assert!(!ep.addr.is_bad_source(), "{ip}");
        }
    }
}
