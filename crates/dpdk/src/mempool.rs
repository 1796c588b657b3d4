//! Packet buffer pools (`rte_pktmbuf_pool_create`).
//!
//! A [`Mempool`] owns its `rte_mempool`. Allocation and free are
//! thread-safe (the default `ring_mp_mc` ops); threads registered with
//! [`register_thread`](crate::register_thread) also get a per-lcore cache.
//!
//! Design note: an mbuf does not borrow its pool (it is one pointer, so
//! bursts can hand arrays of them to the driver), so the pool cannot know
//! statically that all its mbufs are back. Instead `Drop` frees the pool
//! only when none is out and no open port was configured with it, and
//! otherwise leaks it. A leak at shutdown costs nothing; a freed pool under
//! a live mbuf would be a use-after-free.

use std::ffi::CString;
use std::ptr::NonNull;

use l4vs_dpdk_sys as sys;

use crate::eal::with_eal;
use crate::error::{errno, Error, Result};
use crate::mbuf::Mbuf;

/// `RTE_MBUF_DEFAULT_BUF_SIZE`: 2048 bytes of data room plus the headroom.
pub const DEFAULT_DATA_ROOM: u16 = sys::L4VS_MBUF_DEFAULT_BUF_SIZE;

/// A pool of packet buffers.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<sys::rte_mempool>,
}

// SAFETY: an rte_mempool is designed to be shared between threads: get/put
// go through thread-safe ops (ring_mp_mc by default), counters are read
// without side effects, and the pointer stays valid until Drop.
unsafe impl Send for Mempool {}
// SAFETY: as for Send; every method takes &self and is thread-safe.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Create a pool of `n_mbufs` packet buffers with `data_room` bytes
    /// each (headroom included; usually [`DEFAULT_DATA_ROOM`]) and a
    /// per-lcore cache of `cache_size`, on NUMA socket `socket_id` (-1 for
    /// any).
    ///
    /// # Errors
    /// `rte_errno`'s text: `EEXIST` for a name already in use,
    /// `ENAMETOOLONG`, `ENOMEM`, `EINVAL` for a cache larger than allowed;
    /// `ENODEV` without a live EAL.
    pub fn create(
        name: &str,
        n_mbufs: u32,
        cache_size: u32,
        data_room: u16,
        socket_id: i32,
    ) -> Result<Mempool> {
        let context = format!("mempool create {name:?}");
        let cname = CString::new(name).map_err(|_| Error::new(context.as_str(), errno::EINVAL))?;
        with_eal(&context, |reg| {
            // SAFETY: the EAL is live; cname is a valid C string for the
            // call (DPDK copies the name).
            let raw = unsafe {
                sys::rte_pktmbuf_pool_create(
                    cname.as_ptr(),
                    n_mbufs,
                    cache_size,
                    0,
                    data_room,
                    socket_id,
                )
            };
            let raw = NonNull::new(raw).ok_or_else(|| Error::last(context.as_str()))?;
            reg.live_objects += 1;
            Ok(Mempool { raw })
        })
    }

    /// One mbuf, reset and empty, or `None` when the pool is exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid while self lives; a non-NULL result is a
        // fresh mbuf with refcnt 1 that nobody else references.
        unsafe { Mbuf::from_raw(sys::l4vs_pktmbuf_alloc(self.raw.as_ptr())) }
    }

    /// Fill every entry of `out` with a fresh mbuf, all or nothing
    /// (`rte_pktmbuf_alloc_bulk`); `false` if the pool has too few.
    /// Entries should be `None` on entry: an mbuf left there is leaked.
    pub fn alloc_bulk(&self, out: &mut [Option<Mbuf>]) -> bool {
        debug_assert!(
            out.iter().all(Option::is_none),
            "alloc_bulk over live mbufs"
        );
        let Ok(n) = u32::try_from(out.len()) else {
            return false;
        };
        // SAFETY: Option<Mbuf> has the layout of *mut rte_mbuf (asserted in
        // mbuf.rs); on success DPDK writes n valid, exclusively owned mbuf
        // pointers into the n slots, on failure it writes nothing.
        let ret =
            unsafe { sys::l4vs_pktmbuf_alloc_bulk(self.raw.as_ptr(), out.as_mut_ptr().cast(), n) };
        ret == 0
    }

    /// Mbufs in the pool, per-lcore caches included.
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid; the count is read without side effects.
        unsafe { sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs out of the pool (held by the application or by drivers).
    pub fn in_use(&self) -> u32 {
        // SAFETY: as for available().
        unsafe { sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // A live Mempool implies a live EAL (it counts in live_objects).
        let _ = with_eal("mempool free", |reg| {
            let addr = self.raw.as_ptr() as usize;
            if reg.port_pools.iter().any(|&(_, p)| p == addr) || self.in_use() != 0 {
                // Leaked on purpose (see the module docs): stays live.
                return Ok(());
            }
            // SAFETY: no mbuf of this pool is out and no open port refers to
            // it (checked above under the registry lock), so nothing can
            // reach the pool after this.
            unsafe { sys::rte_mempool_free(self.raw.as_ptr()) };
            reg.live_objects -= 1;
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_data_room_is_dpdk_default() {
        assert_eq!(DEFAULT_DATA_ROOM, 2048 + sys::L4VS_PKTMBUF_HEADROOM);
    }

    #[test]
    fn create_without_eal_fails_cleanly() {
        let e = Mempool::create("nopool", 63, 0, DEFAULT_DATA_ROOM, -1).unwrap_err();
        assert!(e.to_string().contains("EAL is not initialised"), "{e}");
        let e = Mempool::create("a\0b", 63, 0, DEFAULT_DATA_ROOM, -1).unwrap_err();
        assert_eq!(e.code(), errno::EINVAL);
    }
}
