//! l4vs benchmarks: the code the benchmark binaries share.
//!
//! - `l4vs-gen`: a traffic generator over a DPDK port ([`traffic`] builds
//!   and checks what it sends; the binary does the I/O).
//! - `l4vs-fwd`: the I/O ceiling, a port doing only rx_burst -> tx_burst.
//! - `l4vs-cycles`: cycles per packet of the dataplane in process
//!   ([`micro`]).
//! - `l4vs-bench`: runs them all and writes bench/RESULTS.md with plots
//!   ([`report`]).
//!
//! The binaries exchange [`results`] as JSON. Nothing here asserts a
//! timing: tests check that the benchmarks measure what they claim to,
//! never how fast anything is.

pub mod dpdk;
pub mod micro;
pub mod report;
pub mod results;
pub mod suite;
pub mod traffic;
pub mod tsc;
