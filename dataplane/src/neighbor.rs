//! The neighbour (ARP) table, shared by all workers without locks.
//!
//! Design note: a fixed-capacity open-addressed table of atomics. A slot's
//! key is claimed once with a compare-and-swap and never released, so a
//! reader that finds its key sees a slot that stays its own; the value
//! (MAC, port, valid bit) is one `AtomicU64`, so a reader never sees half
//! an update. Entries are learned from ARP traffic by any worker and seeded
//! from static config by the control thread. What may fail: the table can
//! fill up (capacity is a power of two, sized generously at start); then
//! new neighbours are not learned and packets to them are dropped as
//! unresolved, counted. Entries do not age yet: a real server that changes
//! its MAC is relearned from its next ARP reply or request.

use core::net::Ipv4Addr;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use l4vs_wire::ethernet::Address as MacAddr;

/// The back-off of unanswered solicitations, milliseconds: the first
/// retry after the first value, doubling up to the second.
pub const SOLICIT_BACKOFF_MS: (u64, u64) = (1000, 60_000);

const VALID: u64 = 1 << 63;
const STATIC: u64 = 1 << 62;
const MAX_PROBE: usize = 32;

#[derive(Debug, Default)]
struct Slot {
    /// IPv4 address bits; 0 = free.
    ip: AtomicU32,
    /// VALID | STATIC | port << 48 | MAC.
    value: AtomicU64,
    /// When an ARP request for this address was last sent (ms).
    last_request_ms: AtomicU64,
    /// Unanswered solicitations in a row (the exponent of the back-off).
    solicitations: AtomicU32,
}

/// A resolved neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    /// Its MAC.
    pub mac: MacAddr,
    /// The port it was learned or configured on.
    pub port: u16,
}

/// Lock-free IPv4 neighbour table.
#[derive(Debug)]
pub struct NeighborTable {
    slots: Box<[Slot]>,
    mask: usize,
    /// Moves on every change of an entry's MAC or port, so that a worker's
    /// cache of resolved next hops ([`NeighborTable::generation`]) knows
    /// when to look again.
    generation: AtomicU64,
}

fn pack(mac: MacAddr, port: u16, flags: u64) -> u64 {
    let m = mac.0;
    let mac_bits = u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]);
    flags | (u64::from(port & 0x3fff) << 48) | mac_bits
}

fn unpack(v: u64) -> Neighbor {
    let b = v.to_be_bytes();
    Neighbor {
        mac: MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]]),
        port: ((v >> 48) & 0x3fff) as u16,
    }
}

impl NeighborTable {
    /// A table for at least `capacity` neighbours.
    pub fn new(capacity: usize) -> NeighborTable {
        let n = (capacity * 2).next_power_of_two().max(64);
        NeighborTable {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n - 1,
            generation: AtomicU64::new(0),
        }
    }

    fn hash(ip: u32) -> usize {
        (ip.wrapping_mul(0x9e37_79b1) >> 7) as usize
    }

    fn find(&self, ip: u32) -> Option<&Slot> {
        let h = Self::hash(ip);
        for i in 0..MAX_PROBE {
            let s = &self.slots[(h + i) & self.mask];
            match s.ip.load(Ordering::Acquire) {
                k if k == ip => return Some(s),
                0 => return None,
                _ => {}
            }
        }
        None
    }

    fn find_or_claim(&self, ip: u32) -> Option<&Slot> {
        let h = Self::hash(ip);
        for i in 0..MAX_PROBE {
            let s = &self.slots[(h + i) & self.mask];
            match s
                .ip
                .compare_exchange(0, ip, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(s),
                Err(k) if k == ip => return Some(s),
                Err(_) => {}
            }
        }
        None
    }

    /// The resolved neighbour for `ip`.
    #[inline]
    pub fn lookup(&self, ip: Ipv4Addr) -> Option<Neighbor> {
        let v = self.find(ip.to_bits())?.value.load(Ordering::Acquire);
        (v & VALID != 0).then(|| unpack(v))
    }

    /// Learns `ip` at `mac` on `port` from ARP. A static entry is kept.
    /// Returns false when the table is full or `ip` is 0.0.0.0.
    pub fn learn(&self, ip: Ipv4Addr, mac: MacAddr, port: u16) -> bool {
        if ip.is_unspecified() || mac.is_multicast() {
            return false;
        }
        let Some(s) = self.find_or_claim(ip.to_bits()) else {
            return false;
        };
        let old = s.value.load(Ordering::Acquire);
        if old & STATIC == 0 {
            let new = pack(mac, port, VALID);
            if old != new {
                s.value.store(new, Ordering::Release);
                self.generation.fetch_add(1, Ordering::Release);
            }
        }
        if s.solicitations.load(Ordering::Relaxed) != 0 {
            s.solicitations.store(0, Ordering::Relaxed);
        }
        true
    }

    /// Installs a static entry that ARP does not override.
    pub fn set_static(&self, ip: Ipv4Addr, mac: MacAddr, port: u16) -> bool {
        let Some(s) = self.find_or_claim(ip.to_bits()) else {
            return false;
        };
        s.value
            .store(pack(mac, port, VALID | STATIC), Ordering::Release);
        self.generation.fetch_add(1, Ordering::Release);
        true
    }

    /// A number that changes whenever an entry's MAC or port does (a
    /// learned or static entry): what a worker resolved before is still
    /// right while it is the same.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// True when an ARP request for `ip` should be sent now: none was sent
    /// in the last `interval_ms`. Records the attempt.
    pub fn should_request(&self, ip: Ipv4Addr, now_ms: u64, interval_ms: u64) -> bool {
        let Some(s) = self.find_or_claim(ip.to_bits()) else {
            return false;
        };
        let last = s.last_request_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < interval_ms {
            return false;
        }
        // Several workers may race here; the CAS lets one of them send.
        s.last_request_ms
            .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// True when an unsolicited ARP request for `ip` (a configured next hop
    /// no packet is waiting for) should be sent now. The interval doubles
    /// with each request left unanswered, from `base_ms` up to `cap_ms`, so
    /// that absent real servers cost a few requests a minute each rather
    /// than one a second; an answer ([`NeighborTable::learn`]) starts it
    /// over. Traffic that needs the neighbour asks on demand through
    /// [`NeighborTable::should_request`] at the base interval, whatever
    /// the back-off. Records the attempt.
    pub fn should_solicit(&self, ip: Ipv4Addr, now_ms: u64, base_ms: u64, cap_ms: u64) -> bool {
        let Some(s) = self.find_or_claim(ip.to_bits()) else {
            return false;
        };
        let n = s.solicitations.load(Ordering::Relaxed);
        // The first retry comes after `base_ms`, then 2, 4, 8... times it.
        let interval = base_ms
            .checked_shl(n.saturating_sub(1).min(63))
            .unwrap_or(u64::MAX)
            .min(cap_ms.max(base_ms));
        if !self.should_request(ip, now_ms, interval) {
            return false;
        }
        s.solicitations
            .store(n.saturating_add(1), Ordering::Relaxed);
        true
    }

    /// Every resolved entry, for reports.
    pub fn entries(&self) -> impl Iterator<Item = (Ipv4Addr, Neighbor, bool)> + '_ {
        self.slots.iter().filter_map(|s| {
            let ip = s.ip.load(Ordering::Acquire);
            let v = s.value.load(Ordering::Acquire);
            (ip != 0 && v & VALID != 0)
                .then(|| (Ipv4Addr::from_bits(ip), unpack(v), v & STATIC != 0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learn_lookup_static() {
        let t = NeighborTable::new(16);
        let ip = Ipv4Addr::new(198, 18, 2, 11);
        assert_eq!(t.lookup(ip), None);
        assert!(t.learn(ip, MacAddr([2, 0, 0, 0, 2, 11]), 1));
        assert_eq!(
            t.lookup(ip),
            Some(Neighbor {
                mac: MacAddr([2, 0, 0, 0, 2, 11]),
                port: 1
            })
        );
        assert!(t.set_static(ip, MacAddr([2, 0, 0, 0, 9, 9]), 0));
        assert!(t.learn(ip, MacAddr([2, 0, 0, 0, 2, 11]), 1));
        assert_eq!(
            t.lookup(ip).unwrap().mac,
            MacAddr([2, 0, 0, 0, 9, 9]),
            "static wins"
        );
        assert!(!t.learn(Ipv4Addr::UNSPECIFIED, MacAddr([2; 6]), 0));
        assert!(!t.learn(ip, MacAddr::BROADCAST, 0));
        assert_eq!(t.entries().count(), 1);
    }

    #[test]
    fn request_rate_limit() {
        let t = NeighborTable::new(16);
        let ip = Ipv4Addr::new(198, 18, 2, 12);
        assert!(t.should_request(ip, 1000, 1000));
        assert!(!t.should_request(ip, 1500, 1000));
        assert!(t.should_request(ip, 2000, 1000));
        assert_eq!(t.lookup(ip), None, "a pending request is not a resolution");
    }

    #[test]
    fn solicitation_backs_off_to_the_cap_and_restarts_when_answered() {
        let t = NeighborTable::new(16);
        let ip = Ipv4Addr::new(198, 18, 2, 13);
        let sent: Vec<u64> = (1..=200u64)
            .map(|s| s * 1000)
            .filter(|now| t.should_solicit(ip, *now, 1000, 60_000))
            .collect();
        // 1, 2, 4, 8, 16, 32 s apart, then every 60 s.
        assert_eq!(
            sent,
            [1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 124_000, 184_000]
        );
        // Traffic still asks at the base interval.
        assert!(t.should_request(ip, 185_000, 1000));
        // An answer restarts the back-off.
        t.learn(ip, MacAddr([2, 0, 0, 0, 2, 13]), 0);
        assert!(t.should_solicit(ip, 187_000, 1000, 60_000));
        assert!(t.should_solicit(ip, 188_000, 1000, 60_000));
    }

    #[test]
    fn fills_up_without_panicking() {
        let t = NeighborTable::new(1);
        let learned = (1..=1000u32)
            .filter(|i| t.learn(Ipv4Addr::from_bits(*i), MacAddr([2, 0, 0, 0, 0, 1]), 0))
            .count();
        assert!((32..1000).contains(&learned), "{learned}");
    }
}
