//! The `l4vs` director: configuration, DPDK port glue, workers and the
//! control thread. The binary (`main.rs`) is a thin CLI over this library.

pub mod adm;
pub mod admin;
pub mod config;
pub mod director;
pub mod estimator;
pub mod exception;
pub mod health;
pub mod import;
pub mod logging;
pub mod mbuf_packet;
pub mod metrics;
pub mod plan;
pub mod port_io;
pub mod printable;
pub mod startup;
pub mod stats;
pub mod sync;
pub mod table;
pub mod vrrp;
