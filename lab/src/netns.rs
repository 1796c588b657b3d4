//! Running system commands (`ip`, `ethtool`, `sysctl`, `kill`) and the
//! network-namespace primitives built on them.
//!
//! This module owns the one rule of the lab's system plumbing: every external
//! command is run to completion with its stdout and stderr captured, and a
//! failure becomes an error naming the full command line, its exit status and
//! its stderr. Nothing here panics on a failed system call.
//!
//! Namespace operations never touch the caller's own namespace: `ip -n NS ...`
//! and `ip netns exec NS ...` confine every change to `NS`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};

/// Every namespace the lab creates starts with this, so `l4vs-lab cleanup`
/// can find leftovers of an interrupted run.
pub const NETNS_PREFIX: &str = "l4vs-";

/// Renders a command line for error messages, e.g. `ip -n l4vs-1-0-lan link set br0 up`.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let _ = write!(s, " {}", arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion with stdin closed and output captured.
///
/// # Errors
/// If the program cannot be started or exits unsuccessfully; the error names
/// the command line, the exit status and the command's stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = output(cmd)?;
    check(cmd, &out)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` to completion and returns its raw output, whatever its status.
///
/// # Errors
/// Only if the program cannot be started.
pub fn output(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{}`", describe(cmd)))
}

fn check(cmd: &Command, out: &Output) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let detail = if stderr.trim().is_empty() {
        stdout.trim().to_owned()
    } else {
        stderr.trim().to_owned()
    };
    bail!("`{}` failed ({}): {}", describe(cmd), out.status, detail)
}

/// Runs `ip ARGS...` in the caller's namespace.
///
/// # Errors
/// As [`run`].
pub fn ip(args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(args))
}

/// Runs `ip -n NS ARGS...`.
///
/// # Errors
/// As [`run`].
pub fn ip_in(ns: &str, args: &[&str]) -> Result<String> {
    run(Command::new("ip").arg("-n").arg(ns).args(args))
}

/// Builds `ip netns exec NS PROGRAM` for the caller to add arguments to.
pub fn exec_command(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

/// Whether `cmd` already is `ip netns exec NS ...` for this `ns`.
pub fn is_wrapped_for(ns: &str, cmd: &Command) -> bool {
    let args: Vec<_> = cmd.get_args().take(3).collect();
    cmd.get_program() == "ip"
        && args.len() == 3
        && args[0] == "netns"
        && args[1] == "exec"
        && args[2] == ns
}

/// Copies `cmd` (program, arguments, environment, working directory) into a
/// new command that runs it inside `ns`. Stdio settings cannot be read back
/// from a [`Command`], so the copy has the defaults.
pub fn wrap_in_netns(ns: &str, cmd: &Command) -> Command {
    let mut wrapped = exec_command(ns, cmd.get_program());
    wrapped.args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// Runs `PROGRAM ARGS...` inside `ns` to completion.
///
/// # Errors
/// As [`run`].
pub fn exec_in(ns: &str, program: &str, args: &[&str]) -> Result<String> {
    run(exec_command(ns, program).args(args))
}

/// Sets sysctls (`key=value` each) inside `ns`.
///
/// # Errors
/// As [`run`]; `sysctl` fails if a key does not exist.
pub fn sysctl_in(ns: &str, settings: &[&str]) -> Result<()> {
    let mut cmd = exec_command(ns, "sysctl");
    cmd.args(["-q", "-w"]).args(settings);
    run(&mut cmd).map(drop)
}

/// Creates the named namespace `ns`.
///
/// # Errors
/// As [`run`], e.g. if it already exists.
pub fn add(ns: &str) -> Result<()> {
    ip(&["netns", "add", ns]).map(drop)
}

/// Names of all named namespaces (`ip netns list`).
///
/// # Errors
/// As [`run`].
pub fn list() -> Result<Vec<String>> {
    let out = ip(&["netns", "list"])?;
    // Lines look like `name` or `name (id: 3)`.
    Ok(out
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Pids of all processes living in `ns` (`ip netns pids`).
///
/// # Errors
/// As [`run`].
pub fn pids(ns: &str) -> Result<Vec<u32>> {
    let out = ip(&["netns", "pids", ns])?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Sends `signal` (a name such as `INT`, `TERM`, `KILL`) to the processes.
///
/// # Errors
/// As [`run`]; `kill` fails if a pid no longer exists.
pub fn signal(pids: &[u32], signal: &str) -> Result<()> {
    if pids.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("kill");
    cmd.arg("-s").arg(signal).arg("--");
    for pid in pids {
        cmd.arg(pid.to_string());
    }
    run(&mut cmd).map(drop)
}

/// Kills every process in `ns`, then deletes the namespace; its interfaces
/// go away with it once the last process has died.
///
/// # Errors
/// If `ip netns del` fails; a process that vanished before `kill` reached it
/// is not an error.
pub fn destroy(ns: &str) -> Result<()> {
    if let Ok(pids) = pids(ns) {
        // A process may exit between `pids` and `kill`: ignore that race.
        let _ = signal(&pids, "KILL");
    }
    ip(&["netns", "del", ns]).map(drop)
}

/// Deletes every namespace whose name starts with `prefix` (which must start
/// with [`NETNS_PREFIX`], so this cannot remove namespaces the lab did not
/// make), other people's running labs included. Returns the names removed.
///
/// # Errors
/// If `prefix` is outside the lab's space, or listing fails; the first
/// failed deletion is reported after trying all of them.
pub fn cleanup(prefix: &str) -> Result<Vec<String>> {
    if !prefix.starts_with(NETNS_PREFIX) {
        bail!("refusing to delete namespaces not starting with `{NETNS_PREFIX}`: `{prefix}`");
    }
    let names = list()?.into_iter().filter(|n| n.starts_with(prefix));
    destroy_all(names.collect())
}

/// Deletes the namespaces of labs whose process has gone (what a
/// `kill -9` leaves): those named `l4vs-<pid>-...` ([`lab_pid`]) with no
/// process `<pid>` in `/proc`. Running labs, and namespaces not named so,
/// are left alone. Returns the names removed.
///
/// # Errors
/// If listing fails; the first failed deletion is reported after trying
/// all of them.
pub fn cleanup_stale() -> Result<Vec<String>> {
    let alive = |pid: u32| Path::new("/proc").join(pid.to_string()).exists();
    destroy_all(stale(list()?, alive))
}

/// The pid in the name of a namespace the lab or a test made,
/// `l4vs-<pid>-<rest>`; None for any other name.
pub fn lab_pid(ns: &str) -> Option<u32> {
    let (pid, _) = ns.strip_prefix(NETNS_PREFIX)?.split_once('-')?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// The names among `names` of labs whose process is not `alive`.
fn stale(names: Vec<String>, alive: impl Fn(u32) -> bool) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| lab_pid(n).is_some_and(|pid| !alive(pid)))
        .collect()
}

/// Destroys each of `names`; the names destroyed, or the first error
/// after trying all of them.
fn destroy_all(names: Vec<String>) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let mut first_err = None;
    for ns in names {
        match destroy(&ns) {
            Ok(()) => removed.push(ns),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

/// Turns off the checksum and segmentation offloads of `dev` inside `ns`, so
/// the kernel hands AF_PACKET complete frames with full checksums.
///
/// Features a driver cannot change are ignored; the ones that matter for
/// the director (tx checksumming, TSO, GSO, GRO) are verified afterwards.
///
/// # Errors
/// If `ethtool` cannot run or one of the verified features is still on.
pub fn offloads_off(ns: &str, dev: &str) -> Result<()> {
    const FEATURES: [&str; 9] = [
        "rx", "tx", "sg", "tso", "gso", "gro", "lro", "rxvlan", "txvlan",
    ];
    let mut all = exec_command(ns, "ethtool");
    all.args(["-K", dev]);
    for f in FEATURES {
        all.args([f, "off"]);
    }
    if !output(&mut all)?.status.success() {
        // Some feature is fixed on this driver: switch the rest one by one.
        for f in FEATURES {
            let _ = output(exec_command(ns, "ethtool").args(["-K", dev, f, "off"]))?;
        }
    }
    let shown = run(exec_command(ns, "ethtool").args(["-k", dev]))?;
    for must in [
        "tx-checksumming",
        "tcp-segmentation-offload",
        "generic-segmentation-offload",
        "generic-receive-offload",
    ] {
        let on = shown.lines().any(|l| l.starts_with(&format!("{must}: on")));
        if on {
            bail!("{must} is still on for {dev} in {ns} after `ethtool -K`");
        }
    }
    Ok(())
}

/// Whether `path` names an executable file (used to check binaries early
/// with a clear message instead of an `ip netns exec` failure).
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_is_named_by_its_pid() {
        assert_eq!(lab_pid("l4vs-1234-0-director"), Some(1234));
        assert_eq!(lab_pid("l4vs-77-tapck"), Some(77));
        for other in [
            "l4vs-cli-5",
            "l4vs--0-lan",
            "l4vs-12",
            "ns-1234-0",
            "l4vs-1x-0",
        ] {
            assert_eq!(lab_pid(other), None, "{other}");
        }
    }

    /// Only labs whose process is gone are stale: not a running lab, not
    /// a namespace of another name.
    #[test]
    fn only_labs_of_gone_processes_are_stale() {
        let names = [
            "l4vs-10-0-client",
            "l4vs-10-0-lan",
            "l4vs-20-0-client",
            "l4vs-cli-30",
            "other",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            stale(names, |pid| pid == 20),
            ["l4vs-10-0-client", "l4vs-10-0-lan"]
        );
    }
}
