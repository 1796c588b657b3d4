//! The schedulers that only read the reals' connection counts: lc, wlc,
//! sed, nq, fo and ovf. No state of their own.
//!
//! The kernel compares load ratios without division: `h1/w1 > h2/w2` as
//! `h1 * w2 > h2 * w1`. Here the products are 128-bit, so no weight or
//! count overflows them. A later real replaces the current best only when
//! strictly better, so the first of equals (in configuration order) wins.

use super::{available, ratio_gt, RealStats};
use crate::model::Real;

/// ip_vs_lc_schedule: the available real with the least overhead
/// `(active << 8) + inactive`; weights other than 0 do not matter.
pub(super) fn lc(reals: &[Real], stats: &[RealStats]) -> Option<usize> {
    let mut least: Option<(usize, u64)> = None;
    for (i, (r, s)) in reals.iter().zip(stats).enumerate() {
        if !available(r, s) {
            continue;
        }
        let doh = s.overhead();
        if least.is_none_or(|(_, loh)| doh < loh) {
            least = Some((i, doh));
        }
    }
    least.map(|(i, _)| i)
}

/// The weighted-least walk shared by wlc, sed, and lblc/lblcr when they
/// schedule afresh (`ip_vs_wlc_schedule`, `__ip_vs_lblc_schedule`,
/// `__ip_vs_lblcr_schedule`): start from the first available real, then
/// take any non-overloaded real whose `overhead / weight` is strictly
/// lower. A later real with weight 0 can never be strictly lower, which is
/// how the kernel's second loop skips quiescent reals without testing the
/// weight.
pub(super) fn weighted_least(
    reals: &[Real],
    stats: &[RealStats],
    overhead: impl Fn(&RealStats) -> u64,
) -> Option<usize> {
    // This walk is every new connection's cost for wlc (100 reals: most
    // of it), so it is an index loop over two slices cut to one length:
    // no bounds check and no iterator state per real (callgrind: 35
    // instructions a real as a zip of the two, 31 as this loop).
    let n = reals.len().min(stats.len());
    let (reals, stats) = (&reals[..n], &stats[..n]);
    let first = (0..n).find(|&i| available(&reals[i], &stats[i]))?;
    let (mut li, mut loh, mut lw) = (first, overhead(&stats[first]), reals[first].weight);
    for i in first + 1..n {
        let s = &stats[i];
        if s.is_overloaded() {
            continue;
        }
        let (doh, w) = (overhead(s), reals[i].weight);
        if ratio_gt(loh, w, doh, lw) {
            (li, loh, lw) = (i, doh, w);
        }
    }
    Some(li)
}

/// [`weighted_least`] over the reals `among`, in that order (lblcr's
/// `ip_vs_dest_set_min` walks its server set this way); indices past the
/// lists are skipped.
pub(super) fn weighted_least_of(
    reals: &[Real],
    stats: &[RealStats],
    among: impl IntoIterator<Item = usize>,
    overhead: impl Fn(&RealStats) -> u64,
) -> Option<usize> {
    let some = among
        .into_iter()
        .filter_map(|i| Some((i, reals.get(i)?, stats.get(i)?)));
    least_of(some, overhead)
}

/// The walk itself over (index, real, its counts).
#[inline(always)]
fn least_of<'a>(
    mut it: impl Iterator<Item = (usize, &'a Real, &'a RealStats)>,
    overhead: impl Fn(&RealStats) -> u64,
) -> Option<usize> {
    let (mut li, mut loh, mut lw) = it
        .find(|(_, r, s)| available(r, s))
        .map(|(i, r, s)| (i, overhead(s), r.weight))?;
    for (i, r, s) in it {
        if s.is_overloaded() {
            continue;
        }
        let doh = overhead(s);
        if ratio_gt(loh, r.weight, doh, lw) {
            (li, loh, lw) = (i, doh, r.weight);
        }
    }
    Some(li)
}

/// ip_vs_wlc_schedule: least `overhead / weight`.
pub(super) fn wlc(reals: &[Real], stats: &[RealStats]) -> Option<usize> {
    weighted_least(reals, stats, RealStats::overhead)
}

/// ip_vs_sed_dest_overhead: only active connections count, plus the new one.
fn sed_overhead(s: &RealStats) -> u64 {
    u64::from(s.active()) + 1
}

/// ip_vs_sed_schedule: least expected delay `(active + 1) / weight`.
pub(super) fn sed(reals: &[Real], stats: &[RealStats]) -> Option<usize> {
    weighted_least(reals, stats, sed_overhead)
}

/// ip_vs_nq_schedule: the first available real with no active connection;
/// failing that, sed's choice.
pub(super) fn nq(reals: &[Real], stats: &[RealStats]) -> Option<usize> {
    let mut least: Option<(usize, u64, u32)> = None;
    for (i, (r, s)) in reals.iter().zip(stats).enumerate() {
        if !available(r, s) {
            continue;
        }
        if s.active() == 0 {
            return Some(i);
        }
        let doh = sed_overhead(s);
        if least.is_none_or(|(_, loh, lw)| ratio_gt(loh, r.weight, doh, lw)) {
            least = Some((i, doh, r.weight));
        }
    }
    least.map(|(i, ..)| i)
}

/// ip_vs_fo_schedule: the available real with the highest weight; the
/// first of equals.
pub(super) fn fo(reals: &[Real], stats: &[RealStats]) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for (i, (r, s)) in reals.iter().zip(stats).enumerate() {
        if !s.is_overloaded() && r.weight > best.map_or(0, |(_, w)| w) {
            best = Some((i, r.weight));
        }
    }
    best.map(|(i, _)| i)
}

/// ip_vs_ovf_schedule: the highest-weight available real that has no more
/// active connections than its weight; when it has more, the next highest
/// takes the overflow. Only active connections count (the kernel notes it
/// may not suit UDP, whose connections are never active).
pub(super) fn ovf(reals: &[Real], stats: &[RealStats]) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for (i, (r, s)) in reals.iter().zip(stats).enumerate() {
        if !available(r, s) || s.active() > r.weight {
            continue;
        }
        if best.is_none_or(|(_, w)| r.weight > w) {
            best = Some((i, r.weight));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::model::SchedulerKind;
    use proptest::prelude::*;

    proptest! {
        /// wlc's index loop picks what the iterator walk (`least_of`, as
        /// `weighted_least_of` runs it over every index) picks: weights
        /// with zeros and ties, small counts (ties of overhead), overloaded
        /// reals, and lists of different lengths.
        #[test]
        fn weighted_least_is_the_walk_over_every_real(
            list in proptest::collection::vec(
                (
                    prop_oneof![Just(0u32), 1u32..4, Just(100), Just(i32::MAX as u32)],
                    0u32..4,
                    0u32..600,
                    any::<bool>(),
                ),
                0..40,
            ),
            extra_reals in 0usize..3,
            extra_stats in 0usize..3,
        ) {
            let weights: Vec<u32> = list.iter().map(|e| e.0).collect();
            let mut r = reals(&weights);
            let mut st = loaded(&list.iter().map(|e| (e.1, e.2)).collect::<Vec<_>>());
            let mut trip = reals(&[1])[0];
            trip.upper_threshold = 1;
            for (s, e) in st.iter().zip(&list) {
                if e.3 {
                    s.conn_bound(&trip, false);
                }
            }
            r.extend(reals(&vec![1; extra_reals]));
            st.extend(stats(extra_stats));
            let every = 0..r.len();
            for overhead in [RealStats::overhead, sed_overhead] {
                prop_assert_eq!(
                    weighted_least(&r, &st, overhead),
                    weighted_least_of(&r, &st, every.clone(), overhead)
                );
            }
        }
    }

    #[test]
    fn lc_picks_least_overhead_first_wins() {
        let r = reals(&[1, 1, 1, 1]);
        // Overheads: 256+0, 0+200, 0+200, 0+255: real 1 (first of the two 200s).
        let st = loaded(&[(1, 0), (0, 200), (0, 200), (0, 255)]);
        assert_eq!(lc(&r, &st), Some(1));
        // One active outweighs 255 inactive.
        let st = loaded(&[(1, 0), (0, 256), (0, 255), (0, 257)]);
        assert_eq!(lc(&r, &st), Some(2));
        // Weights other than 0 are ignored; 0 is skipped.
        let r = reals(&[100, 0, 1]);
        let st = loaded(&[(0, 5), (0, 0), (0, 4)]);
        assert_eq!(lc(&r, &st), Some(2));
    }

    #[test]
    fn lc_spreads_new_connections_evenly() {
        let r = reals(&[1, 1, 1]);
        let st = stats(3);
        let got = run_bound(SchedulerKind::Lc, &r, &st, 6);
        assert_eq!(got, [0, 1, 2, 0, 1, 2].map(Some));
        // A real already holding an active connection waits until the
        // others have 256 inactive ones each.
        let st = loaded(&[(1, 0), (0, 0)]);
        let r = reals(&[1, 1]);
        let got = run_bound(SchedulerKind::Lc, &r, &st, 258);
        assert!(got[..256].iter().all(|g| *g == Some(1)));
        assert_eq!(&got[256..], &[Some(0), Some(1)]);
    }

    #[test]
    fn wlc_compares_cross_products() {
        // (256*1+1)/2 = 128.5 vs (256*0+100)/1 = 100 -> real 1.
        let r = reals(&[2, 1]);
        let st = loaded(&[(1, 1), (0, 100)]);
        assert_eq!(wlc(&r, &st), Some(1));
        // 257/2 vs 129/1: real 0.
        let st = loaded(&[(1, 1), (0, 129)]);
        assert_eq!(wlc(&r, &st), Some(0));
        // Equal ratios (100/2 == 50/1): the first stays.
        let st = loaded(&[(0, 100), (0, 50)]);
        assert_eq!(wlc(&r, &st), Some(0));
        // A later quiescent real never wins even when idle.
        let r = reals(&[1, 0]);
        let st = loaded(&[(3, 0), (0, 0)]);
        assert_eq!(wlc(&r, &st), Some(0));
    }

    #[test]
    fn wlc_sequence_follows_weights() {
        // Weights 2:1 from zero: 0 (tie), 1 (1/2 > 0/1), 0 (1*1 > 1*2? no),
        // 0 (2*1 > 1*2? no), 1 (3*1 > 1*2), 0, ...: two to one.
        let r = reals(&[2, 1]);
        let st = stats(2);
        let got = run_bound(SchedulerKind::Wlc, &r, &st, 6);
        assert_eq!(got, [0, 1, 0, 0, 1, 0].map(Some));
        let st = stats(3);
        let r = reals(&[5, 3, 1]);
        let got = run_bound(SchedulerKind::Wlc, &r, &st, 900);
        let count = |i| got.iter().filter(|x| **x == Some(i)).count();
        assert_eq!((count(0), count(1), count(2)), (500, 300, 100));
    }

    #[test]
    fn wlc_handles_huge_counts_and_weights() {
        let r = reals(&[i32::MAX as u32, 1]);
        let st = loaded(&[(u32::MAX, u32::MAX), (u32::MAX, 0)]);
        // (2^40-ish)/2^31 vs 2^40/1: real 0, no overflow.
        assert_eq!(wlc(&r, &st), Some(0));
    }

    #[test]
    fn sed_uses_active_plus_one_over_weight() {
        // (1+1)/1 = 2 vs (4+1)/3 = 1.67: real 1. Inactive ones do not count.
        let r = reals(&[1, 3]);
        let st = loaded(&[(1, 0), (4, 1000)]);
        assert_eq!(sed(&r, &st), Some(1));
        // wlc would pick real 0 there.
        assert_eq!(wlc(&r, &st), Some(0));
        // Idle reals: (0+1)/1 vs (0+1)/3 -> the heavier one, where wlc
        // keeps the first (0/1 == 0/3).
        let st = loaded(&[(0, 0), (0, 0)]);
        assert_eq!(sed(&r, &st), Some(1));
        assert_eq!(wlc(&r, &st), Some(0));
    }

    #[test]
    fn nq_prefers_an_idle_real() {
        // Real 2 is idle (no active connection): taken at once although
        // sed would prefer the heavy real 0.
        let r = reals(&[10, 1, 1]);
        let st = loaded(&[(1, 0), (3, 0), (0, 50)]);
        assert_eq!(nq(&r, &st), Some(2));
        assert_eq!(sed(&r, &st), Some(0));
        // No idle real: sed's choice, (1+1)/10 < (3+1)/1 < (2+1)/1.
        let st = loaded(&[(1, 0), (3, 0), (2, 0)]);
        assert_eq!(nq(&r, &st), Some(0));
        // An idle but quiescent real is not taken.
        let r = reals(&[1, 0, 1]);
        let st = loaded(&[(2, 0), (0, 0), (1, 0)]);
        assert_eq!(nq(&r, &st), Some(2));
    }

    #[test]
    fn fo_picks_highest_weight_available() {
        let r = reals(&[5, 10, 10, 1]);
        let st = stats(4);
        assert_eq!(fo(&r, &st), Some(1), "first of equals");
        let mut r1 = r[1];
        r1.upper_threshold = 1;
        st[1].conn_bound(&r1, false);
        assert_eq!(fo(&r, &st), Some(2));
        let r = reals(&[0, 0, 3]);
        assert_eq!(fo(&r, &stats(3)), Some(2));
    }

    #[test]
    fn ovf_overflows_in_weight_order() {
        // Weights 3, 1, 2: real 0 while it has <= 3 active connections,
        // then real 2 (up to 2), then real 1 (up to 1), then nothing.
        let r = reals(&[3, 1, 2]);
        let st = stats(3);
        let mut order = Vec::new();
        while let Some(i) = ovf(&r, &st) {
            order.push(i);
            st[i].conn_bound(&r[i], true);
        }
        assert_eq!(order, [0, 0, 0, 0, 2, 2, 2, 1, 1]);
        // A connection ending on real 0 brings it back first.
        st[0].conn_unbound(&r[0], true);
        assert_eq!(ovf(&r, &st), Some(0));
        // Inactive connections do not count.
        let st = loaded(&[(0, 1000), (0, 0), (0, 0)]);
        assert_eq!(ovf(&r, &st), Some(0));
    }
}
