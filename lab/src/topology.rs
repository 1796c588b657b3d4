//! The lab topology: its fixed addresses, the forwarding modes, and [`Lab`],
//! which builds the namespaces and owns them until it is dropped.
//!
//! ```text
//!                       <prefix>-lan: bridge br0 (stp off, fwd delay 0)
//!        +------------------+-----------+-----------+-----------+
//!   p-client            p-director    p-rs1       p-rs2       p-rs3
//!        |                  |           |           |           |
//!   eth0 198.18.1.10/24   eth0 (no IP; eth0        eth0        eth0
//!   <prefix>-client       l4vs owns it  198.18.2.11 .12         .13
//!                         via AF_PACKET) <prefix>-rs1 ...
//! ```
//!
//! A second director's namespace, `<prefix>-director2` (port
//! `p-director2`), is on the bridge too, idle unless a test starts a
//! standby l4vs there ([`DIRECTOR2_CLIENT_ADDR`], [`DIRECTOR2_REAL_ADDR`]).
//!
//! * One L2 segment. The director has no kernel address: l4vs answers ARP
//!   for [`DIRECTOR_CLIENT_ADDR`] and [`DIRECTOR_REAL_ADDR`] itself.
//! * The client routes [`VIP_NET`] via [`DIRECTOR_CLIENT_ADDR`]; the real
//!   servers' default route is [`DIRECTOR_REAL_ADDR`] (NAT replies).
//! * Direct routing and tunnel: every real holds [`VIP`]/32 on `lo` with
//!   `arp_ignore=1`/`arp_announce=2` and an on-link route to
//!   [`CLIENT_NET`], so replies bypass the director.
//! * Tunnel: the kernel's `tunl0` when the `ipip` module exists, else the
//!   user-space helper of [`crate::ipip`].
//! * IPv6 is disabled and offloads are off on every veth end, so the only
//!   frames are the test's own, with full checksums and no super-frames.
//!
//! Every namespace name starts with the lab's prefix `l4vs-<pid>-<n>`, unique
//! per [`Lab`] in the machine, so labs (and tests) may run side by side.
//! [`Lab`]'s `Drop` kills every process in its namespaces and deletes them,
//! which also removes all their links; it runs on error, panic, and (with
//! [`crate::signals::install`]) after SIGINT/SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::client::Distribution;
use crate::ipip::TUN_DEV;
use crate::netns::{self, NETNS_PREFIX};
use crate::servers::READY_LINE;
use crate::signals;

/// Interface name of every endpoint namespace's veth (`iface=eth0` in configs).
pub const IFACE: &str = "eth0";
/// The bridge in the `lan` namespace.
pub const BRIDGE: &str = "br0";
/// Link MTU of every veth and the bridge.
pub const MTU: u16 = 1500;
/// Prefix length of the client and real-server subnets.
pub const SUBNET_PREFIX_LEN: u8 = 24;

/// The VIP subnet, routed by the client via the director.
pub const VIP_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
/// The virtual IP address of the services.
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
/// Port of the virtual HTTP service (TCP).
pub const HTTP_PORT: u16 = 80;
/// A second HTTP port on the real servers (plain HTTP, not TLS), for a
/// firewall-mark service that groups 80 and 443.
pub const HTTPS_PORT: u16 = 443;
/// Port of the virtual UDP echo service.
pub const UDP_ECHO_PORT: u16 = 53;
/// Port of the TCP echo service (RFC 862) of the real servers: the lab's
/// long-lived connections.
pub const TCP_ECHO_PORT: u16 = 7;
/// The TCP echo virtual service.
pub const VIP_ECHO: SocketAddrV4 = SocketAddrV4::new(VIP, TCP_ECHO_PORT);
/// The TCP virtual service.
pub const VIP_HTTP: SocketAddrV4 = SocketAddrV4::new(VIP, HTTP_PORT);
/// The UDP virtual service.
pub const VIP_UDP: SocketAddrV4 = SocketAddrV4::new(VIP, UDP_ECHO_PORT);

/// The client subnet.
pub const CLIENT_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 0);
/// The client's address.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
/// The director's address on the client subnet (the client's gateway for [`VIP_NET`]).
pub const DIRECTOR_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);

/// The real servers' gateway when two directors share the lab as an
/// active-standby pair: a VRRP virtual address ([`Lab::route_for_a_pair`]).
pub const PAIR_GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 254);

/// The real servers' subnet.
pub const REAL_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 0);
/// The director's address on the real-server subnet (the reals' default gateway).
pub const DIRECTOR_REAL_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);

/// A real server of the lab: its role/namespace suffix (also the name its
/// servers answer with) and its address (RIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealServer {
    /// `rs1`, `rs2`, `rs3`: the role and the name in answers.
    pub name: &'static str,
    /// The real server's own address on [`REAL_NET`].
    pub addr: Ipv4Addr,
}

/// The three real servers.
pub const REAL_SERVERS: [RealServer; 3] = [
    RealServer {
        name: "rs1",
        addr: Ipv4Addr::new(198, 18, 2, 11),
    },
    RealServer {
        name: "rs2",
        addr: Ipv4Addr::new(198, 18, 2, 12),
    },
    RealServer {
        name: "rs3",
        addr: Ipv4Addr::new(198, 18, 2, 13),
    },
];

/// Role of the client namespace.
pub const CLIENT: &str = "client";
/// Role of the director namespace.
pub const DIRECTOR: &str = "director";
/// Role of a second director's namespace (the standby of an
/// active-standby pair), on the same segment; nothing routes through it.
pub const DIRECTOR2: &str = "director2";
/// Addresses a second director takes, next to the first's.
pub const DIRECTOR2_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// See [`DIRECTOR2_CLIENT_ADDR`].
pub const DIRECTOR2_REAL_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);
/// Role of the namespace holding the bridge.
pub const LAN: &str = "lan";

/// How long a started helper (server, decapsulator) may take to say ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-request timeout of [`Lab::http_load`].
const LOAD_TIMEOUT_MS: u32 = 2000;
/// Per-probe timeout of [`Lab::udp_probe`].
const PROBE_TIMEOUT_MS: u32 = 1000;

/// How the director forwards to the real servers; decides the reals' setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Masquerading: the director rewrites addresses both ways; reals route
    /// back through it.
    Nat,
    /// IP-IP tunnel: reals decapsulate and answer the client directly.
    Tunnel,
    /// Direct routing: the director rewrites only the MAC; reals answer directly.
    DirectRouting,
}

impl Mode {
    /// `nat`, `tunnel` or `dr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Nat => "nat",
            Mode::Tunnel => "tunnel",
            Mode::DirectRouting => "dr",
        }
    }

    /// Guesses the mode from a config file name (`lab-dr.yaml`,
    /// `lab-tunnel.yaml`, `lab-ipip.yaml`, ...): `None` if the name says nothing.
    pub fn from_file_name(path: &Path) -> Option<Mode> {
        let stem = path.file_stem()?.to_str()?.to_ascii_lowercase();
        let words: Vec<&str> = stem.split(|c: char| !c.is_ascii_alphanumeric()).collect();
        let has = |w: &str| words.contains(&w);
        if has("tunnel") || has("tun") || has("ipip") {
            Some(Mode::Tunnel)
        } else if has("dr") || has("direct") || has("droute") {
            Some(Mode::DirectRouting)
        } else if has("nat") || has("masq") {
            Some(Mode::Nat)
        } else {
            None
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "nat" | "masq" | "masquerade" => Ok(Mode::Nat),
            "tunnel" | "tun" | "ipip" => Ok(Mode::Tunnel),
            "dr" | "direct" | "direct-routing" | "droute" => Ok(Mode::DirectRouting),
            _ => bail!("unknown forwarding mode {s:?} (nat, tunnel or dr)"),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How tunnel-mode reals decapsulate IP-IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decap {
    /// The kernel's `tunl0`.
    Kernel,
    /// The `l4vs-lab ipip-decap` helper with its TUN device.
    UserSpace,
}

static LAB_SEQ: AtomicU32 = AtomicU32::new(0);

/// A running lab. Dropping it kills every process in its namespaces and
/// deletes the namespaces (and with them every link it made).
pub struct Lab {
    prefix: String,
    mode: Mode,
    lab_bin: PathBuf,
    /// Created namespaces, in creation order; the teardown list.
    namespaces: Vec<String>,
    /// Helpers the lab started itself (servers, decapsulators), reaped on drop.
    children: Mutex<Vec<Child>>,
    decap: Option<Decap>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("prefix", &self.prefix)
            .field("mode", &self.mode)
            .field("namespaces", &self.namespaces)
            .field("decap", &self.decap)
            .finish_non_exhaustive()
    }
}

impl Lab {
    /// Builds the topology for `mode` and starts the real servers (and, in
    /// tunnel mode without kernel IP-IP, the decapsulation helpers).
    /// `lab_bin` is the `l4vs-lab` executable run inside the namespaces.
    ///
    /// # Errors
    /// If any step fails; the error names the failed command and its stderr,
    /// and everything built so far has been removed.
    pub fn up(mode: Mode, lab_bin: &Path) -> Result<Lab> {
        if !netns::is_executable(lab_bin) {
            bail!("lab binary {} is not an executable file", lab_bin.display());
        }
        let lab_bin = lab_bin
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", lab_bin.display()))?;
        let prefix = format!(
            "{NETNS_PREFIX}{}-{}",
            std::process::id(),
            LAB_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = Lab {
            prefix,
            mode,
            lab_bin,
            namespaces: Vec::new(),
            children: Mutex::new(Vec::new()),
            decap: None,
        };
        // On error `lab` drops here and tears down what exists.
        lab.build()
            .with_context(|| format!("bringing up the {mode} lab {}", lab.prefix))?;
        Ok(lab)
    }

    fn build(&mut self) -> Result<()> {
        let mut roles = vec![LAN, CLIENT, DIRECTOR, DIRECTOR2];
        roles.extend(REAL_SERVERS.iter().map(|r| r.name));
        for role in &roles {
            signals::check()?;
            let ns = self.ns(role);
            netns::add(&ns)?;
            self.namespaces.push(ns.clone());
            netns::ip_in(&ns, &["link", "set", "lo", "up"])?;
            // Before any link exists, so new interfaces inherit `default`.
            // IPv4 conf is inherited from the host's namespace: pin it.
            netns::sysctl_in(
                &ns,
                &[
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0",
                    "net.ipv4.ip_forward=0",
                    "net.ipv4.conf.all.accept_redirects=0",
                    "net.ipv4.conf.default.accept_redirects=0",
                    "net.ipv4.conf.all.send_redirects=0",
                    "net.ipv4.conf.default.send_redirects=0",
                ],
            )?;
        }

        let lan = self.ns(LAN);
        let mtu = MTU.to_string();
        netns::ip_in(
            &lan,
            &[
                "link",
                "add",
                BRIDGE,
                "mtu",
                &mtu,
                "type",
                "bridge",
                "stp_state",
                "0",
                "forward_delay",
                "0",
                "mcast_snooping",
                "0",
            ],
        )?;
        netns::ip_in(&lan, &["link", "set", BRIDGE, "up"])?;

        for role in roles.iter().filter(|r| **r != LAN) {
            signals::check()?;
            let ns = self.ns(role);
            let port = format!("p-{role}");
            netns::ip_in(
                &lan,
                &[
                    "link", "add", &port, "mtu", &mtu, "type", "veth", "peer", "name", IFACE,
                    "mtu", &mtu, "netns", &ns,
                ],
            )?;
            netns::offloads_off(&lan, &port)?;
            netns::offloads_off(&ns, IFACE)?;
            netns::ip_in(&lan, &["link", "set", &port, "master", BRIDGE, "up"])?;
            netns::ip_in(&ns, &["link", "set", IFACE, "up"])?;
        }

        // Client.
        let client = self.ns(CLIENT);
        netns::ip_in(
            &client,
            &[
                "addr",
                "add",
                &cidr(CLIENT_ADDR, SUBNET_PREFIX_LEN),
                "dev",
                IFACE,
            ],
        )?;
        netns::ip_in(
            &client,
            &[
                "route",
                "add",
                &cidr(VIP_NET, SUBNET_PREFIX_LEN),
                "via",
                &DIRECTOR_CLIENT_ADDR.to_string(),
                "dev",
                IFACE,
            ],
        )?;

        // Directors: eth0 up with no address; AF_PACKET owns it.
        for d in [DIRECTOR, DIRECTOR2] {
            netns::sysctl_in(
                &self.ns(d),
                &[&format!("net.ipv6.conf.{IFACE}.disable_ipv6=1")],
            )?;
        }

        for real in &REAL_SERVERS {
            signals::check()?;
            self.setup_real(real)?;
        }
        for real in &REAL_SERVERS {
            signals::check()?;
            self.start_servers(real)?;
        }
        Ok(())
    }

    fn setup_real(&mut self, real: &RealServer) -> Result<()> {
        let ns = self.ns(real.name);
        netns::ip_in(
            &ns,
            &[
                "addr",
                "add",
                &cidr(real.addr, SUBNET_PREFIX_LEN),
                "dev",
                IFACE,
            ],
        )?;
        netns::ip_in(
            &ns,
            &[
                "route",
                "add",
                "default",
                "via",
                &DIRECTOR_REAL_ADDR.to_string(),
                "dev",
                IFACE,
            ],
        )?;
        if self.mode == Mode::Nat {
            return Ok(());
        }
        // DR and tunnel: the VIP is local but never announced on the LAN.
        netns::sysctl_in(
            &ns,
            &[
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
                &format!("net.ipv4.conf.{IFACE}.arp_ignore=1"),
                &format!("net.ipv4.conf.{IFACE}.arp_announce=2"),
            ],
        )?;
        netns::ip_in(&ns, &["addr", "add", &cidr(VIP, 32), "dev", "lo"])?;
        netns::ip_in(
            &ns,
            &[
                "route",
                "add",
                &cidr(CLIENT_NET, SUBNET_PREFIX_LEN),
                "dev",
                IFACE,
                "scope",
                "link",
            ],
        )?;
        if self.mode == Mode::Tunnel {
            let decap = self.setup_decap(real)?;
            self.decap = Some(decap);
        }
        Ok(())
    }

    fn setup_decap(&mut self, real: &RealServer) -> Result<Decap> {
        let ns = self.ns(real.name);
        // Loading `ipip` creates the fallback `tunl0` in every namespace, so
        // the `add` may fail with "exists" while `set up` then works.
        let _ = netns::ip_in(&ns, &["link", "add", "tunl0", "type", "ipip"]);
        if netns::ip_in(&ns, &["link", "set", "tunl0", "up"]).is_ok() {
            netns::sysctl_in(&ns, &["net.ipv4.conf.tunl0.rp_filter=0"])?;
            return Ok(Decap::Kernel);
        }
        let mut cmd = Command::new(&self.lab_bin);
        cmd.args(["ipip-decap", "--tun", TUN_DEV]);
        self.start_helper(real.name, cmd)
            .with_context(|| format!("starting the IP-IP decapsulation helper in {ns}"))?;
        Ok(Decap::UserSpace)
    }

    fn start_servers(&self, real: &RealServer) -> Result<()> {
        let mut cmd = Command::new(&self.lab_bin);
        cmd.args(["serve", "--name", real.name])
            .arg("--http")
            .arg(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, HTTP_PORT).to_string())
            .arg("--http")
            .arg(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, HTTPS_PORT).to_string())
            .arg("--udp")
            .arg(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, UDP_ECHO_PORT).to_string())
            .arg("--echo")
            .arg(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, TCP_ECHO_PORT).to_string());
        self.start_helper(real.name, cmd)
            .with_context(|| format!("starting the servers of {}", real.name))
    }

    /// Starts `cmd` in `role`'s namespace and waits for its ready line.
    fn start_helper(&self, role: &str, cmd: Command) -> Result<()> {
        let ns = self.ns(role);
        let mut wrapped = netns::wrap_in_netns(&ns, &cmd);
        wrapped
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let what = netns::describe(&wrapped);
        let mut child = wrapped
            .spawn()
            .with_context(|| format!("cannot start `{what}`"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe for `{what}`"))?;
        // Track it before waiting, so a failure below still kills it.
        self.children
            .lock()
            .map_err(|_| anyhow!("lab child list poisoned"))?
            .push(child);

        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let got = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(got);
            // Keep reading so the helper never blocks on a full pipe.
            let mut sink = String::new();
            while matches!(reader.read_line(&mut sink), Ok(n) if n > 0) {
                sink.clear();
            }
        });
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            signals::check()?;
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Ok(line)) if line.trim() == READY_LINE => return Ok(()),
                Ok(Ok(line)) if line.is_empty() => {
                    bail!("`{what}` exited before it was ready (see its stderr above)")
                }
                Ok(Ok(line)) => bail!("`{what}` printed {line:?} instead of {READY_LINE:?}"),
                Ok(Err(e)) => bail!("reading the stdout of `{what}`: {e}"),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => bail!("`{what}` not ready within {READY_TIMEOUT:?}"),
            }
        }
    }

    /// The lab's namespace prefix (`l4vs-<pid>-<n>`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The forwarding mode the lab was built for.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// How tunnel-mode reals decapsulate (`None` in other modes).
    pub fn decap(&self) -> Option<Decap> {
        self.decap
    }

    /// The `l4vs-lab` executable the lab runs in its namespaces.
    pub fn lab_bin(&self) -> &Path {
        &self.lab_bin
    }

    /// The namespace name of `role` (`client`, `director`, `lan`, `rs1`..).
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// The namespaces created so far.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    fn known_ns(&self, role: &str) -> Result<String> {
        let ns = self.ns(role);
        if self.namespaces.contains(&ns) {
            Ok(ns)
        } else {
            bail!("the lab has no role {role:?} (namespace {ns})")
        }
    }

    /// A command that runs `program` in `role`'s namespace
    /// (`ip netns exec NS program`), for the caller to add arguments and
    /// stdio to, then to pass to [`Lab::spawn_in`] or run itself.
    pub fn command(&self, role: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        netns::exec_command(&self.ns(role), program)
    }

    /// Starts `cmd` inside `role`'s namespace. A command made by
    /// [`Lab::command`] for that role is spawned as it is, stdio included;
    /// any other is copied (program, args, env, cwd) into `ip netns exec`,
    /// with the default stdio. The process is killed when the lab drops,
    /// if still running.
    ///
    /// # Errors
    /// If `role` is unknown or the process cannot start.
    pub fn spawn_in(&self, role: &str, cmd: &mut Command) -> Result<Child> {
        let ns = self.known_ns(role)?;
        let mut wrapped;
        let cmd = if netns::is_wrapped_for(&ns, cmd) {
            cmd
        } else {
            wrapped = netns::wrap_in_netns(&ns, cmd);
            &mut wrapped
        };
        cmd.spawn()
            .with_context(|| format!("cannot start `{}`", netns::describe(cmd)))
    }

    /// Runs `program args` in `role`'s namespace to completion; returns stdout.
    ///
    /// # Errors
    /// If `role` is unknown or the command fails (the error holds its stderr).
    pub fn exec_in(&self, role: &str, program: &str, args: &[&str]) -> Result<String> {
        netns::exec_in(&self.known_ns(role)?, program, args)
    }

    /// Routes the lab as an active-standby pair of directors needs it
    /// (`configs/lab-*-ha-*.yaml`): the client reaches [`VIP_NET`] on its
    /// link, so it ARPs for the VIP and the VRRP master answers; in NAT
    /// mode the real servers' default route is [`PAIR_GATEWAY`], a
    /// virtual address the master answers for (with direct routing and
    /// tunnel they answer the client on their own).
    ///
    /// # Errors
    /// If an `ip route` fails.
    pub fn route_for_a_pair(&self) -> Result<()> {
        let net = format!("{VIP_NET}/24");
        self.ip(CLIENT, &["route", "replace", &net, "dev", IFACE])?;
        if self.mode == Mode::Nat {
            let gw = PAIR_GATEWAY.to_string();
            for r in REAL_SERVERS {
                self.ip(r.name, &["route", "replace", "default", "via", &gw])?;
            }
        }
        Ok(())
    }

    /// Runs `ip args` in `role`'s namespace (`ip -n NS args`).
    ///
    /// # Errors
    /// If `role` is unknown or `ip` fails.
    pub fn ip(&self, role: &str, args: &[&str]) -> Result<String> {
        netns::ip_in(&self.known_ns(role)?, args)
    }

    /// Runs `l4vs-lab` with `args` in the client namespace and parses its
    /// [`Distribution`]. Polls for signals while waiting.
    fn run_client(&self, args: &[String]) -> Result<Distribution> {
        let mut cmd = self.command(CLIENT, &self.lab_bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = netns::describe(&cmd);
        let mut child = self.spawn_in(CLIENT, &mut cmd)?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let read_all = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            thread::spawn(move || {
                let mut s = String::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_string(&mut s);
                }
                s
            })
        };
        let out = read_all(stdout.map(|p| Box::new(p) as _));
        let err = read_all(stderr.map(|p| Box::new(p) as _));
        let status = loop {
            if signals::interrupted() {
                let _ = child.kill();
                let _ = child.wait();
                signals::check()?;
            }
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(e).with_context(|| format!("waiting for `{what}`")),
            }
        };
        let out = out.join().unwrap_or_default();
        let err = err.join().unwrap_or_default();
        if !status.success() {
            bail!("`{what}` failed ({status}): {}", err.trim());
        }
        let mut dist =
            Distribution::parse(&out).with_context(|| format!("parsing the output of `{what}`"))?;
        dist.reasons = err.trim().to_string();
        Ok(dist)
    }

    /// `count` sequential HTTP GETs from the client to `target`, each on a new
    /// TCP connection (2 s timeout each).
    ///
    /// # Errors
    /// If the client cannot run; failed requests are counted, not errors.
    pub fn http_load(&self, target: SocketAddrV4, count: u32) -> Result<Distribution> {
        self.run_client(&[
            "http-load".into(),
            "--target".into(),
            target.to_string(),
            "--count".into(),
            count.to_string(),
            "--timeout-ms".into(),
            LOAD_TIMEOUT_MS.to_string(),
        ])
    }

    /// `count` UDP echo probes from the client to `target`, each from a new
    /// source port (1 s timeout each).
    ///
    /// # Errors
    /// If the client cannot run; losses are counted, not errors.
    pub fn udp_probe(&self, target: SocketAddrV4, count: u32) -> Result<Distribution> {
        self.udp_probe_shaped(target, count, &crate::client::ProbeShape::default())
    }

    /// `count` UDP echo probes from the client to `target`, each from a new
    /// source port, sent as `shape` says (1 s timeout each).
    ///
    /// # Errors
    /// If the client cannot run; losses are counted, not errors.
    pub fn udp_probe_shaped(
        &self,
        target: SocketAddrV4,
        count: u32,
        shape: &crate::client::ProbeShape,
    ) -> Result<Distribution> {
        let mut args = vec![
            "udp-probe".into(),
            "--target".into(),
            target.to_string(),
            "--count".into(),
            count.to_string(),
            "--timeout-ms".into(),
            PROBE_TIMEOUT_MS.to_string(),
        ];
        if let Some(n) = shape.size {
            args.extend(["--size".into(), n.to_string()]);
        }
        if let Some(t) = shape.ttl {
            args.extend(["--ttl".into(), t.to_string()]);
        }
        if let Some(a) = shape.reverse_fragments_from {
            args.extend(["--reverse-fragments-from".into(), a.to_string()]);
        }
        if let Some(a) = shape.bind {
            args.extend(["--bind".into(), a.to_string()]);
        }
        self.run_client(&args)
    }

    /// UDP echo probes from the client for [`VIP_UDP`], IP-IP encapsulated by
    /// the client itself straight to the real server `rip`: a stand-in for a
    /// tunnel-mode director when testing the reals' decapsulation. The
    /// client must have a route to `rip`.
    ///
    /// # Errors
    /// If the client cannot run; losses are counted, not errors.
    pub fn ipip_probe(&self, rip: Ipv4Addr, count: u32) -> Result<Distribution> {
        self.run_client(&[
            "ipip-probe".into(),
            "--rip".into(),
            rip.to_string(),
            "--src".into(),
            CLIENT_ADDR.to_string(),
            "--target".into(),
            VIP_UDP.to_string(),
            "--count".into(),
            count.to_string(),
            "--timeout-ms".into(),
            PROBE_TIMEOUT_MS.to_string(),
        ])
    }

    /// Retries single GETs from the client until one succeeds.
    ///
    /// # Errors
    /// If none succeeded within `timeout`, or on a signal.
    pub fn wait_tcp_ready(&self, target: SocketAddrV4, timeout: Duration) -> Result<()> {
        self.wait_tcp_ready_while(target, timeout, || Ok(()))
    }

    /// As [`Lab::wait_tcp_ready`], calling `still_ok` before every attempt
    /// (e.g. to fail fast when the director process has exited).
    ///
    /// # Errors
    /// As [`Lab::wait_tcp_ready`], or the first error of `still_ok`.
    pub fn wait_tcp_ready_while(
        &self,
        target: SocketAddrV4,
        timeout: Duration,
        mut still_ok: impl FnMut() -> Result<()>,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            signals::check()?;
            still_ok()?;
            let dist = self.run_client(&[
                "http-load".into(),
                "--target".into(),
                target.to_string(),
                "--count".into(),
                "1".into(),
                "--timeout-ms".into(),
                "500".into(),
                "--quiet".into(),
            ])?;
            if dist.total_served() > 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("{target} did not answer HTTP from the client within {timeout:?}");
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills everything and deletes the namespaces now; also what `Drop` does.
    ///
    /// # Errors
    /// The first failed namespace deletion (all are attempted).
    pub fn teardown(&mut self) -> Result<()> {
        let mut first_err = None;
        // Processes first: a namespace with live processes survives `del`.
        for ns in &self.namespaces {
            if let Ok(pids) = netns::pids(ns) {
                let _ = netns::signal(&pids, "KILL");
            }
        }
        if let Ok(mut children) = self.children.lock() {
            for mut child in children.drain(..) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        while let Some(ns) = self.namespaces.pop() {
            if let Err(e) = netns::destroy(&ns) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("l4vs-lab: tearing down {}: {e:#}", self.prefix);
        }
    }
}

fn cidr(addr: Ipv4Addr, len: u8) -> String {
    format!("{addr}/{len}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_from_file_name() {
        let m = |s: &str| Mode::from_file_name(Path::new(s));
        assert_eq!(m("configs/lab-nat.yaml"), Some(Mode::Nat));
        assert_eq!(m("configs/lab-dr.yaml"), Some(Mode::DirectRouting));
        assert_eq!(m("configs/lab-tunnel.yaml"), Some(Mode::Tunnel));
        assert_eq!(m("lab_ipip.yml"), Some(Mode::Tunnel));
        assert_eq!(m("address.yaml"), None, "no substring matches");
        assert_eq!(m("lab.yaml"), None);
    }

    #[test]
    fn mode_parse() {
        assert_eq!("DR".parse::<Mode>().unwrap(), Mode::DirectRouting);
        assert_eq!("tunnel".parse::<Mode>().unwrap(), Mode::Tunnel);
        assert_eq!("nat".parse::<Mode>().unwrap(), Mode::Nat);
        assert!("fullnat".parse::<Mode>().is_err());
    }

    #[test]
    fn addresses_are_in_the_benchmarking_range() {
        let in_range = |a: Ipv4Addr| a.octets()[0] == 198 && a.octets()[1] & 0xfe == 18;
        for a in [
            VIP,
            VIP_NET,
            CLIENT_ADDR,
            CLIENT_NET,
            DIRECTOR_CLIENT_ADDR,
            DIRECTOR_REAL_ADDR,
            REAL_NET,
        ]
        .into_iter()
        .chain(REAL_SERVERS.iter().map(|r| r.addr))
        {
            assert!(in_range(a), "{a} outside 198.18.0.0/15");
        }
    }
}
