//! `--max-conns-per-ip`: how many connections each peer address holds, in a table sized
//! once, so that one client cannot take every slot (nginx's `limit_conn`).
//!
//! An open-addressing hash table with linear probing, allocated at start-up with room for
//! twice the connection capacity: at most one entry per open connection is ever live, so the
//! table is at most half full and an accept or a close probes O(1) slots on average. An
//! entry leaves the table when its count falls to zero, by backward-shift deletion (no
//! tombstones, so probe runs never grow with churn). Keys are hashed with std's randomly
//! keyed SipHash: a peer choosing its addresses cannot aim them at one probe run.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack listener reports) count
//! as the IPv4 address they carry.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;

/// Connections per peer address, with a fixed limit.
pub(crate) struct PerIp {
    limit: u32,
    /// `None`: empty. Length is a power of two.
    entries: Box<[Option<(IpAddr, u32)>]>,
    hasher: RandomState,
}

impl PerIp {
    /// A table for at most `capacity` open connections, each address holding at most `limit`.
    pub(crate) fn new(capacity: usize, limit: u32) -> Self {
        let len = capacity.saturating_mul(2).max(2).next_power_of_two();
        PerIp {
            limit,
            entries: vec![None; len].into_boxed_slice(),
            hasher: RandomState::new(),
        }
    }

    /// Counts a new connection from `ip`; false (and nothing counted) when `ip` already
    /// holds `limit`, or when the table is full (more connections than it was sized for).
    pub(crate) fn admit(&mut self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let Some(i) = self.find(ip) else {
            return false;
        };
        match self.entries.get_mut(i) {
            Some(Some((_, count))) if *count >= self.limit => false,
            Some(Some((_, count))) => {
                *count += 1;
                true
            }
            Some(empty @ None) if self.limit > 0 => {
                *empty = Some((ip, 1));
                true
            }
            _ => false,
        }
    }

    /// Forgets one connection from `ip` (admitted before).
    pub(crate) fn release(&mut self, ip: IpAddr) {
        let ip = canonical(ip);
        let Some(i) = self.find(ip) else {
            return;
        };
        let Some(Some((_, count))) = self.entries.get_mut(i) else {
            debug_assert!(false, "released {ip} which holds no connection");
            return;
        };
        *count -= 1;
        if *count == 0 {
            self.remove_at(i);
        }
    }

    /// Connections `ip` holds.
    #[cfg(test)]
    pub(crate) fn count(&self, ip: IpAddr) -> u32 {
        let ip = canonical(ip);
        self.find(ip)
            .and_then(|i| self.entries.get(i).copied().flatten())
            .map_or(0, |(_, n)| n)
    }

    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    fn home(&self, ip: IpAddr) -> usize {
        self.hasher.hash_one(ip) as usize & self.mask()
    }

    /// The index holding `ip`, or the empty one where it would go; `None` if the table is
    /// full without it.
    fn find(&self, ip: IpAddr) -> Option<usize> {
        let mut i = self.home(ip);
        for _ in 0..self.entries.len() {
            match self.entries.get(i)? {
                Some((key, _)) if *key != ip => i = (i + 1) & self.mask(),
                _ => return Some(i),
            }
        }
        None
    }

    /// Empties index `i` and shifts back the entries of its probe run that would no longer
    /// be found past the hole.
    fn remove_at(&mut self, mut hole: usize) {
        if let Some(e) = self.entries.get_mut(hole) {
            *e = None;
        }
        let mut i = hole;
        loop {
            i = (i + 1) & self.mask();
            let Some(&Some((key, count))) = self.entries.get(i) else {
                return;
            };
            let home = self.home(key);
            // Move the entry into the hole if the hole lies on its probe path (between its
            // home and where it sits, cyclically).
            let dist_entry = i.wrapping_sub(home) & self.mask();
            let dist_hole = hole.wrapping_sub(home) & self.mask();
            if dist_hole < dist_entry {
                if let Some(h) = self.entries.get_mut(hole) {
                    *h = Some((key, count));
                }
                if let Some(e) = self.entries.get_mut(i) {
                    *e = None;
                }
                hole = i;
            }
        }
    }
}

/// The IPv4 address inside an IPv4-mapped IPv6 one; any other address as it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[test]
    fn each_address_is_held_to_the_limit() {
        let mut t = PerIp::new(10, 2);
        let a = v4(1);
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(t.admit(a) && t.admit(a));
        assert!(!t.admit(a), "a third from the same address is refused");
        assert!(t.admit(b) && t.admit(b) && !t.admit(b));
        t.release(a);
        assert_eq!(t.count(a), 1);
        assert!(t.admit(a), "room again after a close");
        assert_eq!((t.count(a), t.count(b)), (2, 2));
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        let mut t = PerIp::new(4, 1);
        let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped());
        assert!(t.admit(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(!t.admit(mapped));
        assert!(
            t.admit(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            "::1 is another address"
        );
    }

    #[test]
    fn zero_limit_admits_nobody() {
        let mut t = PerIp::new(4, 0);
        assert!(!t.admit(v4(7)));
        assert_eq!(t.count(v4(7)), 0);
    }

    #[test]
    fn matches_a_model_under_churn() {
        // Many addresses coming and going through a small table: deletions must keep every
        // live entry reachable (a broken backward shift loses counts).
        let capacity = 64;
        let mut t = PerIp::new(capacity, 3);
        let mut model: HashMap<IpAddr, u32> = HashMap::new();
        let mut open: Vec<IpAddr> = Vec::new();
        let mut x: u32 = 12345;
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let close = open.len() >= capacity || (!open.is_empty() && x.is_multiple_of(3));
            if close {
                let ip = open.swap_remove((x as usize >> 8) % open.len());
                t.release(ip);
                *model.get_mut(&ip).unwrap() -= 1;
            } else {
                let ip = v4((x >> 16) % 40);
                let want = model.get(&ip).copied().unwrap_or(0) < 3;
                assert_eq!(t.admit(ip), want, "{ip}");
                if want {
                    *model.entry(ip).or_default() += 1;
                    open.push(ip);
                }
            }
            for (ip, n) in &model {
                assert_eq!(t.count(*ip), *n, "{ip}");
            }
        }
    }

    #[test]
    fn a_full_table_refuses_rather_than_loops() {
        let mut t = PerIp::new(1, 5);
        assert_eq!(t.entries.len(), 2);
        assert!(t.admit(v4(1)) && t.admit(v4(2)));
        assert!(!t.admit(v4(3)));
    }
}
