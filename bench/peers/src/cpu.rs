//! CPU accounting from `/proc`: per-CPU busy time, per-process time, the
//! kernel's per-CPU backlog drops, an estimate of other people's load, and
//! [`director_ticks`], the director's CPU.
//!
//! Three facts of this machine decide the method:
//!
//! * The kernel samples busy time at each tick (`CONFIG_TICK_CPU_ACCOUNTING`,
//!   no `IRQ_TIME_ACCOUNTING`) and stops the tick on an idle CPU
//!   (`CONFIG_NO_HZ_IDLE`). Packet processing that wakes an idle CPU for a
//!   few microseconds at a time (softirq after an RPS interrupt: all of
//!   nftables' work) is mostly never sampled, so the busy columns of
//!   `/proc/stat` miss it. The `idle` column, however, is measured, not
//!   sampled: busy = elapsed time − idle − iowait is exact.
//! * A sampled softirq tick is charged to the softirq column and to the
//!   task it interrupted, so process time plus softirq time may count
//!   twice.
//! * Other people's processes (other worktrees' builds and tests) share
//!   the cores.
//!
//! So the director's CPU is its core's exact busy time minus what other
//! people's processes took of that core ([`director_ticks`]). Those are
//! CPU-bound compilers, which the tick samples well: their threads on that
//! core, plus whatever sampled user + system time no visible thread
//! explains ([`CoreLoad::others_since`]). That is a lower bound, so the
//! director's figure errs high, never low; on a quiet machine it is exact.
//!
//! Nothing here panics on odd `/proc` contents: a line that does not parse
//! is an error naming the file.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
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
    /// idle + iowait: measured, not sampled, under NO_HZ.
    pub idle: u64,
}

impl CpuTimes {
    /// Counter growth from `earlier` to `self`.
    pub fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            busy: self.busy.saturating_sub(earlier.busy),
            softirq: self.softirq.saturating_sub(earlier.softirq),
            irq: self.irq.saturating_sub(earlier.irq),
            idle: self.idle.saturating_sub(earlier.idle),
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
    let (user, nice, system, idle, iowait, irq, softirq) =
        (f[0], f[1], f[2], f[3], f[4], f[5], f[6]);
    Ok(CpuTimes {
        busy: user + nice + system + irq + softirq,
        softirq,
        irq,
        idle: idle + iowait,
    })
}

/// The director's CPU ticks on its core over an interval of `elapsed`
/// ticks: the exact busy time (`elapsed` − idle − iowait) minus other
/// people's share of it (`others`, from [`CoreLoad::others_since`]).
/// See the module docs for why.
pub fn director_ticks(core: CpuTimes, elapsed: u64, others: u64) -> u64 {
    elapsed.saturating_sub(core.idle).saturating_sub(others)
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
    /// Parent pid.
    pub ppid: u32,
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
        ppid: u32::try_from(num(1)?).context("ppid out of range")?,
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

/// Per-core CPU of the machine's threads, split into the benchmark's own,
/// other people's, and kernel threads, to tell how much of a core other
/// people's work (other worktrees' builds and tests) took.
///
/// A thread's utime + stime is attributed to the CPU it last ran on
/// (`/proc/PID/task/TID/stat` field 39), which for the benchmark's pinned
/// threads is their only CPU and for a compiler a fair guess over a few
/// seconds; the benchmark's reaped children's time (`cutime`, `cstime`:
/// the clients, which start and end inside a measurement) goes to their
/// parent's CPU. Other people's threads count while they live, capped at
/// the core's sampled user + system time less the benchmark's own. A
/// process is the benchmark's if it lives in one of the benchmark's
/// network namespaces or is the benchmark itself; a kernel thread if it is
/// `kthreadd` or its child. Work in processes this program cannot see at
/// all (another PID namespace) is caught as the rest of a core's sampled
/// user + system ticks.
#[derive(Debug, Clone)]
pub struct CoreLoad {
    at: std::time::Instant,
    cpus: Vec<CpuTimes>,
    ours: Vec<u64>,
    others: Vec<u64>,
    kernel: Vec<u64>,
}

impl CoreLoad {
    /// Samples `/proc/stat` and every visible thread now; `own_namespaces`
    /// holds the network-namespace inodes of the benchmark's namespaces.
    ///
    /// # Errors
    /// If `/proc/stat` cannot be read or parsed.
    pub fn sample(own_namespaces: &HashSet<u64>) -> Result<CoreLoad> {
        let at = std::time::Instant::now();
        let text = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let cpus = parse_all_cpus(&text)?;
        let n = cpus.len();
        let (mut ours, mut others, mut kernel) = (vec![0u64; n], vec![0u64; n], vec![0u64; n]);
        let me = std::process::id();
        for pid in numeric_entries(Path::new("/proc")) {
            let dir = Path::new("/proc").join(pid.to_string());
            // Anything may vanish while we read: skip it then.
            let Some(p) = read_stat(&dir.join("stat")) else {
                continue;
            };
            let is_kernel = pid == 2 || p.ppid == 2;
            let is_ours = !is_kernel
                && (pid == me
                    || fs::metadata(dir.join("ns/net"))
                        .is_ok_and(|m| own_namespaces.contains(&m.ino())));
            let bucket = if is_kernel {
                &mut kernel
            } else if is_ours {
                &mut ours
            } else {
                &mut others
            };
            let mut add = |cpu: usize, ticks: u64| {
                if let Some(v) = bucket.get_mut(cpu) {
                    *v += ticks;
                }
            };
            // Reaped children: only ours (the clients). Another session's
            // build tool reaps a compiler that ran for many seconds all at
            // once, which would land on one core in one instant.
            if is_ours {
                add(p.cpu, p.child_ticks);
            }
            for tid in numeric_entries(&dir.join("task")) {
                if let Some(t) = read_stat(&dir.join("task").join(tid.to_string()).join("stat")) {
                    add(t.cpu, t.ticks);
                }
            }
        }
        Ok(CoreLoad {
            at,
            cpus,
            ours,
            others,
            kernel,
        })
    }

    /// CPU `core`'s counters in this sample.
    pub fn cpu(&self, core: usize) -> CpuTimes {
        self.cpus.get(core).copied().unwrap_or_default()
    }

    /// Seconds from `earlier` to this sample.
    pub fn seconds_since(&self, earlier: &CoreLoad) -> f64 {
        self.at.duration_since(earlier.at).as_secs_f64()
    }

    /// Ticks other people's work took on `core` since `earlier`: their
    /// visible threads there, plus the core's sampled user + system ticks
    /// that no visible thread accounts for, at most the core's sampled
    /// user + system ticks less the benchmark's own there.
    pub fn others_since(&self, earlier: &CoreLoad, core: usize) -> u64 {
        let delta = |now: &[u64], then: &[u64]| {
            now.get(core)
                .copied()
                .unwrap_or(0)
                .saturating_sub(then.get(core).copied().unwrap_or(0))
        };
        let ours = delta(&self.ours, &earlier.ours);
        let others = delta(&self.others, &earlier.others);
        let kernel = delta(&self.kernel, &earlier.kernel);
        let c = self.cpu(core).since(earlier.cpu(core));
        // Sampled user + system time of the core: nobody's processes ran longer.
        let sampled = c.busy.saturating_sub(c.softirq + c.irq);
        let unseen = sampled.saturating_sub(ours + others + kernel);
        (others + unseen).min(sampled.saturating_sub(ours))
    }
}

/// The network-namespace inode of a named namespace (`/run/netns/NAME`).
///
/// # Errors
/// If the namespace file does not exist.
pub fn netns_inode(name: &str) -> Result<u64> {
    let path = Path::new("/run/netns").join(name);
    Ok(fs::metadata(&path)
        .with_context(|| format!("stat {}", path.display()))?
        .ino())
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
        assert_eq!(c1.idle, 4500 + 2);
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
            idle: 7,
        };
        let b = CpuTimes {
            busy: 25,
            softirq: 4,
            irq: 3,
            idle: 9,
        };
        assert_eq!(
            b.since(a),
            CpuTimes {
                busy: 15,
                softirq: 0,
                irq: 2,
                idle: 2,
            }
        );
    }

    #[test]
    fn director_share_of_a_core() {
        let core = CpuTimes {
            busy: 40,
            softirq: 10,
            irq: 0,
            idle: 300,
        };
        // 500 ticks elapsed, 300 idle: 200 busy, of which only 40 were
        // sampled; a stranger took 30.
        assert_eq!(director_ticks(core, 500, 30), 170);
        // Never below zero, whatever the estimates.
        assert_eq!(director_ticks(core, 250, 100), 0);
    }

    #[test]
    fn proc_stat_with_odd_comm() {
        let text = "4242 (a b) c)) S 17 4242 4242 0 -1 4194560 100 0 0 0 123 45 6 7 20 0 3 0 99 \
                    1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_proc_stat(text).unwrap();
        assert_eq!(s.cpu, 1);
        assert_eq!(s.ppid, 17);
        assert_eq!(s.ticks, 168);
        assert_eq!(s.child_ticks, 13);
        assert!(parse_proc_stat("1 (x) S 0").is_err());
        let load = CoreLoad::sample(&HashSet::new()).unwrap();
        assert_eq!(load.others_since(&load, 0), 0);
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
        assert!(CoreLoad::sample(&HashSet::new()).unwrap().cpu(0).busy > 0);
        assert!(clk_tck() > 0);
    }
}
