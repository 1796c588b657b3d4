//! Live statistics of a service and its real servers as IPVS keeps them:
//! the counters (`ipvsadm -L --stats`) and their rates (`--rate`).
//!
//! The counters themselves are the workers' rows in each compiled service
//! ([`l4vs_dataplane::traffic`]). A change recompiles a service with fresh
//! rows, so the table keeps, per service, what earlier compilations
//! counted: a replaced compiled form is *retired* and still read while any
//! worker may count on it (its `Arc` is shared), and folded into a base
//! once only the table holds it, so that no packet is lost or counted
//! twice across a change. Real servers are matched across compilations by
//! address and port. Zeroing (`ipvsadm -Z`) records the current counters
//! as an offset and restarts the estimators.

use crate::estimator::{Estimator, Rates};
use l4vs_dataplane::model::Real;
use l4vs_dataplane::traffic::Totals;
use l4vs_dataplane::CompiledService;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// A real server's identity across compilations.
type RealKey = (Ipv4Addr, u16);

/// What the table keeps of one service's statistics.
#[derive(Debug, Clone, Default)]
pub(crate) struct Keeping {
    retired: Vec<Arc<CompiledService>>,
    base: Totals,
    real_base: HashMap<RealKey, Totals>,
    zero: Totals,
    real_zero: HashMap<RealKey, Totals>,
    est: Estimator,
    real_est: HashMap<RealKey, Estimator>,
}

/// Counters and rates of one service or real server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counted {
    /// Since the start or the last zeroing.
    pub totals: Totals,
    /// Per second, IPVS's estimate.
    pub rates: Rates,
}

fn add_reals(into: &mut HashMap<RealKey, Totals>, c: &CompiledService) {
    for (i, r) in c.reals.iter().enumerate() {
        let t = into.entry((r.addr, r.port)).or_default();
        *t = t.plus(c.traffic.real_totals(i));
    }
}

impl Keeping {
    /// `old` was replaced by a new compilation; workers may still count on
    /// it for a moment.
    pub(crate) fn retire(&mut self, old: Arc<CompiledService>) {
        self.retired.push(old);
    }

    /// Folds retired forms no worker holds any more into the base.
    fn fold(&mut self) {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retired)
            .into_iter()
            .partition(|c| Arc::strong_count(c) == 1);
        self.retired = kept;
        for c in gone {
            self.base = self.base.plus(c.traffic.service_totals());
            add_reals(&mut self.real_base, &c);
        }
    }

    /// Everything counted since the start: base, retired, current.
    fn raw(&self, current: Option<&CompiledService>) -> (Totals, HashMap<RealKey, Totals>) {
        let mut svc = self.base;
        let mut reals = self.real_base.clone();
        for c in self.retired.iter().map(Arc::as_ref).chain(current) {
            svc = svc.plus(c.traffic.service_totals());
            add_reals(&mut reals, c);
        }
        (svc, reals)
    }

    /// One estimator interval (every [`crate::estimator::INTERVAL`]).
    pub(crate) fn sample(&mut self, current: Option<&CompiledService>) {
        self.fold();
        let (svc, reals) = self.raw(current);
        self.est.sample(svc);
        for (k, t) in reals {
            self.real_est
                .entry(k)
                .or_insert_with(|| Estimator::starting_at(t))
                .sample(t);
        }
    }

    /// `ipvsadm -Z`: counters and rates start again from zero.
    pub(crate) fn zero(&mut self, current: Option<&CompiledService>) {
        self.fold();
        let (svc, reals) = self.raw(current);
        self.zero = svc;
        self.est = Estimator::starting_at(svc);
        self.real_est.clear();
        for (k, t) in &reals {
            self.real_est.insert(*k, Estimator::starting_at(*t));
        }
        self.real_zero = reals;
    }

    /// The service's counters and rates, and each of `reals`'.
    pub(crate) fn read(
        &mut self,
        current: Option<&CompiledService>,
        reals: &[Real],
    ) -> (Counted, Vec<Counted>) {
        self.fold();
        let (svc, raw) = self.raw(current);
        let per_real = reals
            .iter()
            .map(|r| {
                let k = (r.addr, r.port);
                let t = raw.get(&k).copied().unwrap_or_default();
                let z = self.real_zero.get(&k).copied().unwrap_or_default();
                Counted {
                    totals: t.minus(z),
                    rates: self
                        .real_est
                        .get(&k)
                        .map(Estimator::rates)
                        .unwrap_or_default(),
                }
            })
            .collect();
        (
            Counted {
                totals: svc.minus(self.zero),
                rates: self.est.rates(),
            },
            per_real,
        )
    }
}
