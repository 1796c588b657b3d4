//! The Environment Abstraction Layer: one [`Eal`] per process, thread
//! registration, the TSC, and the registry that keeps every other wrapper
//! from outliving EAL memory (see the crate docs).

use std::ffi::{c_char, CStr, CString};
use std::marker::PhantomData;
use std::sync::{Mutex, MutexGuard, PoisonError};

use l4vs_dpdk_sys as sys;

use crate::error::{errno, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EalState {
    Uninit,
    Live,
    CleanedUp,
}

/// Which way a claimed queue points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Rx,
    Tx,
}

/// Process-wide bookkeeping of EAL objects; see the crate docs.
///
/// Design note: every list here is tiny (a few ports, a few dozen queues)
/// and only touched on the slow path, so plain `Vec`s with linear scans are
/// enough; `const`-constructible, they need no lazy initialisation.
#[derive(Debug)]
pub(crate) struct Registry {
    state: EalState,
    /// Mempools and rings not yet freed.
    pub(crate) live_objects: usize,
    /// Queues with an owner: (port, queue, direction).
    pub(crate) queues: Vec<(u16, u16, Dir)>,
    /// Pools a port (not yet closed) was configured with: (port, pool address).
    pub(crate) port_pools: Vec<(u16, usize)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    state: EalState::Uninit,
    live_objects: 0,
    queues: Vec::new(),
    port_pools: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    // The registry's invariants hold between statements, so a panic while
    // it was locked leaves nothing half-done worth refusing service for.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Run `f` with the registry locked, if the EAL is initialised and not
/// cleaned up; DPDK calls made inside `f` therefore cannot race with
/// `rte_eal_cleanup` or with another control-path call.
pub(crate) fn with_eal<T>(context: &str, f: impl FnOnce(&mut Registry) -> Result<T>) -> Result<T> {
    let mut reg = registry();
    if reg.state != EalState::Live {
        return Err(Error::new(
            format!("{context}: EAL is not initialised"),
            errno::ENODEV,
        ));
    }
    f(&mut reg)
}

/// The initialised EAL. Only one per process; dropping it runs
/// `rte_eal_cleanup` unless DPDK objects are still alive.
///
/// Not `Send`: DPDK expects cleanup on the thread that initialised it.
pub struct Eal {
    _not_send: PhantomData<*const ()>,
}

impl std::fmt::Debug for Eal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eal").finish_non_exhaustive()
    }
}

impl Eal {
    /// Initialise the EAL (`rte_eal_init`). `args[0]` is the program name,
    /// like argv.
    ///
    /// # Errors
    /// With `rte_errno`'s text when `rte_eal_init` fails (a bad argument,
    /// no memory, ...), or code 0 when it fails without setting one (the
    /// runtime config locked by another primary process, among others:
    /// DPDK's log says which), `EALREADY` if an `Eal` was already created in this
    /// process, `EINVAL` for an argument containing NUL or an empty `args`.
    /// DPDK allows a retry after some failures only.
    pub fn init(args: &[String]) -> Result<Eal> {
        let mut reg = registry();
        if reg.state != EalState::Uninit {
            return Err(Error::new("EAL init", errno::EALREADY));
        }
        if args.is_empty() {
            return Err(Error::new(
                "EAL init: args[0] (program name) missing",
                errno::EINVAL,
            ));
        }
        let args = args
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| Error::new("EAL init: argument contains NUL", errno::EINVAL))?;
        let mut argv: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
        argv.push(std::ptr::null_mut());
        let argc = i32::try_from(args.len())
            .map_err(|_| Error::new("EAL init: too many arguments", errno::EINVAL))?;
        // SAFETY: argv holds argc pointers to NUL-terminated strings, plus a
        // NULL, as C's main() gets them; both are leaked below, so they
        // outlive every pointer EAL keeps (openlog keeps argv[0]'s basename).
        // EAL may permute the pointer array (getopt). The registry lock keeps
        // other wrappers from calling into DPDK meanwhile.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        // A few bytes, once per process: argv must live as long as it.
        std::mem::forget(args);
        std::mem::forget(argv);
        if ret < 0 {
            return Err(Error::last("EAL init"));
        }
        reg.state = EalState::Live;
        Ok(Eal {
            _not_send: PhantomData,
        })
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        let mut reg = registry();
        if reg.live_objects != 0 || !reg.queues.is_empty() {
            // Freeing EAL memory under live pools, rings or queues would
            // leave them dangling; at exit the OS reclaims it all anyway.
            return;
        }
        reg.state = EalState::CleanedUp;
        // SAFETY: the EAL was initialised by this Eal (only one exists), no
        // wrapper object still refers to EAL memory (checked above), and
        // the registry lock, now marked cleaned up, stops any further call.
        unsafe { sys::rte_eal_cleanup() };
    }
}

/// The TSC frequency in Hz (`rte_get_tsc_hz`); 0 before EAL init.
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a global set once by rte_eal_init; no preconditions.
    unsafe { sys::rte_get_tsc_hz() }
}

/// The time-stamp counter (`rte_rdtsc`).
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: executes rdtsc (or the arch's equivalent); no preconditions.
    unsafe { sys::l4vs_rdtsc() }
}

/// The DPDK version string, e.g. `"DPDK 22.11.11"`.
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated
    // string, valid before and after EAL init.
    unsafe { CStr::from_ptr(sys::rte_version()) }
        .to_string_lossy()
        .into_owned()
}

/// The calling thread's lcore id, or `u32::MAX` (`LCORE_ID_ANY`) for an
/// unregistered non-EAL thread.
pub fn lcore_id() -> u32 {
    // SAFETY: reads a thread-local variable; no preconditions.
    unsafe { sys::l4vs_lcore_id() }
}

/// Register the calling (non-EAL) thread with DPDK so that mempool caches
/// work for it (`rte_thread_register`); returns its lcore id.
///
/// # Errors
/// `ENODEV` if the EAL is not initialised, or `rte_errno`'s text (e.g. no
/// free lcore slot left under `RTE_MAX_LCORE`).
pub fn register_thread() -> Result<u32> {
    with_eal("register thread", |_| {
        // SAFETY: the EAL is live (checked by with_eal); the call only
        // touches this thread's lcore TLS and the EAL's lcore table.
        if unsafe { sys::rte_thread_register() } < 0 {
            return Err(Error::last("register thread"));
        }
        Ok(lcore_id())
    })
}

/// Release the calling thread's lcore id (`rte_thread_unregister`); does
/// nothing for a thread that was not registered or without a live EAL.
pub fn unregister_thread() {
    let _ = with_eal("unregister thread", |_| {
        // SAFETY: the EAL is live; the call is a no-op for a thread with no
        // registered lcore.
        unsafe { sys::rte_thread_unregister() };
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    // Unit tests never initialise the EAL (the integration test does), so
    // these check the behaviour without one.

    #[test]
    fn version_names_dpdk() {
        assert!(version().starts_with("DPDK "), "{}", version());
    }

    #[test]
    fn no_eal_no_registration() {
        let e = register_thread().unwrap_err();
        assert_eq!(e.code(), errno::ENODEV);
        assert!(e.to_string().contains("EAL is not initialised"), "{e}");
        unregister_thread();
        assert_eq!(lcore_id(), u32::MAX);
    }

    #[test]
    fn rdtsc_advances() {
        let a = rdtsc();
        let b = rdtsc();
        assert!(b >= a);
    }

    #[test]
    fn init_rejects_empty_args() {
        // Returns before touching DPDK, so the process's EAL stays unused.
        let e = Eal::init(&[]).unwrap_err();
        assert_eq!(e.code(), errno::EINVAL);
    }
}
