//! What the tshark interop tests share: writing frames to a pcap file
//! (pcap-file), running Debian's tshark, and reading its `-T fields`
//! output.

use pcap_file::pcap::{PcapPacket, PcapWriter};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The fields tshark showed for one frame, by name: every occurrence.
pub type Shown = HashMap<&'static str, Vec<String>>;

/// Writes `frames` (whole Ethernet frames) to a pcap file at `path`, a
/// millisecond apart.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let file = std::fs::File::create(path).expect("create the pcap file");
    let mut w = PcapWriter::new(file).expect("pcap header");
    for (i, f) in frames.iter().enumerate() {
        let ts = Duration::from_millis(i as u64);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f))
            .expect("pcap packet");
    }
}

/// Runs `tshark ARGS` and returns its stdout; fails, never skips, when
/// tshark is missing.
pub fn tshark(args: &[&str]) -> String {
    let out = match Command::new("tshark").args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "tshark not found: install Debian's tshark package \
             (apt-get install tshark; scripts/test installs it through scripts/deps.sh)"
        ),
        Err(e) => panic!("running tshark: {e}"),
    };
    assert!(
        out.status.success(),
        "tshark {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("tshark prints UTF-8")
}

/// tshark on the pcap file `pcap` with the options `prefs` (`-d`, `-o`),
/// showing `fields` of each frame, every occurrence.
pub fn dissect(pcap: &Path, prefs: &[&str], fields: &[&'static str]) -> Vec<Shown> {
    let path = pcap.to_str().expect("UTF-8 temp path");
    let mut args = vec!["-r", path];
    args.extend_from_slice(prefs);
    args.extend([
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]);
    for f in fields {
        args.extend(["-e", f]);
    }
    tshark(&args)
        .lines()
        .map(|line| {
            let cols: Vec<&str> = line.split('|').collect();
            assert_eq!(cols.len(), fields.len(), "tshark line: {line}");
            fields
                .iter()
                .zip(cols)
                .map(|(f, c)| {
                    let v = if c.is_empty() {
                        vec![]
                    } else {
                        c.split(',').map(str::to_owned).collect()
                    };
                    (*f, v)
                })
                .collect()
        })
        .collect()
}

/// A number as tshark prints it: decimal, or hex with 0x.
pub fn num(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    }
    .unwrap_or_else(|_| panic!("not a number: {s}"))
}
