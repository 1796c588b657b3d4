//! Per-real connection counts and the overloaded flag, shared by workers.
//!
//! IPVS keeps `activeconns`, `inactconns` and `IP_VS_DEST_F_OVERLOAD` in
//! each `struct ip_vs_dest` and changes them when a connection is bound to
//! a destination (`ip_vs_bind_dest`), changes state (the protocols'
//! `set_*_state`) and is unbound at expiry (`ip_vs_unbind_dest`). l4vs does
//! the same here, with relaxed atomics: these run once per connection
//! event, never per packet, and the schedulers that read them tolerate a
//! count that is a step stale (IPVS reads them without a lock as well).
//! Counts saturate at 0 and `u32::MAX` instead of wrapping, so an unbalanced
//! caller skews a count but never turns it into a huge one.

use crate::model::Real;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

/// Connection counts of one real server. One cache line each, so workers
/// updating different reals do not share a line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct RealStats {
    active: AtomicU32,
    inactive: AtomicU32,
    overloaded: AtomicBool,
}

fn inc(a: &AtomicU32) {
    let _ = a.fetch_update(Relaxed, Relaxed, |v| v.checked_add(1));
}

/// False (and no change) when the count is already 0.
fn dec(a: &AtomicU32) -> bool {
    a.fetch_update(Relaxed, Relaxed, |v| v.checked_sub(1))
        .is_ok()
}

/// Moves one connection from `from` to `to`, if `from` has one, so the
/// total never changes.
fn transfer(from: &AtomicU32, to: &AtomicU32) {
    if dec(from) {
        inc(to);
    }
}

impl RealStats {
    /// Stats already holding `active` and `inactive` connections.
    pub fn with_counts(active: u32, inactive: u32) -> RealStats {
        RealStats {
            active: AtomicU32::new(active),
            inactive: AtomicU32::new(inactive),
            overloaded: AtomicBool::new(false),
        }
    }

    /// A connection to `real` was created (`ip_vs_bind_dest`): count it as
    /// active or inactive, and set the overloaded flag when `real` has an
    /// upper threshold and its connections reach it.
    ///
    /// New connections start inactive: IPVS binds every new connection with
    /// IP_VS_CONN_F_INACTIVE (`__ip_vs_update_dest` puts it in the real's
    /// `conn_flags`), TCP in SYN_RECV and UDP alike; only a TCP connection
    /// that reaches ESTABLISHED becomes active ([`conn_activated`]). UDP
    /// connections stay inactive for their whole life, as in IPVS. `active`
    /// is true only for a connection that is already established when it is
    /// bound (one taken over from a peer director by connection sync).
    ///
    /// [`conn_activated`]: RealStats::conn_activated
    pub fn conn_bound(&self, real: &Real, active: bool) {
        inc(if active { &self.active } else { &self.inactive });
        if real.upper_threshold != 0 && self.total() >= u64::from(real.upper_threshold) {
            self.overloaded.store(true, Relaxed);
        }
    }

    /// A connection to `real` went away (`ip_vs_unbind_dest`); `active`
    /// says which count it was in. The overloaded flag clears when the
    /// connections fall below the lower threshold, or, without one, below
    /// three quarters of the upper threshold; without thresholds it clears
    /// at once (the thresholds may have been removed since it was set).
    pub fn conn_unbound(&self, real: &Real, active: bool) {
        dec(if active { &self.active } else { &self.inactive });
        let total = self.total();
        let clear = if real.lower_threshold != 0 {
            total < u64::from(real.lower_threshold)
        } else if real.upper_threshold != 0 {
            total * 4 < u64::from(real.upper_threshold) * 3
        } else {
            true
        };
        if clear {
            self.overloaded.store(false, Relaxed);
        }
    }

    /// A connection moved from inactive to active (TCP reached
    /// ESTABLISHED). The total is unchanged, and so is the flag; with no
    /// inactive connection counted, nothing changes.
    pub fn conn_activated(&self) {
        transfer(&self.inactive, &self.active);
    }

    /// A connection moved from active to inactive (TCP left ESTABLISHED);
    /// with no active connection counted, nothing changes.
    pub fn conn_deactivated(&self) {
        transfer(&self.active, &self.inactive);
    }

    /// Active connections (`activeconns`).
    #[inline]
    pub fn active(&self) -> u32 {
        self.active.load(Relaxed)
    }

    /// Inactive connections (`inactconns`).
    #[inline]
    pub fn inactive(&self) -> u32 {
        self.inactive.load(Relaxed)
    }

    /// True while the upper threshold holds the real out of scheduling
    /// (`IP_VS_DEST_F_OVERLOAD`).
    #[inline]
    pub fn is_overloaded(&self) -> bool {
        self.overloaded.load(Relaxed)
    }

    /// `ip_vs_dest_conn_overhead`: an active connection weighs 256
    /// inactive ones, `(active << 8) + inactive`.
    #[inline]
    pub fn overhead(&self) -> u64 {
        (u64::from(self.active()) << 8) + u64::from(self.inactive())
    }

    /// `ip_vs_dest_totalconns`: active + inactive.
    fn total(&self) -> u64 {
        u64::from(self.active()) + u64::from(self.inactive())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::reals;

    fn real(upper: u32, lower: u32) -> Real {
        Real {
            upper_threshold: upper,
            lower_threshold: lower,
            ..reals(&[1])[0]
        }
    }

    #[test]
    fn counts_follow_bind_activate_unbind() {
        let r = real(0, 0);
        let s = RealStats::default();
        s.conn_bound(&r, false);
        s.conn_bound(&r, false);
        assert_eq!((s.active(), s.inactive()), (0, 2));
        s.conn_activated();
        assert_eq!((s.active(), s.inactive()), (1, 1));
        assert_eq!(s.overhead(), 257);
        s.conn_deactivated();
        assert_eq!((s.active(), s.inactive()), (0, 2));
        s.conn_bound(&r, true);
        assert_eq!(s.overhead(), 256 + 2);
        s.conn_unbound(&r, true);
        s.conn_unbound(&r, false);
        assert_eq!((s.active(), s.inactive()), (0, 1));
    }

    #[test]
    fn counts_never_underflow() {
        let r = real(0, 0);
        let s = RealStats::default();
        s.conn_unbound(&r, true);
        s.conn_unbound(&r, false);
        assert_eq!((s.active(), s.inactive()), (0, 0));
        // Nothing to move: nothing changes.
        s.conn_activated();
        s.conn_deactivated();
        assert_eq!((s.active(), s.inactive()), (0, 0));
        s.conn_bound(&r, false);
        s.conn_activated();
        s.conn_activated();
        assert_eq!((s.active(), s.inactive()), (1, 0));
        s.conn_deactivated();
        s.conn_deactivated();
        assert_eq!((s.active(), s.inactive()), (0, 1));
    }

    #[test]
    fn upper_threshold_sets_and_three_quarters_clears() {
        // u=8, no lower: overloaded at 8 connections, clear below 6 (3/4).
        let r = real(8, 0);
        let s = RealStats::default();
        for k in 1..=8 {
            assert!(!s.is_overloaded(), "before connection {k}");
            s.conn_bound(&r, k % 2 == 0);
        }
        assert!(s.is_overloaded());
        // 7 and 6 connections: 7*4=28, 6*4=24, not < 24.
        s.conn_unbound(&r, true);
        assert!(s.is_overloaded());
        s.conn_unbound(&r, false);
        assert!(s.is_overloaded());
        // 5 connections: 20 < 24.
        s.conn_unbound(&r, true);
        assert!(!s.is_overloaded());
        // Activation does not change the total, nor the flag.
        s.conn_activated();
        assert!(!s.is_overloaded());
    }

    #[test]
    fn lower_threshold_clears() {
        let r = real(4, 2);
        let s = RealStats::default();
        for _ in 0..4 {
            s.conn_bound(&r, false);
        }
        assert!(s.is_overloaded());
        s.conn_unbound(&r, false); // 3
        s.conn_unbound(&r, false); // 2: not below 2
        assert!(s.is_overloaded());
        s.conn_unbound(&r, false); // 1
        assert!(!s.is_overloaded());
        // Binding below the upper threshold does not set it again.
        s.conn_bound(&r, false);
        s.conn_bound(&r, false);
        assert!(!s.is_overloaded());
        s.conn_bound(&r, false);
        assert!(s.is_overloaded());
    }

    #[test]
    fn no_threshold_never_sets_and_always_clears() {
        let s = RealStats::default();
        let none = real(0, 0);
        for _ in 0..1000 {
            s.conn_bound(&none, false);
        }
        assert!(!s.is_overloaded());
        // Set under a threshold that was then removed: the next unbind
        // clears it, as ip_vs_unbind_dest does.
        s.conn_bound(&real(10, 0), false);
        assert!(s.is_overloaded());
        s.conn_unbound(&none, false);
        assert!(!s.is_overloaded());
    }
}
