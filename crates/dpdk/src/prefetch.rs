//! Cache prefetch hints: DPDK's `rte_prefetch0`, for the dataplane's
//! burst pipeline (connection-table buckets, then entries, as
//! `rte_hash_lookup_bulk` does).

/// Asks the CPU to bring the cache line holding `addr` into every cache
/// level (x86 `PREFETCHT0`, DPDK's `rte_prefetch0`). A hint only: it reads
/// nothing the program sees, never faults (an unmapped or dangling address
/// is ignored by the CPU), and does nothing on architectures other than
/// x86_64.
#[inline(always)]
pub fn prefetch0<T>(addr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint with no architectural effect: it cannot
    // fault, read into a register or write memory, whatever `addr` is
    // (Intel SDM vol. 2B, PREFETCHh: "does not affect program behavior");
    // the SSE feature it needs is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}
