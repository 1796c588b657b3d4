//! Power of two choices (`ip_vs_twos.c`): two reals drawn at random in
//! proportion to their weights, and the one with the lower
//! `overhead / weight` wins.
//!
//! The kernel draws from `prandom_u32()`; each l4vs worker draws from its
//! own xorshift64* generator, seeded when the scheduler is built, so no
//! random state is shared or locked.

use super::{available, ratio_gt, RealStats};
use crate::model::Real;

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's
/// xorshift generators, scrambled", 2016): fast, 64-bit state, good enough
/// for load balancing; not for anything secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rng(u64);

impl Rng {
    /// A generator from `seed`, scrambled with splitmix64 so that close
    /// seeds (worker 0, 1, 2) give unrelated streams; never the all-zero
    /// state xorshift cannot leave.
    pub(super) fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }

    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// ip_vs_twos_schedule: with `total` the sum of the available reals'
/// weights, draw two numbers in `0..=total`; each picks the first
/// available real at which the running sum of weights reaches it. The
/// second choice wins only when strictly less loaded
/// (`w2 * overhead1 > w1 * overhead2`), so equal loads keep the first.
pub(super) fn twos(rng: &mut Rng, reals: &[Real], stats: &[RealStats]) -> Option<usize> {
    let total: u64 = reals
        .iter()
        .zip(stats)
        .filter(|(r, s)| available(r, s))
        .map(|(r, _)| u64::from(r.weight))
        .sum();
    if total == 0 {
        return None;
    }
    // The kernel adds 1 so that the draw is inclusive of `total`.
    let r1 = rng.next() % (total + 1);
    let r2 = rng.next() % (total + 1);
    let (mut c1, mut c2) = (None, None);
    let mut sum = 0u64;
    for (i, (r, s)) in reals.iter().zip(stats).enumerate() {
        if !available(r, s) {
            continue;
        }
        sum += u64::from(r.weight);
        if c1.is_none() && r1 <= sum {
            c1 = Some((i, r.weight, s.overhead()));
        }
        if c2.is_none() && r2 <= sum {
            c2 = Some((i, r.weight, s.overhead()));
        }
        if c1.is_some() && c2.is_some() {
            break;
        }
    }
    let (i1, w1, o1) = c1?;
    match c2 {
        Some((i2, w2, o2)) if ratio_gt(o1, w2, o2, w1) => Some(i2),
        _ => Some(i1),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::model::SchedulerKind;

    #[test]
    fn rng_streams_differ_by_seed_and_look_uniform() {
        let mut a = Rng::new(0);
        let mut b = Rng::new(1);
        let xa: Vec<u64> = (0..8).map(|_| a.next()).collect();
        let xb: Vec<u64> = (0..8).map(|_| b.next()).collect();
        assert_ne!(xa, xb);
        let mut r = Rng::new(42);
        let mut buckets = [0u32; 10];
        for _ in 0..100_000 {
            buckets[(r.next() % 10) as usize] += 1;
        }
        // 10 000 expected each; 5 sigma is about 475.
        assert!(
            buckets.iter().all(|b| b.abs_diff(10_000) < 500),
            "{buckets:?}"
        );
    }

    #[test]
    fn idle_reals_split_by_weight() {
        // Without load, both choices are weight-proportional and the first
        // is kept on equal (zero) load: the split follows the weights, with
        // the kernel's inclusive draw giving the first real one extra value
        // out of total + 1.
        let r = reals(&[3, 1]);
        let st = stats(2);
        let mut rng = Rng::new(7);
        let n = 40_000;
        let zeros = (0..n)
            .filter(|_| twos(&mut rng, &r, &st) == Some(0))
            .count();
        // Expected 4/5 of the draws (values 0..=3 of 0..=4).
        let expect = n * 4 / 5;
        assert!(zeros.abs_diff(expect) < 600, "{zeros} of {n}");
    }

    #[test]
    fn favours_the_less_loaded_of_two() {
        // Two equal reals, one loaded: it wins only when drawn twice, about
        // a quarter of the time, instead of half.
        let r = reals(&[1, 1]);
        let st = loaded(&[(10, 0), (0, 0)]);
        let mut rng = Rng::new(3);
        let n = 40_000;
        let loaded_picks = (0..n)
            .filter(|_| twos(&mut rng, &r, &st) == Some(0))
            .count();
        // The draw is in 0..=2: real 0 for 0 and 1, so both land on it
        // with probability (2/3)^2 = 4/9.
        let expect = n * 4 / 9;
        assert!(loaded_picks.abs_diff(expect) < 700, "{loaded_picks}");
        assert!(loaded_picks < n / 2);
    }

    #[test]
    fn load_balances_over_time_and_skips_unavailable() {
        let mut r = reals(&[1, 1, 1, 0, 1]);
        r[4].upper_threshold = 50;
        let st = stats(5);
        let got = run_bound(SchedulerKind::Twos, &r, &st, 3000);
        assert!(got.iter().all(|g| matches!(g, Some(0..=2 | 4))));
        // Real 4 stops at its threshold; the rest share evenly (each draw
        // adds to the less loaded of two, which keeps counts close).
        assert_eq!(st[4].inactive(), 50);
        let counts: Vec<u32> = (0..3).map(|i| st[i].inactive()).collect();
        let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(hi - lo <= 10, "{counts:?}");
    }
}
