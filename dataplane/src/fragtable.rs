//! Where the fragments of a datagram go: a per-worker table keyed by the
//! fields that identify a datagram (source, destination, protocol and IP
//! identification, RFC 791), holding the ports its first fragment carried.
//!
//! The kernel's IPVS sees fragments only after `ip_defrag` put them back
//! together; l4vs does not reassemble. Instead the first fragment, which
//! carries the TCP or UDP header, is scheduled as any packet and records
//! its ports here; every later fragment of the same datagram (no ports of
//! its own) finds them and follows the same connection, to the same real
//! server, which reassembles. A later fragment that comes before the
//! first is held briefly by the lcore loop (`AwaitFragment`).
//!
//! Bounded: a fixed number of 4-way buckets allocated at creation; an
//! entry lives [`FRAG_ENTRY_MS`]; a new datagram whose bucket is full
//! takes the place of the entry closest to expiry (counted by the caller).
//! So a flood of first fragments costs a bucket of slots each, never
//! memory, and the worst it does is send the later fragments of an evicted
//! datagram to the hold queue, where they time out.

use core::net::Ipv4Addr;

/// How long a datagram's entry lives after its first fragment, in
/// milliseconds. Shorter than the kernel's reassembly timeout (30 s,
/// `ipfrag_time`): entries hold no data, and a datagram's fragments
/// arrive within milliseconds of each other.
pub const FRAG_ENTRY_MS: u64 = 5_000;
/// Slots per bucket.
const WAYS: usize = 4;

/// What identifies a datagram (RFC 791: source, destination, protocol,
/// identification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol number.
    pub proto: u8,
    /// IP identification.
    pub ident: u16,
}

impl FragKey {
    /// The key of the IPv4 header at the start of `ip`, if it is long
    /// enough to hold one.
    pub fn of_header(ip: &[u8]) -> Option<FragKey> {
        let h: &[u8; 20] = ip.get(..20)?.try_into().ok()?;
        Some(FragKey {
            src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
            dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
            proto: h[9],
            ident: u16::from_be_bytes([h[4], h[5]]),
        })
    }
}

/// Where a datagram goes, as its first fragment decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragRoute {
    /// Source port of the datagram.
    pub sport: u16,
    /// Destination port of the datagram.
    pub dport: u16,
    /// For a one-packet-scheduling datagram, which keeps no connection:
    /// the service slot and real index its first fragment went to.
    pub ops: Option<(u16, u16)>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: FragKey,
    route: FragRoute,
    /// 0: empty.
    expires_ms: u64,
}

const EMPTY: Slot = Slot {
    key: FragKey {
        src: Ipv4Addr::UNSPECIFIED,
        dst: Ipv4Addr::UNSPECIFIED,
        proto: 0,
        ident: 0,
    },
    route: FragRoute {
        sport: 0,
        dport: 0,
        ops: None,
    },
    expires_ms: 0,
};

/// A fixed-size table of datagrams whose first fragment has been seen.
#[derive(Debug)]
pub struct FragTable {
    slots: Box<[Slot]>,
    buckets: usize,
    seed: u64,
}

/// What [`FragTable::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Into a free (or expired) slot, or over the same datagram's entry.
    Free,
    /// In place of a live entry of another datagram.
    Evicted,
}

impl FragTable {
    /// A table of at least `capacity` entries (rounded up to whole
    /// buckets); `seed` keys its hash.
    pub fn new(capacity: usize, seed: u64) -> FragTable {
        let buckets = capacity.div_ceil(WAYS).max(1);
        FragTable {
            slots: vec![EMPTY; buckets * WAYS].into_boxed_slice(),
            buckets,
            seed,
        }
    }

    fn bucket(&self, k: &FragKey) -> usize {
        let a = (u64::from(k.src.to_bits()) << 32) | u64::from(k.dst.to_bits());
        let b = (u64::from(k.ident) << 8) | u64::from(k.proto);
        let mut h = (a ^ self.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
        h = (h ^ b).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 32;
        (((h & 0xffff_ffff) * self.buckets as u64) >> 32) as usize
    }

    /// The route of `key`'s datagram, if its first fragment was seen in
    /// the last [`FRAG_ENTRY_MS`].
    pub fn lookup(&self, key: &FragKey, now_ms: u64) -> Option<FragRoute> {
        let b = self.bucket(key) * WAYS;
        self.slots[b..b + WAYS]
            .iter()
            .find(|s| s.expires_ms > now_ms && s.key == *key)
            .map(|s| s.route)
    }

    /// Records `key`'s datagram going by `route`, for [`FRAG_ENTRY_MS`].
    pub fn insert(&mut self, key: FragKey, route: FragRoute, now_ms: u64) -> Inserted {
        let b = self.bucket(&key) * WAYS;
        let bucket = &mut self.slots[b..b + WAYS];
        let expires_ms = now_ms + FRAG_ENTRY_MS;
        let (i, how) = match bucket
            .iter()
            .position(|s| s.expires_ms > now_ms && s.key == key)
            .or_else(|| bucket.iter().position(|s| s.expires_ms <= now_ms))
        {
            Some(i) => (i, Inserted::Free),
            None => {
                let oldest = (0..WAYS).min_by_key(|i| bucket[*i].expires_ms).unwrap_or(0);
                (oldest, Inserted::Evicted)
            }
        };
        bucket[i] = Slot {
            key,
            route,
            expires_ms,
        };
        how
    }

    /// Entries alive at `now_ms` (for tests and reports; scans the table).
    pub fn live(&self, now_ms: u64) -> usize {
        self.slots.iter().filter(|s| s.expires_ms > now_ms).count()
    }

    /// Slots in all.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u16) -> FragKey {
        FragKey {
            src: Ipv4Addr::new(198, 18, 1, 10),
            dst: Ipv4Addr::new(198, 18, 0, 100),
            proto: 17,
            ident: i,
        }
    }

    fn route(p: u16) -> FragRoute {
        FragRoute {
            sport: p,
            dport: 53,
            ops: None,
        }
    }

    #[test]
    fn entries_are_found_until_they_expire() {
        let mut t = FragTable::new(64, 1);
        assert_eq!(t.insert(key(1), route(5000), 0), Inserted::Free);
        assert_eq!(t.lookup(&key(1), 4_999), Some(route(5000)));
        assert_eq!(t.lookup(&key(2), 0), None);
        assert_eq!(t.lookup(&key(1), FRAG_ENTRY_MS), None);
        // The same datagram again refreshes its own slot.
        t.insert(key(1), route(5000), 100);
        t.insert(key(1), route(5001), 200);
        assert_eq!(t.live(300), 1);
        assert_eq!(t.lookup(&key(1), 300), Some(route(5001)));
    }

    /// A flood of first fragments never grows the table: it fills, then
    /// each new datagram takes the place of the one closest to expiry.
    #[test]
    fn a_flood_stays_within_its_slots() {
        let mut t = FragTable::new(256, 7);
        let mut evicted = 0;
        for i in 0..10_000u16 {
            if t.insert(key(i), route(i), u64::from(i)) == Inserted::Evicted {
                evicted += 1;
            }
        }
        assert_eq!(t.capacity(), 256);
        assert_eq!(t.live(10_000), 256);
        assert!(evicted >= 10_000 - 256, "{evicted}");
        // The most recent ones are there.
        assert_eq!(t.lookup(&key(9_999), 10_000), Some(route(9_999)));
    }

    #[test]
    fn the_key_is_read_from_the_header() {
        let mut h = [0u8; 20];
        h[4..6].copy_from_slice(&0xbeefu16.to_be_bytes());
        h[9] = 6;
        h[12..16].copy_from_slice(&[198, 18, 1, 10]);
        h[16..20].copy_from_slice(&[198, 18, 0, 100]);
        assert_eq!(
            FragKey::of_header(&h),
            Some(FragKey {
                proto: 6,
                ident: 0xbeef,
                ..key(0)
            })
        );
        assert_eq!(FragKey::of_header(&h[..19]), None);
    }
}
