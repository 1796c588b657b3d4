//! Schedulers: which real server gets a new connection.
//!
//! Semantics follow the kernel's `net/netfilter/ipvs/ip_vs_rr.c` and
//! `ip_vs_wrr.c`, tie-breaking and starting point included. IPVS keeps one
//! scheduler state per service behind a spin lock; l4vs keeps one per
//! service *per worker*, so scheduling takes no lock. Each worker walks the
//! same sequence independently; over many connections the split between
//! reals is the configured one.

use crate::snapshot::{Real, SchedulerKind};

/// Per-worker state of one service's scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduler {
    /// ip_vs_rr: the last real chosen (`None` = the list head).
    RoundRobin {
        /// Position of the last pick.
        last: Option<usize>,
    },
    /// ip_vs_wrr's mark: current position, current weight, max weight, gcd.
    WeightedRoundRobin {
        /// Current position (`None` = the list head).
        cl: Option<usize>,
        /// Current weight.
        cw: i64,
        /// Max weight less (gcd - 1).
        mw: i64,
        /// Gcd of the positive weights.
        di: i64,
    },
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Scheduler {
    /// Fresh state for a service, as ip_vs_*_init_svc builds it.
    pub fn new(kind: SchedulerKind, reals: &[Real]) -> Scheduler {
        match kind {
            SchedulerKind::Rr => Scheduler::RoundRobin { last: None },
            SchedulerKind::Wrr => {
                let di = reals
                    .iter()
                    .map(|r| i64::from(r.weight))
                    .filter(|w| *w > 0)
                    .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
                let di = if di == 0 { 1 } else { di };
                let max = reals.iter().map(|r| i64::from(r.weight)).max().unwrap_or(0);
                let mw = max - (di - 1);
                Scheduler::WeightedRoundRobin {
                    cl: None,
                    cw: mw,
                    mw,
                    di,
                }
            }
        }
    }

    /// Picks a real server index, or `None` when every real is quiescent.
    pub fn schedule(&mut self, reals: &[Real]) -> Option<usize> {
        match self {
            Scheduler::RoundRobin { last } => rr(last, reals),
            Scheduler::WeightedRoundRobin { cl, cw, mw, di } => wrr(cl, cw, *mw, *di, reals),
        }
    }
}

/// ip_vs_rr_schedule: continue after the last pick, circularly, to the
/// first real with a positive weight.
fn rr(last: &mut Option<usize>, reals: &[Real]) -> Option<usize> {
    let n = reals.len();
    let start = last.map_or(0, |l| l + 1);
    for k in 0..n {
        let i = (start + k) % n;
        if reals[i].weight > 0 {
            *last = Some(i);
            return Some(i);
        }
    }
    None
}

/// ip_vs_wrr_schedule: walk the list from the current position; each time
/// the walk passes the head, lower the current weight by the gcd (wrapping
/// to the max); pick the first real whose weight reaches it.
fn wrr(cl: &mut Option<usize>, cw: &mut i64, mw: i64, di: i64, reals: &[Real]) -> Option<usize> {
    if mw <= 0 {
        return None;
    }
    let last = *cl;
    let mut pos = *cl;
    let mut stop: Option<usize> = None;
    let (mut last_pass, mut restarted) = (false, false);
    loop {
        let from = pos.map_or(0, |p| p + 1);
        for (i, r) in reals.iter().enumerate().skip(from) {
            if i64::from(r.weight) >= *cw {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ForwardMethod;
    use core::net::Ipv4Addr;

    fn reals(weights: &[u32]) -> Vec<Real> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| Real {
                addr: Ipv4Addr::new(198, 18, 2, 11 + i as u8),
                port: 80,
                weight: *w,
                method: ForwardMethod::Nat,
            })
            .collect()
    }

    fn run(kind: SchedulerKind, weights: &[u32], n: usize) -> Vec<Option<usize>> {
        let r = reals(weights);
        let mut s = Scheduler::new(kind, &r);
        (0..n).map(|_| s.schedule(&r)).collect()
    }

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
    fn wrr_distribution_is_weighted() {
        let s = run(SchedulerKind::Wrr, &[5, 3, 1], 900);
        let count = |i| s.iter().filter(|x| **x == Some(i)).count();
        assert_eq!((count(0), count(1), count(2)), (500, 300, 100));
    }
}
