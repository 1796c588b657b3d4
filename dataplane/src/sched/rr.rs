//! Round robin and weighted round robin (`ip_vs_rr.c`, `ip_vs_wrr.c`),
//! tie-breaking and starting point included. Both skip reals with weight
//! 0 or the overloaded flag.

use super::{available, RealStats};
use crate::model::Real;

/// ip_vs_rr's state: the last real chosen (`None` = the list head).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RoundRobin {
    last: Option<usize>,
}

impl RoundRobin {
    /// ip_vs_rr_schedule: continue after the last pick, circularly, to the
    /// first available real; the last pick itself is tried last. Nothing
    /// available leaves the position where it was.
    pub(super) fn schedule(&mut self, reals: &[Real], stats: &[RealStats]) -> Option<usize> {
        let n = reals.len();
        let start = self.last.map_or(0, |l| l + 1);
        for k in 0..n {
            let i = (start + k) % n;
            if available(&reals[i], &stats[i]) {
                self.last = Some(i);
                return Some(i);
            }
        }
        None
    }
}

/// ip_vs_wrr's mark: current position, current weight, max weight, gcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Weighted {
    /// Current position (`None` = the list head).
    cl: Option<usize>,
    /// Current weight.
    cw: i64,
    /// Max weight less (gcd - 1).
    mw: i64,
    /// Gcd of the positive weights.
    di: i64,
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Weighted {
    /// ip_vs_wrr_init_svc: start at the head with cw = mw.
    pub(super) fn new(reals: &[Real]) -> Weighted {
        let di = reals
            .iter()
            .map(|r| i64::from(r.weight))
            .filter(|w| *w > 0)
            .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
        let di = if di == 0 { 1 } else { di };
        let max = reals.iter().map(|r| i64::from(r.weight)).max().unwrap_or(0);
        let mw = max - (di - 1);
        Weighted {
            cl: None,
            cw: mw,
            mw,
            di,
        }
    }

    /// ip_vs_wrr_schedule: walk the list from the current position; each
    /// time the walk passes the head, lower the current weight by the gcd
    /// (wrapping to the max); pick the first available real whose weight
    /// reaches it. Gives up after one full pass at weight 1.
    pub(super) fn schedule(&mut self, reals: &[Real], stats: &[RealStats]) -> Option<usize> {
        let Weighted { cl, cw, mw, di } = self;
        let (mw, di) = (*mw, *di);
        if mw <= 0 {
            return None;
        }
        let last = *cl;
        let mut pos = *cl;
        let mut stop: Option<usize> = None;
        let (mut last_pass, mut restarted) = (false, false);
        loop {
            let from = pos.map_or(0, |p| p + 1);
            for (i, (r, s)) in reals.iter().zip(stats).enumerate().skip(from) {
                if !s.is_overloaded() && i64::from(r.weight) >= *cw {
                    *cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    *cl = Some(i);
                    return None;
                }
            }
            pos = None;
            *cw -= di;
            if *cw <= 0 {
                *cw = mw;
                if last_pass || last.is_none() {
                    *cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = *cw <= di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::model::SchedulerKind;

    #[test]
    fn rr_cycles_in_order_and_skips_quiescent() {
        let s = run(SchedulerKind::Rr, &[1, 1, 1], 6);
        assert_eq!(s, [0, 1, 2, 0, 1, 2].map(Some));
        let s = run(SchedulerKind::Rr, &[1, 0, 5], 4);
        assert_eq!(s, [0, 2, 0, 2].map(Some), "rr ignores weights except 0");
        assert_eq!(run(SchedulerKind::Rr, &[0, 0], 2), [None, None]);
        assert_eq!(run(SchedulerKind::Rr, &[], 1), [None]);
    }

    #[test]
    fn rr_skips_overloaded_and_resumes() {
        let mut r = reals(&[1, 1, 1]);
        r[1].upper_threshold = 1;
        let st = stats(3);
        // Real 1 takes one connection and is then overloaded.
        let got = run_bound(SchedulerKind::Rr, &r, &st, 6);
        assert_eq!(got, [0, 1, 2, 0, 2, 0].map(Some));
        assert!(st[1].is_overloaded());
        // Its connection ends: back in the rotation.
        st[1].conn_unbound(&r[1], false);
        let mut s = super::RoundRobin { last: Some(2) };
        let picks: Vec<_> = (0..3).map(|_| s.schedule(&r, &st)).collect();
        assert_eq!(picks, [0, 1, 2].map(Some));
    }

    #[test]
    fn wrr_sequence_matches_ipvs() {
        // Weights 3:1 -> mw=3, cw starts at 3: A, A (cw 2), A (cw 1), B (cw 1).
        let s = run(SchedulerKind::Wrr, &[3, 1], 8);
        assert_eq!(s, [0, 0, 0, 1, 0, 0, 0, 1].map(Some));
        // Weights 4:3:2 (gcd 1): cw 4: A; 3: A B; 2: A B C; 1: A B C.
        let s = run(SchedulerKind::Wrr, &[4, 3, 2], 9);
        assert_eq!(s, [0, 0, 1, 0, 1, 2, 0, 1, 2].map(Some));
    }

    #[test]
    fn wrr_gcd_steps() {
        // Weights 4:2 have gcd 2: mw = 4 - 1 = 3, cw 3: A; cw 1: A B.
        let s = run(SchedulerKind::Wrr, &[4, 2], 6);
        assert_eq!(s, [0, 0, 1, 0, 0, 1].map(Some));
    }

    #[test]
    fn wrr_quiescent() {
        assert_eq!(run(SchedulerKind::Wrr, &[0, 0], 2), [None, None]);
        let s = run(SchedulerKind::Wrr, &[0, 2], 3);
        assert_eq!(s, [1, 1, 1].map(Some));
    }

    #[test]
    fn wrr_skips_overloaded() {
        // 3:1 with real 0 overloaded: only real 1, at every cw that reaches
        // its weight; then nothing once both are overloaded.
        let r = reals(&[3, 1]);
        let st = stats(2);
        st[0].conn_bound(
            &crate::model::Real {
                upper_threshold: 1,
                ..r[0]
            },
            false,
        );
        let mut s = super::Weighted::new(&r);
        let picks: Vec<_> = (0..3).map(|_| s.schedule(&r, &st)).collect();
        assert_eq!(picks, [1, 1, 1].map(Some));
        st[1].conn_bound(
            &crate::model::Real {
                upper_threshold: 1,
                ..r[1]
            },
            false,
        );
        assert_eq!(s.schedule(&r, &st), None);
    }

    #[test]
    fn wrr_distribution_is_weighted() {
        let s = run(SchedulerKind::Wrr, &[5, 3, 1], 900);
        let count = |i| s.iter().filter(|x| **x == Some(i)).count();
        assert_eq!((count(0), count(1), count(2)), (500, 300, 100));
    }
}
