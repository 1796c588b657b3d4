//! Schedulers: which real server gets a new connection.
//!
//! Every scheduler of the kernel's IPVS is here, with the semantics of its
//! `net/netfilter/ipvs/ip_vs_*.c` source: which reals count as available,
//! tie-breaking (the first real in configuration order wins a tie, as the
//! kernel's walk of its destination list does), overload and quiescence.
//! Each scheduling function names the kernel function it follows.
//!
//! What is shared and what is not:
//! - IPVS keeps one scheduler state per service behind a spin lock. l4vs
//!   keeps one [`Scheduler`] per service *per worker*, so scheduling takes
//!   no lock: rr/wrr walk their sequence per worker, lblc/lblcr keep their
//!   per-destination caches per worker, twos draws from a per-worker random
//!   generator. Over many connections the split between reals is the
//!   configured one.
//! - Connection counts and the overloaded flag are per real and shared:
//!   [`RealStats`] in the snapshot, updated with relaxed atomics by the
//!   worker that creates, activates or expires a connection (never per
//!   packet). The least-connection family reads them; a count another
//!   worker is changing at the same moment may be read one step stale,
//!   as in IPVS, where the counters are read without the lock too.
//! - Big immutable tables are built once per change of a service, on the
//!   control thread, and shared read-only by every worker: mh's lookup
//!   table ([`SharedTables`], up to 131 071 slots, which take milliseconds
//!   to fill). A worker that picks up a new snapshot builds only the small
//!   per-worker part of a *changed* service's scheduler (dh's and sh's 256
//!   buckets, rr/wrr positions, lblc/lblcr caches) and keeps the state of
//!   every unchanged service as it is.
//!
//! Allocation: [`Scheduler::with_tables`] allocates every table a scheduler
//! will ever use (lblc/lblcr's fixed-capacity address tables);
//! [`Scheduler::schedule`] allocates nothing, locks nothing and logs
//! nothing.
//!
//! "Available" is what each kernel scheduler checks, which is not always
//! the same test: most skip reals with weight 0 (quiescent) and reals whose
//! overloaded flag is set (connection thresholds, see [`RealStats`]);
//! lblc's cache hit ignores the flag, ovf also skips reals with more active
//! connections than their weight. Each function's doc says what it checks.

use crate::model::{Real, SchedulerKind};
use core::net::Ipv4Addr;
use std::sync::Arc;

mod hash;
mod lc;
mod locality;
pub mod mh;
mod rr;
mod stats;
mod twos;

pub use stats::RealStats;

/// What a scheduler may look at in the packet that opens a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedPacket {
    /// Source (client) address: sh and mh hash it.
    pub src: Ipv4Addr,
    /// Source port: sh and mh hash it with their `port` flag.
    pub sport: u16,
    /// Destination address: dh, lblc and lblcr key on it.
    pub dst: Ipv4Addr,
    /// Destination port.
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
}

/// Per-worker state of one service's scheduler.
#[derive(Debug, Clone)]
pub struct Scheduler {
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    Rr(rr::RoundRobin),
    Wrr(rr::Weighted),
    Lc,
    Wlc,
    Sed,
    Nq,
    Fo,
    Ovf,
    Twos(twos::Rng),
    Dh(hash::Buckets),
    Sh {
        buckets: hash::Buckets,
        port: bool,
        fallback: bool,
    },
    Mh(Arc<mh::Maglev>),
    Lblc(locality::Lblc),
    Lblcr(locality::Lblcr),
}

/// The read-only part of a service's scheduler state, built once per
/// change of the service on the control thread and shared by every
/// worker's [`Scheduler`]: the Maglev lookup table (`ip_vs_mh_reassign`),
/// the one table whose fill costs milliseconds. Other schedulers have
/// none.
#[derive(Debug, Clone, Default)]
pub struct SharedTables {
    maglev: Option<Arc<mh::Maglev>>,
}

impl SharedTables {
    /// Builds the tables `kind` needs over `reals` (allocates the mh table
    /// of `table_size` slots; nothing for other schedulers).
    pub fn build(kind: SchedulerKind, reals: &[Real]) -> SharedTables {
        let maglev = match kind {
            SchedulerKind::Mh {
                table_size,
                port,
                fallback,
            } => Some(Arc::new(mh::Maglev::new(reals, table_size, port, fallback))),
            _ => None,
        };
        SharedTables { maglev }
    }
}

/// Seed of [`Scheduler::new`]; workers pass their own to
/// [`Scheduler::with_seed`].
const DEFAULT_SEED: u64 = 0x6c34_7673_7363_6864;

impl Scheduler {
    /// Fresh state for a service, as the kernel's `ip_vs_*_init_svc`
    /// builds it, with a fixed random seed (twos).
    pub fn new(kind: SchedulerKind, reals: &[Real]) -> Scheduler {
        Scheduler::with_seed(kind, reals, DEFAULT_SEED)
    }

    /// Fresh state for a service; `seed` seeds twos's random generator and
    /// should differ between workers. Builds the shared tables too: a
    /// worker uses [`Scheduler::with_tables`] with the ones the control
    /// thread built.
    pub fn with_seed(kind: SchedulerKind, reals: &[Real], seed: u64) -> Scheduler {
        Scheduler::with_tables(kind, reals, &SharedTables::build(kind, reals), seed)
    }

    /// Fresh per-worker state for a service whose read-only tables are
    /// `tables` (built by [`SharedTables::build`] for the same `kind` and
    /// `reals`; an mh service without one gets a table built here).
    /// `seed` seeds twos's random generator and should differ between
    /// workers and between rebuilds.
    pub fn with_tables(
        kind: SchedulerKind,
        reals: &[Real],
        tables: &SharedTables,
        seed: u64,
    ) -> Scheduler {
        let state = match kind {
            SchedulerKind::Rr => State::Rr(rr::RoundRobin::default()),
            SchedulerKind::Wrr => State::Wrr(rr::Weighted::new(reals)),
            SchedulerKind::Lc => State::Lc,
            SchedulerKind::Wlc => State::Wlc,
            SchedulerKind::Sed => State::Sed,
            SchedulerKind::Nq => State::Nq,
            SchedulerKind::Fo => State::Fo,
            SchedulerKind::Ovf => State::Ovf,
            SchedulerKind::Twos => State::Twos(twos::Rng::new(seed)),
            SchedulerKind::Dh => State::Dh(hash::Buckets::dh_table(reals)),
            SchedulerKind::Sh { port, fallback } => State::Sh {
                buckets: hash::Buckets::sh_table(reals),
                port,
                fallback,
            },
            SchedulerKind::Mh {
                table_size,
                port,
                fallback,
            } => State::Mh(match &tables.maglev {
                Some(t) => Arc::clone(t),
                None => Arc::new(mh::Maglev::new(reals, table_size, port, fallback)),
            }),
            SchedulerKind::Lblc => State::Lblc(locality::Lblc::new()),
            SchedulerKind::Lblcr => State::Lblcr(locality::Lblcr::new()),
        };
        Scheduler { state }
    }

    /// The address of the shared Maglev table this scheduler reads, if it
    /// is an mh scheduler: two schedulers with the same value share one
    /// table (tests use it to check that a reload kept a table).
    pub fn shared_table_id(&self) -> Option<usize> {
        match &self.state {
            State::Mh(t) => Some(Arc::as_ptr(t) as usize),
            _ => None,
        }
    }

    /// Picks a real server index for the connection `pkt` opens at `now_s`
    /// (seconds), or `None` when no real is available.
    ///
    /// `stats` holds one entry per real (the service's
    /// [`stats`](crate::snapshot::CompiledService::stats)); reals without one are
    /// never picked.
    pub fn schedule(
        &mut self,
        reals: &[Real],
        stats: &[RealStats],
        pkt: &SchedPacket,
        now_s: u32,
    ) -> Option<usize> {
        let n = reals.len().min(stats.len());
        let (reals, stats) = (&reals[..n], &stats[..n]);
        match &mut self.state {
            State::Rr(s) => s.schedule(reals, stats),
            State::Wrr(s) => s.schedule(reals, stats),
            State::Lc => lc::lc(reals, stats),
            State::Wlc => lc::wlc(reals, stats),
            State::Sed => lc::sed(reals, stats),
            State::Nq => lc::nq(reals, stats),
            State::Fo => lc::fo(reals, stats),
            State::Ovf => lc::ovf(reals, stats),
            State::Twos(rng) => twos::twos(rng, reals, stats),
            State::Dh(b) => b.dh(reals, stats, pkt.dst),
            State::Sh {
                buckets,
                port,
                fallback,
            } => {
                let port = if *port { pkt.sport } else { 0 };
                buckets.sh(reals, stats, pkt.src, port, *fallback)
            }
            State::Mh(m) => m.schedule(reals, stats, pkt),
            State::Lblc(t) => t.schedule(reals, stats, pkt.dst, now_s),
            State::Lblcr(t) => t.schedule(reals, stats, pkt.dst, now_s),
        }
    }
}

/// The test most kernel schedulers apply: a positive weight and no
/// overloaded flag.
#[inline]
fn available(r: &Real, s: &RealStats) -> bool {
    r.weight > 0 && !s.is_overloaded()
}

/// `a * b > c * d` without overflow: the kernel's cross-multiplied
/// comparison of overhead/weight ratios (`h1 * w2 > h2 * w1`). wlc makes
/// it for every real of the service on every new connection. (Taking the
/// products in 64 bits while both overheads are below 2^32, and in 128
/// only beyond, cost more instructions than the two 64x64 multiplies.)
#[inline(always)]
fn ratio_gt(a: u64, b: u32, c: u64, d: u32) -> bool {
    u128::from(a) * u128::from(b) > u128::from(c) * u128::from(d)
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::model::ForwardMethod;

    pub fn reals(weights: &[u32]) -> Vec<Real> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| Real {
                addr: Ipv4Addr::new(198, 18, 2 + (i / 200) as u8, 11 + (i % 200) as u8),
                port: 80,
                weight: *w,
                method: ForwardMethod::Nat,
                upper_threshold: 0,
                lower_threshold: 0,
            })
            .collect()
    }

    pub fn stats(n: usize) -> Vec<RealStats> {
        (0..n).map(|_| RealStats::default()).collect()
    }

    /// Stats with the given (active, inactive) counts.
    pub fn loaded(counts: &[(u32, u32)]) -> Vec<RealStats> {
        counts
            .iter()
            .map(|&(a, i)| RealStats::with_counts(a, i))
            .collect()
    }

    pub fn pkt(src: Ipv4Addr, sport: u16) -> SchedPacket {
        SchedPacket {
            src,
            sport,
            dst: Ipv4Addr::new(198, 18, 0, 100),
            dport: 80,
            proto: 6,
        }
    }

    pub fn client(i: u32) -> Ipv4Addr {
        Ipv4Addr::from_bits(0xc612_0000 | (i & 0xffff))
    }

    /// `n` picks with the stats left as they are.
    pub fn run(kind: SchedulerKind, weights: &[u32], n: usize) -> Vec<Option<usize>> {
        let r = reals(weights);
        let st = stats(r.len());
        let mut s = Scheduler::new(kind, &r);
        (0..n)
            .map(|k| s.schedule(&r, &st, &pkt(client(k as u32), 1024), 0))
            .collect()
    }

    /// `n` picks, each binding a connection to the picked real (inactive,
    /// as a new connection starts), so the least-connection family sees
    /// its own choices.
    pub fn run_bound(
        kind: SchedulerKind,
        reals: &[Real],
        st: &[RealStats],
        n: usize,
    ) -> Vec<Option<usize>> {
        let mut s = Scheduler::new(kind, reals);
        (0..n)
            .map(|k| {
                let pick = s.schedule(reals, st, &pkt(client(k as u32), 1024), 0);
                if let Some(i) = pick {
                    st[i].conn_bound(&reals[i], false);
                }
                pick
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    const EVERY: [SchedulerKind; 14] = [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Lblc,
        SchedulerKind::Lblcr,
        SchedulerKind::Dh,
        SchedulerKind::Sh {
            port: true,
            fallback: true,
        },
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Mh {
            table_size: 251,
            port: true,
            fallback: true,
        },
        SchedulerKind::Fo,
        SchedulerKind::Ovf,
        SchedulerKind::Twos,
    ];

    #[test]
    fn no_scheduler_picks_a_quiescent_or_overloaded_real() {
        // Real 1 quiescent, real 2 overloaded by its upper threshold; with
        // fallback, the hashing schedulers find real 0 or 3.
        let mut r = reals(&[1, 0, 1, 1]);
        r[2].upper_threshold = 1;
        for kind in EVERY {
            let st = stats(r.len());
            st[2].conn_bound(&r[2], false);
            assert!(st[2].is_overloaded());
            let mut s = Scheduler::new(kind, &r);
            for k in 0..200 {
                let p = pkt(client(k), 1000 + k as u16);
                let got = s.schedule(&r, &st, &p, 0);
                // dh has no fallback: its one bucket for the VIP may hold
                // an unavailable real, and then nothing is picked.
                let ok = match got {
                    Some(i) => i == 0 || i == 3,
                    None => kind == SchedulerKind::Dh,
                };
                assert!(ok, "{}: picked {got:?}", kind.as_str());
            }
        }
    }

    #[test]
    fn every_scheduler_returns_none_without_an_available_real() {
        for kind in EVERY {
            for weights in [&[][..], &[0, 0, 0][..]] {
                let r = reals(weights);
                let st = stats(r.len());
                let mut s = Scheduler::new(kind, &r);
                let got = s.schedule(&r, &st, &pkt(client(1), 1), 0);
                assert_eq!(got, None, "{} {weights:?}", kind.as_str());
            }
        }
    }

    #[test]
    fn reals_without_stats_are_never_picked() {
        let r = reals(&[1, 1, 1]);
        let st = stats(1);
        for kind in EVERY {
            let mut s = Scheduler::new(kind, &r);
            for k in 0..50 {
                let got = s.schedule(&r, &st, &pkt(client(k), k as u16), 0);
                assert!(matches!(got, Some(0) | None), "{}", kind.as_str());
            }
        }
    }
}
