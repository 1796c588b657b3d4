//! Memory hints for the dataplane: cache prefetch (DPDK's
//! `rte_prefetch0`) for its burst pipeline (connection-table buckets, then
//! entries, as `rte_hash_lookup_bulk` does), and transparent huge pages for
//! its connection table.

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

/// Size of a transparent huge page on x86_64, bytes.
pub const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Asks the kernel to back the whole 2 MiB pages inside `len` bytes at
/// `addr` with transparent huge pages (`madvise(MADV_HUGEPAGE)`), so that
/// a large table touched at random (the connection table) costs far fewer
/// TLB misses. Call it before the memory is first written: pages already
/// faulted in as 4 KiB stay so until khugepaged collapses them. The
/// contents are not changed. With THP `never` the kernel takes the advice
/// and ignores it. Returns false when nothing was advised: the region
/// holds no whole huge page, or the kernel refused (built without THP,
/// or the range is not mapped).
pub fn advise_huge_pages(addr: *mut u8, len: usize) -> bool {
    let Some(start) = (addr as usize).checked_next_multiple_of(HUGE_PAGE_BYTES) else {
        return false;
    };
    let end = (addr as usize).saturating_add(len) / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES;
    if end <= start {
        return false;
    }
    // SAFETY: the range lies inside the caller's `len` bytes at `addr`,
    // and MADV_HUGEPAGE only sets a flag on the mapping (madvise(2): it
    // changes how pages are allocated, never their contents), so no
    // memory this program reads or writes changes; an address that is
    // not mapped gives ENOMEM and nothing else.
    unsafe {
        rustix::mm::madvise(
            addr.wrapping_add(start - addr as usize).cast(),
            end - start,
            rustix::mm::Advice::LinuxHugepage,
        )
    }
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_without_a_whole_huge_page_is_not_advised() {
        let mut small = vec![0u8; HUGE_PAGE_BYTES];
        // Unless the allocation happens to start on a 2 MiB boundary, no
        // whole huge page fits; one byte less never holds one.
        assert!(!advise_huge_pages(small.as_mut_ptr(), HUGE_PAGE_BYTES - 1));
        assert!(!advise_huge_pages(small.as_mut_ptr(), 0));
        prefetch0(small.as_ptr());
        prefetch0(core::ptr::null::<u8>());
    }

    #[test]
    fn a_large_region_is_advised_and_keeps_its_contents() {
        // A kernel built without THP refuses the advice (EINVAL); it has
        // no transparent_hugepage directory either.
        let thp = std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists();
        let n = 3 * HUGE_PAGE_BYTES;
        let mut v: Vec<u8> = Vec::with_capacity(n);
        assert_eq!(advise_huge_pages(v.as_mut_ptr(), n), thp);
        v.resize(n, 0xa5);
        assert_eq!(advise_huge_pages(v.as_mut_ptr(), n), thp);
        assert!(v.iter().all(|b| *b == 0xa5));
        // The last page of the address space holds no whole huge page,
        // and rounding up from it must not wrap to address 0.
        assert!(!advise_huge_pages(
            std::ptr::without_provenance_mut(usize::MAX),
            1
        ));
    }
}
