//! Ethernet ports (ethdev) and their RX/TX queues.
//!
//! [`Port`] is a copyable port id; its control methods serialise on the
//! crate registry and return DPDK's errno text. [`RxQueue`] and
//! [`TxQueue`] are the only owners of one queue each (claimed in the
//! registry, released on drop), so the burst calls, which do not lock,
//! can never run on a queue that another thread uses or that is being
//! reconfigured, stopped or closed.
//!
//! Burst I/O moves mbufs through `&mut [Option<Mbuf>]` slices that are
//! handed to the driver as `struct rte_mbuf **` as they are: no allocation,
//! no copy.

use std::ffi::{c_char, CStr, CString};

use l4vs_dpdk_sys as sys;

use crate::eal::{with_eal, Dir, Registry};
use crate::error::{errno, Error, Result};
use crate::mbuf::Mbuf;
use crate::mempool::Mempool;

/// How to set a port up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// RX queues, each with its own descriptor ring.
    pub rx_queues: u16,
    /// TX queues.
    pub tx_queues: u16,
    /// RX descriptors per queue; clamped to the device's limits.
    pub rx_desc: u16,
    /// TX descriptors per queue; clamped to the device's limits.
    pub tx_desc: u16,
    /// Spread RX over the queues by an RSS hash of IP/TCP/UDP headers, as
    /// far as the device supports it (masked by its
    /// `flow_type_rss_offloads`; no RSS if it supports none of them).
    /// Only used with more than one RX queue.
    pub rss: bool,
    /// Receive frames for any destination MAC.
    pub promiscuous: bool,
    /// Ask the device to verify received IPv4 header checksums
    /// (`RTE_ETH_RX_OFFLOAD_IPV4_CKSUM`) when it can: its verdict is then
    /// in each mbuf ([`crate::Mbuf::rx_ip_checksum`]). A device without
    /// the offload is configured without it
    /// ([`Port::rx_ip_checksum_offloaded`] says which).
    pub rx_ip_checksum: bool,
}

impl Default for PortConfig {
    /// One queue each way, 1024 descriptors, RSS, promiscuous and the
    /// IPv4 checksum offload (where the device has it) on.
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: true,
            promiscuous: true,
            rx_ip_checksum: true,
        }
    }
}

/// Basic port counters (`struct rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the hardware because no RX descriptor was free.
    pub imissed: u64,
    /// Erroneous packets received.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// An ethdev port, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Port {
    id: u16,
}

impl Port {
    /// The number of ports without an owner (`rte_eth_dev_count_avail`);
    /// 0 without a live EAL.
    pub fn count() -> u16 {
        // SAFETY: the EAL is live (with_eal); reads the device table.
        with_eal("port count", |_| {
            Ok(unsafe { sys::rte_eth_dev_count_avail() })
        })
        .unwrap_or(0)
    }

    /// All ports without an owner, by increasing id; empty without a live
    /// EAL.
    pub fn all() -> Vec<Port> {
        with_eal("port list", |_| {
            let mut ports = Vec::new();
            let mut id = 0;
            loop {
                // SAFETY: the EAL is live; any id is accepted, the result
                // is a valid port id or RTE_MAX_ETHPORTS at the end.
                let next = unsafe {
                    sys::rte_eth_find_next_owned_by(id, u64::from(sys::RTE_ETH_DEV_NO_OWNER))
                };
                match u16::try_from(next) {
                    Ok(next) if next < sys::L4VS_MAX_ETHPORTS => id = next,
                    _ => return Ok(ports),
                }
                ports.push(Port { id });
                id += 1;
            }
        })
        .unwrap_or_default()
    }

    /// The port named `name`: a vdev name such as `"net_af_packet0"` or a
    /// PCI address such as `"0000:01:00.0"`.
    ///
    /// # Errors
    /// `ENODEV` when no such port exists.
    pub fn by_name(name: &str) -> Result<Port> {
        let context = format!("port by name {name:?}");
        let cname = CString::new(name).map_err(|_| Error::new(context.as_str(), errno::EINVAL))?;
        with_eal(&context, |_| {
            let mut id = 0u16;
            // SAFETY: the EAL is live; cname is a valid C string and id a
            // valid out-pointer for the call.
            let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
            Error::check(&context, ret)?;
            Ok(Port { id })
        })
    }

    /// A port by id, if it exists.
    ///
    /// # Errors
    /// `ENODEV` when no port has this id.
    pub fn from_id(id: u16) -> Result<Port> {
        with_eal("port from id", |_| {
            Port::valid(id, "port from id")?;
            Ok(Port { id })
        })
    }

    fn valid(id: u16, context: &str) -> Result<()> {
        // SAFETY: callers hold the registry with a live EAL; any id is
        // accepted.
        if unsafe { sys::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(Error::new(format!("{context}: port {id}"), errno::ENODEV));
        }
        Ok(())
    }

    /// The port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The device name.
    ///
    /// # Errors
    /// `ENODEV` for a port that no longer exists.
    pub fn name(&self) -> Result<String> {
        let context = format!("port {} name", self.id);
        with_eal(&context, |_| {
            let mut buf = [0 as c_char; sys::L4VS_ETH_NAME_MAX_LEN as usize];
            // SAFETY: buf has RTE_ETH_NAME_MAX_LEN bytes, the size DPDK
            // requires; it writes a NUL-terminated name on success.
            let ret = unsafe { sys::rte_eth_dev_get_name_by_port(self.id, buf.as_mut_ptr()) };
            Error::check(&context, ret)?;
            // SAFETY: on success buf holds a NUL-terminated string.
            Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
                .to_string_lossy()
                .into_owned())
        })
    }

    fn info(&self, context: &str) -> Result<sys::rte_eth_dev_info> {
        Port::valid(self.id, context)?;
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: callers hold the registry with a live EAL; the port is
        // valid and info a valid out-pointer.
        let ret = unsafe { sys::rte_eth_dev_info_get(self.id, &mut info) };
        Error::check(context, ret)?;
        Ok(info)
    }

    fn ensure_no_queues(&self, reg: &Registry, context: &str) -> Result<()> {
        if reg.queues.iter().any(|&(p, _, _)| p == self.id) {
            return Err(Error::new(
                format!("{context}: RX/TX queues still owned (drop them first)"),
                errno::EBUSY,
            ));
        }
        Ok(())
    }

    /// Configure the port and set up its queues, RX queues taking mbufs
    /// from `pool` (`rte_eth_dev_configure`, `rte_eth_{rx,tx}_queue_setup`
    /// on the port's NUMA socket). The port must be stopped.
    ///
    /// `pool` is then referenced by the driver: dropping it before
    /// [`close`](Self::close) leaks it rather than freeing it.
    ///
    /// # Errors
    /// `EINVAL` for zero queues or more than the device has, `EBUSY` while
    /// queues of this port are owned, or the failing call's errno text.
    pub fn configure(&self, cfg: &PortConfig, pool: &Mempool) -> Result<()> {
        let context = format!("port {} configure", self.id);
        with_eal(&context, |reg| {
            self.ensure_no_queues(reg, &context)?;
            let info = self.info(&context)?;
            if cfg.rx_queues == 0
                || cfg.tx_queues == 0
                || cfg.rx_queues > info.max_rx_queues
                || cfg.tx_queues > info.max_tx_queues
            {
                return Err(Error::new(
                    format!(
                        "{context}: {} RX / {} TX queues asked, device has 1..={} / 1..={}",
                        cfg.rx_queues, cfg.tx_queues, info.max_rx_queues, info.max_tx_queues
                    ),
                    errno::EINVAL,
                ));
            }
            let mut conf = sys::rte_eth_conf::default();
            let rss_hf = sys::L4VS_ETH_RSS_IP_TCP_UDP & info.flow_type_rss_offloads;
            if cfg.rss && cfg.rx_queues > 1 && rss_hf != 0 {
                conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            }
            if cfg.rx_ip_checksum {
                conf.rxmode.offloads |= sys::L4VS_ETH_RX_OFFLOAD_IPV4_CKSUM & info.rx_offload_capa;
            }
            // The pool is referenced from here on, even if a step fails.
            let addr = pool.as_ptr() as usize;
            if !reg.port_pools.contains(&(self.id, addr)) {
                reg.port_pools.push((self.id, addr));
            }
            // SAFETY: live EAL, valid port, conf a valid configuration that
            // DPDK copies.
            let ret =
                unsafe { sys::rte_eth_dev_configure(self.id, cfg.rx_queues, cfg.tx_queues, &conf) };
            Error::check(&context, ret)?;
            let (mut rx_desc, mut tx_desc) = (cfg.rx_desc, cfg.tx_desc);
            // SAFETY: live EAL, configured port, valid in/out pointers.
            let ret = unsafe {
                sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut rx_desc, &mut tx_desc)
            };
            Error::check(&context, ret)?;
            // SAFETY: live EAL, valid port. -1 (SOCKET_ID_ANY) is passed on
            // as the unsigned value DPDK itself uses for it.
            let socket = unsafe { sys::rte_eth_dev_socket_id(self.id) } as u32;
            for q in 0..cfg.rx_queues {
                // SAFETY: configured port, q below its RX queue count, NULL
                // conf means the driver's defaults, and pool stays valid
                // while the port may use it (registered in port_pools).
                let ret = unsafe {
                    sys::rte_eth_rx_queue_setup(
                        self.id,
                        q,
                        rx_desc,
                        socket,
                        std::ptr::null(),
                        pool.as_ptr(),
                    )
                };
                Error::check(&format!("{context}: RX queue {q}"), ret)?;
            }
            for q in 0..cfg.tx_queues {
                // SAFETY: configured port, q below its TX queue count, NULL
                // conf means the driver's defaults.
                let ret = unsafe {
                    sys::rte_eth_tx_queue_setup(self.id, q, tx_desc, socket, std::ptr::null())
                };
                Error::check(&format!("{context}: TX queue {q}"), ret)?;
            }
            // SAFETY: live EAL, valid port.
            let ret = unsafe {
                if cfg.promiscuous {
                    sys::rte_eth_promiscuous_enable(self.id)
                } else {
                    sys::rte_eth_promiscuous_disable(self.id)
                }
            };
            // A device without a promiscuous switch (ENOTSUP) has no MAC
            // filter to switch off either.
            if ret != -errno::ENOTSUP {
                Error::check(&format!("{context}: promiscuous {}", cfg.promiscuous), ret)?;
            }
            Ok(())
        })
    }

    /// Start the port (`rte_eth_dev_start`).
    ///
    /// # Errors
    /// The errno text of `rte_eth_dev_start`.
    pub fn start(&self) -> Result<()> {
        let context = format!("port {} start", self.id);
        with_eal(&context, |_| {
            Port::valid(self.id, &context)?;
            // SAFETY: live EAL, valid port.
            Error::check(&context, unsafe { sys::rte_eth_dev_start(self.id) }).map(drop)
        })
    }

    /// Stop the port (`rte_eth_dev_stop`).
    ///
    /// # Errors
    /// `EBUSY` while queues of this port are owned; else the errno text.
    pub fn stop(&self) -> Result<()> {
        let context = format!("port {} stop", self.id);
        with_eal(&context, |reg| {
            self.ensure_no_queues(reg, &context)?;
            Port::valid(self.id, &context)?;
            // SAFETY: live EAL, valid port, no queue in use (checked).
            Error::check(&context, unsafe { sys::rte_eth_dev_stop(self.id) }).map(drop)
        })
    }

    /// Close the port (`rte_eth_dev_close`), releasing its queues and its
    /// hold on the mempool it was configured with. Stop it first.
    ///
    /// # Errors
    /// `EBUSY` while queues of this port are owned; else the errno text.
    pub fn close(&self) -> Result<()> {
        let context = format!("port {} close", self.id);
        with_eal(&context, |reg| {
            self.ensure_no_queues(reg, &context)?;
            Port::valid(self.id, &context)?;
            // SAFETY: live EAL, valid port, no queue in use (checked).
            Error::check(&context, unsafe { sys::rte_eth_dev_close(self.id) })?;
            reg.port_pools.retain(|&(p, _)| p != self.id);
            Ok(())
        })
    }

    /// The port's MAC address.
    ///
    /// # Errors
    /// `ENODEV` for a port that no longer exists.
    pub fn mac_addr(&self) -> Result<[u8; 6]> {
        let context = format!("port {} MAC address", self.id);
        with_eal(&context, |_| {
            let mut addr = sys::rte_ether_addr::default();
            // SAFETY: live EAL; addr a valid out-pointer.
            Error::check(&context, unsafe {
                sys::rte_eth_macaddr_get(self.id, &mut addr)
            })?;
            Ok(addr.addr_bytes)
        })
    }

    /// Sets the port's MAC address (`rte_eth_dev_default_mac_addr_set`;
    /// for a `net_tap` port, also the kernel interface's).
    ///
    /// # Errors
    /// `ENOTSUP` when the driver cannot change it, `EINVAL` for a
    /// multicast or zero address, `ENODEV` for a port that no longer
    /// exists.
    pub fn set_mac_addr(&self, mac: [u8; 6]) -> Result<()> {
        let context = format!("port {} MAC address", self.id);
        with_eal(&context, |_| {
            let mut addr = sys::rte_ether_addr { addr_bytes: mac };
            // SAFETY: live EAL; addr is a valid rte_ether_addr that DPDK
            // only reads during the call.
            Error::check(&context, unsafe {
                sys::rte_eth_dev_default_mac_addr_set(self.id, &mut addr)
            })
            .map(|_| ())
        })
    }

    /// The port's IP MTU in bytes (`rte_eth_dev_get_mtu`).
    ///
    /// # Errors
    /// `ENODEV` for a port that no longer exists.
    pub fn mtu(&self) -> Result<u16> {
        let context = format!("port {} MTU", self.id);
        with_eal(&context, |_| {
            let mut mtu = 0u16;
            // SAFETY: live EAL; mtu a valid out-pointer.
            Error::check(&context, unsafe {
                sys::rte_eth_dev_get_mtu(self.id, &mut mtu)
            })?;
            Ok(mtu)
        })
    }

    /// Sets the port's IP MTU in bytes (`rte_eth_dev_set_mtu`); call it
    /// after [`Port::configure`]. A device that cannot take it (outside its
    /// range, or a driver without MTU control) says so.
    ///
    /// # Errors
    /// `EINVAL` for an MTU the device refuses, `ENOTSUP` when the driver
    /// cannot set one, `ENODEV` for a port that no longer exists.
    pub fn set_mtu(&self, mtu: u16) -> Result<()> {
        let context = format!("port {} MTU {mtu}", self.id);
        with_eal(&context, |_| {
            // SAFETY: live EAL; a plain value call, the port id is checked
            // by DPDK.
            Error::check(&context, unsafe { sys::rte_eth_dev_set_mtu(self.id, mtu) }).map(|_| ())
        })
    }

    /// Whether the link is up (without waiting for negotiation); `false`
    /// also when it cannot be read.
    pub fn link_up(&self) -> bool {
        with_eal("link status", |_| {
            // SAFETY: live EAL; the shim validates the port id.
            Ok(unsafe { sys::l4vs_eth_link_up(self.id) } == 1)
        })
        .unwrap_or(false)
    }

    /// The link speed in Mbit/s as the driver reports it (without waiting
    /// for negotiation); `None` when it reports none (virtual devices
    /// often do not) or cannot be read.
    pub fn link_speed_mbps(&self) -> Option<u32> {
        with_eal("link speed", |_| {
            // SAFETY: live EAL; the shim validates the port id.
            Ok(unsafe { sys::l4vs_eth_link_speed(self.id) })
        })
        .ok()
        .and_then(|s| u32::try_from(s).ok())
        .filter(|s| *s != 0)
    }

    /// The port's basic counters.
    ///
    /// # Errors
    /// The errno text of `rte_eth_stats_get`.
    pub fn stats(&self) -> Result<PortStats> {
        let context = format!("port {} stats", self.id);
        with_eal(&context, |_| {
            let mut s = sys::rte_eth_stats::default();
            // SAFETY: live EAL; s a valid out-pointer.
            Error::check(&context, unsafe { sys::rte_eth_stats_get(self.id, &mut s) })?;
            Ok(PortStats {
                ipackets: s.ipackets,
                opackets: s.opackets,
                ibytes: s.ibytes,
                obytes: s.obytes,
                imissed: s.imissed,
                ierrors: s.ierrors,
                oerrors: s.oerrors,
                rx_nombuf: s.rx_nombuf,
            })
        })
    }

    /// The most RX queues the device supports.
    ///
    /// # Errors
    /// The errno text of `rte_eth_dev_info_get`.
    pub fn max_rx_queues(&self) -> Result<u16> {
        let context = format!("port {} info", self.id);
        with_eal(&context, |_| Ok(self.info(&context)?.max_rx_queues))
    }

    /// Whether the device can verify received IPv4 header checksums
    /// (`RTE_ETH_RX_OFFLOAD_IPV4_CKSUM` in its `rx_offload_capa`), which
    /// [`PortConfig::rx_ip_checksum`] then asks for.
    ///
    /// # Errors
    /// The errno text of `rte_eth_dev_info_get`.
    pub fn rx_ip_checksum_offloaded(&self) -> Result<bool> {
        let context = format!("port {} info", self.id);
        with_eal(&context, |_| {
            Ok(self.info(&context)?.rx_offload_capa & sys::L4VS_ETH_RX_OFFLOAD_IPV4_CKSUM != 0)
        })
    }

    /// The NUMA socket the device is attached to, -1 if unknown.
    pub fn socket_id(&self) -> i32 {
        // SAFETY: live EAL; any port id is accepted.
        with_eal("port socket", |_| {
            Ok(unsafe { sys::rte_eth_dev_socket_id(self.id) })
        })
        .unwrap_or(-1)
    }

    fn claim(&self, q: u16, dir: Dir) -> Result<()> {
        let context = format!("port {} {dir:?} queue {q}", self.id);
        with_eal(&context, |reg| {
            let info = self.info(&context)?;
            let configured = match dir {
                Dir::Rx => info.nb_rx_queues,
                Dir::Tx => info.nb_tx_queues,
            };
            if q >= configured {
                return Err(Error::new(
                    format!("{context}: port has {configured} configured"),
                    errno::EINVAL,
                ));
            }
            if reg.queues.contains(&(self.id, q, dir)) {
                return Err(Error::new(
                    format!("{context}: already owned"),
                    errno::EBUSY,
                ));
            }
            reg.queues.push((self.id, q, dir));
            Ok(())
        })
    }

    /// Take ownership of RX queue `q` of a configured port.
    ///
    /// # Errors
    /// `EINVAL` if the port has no such queue, `EBUSY` if it is owned.
    pub fn rx_queue(&self, q: u16) -> Result<RxQueue> {
        self.claim(q, Dir::Rx)?;
        Ok(RxQueue {
            port: self.id,
            queue: q,
        })
    }

    /// Take ownership of TX queue `q` of a configured port.
    ///
    /// # Errors
    /// `EINVAL` if the port has no such queue, `EBUSY` if it is owned.
    pub fn tx_queue(&self, q: u16) -> Result<TxQueue> {
        self.claim(q, Dir::Tx)?;
        Ok(TxQueue {
            port: self.id,
            queue: q,
        })
    }
}

fn release(port: u16, queue: u16, dir: Dir) {
    // Queues keep the EAL live, so with_eal only fails if it was never
    // claimed, which cannot be.
    let _ = with_eal("release queue", |reg| {
        reg.queues.retain(|&e| e != (port, queue, dir));
        Ok(())
    });
}

/// The owner of one RX queue. Receiving on a stopped port yields nothing.
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
}

impl RxQueue {
    /// The port id.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The queue id.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Receive up to `out.len()` packets (at most 65535) into the front of
    /// `out` (`rte_eth_rx_burst`) and return how many. Entries should be
    /// `None` on entry: an mbuf left in a filled slot is leaked.
    #[inline]
    pub fn burst(&mut self, out: &mut [Option<Mbuf>]) -> usize {
        debug_assert!(out.iter().all(Option::is_none), "rx burst over live mbufs");
        let n = u16::try_from(out.len()).unwrap_or(u16::MAX);
        // SAFETY: this is the queue's only owner, the queue exists on the
        // port and the EAL is live (both held by the claim). Option<Mbuf>
        // has the layout of *mut rte_mbuf; the driver writes at most n
        // valid mbuf pointers, each now exclusively ours, from a pool that
        // outlives them (pools with mbufs out are never freed).
        let got =
            unsafe { sys::l4vs_eth_rx_burst(self.port, self.queue, out.as_mut_ptr().cast(), n) };
        usize::from(got)
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        release(self.port, self.queue, Dir::Rx);
    }
}

/// The owner of one TX queue. Sending on a stopped port sends nothing.
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
}

impl TxQueue {
    /// The port id.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The queue id.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Send the leading run of `Some` entries of `pkts` (at most 65535;
    /// `rte_eth_tx_burst`) and return how many the driver took. Those
    /// entries become `None` (the driver owns and frees them); the unsent
    /// ones stay `Some` and in place, for the caller to retry or drop.
    #[inline]
    pub fn burst(&mut self, pkts: &mut [Option<Mbuf>]) -> usize {
        let n = pkts.iter().position(Option::is_none).unwrap_or(pkts.len());
        let n = u16::try_from(n).unwrap_or(u16::MAX);
        // SAFETY: this is the queue's only owner, the queue exists on the
        // port and the EAL is live (held by the claim). The first n entries
        // are Some, i.e. valid owned mbuf pointers in the layout of
        // *mut rte_mbuf; the driver takes ownership of the first `sent`.
        let sent =
            unsafe { sys::l4vs_eth_tx_burst(self.port, self.queue, pkts.as_mut_ptr().cast(), n) };
        let sent = usize::from(sent);
        for slot in &mut pkts[..sent] {
            // The driver owns these now: forget, do not free.
            std::mem::forget(slot.take());
        }
        sent
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        release(self.port, self.queue, Dir::Tx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_eal_no_ports() {
        assert_eq!(Port::count(), 0);
        assert!(Port::all().is_empty());
        let e = Port::by_name("net_ring0").unwrap_err();
        assert_eq!(e.code(), errno::ENODEV);
        assert!(!Port { id: 0 }.link_up());
        assert_eq!(Port { id: 0 }.link_speed_mbps(), None);
        assert!(Port { id: 0 }.rx_queue(0).is_err());
    }

    #[test]
    fn default_config() {
        let c = PortConfig::default();
        assert_eq!((c.rx_queues, c.tx_queues), (1, 1));
    }
}
