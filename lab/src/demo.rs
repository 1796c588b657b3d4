//! `l4vs-lab demo`: the whole lab end to end with the real director.
//!
//! Brings the lab up, runs `<l4vs> run --config <config>` in the director
//! namespace (output to a log file), waits for the VIP to answer, sends HTTP
//! connections, prints the per-real-server table, stops the director with
//! SIGINT (so it prints its final counters) and tears everything down. The
//! run fails if any request failed or fewer than two real servers answered.
//!
//! SIGINT/SIGTERM at any point end the run through the normal error path, so
//! the [`Lab`] is dropped and no namespace is left behind.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::netns;
use crate::signals;
use crate::topology::{Lab, Mode, DIRECTOR, VIP_HTTP, VIP_UDP};

/// How long the director may take until the VIP answers.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the director may take to exit after SIGINT before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of the director log shown on failure.
const LOG_TAIL: usize = 60;

/// What `l4vs-lab demo` runs.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// The director's YAML config.
    pub config: PathBuf,
    /// The `l4vs` executable.
    pub l4vs: PathBuf,
    /// Forwarding mode; `None` infers it from the config file name, else NAT.
    pub mode: Option<Mode>,
    /// HTTP connections to send.
    pub count: u32,
    /// UDP echo probes to send as well (0: none).
    pub udp_count: u32,
    /// The director's log file; `None` puts it in the temp directory.
    pub log: Option<PathBuf>,
    /// The `l4vs-lab` executable to run inside the namespaces.
    pub lab_bin: PathBuf,
}

/// Runs the demo and returns whether it passed.
///
/// # Errors
/// If the lab or the director cannot be brought up, the VIP never answers, or
/// a signal interrupted the run. A run with failed requests is `Ok(false)`.
pub fn run(cfg: &DemoConfig) -> Result<bool> {
    signals::install()?;
    for (what, path) in [("l4vs", &cfg.l4vs), ("l4vs-lab", &cfg.lab_bin)] {
        if !netns::is_executable(path) {
            bail!("{what} binary {} is not an executable file", path.display());
        }
    }
    let config = cfg
        .config
        .canonicalize()
        .with_context(|| format!("config file {}", cfg.config.display()))?;
    let l4vs = cfg
        .l4vs
        .canonicalize()
        .with_context(|| format!("l4vs binary {}", cfg.l4vs.display()))?;
    let mode = cfg
        .mode
        .or_else(|| Mode::from_file_name(&config))
        .unwrap_or(Mode::Nat);

    println!("bringing up the {mode} lab ...");
    let lab = Lab::up(mode, &cfg.lab_bin)?;
    println!(
        "lab {} up: namespaces {}",
        lab.prefix(),
        lab.namespaces().join(" ")
    );
    if let Some(decap) = lab.decap() {
        println!("IP-IP decapsulation on the reals: {decap:?}");
    }

    let log_path = cfg
        .log
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("{}-director.log", lab.prefix())));
    let log = File::create(&log_path)
        .with_context(|| format!("cannot create the director log {}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .with_context(|| format!("cannot reopen {}", log_path.display()))?;
    let mut cmd = lab.command(DIRECTOR, &l4vs);
    cmd.arg("run")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    println!("starting the director: {}", netns::describe(&cmd));
    println!("director log: {}", log_path.display());
    let mut director = lab.spawn_in(DIRECTOR, &mut cmd)?;

    let outcome = drive(&lab, cfg, &mut director, &log_path);
    let stopped = stop_director(&mut director);
    match (&outcome, &stopped) {
        (Ok(_), Ok(())) => {
            println!("--- director log (tail) ---");
            print!("{}", tail(&log_path, LOG_TAIL));
        }
        _ => {
            eprintln!("--- director log (tail) ---");
            eprint!("{}", tail(&log_path, LOG_TAIL));
        }
    }
    drop(lab);
    println!("lab torn down");
    let passed = outcome?;
    stopped?;
    Ok(passed)
}

fn drive(lab: &Lab, cfg: &DemoConfig, director: &mut Child, log: &Path) -> Result<bool> {
    println!("waiting up to {READY_TIMEOUT:?} for {VIP_HTTP} to answer ...");
    lab.wait_tcp_ready_while(VIP_HTTP, READY_TIMEOUT, || match director.try_wait() {
        Ok(None) => Ok(()),
        Ok(Some(status)) => Err(anyhow!(
            "the director exited ({status}) before the VIP answered; log: {}",
            log.display()
        )),
        Err(e) => Err(e).context("checking the director process"),
    })?;

    println!("sending {} HTTP connections to {VIP_HTTP} ...", cfg.count);
    let http = lab.http_load(VIP_HTTP, cfg.count)?;
    println!("\nHTTP {VIP_HTTP}, {} connections:", cfg.count);
    print!("{}", http.table());
    let mut passed = true;
    if http.failed > 0 {
        println!("FAIL: {} HTTP requests failed", http.failed);
        passed = false;
    }
    if http.servers() < 2 {
        println!("FAIL: only {} real server(s) answered", http.servers());
        passed = false;
    }

    if cfg.udp_count > 0 {
        println!("\nsending {} UDP probes to {VIP_UDP} ...", cfg.udp_count);
        let udp = lab.udp_probe(VIP_UDP, cfg.udp_count)?;
        println!("UDP {VIP_UDP}, {} probes:", cfg.udp_count);
        print!("{}", udp.table());
        if udp.failed > 0 {
            println!("FAIL: {} UDP probes lost", udp.failed);
            passed = false;
        }
    }
    println!("{}", if passed { "\nPASS" } else { "\nFAIL" });
    Ok(passed)
}

/// SIGINT, then wait; SIGKILL after [`STOP_TIMEOUT`].
fn stop_director(director: &mut Child) -> Result<()> {
    if director
        .try_wait()
        .context("checking the director")?
        .is_some()
    {
        return Ok(());
    }
    println!("stopping the director (SIGINT) ...");
    netns::signal(&[director.id()], "INT")?;
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        match director.try_wait().context("waiting for the director")? {
            Some(status) => {
                println!("director exited: {status}");
                return Ok(());
            }
            None if Instant::now() >= deadline => {
                let _ = director.kill();
                let _ = director.wait();
                bail!("the director did not exit within {STOP_TIMEOUT:?} of SIGINT; killed");
            }
            None => thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            let mut s = all[start..].join("\n");
            if !s.is_empty() {
                s.push('\n');
            }
            s
        }
        Err(e) => format!("(cannot read {}: {e})\n", path.display()),
    }
}
