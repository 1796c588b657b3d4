//! EAL arguments and port bring-up shared by `l4vs-gen` and `l4vs-fwd`.
//!
//! Each benchmark process is its own DPDK primary: its own
//! `--file-prefix`, `--no-shconf` (no shared config file, so no collision
//! with another process) and, by default, `--no-huge -m MB` (no hugepages
//! needed; `--in-memory` cannot be combined with `--no-huge`).

use anyhow::{bail, Context, Result};
use l4vs_dpdk::{Mempool, Port, PortConfig};
use std::time::{Duration, Instant};

/// How a benchmark process boots its EAL.
#[derive(Debug, Clone)]
pub struct EalOptions {
    /// Program name (argv[0]).
    pub program: String,
    /// The one lcore it runs on.
    pub core: usize,
    /// `--file-prefix`.
    pub file_prefix: String,
    /// Memory in MB with `--no-huge`; `None` = use hugepages.
    pub no_huge_mb: Option<u32>,
    /// The device: a vdev spec (`net_memif0,role=client,...`) or a PCI
    /// address with optional devargs.
    pub device: String,
    /// More EAL arguments, passed as they are.
    pub extra: Vec<String>,
}

/// Whether `device` names a virtual device (`net_...`) rather than a PCI
/// address.
pub fn is_vdev(device: &str) -> bool {
    device.starts_with("net_")
}

/// The ethdev name of a device spec: everything before the first comma.
pub fn device_name(device: &str) -> &str {
    device.split(',').next().unwrap_or(device)
}

impl EalOptions {
    /// The argv for `Eal::init`.
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![
            self.program.clone(),
            "-l".into(),
            self.core.to_string(),
            "--file-prefix".into(),
            self.file_prefix.clone(),
            "--no-shconf".into(),
            "--no-telemetry".into(),
            "--log-level=*:error".into(),
        ];
        if let Some(mb) = self.no_huge_mb {
            v.extend(["--no-huge".into(), "-m".into(), mb.to_string()]);
        }
        if is_vdev(&self.device) {
            v.extend(["--no-pci".into(), "--vdev".into(), self.device.clone()]);
        } else {
            v.extend(["-a".into(), self.device.clone()]);
        }
        v.extend(self.extra.iter().cloned());
        v
    }
}

/// Configures and starts `device` with one RX and one TX queue taking
/// mbufs from `pool`, then waits up to `link_timeout` for its link (not
/// at all for zero: a memif server's link comes up only when its client
/// connects).
///
/// # Errors
/// An unknown device, a failed DPDK call, or a link that stays down (for
/// memif: nobody at the other end of the socket).
pub fn open_port(device: &str, pool: &Mempool, link_timeout: Duration) -> Result<Port> {
    let name = device_name(device);
    let port = Port::by_name(name).with_context(|| format!("no DPDK port {name:?}"))?;
    let cfg = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 1024,
        tx_desc: 1024,
        rss: false,
        promiscuous: true,
        // The generator and io-fwd parse nothing: no work in the driver.
        rx_ip_checksum: false,
    };
    port.configure(&cfg, pool)
        .with_context(|| format!("configuring {name}"))?;
    port.start().with_context(|| format!("starting {name}"))?;
    let t0 = Instant::now();
    while !link_timeout.is_zero() && !port.link_up() {
        if t0.elapsed() > link_timeout {
            let _ = port.stop();
            let _ = port.close();
            bail!(
                "{name}: link still down after {:.1} s (for memif: is the other side running, \
                 with the same socket and id, one as server and one as client?)",
                link_timeout.as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_for_a_vdev_and_a_pci_device() {
        let mut o = EalOptions {
            program: "l4vs-gen".into(),
            core: 1,
            file_prefix: "g1".into(),
            no_huge_mb: Some(256),
            device: "net_memif0,role=client,socket=/tmp/x.sock".into(),
            extra: vec![],
        };
        let a = o.argv().join(" ");
        assert!(a.contains("-l 1 --file-prefix g1 --no-shconf"), "{a}");
        assert!(
            a.contains("--no-huge -m 256 --no-pci --vdev net_memif0,role=client"),
            "{a}"
        );
        o.device = "0000:03:00.0".into();
        o.no_huge_mb = None;
        let a = o.argv().join(" ");
        assert!(
            a.ends_with("-a 0000:03:00.0") && !a.contains("no-huge"),
            "{a}"
        );
        assert_eq!(device_name("net_memif0,role=server"), "net_memif0");
    }
}
