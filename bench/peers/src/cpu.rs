//! CPU accounting from `/proc`: per-CPU busy time, per-process time, the
//! kernel's per-CPU backlog drops, an estimate of other people's load, and
//! [`director_ticks`], the director's CPU.
//!
//! Two facts of this machine decide the method:
//!
//! * The kernel counts CPU time by sampling at each tick
//!   (`CONFIG_TICK_CPU_ACCOUNTING`, no `IRQ_TIME_ACCOUNTING`): a tick that
//!   lands in softirq goes to the CPU's `softirq` column *and* to the stime
//!   of whatever task was running. Adding a process's time to softirq time
//!   can count a tick twice; a CPU's own busy columns never do.
//! * Other people's processes (other worktrees' builds) may run on the
//!   director's core from PID namespaces this program cannot see: they are
//!   in `/proc/stat` but not in `/proc/<pid>`.
//!
//! So the director's CPU is its core's busy time, capped at what the
//! director can account for: its process time plus the core's softirq and
//! irq time ([`director_ticks`]). On a quiet core the cap does not bite and
//! the figure is exact; with a stranger on the core it removes the
//! stranger's time and may overcount by the softirq ticks that hit while
//! the director process ran (at most the softirq column).
//!
//! Nothing here panics on odd `/proc` contents: a line that does not parse
//! is an error naming the file.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Clock ticks per second of the `/proc` counters (`getconf CLK_TCK`; 100
/// when `getconf` cannot tell, which is what Linux uses on x86 and arm64).
pub fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .unwrap_or(100)
}

/// One CPU's counters from `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq: everything but idle, iowait
    /// and steal (time the hypervisor gave to another guest).
    pub busy: u64,
    /// The softirq column alone (packet processing in the kernel).
    pub softirq: u64,
    /// The irq column.
    pub irq: u64,
}

impl CpuTimes {
    /// Counter growth from `earlier` to `self`.
    pub fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            busy: self.busy.saturating_sub(earlier.busy),
            softirq: self.softirq.saturating_sub(earlier.softirq),
            irq: self.irq.saturating_sub(earlier.irq),
        }
    }
}

/// Parses CPU `core`'s line out of `/proc/stat` text:
/// `cpuN user nice system idle iowait irq softirq steal guest guest_nice`.
///
/// # Errors
/// If there is no such line or it has fewer than 8 numeric fields.
pub fn parse_cpu(text: &str, core: usize) -> Result<CpuTimes> {
    let name = format!("cpu{core}");
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))
        .with_context(|| format!("/proc/stat has no {name} line"))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad /proc/stat line {line:?}"))?;
    if f.len() < 8 {
        bail!("short /proc/stat line {line:?}");
    }
    // guest time is already inside user (kernel/sched/cputime.c), so it is not added.
    let (user, nice, system, irq, softirq) = (f[0], f[1], f[2], f[5], f[6]);
    Ok(CpuTimes {
        busy: user + nice + system + irq + softirq,
        softirq,
        irq,
    })
}

/// The director's CPU ticks on its core: the core's busy ticks, capped at
/// the director process's ticks (0 without a process) plus the core's
/// softirq and irq ticks. See the module docs for why.
pub fn director_ticks(core: CpuTimes, process: Option<u64>) -> u64 {
    core.busy
        .min(process.unwrap_or(0) + core.softirq + core.irq)
}

/// Fields of `/proc/<pid>/stat` after the `(comm)`, which may itself hold
/// spaces and parentheses, so the text is split at the *last* `)`.
fn stat_fields(text: &str) -> Option<Vec<&str>> {
    let close = text.rfind(')')?;
    Some(text[close + 1..].split_whitespace().collect())
}

/// What `/proc/<pid>/stat` (or a thread's) says about CPU use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The CPU it last ran on.
    pub cpu: usize,
    /// utime + stime of the process (all its threads), in ticks.
    pub ticks: u64,
    /// cutime + cstime: its reaped children's, in ticks.
    pub child_ticks: u64,
}

/// Parses `/proc/<pid>/stat` text.
///
/// # Errors
/// If the fields after `(comm)` are missing or not numbers.
pub fn parse_proc_stat(text: &str) -> Result<ProcStat> {
    let f = stat_fields(text).with_context(|| format!("bad /proc/PID/stat {text:?}"))?;
    // After `pid (comm)`: state(3) ... utime(14) stime(15) cutime(16)
    // cstime(17) ... processor(39), 1-based as in proc(5).
    if f.len() < 37 {
        bail!("short /proc/PID/stat {text:?}");
    }
    let num = |i: usize| -> Result<u64> {
        f[i].parse()
            .with_context(|| format!("bad field {} in /proc/PID/stat {text:?}", i + 3))
    };
    Ok(ProcStat {
        cpu: usize::try_from(num(36)?).context("processor out of range")?,
        ticks: num(11)? + num(12)?,
        child_ticks: num(13)? + num(14)?,
    })
}

/// utime + stime of process `pid`, in ticks.
///
/// # Errors
/// If the process is gone or its stat does not parse.
pub fn process_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(parse_proc_stat(&text)?.ticks)
}

/// Packets the kernel dropped because a CPU's input backlog was full
/// (`/proc/net/softnet_stat` second column, summed over CPUs).
///
/// # Errors
/// If the file cannot be read or parsed.
pub fn backlog_drops() -> Result<u64> {
    let text =
        fs::read_to_string("/proc/net/softnet_stat").context("reading /proc/net/softnet_stat")?;
    parse_softnet_drops(&text)
}

/// Sums the `dropped` column (hex, second) of `softnet_stat` text.
///
/// # Errors
/// On a line with fewer than two hex fields.
pub fn parse_softnet_drops(text: &str) -> Result<u64> {
    let mut total = 0u64;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let dropped = line
            .split_whitespace()
            .nth(1)
            .with_context(|| format!("short softnet_stat line {line:?}"))?;
        total += u64::from_str_radix(dropped, 16)
            .with_context(|| format!("bad softnet_stat line {line:?}"))?;
    }
    Ok(total)
}

/// Per-core CPU of everything this program can see, to estimate what it
/// cannot: other people's processes on this machine (other worktrees'
/// builds and tests) live in other PID namespaces, absent from `/proc`
/// yet present in `/proc/stat`.
///
/// Every visible thread's utime + stime is attributed to the CPU it last
/// ran on (`/proc/PID/task/TID/stat` field 39), which for the benchmark's
/// pinned threads is their only CPU; reaped children's time (`cutime`,
/// `cstime`: the clients, which start and end inside a measurement) goes
/// to their parent's CPU. A core's invisible load is then at least its
/// busy ticks minus the visible ticks on it minus its softirq and irq
/// ticks ([`CoreLoad::invisible_since`]): a lower bound, because a
/// softirq tick is also in the stime of the task it interrupted.
#[derive(Debug, Clone, Default)]
pub struct CoreLoad {
    cpus: Vec<CpuTimes>,
    visible: Vec<u64>,
}

impl CoreLoad {
    /// Samples `/proc/stat` and every visible thread now.
    ///
    /// # Errors
    /// If `/proc/stat` cannot be read or parsed.
    pub fn sample() -> Result<CoreLoad> {
        let text = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let cpus = parse_all_cpus(&text)?;
        let mut visible = vec![0u64; cpus.len()];
        let mut add = |cpu: usize, ticks: u64| {
            if let Some(v) = visible.get_mut(cpu) {
                *v += ticks;
            }
        };
        for pid in numeric_entries(Path::new("/proc")) {
            let dir = Path::new("/proc").join(pid.to_string());
            // Anything may vanish while we read: skip it then.
            if let Some(p) = read_stat(&dir.join("stat")) {
                add(p.cpu, p.child_ticks);
            }
            for tid in numeric_entries(&dir.join("task")) {
                if let Some(t) = read_stat(&dir.join("task").join(tid.to_string()).join("stat")) {
                    add(t.cpu, t.ticks);
                }
            }
        }
        Ok(CoreLoad { cpus, visible })
    }

    /// CPU `core`'s counters in this sample.
    pub fn cpu(&self, core: usize) -> CpuTimes {
        self.cpus.get(core).copied().unwrap_or_default()
    }

    /// Ticks on `core` since `earlier` that no visible thread, softirq or
    /// irq accounts for (a lower bound of other people's load there).
    pub fn invisible_since(&self, earlier: &CoreLoad, core: usize) -> u64 {
        let c = self.cpu(core).since(earlier.cpu(core));
        let now = self.visible.get(core).copied().unwrap_or(0);
        let then = earlier.visible.get(core).copied().unwrap_or(0);
        c.busy
            .saturating_sub(c.softirq + c.irq)
            .saturating_sub(now.saturating_sub(then))
    }
}

fn numeric_entries(dir: &Path) -> Vec<u32> {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

fn read_stat(path: &Path) -> Option<ProcStat> {
    parse_proc_stat(&fs::read_to_string(path).ok()?).ok()
}

/// Every `cpuN` line of `/proc/stat`, indexed by N (missing N are zeros).
///
/// # Errors
/// If a `cpuN` line does not parse.
pub fn parse_all_cpus(text: &str) -> Result<Vec<CpuTimes>> {
    let mut cpus = Vec::new();
    for line in text.lines() {
        let Some(n) = line
            .split_whitespace()
            .next()
            .and_then(|w| w.strip_prefix("cpu"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        if cpus.len() <= n {
            cpus.resize(n + 1, CpuTimes::default());
        }
        cpus[n] = parse_cpu(text, n)?;
    }
    Ok(cpus)
}

/// The load averages line of `/proc/loadavg` (`"0.52 0.81 0.90"`), or `"?"`.
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 1 50 9000 5 2 30 4 0 0\n\
                        cpu0 60 1 20 4500 3 1 10 2 0 0\n\
                        cpu1 40 0 30 4500 2 1 20 2 7 0\n\
                        intr 12345\n";

    #[test]
    fn cpu_line() {
        let c1 = parse_cpu(STAT, 1).unwrap();
        assert_eq!(c1.busy, 40 + 30 + 1 + 20);
        assert_eq!(c1.softirq, 20);
        assert_eq!(c1.irq, 1);
        assert_eq!(parse_cpu(STAT, 0).unwrap().busy, 60 + 1 + 20 + 1 + 10);
        let all = parse_all_cpus(STAT).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1], c1);
        assert!(parse_cpu(STAT, 2).is_err());
        assert!(parse_cpu("cpu1 1 2 3\n", 1).is_err());
        // "cpu" (the total) is not "cpu1"'s prefix match.
        assert!(parse_cpu("cpu  1 2 3 4 5 6 7 8\n", 1).is_err());
    }

    #[test]
    fn cpu_delta_never_underflows() {
        let a = CpuTimes {
            busy: 10,
            softirq: 5,
            irq: 1,
        };
        let b = CpuTimes {
            busy: 25,
            softirq: 4,
            irq: 3,
        };
        assert_eq!(
            b.since(a),
            CpuTimes {
                busy: 15,
                softirq: 0,
                irq: 2,
            }
        );
    }

    #[test]
    fn director_share_of_a_core() {
        let core = CpuTimes {
            busy: 100,
            softirq: 30,
            irq: 2,
        };
        // Kernel-only director (nftables): softirq + irq, not the stranger's 68.
        assert_eq!(director_ticks(core, None), 32);
        // A process that ran 50 ticks: 50 + 32, below the core's 100.
        assert_eq!(director_ticks(core, Some(50)), 82);
        // Busy polling: never more than the core did.
        assert_eq!(director_ticks(core, Some(100)), 100);
    }

    #[test]
    fn proc_stat_with_odd_comm() {
        let text = "4242 (a b) c)) S 17 4242 4242 0 -1 4194560 100 0 0 0 123 45 6 7 20 0 3 0 99 \
                    1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_proc_stat(text).unwrap();
        assert_eq!(s.cpu, 1);
        assert_eq!(s.ticks, 168);
        assert_eq!(s.child_ticks, 13);
        assert!(parse_proc_stat("1 (x) S 0").is_err());
        let load = CoreLoad::sample().unwrap();
        assert!(load.invisible_since(&load, 0) == 0);
        assert!(parse_proc_stat("no parens").is_err());
    }

    #[test]
    fn softnet() {
        let text = "0001a2b3 00000010 00000000 00000000\n00000100 00000002 00000000 00000000\n";
        assert_eq!(parse_softnet_drops(text).unwrap(), 0x12);
        assert!(parse_softnet_drops("zz\n").is_err());
    }

    #[test]
    fn own_process_is_readable() {
        let ticks = process_ticks(std::process::id()).unwrap();
        // Just that it parses; the value depends on the machine.
        let _ = ticks;
        assert!(CoreLoad::sample().unwrap().cpu(0).busy > 0);
        assert!(clk_tck() > 0);
    }
}
