//! The per-worker connection table.
//!
//! Design note: each worker owns one table; nothing here is shared or
//! locked. Capacity is fixed at creation and every byte is allocated then:
//! entries live in an array with a free-list stack, and an index of
//! cache-line buckets (7 slots of 32-bit signature + 32-bit entry index,
//! plus an overflow flag) maps tuple hashes to entries. A NAT connection
//! is indexed twice, by its client-side tuple and by the real server's reply
//! tuple, so both directions find the same entry in one lookup. Inserting
//! probes at most [`MAX_PROBE`] buckets; a bucket that spilled sets its
//! overflow flag so lookups know to look further, and only then.
//!
//! What may fail, and why that is acceptable: an insert fails when the
//! entry array is full or the probe window is full; the caller counts
//! `conn_table_full` and drops the new connection, while established flows
//! keep working (a SYN flood cannot evict them). Overflow flags are never
//! cleared, so a table that once spilled probes one more bucket on misses
//! there; the cost is bounded by [`MAX_PROBE`]. Expiry is lazy (checked on
//! lookup) plus an incremental sweep a few entries at a time between
//! bursts; the timer-wheel expiry that makes it O(expired) comes with the
//! full IPVS state machine.

use crate::snapshot::ForwardMethod;
use core::net::Ipv4Addr;

/// Buckets probed at most per insert or lookup.
pub const MAX_PROBE: usize = 4;
const SLOTS: usize = 7;
const EMPTY: u32 = u32::MAX;

/// Connection state, TCP as IPVS names them, plus UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnState {
    /// Slot not in use.
    Free,
    /// SYN seen from the client (IPVS SYN_RECV).
    SynRecv,
    /// Three-way handshake done.
    Established,
    /// A FIN was seen.
    FinWait,
    /// FINs seen both ways.
    TimeWait,
    /// RST seen.
    Close,
    /// UDP "connection".
    Udp,
}

/// Timeouts in seconds per state; defaults are IPVS's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// ESTABLISHED (900 s).
    pub tcp_established: u32,
    /// SYN_RECV (60 s).
    pub tcp_syn_recv: u32,
    /// FIN_WAIT (120 s).
    pub tcp_fin_wait: u32,
    /// TIME_WAIT (120 s).
    pub tcp_time_wait: u32,
    /// CLOSE (10 s).
    pub tcp_close: u32,
    /// UDP (300 s).
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_established: 900,
            tcp_syn_recv: 60,
            tcp_fin_wait: 120,
            tcp_time_wait: 120,
            tcp_close: 10,
            udp: 300,
        }
    }
}

impl Timeouts {
    /// The timeout of a state.
    pub fn of(&self, s: ConnState) -> u32 {
        match s {
            ConnState::Free => 0,
            ConnState::SynRecv => self.tcp_syn_recv,
            ConnState::Established => self.tcp_established,
            ConnState::FinWait => self.tcp_fin_wait,
            ConnState::TimeWait => self.tcp_time_wait,
            ConnState::Close => self.tcp_close,
            ConnState::Udp => self.udp,
        }
    }
}

/// A packet's tuple as seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// IP protocol number.
    pub proto: u8,
    /// Source address.
    pub src: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Destination port.
    pub dport: u16,
}

/// Which way a packet travels on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to VIP.
    In,
    /// Real server back to the client (NAT only).
    Out,
}

/// One connection: 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Conn {
    /// Client address.
    pub client: Ipv4Addr,
    /// Virtual IP.
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
}

impl Conn {
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

    fn has_out(&self) -> bool {
        self.method == ForwardMethod::Nat
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
const _: () = assert!(core::mem::size_of::<Conn>() == 32);

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

/// A fixed-capacity connection table.
#[derive(Debug)]
pub struct ConnTable {
    entries: Box<[Conn]>,
    free: Vec<u32>,
    buckets: Box<[Bucket]>,
    mask: usize,
    seed: u64,
    sweep_at: usize,
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
};

impl ConnTable {
    /// A table for `capacity` connections; `seed` keys the hash so tuples
    /// chosen by an attacker cannot target one bucket without knowing it.
    pub fn new(capacity: u32, seed: u64) -> ConnTable {
        let cap = capacity.max(1) as usize;
        let nb = (cap / 2).next_power_of_two().max(16);
        ConnTable {
            entries: vec![FREE_CONN; cap].into_boxed_slice(),
            free: (0..cap as u32).rev().collect(),
            buckets: vec![Bucket::EMPTY; nb].into_boxed_slice(),
            mask: nb - 1,
            seed,
            sweep_at: 0,
        }
    }

    /// Connections in the table.
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fixed capacity.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Bytes allocated per connection of capacity.
    pub fn bytes_per_conn(&self) -> usize {
        (self.entries.len() * 32 + self.buckets.len() * 64 + self.entries.len() * 4)
            / self.entries.len()
    }

    #[inline]
    fn hash(&self, t: &Tuple) -> u64 {
        let a = (u64::from(t.src.to_bits()) << 32) | u64::from(t.dst.to_bits());
        let b = (u64::from(t.sport) << 32) | (u64::from(t.dport) << 16) | u64::from(t.proto);
        let mut h = (a ^ self.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= b
            .wrapping_add(self.seed.rotate_left(32))
            .wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        h ^= h >> 31;
        h.wrapping_mul(0x1656_67b1_9e37_79f9) ^ (h >> 29)
    }

    #[inline]
    fn sig_and_bucket(&self, t: &Tuple) -> (u32, usize) {
        let h = self.hash(t);
        (((h >> 32) as u32) | 1, h as usize & self.mask)
    }

    /// Finds the connection of a packet and the way it travels.
    #[inline]
    pub fn lookup(&self, t: &Tuple) -> Option<(u32, Direction)> {
        let (sig, b0) = self.sig_and_bucket(t);
        for p in 0..MAX_PROBE {
            let b = &self.buckets[(b0 + p) & self.mask];
            for s in 0..SLOTS {
                if b.sig[s] == sig {
                    let i = b.idx[s];
                    if let Some(d) = self.entries[i as usize].matches(t) {
                        return Some((i, d));
                    }
                }
            }
            if b.overflow == 0 {
                break;
            }
        }
        None
    }

    /// The entry at `i`.
    #[inline]
    pub fn get(&self, i: u32) -> &Conn {
        &self.entries[i as usize]
    }

    /// The entry at `i`, mutable.
    #[inline]
    pub fn get_mut(&mut self, i: u32) -> &mut Conn {
        &mut self.entries[i as usize]
    }

    fn index_insert(&mut self, t: &Tuple, i: u32) -> bool {
        let (sig, b0) = self.sig_and_bucket(t);
        for p in 0..MAX_PROBE {
            let bi = (b0 + p) & self.mask;
            let b = &mut self.buckets[bi];
            if let Some(s) = b.idx.iter().position(|x| *x == EMPTY) {
                b.sig[s] = sig;
                b.idx[s] = i;
                return true;
            }
            b.overflow = 1;
        }
        false
    }

    fn index_remove(&mut self, t: &Tuple, i: u32) {
        let (sig, b0) = self.sig_and_bucket(t);
        for p in 0..MAX_PROBE {
            let b = &mut self.buckets[(b0 + p) & self.mask];
            for s in 0..SLOTS {
                if b.sig[s] == sig && b.idx[s] == i {
                    b.sig[s] = 0;
                    b.idx[s] = EMPTY;
                    return;
                }
            }
            if b.overflow == 0 {
                return;
            }
        }
    }

    /// Inserts a new connection, indexed by its in tuple and, for NAT, its
    /// out tuple. The caller has checked it is not there already.
    ///
    /// # Errors
    /// [`InsertError::Full`], leaving the table unchanged.
    pub fn insert(&mut self, c: Conn) -> Result<u32, InsertError> {
        let i = self.free.pop().ok_or(InsertError::Full)?;
        self.entries[i as usize] = c;
        if !self.index_insert(&c.in_tuple(), i) {
            self.entries[i as usize] = FREE_CONN;
            self.free.push(i);
            return Err(InsertError::Full);
        }
        if c.has_out() && !self.index_insert(&c.out_tuple(), i) {
            self.index_remove(&c.in_tuple(), i);
            self.entries[i as usize] = FREE_CONN;
            self.free.push(i);
            return Err(InsertError::Full);
        }
        Ok(i)
    }

    /// Removes the connection at `i` and returns it.
    pub fn remove(&mut self, i: u32) -> Conn {
        let c = self.entries[i as usize];
        debug_assert!(c.state != ConnState::Free);
        self.index_remove(&c.in_tuple(), i);
        if c.has_out() {
            self.index_remove(&c.out_tuple(), i);
        }
        self.entries[i as usize] = FREE_CONN;
        self.free.push(i);
        c
    }

    /// Examines up to `budget` entries from where the last sweep stopped and
    /// removes those expired at `now` (seconds). Returns how many it removed.
    pub fn sweep(&mut self, now: u32, budget: usize) -> usize {
        let n = self.entries.len();
        let mut removed = 0;
        for _ in 0..budget.min(n) {
            let i = self.sweep_at;
            self.sweep_at = if i + 1 == n { 0 } else { i + 1 };
            let c = &self.entries[i];
            if c.state != ConnState::Free && c.expires <= now {
                self.remove(i as u32);
                removed += 1;
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(i: u32, method: ForwardMethod) -> Conn {
        Conn {
            client: Ipv4Addr::from_bits(0xc612_0100 + i),
            vip: Ipv4Addr::new(198, 18, 0, 100),
            rip: Ipv4Addr::new(198, 18, 2, 11),
            expires: 100,
            cport: (1024 + i % 60000) as u16,
            vport: 80,
            rport: 8080,
            service: 0,
            real: 0,
            proto: 6,
            method,
            state: ConnState::Established,
        }
    }

    #[test]
    fn both_directions_find_a_nat_entry() {
        let mut t = ConnTable::new(16, 7);
        let c = conn(1, ForwardMethod::Nat);
        let i = t.insert(c).unwrap();
        assert_eq!(t.lookup(&c.in_tuple()), Some((i, Direction::In)));
        assert_eq!(t.lookup(&c.out_tuple()), Some((i, Direction::Out)));
        let d = conn(2, ForwardMethod::DirectRouting);
        let j = t.insert(d).unwrap();
        assert_eq!(t.lookup(&d.in_tuple()), Some((j, Direction::In)));
        assert_eq!(
            t.lookup(&d.out_tuple()),
            None,
            "DR replies bypass the director"
        );
        assert_eq!(t.remove(i), c);
        assert_eq!(t.lookup(&c.in_tuple()), None);
        assert_eq!(t.lookup(&c.out_tuple()), None);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn fills_up_and_recovers() {
        let mut t = ConnTable::new(1000, 42);
        let mut ids = vec![];
        let mut full = 0;
        for k in 0..2000 {
            match t.insert(conn(k, ForwardMethod::Nat)) {
                Ok(i) => ids.push((k, i)),
                Err(InsertError::Full) => full += 1,
            }
        }
        assert!(
            ids.len() <= 1000 && ids.len() >= 900,
            "{} inserted",
            ids.len()
        );
        assert_eq!(ids.len() + full, 2000);
        for (k, i) in &ids {
            let c = conn(*k, ForwardMethod::Nat);
            assert_eq!(t.lookup(&c.in_tuple()), Some((*i, Direction::In)));
            assert_eq!(t.lookup(&c.out_tuple()), Some((*i, Direction::Out)));
        }
        for (_, i) in &ids {
            t.remove(*i);
        }
        assert!(t.is_empty());
        assert!(t.insert(conn(5000, ForwardMethod::Nat)).is_ok());
    }

    #[test]
    fn sweep_removes_only_expired() {
        let mut t = ConnTable::new(64, 1);
        for k in 0..10 {
            let mut c = conn(k, ForwardMethod::Tunnel);
            c.expires = if k % 2 == 0 { 50 } else { 500 };
            t.insert(c).unwrap();
        }
        assert_eq!(t.sweep(100, 64), 5);
        assert_eq!(t.len(), 5);
        assert_eq!(t.sweep(100, 64), 0);
        assert_eq!(t.sweep(1000, 64), 5);
        assert!(t.is_empty());
    }
}
