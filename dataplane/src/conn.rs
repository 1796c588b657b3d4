//! The per-worker connection table.
//!
//! Design note: each worker owns one table; nothing here is shared or
//! locked. Capacity is fixed at creation and every byte is allocated then:
//!
//! - **Entries** (32 bytes, aligned to 32, so one never straddles two
//!   cache lines and a lookup misses at most once on it) live in one
//!   array. Their wheel links (8 bytes) live in a second, parallel array
//!   that no packet of an established connection touches: only inserts,
//!   removals, refiles and expiry do. Free entries are chained through
//!   their `next` link, so the free list costs no memory.
//! - **Index**: cache-line buckets of 7 slots (32-bit signature + 32-bit
//!   entry index) plus an overflow flag. A NAT connection is indexed twice,
//!   by the client's tuple and by the real server's reply tuple, so both
//!   directions find it in one lookup; DR and IP-IP connections once. The
//!   bucket count is sized for 80 % slot load at full NAT capacity and is
//!   not a power of two (a multiply-shift maps hashes onto it). Each tuple
//!   has two candidate buckets and goes to the emptier one (two-choice
//!   hashing keeps 7-slot buckets usable at that load, where linear
//!   probing alone refused 1.7 % of inserts in a test); only when both are
//!   full does it spill past the first.
//! - **Expiry**: a timer wheel of [`WHEEL_SLOTS`] one-second slots, each a
//!   circular doubly linked list through the entries' links (the slots'
//!   sentinels sit in the links array after the last entry's).
//!   Refreshing a connection to a later time only rewrites its `expires`;
//!   when its slot comes round, an entry whose time has not come is moved
//!   to the slot of its new time. A connection whose
//!   time moves earlier (an RST puts it in CLOSE, a FIN in TIME_WAIT) is
//!   moved to its new slot at once by [`ConnTable::refile`], so it expires
//!   at its new time, as the kernel's `__ip_vs_conn_put_timer` re-arms the
//!   timer with the new state's timeout. So advancing the clock costs the
//!   entries that expire plus those that were refreshed since their slot
//!   was set — never a scan of the table.
//!
//! What may fail, and why that is acceptable: an insert fails when no entry
//! is free or all [`MAX_PROBE`] buckets of a tuple are full; the caller
//! counts `conn_table_full` and drops the *new* connection while
//! established ones keep working, so a SYN flood cannot evict them.
//! Overflow flags are never cleared: a bucket that once spilled sends
//! lookups one bucket further, bounded by [`MAX_PROBE`].

use crate::model::ForwardMethod;
pub use crate::model::{ConnState, Timeouts, Tuple};
use core::net::Ipv4Addr;

/// Buckets an insert spills over at most, counting the first candidate.
pub const MAX_PROBE: usize = 4;
/// Timer wheel size in one-second slots.
pub const WHEEL_SLOTS: u32 = 1024;
const SLOTS: usize = 7;
const EMPTY: u32 = u32::MAX;
const NIL: u32 = u32::MAX;

/// Which way a packet travels on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to VIP.
    In,
    /// Real server back to the client (NAT only).
    Out,
}

/// Connection flags (IPVS `IP_VS_CONN_F_*` equivalents).
pub mod flags {
    /// Counted as inactive on its real server.
    pub const INACTIVE: u8 = 1;
    /// No reply seen through the director (IPVS NOOUTPUT): DR and IP-IP,
    /// whose state follows the INPUT-ONLY table.
    pub const NO_OUTPUT: u8 = 2;
    /// A persistence template, not a connection.
    pub const TEMPLATE: u8 = 4;
    /// Inserted from a sync message ([`crate::rings::Command::InsertConn`]),
    /// as IPVS's `IP_VS_CONN_F_SYNC`: a sync master does not send it back.
    /// The worker clears it when a packet of the entry passes (the entry
    /// is then this director's).
    pub const SYNCED: u8 = 8;
}

/// One connection: 32 bytes (the table keeps each on a 32-byte boundary,
/// so two share a cache line and none straddles two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Conn {
    /// Client address.
    pub client: Ipv4Addr,
    /// Virtual IP (or a firewall mark, for fwmark templates).
    pub vip: Ipv4Addr,
    /// Real server address.
    pub rip: Ipv4Addr,
    /// Expiry time, seconds on the worker's clock.
    pub expires: u32,
    /// Client port.
    pub cport: u16,
    /// Virtual port.
    pub vport: u16,
    /// Real server port.
    pub rport: u16,
    /// Service id in the snapshot it was scheduled by.
    pub service: u16,
    /// Real index in that service.
    pub real: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Forwarding method.
    pub method: ForwardMethod,
    /// State.
    pub state: ConnState,
    /// [`flags`].
    pub flags: u8,
}

const _: () = assert!(core::mem::size_of::<Conn>() == 32);

/// A [`Conn`] on a 32-byte boundary, as the table stores it. The
/// alignment is the array's, not `Conn`'s own: a `Conn` aligned to 32
/// would make every copy of one to the stack realign the stack (callgrind:
/// 6 more instructions a NAT packet).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
struct Aligned(Conn);

const _: () = assert!(core::mem::size_of::<Aligned>() == 32);

/// An entry's place in a list: its timer-wheel slot's, or the free list
/// (`next` only). Kept apart from [`Conn`], by the same index.
#[derive(Debug, Clone, Copy)]
struct Link {
    next: u32,
    prev: u32,
}

const UNLINKED: Link = Link {
    next: NIL,
    prev: NIL,
};

impl Conn {
    /// A new connection record, not yet linked anywhere.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        t: &Tuple,
        rip: Ipv4Addr,
        rport: u16,
        service: u16,
        real: u16,
        method: ForwardMethod,
        state: ConnState,
        expires: u32,
    ) -> Conn {
        Conn {
            client: t.src,
            vip: t.dst,
            rip,
            expires,
            cport: t.sport,
            vport: t.dport,
            rport,
            service,
            real,
            proto: t.proto,
            method,
            state,
            // ip_vs_bind_dest: every new connection starts INACTIVE, and
            // NOOUTPUT unless NAT (__ip_vs_update_dest).
            flags: flags::INACTIVE
                | if method == ForwardMethod::Nat {
                    0
                } else {
                    flags::NO_OUTPUT
                },
        }
    }

    /// The tuple of the client's packets.
    pub fn in_tuple(&self) -> Tuple {
        Tuple {
            proto: self.proto,
            src: self.client,
            sport: self.cport,
            dst: self.vip,
            dport: self.vport,
        }
    }

    /// The tuple of the real server's replies (meaningful for NAT).
    pub fn out_tuple(&self) -> Tuple {
        Tuple {
            proto: self.proto,
            src: self.rip,
            sport: self.rport,
            dst: self.client,
            dport: self.cport,
        }
    }

    /// Where a packet travelling `dir` is going: the real server for the
    /// client's packets, the client for the replies.
    pub fn destination(&self, dir: Direction) -> Ipv4Addr {
        match dir {
            Direction::In => self.rip,
            Direction::Out => self.client,
        }
    }

    fn has_out(&self) -> bool {
        self.method == ForwardMethod::Nat && self.flags & flags::TEMPLATE == 0
    }

    fn matches(&self, t: &Tuple) -> Option<Direction> {
        if *t == self.in_tuple() {
            Some(Direction::In)
        } else if self.has_out() && *t == self.out_tuple() {
            Some(Direction::Out)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    sig: [u32; SLOTS],
    overflow: u32,
    idx: [u32; SLOTS],
    _pad: u32,
}

const _: () = assert!(core::mem::size_of::<Bucket>() == 64);

impl Bucket {
    const EMPTY: Bucket = Bucket {
        sig: [0; SLOTS],
        overflow: 0,
        idx: [EMPTY; SLOTS],
        _pad: 0,
    };
}

/// Why an insert failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// No free entry, or the probe window for a tuple is full.
    Full,
}

const FREE_CONN: Conn = Conn {
    client: Ipv4Addr::UNSPECIFIED,
    vip: Ipv4Addr::UNSPECIFIED,
    rip: Ipv4Addr::UNSPECIFIED,
    expires: 0,
    cport: 0,
    vport: 0,
    rport: 0,
    service: 0,
    real: 0,
    proto: 0,
    method: ForwardMethod::Nat,
    state: ConnState::Free,
    flags: 0,
};

/// Where a tuple may be indexed: its signature and its two candidate
/// buckets ([`ConnTable::probe`]), and, once
/// [`ConnTable::prefetch_entries`] has looked, the slot whose signature
/// matched. Meaningful only to the table that made it, and only until
/// that table is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Never 0 (an empty slot's), which also gives `Option<Probe>` its
    /// niche: 16 bytes with the hint.
    sig: core::num::NonZeroU32,
    b1: u32,
    b2: u32,
    /// The matching slot: [`NO_HINT`], or the slot number plus
    /// [`SLOTS`] when it is in the second candidate bucket.
    hint: u8,
}

/// [`Probe::hint`] when no slot of either bucket matched.
const NO_HINT: u8 = u8::MAX;

impl Probe {
    /// The bucket and slot noted by [`ConnTable::prefetch_entries`], if
    /// it noted one.
    #[inline(always)]
    fn hinted_slot(&self) -> Option<(u32, usize)> {
        let h = usize::from(self.hint);
        if self.hint == NO_HINT {
            None
        } else if h < SLOTS {
            Some((self.b1, h))
        } else {
            Some((self.b2, h - SLOTS))
        }
    }
}

const _: () = assert!(core::mem::size_of::<Option<Probe>>() == 16);

/// `n` copies of `value` in one allocation, `advise`d (address, bytes)
/// between its reservation and its first write.
fn filled<T: Copy>(n: usize, value: T, advise: &mut impl FnMut(*mut u8, usize)) -> Box<[T]> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    advise(v.as_mut_ptr().cast::<u8>(), n * core::mem::size_of::<T>());
    v.resize(n, value);
    v.into_boxed_slice()
}

/// A fixed-capacity connection table with timer-wheel expiry.
#[derive(Debug)]
pub struct ConnTable {
    /// `cap` entries.
    entries: Box<[Aligned]>,
    /// The entries' links, then those of `WHEEL_SLOTS` slot sentinels,
    /// then that of the sentinel of the list being drained.
    links: Box<[Link]>,
    cap: u32,
    len: u32,
    free: u32,
    buckets: Box<[Bucket]>,
    seed: u64,
    /// Last second fully processed by [`ConnTable::expire`].
    tick: u32,
    /// True while the slot of `tick + 1` is being drained.
    draining: bool,
    /// Entries examined by expiry since creation (for tests and metrics).
    expiry_visits: u64,
}

impl ConnTable {
    /// A table for `capacity` connections, clock at `now` seconds; `seed`
    /// keys the hash so an attacker cannot aim tuples at one bucket.
    pub fn new(capacity: u32, seed: u64, now: u32) -> ConnTable {
        ConnTable::with_memory_advice(capacity, seed, now, |_, _| {})
    }

    /// [`ConnTable::new`], calling `advise` with the address and length in
    /// bytes of each of its three large arrays (entries, links, buckets)
    /// after they
    /// are reserved and before they are first written: the platform's
    /// chance to ask for huge pages (`l4vs_dpdk::advise_huge_pages`).
    pub fn with_memory_advice(
        capacity: u32,
        seed: u64,
        now: u32,
        mut advise: impl FnMut(*mut u8, usize),
    ) -> ConnTable {
        let cap = capacity.clamp(1, u32::MAX - WHEEL_SLOTS - 2);
        let n = cap as usize + WHEEL_SLOTS as usize + 1;
        let entries = filled(cap as usize, Aligned(FREE_CONN), &mut advise);
        let mut links = filled(n, UNLINKED, &mut advise);
        for i in 0..cap {
            links[i as usize].next = if i + 1 < cap { i + 1 } else { NIL };
        }
        for s in cap..n as u32 {
            links[s as usize] = Link { next: s, prev: s };
        }
        // 2 index slots per NAT connection at 80 % slot load.
        let nb =
            ((u64::from(cap) * 2 * 10).div_ceil(SLOTS as u64 * 8)).max(MAX_PROBE as u64) as usize;
        ConnTable {
            entries,
            links,
            cap,
            len: 0,
            free: 0,
            buckets: filled(nb, Bucket::EMPTY, &mut advise),
            seed,
            tick: now,
            draining: false,
            expiry_visits: 0,
        }
    }

    /// Connections (and templates) in the table.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fixed capacity.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// Bytes allocated per connection of capacity.
    pub fn bytes_per_conn(&self) -> f64 {
        let bytes = self.entries.len() * core::mem::size_of::<Aligned>()
            + self.links.len() * core::mem::size_of::<Link>()
            + self.buckets.len() * core::mem::size_of::<Bucket>();
        bytes as f64 / f64::from(self.cap)
    }

    /// Entries examined by expiry so far.
    pub fn expiry_visits(&self) -> u64 {
        self.expiry_visits
    }

    #[inline]
    fn hash(&self, t: &Tuple) -> u64 {
        // MurmurHash3's 64-bit finalizer over each half of the tuple:
        // every input bit reaches every output bit, so tuples that differ
        // in one port or one address byte (sequential clients, a scan)
        // spread over all buckets.
        fn fmix(mut k: u64) -> u64 {
            k ^= k >> 33;
            k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
            k ^= k >> 33;
            k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            k ^ (k >> 33)
        }
        let a = (u64::from(t.src.to_bits()) << 32) | u64::from(t.dst.to_bits());
        let b = (u64::from(t.sport) << 32) | (u64::from(t.dport) << 16) | u64::from(t.proto);
        fmix(fmix(a ^ self.seed) ^ b)
    }

    /// The signature of a tuple and its two candidate buckets.
    #[inline]
    fn locate(&self, t: &Tuple) -> (u32, usize, usize) {
        let h = self.hash(t);
        let nb = self.buckets.len() as u64;
        let b1 = ((h & 0xffff_ffff) * nb) >> 32;
        let g = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut b2 = ((g >> 32) * nb) >> 32;
        if b2 == b1 {
            b2 = if b1 + 1 == nb { 0 } else { b1 + 1 };
        }
        (((h >> 32) as u32) | 1, b1 as usize, b2 as usize)
    }

    #[inline]
    fn bucket_at(&self, b0: usize, p: usize) -> usize {
        let b = b0 + p;
        if b >= self.buckets.len() {
            b - self.buckets.len()
        } else {
            b
        }
    }

    /// Stage one of a burst's prefetch: where `t` may be indexed, and the
    /// addresses of its two candidate buckets (one cache line each), for
    /// the platform's prefetch. Reads nothing of the table but its size.
    #[inline]
    pub fn probe(&self, t: &Tuple) -> (Probe, [*const u8; 2]) {
        let (sig, b1, b2) = self.locate(t);
        let lines = [
            core::ptr::from_ref(&self.buckets[b1]).cast::<u8>(),
            core::ptr::from_ref(&self.buckets[b2]).cast::<u8>(),
        ];
        (
            Probe {
                sig: core::num::NonZeroU32::new(sig).expect("signatures have their low bit set"),
                b1: b1 as u32,
                b2: b2 as u32,
                hint: NO_HINT,
            },
            lines,
        )
    }

    /// Stage two, once the buckets of `probe` (made by this table) are in
    /// cache: calls `prefetch` with the address of the first entry its
    /// signature matches in them (one cache line: entries are 32 bytes,
    /// aligned to 32), so that a later [`ConnTable::lookup_probed`] finds the
    /// entry in cache too, and notes that slot in `probe` so that the
    /// lookup starts there. The first match is nearly always the entry:
    /// signatures are 31 bits. As `rte_hash_lookup_bulk`: buckets of the
    /// whole burst first, then entries.
    #[inline]
    pub fn prefetch_entries(&self, probe: &mut Probe, prefetch: impl Fn(*const u8)) {
        let sig = probe.sig.get();
        let matching = [probe.b1, probe.b2]
            .into_iter()
            .zip([0, SLOTS as u8])
            .filter_map(|(b, first)| Some((self.buckets.get(b as usize)?, first)))
            .find_map(|(bucket, first)| {
                let s = bucket.sig.iter().position(|&s| s == sig)?;
                Some((
                    &self.entries.get(bucket.idx[s] as usize)?.0,
                    first + s as u8,
                ))
            });
        if let Some((e, hint)) = matching {
            probe.hint = hint;
            prefetch(core::ptr::from_ref(e).cast::<u8>());
        }
    }

    #[inline]
    fn find_in(&self, b: usize, sig: u32, t: &Tuple) -> Option<(u32, Direction)> {
        let b = &self.buckets[b];
        for s in 0..SLOTS {
            if b.sig[s] == sig {
                let i = b.idx[s];
                if let Some(d) = self.entries[i as usize].0.matches(t) {
                    return Some((i, d));
                }
            }
        }
        None
    }

    /// Finds the connection of a packet and the way it travels: in its
    /// first or its second candidate bucket, or, where the first one
    /// overflowed, in the buckets after it.
    #[inline]
    pub fn lookup(&self, t: &Tuple) -> Option<(u32, Direction)> {
        let (sig, b1, b2) = self.locate(t);
        self.lookup_at(t, sig, b1, b2)
    }

    /// [`ConnTable::lookup`] where [`ConnTable::probe`] of this table
    /// already located `t`. `probe` must come from this table and the
    /// same tuple: with another tuple's, the tuple compare still rejects
    /// every wrong entry, but the right one may be missed (and the caller
    /// would insert a duplicate); another table's may index past the
    /// buckets and panic. Probes stay valid across inserts and removals:
    /// the buckets never move, and the slot [`ConnTable::prefetch_entries`]
    /// noted is taken only while it still holds the signature and an
    /// entry of `t` (else the buckets are searched as by
    /// [`ConnTable::lookup`]). Where two entries match `t` (two NAT
    /// connections of one client port to two VIPs, scheduled to the same
    /// real and port, share a reply tuple) the noted one is returned,
    /// which may not be the one `lookup` returns: the table does not
    /// choose between such entries either way. Debug builds check the
    /// probe.
    #[inline]
    pub fn lookup_probed(&self, t: &Tuple, probe: Probe) -> Option<(u32, Direction)> {
        debug_assert_eq!(
            (probe.sig, probe.b1, probe.b2),
            {
                let p = self.probe(t).0;
                (p.sig, p.b1, p.b2)
            },
            "a probe of another tuple or table"
        );
        let sig = probe.sig.get();
        if let Some((b, s)) = probe.hinted_slot() {
            let bucket = &self.buckets[b as usize];
            if bucket.sig[s] == sig {
                let i = bucket.idx[s];
                if let Some(d) = self.entries[i as usize].0.matches(t) {
                    return Some((i, d));
                }
            }
        }
        self.lookup_at(t, sig, probe.b1 as usize, probe.b2 as usize)
    }

    #[inline(always)]
    fn lookup_at(&self, t: &Tuple, sig: u32, b1: usize, b2: usize) -> Option<(u32, Direction)> {
        if let Some(hit) = self
            .find_in(b1, sig, t)
            .or_else(|| self.find_in(b2, sig, t))
        {
            return Some(hit);
        }
        let mut b = b1;
        for p in 1..MAX_PROBE {
            if self.buckets[b].overflow == 0 {
                break;
            }
            b = self.bucket_at(b1, p);
            if let Some(hit) = self.find_in(b, sig, t) {
                return Some(hit);
            }
        }
        None
    }

    /// The entry at `i`.
    #[inline]
    pub fn get(&self, i: u32) -> &Conn {
        &self.entries[i as usize].0
    }

    /// The entry at `i`, mutable. Changing `expires` is how a connection is
    /// refreshed; a caller that moves it earlier must call
    /// [`ConnTable::refile`] afterwards. Tuples, method and the
    /// [`flags::TEMPLATE`] flag must not be changed: they decide which keys
    /// index the entry.
    #[inline]
    pub fn get_mut(&mut self, i: u32) -> &mut Conn {
        &mut self.entries[i as usize].0
    }

    fn free_slots(&self, b: usize) -> usize {
        self.buckets[b].idx.iter().filter(|x| **x == EMPTY).count()
    }

    fn put(&mut self, b: usize, sig: u32, i: u32) {
        let bucket = &mut self.buckets[b];
        if let Some(s) = bucket.idx.iter().position(|x| *x == EMPTY) {
            bucket.sig[s] = sig;
            bucket.idx[s] = i;
        }
    }

    /// Two-choice placement: the emptier candidate bucket takes the tuple;
    /// only when both are full does it spill past the first, which is then
    /// flagged so lookups follow.
    fn index_insert(&mut self, t: &Tuple, i: u32) -> bool {
        let (sig, b1, b2) = self.locate(t);
        let (f1, f2) = (self.free_slots(b1), self.free_slots(b2));
        if f1 > 0 || f2 > 0 {
            self.put(if f1 >= f2 { b1 } else { b2 }, sig, i);
            return true;
        }
        let mut b = b1;
        for p in 1..MAX_PROBE {
            self.buckets[b].overflow = 1;
            b = self.bucket_at(b1, p);
            if self.free_slots(b) > 0 {
                self.put(b, sig, i);
                return true;
            }
        }
        false
    }

    fn index_remove(&mut self, t: &Tuple, i: u32) {
        let (sig, b1, b2) = self.locate(t);
        // The two candidates, then where an insert may have spilled.
        let mut order = [b1; MAX_PROBE + 1];
        order[1] = b2;
        for p in 1..MAX_PROBE {
            order[p + 1] = self.bucket_at(b1, p);
        }
        for b in order {
            let bucket = &mut self.buckets[b];
            for s in 0..SLOTS {
                if bucket.sig[s] == sig && bucket.idx[s] == i {
                    bucket.sig[s] = 0;
                    bucket.idx[s] = EMPTY;
                    return;
                }
            }
        }
    }

    /// Files entry `i` (in no list) under the wheel slot of its `expires`;
    /// a time not after the slot being drained joins the drain list, so it
    /// is examined in this pass and not a whole turn later.
    fn file(&mut self, i: u32) {
        let expires = self.entries[i as usize].0.expires;
        let head = if self.draining && expires <= self.tick + 1 {
            self.drain_sentinel()
        } else {
            self.slot_sentinel(expires)
        };
        self.link_after(head, i);
    }

    /// Moves connection `i` to the wheel slot of its current `expires`:
    /// call it when a state change made `expires` earlier than it was, so
    /// the entry expires then and not when its old slot comes round. O(1).
    pub fn refile(&mut self, i: u32) {
        debug_assert!(i < self.cap && self.entries[i as usize].0.state != ConnState::Free);
        self.unlink(i);
        self.file(i);
    }

    fn slot_sentinel(&self, expires: u32) -> u32 {
        // Never in the past: a slot behind the clock would wait a whole turn.
        let t = expires.max(self.tick + 1);
        self.cap + t % WHEEL_SLOTS
    }

    fn drain_sentinel(&self) -> u32 {
        self.cap + WHEEL_SLOTS
    }

    fn link_after(&mut self, head: u32, i: u32) {
        let next = self.links[head as usize].next;
        self.links[i as usize] = Link { next, prev: head };
        self.links[next as usize].prev = i;
        self.links[head as usize].next = i;
    }

    fn unlink(&mut self, i: u32) {
        let Link { next, prev } = self.links[i as usize];
        self.links[prev as usize].next = next;
        self.links[next as usize].prev = prev;
    }

    /// Inserts a new connection, indexed by its in tuple and, for NAT, its
    /// out tuple. The caller has checked it is not there already.
    ///
    /// # Errors
    /// [`InsertError::Full`], leaving the table unchanged.
    pub fn insert(&mut self, c: Conn) -> Result<u32, InsertError> {
        let (i, reply_key) = self.insert_but_reply_key(c)?;
        if reply_key && !self.insert_reply_key(i) {
            self.remove(i);
            return Err(InsertError::Full);
        }
        Ok(i)
    }

    /// [`ConnTable::insert`] but for a NAT connection's reply key (its out
    /// tuple): the entry, indexed by its in tuple, and true when the reply
    /// key is still to be added by [`ConnTable::insert_reply_key`]. Until
    /// then the real server's replies do not find it, so a caller adds the
    /// key before anything it forwards can be answered (the lcore loop: at
    /// the end of each burst, before it receives again), having prefetched
    /// its buckets ([`ConnTable::reply_key_lines`]) meanwhile.
    ///
    /// # Errors
    /// [`InsertError::Full`], leaving the table unchanged.
    pub fn insert_but_reply_key(&mut self, c: Conn) -> Result<(u32, bool), InsertError> {
        let i = self.free;
        if i == NIL {
            return Err(InsertError::Full);
        }
        let next_free = self.links[i as usize].next;
        self.entries[i as usize].0 = c;
        if !self.index_insert(&c.in_tuple(), i) {
            self.entries[i as usize].0 = FREE_CONN;
            return Err(InsertError::Full);
        }
        self.free = next_free;
        self.len += 1;
        self.file(i);
        Ok((i, c.has_out()))
    }

    /// The cache lines of the two buckets entry `i`'s reply key goes in
    /// (for the platform's prefetch).
    pub fn reply_key_lines(&self, i: u32) -> [*const u8; 2] {
        self.probe(&self.entries[i as usize].0.out_tuple()).1
    }

    /// Indexes entry `i` (from [`ConnTable::insert_but_reply_key`]) by its
    /// reply key. False when the index is full: the caller removes the
    /// entry ([`ConnTable::remove`] takes one without its reply key).
    pub fn insert_reply_key(&mut self, i: u32) -> bool {
        let t = self.entries[i as usize].0.out_tuple();
        self.index_insert(&t, i)
    }

    /// Removes the connection at `i` and returns it.
    pub fn remove(&mut self, i: u32) -> Conn {
        let c = self.entries[i as usize].0;
        debug_assert!(c.state != ConnState::Free && i < self.cap);
        self.index_remove(&c.in_tuple(), i);
        if c.has_out() {
            self.index_remove(&c.out_tuple(), i);
        }
        self.unlink(i);
        self.entries[i as usize].0 = FREE_CONN;
        self.links[i as usize] = Link {
            next: self.free,
            prev: NIL,
        };
        self.free = i;
        self.len -= 1;
        c
    }

    /// Removes the connections among entries `from..` for which `matches`
    /// holds, examining at most `budget` entries, and hands each to
    /// `on_remove` after removing it. Returns where to go on from, or
    /// `None` when the whole table has been examined: a flush of a million
    /// entries is spread over many calls between bursts instead of
    /// stopping a worker for milliseconds.
    pub fn remove_where(
        &mut self,
        from: u32,
        budget: usize,
        mut matches: impl FnMut(&Conn) -> bool,
        mut on_remove: impl FnMut(&Conn),
    ) -> Option<u32> {
        let end = from
            .saturating_add(budget.min(u32::MAX as usize) as u32)
            .min(self.cap);
        for i in from..end {
            let c = self.entries[i as usize].0;
            if c.state != ConnState::Free && matches(&c) {
                let gone = self.remove(i);
                on_remove(&gone);
            }
        }
        (end < self.cap).then_some(end)
    }

    /// Hands the entries in use to `visit`, from index `from` on,
    /// examining at most `budget` indexes; stops before an entry for which
    /// `visit` returns false. Returns where to go on from (that entry, or
    /// the first index not examined), or `None` once the whole table has
    /// been seen.
    pub fn visit(
        &self,
        from: u32,
        budget: usize,
        mut visit: impl FnMut(&Conn) -> bool,
    ) -> Option<u32> {
        let end = from
            .saturating_add(budget.min(u32::MAX as usize) as u32)
            .min(self.cap);
        for i in from..end {
            let c = &self.entries[i as usize].0;
            if c.state != ConnState::Free && !visit(c) {
                return Some(i);
            }
        }
        (end < self.cap).then_some(end)
    }

    /// The table's clock: the last second [`ConnTable::expire`] advanced
    /// to (what an entry's `expires` counts against).
    pub fn clock(&self) -> u32 {
        self.tick
    }

    /// Advances the clock to `now` (seconds), examining at most `budget`
    /// entries, and hands each expired connection to `on_expire` after
    /// removing it. Returns how many expired. Unfinished work (budget spent)
    /// continues on the next call.
    pub fn expire(
        &mut self,
        now: u32,
        mut budget: usize,
        mut on_expire: impl FnMut(&Conn),
    ) -> usize {
        let drain = self.drain_sentinel();
        let mut removed = 0;
        while self.tick < now {
            if !self.draining {
                // Move the whole slot of `tick + 1` to the drain list, so
                // entries re-linked into the same slot wait a full turn.
                let slot = self.cap + (self.tick + 1) % WHEEL_SLOTS;
                let Link {
                    next: first,
                    prev: last,
                } = self.links[slot as usize];
                if first != slot {
                    self.links[drain as usize] = Link {
                        next: first,
                        prev: last,
                    };
                    self.links[first as usize].prev = drain;
                    self.links[last as usize].next = drain;
                    self.links[slot as usize] = Link {
                        next: slot,
                        prev: slot,
                    };
                }
                self.draining = true;
            }
            loop {
                let i = self.links[drain as usize].next;
                if i == drain {
                    break;
                }
                if budget == 0 {
                    return removed;
                }
                budget -= 1;
                self.expiry_visits += 1;
                if self.entries[i as usize].0.expires <= now {
                    let c = self.remove(i);
                    on_expire(&c);
                    removed += 1;
                } else {
                    self.unlink(i);
                    let head =
                        self.slot_sentinel(self.entries[i as usize].0.expires.max(self.tick + 2));
                    self.link_after(head, i);
                }
            }
            self.draining = false;
            self.tick += 1;
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_advice_is_given_all_three_arrays_whole() {
        let mut seen = Vec::new();
        let t =
            ConnTable::with_memory_advice(1000, 1, 0, |addr, len| seen.push((addr as usize, len)));
        let entries = 1000 * core::mem::size_of::<Aligned>();
        let links = (1000 + WHEEL_SLOTS as usize + 1) * core::mem::size_of::<Link>();
        let buckets = t.buckets.len() * core::mem::size_of::<Bucket>();
        assert_eq!(
            seen,
            vec![
                (t.entries.as_ptr() as usize, entries),
                (t.links.as_ptr() as usize, links),
                (t.buckets.as_ptr() as usize, buckets)
            ]
        );
        assert_eq!(t.entries.as_ptr() as usize % 32, 0, "entries start on 32");
        assert!(t.is_empty());
        assert_eq!(t.capacity(), 1000);
    }

    fn tuple(i: u32) -> Tuple {
        Tuple {
            proto: 6,
            src: Ipv4Addr::from_bits(0x0a00_0000 + i),
            sport: (1024 + i % 60000) as u16,
            dst: Ipv4Addr::new(198, 18, 0, 100),
            dport: 80,
        }
    }

    fn conn(i: u32, method: ForwardMethod, expires: u32) -> Conn {
        Conn::new(
            &tuple(i),
            Ipv4Addr::new(198, 18, 2, 11),
            8080,
            0,
            0,
            method,
            ConnState::Established,
            expires,
        )
    }

    #[test]
    fn both_directions_find_a_nat_entry() {
        let mut t = ConnTable::new(16, 7, 0);
        let c = conn(1, ForwardMethod::Nat, 100);
        let i = t.insert(c).unwrap();
        assert_eq!(t.lookup(&c.in_tuple()), Some((i, Direction::In)));
        assert_eq!(t.lookup(&c.out_tuple()), Some((i, Direction::Out)));
        let d = conn(2, ForwardMethod::DirectRouting, 100);
        let j = t.insert(d).unwrap();
        assert_eq!(t.lookup(&d.in_tuple()), Some((j, Direction::In)));
        assert_eq!(
            t.lookup(&d.out_tuple()),
            None,
            "DR replies bypass the director"
        );
        assert_eq!(t.remove(i).in_tuple(), c.in_tuple());
        assert_eq!(t.lookup(&c.in_tuple()), None);
        assert_eq!(t.lookup(&c.out_tuple()), None);
        assert_eq!(t.len(), 1);
    }

    /// A NAT entry inserted without its reply key is found from the
    /// client's side only, from both once the key is added; removed before
    /// that, it leaves nothing behind. Other methods have no reply key.
    #[test]
    fn a_deferred_reply_key_is_found_once_added() {
        let mut t = ConnTable::new(16, 7, 0);
        let c = conn(1, ForwardMethod::Nat, 100);
        let (i, reply_key) = t.insert_but_reply_key(c).unwrap();
        assert!(reply_key);
        assert_eq!(t.lookup(&c.in_tuple()), Some((i, Direction::In)));
        assert_eq!(t.lookup(&c.out_tuple()), None);
        assert_eq!(t.reply_key_lines(i).len(), 2);
        assert!(t.insert_reply_key(i));
        assert_eq!(t.lookup(&c.out_tuple()), Some((i, Direction::Out)));

        let d = conn(2, ForwardMethod::Nat, 100);
        let (j, _) = t.insert_but_reply_key(d).unwrap();
        assert_eq!(t.remove(j).in_tuple(), d.in_tuple());
        assert_eq!(t.lookup(&d.in_tuple()), None);
        assert_eq!(t.lookup(&c.out_tuple()), Some((i, Direction::Out)));
        assert_eq!(t.len(), 1);

        let r = conn(3, ForwardMethod::DirectRouting, 100);
        assert!(!t.insert_but_reply_key(r).unwrap().1, "DR has no reply key");
    }

    /// The slot that stage two notes in a probe is taken only while it
    /// still holds the tuple's entry: after a removal, a reuse of the
    /// entry by another tuple, or a re-insert elsewhere, the lookup is
    /// the plain one's.
    #[test]
    fn a_probes_slot_hint_is_taken_only_while_it_holds() {
        let mut t = ConnTable::new(16, 7, 0);
        let probed = |t: &ConnTable, tuple: &Tuple| {
            let mut p = t.probe(tuple).0;
            t.prefetch_entries(&mut p, |_| {});
            p
        };
        let c = conn(1, ForwardMethod::Nat, 100);
        let i = t.insert(c).unwrap();
        for (tuple, dir) in [
            (c.in_tuple(), Direction::In),
            (c.out_tuple(), Direction::Out),
        ] {
            let p = probed(&t, &tuple);
            let (b, s) = p.hinted_slot().expect("stage two found the slot");
            assert_eq!(t.buckets[b as usize].idx[s], i, "the slot of the entry");
            assert_eq!(t.lookup_probed(&tuple, p), Some((i, dir)));
        }
        let before = probed(&t, &c.in_tuple());
        t.remove(i);
        assert_eq!(t.lookup_probed(&c.in_tuple(), before), None);
        // The freed entry taken by another connection.
        let d = conn(2, ForwardMethod::Nat, 100);
        assert_eq!(
            t.insert(d).unwrap(),
            i,
            "the free list gives the entry back"
        );
        assert_eq!(t.lookup_probed(&c.in_tuple(), before), None);
        // The first connection back, in another entry: the stale hint
        // leads to the search, which finds it.
        let k = t.insert(c).unwrap();
        assert_ne!(k, i);
        assert_eq!(
            t.lookup_probed(&c.in_tuple(), before),
            Some((k, Direction::In))
        );
        // A probe that stage two did not see.
        assert_eq!(
            t.lookup_probed(&d.in_tuple(), t.probe(&d.in_tuple()).0),
            Some((i, Direction::In))
        );
    }

    #[test]
    fn fills_up_and_recovers() {
        let mut t = ConnTable::new(1000, 42, 0);
        let mut ids = vec![];
        let mut full = 0;
        for k in 0..2000 {
            match t.insert(conn(k, ForwardMethod::Nat, 100)) {
                Ok(i) => ids.push((k, i)),
                Err(InsertError::Full) => full += 1,
            }
        }
        assert!(
            ids.len() <= 1000 && ids.len() >= 950,
            "{} inserted",
            ids.len()
        );
        assert_eq!(ids.len() + full, 2000);
        for (k, i) in &ids {
            let c = conn(*k, ForwardMethod::Nat, 100);
            assert_eq!(t.lookup(&c.in_tuple()), Some((*i, Direction::In)));
            assert_eq!(t.lookup(&c.out_tuple()), Some((*i, Direction::Out)));
        }
        for (_, i) in &ids {
            t.remove(*i);
        }
        assert!(t.is_empty());
        assert!(t.insert(conn(5000, ForwardMethod::Nat, 100)).is_ok());
    }

    /// Sequential clients and ports (what a benchmark or a scan sends),
    /// NAT (two index slots each), filled to the full capacity: the index
    /// is sized for that, so nearly every insert must succeed.
    #[test]
    fn fills_to_capacity_with_sequential_tuples() {
        for cap in [10_000u32, 100_000] {
            let mut t = ConnTable::new(cap, 0x5eed, 0);
            let mut ok = 0u32;
            for k in 0..cap {
                let tuple = Tuple {
                    proto: 6,
                    src: Ipv4Addr::from_bits(0x0a00_0000 + k / 1000),
                    sport: 1024 + (k % 1000) as u16,
                    dst: Ipv4Addr::new(198, 18, 0, 100),
                    dport: 80,
                };
                let rip = Ipv4Addr::new(198, 18, 2, (k % 100) as u8);
                let c = Conn::new(
                    &tuple,
                    rip,
                    8080,
                    0,
                    0,
                    ForwardMethod::Nat,
                    ConnState::Established,
                    100,
                );
                ok += u32::from(t.insert(c).is_ok());
            }
            assert!(
                f64::from(ok) >= f64::from(cap) * 0.999,
                "{ok} of {cap} inserted"
            );
        }
    }

    #[test]
    fn expiry_removes_only_expired_and_follows_refreshes() {
        let mut t = ConnTable::new(64, 1, 0);
        let mut ids = vec![];
        for k in 0..10 {
            ids.push(
                t.insert(conn(
                    k,
                    ForwardMethod::Tunnel,
                    if k % 2 == 0 { 50 } else { 500 },
                ))
                .unwrap(),
            );
        }
        // Refresh one of the early ones: it must survive its first slot.
        t.get_mut(ids[0]).expires = 300;
        let mut seen = vec![];
        assert_eq!(t.expire(100, usize::MAX, |c| seen.push(c.cport)), 4);
        assert_eq!(t.len(), 6);
        assert_eq!(
            t.expire(400, usize::MAX, |_| {}),
            1,
            "the refreshed one, at 300"
        );
        assert_eq!(t.expire(2000, usize::MAX, |_| {}), 5);
        assert!(t.is_empty());
    }

    /// A connection whose timeout got shorter expires at its new time, not
    /// when the slot of its old time comes round (set_tcp_state, then
    /// __ip_vs_conn_put_timer with the new timeout); only it is visited.
    #[test]
    fn an_earlier_expiry_is_kept() {
        let mut t = ConnTable::new(64, 1, 0);
        let long = t.insert(conn(1, ForwardMethod::Nat, 600)).unwrap();
        let other = t.insert(conn(2, ForwardMethod::Nat, 600)).unwrap();
        t.get_mut(long).expires = 12;
        t.refile(long);
        assert_eq!(t.expire(11, usize::MAX, |_| {}), 0);
        let mut gone = vec![];
        assert_eq!(t.expire(12, usize::MAX, |c| gone.push(c.cport)), 1);
        assert_eq!(gone, [conn(1, ForwardMethod::Nat, 0).cport]);
        assert_eq!(t.expiry_visits(), 1, "only the refiled entry was visited");
        assert_eq!(t.get(other).expires, 600);
        // Refiled while a drain is half done (budget spent): a time in the
        // slot being drained is examined in this same pass.
        let mut t = ConnTable::new(64, 1, 0);
        for k in 0..4 {
            t.insert(conn(k, ForwardMethod::Tunnel, 5)).unwrap();
        }
        let late = t.insert(conn(9, ForwardMethod::Tunnel, 900)).unwrap();
        assert_eq!(t.expire(5, 2, |_| {}), 2, "budget spent mid-slot");
        t.get_mut(late).expires = 5;
        t.refile(late);
        assert_eq!(t.expire(5, usize::MAX, |_| {}), 3);
        assert!(t.is_empty());
    }

    #[test]
    fn expiry_budget_resumes() {
        let mut t = ConnTable::new(64, 1, 0);
        for k in 0..20 {
            t.insert(conn(k, ForwardMethod::DirectRouting, 5)).unwrap();
        }
        assert_eq!(t.expire(10, 7, |_| {}), 7);
        assert_eq!(t.expire(10, 7, |_| {}), 7);
        assert_eq!(t.expire(10, 100, |_| {}), 6);
        assert!(t.is_empty());
    }

    #[test]
    fn timeouts_longer_than_the_wheel() {
        let mut t = ConnTable::new(8, 1, 0);
        t.insert(conn(1, ForwardMethod::Nat, 5000)).unwrap();
        assert_eq!(t.expire(4999, usize::MAX, |_| {}), 0);
        assert_eq!(t.len(), 1);
        assert_eq!(t.expire(5000, usize::MAX, |_| {}), 1);
    }

    /// 1 M connections: advancing the clock visits the expiring entries
    /// (and refreshed ones), never the whole table.
    #[test]
    fn expiry_cost_follows_expired_not_table_size() {
        let n = 1_000_000u32;
        let mut t = ConnTable::new(n, 9, 0);
        for k in 0..n {
            // 1000 connections expire at each second 1..=1000.
            t.insert(conn(k, ForwardMethod::DirectRouting, 1 + k % 1000))
                .unwrap();
        }
        assert_eq!(t.len(), n as usize);
        let before = t.expiry_visits();
        assert_eq!(t.expire(10, usize::MAX, |_| {}), 10_000);
        assert_eq!(
            t.expiry_visits() - before,
            10_000,
            "visited only what expired"
        );
        let before = t.expiry_visits();
        assert_eq!(t.expire(10, usize::MAX, |_| {}), 0);
        assert_eq!(t.expiry_visits(), before, "nothing due: nothing visited");
        assert!(
            t.bytes_per_conn() <= 64.0,
            "{} bytes/conn",
            t.bytes_per_conn()
        );
    }
}
