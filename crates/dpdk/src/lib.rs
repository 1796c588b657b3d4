//! Safe wrappers over DPDK for l4vs: EAL, packet buffer pools, mbufs,
//! ethdev ports with their RX/TX queues, mbuf rings between workers, and
//! the dataplane's memory hints (cache prefetch, huge pages).
//!
//! # Safety model
//!
//! DPDK objects live in EAL memory and must not be touched once
//! `rte_eal_cleanup` has run, and a port's queues must not be used while the
//! port is reconfigured, stopped or closed. This crate enforces both with a
//! small process-wide registry (slow path only, behind one mutex):
//!
//! - every [`Mempool`] and [`Ring`] counts as a live EAL object until it is
//!   really freed; [`Eal`]'s `Drop` skips `rte_eal_cleanup` while any live
//!   object or claimed queue remains (the process is exiting anyway);
//! - a [`Mempool`] that still has mbufs out, or that a port not yet closed
//!   was configured with, is leaked on drop instead of freed, so every
//!   [`Mbuf`] and every driver RX ring keeps pointing at valid memory;
//! - each RX/TX queue has at most one owner ([`RxQueue`], [`TxQueue`]), and
//!   [`Port::configure`], [`Port::stop`] and [`Port::close`] refuse with
//!   `EBUSY` while any queue of that port is owned;
//! - ethdev control calls are serialised by the registry mutex (DPDK's
//!   control path is not thread-safe).
//!
//! What is not checked: a mbuf handed to a foreign C API through
//! [`Mbuf::into_raw`], and EAL arguments that change mempool ops to a
//! non-thread-safe handler.
//!
//! The burst paths ([`RxQueue::burst`], [`TxQueue::burst`], the ring bursts)
//! neither lock nor allocate.
#![allow(unsafe_code)]

mod eal;
mod error;
mod hint;
mod log;
mod mbuf;
mod mempool;
mod port;
mod ring;

pub use eal::{lcore_id, rdtsc, register_thread, tsc_hz, unregister_thread, version, Eal};
pub use error::{Error, Result};
pub use hint::{advise_huge_pages, prefetch0, HUGE_PAGE_BYTES};
pub use log::{route_log, LogLevel, LogSink};
pub use mbuf::Mbuf;
pub use mempool::{Mempool, DEFAULT_DATA_ROOM};
pub use port::{Port, PortConfig, PortStats, RxQueue, TxQueue};
pub use ring::{Ring, RingConsumer, RingProducer};

/// The raw bindings, for what these wrappers do not cover.
pub use l4vs_dpdk_sys as sys;
