//! Health checks of the real servers, with keepalived's checkers'
//! semantics (keepalived/check/check_{tcp,http,ssl,udp,dns,misc}.c): TCP
//! connect, HTTP or HTTPS GET, a UDP request with a reply, a DNS query,
//! and a command (MISC_CHECK).
//!
//! The checks run on a thread of their own (a single-threaded tokio
//! runtime, one task per checked real), on the control side: the workers
//! never see them. Their connections are the kernel's, from the director's
//! namespace; with the exception path ([`crate::exception`]) they leave
//! from the director's address on the real's subnet, through the DPDK
//! port, as the rest of the traffic to the real does.
//!
//! Each real's task, as keepalived's checker loop:
//! - starts up, or down with `alpha`, after a random `warmup`;
//! - checks every `delay_loop`; a failed check is retried `retry` times,
//!   `delay_before_retry` apart, before the real is down;
//! - a success brings a down real back at once.
//!
//! Only transitions are reported: a [`Verdict`] to the control thread,
//! which applies it to the service table (`Command::SetHealth`: the real
//! leaves its service, or keeps weight 0 with `inhibit_on_failure`) and
//! logs it once. The control thread hands the checker a new [`Plan`] after
//! every change of configuration; tasks whose real and check did not
//! change go on undisturbed, and keep their state.

use crate::config::{to_hex, Check, CheckKind, Config, ForwardMethod};
use crate::table::ServiceKey;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// The most of an HTTP body a check keeps to look for `contains` in (the
/// digest covers the whole body).
const MAX_BODY: usize = 1 << 20;

/// One checked real server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Its service.
    pub service: ServiceKey,
    /// Its service's name, for the log.
    pub service_name: String,
    /// Its address and port (the one the table knows it by).
    pub real: SocketAddrV4,
    /// The check (a plan tells the tasks that did not change by it).
    pub check: Check,
    /// `inhibit_on_failure` of its service.
    pub inhibit: bool,
    /// With `through_vip`, a direct-routing real is checked at its
    /// service's VIP, by a socket with this mark, which the policy route
    /// of its [`VipRoute`] sends to the real.
    pub through: Option<(Ipv4Addr, u32)>,
}

impl Target {
    /// `real` of `service` (called `service_name`), checked by `check`.
    pub fn new(
        service: ServiceKey,
        service_name: String,
        real: SocketAddrV4,
        check: Check,
        inhibit: bool,
    ) -> Target {
        Target {
            service,
            service_name,
            real,
            check,
            inhibit,
            through: None,
        }
    }

    /// Where the check goes: the VIP with `through_vip`, else the real's
    /// address; at `connect_port`, else the real's port.
    fn destination(&self) -> SocketAddrV4 {
        let port = self.check.connect_port.unwrap_or(self.real.port());
        match self.through {
            Some((vip, _)) => SocketAddrV4::new(vip, port),
            None => SocketAddrV4::new(*self.real.ip(), port),
        }
    }
}

/// The first firewall mark, and routing table, of the policy routes of
/// `through_vip` checks: "L4" and the route's index.
pub const VIP_ROUTE_MARK: u32 = 0x4c34_0000;

/// A policy route of `through_vip` checks: what carries `mark` goes to
/// `vip` by way of `real` (routing table `mark`), so that a check of the
/// VIP reaches that real's MAC address as the director's DR traffic does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VipRoute {
    pub mark: u32,
    pub real: Ipv4Addr,
    pub vip: Ipv4Addr,
}

/// A real's health as the service table has it: up or down, and the
/// weight a check gave it (`misc_dynamic`), if any.
pub type Known = (bool, Option<u32>);

/// What the checker is to check.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Each checked real with its check, and its health as the table has it
    /// when the plan is made (`None` for a real the table has no verdict
    /// on). A new task starts from that, as keepalived carries a real's
    /// state over a reload: a check that changes reports only what
    /// differs from it, and `alpha` applies to reals without one.
    pub targets: Vec<(Target, Option<Known>)>,
    /// The policy routes the `through_vip` targets need, one per real
    /// address and VIP.
    pub routes: Vec<VipRoute>,
}

impl Plan {
    /// The checks `cfg` asks for: every real of every service that has a
    /// `check:` block, with what `known` (the table's verdicts, by
    /// service, address and port) says of each.
    pub fn of(cfg: &Config, known: &dyn Fn(ServiceKey, SocketAddrV4) -> Option<Known>) -> Plan {
        let mut targets = Vec::new();
        let mut routes: Vec<VipRoute> = Vec::new();
        for s in &cfg.services {
            let service = crate::table::key_of(s);
            let service_name = s.name.clone().unwrap_or_else(|| service.to_string());
            for r in &s.reals {
                let Some(check) = s.check_of(r) else { continue };
                let real = SocketAddrV4::new(r.address, r.port);
                let mut target = Target::new(
                    service,
                    service_name.clone(),
                    real,
                    check.clone(),
                    s.inhibit_on_failure,
                );
                if check.through_vip && r.forward == ForwardMethod::DirectRouting {
                    // One mark per real address: its table routes each of
                    // its VIPs to it.
                    let mark = match routes.iter().find(|v| v.real == r.address) {
                        Some(v) => v.mark,
                        None => VIP_ROUTE_MARK + routes.len() as u32,
                    };
                    let route = VipRoute {
                        mark,
                        real: r.address,
                        vip: s.vip,
                    };
                    if !routes.contains(&route) {
                        routes.push(route);
                    }
                    target.through = Some((s.vip, mark));
                }
                targets.push((target, known(service, real)));
            }
        }
        Plan { targets, routes }
    }
}

/// What changed in the services' checks between two configurations, a
/// line per service in words (`service http: health check tcp every 6 s
/// -> http every 2 s`), for the reload's log: the service table, whose
/// changes a reload logs, does not hold the checks.
pub fn check_changes(old: &Config, new: &Config) -> Vec<String> {
    let key = |s: &crate::config::Service| (s.fwmark, s.vip, s.port, s.protocol);
    let text = |c: &Option<Check>| match c {
        Some(c) => format!("{} every {} s", c.kind.as_str(), c.delay_loop.as_secs_f64()),
        None => "none".to_owned(),
    };
    let mut lines = Vec::new();
    for n in &new.services {
        let Some(o) = old.services.iter().find(|o| key(o) == key(n)) else {
            continue;
        };
        let name = n.name.clone().unwrap_or_else(|| "(unnamed)".to_owned());
        let mut what = Vec::new();
        if o.real_checks != n.real_checks {
            what.push("the reals' own checks changed".to_owned());
        }
        if o.check != n.check {
            let (a, b) = (text(&o.check), text(&n.check));
            what.push(if a == b {
                format!("health check {b}, settings changed")
            } else {
                format!("health check {a} -> {b}")
            });
        }
        if o.inhibit_on_failure != n.inhibit_on_failure {
            what.push(format!(
                "inhibit_on_failure {} -> {}",
                o.inhibit_on_failure, n.inhibit_on_failure
            ));
        }
        if !what.is_empty() {
            lines.push(format!("service {name}: {}", what.join(", ")));
        }
    }
    lines
}

/// A change of a real's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Which real, of which service.
    pub target: Target,
    /// Up or down.
    pub up: bool,
    /// The weight the check gives while up (`misc_dynamic`), if any.
    pub weight: Option<u32>,
    /// Why, in words: the check and what it saw.
    pub why: String,
}

/// The running checker. Dropping it stops every check.
pub struct Checker {
    runtime: tokio::runtime::Handle,
    plan: watch::Sender<Plan>,
    verdicts: Receiver<Verdict>,
    thread: Option<JoinHandle<()>>,
}

impl Checker {
    /// Starts the checker thread with `plan`.
    ///
    /// # Errors
    /// The runtime's or the thread's creation error.
    pub fn start(plan: Plan) -> std::io::Result<Checker> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let handle = runtime.handle().clone();
        let (plan_tx, plan_rx) = watch::channel(plan);
        let (verdict_tx, verdicts) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("l4vs-health".to_owned())
            .spawn(move || runtime.block_on(supervise(plan_rx, verdict_tx)))?;
        Ok(Checker {
            runtime: handle,
            plan: plan_tx,
            verdicts,
            thread: Some(thread),
        })
    }

    /// Checks `plan` from now on: new targets start, gone ones stop, the
    /// others go on with their state.
    pub fn set_plan(&self, plan: Plan) {
        let _ = self.plan.send(plan);
    }

    /// Runs `command` (keepalived's `quorum_up`, `quorum_down`) by `sh -c`
    /// on the checker's thread, with `env` added to its environment, as a
    /// notify command: not waited for, killed with what it started after
    /// [`NOTIFY_TIMEOUT`], reaped.
    pub fn run_command(&self, command: String, env: Vec<(&'static str, String)>) {
        self.run_command_with_args(command, env, Vec::new());
    }

    /// As [`Checker::run_command`], with `args` after the command's own
    /// words (`sh -c 'COMMAND "$@"' sh ARGS...`), as keepalived runs a
    /// VRRP `notify` script with its instance, state and priority.
    pub fn run_command_with_args(
        &self,
        command: String,
        env: Vec<(&'static str, String)>,
        args: Vec<String>,
    ) {
        self.runtime
            .spawn(async move { run_notify_args(&command, &env, &args) });
    }

    /// The verdicts reported since the last call.
    pub fn verdicts(&self) -> Vec<Verdict> {
        self.verdicts.try_iter().collect()
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        // Closing the plan channel ends the supervisor, which aborts the
        // checks.
        let (closed, _) = watch::channel(Plan::default());
        drop(std::mem::replace(&mut self.plan, closed));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Keeps one task per target of the current plan.
async fn supervise(mut plan: watch::Receiver<Plan>, verdicts: mpsc::Sender<Verdict>) {
    let mut running: HashMap<Target, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let current = plan.borrow_and_update().clone();
        let wanted: HashMap<Target, Option<Known>> = current.targets.into_iter().collect();
        running.retain(|t, task| {
            let keep = wanted.contains_key(t);
            if !keep {
                task.abort();
            }
            keep
        });
        for (t, known) in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(t) {
                let task = tokio::spawn(check_loop(slot.key().clone(), known, verdicts.clone()));
                slot.insert(task);
            }
        }
        if plan.changed().await.is_err() {
            break;
        }
    }
    for task in running.into_values() {
        task.abort();
    }
}

/// How long a notify command may run before it is killed.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a notify command (`notify_up`/`notify_down`) for `t` in the
/// background: not waited for by the checks, killed after
/// [`NOTIFY_TIMEOUT`], reaped.
fn notify(t: &Target, command: &str, up: bool) {
    run_notify(
        command,
        &[
            ("L4VS_SERVICE", t.service_name.clone()),
            ("L4VS_REAL_ADDRESS", t.real.ip().to_string()),
            ("L4VS_REAL_PORT", t.real.port().to_string()),
            ("L4VS_STATE", (if up { "UP" } else { "DOWN" }).to_owned()),
        ],
    );
}

/// The arguments of `/bin/sh` that run `command` with `args` after its
/// own words: `-c COMMAND`, or `-c 'COMMAND "$@"' sh ARGS...`.
pub fn sh_args(command: &str, args: &[String]) -> Vec<String> {
    if args.is_empty() {
        return vec!["-c".to_owned(), command.to_owned()];
    }
    let mut out = vec![
        "-c".to_owned(),
        format!("{command} \"$@\""),
        "sh".to_owned(),
    ];
    out.extend(args.iter().cloned());
    out
}

/// How a command ended, in words: `exited with status 3`, `killed by
/// signal 9`.
pub fn exit_words(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "ended".to_owned(),
    }
}

/// Runs `command` by `sh -c` with `env` in the background, on the
/// runtime it is called on: killed with its process group after
/// [`NOTIFY_TIMEOUT`], reaped.
fn run_notify(command: &str, env: &[(&'static str, String)]) {
    run_notify_args(command, env, &[]);
}

/// [`run_notify`] with `args` for the command (`$@` after its words).
/// A command that exits with another status than 0, or is killed, is
/// logged.
fn run_notify_args(command: &str, env: &[(&'static str, String)], args: &[String]) {
    let shown = command.to_owned();
    let child = tokio::process::Command::new("/bin/sh")
        .args(sh_args(command, args))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    match child {
        Ok(mut c) => {
            tokio::spawn(async move {
                let group = ProcessGroup::of(&c);
                match tokio::time::timeout(NOTIFY_TIMEOUT, c.wait()).await {
                    // A notify command may start a daemon of its own.
                    Ok(status) => {
                        group.release();
                        match status {
                            Ok(s) if s.success() => {}
                            Ok(s) => {
                                tracing::warn!(target: "l4vs", "notify command `{shown}`: {}", exit_words(s))
                            }
                            Err(e) => {
                                tracing::warn!(target: "l4vs", "notify command `{shown}`: {e}")
                            }
                        }
                    }
                    Err(_) => {
                        drop(group);
                        let _ = c.wait().await;
                        tracing::warn!(target: "l4vs", "notify command `{shown}`: still running after {} s, killed", NOTIFY_TIMEOUT.as_secs());
                    }
                }
            });
        }
        Err(e) => {
            tracing::warn!(target: "l4vs", "health: notify command `{command}`: {e}")
        }
    }
}

/// One real's checks, for as long as the plan has it, starting from
/// `known`.
async fn check_loop(t: Target, known: Option<Known>, verdicts: mpsc::Sender<Verdict>) {
    let check = &t.check;
    let report = |up: bool, weight: Option<u32>, why: String| {
        let _ = verdicts.send(Verdict {
            target: t.clone(),
            up,
            weight,
            why,
        });
    };
    // What the table has, or for a real new to it: up (keepalived), or
    // down with alpha.
    let mut state: Known = known.unwrap_or((true, None));
    if known.is_none() && check.alpha {
        state = (false, None);
        report(
            false,
            None,
            format!(
                "{} check: alpha, down until a check succeeds",
                check.kind.as_str()
            ),
        );
    }
    if !check.warmup.is_zero() {
        let ms = fastrand::u64(0..=check.warmup.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut failures = 0u32;
    loop {
        match run_check(&t, check).await {
            Ok((weight, what)) => {
                failures = 0;
                if state != (true, weight) {
                    if !state.0 {
                        if let Some(command) = &check.notify_up {
                            notify(&t, command, true);
                        }
                    }
                    state = (true, weight);
                    report(true, weight, what);
                }
                tokio::time::sleep(check.delay_loop).await;
            }
            Err(why) => {
                failures += 1;
                if failures <= check.retry {
                    tokio::time::sleep(check.delay_before_retry).await;
                    continue;
                }
                failures = 0;
                if state.0 {
                    state = (false, None);
                    if let Some(command) = &check.notify_down {
                        notify(&t, command, false);
                    }
                    report(false, None, why);
                }
                tokio::time::sleep(check.delay_loop).await;
            }
        }
    }
}

/// One check: the weight it gives (misc_dynamic), and what it saw; or
/// why it failed.
async fn run_check(t: &Target, check: &Check) -> Result<(Option<u32>, String), String> {
    let at = t.destination();
    let mark = t.through.map(|(_, m)| m);
    match &check.kind {
        CheckKind::Tcp => {
            let s = tokio::time::timeout(check.connect_timeout, tcp_connect(at, mark))
                .await
                .map_err(|_| {
                    format!(
                        "tcp check of {at}: no connection within {}",
                        secs(check.connect_timeout)
                    )
                })?
                .map_err(|e| format!("tcp check of {at}: {e}"))?;
            // Closed with a reset (SO_LINGER 0), as HAProxy closes its
            // checks: neither end keeps the connection in TIME_WAIT or
            // FIN_WAIT, which at a thousand checks a second is the bulk
            // of the kernel's work. keepalived closes with a FIN.
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            drop(s);
            Ok((None, format!("tcp check of {at}: connected")))
        }
        CheckKind::Http {
            path,
            status_codes,
            virtualhost,
            digest,
            contains,
            tls,
            enable_sni,
        } => {
            let what = format!("{} check of {at}{path}", check.kind.as_str());
            let want = Want {
                codes: status_codes,
                digest: digest.as_ref(),
                contains: contains.as_deref(),
            };
            let host = virtualhost.as_deref();
            let sni = if *enable_sni { host } else { None };
            tokio::time::timeout(
                check.connect_timeout,
                http_check(&what, at, mark, path, host, tls.then_some(sni), &want),
            )
            .await
            .map_err(|_| format!("{what}: no answer within {}", secs(check.connect_timeout)))?
            .map(|what| (None, what))
        }
        CheckKind::Dns { record_type, name } => {
            let what = format!("dns check of {at} ({} {name})", record_type.as_str());
            tokio::time::timeout(
                check.connect_timeout,
                dns(&what, at, mark, *record_type, name),
            )
            .await
            .map_err(|_| format!("{what}: no answer within {}", secs(check.connect_timeout)))?
            .map(|what| (None, what))
        }
        CheckKind::Udp {
            payload,
            require_reply,
        } => tokio::time::timeout(
            check.connect_timeout,
            udp(at, mark, payload, require_reply.as_deref()),
        )
        .await
        .map_err(|_| {
            format!(
                "udp check of {at}: no reply within {}",
                secs(check.connect_timeout)
            )
        })?
        .map(|what| (None, what)),
        CheckKind::Misc {
            path,
            timeout,
            dynamic,
        } => misc(t, path, *timeout, *dynamic).await,
    }
}

/// UDP_CHECK: `payload` to `at` from a connected socket (so that an ICMP
/// port unreachable comes back as an error); Ok when a reply comes that
/// starts with `require`.
async fn udp(
    at: SocketAddrV4,
    mark: Option<u32>,
    payload: &[u8],
    require: Option<&[u8]>,
) -> Result<String, String> {
    let what = format!("udp check of {at}");
    let s = udp_connect(at, mark)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    s.send(payload).await.map_err(|e| format!("{what}: {e}"))?;
    let mut buf = vec![0u8; 65_536];
    let n = s.recv(&mut buf).await.map_err(|e| format!("{what}: {e}"))?;
    match require {
        Some(r) if !buf[..n].starts_with(r) => Err(format!(
            "{what}: a reply of {n} bytes that does not start with the {} required",
            r.len()
        )),
        _ => Ok(format!("{what}: a reply of {n} bytes")),
    }
}

/// What an HTTP check wants of the answer.
struct Want<'a> {
    /// One of these status codes.
    codes: &'a [u16],
    /// A body with this MD5 digest.
    digest: Option<&'a [u8; 16]>,
    /// A body with this text.
    contains: Option<&'a str>,
}

/// `GET path` on a new connection to `at`, in TLS when `tls` is
/// `Some(sni)` (naming `sni` in the handshake, if any); Ok when the answer
/// is what `want` says. `what` names the check in the messages.
async fn http_check(
    what: &str,
    at: SocketAddrV4,
    mark: Option<u32>,
    path: &str,
    host: Option<&str>,
    tls: Option<Option<&str>>,
    want: &Want<'_>,
) -> Result<String, String> {
    let stream = tcp_connect(at, mark)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let host = host.map_or_else(|| at.ip().to_string(), str::to_owned);
    match tls {
        None => http_get(what, stream, path, host, want).await,
        Some(sni) => {
            let name = match sni {
                Some(n) => rustls::pki_types::ServerName::try_from(n.to_owned())
                    .map_err(|e| format!("{what}: {n} as a TLS server name: {e}"))?,
                // An address is never sent as SNI (RFC 6066 3).
                None => rustls::pki_types::ServerName::IpAddress(IpAddr::V4(*at.ip()).into()),
            };
            let stream = tls_connector().connect(name, stream).await.map_err(|e| {
                let hint = if e.to_string().contains("InvalidContentType") {
                    " (does the real answer plain HTTP on this port?)"
                } else {
                    ""
                };
                format!("{what}: TLS handshake: {e}{hint}")
            })?;
            http_get(what, stream, path, host, want).await
        }
    }
}

/// The TLS client of the https checks: rustls with ring, TLS 1.2 and 1.3,
/// and no verification of the real's certificate (keepalived's SSL_GET
/// does not verify it either), while the handshake's signatures are still
/// checked.
fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>> =
        std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.dangerous()
                    .with_custom_certificate_verifier(std::sync::Arc::new(AnyCertificate(provider)))
                    .with_no_client_auth()
            });
        // ring's provider has both default versions: this cannot fail.
        std::sync::Arc::new(config.unwrap_or_else(|e| panic!("rustls with ring: {e}")))
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

/// Accepts any certificate of the real, as keepalived's SSL_GET; the
/// signatures of the handshake are verified with the provider's
/// algorithms.
#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `GET path` with `Host: host` over `io`; Ok when the answer is what
/// `want` says.
async fn http_get<IO>(
    what: &str,
    io: IO,
    path: &str,
    host: String,
    want: &Want<'_>,
) -> Result<String, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| format!("{what}: {e}"))?;
    let driver = tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "l4vs-health-check")
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{what}: {e}"))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        let status = resp.status().as_u16();
        if !want.codes.contains(&status) {
            let wanted: Vec<String> = want.codes.iter().map(u16::to_string).collect();
            return Err(format!(
                "{what}: status {status}, not {}",
                wanted.join(" or ")
            ));
        }
        if want.digest.is_none() && want.contains.is_none() {
            return Ok(format!("{what}: status {status}"));
        }
        // The whole body for the digest (keepalived's check_http.c hashes
        // it all as it comes); its first MiB for `contains`.
        use md5::Digest;
        let mut md5 = md5::Md5::new();
        let mut body: Vec<u8> = Vec::new();
        let mut stream = resp.into_body();
        while let Some(frame) = stream.frame().await {
            let frame = frame.map_err(|e| format!("{what}: reading the body: {e}"))?;
            if let Ok(data) = frame.into_data() {
                md5.update(&data);
                let room = MAX_BODY.saturating_sub(body.len());
                body.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
        if let Some(digest) = want.digest {
            let got: [u8; 16] = md5.finalize().into();
            if got != *digest {
                return Err(format!(
                    "{what}: status {status}, but the body's MD5 digest is {}, not {}",
                    to_hex(&got),
                    to_hex(digest)
                ));
            }
        }
        if let Some(text) = want.contains {
            if !String::from_utf8_lossy(&body).contains(text) {
                return Err(format!(
                    "{what}: status {status}, but the body lacks \"{text}\""
                ));
            }
        }
        Ok(format!("{what}: status {status}, body as wanted"))
    }
    .await;
    driver.abort();
    result
}

/// DNS_CHECK (keepalived's check_dns.c): a query for `name`, type
/// `record_type`, class IN, recursion desired, with a random id, from a
/// connected UDP socket; answers with another id, or that are not
/// responses, are ignored (waited past); the first that matches is up
/// when its RCODE is 0. Only the answer's header is read, as keepalived's.
async fn dns(
    what: &str,
    at: SocketAddrV4,
    mark: Option<u32>,
    record_type: crate::config::DnsRecordType,
    name: &str,
) -> Result<String, String> {
    use hickory_proto::op::{Header, Message, MessageType, Query, ResponseCode};
    use hickory_proto::rr::{Name, RecordType};
    use hickory_proto::serialize::binary::BinDecodable;
    let qname = Name::from_ascii(name).map_err(|e| format!("{what}: {e}"))?;
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(qname, RecordType::from(record_type.code())));
    let id = query.metadata.id;
    let bytes = query.to_vec().map_err(|e| format!("{what}: {e}"))?;
    let s = udp_connect(at, mark)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    s.send(&bytes).await.map_err(|e| format!("{what}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = s.recv(&mut buf).await.map_err(|e| format!("{what}: {e}"))?;
        let Ok(header) = Header::from_bytes(&buf[..n]) else {
            continue;
        };
        if header.metadata.id != id || header.metadata.message_type != MessageType::Response {
            continue;
        }
        return match header.metadata.response_code {
            ResponseCode::NoError => Ok(format!("{what}: NOERROR")),
            code => Err(format!(
                "{what}: answered RCODE {} ({code})",
                u16::from(code)
            )),
        };
    }
}

/// A TCP connection to `at`, from a socket with firewall mark `mark`
/// (SO_MARK) if given: a `through_vip` check, which the mark's policy
/// route sends to the real.
async fn tcp_connect(
    at: SocketAddrV4,
    mark: Option<u32>,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    if let Some(mark) = mark {
        socket2::SockRef::from(&socket).set_mark(mark)?;
    }
    socket.connect(at.into()).await
}

/// A UDP socket connected to `at` (so that an ICMP error comes back as
/// an error), with firewall mark `mark` if given, as [`tcp_connect`].
async fn udp_connect(
    at: SocketAddrV4,
    mark: Option<u32>,
) -> std::io::Result<tokio::net::UdpSocket> {
    let s = tokio::net::UdpSocket::bind("0.0.0.0:0").await?;
    if let Some(mark) = mark {
        socket2::SockRef::from(&s).set_mark(mark)?;
    }
    s.connect(at).await?;
    Ok(s)
}

/// Kills a command's whole process group when dropped: what a check or a
/// notify command started (a script's children included) never outlives
/// it, whether it timed out or its task was stopped.
struct ProcessGroup(Option<rustix::process::Pid>);

impl ProcessGroup {
    fn of(child: &tokio::process::Child) -> ProcessGroup {
        ProcessGroup(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .and_then(rustix::process::Pid::from_raw),
        )
    }

    /// The group exited on its own: nothing to kill.
    fn release(mut self) {
        self.0 = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

/// MISC_CHECK: `sh -c path`, killed after `timeout`; exit 0 up, 1 down,
/// 2..=255 up with weight status - 2 when `dynamic` (down otherwise).
async fn misc(
    t: &Target,
    path: &str,
    timeout: Duration,
    dynamic: bool,
) -> Result<(Option<u32>, String), String> {
    let what = format!("misc check `{path}` of {}", t.real);
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(path)
        .env("L4VS_REAL_ADDRESS", t.real.ip().to_string())
        .env("L4VS_REAL_PORT", t.real.port().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    // Dropped on every way out (a task stopped included): what the command
    // started goes with it.
    let group = ProcessGroup::of(&child);
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(s) => {
            drop(group);
            s.map_err(|e| format!("{what}: {e}"))?
        }
        Err(_) => {
            drop(group);
            let _ = child.wait().await;
            return Err(format!(
                "{what}: still running after {}, killed",
                secs(timeout)
            ));
        }
    };
    match status.code() {
        Some(0) => Ok((None, format!("{what}: exit 0"))),
        // The shell's own failures: nothing was checked.
        Some(code @ (126 | 127)) => Err(format!(
            "{what}: exit {code}: the command could not be run (not found, or not executable)"
        )),
        Some(code @ 2..=255) if dynamic => Ok((
            Some(u32::try_from(code - 2).unwrap_or(0)),
            format!("{what}: exit {code}, weight {}", code - 2),
        )),
        Some(code) => Err(format!("{what}: exit {code}")),
        None => Err(format!("{what}: killed by a signal")),
    }
}

/// A duration in words: `1.5 s`.
fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests;
