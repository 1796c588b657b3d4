//! The l4vs lab: everything needed to exercise the director for real on one
//! machine without a NIC.
//!
//! The crate owns the test network and the programs at its ends, never the
//! director itself:
//!
//! * [`topology`]: the fixed addresses, [`Mode`], and [`Lab`], which builds
//!   network namespaces joined by veths on one bridge and removes all of them
//!   when dropped (also on error, panic, and SIGINT/SIGTERM once
//!   [`signals::install`] ran);
//! * [`netns`]: the `ip`/`ethtool`/`sysctl` plumbing, with errors that name
//!   the failed command and its stderr;
//! * [`servers`]: the real servers' HTTP and UDP echo applications;
//! * [`client`]: the HTTP load and UDP probe clients and [`Distribution`];
//! * [`ipip`]: user-space IP-IP decapsulation for kernels without `ipip`;
//! * [`demo`]: `l4vs-lab demo`, the lab plus the `l4vs` binary end to end;
//! * [`stub`]: a kernel-and-proxy stand-in for `l4vs`, to test the demo.
//!
//! Addresses come from 198.18.0.0/15 (RFC 2544) and traffic never leaves the
//! namespaces. Everything here needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN).

pub mod client;
pub mod demo;
pub mod hold;
pub mod ipip;
pub mod netns;
pub mod servers;
pub mod signals;
pub mod stub;
pub mod topology;

pub use client::Distribution;
pub use netns::NETNS_PREFIX;
pub use topology::{
    Decap, Lab, Mode, RealServer, BRIDGE, CLIENT, CLIENT_ADDR, CLIENT_NET, DIRECTOR, DIRECTOR2,
    DIRECTOR2_CLIENT_ADDR, DIRECTOR2_REAL_ADDR, DIRECTOR_CLIENT_ADDR, DIRECTOR_REAL_ADDR,
    HTTPS_PORT, HTTP_PORT, IFACE, LAN, MTU, PAIR_GATEWAY, REAL_NET, REAL_SERVERS,
    SUBNET_PREFIX_LEN, TCP_ECHO_PORT, UDP_ECHO_PORT, VIP, VIP_ECHO, VIP_HTTP, VIP_NET, VIP_UDP,
};
