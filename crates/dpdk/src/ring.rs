//! Single-producer/single-consumer rings of mbufs (`rte_ring`), for handing
//! packets from one worker to another.
//!
//! [`Ring::create`] returns the two ends; each is `Send` but not `Clone`,
//! which is what makes the lock-free SP/SC ring operations sound: only one
//! thread can enqueue and only one can dequeue. The ring itself is freed
//! when both ends are gone, and any mbufs still in it are freed with it.

use std::ffi::{c_void, CString};
use std::ptr::NonNull;
use std::sync::Arc;

use l4vs_dpdk_sys as sys;

use crate::eal::with_eal;
use crate::error::{errno, Error, Result};
use crate::mbuf::Mbuf;

/// An SP/SC ring of mbufs, shared by its two ends.
#[derive(Debug)]
pub struct Ring {
    raw: NonNull<sys::rte_ring>,
    capacity: u32,
}

// SAFETY: the ring is a concurrent queue; the operations reachable through
// a shared Ring (count) are read-only, and enqueue/dequeue are reachable
// only through the unique producer/consumer ends (&mut self).
unsafe impl Send for Ring {}
// SAFETY: as for Send.
unsafe impl Sync for Ring {}

/// The enqueuing end of a [`Ring`].
#[derive(Debug)]
pub struct RingProducer {
    ring: Arc<Ring>,
}

/// The dequeuing end of a [`Ring`].
#[derive(Debug)]
pub struct RingConsumer {
    ring: Arc<Ring>,
}

impl Ring {
    /// Create a ring named `name` holding up to `size` mbufs, on any NUMA
    /// socket.
    ///
    /// # Errors
    /// `rte_errno`'s text: `EEXIST` for a name in use, `EINVAL` for a size
    /// too large, `ENOMEM`; `ENODEV` without a live EAL.
    pub fn create(name: &str, size: u32) -> Result<(RingProducer, RingConsumer)> {
        let context = format!("ring create {name:?}");
        let cname = CString::new(name).map_err(|_| Error::new(context.as_str(), errno::EINVAL))?;
        with_eal(&context, |reg| {
            let flags = sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ | sys::RING_F_EXACT_SZ;
            // SAFETY: live EAL; cname a valid C string that DPDK copies.
            let raw = unsafe {
                sys::rte_ring_create(cname.as_ptr(), size, sys::L4VS_SOCKET_ID_ANY, flags)
            };
            let raw = NonNull::new(raw).ok_or_else(|| Error::last(context.as_str()))?;
            reg.live_objects += 1;
            let ring = Arc::new(Ring {
                raw,
                capacity: size,
            });
            Ok((
                RingProducer {
                    ring: Arc::clone(&ring),
                },
                RingConsumer { ring },
            ))
        })
    }

    /// Mbufs in the ring now (a snapshot while the other end works).
    pub fn len(&self) -> usize {
        // SAFETY: the ring is valid; the count is a read of its indexes.
        unsafe { sys::l4vs_ring_count(self.raw.as_ptr()) as usize }
    }

    /// Whether the ring is empty now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many mbufs the ring holds when full.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Both ends are gone, so this thread is the only user.
        let mut slots: [Option<Mbuf>; 32] = Default::default();
        loop {
            // SAFETY: sole user of a valid ring; slots has the layout of 32
            // `*mut rte_mbuf`, and the ring only ever held owned mbufs.
            let n = unsafe {
                sys::l4vs_ring_sc_dequeue_burst(
                    self.raw.as_ptr(),
                    slots.as_mut_ptr().cast(),
                    32,
                    std::ptr::null_mut(),
                )
            };
            if n == 0 {
                break;
            }
            slots.iter_mut().for_each(|s| drop(s.take()));
        }
        let _ = with_eal("ring free", |reg| {
            // SAFETY: the ring is empty and nothing refers to it any more.
            unsafe { sys::rte_ring_free(self.raw.as_ptr()) };
            reg.live_objects -= 1;
            Ok(())
        });
    }
}

impl RingProducer {
    /// The shared ring.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Enqueue the leading run of `Some` entries of `pkts` (at most
    /// `u32::MAX`) and return how many went in; those become `None`, the
    /// rest stay `Some` and in place.
    #[inline]
    pub fn enqueue_burst(&mut self, pkts: &mut [Option<Mbuf>]) -> usize {
        let n = pkts.iter().position(Option::is_none).unwrap_or(pkts.len());
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        // SAFETY: this is the ring's only producer (RingProducer is unique
        // and &mut); the first n entries are owned mbuf pointers in the
        // layout of `void *`, whose ownership moves into the ring.
        let done = unsafe {
            sys::l4vs_ring_sp_enqueue_burst(
                self.ring.raw.as_ptr(),
                pkts.as_ptr().cast::<*mut c_void>(),
                n,
                std::ptr::null_mut(),
            )
        } as usize;
        for slot in &mut pkts[..done] {
            // The ring owns these now.
            std::mem::forget(slot.take());
        }
        done
    }
}

impl RingConsumer {
    /// The shared ring.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Dequeue up to `out.len()` mbufs into the front of `out` and return
    /// how many. Entries should be `None` on entry: an mbuf left in a
    /// filled slot is leaked.
    #[inline]
    pub fn dequeue_burst(&mut self, out: &mut [Option<Mbuf>]) -> usize {
        debug_assert!(out.iter().all(Option::is_none), "dequeue over live mbufs");
        let n = u32::try_from(out.len()).unwrap_or(u32::MAX);
        // SAFETY: this is the ring's only consumer; out has the layout of n
        // `void *` slots, and each dequeued pointer is an owned mbuf put in
        // by the producer, now owned by its slot.
        let got = unsafe {
            sys::l4vs_ring_sc_dequeue_burst(
                self.ring.raw.as_ptr(),
                out.as_mut_ptr().cast(),
                n,
                std::ptr::null_mut(),
            )
        };
        got as usize
    }
}
