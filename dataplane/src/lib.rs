//! The l4vs per-packet logic: classify, connection table, schedulers and
//! forwarders.
//!
//! This crate never links DPDK. A worker takes a packet as a [`PacketBuf`]
//! (an mbuf in production, a byte buffer with headroom in tests), the port
//! it came in on and the current time, edits the packet in place, and
//! returns a [`Verdict`]. Everything it needs is either owned by the worker
//! (connection table shard, scheduler state, counters) or shared read-only
//! (the [`Snapshot`] of services) or lock-free (the [`NeighborTable`]).
//! Nothing on the per-packet path allocates, locks, logs or formats.

pub mod conn;
pub mod difftest;
pub mod frag;
pub mod fragtable;
pub mod lcore;
pub mod model;
pub mod neighbor;
pub mod packet;
pub mod rings;
pub mod sched;
pub mod snapshot;
pub mod state;
pub mod steer;
pub mod testpkt;
pub mod traffic;
pub mod verdict;
pub mod worker;

pub use model::{
    ForwardMethod, MarkRule, Persistence, Protocol, Real, SchedulerKind, Service, ServiceOptions,
};
pub use neighbor::NeighborTable;
pub use packet::{PacketBuf, VecPacket};
pub use sched::{RealStats, SchedPacket, Scheduler};
pub use snapshot::{CompiledService, LocalAddress, PortInfo, Snapshot, SnapshotError};
pub use verdict::{Counters, DropReason, Verdict};
pub use worker::{Worker, WorkerConfig};
