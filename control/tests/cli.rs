//! The `l4vs` binary's command line: `check-config` prints the effective
//! config, and every bad input exits non-zero with a message that names
//! what is wrong, before anything touches DPDK.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn l4vs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_l4vs"))
        .args(args)
        .output()
        .expect("running l4vs")
}

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

fn write_temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("l4vs-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_config_prints_the_effective_config() {
    for entry in std::fs::read_dir(configs()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let out = l4vs(&["check-config", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        // Defaults are filled in, and the output is itself a valid config.
        assert!(
            text.contains("burst:") && text.contains("rx_desc:"),
            "{text}"
        );
        let again = write_temp(
            &format!("effective-{}", path.file_name().unwrap().to_str().unwrap()),
            &text,
        );
        assert!(l4vs(&["check-config", again.to_str().unwrap()])
            .status
            .success());
    }
}

#[test]
fn bad_config_names_file_line_and_key() {
    let good = std::fs::read_to_string(configs().join("lab-nat.yaml")).unwrap();
    let bad = good.replacen(
        "{ address: 198.18.2.12, port: 80 }",
        "{ address: 198.18.2.12, port: 80, weight: heavy }",
        1,
    );
    assert_ne!(good, bad);
    let line = bad.lines().position(|l| l.contains("heavy")).unwrap() + 1;
    let path = write_temp("bad-weight.yaml", &bad);
    for cmd in ["check-config", "run"] {
        let args: Vec<&str> = if cmd == "run" {
            vec!["run", "--config", path.to_str().unwrap()]
        } else {
            vec![cmd, path.to_str().unwrap()]
        };
        let out = l4vs(&args);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("bad-weight.yaml:{line}:")),
            "{cmd}: {err}"
        );
        assert!(err.contains("services[0].reals[1].weight"), "{cmd}: {err}");
    }
}

#[test]
fn missing_config_file_is_an_error() {
    let out = l4vs(&["check-config", "/nonexistent/l4vs.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/l4vs.yaml"));
}

/// Neither command opens what is not a regular file: a directory, or a
/// device that would never end (reading `/dev/zero` would fill memory).
#[test]
fn config_that_is_not_a_file_is_an_error() {
    let dir = write_temp("x", "").parent().unwrap().to_owned();
    for (path, what) in [
        (dir.to_str().unwrap(), "a directory"),
        ("/dev/zero", "a character device"),
    ] {
        for args in [vec!["check-config", path], vec!["run", "--config", path]] {
            let out = l4vs(&args);
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(&format!("{path}: not a regular file: {what}")),
                "{args:?}: {err}"
            );
        }
    }
}

/// A port whose interface does not exist: EAL or the port lookup fails and
/// l4vs exits non-zero with DPDK's reason, instead of running without it.
#[test]
fn missing_device_fails_with_the_dpdk_reason() {
    let good = std::fs::read_to_string(configs().join("lab-nat.yaml")).unwrap();
    let bad = good.replace("iface=eth0", "iface=l4vs-nonexistent0");
    let path = write_temp("no-iface.yaml", &bad);
    let out = l4vs(&["run", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("l4vs:") && (err.contains("port lan") || err.contains("EAL")),
        "{err}"
    );
}
