//! `l4vs-lab demo` end to end with `l4vs-lab stub-director` standing in for
//! the `l4vs` binary (which these tests must not depend on): a full run
//! passes and leaves nothing behind, and a SIGINT in the middle of the load
//! still tears the lab down. Needs root; runs in its own namespaces.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use l4vs_lab::netns;

fn lab_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_l4vs-lab"))
}

/// A temp dir with a fake `l4vs` (exec'ing the stub) and a config file.
fn fixture(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("l4vs-lab-test-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let l4vs = dir.join("l4vs");
    std::fs::write(
        &l4vs,
        format!(
            "#!/bin/sh\nexec '{}' stub-director \"$@\"\n",
            lab_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&l4vs, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.join("lab-nat.yaml");
    std::fs::write(&config, "# ignored by the stub\n").unwrap();
    (dir, l4vs, config)
}

fn leftovers(prefix: &str) -> Vec<String> {
    let mine = format!("{prefix}-");
    netns::list()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&mine))
        .collect()
}

/// The lab prefix from the demo's `lab <prefix> up: ...` line.
fn prefix_of(line: &str) -> Option<String> {
    line.strip_prefix("lab ")
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

#[test]
fn demo_runs_and_cleans_up() {
    let (dir, l4vs, config) = fixture("ok");
    let out = Command::new(lab_bin())
        .args(["demo", "--count", "30", "--udp-count", "0", "--config"])
        .arg(&config)
        .arg("--l4vs")
        .arg(&l4vs)
        .arg("--log")
        .arg(dir.join("director.log"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed\n{stdout}\n{stderr}");
    for want in [
        "rs1",
        "rs2",
        "rs3",
        "PASS",
        "stub-director: stopping",
        "lab torn down",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }
    let prefix = stdout
        .lines()
        .find_map(prefix_of)
        .expect("demo names its lab");
    assert!(leftovers(&prefix).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn demo_interrupted_by_sigint_cleans_up() {
    let (dir, l4vs, config) = fixture("int");
    let mut demo = Command::new(lab_bin())
        .args(["demo", "--count", "1000000", "--config"])
        .arg(&config)
        .arg("--l4vs")
        .arg(&l4vs)
        .arg("--log")
        .arg(dir.join("director.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = demo.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut prefix = None;
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("demo never started sending");
        prefix = prefix.or_else(|| prefix_of(&line));
        if line.starts_with("sending") {
            break;
        }
    }
    let prefix = prefix.expect("demo names its lab");
    thread::sleep(Duration::from_millis(500));
    netns::signal(&[demo.id()], "INT").unwrap();
    let mut status = None;
    for _ in 0..300 {
        if let Some(s) = demo.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let Some(status) = status else {
        let _ = demo.kill();
        let _ = netns::cleanup(&prefix);
        panic!("demo did not exit within 30 s of SIGINT");
    };
    assert!(!status.success(), "an interrupted demo must fail");
    assert!(leftovers(&prefix).is_empty(), "{:?}", leftovers(&prefix));
    let _ = std::fs::remove_dir_all(dir);
}
