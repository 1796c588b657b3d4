//! The results table: one row per director, three workloads per row, each
//! with the director core's CPU next to the rate and the rate per
//! director CPU-second; rows for peers that could not run say why.
//!
//! Rendering only; [`crate::bench`] fills the rows.

use std::fmt::Write as _;

/// Other people's share of a core (in cores) from which a measurement is
/// flagged as disturbed.
pub const NOISY: f64 = 0.05;

/// One workload's measurement on one director.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Measure {
    /// Requests, connections or datagrams per second, as the client measured it.
    pub rate: f64,
    /// The director's CPU ([`crate::cpu::director_ticks`]), in cores.
    pub director_cores: f64,
    /// The director core's busy time (elapsed − idle), whoever used it, in cores.
    pub core_busy_cores: f64,
    /// The busy time the tick sampled on that core (the `/proc/stat`
    /// busy columns), in cores: below `core_busy_cores` by what it missed.
    pub core_sampled_cores: f64,
    /// Of that, softirq (kernel packet processing), in cores.
    pub softirq_cores: f64,
    /// The director process's own utime+stime, in cores, where there is a process.
    pub process_cores: Option<f64>,
    /// Other people's load on the client core meanwhile, in cores (a lower
    /// bound, [`crate::cpu::CoreLoad`]).
    pub others_client_core: f64,
    /// Other people's load on the director core meanwhile: its busy time
    /// minus the director's, in cores.
    pub others_director_core: f64,
    /// Client-side problems worth reading (errors, stalls, drops).
    pub problems: Vec<String>,
}

impl Measure {
    /// Whether other people's processes took a noticeable share of either core.
    pub fn disturbed(&self) -> bool {
        self.others_client_core.max(self.others_director_core) >= NOISY
    }

    /// Rate per second of director CPU; `None` when the director used next
    /// to nothing (the baseline), where the ratio would be noise.
    pub fn per_cpu_second(&self) -> Option<f64> {
        (self.director_cores >= 0.02).then(|| self.rate / self.director_cores)
    }
}

/// A table cell group: measured, or why not.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// It ran.
    Measured(Measure),
    /// It could not run (missing package, failed start); the reason.
    NotRun(String),
    /// This peer does not do it (HAProxy and UDP); the reason.
    NotApplicable(String),
}

/// One director's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// e.g. `nftables DNAT (numgen)`.
    pub director: String,
    /// The baseline without a director: no per-CPU-second figure.
    pub baseline: bool,
    /// HTTP keep-alive requests/s.
    pub keep_alive: Cell,
    /// New TCP connections/s (one request each).
    pub new_conn: Cell,
    /// UDP echo datagrams/s.
    pub udp: Cell,
    /// Short note for the table.
    pub note: String,
    /// Longer notes, listed under the table.
    pub details: Vec<String>,
}

impl Row {
    /// A row for a director that could not run at all.
    pub fn not_run(director: impl Into<String>, reason: &str) -> Row {
        Row {
            director: director.into(),
            baseline: false,
            keep_alive: Cell::NotRun(reason.to_owned()),
            new_conn: Cell::NotRun(reason.to_owned()),
            udp: Cell::NotRun(reason.to_owned()),
            note: format!("not run: {reason}"),
            details: Vec::new(),
        }
    }
}

/// `45.6 k`, `980`, `1.23 M`.
pub fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn cells(c: &Cell, baseline: bool) -> [String; 3] {
    match c {
        Cell::Measured(m) => [
            si(m.rate),
            format!("{:.2}", m.director_cores),
            match m.per_cpu_second() {
                Some(v) if !baseline => si(v),
                _ => "—".to_owned(),
            },
        ],
        Cell::NotRun(_) => ["not run".to_owned(), "—".to_owned(), "—".to_owned()],
        Cell::NotApplicable(_) => ["n/a".to_owned(), "—".to_owned(), "—".to_owned()],
    }
}

/// The markdown table (header, separator, one line per row).
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| director | keep-alive req/s | CPU | req per CPU-s | new conn/s | CPU | conn per CPU-s | UDP pkt/s | CPU | pkt per CPU-s | notes |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    for r in rows {
        let mut line = format!("| {} ", r.director);
        for c in [&r.keep_alive, &r.new_conn, &r.udp] {
            for v in cells(c, r.baseline) {
                let _ = write!(line, "| {v} ");
            }
        }
        let disturbed = [&r.keep_alive, &r.new_conn, &r.udp]
            .iter()
            .any(|c| matches!(c, Cell::Measured(m) if m.disturbed()));
        let mut note = r.note.replace('|', "/");
        if disturbed {
            note += " (others' load during the run: see details)";
        }
        let _ = writeln!(line, "| {note} |");
        s += &line;
    }
    s
}

/// Per-row details: the process's own CPU, softirq share, other load,
/// problems, reasons for cells that did not run.
pub fn details(rows: &[Row]) -> String {
    let mut s = String::new();
    for r in rows {
        let mut items = r.details.clone();
        for (what, c) in [
            ("keep-alive", &r.keep_alive),
            ("new conn", &r.new_conn),
            ("UDP", &r.udp),
        ] {
            match c {
                Cell::Measured(m) => {
                    let mut d = format!(
                        "{what}: director core busy {:.2} (tick-sampled {:.2}, of it softirq {:.2}",
                        m.core_busy_cores, m.core_sampled_cores, m.softirq_cores
                    );
                    if let Some(p) = m.process_cores {
                        let _ = write!(d, ", director process {p:.2}");
                    }
                    d.push(')');
                    if m.others_client_core.max(m.others_director_core) >= NOISY {
                        let _ = write!(
                            d,
                            ", other people's processes took ≥ {:.2} of the client core and {:.2} \
                             of the director core",
                            m.others_client_core, m.others_director_core
                        );
                    }
                    for p in &m.problems {
                        let _ = write!(d, "; {p}");
                    }
                    items.push(d);
                }
                Cell::NotRun(why) | Cell::NotApplicable(why) => {
                    if !r.note.contains(why.as_str()) {
                        items.push(format!("{what}: {why}"));
                    }
                }
            }
        }
        if !items.is_empty() {
            let _ = writeln!(s, "- **{}**: {}", r.director, items.join("; "));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(rate: f64, cores: f64) -> Cell {
        Cell::Measured(Measure {
            rate,
            director_cores: cores,
            core_busy_cores: cores + 0.1,
            core_sampled_cores: cores,
            softirq_cores: cores / 2.0,
            process_cores: Some(0.5),
            others_client_core: 0.3,
            others_director_core: 0.0,
            problems: vec!["wrk socket errors 3".to_owned()],
        })
    }

    #[test]
    fn numbers() {
        assert_eq!(si(45_612.0), "45.6 k");
        assert_eq!(si(980.4), "980");
        assert_eq!(si(1_234_567.0), "1.23 M");
    }

    #[test]
    fn table_has_every_kind_of_row() {
        let rows = vec![
            Row {
                director: "none".into(),
                baseline: true,
                keep_alive: m(45_600.0, 0.01),
                new_conn: m(11_500.0, 0.01),
                udp: m(50_000.0, 0.0),
                note: "client to rs1".into(),
                details: vec![],
            },
            Row {
                director: "HAProxy".into(),
                baseline: false,
                keep_alive: m(32_000.0, 0.5),
                new_conn: m(6_900.0, 0.8),
                udp: Cell::NotApplicable("HAProxy has no UDP".into()),
                note: String::new(),
                details: vec![],
            },
            Row::not_run("nftables", "nft not installed"),
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5);
        let columns = lines[0].matches('|').count();
        assert!(
            lines.iter().all(|l| l.matches('|').count() == columns),
            "{t}"
        );
        assert!(lines[2].contains("| 45.6 k | 0.01 | — |"), "{}", lines[2]);
        assert!(
            lines[3].contains("| 32.0 k | 0.50 | 64.0 k |"),
            "{}",
            lines[3]
        );
        assert!(lines[3].contains("| n/a |"));
        assert!(lines[4].contains("not run: nft not installed"));

        let d = details(&rows);
        assert!(d.contains("director process 0.50"));
        assert!(d.contains("took ≥ 0.30 of the client core and 0.00 of the director core"));
        assert!(d.contains("UDP: HAProxy has no UDP"));
        assert!(
            !d.contains("nftables"),
            "the reason is already in the table"
        );
    }
}
