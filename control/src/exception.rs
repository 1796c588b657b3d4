//! The exception path: a kernel interface per DPDK port, so that the
//! director's own addresses work for ordinary programs (ping, ssh, health
//! checks, a BGP speaker) while DPDK owns the NIC.
//!
//! Each port gets a DPDK `net_tap` port whose kernel side is the interface
//! `l4vs-<port>` ([`crate::config::kernel_interface_name`]) in the
//! director's network namespace, with the port's MAC address and MTU and
//! the director's addresses of that port (its connected routes come with
//! them; no default route is added). The control thread owns its one RX
//! and one TX queue:
//!
//! - what the workers punt (verdict `ToControl`: TCP and UDP to the
//!   director's own addresses that no service takes, ICMP they do not
//!   answer, other protocols, ARP replies to the director's addresses so
//!   that the kernel's neighbour table learns too) goes out of the tap to
//!   the kernel, zero-copy (the mbuf moves);
//! - what the kernel sends on the interface comes in on the tap and leaves
//!   by the port through its inject ring (worker 0 transmits it).
//!
//! ARP stays consistent: the workers answer ARP for the director's
//! addresses themselves, with the port's MAC, which is the interface's; the
//! kernel's own ARP requests leave by the port and their replies reach both
//! the workers' neighbour table and the kernel's. IPv6 is turned off on
//! the interface (l4vs forwards IPv4 only). The interfaces go when l4vs
//! exits (a `net_tap` interface is not persistent).
//!
//! A port on a kernel interface of its own (`net_af_packet`, `net_af_xdp`,
//! `net_pcap` with `iface=`) shares its frames with that interface's
//! kernel stack, which would now take the director's addresses as its own
//! (Linux accepts a packet for any local address on any interface) and
//! answer twice. On that interface l4vs sets `arp_ignore` 8 (answer no
//! ARP) and `rp_filter` 1 (strict: the way back to the director's peers is
//! the `l4vs-` interface, so what arrives there directly is dropped).

use anyhow::{bail, Context, Result};
use l4vs_dpdk::{Mbuf, Mempool, Port, PortConfig, RxQueue, TxQueue};
use std::net::Ipv4Addr;
use std::process::Command;

/// Descriptors of each tap queue: the exception path carries little.
const TAP_DESC: u16 = 256;

/// One port's kernel interface, as the control thread drives it.
pub struct KernelPort {
    /// The kernel interface's name.
    pub iface: String,
    rx: RxQueue,
    tx: TxQueue,
    /// Stopped and closed by [`KernelPort::close`].
    port: Port,
}

impl KernelPort {
    /// Starts the tap of config port `index` (created by the EAL from
    /// [`crate::config::Config::eal_argv`]) with the data port's `mac` and
    /// `mtu`, and gives the kernel interface `addresses` (address, prefix
    /// length).
    ///
    /// # Errors
    /// The DPDK error of configuring or starting the tap, or `ip`'s error
    /// of adding an address.
    /// `shared` is the data port's own kernel interface, if it has one
    /// (see the module docs).
    pub fn open(
        index: usize,
        iface: &str,
        mac: [u8; 6],
        mtu: u16,
        addresses: &[(Ipv4Addr, u8)],
        shared: Option<&str>,
        pool: &Mempool,
    ) -> Result<KernelPort> {
        if let Some(shared) = shared {
            for (key, value) in [("arp_ignore", "8"), ("rp_filter", "1")] {
                let path = format!("/proc/sys/net/ipv4/conf/{shared}/{key}");
                std::fs::write(&path, value)
                    .with_context(|| format!("setting {path} to {value}"))?;
            }
        }
        let device = crate::config::kernel_tap_device(index);
        let port = Port::by_name(&device).with_context(|| format!("kernel interface {iface}"))?;
        let pc = PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: TAP_DESC,
            tx_desc: TAP_DESC,
            rss: false,
            promiscuous: false,
            // What the kernel sends is forwarded as it is, not parsed.
            rx_ip_checksum: false,
        };
        port.configure(&pc, pool)
            .with_context(|| format!("configuring the tap of {iface}"))?;
        port.set_mac_addr(mac)
            .with_context(|| format!("{iface}: setting the port's MAC address"))?;
        if let Err(e) = port.set_mtu(mtu) {
            if !e.is_not_supported() {
                return Err(e).with_context(|| format!("{iface}: setting mtu {mtu}"));
            }
        }
        port.start()
            .with_context(|| format!("starting the tap of {iface}"))?;
        let rx = port.rx_queue(0).context("tap RX queue")?;
        let tx = port.tx_queue(0).context("tap TX queue")?;
        // IPv4 only; the kernel would otherwise send router and neighbour
        // solicitations out of the port.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{iface}/disable_ipv6"), "1");
        for (addr, len) in addresses {
            ip(&["-4", "addr", "add", &format!("{addr}/{len}"), "dev", iface])?;
        }
        ip(&["link", "set", "dev", iface, "up"])?;
        Ok(KernelPort {
            iface: iface.to_owned(),
            rx,
            tx,
            port,
        })
    }

    /// Hands `frames` to the kernel; returns how many it took (the others
    /// are freed by the caller, and counted).
    pub fn to_kernel(&mut self, frames: &mut [Option<Mbuf>]) -> usize {
        self.tx.burst(frames)
    }

    /// What the kernel sent, at most `out.len()` frames; returns how many.
    pub fn from_kernel(&mut self, out: &mut [Option<Mbuf>]) -> usize {
        self.rx.burst(out)
    }

    /// Releases the queues, then stops and closes the tap (its kernel
    /// interface goes with it).
    pub fn close(self) {
        let KernelPort { rx, tx, port, .. } = self;
        drop(rx);
        drop(tx);
        let _ = port.stop();
        let _ = port.close();
    }
}

/// The priority of the policy rules of `through_vip` checks: before the
/// main table (32766), after the local one (0).
pub const VIP_RULE_PREF: u32 = 4243;

/// Installs the policy routes of `through_vip` checks in the director's
/// namespace, replacing those of before: for each route, a rule that sends
/// what has firewall mark `mark` to routing table `mark`, and there the
/// VIP by way of the real (`ip rule add fwmark M lookup M pref
/// VIP_RULE_PREF`, `ip route replace VIP/32 via REAL table M`). The real
/// must be on a connected subnet of the director (a DR real is).
///
/// # Errors
/// `ip`'s error, naming the command.
pub fn set_vip_routes(routes: &[crate::health::VipRoute]) -> Result<()> {
    clear_vip_routes();
    let mut marks: Vec<u32> = Vec::new();
    for r in routes {
        let mark = r.mark.to_string();
        if !marks.contains(&r.mark) {
            marks.push(r.mark);
            ip(&["route", "flush", "table", &mark]).ok();
            ip(&[
                "-4",
                "rule",
                "add",
                "fwmark",
                &mark,
                "lookup",
                &mark,
                "pref",
                &VIP_RULE_PREF.to_string(),
            ])?;
        }
        ip(&[
            "-4",
            "route",
            "replace",
            &format!("{}/32", r.vip),
            "via",
            &r.real.to_string(),
            "table",
            &mark,
        ])?;
    }
    Ok(())
}

/// Removes every rule [`set_vip_routes`] added (their tables' routes go
/// with the kernel interfaces, or are flushed at the next install).
pub fn clear_vip_routes() {
    // One rule per call; a bound on the loop, should `ip` misbehave.
    for _ in 0..65_536 {
        if ip(&["-4", "rule", "del", "pref", &VIP_RULE_PREF.to_string()]).is_err() {
            break;
        }
    }
}

/// Runs `ip ARGS`.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
