//! The rate estimator of IPVS (`ip_vs_est.c`): connections, packets and
//! bytes per second for each service and real server, as `ipvsadm -L
//! --rate` shows them.
//!
//! Every [`INTERVAL`] (2 s) the control thread takes the counters and
//! moves each rate a quarter of the way to the rate of the last interval:
//! `avg += (rate - avg) / 4`, an exponentially weighted average. As in the
//! kernel, the averages are kept in fixed point: connection and packet
//! rates scaled by 2^10, byte rates by 2^5, and read back rounded to the
//! nearest unit (`ip_vs_read_estimator`).

use l4vs_dataplane::traffic::Totals;
use std::time::Duration;

/// How often the estimator takes a sample (IPVS: 2 s).
pub const INTERVAL: Duration = Duration::from_secs(2);

/// Rates per second, as `ipvsadm --rate` lists them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Packets per second towards the real servers.
    pub inpps: u64,
    /// Packets per second back from them.
    pub outpps: u64,
    /// Bytes per second towards the real servers.
    pub inbps: u64,
    /// Bytes per second back from them.
    pub outbps: u64,
}

/// The estimator of one service or real server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimator {
    last: Totals,
    /// Averages in fixed point: ×2^10 for cps/pps, ×2^5 for bps.
    cps: i64,
    inpps: i64,
    outpps: i64,
    inbps: i64,
    outbps: i64,
}

/// One step of the average: the difference over the 2 s interval scaled
/// by `shift` (so per second scaled by `shift + 1`), a quarter of the way.
fn step(avg: &mut i64, now: u64, last: u64, shift: u32) {
    let rate = (now.wrapping_sub(last) as i64).saturating_mul(1 << shift);
    *avg += (rate - *avg) >> 2;
}

impl Estimator {
    /// An estimator starting from the counters `now`, rates zero
    /// (`ip_vs_start_estimator`, and what zeroing the counters does).
    pub fn starting_at(now: Totals) -> Estimator {
        Estimator {
            last: now,
            ..Estimator::default()
        }
    }

    /// Takes the sample of an interval: `now` are the counters at its end.
    pub fn sample(&mut self, now: Totals) {
        let l = self.last;
        // Per 2 s: ×2^9 is ×2^10 per second; ×2^4 is ×2^5 per second.
        step(&mut self.cps, now.conns, l.conns, 9);
        step(&mut self.inpps, now.inpkts, l.inpkts, 9);
        step(&mut self.outpps, now.outpkts, l.outpkts, 9);
        step(&mut self.inbps, now.inbytes, l.inbytes, 4);
        step(&mut self.outbps, now.outbytes, l.outbytes, 4);
        self.last = now;
    }

    /// The rates, rounded as `ip_vs_read_estimator` rounds them.
    pub fn rates(&self) -> Rates {
        let read = |v: i64, round: i64, shift: u32| ((v + round).max(0) >> shift) as u64;
        Rates {
            cps: read(self.cps, 0x1ff, 10),
            inpps: read(self.inpps, 0x1ff, 10),
            outpps: read(self.outpps, 0x1ff, 10),
            inbps: read(self.inbps, 0xf, 5),
            outbps: read(self.outbps, 0xf, 5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(k: u64) -> Totals {
        // 100 connections, 1000 packets and 64 000 bytes a second in;
        // half of each out.
        Totals {
            conns: 200 * k,
            inpkts: 2000 * k,
            outpkts: 1000 * k,
            inbytes: 128_000 * k,
            outbytes: 64_000 * k,
        }
    }

    #[test]
    fn a_steady_rate_is_approached_a_quarter_at_a_time() {
        let mut e = Estimator::starting_at(at(0));
        e.sample(at(1));
        // A quarter of the way after one interval.
        assert_eq!(e.rates().cps, 25);
        assert_eq!(e.rates().inpps, 250);
        for k in 2..80 {
            e.sample(at(k));
        }
        assert_eq!(
            e.rates(),
            Rates {
                cps: 100,
                inpps: 1000,
                outpps: 500,
                inbps: 64_000,
                outbps: 32_000,
            }
        );
        // Traffic stops: the rates decay towards zero.
        for _ in 0..80 {
            e.sample(at(79));
        }
        assert_eq!(e.rates(), Rates::default());
    }

    #[test]
    fn starting_at_the_current_counters_shows_no_burst() {
        let mut e = Estimator::starting_at(at(1000));
        e.sample(at(1000));
        assert_eq!(e.rates(), Rates::default());
    }
}
