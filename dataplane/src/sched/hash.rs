//! Destination and source hashing (`ip_vs_dh.c`, `ip_vs_sh.c`): a static
//! table of 256 buckets, each naming a real, indexed by a hash of the
//! destination (dh) or source (sh) address, as the current kernel has them:
//!
//! - dh: `ip_vs_dh_hashkey` = `(addr * 2654435761) & 255`, host order. Only
//!   the low 8 bits of the product are kept, and they depend only on the low
//!   8 bits of the address: destinations that differ only above their last
//!   octet share a bucket. That is the kernel's behaviour today, and l4vs
//!   keeps it so that a dh service spreads as an IPVS one does.
//! - sh: `ip_vs_sh_hashkey` = `(offset + hash_32(port + addr, 8)) & 255`,
//!   with `hash_32(v, 8)` = `(v * 0x61C88647) >> 24` (include/linux/hash.h,
//!   GOLDEN_RATIO_32), port 0 unless sh-port is set. The top bits of the
//!   product depend on every bit of the address (kernels before 3.15 used
//!   dh's hash, where only the last octet counted).
//!
//! Reals are walked in the order of the service's `reals` list, which is
//! l4vs's counterpart of the kernel's `svc->destinations` list (see
//! [`crate::model::Service::reals`] for how that order relates to IPVS's).
//!
//! The bucket tables are built once per worker when the scheduler is made
//! (the kernel rebuilds them on every destination change; a new snapshot
//! here builds a new scheduler). A bucket whose real is unavailable yields
//! nothing, unless sh's fallback flag is set.

use super::{available, RealStats};
use crate::model::Real;
use core::net::Ipv4Addr;

/// IP_VS_DH_TAB_BITS / IP_VS_SH_TAB_BITS default.
const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: u32 = TAB_SIZE as u32 - 1;
/// Knuth's multiplicative hash constant, the kernel's 2654435761 (dh).
const GOLDEN: u32 = 2_654_435_761;
/// The kernel's GOLDEN_RATIO_32, the multiplier of `hash_32` (sh).
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;
const EMPTY: u16 = u16::MAX;

/// 256 buckets of real indices.
#[derive(Clone)]
pub(super) struct Buckets(Box<[u16; TAB_SIZE]>);

impl core::fmt::Debug for Buckets {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Buckets({TAB_SIZE})")
    }
}

fn index(i: usize) -> u16 {
    // Snapshot::new caps a service at 65535 reals, so EMPTY never names one.
    u16::try_from(i).unwrap_or(EMPTY)
}

impl Buckets {
    /// ip_vs_dh_assign: bucket i names real i mod n; weights do not matter.
    pub(super) fn dh_table(reals: &[Real]) -> Buckets {
        let mut t = Box::new([EMPTY; TAB_SIZE]);
        if !reals.is_empty() {
            for (i, b) in t.iter_mut().enumerate() {
                *b = index(i % reals.len());
            }
        }
        Buckets(t)
    }

    /// ip_vs_sh_reassign: walk the reals in order, giving each as many
    /// consecutive buckets as its weight (at least one: a quiescent real
    /// keeps one bucket, where it is unavailable), wrapping around until
    /// all 256 are filled. Weights summing past 256 leave the later reals
    /// without a bucket, as in the kernel.
    pub(super) fn sh_table(reals: &[Real]) -> Buckets {
        let mut t = Box::new([EMPTY; TAB_SIZE]);
        if !reals.is_empty() {
            let (mut p, mut count) = (0usize, 0u64);
            for b in t.iter_mut() {
                *b = index(p);
                count += 1;
                if count >= u64::from(reals[p].weight) {
                    p = (p + 1) % reals.len();
                    count = 0;
                }
            }
        }
        Buckets(t)
    }

    fn get(&self, hash: u32) -> Option<usize> {
        match self.0[(hash & TAB_MASK) as usize] {
            EMPTY => None,
            i => Some(usize::from(i)),
        }
    }

    /// ip_vs_dh_schedule: the bucket of the destination address; nothing
    /// when its real is unavailable (dh has no fallback).
    pub(super) fn dh(&self, reals: &[Real], stats: &[RealStats], dst: Ipv4Addr) -> Option<usize> {
        let i = self.get(dst.to_bits().wrapping_mul(GOLDEN))?;
        (i < reals.len() && available(&reals[i], &stats[i])).then_some(i)
    }

    /// ip_vs_sh_schedule: the bucket of the source address (plus the
    /// source port with sh-port). With sh-fallback an unavailable real
    /// sends the search around the table: `ip_vs_sh_get_fallback` probes
    /// `sh_hash(addr, port, offset)` for offsets from the original bucket
    /// onwards, up to 256 probes, and stops at an empty bucket.
    pub(super) fn sh(
        &self,
        reals: &[Real],
        stats: &[RealStats],
        src: Ipv4Addr,
        port: u16,
        fallback: bool,
    ) -> Option<usize> {
        let ok = |i: usize| i < reals.len() && available(&reals[i], &stats[i]);
        let ihash = sh_hash(src, port, 0) & TAB_MASK;
        let i = self.get(ihash)?;
        if ok(i) {
            return Some(i);
        }
        if !fallback {
            return None;
        }
        for offset in 0..TAB_SIZE as u32 {
            let roffset = (offset + ihash) % TAB_SIZE as u32;
            let i = self.get(sh_hash(src, port, roffset))?;
            if ok(i) {
                return Some(i);
            }
        }
        None
    }
}

/// ip_vs_sh_hashkey: `(offset + hash_32(port + addr, 8)) & 255`, address
/// and port in host order.
fn sh_hash(addr: Ipv4Addr, port: u16, offset: u32) -> u32 {
    offset.wrapping_add(hash_32(addr.to_bits().wrapping_add(u32::from(port)))) & TAB_MASK
}

/// include/linux/hash.h `hash_32(val, IP_VS_SH_TAB_BITS)`: the top
/// `TAB_BITS` bits of `val * GOLDEN_RATIO_32`.
fn hash_32(val: u32) -> u32 {
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - TAB_BITS)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::model::SchedulerKind;
    use crate::sched::Scheduler;

    #[test]
    fn dh_table_cycles_through_reals() {
        let r = reals(&[5, 1, 0]);
        let b = Buckets::dh_table(&r);
        assert_eq!(&b.0[..7], &[0, 1, 2, 0, 1, 2, 0]);
        assert!(Buckets::dh_table(&[]).0.iter().all(|x| *x == EMPTY));
    }

    #[test]
    fn dh_maps_a_destination_to_its_bucket() {
        let r = reals(&[1, 1, 1]);
        let st = stats(3);
        let b = Buckets::dh_table(&r);
        // 198.18.0.100 * 2654435761 mod 256 -> bucket; bucket mod 3 -> real.
        let dst = Ipv4Addr::new(198, 18, 0, 100);
        let bucket = dst.to_bits().wrapping_mul(GOLDEN) & 0xff;
        let want = bucket as usize % 3;
        for _ in 0..3 {
            assert_eq!(b.dh(&r, &st, dst), Some(want));
        }
        // 768 consecutive destinations hit each bucket three times (the
        // multiplier is odd), and real i owns buckets i, i+3, ...: 86, 85, 85.
        let mut seen = [0u32; 3];
        for k in 0..768u32 {
            let d = Ipv4Addr::from_bits(0x0a00_0000 + k);
            seen[b.dh(&r, &st, d).unwrap()] += 1;
        }
        assert_eq!(seen, [258, 255, 255]);
        // An unavailable real is not replaced.
        let mut q = reals(&[1, 1, 1]);
        q[want].weight = 0;
        assert_eq!(Buckets::dh_table(&q).dh(&q, &st, dst), None);
    }

    #[test]
    fn sh_table_follows_weights() {
        // Weights 3, 0, 2: three buckets, then one for the quiescent real,
        // then two, and again.
        let r = reals(&[3, 0, 2]);
        let b = Buckets::sh_table(&r);
        assert_eq!(&b.0[..12], &[0, 0, 0, 1, 2, 2, 0, 0, 0, 1, 2, 2]);
        // Counting buckets: 256 = 42 rounds of 6, then 0 0 0 1.
        let count = |i: u16| b.0.iter().filter(|x| **x == i).count();
        assert_eq!((count(0), count(1), count(2)), (129, 43, 84));
        // A huge first weight takes every bucket.
        let b = Buckets::sh_table(&reals(&[1000, 1]));
        assert!(b.0.iter().all(|x| *x == 0));
    }

    #[test]
    fn sh_maps_a_client_to_one_real_and_follows_weights() {
        let r = reals(&[3, 1]);
        let st = stats(2);
        let kind = SchedulerKind::Sh {
            port: false,
            fallback: false,
        };
        let mut s = Scheduler::new(kind, &r);
        let mut seen = [0u32; 2];
        for k in 0..4096u32 {
            let c = Ipv4Addr::from_bits(0xcb00_7100 + k);
            let first = s.schedule(&r, &st, &pkt(c, 1000), 0).unwrap();
            // Same client, other source port: same real without sh-port.
            assert_eq!(s.schedule(&r, &st, &pkt(c, 2000), 0), Some(first));
            seen[first] += 1;
        }
        // 192 buckets to 64; counted from the kernel's formula by hand
        // (a Python one-liner over the same 4096 addresses).
        assert_eq!(seen, [3072, 1024]);
    }

    /// Golden values from the current kernel's formula, worked out apart
    /// from this code: hash_32(addr, 8) = (addr * 0x61C88647 mod 2^32) >> 24.
    /// Clients that differ only in their third octet land in different
    /// buckets (25, 225, 170), where the old hash put all three in 117.
    #[test]
    fn sh_hash_is_the_current_kernels() {
        let c = |o: u8| Ipv4Addr::new(198, 18, o, 5);
        assert_eq!(sh_hash(c(10), 0, 0), 25);
        assert_eq!(sh_hash(c(11), 0, 0), 225);
        assert_eq!(sh_hash(c(12), 0, 0), 170);
        assert_eq!(sh_hash(c(10), 40000, 0), 189, "sh-port adds the port");
        assert_eq!(sh_hash(c(10), 0, 3), 28, "offset added after hashing");
        assert_eq!(sh_hash(c(10), 0, 250), 19, "and the sum wraps at 256");
        // dh keeps the kernel's older hash: only the last octet counts.
        let dh = |a: Ipv4Addr| a.to_bits().wrapping_mul(GOLDEN) & TAB_MASK;
        assert_eq!((dh(c(10)), dh(c(11)), dh(c(12))), (117, 117, 117));
        // Three reals of weight 1: buckets cycle 0 1 2, so the three
        // clients go to three different reals (25 % 3, 225 % 3, 170 % 3).
        let r = reals(&[1, 1, 1]);
        let b = Buckets::sh_table(&r);
        let st = stats(3);
        let got: Vec<_> = [10, 11, 12]
            .iter()
            .map(|o| b.sh(&r, &st, c(*o), 0, false).unwrap())
            .collect();
        assert_eq!(got, [1, 0, 2]);
    }

    #[test]
    fn sh_port_spreads_one_client() {
        let r = reals(&[1, 1, 1, 1]);
        let st = stats(4);
        let b = Buckets::sh_table(&r);
        let c = Ipv4Addr::new(203, 0, 113, 7);
        let mut seen = [0u32; 4];
        for port in 0..1024u16 {
            let i = b.sh(&r, &st, c, port, false).unwrap();
            assert_eq!(b.sh(&r, &st, c, port, false), Some(i));
            seen[i] += 1;
        }
        assert_eq!(seen, [257, 256, 255, 256], "from the kernel's formula");
    }

    #[test]
    fn sh_fallback_finds_an_available_real() {
        let mut r = reals(&[1, 1, 1, 1]);
        let st = stats(4);
        let b = Buckets::sh_table(&r);
        let before: Vec<usize> = (0..512u32)
            .map(|k| {
                let c = Ipv4Addr::from_bits(0xcb00_7100 + k);
                b.sh(&r, &st, c, 0, false).unwrap()
            })
            .collect();
        r[2].weight = 0;
        for (k, was) in before.iter().enumerate() {
            let c = Ipv4Addr::from_bits(0xcb00_7100 + k as u32);
            let plain = b.sh(&r, &st, c, 0, false);
            let fb = b.sh(&r, &st, c, 0, true);
            if *was == 2 {
                assert_eq!(plain, None);
                let fb = fb.expect("fallback finds one");
                assert_ne!(fb, 2);
                // Deterministic: the same client always falls back alike.
                assert_eq!(b.sh(&r, &st, c, 0, true), Some(fb));
            } else {
                // Everyone else stays where they were.
                assert_eq!((plain, fb), (Some(*was), Some(*was)));
            }
        }
        // Where the search starts: probe k looks at sh_hash(addr, port,
        // k + h) & 255 = (k + 2h) & 255, with h the original bucket. With
        // reals 0 1 2 3 repeating, a client whose bucket holds the
        // unavailable real 2 (h = 2 mod 4) lands first on bucket 2h, which
        // holds real 0, not on the next bucket's real 3.
        let mut r = reals(&[1, 1, 1, 1]);
        r[2].weight = 0;
        let b = Buckets::sh_table(&r);
        let mut checked = 0;
        for k in 0..64u32 {
            let c = Ipv4Addr::from_bits(0xcb00_7100 + k);
            let h = sh_hash(c, 0, 0) & TAB_MASK;
            match h % 4 {
                2 => assert_eq!(b.sh(&r, &st, c, 0, true), Some(0), "h {h}"),
                _ => assert_eq!(b.sh(&r, &st, c, 0, true), Some(h as usize % 4)),
            }
            checked += usize::from(h % 4 == 2);
        }
        assert!(checked > 0);
        // Nothing available: nothing found, after at most 256 probes.
        let r = reals(&[0, 0]);
        let b = Buckets::sh_table(&r);
        assert_eq!(b.sh(&r, &stats(2), Ipv4Addr::LOCALHOST, 0, true), None);
    }
}
