//! Start-up checks: what `l4vs run` verifies about the machine before EAL
//! starts, and the per-port locks that keep a second l4vs off the ports one
//! already drives.
//!
//! DPDK reports these conditions late, under another name, or not at all:
//! a missing kernel interface or a missing `CAP_NET_RAW` ends as "No such
//! device" from the port lookup, missing hugepages as "Permission denied"
//! from EAL init, another DPDK process holding the runtime directory as no
//! error code, and a worker on an offline core only as a warning; nothing
//! stops a second l4vs on the same ports, where both forward and each
//! resets the other's connections. [`preflight`] finds each of them first
//! and says what is wrong, the config key it is about, and what to do.
//!
//! Each check is a pure function over the text of the kernel file it
//! reads (`/sys/devices/system/cpu/online`, `/proc/self/status`,
//! `/proc/meminfo`, `/proc/self/net/dev`, `/proc/locks`), so tests feed it
//! strings; [`preflight`] is the thin reader around them. A check whose
//! file cannot be read or parsed is skipped rather than refusing to start:
//! it only improves on DPDK's own report, which still follows.
//!
//! # Port locks
//!
//! Design note. Each port takes an exclusive `flock(2)` on a file in
//! [`LOCK_DIR`] named after what the port drives, held for the process
//! lifetime by the returned [`PortLocks`]; the file holds the owner's pid
//! for the next one's message. The kernel drops the lock when the process
//! ends, however it ends, so a `kill -9` leaves no stale lock, only a file
//! that the next owner reuses (files are never removed: removing one while
//! another process opens it would let two owners lock two different
//! files). The key is the resource, not the DPDK device name:
//! - an `af_packet`, `af_xdp`, `pcap`, `tap` or `tun` vdev: its kernel interface
//!   (`iface=`) in this network namespace. Two vdevs named differently on
//!   one interface still see the same traffic, while `eth0` in two
//!   namespaces are two interfaces (the lab runs directors side by side);
//! - a PCI device: its address, whatever its device arguments;
//! - any other vdev: its whole spec. Two identical specs of a process-local
//!   vdev (`net_ring0`) therefore conflict though the driver would allow
//!   both; naming them apart avoids that.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::ops::RangeInclusive;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::config::{echo, Config, Device, DeviceKind, Port};

/// Where the port locks live.
pub const LOCK_DIR: &str = "/run/l4vs";
/// The CPUs the kernel has online.
const CPU_ONLINE: &str = "/sys/devices/system/cpu/online";
/// The capability bit of `CAP_NET_RAW` (linux/capability.h).
const CAP_NET_RAW: u32 = 13;
/// The longest lock file name; a longer key is cut and given a hash.
const MAX_LOCK_NAME: usize = 200;

/// Why `l4vs run` does not start. Each message names the config key it is
/// about, where there is one, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A core in `workers.cores` or `eal.main_core` is not online.
    #[error("{key}: core {core} is not an online CPU of this machine (online: {online})")]
    CoreOffline {
        key: &'static str,
        core: u32,
        online: String,
    },
    /// A vdev that opens a kernel interface names none.
    #[error("port {port}: {driver} needs the kernel interface as iface=NAME (device {spec}): add it to ports[{index}].device")]
    NoInterfaceArg {
        port: String,
        index: usize,
        driver: &'static str,
        spec: String,
    },
    /// The exception path's kernel interface of a port exists already.
    #[error("port {port}: its kernel interface {iface} exists already (another l4vs in this namespace has it, or it is someone else's): stop that l4vs, remove the interface, rename ports[{index}], or set exception_path: false")]
    KernelInterfaceExists {
        port: String,
        index: usize,
        iface: String,
    },
    /// The exception path needs the TUN/TAP device.
    #[error("exception_path needs /dev/net/tun (the tun module) for its kernel interfaces: load it (modprobe tun) or set exception_path: false")]
    NoTun,
    /// The kernel interface a vdev opens does not exist.
    #[error("port {port}: interface {iface} does not exist (device {spec}): create it or fix ports[{index}].device")]
    NoInterface {
        port: String,
        index: usize,
        iface: String,
        spec: String,
    },
    /// A raw-socket vdev without `CAP_NET_RAW`.
    #[error("port {port}: needs CAP_NET_RAW for {driver} ports (ports[{index}].device: {spec}): run as root or grant cap_net_raw")]
    NoCapNetRaw {
        port: String,
        index: usize,
        driver: &'static str,
        spec: String,
    },
    /// Two ports of the config drive the same interface or device.
    #[error("ports[{index}].device: port {port} uses {what}, as port {first} (ports[{first_index}].device) does: give each port its own")]
    SharedResource {
        port: String,
        index: usize,
        what: String,
        first: String,
        first_index: usize,
    },
    /// Another process holds a port's lock.
    #[error("port {port} ({spec}) is in use by another l4vs ({}, lock {}): stop it first", pid_text(*.pid), .lock.display())]
    PortInUse {
        port: String,
        spec: String,
        pid: Option<u32>,
        lock: PathBuf,
    },
    /// A port's lock file cannot be created or locked.
    #[error("port {port}: cannot take the port lock {}: {error}{}", .lock.display(), lock_hint(.error))]
    Lock {
        port: String,
        lock: PathBuf,
        error: io::Error,
    },
    /// Another DPDK process holds the runtime directory EAL would use.
    #[error("eal.args: the DPDK runtime directory {} is in use by another DPDK process (pid {pid}, lock {}): stop it, or add --file-prefix NAME (or --no-shconf) to eal.args", .dir.display(), .lock.display())]
    RuntimeDirInUse {
        dir: PathBuf,
        lock: PathBuf,
        pid: u32,
    },
    /// EAL would need hugepages and none are reserved.
    #[error("no free hugepages (HugePages_Total 0): reserve some (echo 1024 > /sys/kernel/mm/hugepages/hugepages-{page_kb}kB/nr_hugepages) or add --no-huge to eal.args")]
    NoHugepages { page_kb: u64 },
    /// EAL would need hugepages and all reserved ones are taken.
    #[error("no free hugepages (HugePages_Total {total}, all in use): free some, reserve more (echo {more} > /sys/kernel/mm/hugepages/hugepages-{page_kb}kB/nr_hugepages) or add --no-huge to eal.args")]
    HugepagesInUse { total: u64, more: u64, page_kb: u64 },
}

fn pid_text(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_owned(),
    }
}

fn lock_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        ": run l4vs as root"
    } else {
        ""
    }
}

/// The port locks taken by [`preflight`]; each is held until this is
/// dropped (or the process ends).
#[derive(Debug)]
pub struct PortLocks {
    locks: Vec<(PathBuf, File)>,
}

impl PortLocks {
    /// The lock files held, in port order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.locks.iter().map(|(p, _)| p.as_path())
    }
}

/// Checks that the machine can run `cfg` and takes a lock on each of its
/// ports in [`LOCK_DIR`] (created, mode 0755). Call it before EAL init and
/// keep the result for as long as the ports are driven.
///
/// In order: every core in `eal.main_core` and `workers.cores` is online;
/// the kernel interface of every `af_packet`/`af_xdp`/`pcap` port
/// exists and the process has `CAP_NET_RAW`; no two ports drive the same
/// interface or device; no other process holds a port (see the module
/// doc); no other DPDK process holds the runtime directory EAL would use;
/// hugepages are free unless `eal.args` has `--no-huge`.
///
/// # Errors
/// The first check that fails, as a [`StartupError`].
pub fn preflight(cfg: &Config) -> Result<PortLocks, StartupError> {
    preflight_in(cfg, Path::new(LOCK_DIR))
}

/// [`preflight`] with the port locks in `lock_dir`, for tests.
///
/// # Errors
/// As [`preflight`].
pub fn preflight_in(cfg: &Config, lock_dir: &Path) -> Result<PortLocks, StartupError> {
    let status = read("/proc/self/status");
    let status = status.as_deref();
    if let Some(online) = read(CPU_ONLINE) {
        check_cores(cfg, &online)?;
    }
    if let Some(net_dev) = read("/proc/self/net/dev") {
        check_interfaces(cfg, &interfaces(&net_dev))?;
    } else {
        check_interfaces_named(cfg)?;
    }
    if let Some(caps) = status.and_then(cap_effective) {
        check_cap_net_raw(cfg, caps)?;
    }
    if cfg.exception_path && !Path::new("/dev/net/tun").exists() {
        return Err(StartupError::NoTun);
    }
    let netns = fs::read_link("/proc/self/ns/net")
        .ok()
        .and_then(|l| netns_id(&l.to_string_lossy()).map(str::to_owned));
    let locks = lock_ports(cfg, lock_dir, netns.as_deref())?;
    let uid = status
        .and_then(|s| status_field(s, "Uid"))
        .and_then(real_uid);
    if let Some(uid) = uid {
        let env = |k| std::env::var(k).ok();
        let dir = runtime_dir(
            &cfg.eal.args,
            uid,
            env("RUNTIME_DIRECTORY").as_deref(),
            env("XDG_RUNTIME_DIR").as_deref(),
        );
        if let Some(dir) = dir {
            check_runtime_dir(&dir)?;
        }
    }
    if !has_eal_option(&cfg.eal.args, "--no-huge") {
        if let Some(pages) = read("/proc/meminfo").and_then(|m| hugepages(&m)) {
            check_hugepages(pages, other_free_hugepages(pages.page_kb))?;
        }
    }
    Ok(locks)
}

/// The text of the file at `path`, `None` if it cannot be read.
fn read(path: &str) -> Option<String> {
    fs::read_to_string(path).ok()
}

// ---- cores -------------------------------------------------------------

/// Parses a kernel CPU list (`/sys/devices/system/cpu/online`) such as
/// `0-1,4`, into its ranges. Blank text is the
/// empty list.
///
/// # Errors
/// The text is not a comma-separated list of `N` and `N-M` (`N <= M`).
pub fn cpu_list(text: &str) -> Result<Vec<RangeInclusive<u32>>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let bad = || format!("not a CPU list: {}", echo(text));
    text.split(',')
        .map(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let a: u32 = a.parse().map_err(|_| bad())?;
            let b: u32 = b.parse().map_err(|_| bad())?;
            if a > b {
                return Err(bad());
            }
            Ok(a..=b)
        })
        .collect()
}

/// Checks that `eal.main_core` and every `workers.cores` entry are in the
/// CPU list `online`; an unparsable list skips the check.
///
/// The process's own affinity (`Cpus_allowed_list`) is no limit: it
/// leaves out the cores `isolcpus=` isolates, which are the ones workers
/// should run on, and a worker pins itself with `sched_setaffinity`.
///
/// # Errors
/// [`StartupError::CoreOffline`] for the first core that is not online,
/// `eal.main_core` first.
pub fn check_cores(cfg: &Config, online: &str) -> Result<(), StartupError> {
    let Ok(set) = cpu_list(online) else {
        return Ok(());
    };
    let cores = std::iter::once(("eal.main_core", cfg.eal.main_core))
        .chain(cfg.workers.cores.iter().map(|c| ("workers.cores", *c)));
    for (key, core) in cores {
        if !set.iter().any(|r| r.contains(&core)) {
            return Err(StartupError::CoreOffline {
                key,
                core,
                online: online.trim().to_owned(),
            });
        }
    }
    Ok(())
}

// ---- /proc/self/status -------------------------------------------------

/// The value of `name:` in `/proc/self/status` text, trimmed.
pub fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim())
    })
}

/// The effective capability set (`CapEff`, hex) from `/proc/self/status`
/// text; `None` if absent or malformed.
pub fn cap_effective(status: &str) -> Option<u64> {
    u64::from_str_radix(status_field(status, "CapEff")?, 16).ok()
}

/// The real uid, the first of the four ids of the `Uid` status field.
fn real_uid(uid_field: &str) -> Option<u32> {
    uid_field.split_whitespace().next()?.parse().ok()
}

// ---- ports: kernel interfaces ------------------------------------------

/// A vdev driver that works on a kernel network interface.
#[derive(Debug, Clone, Copy)]
struct KernelVdev {
    /// The driver's name for messages.
    driver: &'static str,
    /// Opens an existing interface through a raw socket (`af_packet`, `pcap`,
    /// `af_xdp`: needs `CAP_NET_RAW`), rather than creating one (`tap`).
    opens_existing: bool,
}

/// Vdev drivers on kernel interfaces, by name prefix: DPDK gives a vdev to
/// the driver whose name (or alias) its name starts with.
const KERNEL_VDEVS: &[(&str, KernelVdev)] = &[
    ("net_af_packet", AF_PACKET),
    ("eth_af_packet", AF_PACKET),
    ("net_af_xdp", AF_XDP),
    ("net_pcap", PCAP),
    ("eth_pcap", PCAP),
    ("net_tap", TAP),
    ("net_tun", TUN),
];
const AF_PACKET: KernelVdev = KernelVdev {
    driver: "net_af_packet",
    opens_existing: true,
};
const AF_XDP: KernelVdev = KernelVdev {
    driver: "net_af_xdp",
    opens_existing: true,
};
const PCAP: KernelVdev = KernelVdev {
    driver: "net_pcap",
    opens_existing: true,
};
const TAP: KernelVdev = KernelVdev {
    driver: "net_tap",
    opens_existing: false,
};
const TUN: KernelVdev = KernelVdev {
    driver: "net_tun",
    opens_existing: false,
};

fn kernel_vdev(device: &Device) -> Option<KernelVdev> {
    if device.kind != DeviceKind::Vdev {
        return None;
    }
    KERNEL_VDEVS
        .iter()
        .find(|(prefix, _)| device.name.starts_with(prefix))
        .map(|(_, v)| *v)
}

/// The `iface=` device argument, if any.
pub fn iface_arg(device: &Device) -> Option<&str> {
    device
        .args
        .as_deref()?
        .split(',')
        .find_map(|a| a.strip_prefix("iface="))
}

/// The interface names in `/proc/self/net/dev` text (this network
/// namespace's, unlike `/sys/class/net` after a bare `setns`).
pub fn interfaces(net_dev: &str) -> Vec<&str> {
    // Two header lines hold `|`, never `:`; a name never holds `:`.
    net_dev
        .lines()
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim()))
        .collect()
}

/// Checks that each `af_packet`/`af_xdp`/`pcap` port names an interface that is
/// in `present`.
///
/// # Errors
/// [`StartupError::NoInterfaceArg`] or [`StartupError::NoInterface`] for
/// the first port that fails.
pub fn check_interfaces(cfg: &Config, present: &[&str]) -> Result<(), StartupError> {
    check_interfaces_named(cfg)?;
    if cfg.exception_path {
        for (index, port) in cfg.ports.iter().enumerate() {
            let iface = crate::config::kernel_interface_name(&port.name);
            if present.contains(&iface.as_str()) {
                return Err(StartupError::KernelInterfaceExists {
                    port: port.name.clone(),
                    index,
                    iface,
                });
            }
        }
    }
    for (index, port) in cfg.ports.iter().enumerate() {
        if !kernel_vdev(&port.device).is_some_and(|v| v.opens_existing) {
            continue;
        }
        let Some(iface) = iface_arg(&port.device) else {
            continue;
        };
        if !present.contains(&iface) {
            return Err(StartupError::NoInterface {
                port: port.name.clone(),
                index,
                iface: iface.to_owned(),
                spec: port.device.spec(),
            });
        }
    }
    Ok(())
}

/// Checks that each `af_packet`/`af_xdp`/`pcap` port has an `iface=` argument.
fn check_interfaces_named(cfg: &Config) -> Result<(), StartupError> {
    for (index, port) in cfg.ports.iter().enumerate() {
        if let Some(v) = kernel_vdev(&port.device).filter(|v| v.opens_existing) {
            if iface_arg(&port.device).is_none() {
                return Err(StartupError::NoInterfaceArg {
                    port: port.name.clone(),
                    index,
                    driver: v.driver,
                    spec: port.device.spec(),
                });
            }
        }
    }
    Ok(())
}

/// Checks that the effective capabilities `cap_eff` hold `CAP_NET_RAW`
/// if a port opens a raw socket (`af_packet`, `af_xdp`).
///
/// # Errors
/// [`StartupError::NoCapNetRaw`] naming the first such port.
pub fn check_cap_net_raw(cfg: &Config, cap_eff: u64) -> Result<(), StartupError> {
    if cap_eff & (1 << CAP_NET_RAW) != 0 {
        return Ok(());
    }
    for (index, port) in cfg.ports.iter().enumerate() {
        if let Some(v) = kernel_vdev(&port.device).filter(|v| v.opens_existing) {
            return Err(StartupError::NoCapNetRaw {
                port: port.name.clone(),
                index,
                driver: v.driver,
                spec: port.device.spec(),
            });
        }
    }
    Ok(())
}

// ---- ports: locks ------------------------------------------------------

/// What a port drives, as its lock knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The lock file's name in the lock directory.
    pub file_name: String,
    /// For messages: `interface eth0`, `PCI device 0000:03:00.0`.
    pub what: String,
}

/// The `N` of a `net:[N]` link (`/proc/self/ns/net`).
pub fn netns_id(link: &str) -> Option<&str> {
    let id = link.strip_prefix("net:[")?.strip_suffix(']')?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then_some(id)
}

/// The resource `device` drives and its lock file name (see the module
/// doc); `netns` is the network namespace's id, for kernel interfaces.
pub fn resource(device: &Device, netns: Option<&str>) -> Resource {
    let (key, what) = match (kernel_vdev(device), iface_arg(device), device.kind) {
        (Some(_), Some(iface), _) => (
            format!("netns{}-iface={iface}", netns.unwrap_or("unknown")),
            format!("interface {iface}"),
        ),
        (_, _, DeviceKind::Pci) => (
            format!("pci={}", device.name),
            format!("PCI device {}", device.name),
        ),
        _ => (
            format!("vdev={}", device.spec()),
            format!("device {}", device.spec()),
        ),
    };
    Resource {
        file_name: lock_file_name(&key),
        what,
    }
}

/// `port-KEY.lock`, with bytes outside `[A-Za-z0-9._:=,+-]` written as
/// `%XX`, and a key too long for a file name cut and followed by a hash
/// of all of it.
fn lock_file_name(key: &str) -> String {
    let mut name = String::from("port-");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"._:=,+-".contains(&b) {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    if name.len() > MAX_LOCK_NAME {
        // Only ASCII was pushed, so any cut is on a character boundary.
        name.truncate(MAX_LOCK_NAME - 17);
        name.push_str(&format!("-{:016x}", fnv1a(key.as_bytes())));
    }
    name.push_str(".lock");
    name
}

/// 64-bit FNV-1a: stable across builds, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Takes the lock of every port of `cfg` in `dir` (created if missing,
/// mode 0755) and writes this process's pid into each lock file.
///
/// # Errors
/// [`StartupError::SharedResource`] if two ports drive one resource,
/// [`StartupError::PortInUse`] if another process holds a port's lock,
/// [`StartupError::Lock`] if the directory or a file cannot be made or
/// locked.
pub fn lock_ports(
    cfg: &Config,
    dir: &Path,
    netns: Option<&str>,
) -> Result<PortLocks, StartupError> {
    let resources: Vec<Resource> = cfg
        .ports
        .iter()
        .map(|p| resource(&p.device, netns))
        .collect();
    for (index, r) in resources.iter().enumerate() {
        if let Some(first_index) = resources[..index]
            .iter()
            .position(|f| f.file_name == r.file_name)
        {
            return Err(StartupError::SharedResource {
                port: cfg.ports[index].name.clone(),
                index,
                what: r.what.clone(),
                first: cfg.ports[first_index].name.clone(),
                first_index,
            });
        }
    }
    let mut locks = Vec::with_capacity(resources.len());
    for (port, r) in cfg.ports.iter().zip(&resources) {
        let path = dir.join(&r.file_name);
        let file = lock_port(port, dir, &path)?;
        locks.push((path, file));
    }
    Ok(PortLocks { locks })
}

/// Creates and locks `path` for `port`, then writes the pid into it.
fn lock_port(port: &Port, dir: &Path, path: &Path) -> Result<File, StartupError> {
    let failed = |error: io::Error| StartupError::Lock {
        port: port.name.clone(),
        lock: path.to_owned(),
        error,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(failed)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            // The owner writes its pid just after locking: it may not be
            // there yet.
            let pid = fs::read_to_string(path)
                .ok()
                .and_then(|t| t.trim().parse().ok());
            return Err(StartupError::PortInUse {
                port: port.name.clone(),
                spec: port.device.spec(),
                pid,
                lock: path.to_owned(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(failed(e)),
    }
    let pid = format!("{}\n", std::process::id());
    file.set_len(0).map_err(failed)?;
    file.write_all_at(pid.as_bytes(), 0).map_err(failed)?;
    Ok(file)
}

// ---- EAL: runtime directory --------------------------------------------

/// Whether `args` holds the EAL option `name`, alone or as `name=VALUE`.
fn has_eal_option(args: &[String], name: &str) -> bool {
    eal_option(args, name).is_some()
}

/// The EAL option `name` in `args`: `Some(value)` (`None` when it has
/// none), or `None` when absent.
fn eal_option<'a>(args: &'a [String], name: &str) -> Option<Option<&'a str>> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == name {
            Some(args.get(i + 1).map(String::as_str))
        } else {
            a.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .map(Some)
        }
    })
}

/// The DPDK runtime directory EAL will lock for `args`, as DPDK 22.11's
/// `eal_create_runtime_dir` builds it: `$RUNTIME_DIRECTORY`, else
/// `/var/run` for root (`uid` 0), else `$XDG_RUNTIME_DIR` or `/tmp`; then
/// `dpdk/` and the `--file-prefix` (default `rte`). `None` when EAL keeps
/// no shared config (`--no-shconf`, `--in-memory`) or the process type is
/// chosen by hand (`--proc-type`: a secondary attaches on purpose).
pub fn runtime_dir(
    args: &[String],
    uid: u32,
    runtime_directory: Option<&str>,
    xdg_runtime_dir: Option<&str>,
) -> Option<PathBuf> {
    if ["--no-shconf", "--in-memory", "--proc-type"]
        .iter()
        .any(|o| has_eal_option(args, o))
    {
        return None;
    }
    let base = match (runtime_directory, uid, xdg_runtime_dir) {
        (Some(dir), _, _) => dir,
        (None, 0, _) => "/var/run",
        (None, _, Some(dir)) => dir,
        (None, _, None) => "/tmp",
    };
    let prefix = eal_option(args, "--file-prefix").flatten().unwrap_or("rte");
    Some(Path::new(base).join("dpdk").join(prefix))
}

/// The pid of a process other than `own_pid` holding a POSIX (or OFD)
/// write lock on the file with device number `dev` and inode `ino`, from
/// `/proc/locks` text (`1: POSIX  ADVISORY  WRITE 1234 00:1a:5678 0 EOF`,
/// the device as hex `MAJOR:MINOR`; waiting requests, marked `->`, do
/// not count).
pub fn posix_lock_holder(locks: &str, dev: u64, ino: u64, own_pid: u32) -> Option<u32> {
    let (major, minor) = dev_major_minor(dev);
    locks.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [_, kind, _, mode, pid, file, ..] = f.as_slice() else {
            return None;
        };
        if !matches!(*kind, "POSIX" | "OFDLCK") || *mode != "WRITE" {
            return None;
        }
        let mut parts = file.split(':');
        let maj = u64::from_str_radix(parts.next()?, 16).ok()?;
        let min = u64::from_str_radix(parts.next()?, 16).ok()?;
        let i: u64 = parts.next()?.parse().ok()?;
        let pid: u32 = pid.parse().ok()?;
        (maj == major && min == minor && i == ino && pid != own_pid && pid != 0).then_some(pid)
    })
}

/// glibc's `major()`/`minor()` of a Linux `dev_t`.
fn dev_major_minor(dev: u64) -> (u64, u64) {
    let major = ((dev & 0x0000_0000_000f_ff00) >> 8) | ((dev & 0xffff_f000_0000_0000) >> 32);
    let minor = (dev & 0x0000_0000_0000_00ff) | ((dev & 0x0000_0fff_fff0_0000) >> 12);
    (major, minor)
}

/// Checks that no other process holds the lock of the runtime config in
/// `dir`, which EAL's `rte_eal_init` fails on without an error code.
fn check_runtime_dir(dir: &Path) -> Result<(), StartupError> {
    let config = dir.join("config");
    let Ok(meta) = fs::metadata(&config) else {
        return Ok(());
    };
    let Some(locks) = read("/proc/locks") else {
        return Ok(());
    };
    match posix_lock_holder(&locks, meta.dev(), meta.ino(), std::process::id()) {
        Some(pid) => Err(StartupError::RuntimeDirInUse {
            dir: dir.to_owned(),
            lock: config,
            pid,
        }),
        None => Ok(()),
    }
}

// ---- EAL: hugepages ----------------------------------------------------

/// The default-size hugepages `/proc/meminfo` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hugepages {
    /// `HugePages_Total`.
    pub total: u64,
    /// `HugePages_Free`.
    pub free: u64,
    /// `Hugepagesize`, in kB.
    pub page_kb: u64,
}

/// The hugepage counts of `/proc/meminfo` text; `None` if a field is
/// missing or malformed (a kernel without hugetlbfs).
pub fn hugepages(meminfo: &str) -> Option<Hugepages> {
    let field = |name: &str| -> Option<u64> {
        meminfo.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key == name).then(|| value.split_whitespace().next()?.parse().ok())?
        })
    };
    Some(Hugepages {
        total: field("HugePages_Total")?,
        free: field("HugePages_Free")?,
        page_kb: field("Hugepagesize")?,
    })
}

/// Checks that hugepages are free: of the default size (`pages`) or of
/// another (`other_free`, from sysfs; `/proc/meminfo` shows only the
/// default size).
///
/// # Errors
/// [`StartupError::NoHugepages`] when none are reserved,
/// [`StartupError::HugepagesInUse`] when all are taken.
pub fn check_hugepages(pages: Hugepages, other_free: u64) -> Result<(), StartupError> {
    if pages.free > 0 || other_free > 0 {
        return Ok(());
    }
    if pages.total == 0 {
        Err(StartupError::NoHugepages {
            page_kb: pages.page_kb,
        })
    } else {
        Err(StartupError::HugepagesInUse {
            total: pages.total,
            more: pages.total.saturating_mul(2),
            page_kb: pages.page_kb,
        })
    }
}

/// Free hugepages of the sizes other than `default_kb`, from
/// `/sys/kernel/mm/hugepages/hugepages-<size>kB/free_hugepages`.
fn other_free_hugepages(default_kb: u64) -> u64 {
    let Ok(dir) = fs::read_dir("/sys/kernel/mm/hugepages") else {
        return 0;
    };
    let default = format!("hugepages-{default_kb}kB");
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_str() != Some(default.as_str()))
        .filter_map(|e| read(&e.path().join("free_hugepages").to_string_lossy()))
        .filter_map(|t| t.trim().parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests;
