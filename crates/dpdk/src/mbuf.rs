//! One owned packet buffer.
//!
//! An [`Mbuf`] owns one `rte_mbuf` (refcnt 1: this crate never clones
//! mbufs) and frees it on drop. Its views ([`Mbuf::data`],
//! [`Mbuf::data_mut`]) cover the first segment only; ports configured by
//! this crate never enable scattered RX, so received packets are one
//! segment as long as the pool's data room covers the MTU. Nothing here
//! panics.
//!
//! Field reads go through the C shim, one call each, so the layout of
//! `struct rte_mbuf`, which changes between DPDK releases, is never
//! written into Rust; the per-packet reads alone (the data view's three
//! fields, and `ol_flags` for the receive checksum offload's verdict) go
//! to offsets the C compiler computes from this DPDK's header
//! (`L4VS_MBUF_*_OFFSET` in shim.h), without a call.

use std::ptr::NonNull;

use l4vs_dpdk_sys as sys;

/// One owned packet buffer. Dropping it returns it to its pool.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// Burst I/O passes `&mut [Option<Mbuf>]` to DPDK as `struct rte_mbuf **`:
// the NonNull niche makes None the NULL pointer.
const _: () = {
    assert!(size_of::<Option<Mbuf>>() == size_of::<*mut sys::rte_mbuf>());
    assert!(align_of::<Option<Mbuf>>() == align_of::<*mut sys::rte_mbuf>());
};

// SAFETY: the mbuf is exclusively owned (refcnt 1, one Mbuf per pointer),
// and freeing it from any thread is safe with the pool's thread-safe ops.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Take ownership of a raw mbuf; `None` for NULL.
    ///
    /// # Safety
    /// `raw` is NULL or a valid mbuf from a pool that outlives it, with
    /// refcnt 1, and nothing else uses or frees it afterwards.
    #[inline]
    pub unsafe fn from_raw(raw: *mut sys::rte_mbuf) -> Option<Mbuf> {
        NonNull::new(raw).map(Mbuf)
    }

    /// Give up ownership; the caller must free the mbuf
    /// (`rte_pktmbuf_free`) or hand it to something that will.
    #[inline]
    pub fn into_raw(self) -> *mut sys::rte_mbuf {
        let raw = self.0.as_ptr();
        std::mem::forget(self);
        raw
    }

    /// The raw pointer, still owned by `self`.
    #[inline]
    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    /// The first segment's data: its start (`rte_pktmbuf_mtod`:
    /// `buf_addr + data_off`) and `data_len`, read from the mbuf's fields
    /// here rather than through a call into the C shim on every access.
    #[inline(always)]
    fn data_parts(&self) -> (*mut u8, usize) {
        let m = self.0.as_ptr().cast::<u8>();
        // SAFETY: the mbuf is valid and owned by `self`; the offsets are
        // those of `buf_addr` (a pointer), `data_off` and `data_len` (u16
        // each, asserted in shim.h) as the C compiler lays out this
        // DPDK's struct rte_mbuf, so each read is of an initialised field
        // of its type, naturally aligned (unaligned reads anyway, to rely
        // on nothing); nobody else writes them while we own the mbuf.
        let (addr, off, len) = unsafe {
            (
                m.add(sys::L4VS_MBUF_BUF_ADDR_OFFSET as usize)
                    .cast::<*mut u8>()
                    .read_unaligned(),
                m.add(sys::L4VS_MBUF_DATA_OFF_OFFSET as usize)
                    .cast::<u16>()
                    .read_unaligned(),
                m.add(sys::L4VS_MBUF_DATA_LEN_OFFSET as usize)
                    .cast::<u16>()
                    .read_unaligned(),
            )
        };
        (addr.wrapping_add(usize::from(off)), usize::from(len))
    }

    /// What the port's receive checksum offload found of the packet's
    /// IPv4 header checksum (`RTE_MBUF_F_RX_IP_CKSUM_GOOD` / `_BAD` in
    /// `ol_flags`): Some(true) good, Some(false) bad; None when the port
    /// did not verify it (`_UNKNOWN`: no offload asked, a device without
    /// it, not IPv4) and for `_NONE` (the header is whole but its checksum
    /// field is not right, as a virtual device may hand it over), so that
    /// the caller verifies it itself (and drops it, for `_NONE`).
    /// Read from the mbuf's field, without a call.
    #[inline(always)]
    pub fn rx_ip_checksum(&self) -> Option<bool> {
        let m = self.0.as_ptr().cast::<u8>();
        // SAFETY: the mbuf is valid and owned by `self`; the offset is that
        // of `ol_flags` (a u64, asserted in shim.h) in this DPDK's struct
        // rte_mbuf, an initialised field (drivers and the pool's reset set
        // it); read unaligned to rely on nothing.
        let flags = unsafe {
            m.add(sys::L4VS_MBUF_OL_FLAGS_OFFSET as usize)
                .cast::<u64>()
                .read_unaligned()
        };
        match flags & sys::L4VS_MBUF_F_RX_IP_CKSUM_MASK {
            sys::L4VS_MBUF_F_RX_IP_CKSUM_GOOD => Some(true),
            sys::L4VS_MBUF_F_RX_IP_CKSUM_BAD => Some(false),
            _ => None,
        }
    }

    /// The packet data: `data_len` bytes from `buf_addr + data_off`.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let (ptr, len) = self.data_parts();
        // SAFETY: DPDK keeps data_off + data_len within the buffer, which is
        // initialised memory of the pool (zeroed at creation or written by
        // a driver); `&self` prevents writes for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }

    /// The packet data, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (ptr, len) = self.data_parts();
        // SAFETY: as in data(); the mbuf is exclusively ours (refcnt 1) and
        // `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    /// Bytes of packet data (the first segment's `data_len`).
    #[inline]
    pub fn len(&self) -> usize {
        self.data_parts().1
    }

    /// Whether there is no packet data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole packet's length over all segments (`pkt_len`).
    #[inline]
    pub fn pkt_len(&self) -> usize {
        // SAFETY: reads a field of a valid mbuf.
        unsafe { sys::l4vs_pktmbuf_pkt_len(self.0.as_ptr()) as usize }
    }

    /// Free bytes before the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        // SAFETY: reads fields of a valid mbuf.
        usize::from(unsafe { sys::l4vs_pktmbuf_headroom(self.0.as_ptr()) })
    }

    /// Free bytes after the data (in the last segment).
    #[inline]
    pub fn tailroom(&self) -> usize {
        // SAFETY: reads fields of a valid mbuf.
        usize::from(unsafe { sys::l4vs_pktmbuf_tailroom(self.0.as_ptr()) })
    }

    /// Grow the data by `n` bytes at the front (`rte_pktmbuf_prepend`);
    /// the new bytes are not initialised by this call (they hold whatever
    /// the buffer held). `false`, and nothing changed, without enough
    /// headroom.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: valid, exclusively owned mbuf; DPDK checks the headroom.
        !unsafe { sys::l4vs_pktmbuf_prepend(self.0.as_ptr(), n) }.is_null()
    }

    /// Remove `n` bytes from the front (`rte_pktmbuf_adj`); `false`, and
    /// nothing changed, if the data is shorter.
    #[inline]
    pub fn adj(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: valid, exclusively owned mbuf; DPDK checks the length.
        !unsafe { sys::l4vs_pktmbuf_adj(self.0.as_ptr(), n) }.is_null()
    }

    /// Grow the data by `n` bytes at the end (`rte_pktmbuf_append`); the
    /// new bytes hold whatever the buffer held. `false`, and nothing
    /// changed, without enough tailroom or for a multi-segment mbuf.
    #[inline]
    pub fn append(&mut self, n: usize) -> bool {
        if !self.is_contiguous() {
            return false;
        }
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: valid, exclusively owned mbuf; DPDK checks the tailroom.
        !unsafe { sys::l4vs_pktmbuf_append(self.0.as_ptr(), n) }.is_null()
    }

    /// Shrink the data to `len` bytes; no-op if it is not longer. A
    /// multi-segment mbuf that shrinks loses its further segments.
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        let len = u16::try_from(len).unwrap_or(u16::MAX);
        // SAFETY: valid, exclusively owned mbuf; any freed further segments
        // belong to this mbuf's chain and nothing else references them.
        unsafe { sys::l4vs_pktmbuf_truncate(self.0.as_ptr(), len) }
    }

    /// The port the packet was received on (`mbuf->port`, set by the PMD).
    #[inline]
    pub fn port(&self) -> u16 {
        // SAFETY: reads a field of a valid mbuf.
        unsafe { sys::l4vs_pktmbuf_port(self.0.as_ptr()) }
    }

    /// Whether the packet is a single segment (`nb_segs == 1`).
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        // SAFETY: reads a field of a valid mbuf.
        unsafe { sys::l4vs_pktmbuf_nb_segs(self.0.as_ptr()) == 1 }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (and its chain); its pool outlives it
        // (pools with mbufs out are never freed, see mempool.rs).
        unsafe { sys::l4vs_pktmbuf_free(self.0.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_mbuf_is_a_nullable_pointer() {
        // SAFETY: NULL is allowed and yields None, touching nothing.
        assert!(unsafe { Mbuf::from_raw(std::ptr::null_mut()) }.is_none());
        let slots: [Option<Mbuf>; 4] = Default::default();
        // SAFETY: Option<Mbuf> has the layout of a pointer (asserted above),
        // and None is NULL by the niche guarantee of NonNull.
        let raw: [*mut sys::rte_mbuf; 4] = unsafe { std::mem::transmute(slots) };
        assert!(raw.iter().all(|p| p.is_null()));
    }
}
