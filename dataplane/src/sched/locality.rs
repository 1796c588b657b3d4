//! Locality-based least connection, without and with replication
//! (`ip_vs_lblc.c`, `ip_vs_lblcr.c`): a cache from destination address to
//! the real (lblc) or set of reals (lblcr) that served it, so that a cache
//! cluster keeps each destination's objects on few servers; weighted least
//! connection picks a real for a new or an overloaded destination.
//!
//! Design note: each worker keeps its own cache in a fixed-capacity,
//! open-addressed table allocated when the scheduler is built, so
//! scheduling allocates nothing and locks nothing. The capacity is the
//! kernel's `max_size` (16 times its 1024 buckets: 16384 destinations) in
//! twice as many slots (linear probing stays short at half load).
//! Expiry runs a few slots at a time on each scheduling call instead of
//! the kernel's timer:
//! - an entry unused for `lblc_expiration` / `lblcr_expiration` (the
//!   kernel's default, 24 hours) goes, as the kernel's full check does;
//! - when the table is more than three quarters full, entries unused for 6
//!   minutes (the kernel's `ENTRY_TIMEOUT` for a table over `max_size`) go.
//!
//! What may fail, and why that is acceptable: when the table is full a new
//! destination is scheduled but not cached, as the kernel does when it
//! cannot allocate an entry ("we'll just use the valid dest"); the next
//! connection to it is scheduled afresh. An lblcr server set holds at most
//! [`SET_MAX`] reals; a real that would grow it further is used but not
//! added, which bounds the entry size. Caches are per worker, so a
//! destination may be served by a different real on each worker, and a new
//! snapshot starts with empty caches.

use super::lc::{weighted_least, weighted_least_of};
use super::{ratio_gt, RealStats};
use crate::model::Real;
use core::net::Ipv4Addr;

const SLOT_BITS: u32 = 15;
const SLOTS: usize = 1 << SLOT_BITS;
const MASK: usize = SLOTS - 1;
/// The kernel's `max_size`: IP_VS_LBLC_TAB_SIZE * 16.
const MAX_ENTRIES: usize = 16 * 1024;
/// The kernel's DEFAULT_EXPIRATION for both schedulers' sysctls.
const EXPIRATION_S: u32 = 24 * 60 * 60;
/// The kernel's ENTRY_TIMEOUT.
const ENTRY_TIMEOUT_S: u32 = 6 * 60;
/// Slots examined for expiry per scheduling call: a full pass every 4096
/// new connections.
const SWEEP: usize = 8;
/// Most reals in an lblcr server set.
pub(super) const SET_MAX: usize = 8;
/// 0.0.0.0 marks a free slot; it is never a destination that reaches a
/// service (a VIP is unicast), and if it were it would just not be cached.
const FREE: u32 = 0;
const GOLDEN: u32 = 2_654_435_761;

#[derive(Debug, Clone, Copy)]
struct Slot<V> {
    key: u32,
    lastuse: u32,
    val: V,
}

/// Destination address -> `V`, fixed capacity, linear probing with
/// backward-shift deletion (no tombstones, so lookups stay short).
#[derive(Clone)]
struct AddrTable<V> {
    slots: Box<[Slot<V>]>,
    len: usize,
    rover: usize,
}

impl<V> core::fmt::Debug for AddrTable<V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AddrTable({} of {MAX_ENTRIES})", self.len)
    }
}

fn home(key: u32) -> usize {
    (key.wrapping_mul(GOLDEN) >> (32 - SLOT_BITS)) as usize
}

impl<V: Copy + Default> AddrTable<V> {
    fn new() -> Self {
        let free = Slot {
            key: FREE,
            lastuse: 0,
            val: V::default(),
        };
        AddrTable {
            slots: vec![free; SLOTS].into_boxed_slice(),
            len: 0,
            rover: 0,
        }
    }

    fn find(&self, key: u32) -> Option<usize> {
        if key == FREE {
            return None;
        }
        let mut i = home(key);
        // Ends: at most MAX_ENTRIES < SLOTS slots are in use.
        loop {
            match self.slots[i].key {
                k if k == key => return Some(i),
                FREE => return None,
                _ => i = (i + 1) & MASK,
            }
        }
    }

    /// Adds `key` (known to be absent); false when the table is full.
    fn insert(&mut self, key: u32, now: u32, val: V) -> bool {
        if key == FREE || self.len >= MAX_ENTRIES {
            return false;
        }
        let mut i = home(key);
        while self.slots[i].key != FREE {
            i = (i + 1) & MASK;
        }
        self.slots[i] = Slot {
            key,
            lastuse: now,
            val,
        };
        self.len += 1;
        true
    }

    /// Frees slot `hole` and moves later entries of its probe run back so
    /// that every entry stays reachable from its home slot.
    fn remove_at(&mut self, mut hole: usize) {
        self.len -= 1;
        let mut j = hole;
        loop {
            self.slots[hole].key = FREE;
            loop {
                j = (j + 1) & MASK;
                let key = self.slots[j].key;
                if key == FREE {
                    return;
                }
                // The entry at j may fill the hole unless its home lies
                // cyclically in (hole, j].
                let h = home(key);
                let stays = if hole <= j {
                    hole < h && h <= j
                } else {
                    hole < h || h <= j
                };
                if !stays {
                    self.slots[hole] = self.slots[j];
                    hole = j;
                    break;
                }
            }
        }
    }

    /// Examines the next [`SWEEP`] slots and frees expired entries.
    fn sweep(&mut self, now: u32) {
        let pressure = self.len > MAX_ENTRIES * 3 / 4;
        for _ in 0..SWEEP {
            let i = self.rover;
            let s = self.slots[i];
            if s.key != FREE {
                let idle = now.saturating_sub(s.lastuse);
                if idle >= EXPIRATION_S || (pressure && idle >= ENTRY_TIMEOUT_S) {
                    // An entry may shift into slot i: look at it next.
                    self.remove_at(i);
                    continue;
                }
            }
            self.rover = (i + 1) & MASK;
        }
    }
}

/// lblc/lblcr's `is_overloaded`: the real has more active connections than
/// its weight while some real has fewer than half its weight. (Not the
/// overloaded flag of the connection thresholds.)
fn locality_overloaded(reals: &[Real], stats: &[RealStats], d: usize) -> bool {
    stats[d].active() > reals[d].weight
        && reals
            .iter()
            .zip(stats)
            .any(|(r, s)| u64::from(s.active()) * 2 < u64::from(r.weight))
}

fn as_index(i: usize) -> u16 {
    // Snapshot::new caps a service at 65535 reals.
    i as u16
}

/// lblc: one real per destination.
#[derive(Debug, Clone)]
pub(super) struct Lblc {
    t: AddrTable<u16>,
}

impl Lblc {
    pub(super) fn new() -> Lblc {
        Lblc {
            t: AddrTable::new(),
        }
    }

    /// ip_vs_lblc_schedule: the cached real if it has weight and is not
    /// locality-overloaded; the cache hit does not look at the threshold
    /// flag, as the kernel's does not. Otherwise wlc's choice, cached.
    pub(super) fn schedule(
        &mut self,
        reals: &[Real],
        stats: &[RealStats],
        dst: Ipv4Addr,
        now: u32,
    ) -> Option<usize> {
        self.t.sweep(now);
        let key = dst.to_bits();
        let hit = self.t.find(key);
        if let Some(i) = hit {
            let s = &mut self.t.slots[i];
            s.lastuse = now;
            let d = usize::from(s.val);
            if d < reals.len() && reals[d].weight > 0 && !locality_overloaded(reals, stats, d) {
                return Some(d);
            }
        }
        let d = weighted_least(reals, stats, RealStats::overhead)?;
        match hit {
            // ip_vs_lblc_new: the entry now names the new real.
            Some(i) => {
                let s = &mut self.t.slots[i];
                (s.val, s.lastuse) = (as_index(d), now);
            }
            None => {
                self.t.insert(key, now, as_index(d));
            }
        }
        Some(d)
    }
}

/// An lblcr server set, most recently added first (the kernel adds at the
/// head of its list, and walks it from there).
#[derive(Debug, Clone, Copy, Default)]
struct Set {
    lastmod: u32,
    len: u8,
    reals: [u16; SET_MAX],
}

impl Set {
    fn members(&self) -> impl Iterator<Item = usize> + '_ {
        self.reals[..usize::from(self.len)]
            .iter()
            .map(|i| usize::from(*i))
    }

    /// ip_vs_dest_set_insert (with the duplicate check).
    fn insert(&mut self, d: usize, now: u32) {
        let len = usize::from(self.len);
        if self.members().any(|m| m == d) || len == SET_MAX {
            return;
        }
        self.reals.copy_within(0..len, 1);
        self.reals[0] = as_index(d);
        self.len += 1;
        self.lastmod = now;
    }

    /// ip_vs_dest_set_erase.
    fn erase(&mut self, d: usize, now: u32) {
        let len = usize::from(self.len);
        let found = self.members().position(|m| m == d);
        if let Some(p) = found {
            self.reals.copy_within(p + 1..len, p);
            self.len -= 1;
            self.lastmod = now;
        }
    }

    /// ip_vs_dest_set_max: the member with weight and the most
    /// `overhead / weight`; the first of equals.
    fn max(&self, reals: &[Real], stats: &[RealStats]) -> Option<usize> {
        let mut it = self.members().filter(|i| *i < reals.len());
        let (mut mi, mut moh, mut mw) = it
            .find(|i| reals[*i].weight > 0)
            .map(|i| (i, stats[i].overhead(), reals[i].weight))?;
        for i in it {
            let (w, doh) = (reals[i].weight, stats[i].overhead());
            if w > 0 && ratio_gt(doh, mw, moh, w) {
                (mi, moh, mw) = (i, doh, w);
            }
        }
        Some(mi)
    }
}

/// lblcr: a set of reals per destination.
#[derive(Debug, Clone)]
pub(super) struct Lblcr {
    t: AddrTable<Set>,
}

impl Lblcr {
    pub(super) fn new() -> Lblcr {
        Lblcr {
            t: AddrTable::new(),
        }
    }

    /// ip_vs_lblcr_schedule: the least loaded available member of the
    /// destination's set (ip_vs_dest_set_min), unless it is
    /// locality-overloaded; then wlc's choice, added to the set. A set of
    /// more than one that has not changed for `lblcr_expiration` loses its
    /// most loaded member first.
    pub(super) fn schedule(
        &mut self,
        reals: &[Real],
        stats: &[RealStats],
        dst: Ipv4Addr,
        now: u32,
    ) -> Option<usize> {
        self.t.sweep(now);
        let key = dst.to_bits();
        let Some(i) = self.t.find(key) else {
            let d = weighted_least(reals, stats, RealStats::overhead)?;
            let mut set = Set::default();
            set.insert(d, now);
            self.t.insert(key, now, set);
            return Some(d);
        };
        let slot = &mut self.t.slots[i];
        slot.lastuse = now;
        let set = &mut slot.val;
        let least = weighted_least_of(reals, stats, set.members(), RealStats::overhead);
        if set.len > 1 && now > set.lastmod.saturating_add(EXPIRATION_S) {
            if let Some(m) = set.max(reals, stats) {
                set.erase(m, now);
            }
        }
        if let Some(d) = least {
            if !locality_overloaded(reals, stats, d) {
                return Some(d);
            }
        }
        let d = weighted_least(reals, stats, RealStats::overhead)?;
        set.insert(d, now);
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::sched::twos::Rng;

    fn dst(i: u32) -> Ipv4Addr {
        Ipv4Addr::from_bits(0x0a00_0000 + i)
    }

    /// A key whose home slot is `h` (the multiplier is odd, so it has an
    /// inverse mod 2^32).
    fn key_with_home(h: usize, low: u32) -> u32 {
        let mut inv = GOLDEN;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(GOLDEN.wrapping_mul(inv)));
        }
        assert_eq!(GOLDEN.wrapping_mul(inv), 1);
        ((h as u32) << (32 - SLOT_BITS) | (low & ((1 << (32 - SLOT_BITS)) - 1))).wrapping_mul(inv)
    }

    #[test]
    fn table_insert_find_remove_keeps_every_entry_reachable() {
        // 3000 keys on four home slots around the end of the table: one
        // long probe run that wraps past slot 0.
        let homes = [SLOTS - 2, SLOTS - 1, 0, 1];
        assert_eq!(home(key_with_home(SLOTS - 1, 77)), SLOTS - 1);
        let mut t: AddrTable<u16> = AddrTable::new();
        let mut rng = Rng::new(9);
        let mut keys: Vec<u32> = Vec::new();
        while keys.len() < 3000 {
            let h = homes[keys.len() % 4];
            let k = key_with_home(h, rng.next() as u32);
            if k != FREE && t.find(k).is_none() {
                assert!(t.insert(k, 0, keys.len() as u16));
                keys.push(k);
            }
        }
        for (n, k) in keys.iter().enumerate() {
            assert_eq!(t.find(*k).map(|i| t.slots[i].val), Some(n as u16));
        }
        // Remove every third, then check the rest.
        for k in keys.iter().step_by(3) {
            let i = t.find(*k).unwrap();
            t.remove_at(i);
        }
        for (n, k) in keys.iter().enumerate() {
            let found = t.find(*k).map(|i| t.slots[i].val);
            if n % 3 == 0 {
                assert_eq!(found, None);
            } else {
                assert_eq!(found, Some(n as u16), "key {k:#x}");
            }
        }
        assert_eq!(t.len, 2000);
        assert_eq!(t.slots.iter().filter(|s| s.key != FREE).count(), 2000);
    }

    #[test]
    fn table_is_bounded() {
        let mut t: AddrTable<u16> = AddrTable::new();
        for k in 1..=MAX_ENTRIES as u32 {
            assert!(t.insert(k, 0, 0));
        }
        assert!(!t.insert(MAX_ENTRIES as u32 + 1, 0, 0));
        assert!(!t.insert(FREE, 0, 0));
        assert_eq!(t.find(FREE), None);
    }

    #[test]
    fn sweep_expires_after_a_day_or_six_minutes_under_pressure() {
        let mut t: AddrTable<u16> = AddrTable::new();
        t.insert(1, 100, 0);
        t.insert(2, 200, 0);
        let full_pass = |t: &mut AddrTable<u16>, now| {
            for _ in 0..SLOTS / SWEEP + 1 {
                t.sweep(now);
            }
        };
        full_pass(&mut t, 100 + EXPIRATION_S - 1);
        assert_eq!(t.len, 2);
        full_pass(&mut t, 100 + EXPIRATION_S);
        assert!(t.find(1).is_none() && t.find(2).is_some());
        // Over three quarters full: six minutes idle is enough.
        let mut t: AddrTable<u16> = AddrTable::new();
        let n = MAX_ENTRIES * 3 / 4 + 100;
        for k in 1..=n as u32 {
            t.insert(k, if k <= 20 { 0 } else { 1000 }, 0);
        }
        full_pass(&mut t, ENTRY_TIMEOUT_S);
        assert_eq!(t.len, n - 20);
        assert!(t.find(20).is_none() && t.find(21).is_some());
        // Below the mark, hours idle are not enough.
        let mut t: AddrTable<u16> = AddrTable::new();
        for k in 1..=100 {
            t.insert(k, 0, 0);
        }
        full_pass(&mut t, 10 * ENTRY_TIMEOUT_S);
        assert_eq!(t.len, 100);
    }

    #[test]
    fn lblc_keeps_a_destination_on_its_real() {
        let r = reals(&[1, 1, 1]);
        let st = stats(3);
        let mut s = Lblc::new();
        // New destinations go where wlc says, and stay there.
        let first: Vec<usize> = (0..3)
            .map(|k| {
                let d = s.schedule(&r, &st, dst(k), 0).unwrap();
                st[d].conn_bound(&r[d], false);
                d
            })
            .collect();
        assert_eq!(first, [0, 1, 2]);
        for _ in 0..10 {
            let d = s.schedule(&r, &st, dst(0), 1).unwrap();
            assert_eq!(d, 0);
            st[d].conn_bound(&r[d], false);
        }
        assert_eq!(st[0].inactive(), 11, "locality beats balance");
    }

    #[test]
    fn lblc_moves_an_overloaded_destination() {
        let r = reals(&[1, 1]);
        // Real 0 has an active connection: wlc sends a new destination to
        // the idle real 1.
        let st = loaded(&[(1, 0), (0, 0)]);
        let mut s = Lblc::new();
        assert_eq!(s.schedule(&r, &st, dst(5), 0), Some(1), "wlc: 256 vs 0");
        st[1].conn_bound(&r[1], true);
        st[1].conn_bound(&r[1], true);
        // Real 1 now has 2 active, more than its weight, but no real has
        // fewer than half its weight in use: it stays.
        assert_eq!(s.schedule(&r, &st, dst(5), 0), Some(1));
        // Real 0's connection ends: 0*2 < 1, real 1 is overloaded: wlc
        // picks real 0 and the entry follows.
        st[0].conn_unbound(&r[0], true);
        assert_eq!(s.schedule(&r, &st, dst(5), 0), Some(0));
        st[0].conn_bound(&r[0], true);
        st[0].conn_bound(&r[0], true);
        st[0].conn_bound(&r[0], true);
        assert_eq!(s.schedule(&r, &st, dst(5), 0), Some(0), "cached");
    }

    #[test]
    fn lblc_quiescent_real_is_rescheduled_threshold_flag_is_not() {
        let mut r = reals(&[1, 1]);
        let st = stats(2);
        let mut s = Lblc::new();
        assert_eq!(s.schedule(&r, &st, dst(1), 0), Some(0));
        // The threshold flag: the kernel's cache hit does not check it.
        let mut capped = r[0];
        capped.upper_threshold = 1;
        st[0].conn_bound(&capped, false);
        assert!(st[0].is_overloaded());
        assert_eq!(s.schedule(&r, &st, dst(1), 0), Some(0));
        // But a new destination is not sent there.
        assert_eq!(s.schedule(&r, &st, dst(2), 0), Some(1));
        // Weight 0: rescheduled, and the entry now names real 1.
        r[0].weight = 0;
        assert_eq!(s.schedule(&r, &st, dst(1), 0), Some(1));
        r[0].weight = 1;
        assert_eq!(s.schedule(&r, &st, dst(1), 0), Some(1));
    }

    #[test]
    fn lblc_full_table_still_schedules() {
        let r = reals(&[1]);
        let st = stats(1);
        let mut s = Lblc::new();
        for k in 0..MAX_ENTRIES as u32 + 100 {
            assert_eq!(s.schedule(&r, &st, dst(k), 0), Some(0));
        }
        assert_eq!(s.t.len, MAX_ENTRIES);
    }

    #[test]
    fn lblcr_grows_the_set_and_balances_inside_it() {
        let r = reals(&[1, 1, 1]);
        let st = loaded(&[(0, 0), (0, 0), (0, 0)]);
        let mut s = Lblcr::new();
        assert_eq!(s.schedule(&r, &st, dst(1), 0), Some(0));
        // Real 0 gets 2 active connections while real 2 is idle: real 0 is
        // locality-overloaded, wlc adds real 1 (the first idle one).
        st[0].conn_bound(&r[0], true);
        st[0].conn_bound(&r[0], true);
        assert_eq!(s.schedule(&r, &st, dst(1), 10), Some(1));
        let set = s.t.slots[s.t.find(dst(1).to_bits()).unwrap()].val;
        assert_eq!(set.members().collect::<Vec<_>>(), [1, 0], "newest first");
        assert_eq!(set.lastmod, 10);
        // Inside the set the least loaded member serves; real 2, outside
        // it, is not used although idle, while no member is overloaded.
        st[1].conn_bound(&r[1], true);
        st[0].conn_unbound(&r[0], true);
        st[0].conn_unbound(&r[0], true);
        assert_eq!(s.schedule(&r, &st, dst(1), 20), Some(0));
        st[0].conn_bound(&r[0], true);
        st[0].conn_bound(&r[0], false);
        // 257 vs 256: real 1.
        assert_eq!(s.schedule(&r, &st, dst(1), 20), Some(1));
    }

    #[test]
    fn lblcr_shrinks_an_unchanged_set_after_expiration() {
        let r = reals(&[1, 1, 1]);
        let st = stats(3);
        let mut s = Lblcr::new();
        let mut set = Set::default();
        set.insert(0, 0);
        set.insert(2, 0);
        // Last used recently (so not expired), last changed at time 0.
        assert!(s.t.insert(dst(1).to_bits(), EXPIRATION_S - 10, set));
        // Real 2 is busier: after a day without change it leaves the set.
        st[2].conn_bound(&r[2], false);
        assert_eq!(s.schedule(&r, &st, dst(1), EXPIRATION_S), Some(0));
        let set = |s: &Lblcr| s.t.slots[s.t.find(dst(1).to_bits()).unwrap()].val;
        assert_eq!(set(&s).len, 2, "not yet: needs now > lastmod + expiration");
        assert_eq!(s.schedule(&r, &st, dst(1), EXPIRATION_S + 1), Some(0));
        assert_eq!(set(&s).members().collect::<Vec<_>>(), [0]);
        assert_eq!(set(&s).lastmod, EXPIRATION_S + 1);
        // A set of one is never shrunk.
        assert_eq!(s.schedule(&r, &st, dst(1), 2 * EXPIRATION_S), Some(0));
        assert_eq!(set(&s).len, 1);
    }

    #[test]
    fn lblcr_set_is_bounded_and_skips_quiescent_members() {
        let mut set = Set::default();
        for d in 0..SET_MAX + 3 {
            set.insert(d, 1);
        }
        assert_eq!(usize::from(set.len), SET_MAX);
        set.insert(3, 2);
        assert_eq!(set.lastmod, 1, "a member is not inserted twice");
        set.erase(5, 3);
        assert_eq!(usize::from(set.len), SET_MAX - 1);
        assert!(set.members().all(|m| m != 5));
        // ip_vs_dest_set_max ignores members without weight.
        let r = reals(&[1, 0]);
        let st = loaded(&[(0, 1), (9, 9)]);
        let mut s2 = Set::default();
        s2.insert(0, 0);
        s2.insert(1, 0);
        assert_eq!(s2.max(&r, &st), Some(0));
        assert_eq!(
            weighted_least_of(&r, &st, s2.members(), RealStats::overhead),
            Some(0)
        );
    }
}
