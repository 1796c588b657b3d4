//! The time-stamp counter without the EAL: its frequency measured against
//! the monotonic clock.
//!
//! `rte_get_tsc_hz` needs an initialised EAL; the microbenchmarks run
//! without one, so they calibrate the TSC against [`Instant`] instead. On
//! a CPU with an invariant TSC (`constant_tsc nonstop_tsc` in
//! /proc/cpuinfo) the counter ticks at one rate whatever the core's clock
//! does, so cycles here are TSC ticks, not core clock cycles, if the core
//! runs at another frequency (turbo, power saving).

use std::time::{Duration, Instant};

/// The TSC frequency in Hz, measured over `span` of busy waiting.
pub fn calibrate(span: Duration) -> u64 {
    let t0 = Instant::now();
    let c0 = l4vs_dpdk::rdtsc();
    let mut t = t0.elapsed();
    while t < span {
        std::hint::spin_loop();
        t = t0.elapsed();
    }
    let c1 = l4vs_dpdk::rdtsc();
    let t = t0.elapsed().max(t);
    ((c1.wrapping_sub(c0)) as f64 / t.as_secs_f64()) as u64
}

/// Whether /proc/cpuinfo says the TSC is invariant (`constant_tsc` and
/// `nonstop_tsc`); `None` when it cannot be read.
pub fn invariant() -> Option<bool> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let flags = info.lines().find(|l| l.starts_with("flags"))?;
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    Some(has("constant_tsc") && has("nonstop_tsc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_gives_a_frequency() {
        // No timing is asserted: only that the counter moved.
        assert!(calibrate(Duration::from_millis(5)) > 0);
    }
}
