//! The run: for each director in turn, a fresh lab (same topology every
//! time), the real servers, the director, then the three workloads with
//! the director core's CPU measured around each, and the lab torn down.
//!
//! # Fairness
//!
//! The machine has two cores that everything shares. The client, the real
//! servers, the bridge and l4vs's control thread get the client core; the
//! director gets the other one:
//!
//! * processes are pinned with `taskset` (l4vs pins its worker itself);
//! * kernel packet processing is steered with RPS: the director
//!   namespace's `eth0` receives on the director core, every other
//!   interface (client, reals, the bridge's ports) on the client core. So
//!   nftables' forwarding, HAProxy's TCP stack and the AF_PACKET receive
//!   path under l4vs all run on the director core in softirq, where
//!   without RPS the veth would run them on the *sender's* core.
//!
//! The director's CPU is the busy time of its core over each workload
//! (`/proc/stat`), which includes that softirq work and cannot count a
//! tick twice; see [`crate::cpu`].
//!
//! # Cleanup
//!
//! Every process started here lives in a lab namespace; the [`Lab`] kills
//! them and deletes the namespaces when dropped, on error, panic, and
//! (through [`l4vs_lab::signals`]) SIGINT/SIGTERM.

use std::collections::HashSet;
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use l4vs_lab::{
    netns, signals, Lab, Mode, CLIENT, CLIENT_NET, DIRECTOR, HTTP_PORT, IFACE, LAN, REAL_NET,
    REAL_SERVERS, SUBNET_PREFIX_LEN, UDP_ECHO_PORT, VIP,
};

use crate::configs::{self, L4vsPort, NftSched, Topology};
use crate::cpu::{self, CoreLoad};
use crate::report::{Cell, Measure, Row};
use crate::udp::FloodResult;
use crate::wrk::{self, HttpMode};

/// nginx's port on the reals (and so the VIP's): apart from the lab's own
/// HTTP server on port 80, which keeps running.
pub const NGINX_PORT: u16 = 8080;
/// How long a director may take until the VIP answers.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a director may take to exit when asked.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time a client may take beyond its run before it is killed.
const CLIENT_GRACE: Duration = Duration::from_secs(30);

/// A director to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Director {
    /// The client straight to one real server: the ceiling of the lab.
    None,
    /// nftables DNAT in the director namespace's kernel.
    Nftables(NftSched),
    /// HAProxy in TCP mode.
    Haproxy,
    /// l4vs with this `workers.idle_sleep_us`, on this kind of port.
    L4vs(u32, L4vsPort),
}

impl Director {
    /// The row's name.
    pub fn label(self) -> String {
        match self {
            Director::None => "none (client → rs1 direct)".to_owned(),
            Director::Nftables(s) => format!("nftables DNAT, nftlb-style ({})", s.as_str()),
            Director::Haproxy => "HAProxy, TCP mode".to_owned(),
            Director::L4vs(0, port) => {
                format!("l4vs on {}, idle_sleep_us 0 (busy poll)", port.driver())
            }
            Director::L4vs(us, port) => format!("l4vs on {}, idle_sleep_us {us}", port.driver()),
        }
    }
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Directors in run order.
    pub directors: Vec<Director>,
    /// Measured seconds per workload.
    pub seconds: u32,
    /// Unmeasured warm-up before the measured workloads (keep-alive HTTP).
    pub warmup_secs: u32,
    /// wrk connections (wrk runs one thread).
    pub connections: u32,
    /// UDP flows (source ports) of the UDP client.
    pub udp_flows: u32,
    /// UDP datagrams in flight per flow.
    pub udp_window: u32,
    /// Core of the client, servers and bridge.
    pub client_core: usize,
    /// Core of the director.
    pub director_core: usize,
    /// The l4vs binary.
    pub l4vs: PathBuf,
    /// The l4vs-lab binary (real servers, readiness probes).
    pub lab_bin: PathBuf,
    /// This binary (its `udp-flood` runs in the client namespace).
    pub self_bin: PathBuf,
    /// Longest wait for a quiet machine before each director.
    pub quiet_wait: Duration,
    /// Keep the temp directory (configs, logs) instead of removing it.
    pub keep_temp: bool,
}

/// Programs found on the machine, or why not.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `wrk`.
    pub wrk: Option<PathBuf>,
    /// `nginx`.
    pub nginx: Option<PathBuf>,
    /// `haproxy`.
    pub haproxy: Option<PathBuf>,
    /// `nft`.
    pub nft: Option<PathBuf>,
}

impl Tools {
    /// Looks each up in `PATH` and the sbin directories.
    pub fn find() -> Tools {
        Tools {
            wrk: which("wrk"),
            nginx: which("nginx"),
            haproxy: which("haproxy"),
            nft: which("nft"),
        }
    }
}

/// The first executable `name` in `PATH`, `/usr/sbin` or `/sbin`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| netns::is_executable(p))
}

/// Everything a director's run needs besides its lab.
struct Ctx<'a> {
    opts: &'a Options,
    tools: &'a Tools,
    tmp: &'a Path,
    tck: f64,
}

/// Runs every director in turn; a director that cannot run gets a row
/// saying why. Only a signal (or a broken machine) ends the run early.
///
/// # Errors
/// On SIGINT/SIGTERM, or if the temp directory cannot be made.
pub fn run(opts: &Options, tools: &Tools, tmp: &Path) -> Result<Vec<Row>> {
    let ctx = Ctx {
        opts,
        tools,
        tmp,
        tck: cpu::clk_tck() as f64,
    };
    let mut rows = Vec::new();
    for &d in &opts.directors {
        signals::check()?;
        println!("\n=== {} ===", d.label());
        let quiet = wait_quiet(&ctx)?;
        let row = match precheck(&ctx, d) {
            Some(reason) => {
                println!("not run: {reason}");
                Row::not_run(d.label(), &reason)
            }
            None => match run_director(&ctx, d) {
                Ok(mut row) => {
                    row.details.insert(0, quiet);
                    row
                }
                Err(e) if signals::interrupted() => return Err(e),
                Err(e) => {
                    eprintln!("l4vs-peers: {}: {e:#}", d.label());
                    let mut row = Row::not_run(d.label(), "failed (see details)");
                    row.details.push(format!("failed: {e:#}"));
                    row
                }
            },
        };
        rows.push(row);
    }
    Ok(rows)
}

/// Busy cores (all CPUs) below which the machine counts as quiet.
const QUIET_CORES: f64 = 0.25;

/// Waits, up to `--quiet-wait`, until the machine is quiet: the benchmark
/// itself is idle here, so what keeps the CPUs busy is other people's
/// work. Returns a note on what it found.
///
/// # Errors
/// On a signal, or if `/proc/stat` cannot be read.
fn wait_quiet(ctx: &Ctx<'_>) -> Result<String> {
    let start = Instant::now();
    let deadline = start + ctx.opts.quiet_wait;
    loop {
        let a = cpu::parse_all_cpus(&fs::read_to_string("/proc/stat")?)?;
        for _ in 0..10 {
            signals::check()?;
            thread::sleep(Duration::from_millis(100));
        }
        let b = cpu::parse_all_cpus(&fs::read_to_string("/proc/stat")?)?;
        let busy: u64 = a.iter().zip(&b).map(|(a, b)| b.since(*a).busy).sum();
        let cores = busy as f64 / ctx.tck;
        let waited = start.elapsed().as_secs();
        if cores < QUIET_CORES {
            return Ok(format!(
                "machine {cores:.2} cores busy before the start (waited {waited} s)"
            ));
        }
        if Instant::now() >= deadline {
            println!("the machine is still busy ({cores:.2} cores); starting anyway");
            return Ok(format!(
                "machine {cores:.2} cores busy before the start (other people's work; \
                 waited {waited} s for it to end)"
            ));
        }
        if waited.is_multiple_of(10) {
            println!("waiting for a quiet machine: {cores:.2} cores busy (others' work)");
        }
    }
}

/// Why `d` cannot run on this machine, if it cannot.
fn precheck(ctx: &Ctx<'_>, d: Director) -> Option<String> {
    let missing = |what: &str, pkg: &str| format!("{what} not installed (Debian package `{pkg}`)");
    if ctx.tools.wrk.is_none() {
        // Without the HTTP client only UDP could run: not a comparison.
        return Some(missing("wrk", "wrk"));
    }
    match d {
        Director::None => None,
        Director::Nftables(_) => ctx.tools.nft.is_none().then(|| missing("nft", "nftables")),
        Director::Haproxy => ctx
            .tools
            .haproxy
            .is_none()
            .then(|| missing("haproxy", "haproxy")),
        Director::L4vs(..) => (!netns::is_executable(&ctx.opts.l4vs)).then(|| {
            format!(
                "l4vs binary {} not built (cargo build --release -p l4vs-control)",
                ctx.opts.l4vs.display()
            )
        }),
    }
}

/// A started director process, stopped gracefully by [`Running::stop`].
struct Running {
    child: Child,
    log: PathBuf,
    stop_signal: &'static str,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait().context("checking the director")? {
            None => Ok(()),
            Some(status) => bail!(
                "the director exited ({status}); its log {}:\n{}",
                self.log.display(),
                tail(&self.log, 15)
            ),
        }
    }

    /// Signals, waits, kills after [`STOP_TIMEOUT`].
    fn stop(&mut self) -> Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        netns::signal(&[self.pid()], self.stop_signal)?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.child.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "the director did not exit within {STOP_TIMEOUT:?} of SIG{}",
                    self.stop_signal
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Children (nginx) killed and reaped on drop; the lab would kill them
/// anyway, this only reaps.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn core_mask(core: usize) -> String {
    format!("{:x}", 1u64 << core)
}

/// Pins every process already in `role`'s namespace (all threads) to `core`.
fn pin_namespace(lab: &Lab, role: &str, core: usize) -> Result<()> {
    for pid in netns::pids(&lab.ns(role))? {
        pin_pid(pid, core)?;
    }
    Ok(())
}

/// Pins process (or kernel thread) `pid`, all its threads, to `core`; a
/// process that exited meanwhile is fine.
fn pin_pid(pid: u32, core: usize) -> Result<()> {
    let out = netns::output(Command::new("taskset").args([
        "-a",
        "-p",
        "-c",
        &core.to_string(),
        &pid.to_string(),
    ]))?;
    if !out.status.success() && Path::new(&format!("/proc/{pid}")).exists() {
        bail!(
            "taskset -a -p -c {core} {pid}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The kernel's NAPI threads of interfaces named [`IFACE`] (`napi/eth0-N`,
/// children of kthreadd), in any namespace.
fn napi_threads() -> Result<HashSet<u32>> {
    let prefix = format!("napi/{IFACE}-");
    let mut found = HashSet::new();
    for e in fs::read_dir("/proc").context("reading /proc")? {
        let Some(pid) = e?.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // Anything may exit while we look.
        let Ok(comm) = fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        if comm.trim_end().starts_with(&prefix) {
            found.insert(pid);
        }
    }
    Ok(found)
}

/// For l4vs on `net_af_xdp`: XDP on a veth runs in the veth's NAPI poll,
/// which the kernel schedules on the core that sent the frame (the
/// client's), where the director's CPU would not count it and RPS, which
/// comes after XDP, cannot move it. Threaded NAPI (`threaded` = 1 on the
/// director's interface) moves the poll into kernel threads, which this
/// pins to the director core: the XDP receive path is then counted there,
/// as AF_PACKET's is by RPS. Call it once the XDP program is attached (the
/// director answers). Returns how many threads it pinned.
fn thread_director_napi(lab: &Lab, core: usize) -> Result<usize> {
    let before = napi_threads()?;
    lab.exec_in(
        DIRECTOR,
        "sh",
        &["-c", &format!("echo 1 > /sys/class/net/{IFACE}/threaded")],
    )
    .with_context(|| format!("turning on threaded NAPI for {IFACE} in the director"))?;
    let ours: Vec<u32> = napi_threads()?.difference(&before).copied().collect();
    if ours.is_empty() {
        bail!("threaded NAPI on the director's {IFACE} started no napi/{IFACE}-* kernel thread");
    }
    for &pid in &ours {
        pin_pid(pid, core)?;
    }
    Ok(ours.len())
}

/// Steers `dev`'s receive processing in `role`'s namespace to `core` (RPS).
fn set_rps(lab: &Lab, role: &str, dev: &str, core: usize) -> Result<()> {
    let script = format!(
        "for q in /sys/class/net/{dev}/queues/rx-*; do echo {} > $q/rps_cpus; done",
        core_mask(core)
    );
    lab.exec_in(role, "sh", &["-c", &script])
        .with_context(|| format!("setting RPS of {dev} in {role} to core {core}"))
        .map(drop)
}

/// The lab's CPU layout: everything on the client core, the director's
/// receive processing on the director core.
fn arrange_cores(lab: &Lab, ctx: &Ctx<'_>) -> Result<()> {
    let (c, d) = (ctx.opts.client_core, ctx.opts.director_core);
    let mut roles = vec![CLIENT];
    roles.extend(REAL_SERVERS.iter().map(|r| r.name));
    for role in &roles {
        set_rps(lab, role, IFACE, c)?;
        pin_namespace(lab, role, c)?;
    }
    for role in roles.iter().chain([&DIRECTOR]) {
        set_rps(lab, LAN, &format!("p-{role}"), c)?;
    }
    set_rps(lab, DIRECTOR, IFACE, d)
}

/// Starts nginx on every real (pinned to the client core) and waits until
/// each listens. Returns the children.
fn start_nginx(lab: &Lab, ctx: &Ctx<'_>, nginx: &Path, dir: &Path) -> Result<Children> {
    let mut children = Children(Vec::new());
    for real in &REAL_SERVERS {
        let d = dir.join(format!("nginx-{}", real.name));
        fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        let conf = d.join("nginx.conf");
        fs::write(&conf, configs::nginx_conf(real.name, NGINX_PORT, &d))
            .with_context(|| format!("writing {}", conf.display()))?;
        let log = File::create(d.join("stderr.log"))?;
        let mut cmd = lab.command(real.name, "taskset");
        cmd.arg("-c")
            .arg(ctx.opts.client_core.to_string())
            .arg(nginx)
            .arg("-p")
            .arg(&d)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(d.join("error.log"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        children.0.push(lab.spawn_in(real.name, &mut cmd)?);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for (i, real) in REAL_SERVERS.iter().enumerate() {
        loop {
            signals::check()?;
            let port = format!("sport = :{NGINX_PORT}");
            let listening = lab.exec_in(real.name, "ss", &["-Hltn", &port])?;
            if !listening.trim().is_empty() {
                break;
            }
            if let Some(status) = children.0[i].try_wait()? {
                let d = dir.join(format!("nginx-{}", real.name));
                bail!(
                    "nginx on {} exited ({status}): {}{}",
                    real.name,
                    tail(&d.join("stderr.log"), 5),
                    tail(&d.join("error.log"), 5)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "nginx on {} is not listening on {NGINX_PORT} after 10 s",
                    real.name
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(children)
}

/// The targets of one director: HTTP and (where the director does UDP) the echo.
struct Targets {
    http: SocketAddrV4,
    udp: Option<SocketAddrV4>,
}

fn run_director(ctx: &Ctx<'_>, d: Director) -> Result<Row> {
    let dir = ctx.tmp.join(match d {
        Director::None => "none".to_owned(),
        Director::Nftables(s) => format!("nftables-{}", s.as_str()),
        Director::Haproxy => "haproxy".to_owned(),
        Director::L4vs(us, port) => format!("l4vs-{}-{us}", port.driver()),
    });
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let lab = Lab::up(Mode::Nat, &ctx.opts.lab_bin)?;
    println!("lab {} up", lab.prefix());
    arrange_cores(&lab, ctx)?;
    let mut details = Vec::new();
    let (_servers, http_port) = match &ctx.tools.nginx {
        Some(nginx) => (start_nginx(&lab, ctx, nginx, &dir)?, NGINX_PORT),
        None => {
            details.push(
                "real servers: the lab's own HTTP/1.0 server (nginx not installed), which \
                 closes every connection, so keep-alive is new connections too"
                    .to_owned(),
            );
            (Children(Vec::new()), HTTP_PORT)
        }
    };
    let topo = Topology {
        http_port,
        udp_port: UDP_ECHO_PORT,
        reals: &REAL_SERVERS,
        client_core: ctx.opts.client_core,
        director_core: ctx.opts.director_core,
    };
    let own_ns: HashSet<u64> = lab
        .namespaces()
        .iter()
        .filter_map(|n| cpu::netns_inode(n).ok())
        .collect();

    let (mut running, targets, note) = start_director(&lab, ctx, d, &topo, &dir)?;
    if let Some(r) = &mut running {
        println!("director pid {}, log {}", r.pid(), r.log.display());
    }
    let outcome = (|| -> Result<[Cell; 3]> {
        wait_ready(&lab, &mut running, &targets)?;
        if let Director::L4vs(_, L4vsPort::AfXdp) = d {
            let n = thread_director_napi(&lab, ctx.opts.director_core)?;
            details.push(format!(
                "XDP receive: threaded NAPI on the director's {IFACE}, {n} kernel thread(s) \
                 pinned to the director core"
            ));
        }
        let m = Meter {
            lab: &lab,
            ctx,
            own_ns: &own_ns,
            director_core: ctx.opts.director_core,
        };
        let url = format!("http://{}/", targets.http);
        if ctx.opts.warmup_secs > 0 {
            m.wrk(HttpMode::KeepAlive, &url, ctx.opts.warmup_secs)?;
        }
        let ka = m.measure(&mut running, || {
            m.wrk(HttpMode::KeepAlive, &url, ctx.opts.seconds)
        })?;
        println!(
            "keep-alive: {:.0} req/s, director core {:.2}",
            ka.rate, ka.director_cores
        );
        let close = m.measure(&mut running, || {
            m.wrk(HttpMode::Close, &url, ctx.opts.seconds)
        })?;
        println!(
            "new connections: {:.0}/s, director core {:.2}",
            close.rate, close.director_cores
        );
        let udp = match targets.udp {
            Some(t) => {
                let u = m.measure(&mut running, || m.udp(t))?;
                println!(
                    "UDP: {:.0} pkt/s, director core {:.2}",
                    u.rate, u.director_cores
                );
                Cell::Measured(u)
            }
            None => {
                Cell::NotApplicable("HAProxy does not proxy UDP (TCP and HTTP only)".to_owned())
            }
        };
        Ok([Cell::Measured(ka), Cell::Measured(close), udp])
    })();
    if let Some(r) = &mut running {
        let stopped = r.stop();
        if let Director::L4vs(..) = d {
            details.extend(l4vs_final_counters(&r.log));
        }
        stopped?;
    }
    let [keep_alive, new_conn, udp] = outcome?;
    drop(lab);
    Ok(Row {
        director: d.label(),
        baseline: d == Director::None,
        keep_alive,
        new_conn,
        udp,
        note,
        details,
    })
}

/// Configures and starts `d` in the lab; returns its process (if it has
/// one), what the client should target, and the table note.
fn start_director(
    lab: &Lab,
    ctx: &Ctx<'_>,
    d: Director,
    topo: &Topology,
    dir: &Path,
) -> Result<(Option<Running>, Targets, String)> {
    let vip = Targets {
        http: SocketAddrV4::new(VIP, topo.http_port),
        udp: Some(SocketAddrV4::new(VIP, topo.udp_port)),
    };
    let kernel_addrs = || -> Result<()> {
        for a in configs::director_kernel_addrs() {
            lab.ip(DIRECTOR, &["addr", "add", &a, "dev", IFACE])?;
        }
        Ok(())
    };
    match d {
        Director::None => {
            // One L2 segment: route the two subnets on-link between the
            // client and rs1 only, so nothing passes the (absent) director.
            let rs1 = REAL_SERVERS[0];
            let net = |n: Ipv4Addr| format!("{n}/{SUBNET_PREFIX_LEN}");
            lab.ip(CLIENT, &["route", "add", &net(REAL_NET), "dev", IFACE])?;
            lab.ip(rs1.name, &["route", "add", &net(CLIENT_NET), "dev", IFACE])?;
            let t = Targets {
                http: SocketAddrV4::new(rs1.addr, topo.http_port),
                udp: Some(SocketAddrV4::new(rs1.addr, topo.udp_port)),
            };
            Ok((
                None,
                t,
                "baseline: client straight to rs1, no director".to_owned(),
            ))
        }
        Director::Nftables(sched) => {
            kernel_addrs()?;
            netns::sysctl_in(&lab.ns(DIRECTOR), &["net.ipv4.ip_forward=1"])?;
            let rules = dir.join("ruleset.nft");
            fs::write(&rules, configs::nft_ruleset(topo, sched))?;
            let nft = ctx.tools.nft.as_deref().ok_or_else(|| anyhow!("no nft"))?;
            lab.exec_in(
                DIRECTOR,
                &nft.to_string_lossy(),
                &["-f", &rules.to_string_lossy()],
            )
            .context("loading the nftables ruleset")?;
            Ok((
                None,
                vip,
                "kernel softirq only (RPS → director core)".to_owned(),
            ))
        }
        Director::Haproxy => {
            kernel_addrs()?;
            lab.ip(
                DIRECTOR,
                &["addr", "add", &format!("{VIP}/32"), "dev", "lo"],
            )?;
            let haproxy = ctx
                .tools
                .haproxy
                .as_deref()
                .ok_or_else(|| anyhow!("no haproxy"))?;
            let cfg = dir.join("haproxy.cfg");
            fs::write(&cfg, configs::haproxy_cfg(topo, dir))?;
            lab.exec_in(
                DIRECTOR,
                &haproxy.to_string_lossy(),
                &["-c", "-q", "-f", &cfg.to_string_lossy()],
            )
            .context("checking the HAProxy config")?;
            let log = dir.join("haproxy.log");
            let mut cmd = lab.command(DIRECTOR, "taskset");
            cmd.arg("-c")
                .arg(ctx.opts.director_core.to_string())
                .arg(haproxy)
                .arg("-db")
                .arg("-f")
                .arg(&cfg);
            let running = spawn_logged(lab, cmd, log, "TERM")?;
            let t = Targets {
                http: vip.http,
                udp: None,
            };
            Ok((Some(running), t, "1 thread on the director core".to_owned()))
        }
        Director::L4vs(us, port) => {
            let cfg = dir.join("l4vs.yaml");
            fs::write(&cfg, configs::l4vs_yaml(topo, us, port))?;
            let mut cmd = lab.command(DIRECTOR, &ctx.opts.l4vs);
            cmd.arg("run").arg("--config").arg(&cfg);
            let running = spawn_logged(lab, cmd, dir.join("l4vs.log"), "INT")?;
            let mut note = if us == 0 {
                "busy poll: the worker spins, its core is always 100 %".to_owned()
            } else {
                format!("sleeps {us} µs when idle (after 64 empty polls)")
            };
            if port == L4vsPort::AfXdp {
                note.push_str("; XDP receive in a NAPI kernel thread on the same core");
                if us == 0 {
                    note.push_str(", which the spinning worker starves");
                }
            }
            Ok((Some(running), vip, note))
        }
    }
}

fn spawn_logged(
    lab: &Lab,
    mut cmd: Command,
    log: PathBuf,
    stop_signal: &'static str,
) -> Result<Running> {
    let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    println!("starting {}", netns::describe(&cmd));
    let child = lab.spawn_in(DIRECTOR, &mut cmd)?;
    Ok(Running {
        child,
        log,
        stop_signal,
    })
}

fn wait_ready(lab: &Lab, running: &mut Option<Running>, t: &Targets) -> Result<()> {
    lab.wait_tcp_ready_while(t.http, READY_TIMEOUT, || match running {
        Some(r) => r.check_alive(),
        None => Ok(()),
    })?;
    if let Some(udp) = t.udp {
        let deadline = Instant::now() + READY_TIMEOUT;
        while lab.udp_probe(udp, 3)?.total_served() == 0 {
            if let Some(r) = running {
                r.check_alive()?;
            }
            if Instant::now() >= deadline {
                bail!("{udp} did not answer UDP within {READY_TIMEOUT:?}");
            }
        }
    }
    Ok(())
}

/// Runs clients and measures CPU around them.
struct Meter<'a> {
    lab: &'a Lab,
    ctx: &'a Ctx<'a>,
    own_ns: &'a HashSet<u64>,
    director_core: usize,
}

impl Meter<'_> {
    /// Samples the director core, the director process, other processes
    /// and the kernel's backlog drops around `run`, which returns the rate
    /// and its own problems.
    fn measure(
        &self,
        running: &mut Option<Running>,
        run: impl FnOnce() -> Result<(f64, Vec<String>)>,
    ) -> Result<Measure> {
        let pid = running.as_ref().map(Running::pid);
        let load0 = CoreLoad::sample(self.own_ns)?;
        let p0 = pid.map(cpu::process_ticks).transpose()?;
        let drops0 = cpu::backlog_drops()?;

        let (rate, mut problems) = run()?;

        let p1 = pid.map(cpu::process_ticks).transpose();
        let load1 = CoreLoad::sample(self.own_ns)?;
        if let Some(r) = running {
            r.check_alive()?;
        }
        let p1 = p1?;
        let drops = cpu::backlog_drops()?.saturating_sub(drops0);
        let seconds = load1.seconds_since(&load0);
        let per = self.ctx.tck * seconds;
        let elapsed = per.round() as u64;
        let dc = self.director_core;
        let core = load1.cpu(dc).since(load0.cpu(dc));
        let process = p0.zip(p1).map(|(a, b)| b.saturating_sub(a));
        let others_director = load1.others_since(&load0, dc);
        let director = cpu::director_ticks(core, elapsed, others_director);
        if drops > 0 {
            problems.push(format!("kernel input-backlog drops {drops}"));
        }
        Ok(Measure {
            rate,
            director_cores: director as f64 / per,
            core_busy_cores: elapsed.saturating_sub(core.idle) as f64 / per,
            core_sampled_cores: core.busy as f64 / per,
            softirq_cores: core.softirq as f64 / per,
            process_cores: process.map(|t| t as f64 / per),
            others_client_core: load1.others_since(&load0, self.ctx.opts.client_core) as f64 / per,
            others_director_core: others_director as f64 / per,
            problems,
        })
    }

    fn wrk(&self, mode: HttpMode, url: &str, seconds: u32) -> Result<(f64, Vec<String>)> {
        let wrk = self
            .ctx
            .tools
            .wrk
            .as_deref()
            .ok_or_else(|| anyhow!("no wrk"))?;
        let args = wrk::args(mode, self.ctx.opts.connections, seconds, url);
        let out = self.client(wrk, &args, Duration::from_secs(seconds.into()))?;
        let r = wrk::parse(&out)?;
        let mut problems = Vec::new();
        if r.socket_errors > 0 {
            problems.push(format!("wrk socket errors {}", r.socket_errors));
        }
        if r.bad_status > 0 {
            problems.push(format!("wrk non-2xx answers {}", r.bad_status));
        }
        Ok((r.requests_per_sec, problems))
    }

    fn udp(&self, target: SocketAddrV4) -> Result<(f64, Vec<String>)> {
        let o = self.ctx.opts;
        let args = [
            "udp-flood".to_owned(),
            "--target".to_owned(),
            target.to_string(),
            "--flows".to_owned(),
            o.udp_flows.to_string(),
            "--window".to_owned(),
            o.udp_window.to_string(),
            "--warmup-ms".to_owned(),
            "500".to_owned(),
            "--seconds".to_owned(),
            o.seconds.to_string(),
        ];
        let out = self.client(&o.self_bin, &args, Duration::from_secs(o.seconds.into()))?;
        let r = FloodResult::parse(&out)?;
        let mut problems = Vec::new();
        if r.stalls > 0 {
            problems.push(format!("UDP windows re-sent after a loss {}", r.stalls));
        }
        if r.errors > 0 {
            problems.push(format!("UDP socket errors {}", r.errors));
        }
        Ok((r.rate(), problems))
    }

    /// Runs `program args` in the client namespace pinned to the client
    /// core; returns its stdout. Killed if it outlives `expected` by
    /// [`CLIENT_GRACE`] or on a signal.
    fn client(&self, program: &Path, args: &[String], expected: Duration) -> Result<String> {
        let mut cmd = self.lab.command(CLIENT, "taskset");
        cmd.arg("-c")
            .arg(self.ctx.opts.client_core.to_string())
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = netns::describe(&cmd);
        let mut child = self.lab.spawn_in(CLIENT, &mut cmd)?;
        let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take())
        else {
            bail!("no pipes for `{what}`");
        };
        let out = thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
            s
        });
        let err = thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        let deadline = Instant::now() + expected + CLIENT_GRACE;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if signals::interrupted() || Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                signals::check()?;
                bail!(
                    "`{what}` did not finish within {:?}",
                    expected + CLIENT_GRACE
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        let out = out.join().unwrap_or_default();
        let err = err.join().unwrap_or_default();
        if !status.success() {
            bail!("`{what}` failed ({status}): {}{}", err.trim(), out.trim());
        }
        Ok(out)
    }
}

/// The worker and port lines of l4vs's final counters, for the details.
fn l4vs_final_counters(log: &Path) -> Vec<String> {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("worker ") || l.starts_with("port "))
        .map(|l| format!("l4vs final counters: `{l}`"))
        .collect()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let mut s = all[all.len().saturating_sub(lines)..].join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(core_mask(0), "1");
        assert_eq!(core_mask(1), "2");
        assert_eq!(core_mask(5), "20");
    }

    #[test]
    fn labels_are_distinct() {
        let all = [
            Director::None,
            Director::Nftables(NftSched::Numgen),
            Director::Nftables(NftSched::Jhash),
            Director::Haproxy,
            Director::L4vs(0, L4vsPort::AfPacket),
            Director::L4vs(50, L4vsPort::AfPacket),
            Director::L4vs(0, L4vsPort::AfXdp),
            Director::L4vs(50, L4vsPort::AfXdp),
        ];
        let labels: HashSet<String> = all.iter().map(|d| d.label()).collect();
        assert_eq!(labels.len(), all.len());
    }

    fn options() -> Options {
        Options {
            directors: vec![
                Director::None,
                Director::Haproxy,
                Director::L4vs(0, L4vsPort::AfPacket),
            ],
            seconds: 1,
            warmup_secs: 0,
            connections: 1,
            udp_flows: 1,
            udp_window: 1,
            client_core: 0,
            director_core: 1,
            l4vs: PathBuf::from("/nonexistent/l4vs"),
            lab_bin: PathBuf::from("/nonexistent/l4vs-lab"),
            self_bin: PathBuf::from("/nonexistent/l4vs-peers"),
            quiet_wait: Duration::ZERO,
            keep_temp: false,
        }
    }

    /// A missing package makes a "not run" row naming it, never a silent gap.
    #[test]
    fn missing_peers_are_reported() {
        let opts = options();
        let none = Tools {
            wrk: None,
            nginx: None,
            haproxy: None,
            nft: None,
        };
        let ctx = Ctx {
            opts: &opts,
            tools: &none,
            tmp: Path::new("/nonexistent"),
            tck: 100.0,
        };
        for d in &opts.directors {
            let why = precheck(&ctx, *d).unwrap();
            assert!(why.contains("wrk not installed"), "{why}");
        }
        let with_wrk = Tools {
            wrk: Some(PathBuf::from("/usr/bin/wrk")),
            ..none.clone()
        };
        let ctx = Ctx {
            tools: &with_wrk,
            ..ctx
        };
        assert_eq!(precheck(&ctx, Director::None), None);
        let haproxy = precheck(&ctx, Director::Haproxy).unwrap();
        assert_eq!(haproxy, "haproxy not installed (Debian package `haproxy`)");
        let nft = precheck(&ctx, Director::Nftables(NftSched::Numgen)).unwrap();
        assert!(nft.contains("`nftables`"), "{nft}");
        assert!(precheck(&ctx, Director::L4vs(0, L4vsPort::AfPacket))
            .unwrap()
            .contains("not built"));

        let table = crate::report::table(&[Row::not_run(Director::Haproxy.label(), &haproxy)]);
        assert!(table.contains("| not run: haproxy not installed (Debian package `haproxy`) |"));
    }

    #[test]
    fn finds_sh() {
        assert!(which("sh").is_some());
        assert!(which("no-such-program-l4vs").is_none());
    }

    #[test]
    fn counters_from_a_log() {
        let dir = std::env::temp_dir().join(format!("l4vs-peers-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("l4vs.log");
        fs::write(
            &log,
            "l4vs: stopping; final counters\n  worker 0: rx=10 tx=9\n  port lan: ipackets=10\n  neighbors: x\n",
        )
        .unwrap();
        let c = l4vs_final_counters(&log);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.len(), 2);
        assert!(c[0].contains("worker 0: rx=10 tx=9"));
    }
}
