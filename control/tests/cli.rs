//! The `l4vs` binary's command line: `check-config` prints the effective
//! config, and every bad input exits non-zero with a message that names
//! what is wrong, before anything touches DPDK; so does a machine that
//! cannot run the config, or ports another l4vs drives (root only: two
//! real directors on `net_ring` ports). Also `l4vsadm -R`'s checks of its
//! input, made before it looks for a director.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

/// A port whose kernel interface does not exist is named, with the key to
/// fix, before DPDK starts (DPDK's own report was "No such device" from the
/// port lookup).
#[test]
fn missing_interface_is_named_with_its_key() {
    let bad = lab_nat_on_core0().replace("iface=eth0", "iface=l4vs-noiface0");
    let path = write_temp("no-iface.yaml", &bad);
    let err = run_fails(&path);
    assert!(
        err.contains(
            "l4vs: port lan: interface l4vs-noiface0 does not exist (device net_af_packet0,iface=l4vs-noiface0): create it or fix ports[0].device"
        ),
        "{err}"
    );
}

/// A worker core or the main core that is not an online CPU is refused
/// (a worker's used to start with a warning only). The port does not
/// exist either, so that without the check the run fails rather than
/// forwards.
#[test]
fn offline_cores_are_refused() {
    let base = lab_nat_on_core0().replace("iface=eth0", "iface=l4vs-noiface0");
    for (from, to, key) in [
        ("cores: [0]", "cores: [0, 1023]", "workers.cores"),
        ("main_core: 0", "main_core: 1023", "eal.main_core"),
    ] {
        let bad = base.replacen(from, to, 1);
        assert_ne!(bad, base);
        let path = write_temp("offline-core.yaml", &bad);
        let err = run_fails(&path);
        assert!(
            err.contains(&format!(
                "l4vs: {key}: core 1023 is not an online CPU of this machine (online: "
            )),
            "{key}: {err}"
        );
    }
}

/// A second l4vs on the ports of a running one is refused, naming the
/// first one's pid and lock (it used to start and forward beside it).
#[test]
fn second_instance_on_the_same_port_is_refused() {
    if !is_root() {
        eprintln!("skipped: the port locks in /run/l4vs need root");
        return;
    }
    let device = format!("net_ring_{}a", std::process::id());
    let path = write_temp("first.yaml", &ring_config(&device, &["--no-shconf"]));
    let lock = format!("/run/l4vs/port-vdev={device}.lock");
    let _cleanup = Cleanup(vec![PathBuf::from(&lock)]);
    let first = Running::start(&path);
    let err = run_fails(&path);
    assert!(
        err.contains(&format!(
            "l4vs: port ring ({device}) is in use by another l4vs (pid {}, lock {lock}): stop it first",
            first.pid()
        )),
        "{err}"
    );
}

/// Two directors in one namespace on one admin socket: the second stops
/// before EAL, naming the socket and the way out.
#[test]
fn second_instance_on_the_same_admin_socket_is_refused() {
    if !is_root() {
        eprintln!("skipped: the admin socket in /run/l4vs needs root");
        return;
    }
    let pid = std::process::id();
    let socket = format!("/run/l4vs/admin-test-shared-{pid}.sock");
    let with_socket = |device: &str| {
        ring_config(device, &["--no-shconf"]).replace(
            &format!("admin_socket: /run/l4vs/admin-test-{device}.sock"),
            &format!("admin_socket: {socket}"),
        )
    };
    let (d1, d2) = (format!("net_ring_{pid}d"), format!("net_ring_{pid}e"));
    let a = write_temp("admin-a.yaml", &with_socket(&d1));
    let b = write_temp("admin-b.yaml", &with_socket(&d2));
    let _cleanup = Cleanup(vec![
        format!("/run/l4vs/port-vdev={d1}.lock").into(),
        format!("/run/l4vs/port-vdev={d2}.lock").into(),
        PathBuf::from(&socket),
    ]);
    let _first = Running::start(&a);
    let out = run_fails_output(&b);
    let (stdout, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        err.contains(&format!(
            "admin socket {socket}: another l4vs answers on {socket}: stop it, or give this one its own admin_socket"
        )),
        "{err}"
    );
    assert!(
        !stdout.contains("initialised"),
        "refused before EAL: {stdout}"
    );
}

/// A second DPDK primary process on the runtime directory of a running
/// one: EAL fails without an error code (it used to read "Success (errno
/// 0)"); l4vs names the directory and the other process first.
#[test]
fn dpdk_runtime_dir_in_use_is_named() {
    if !is_root() {
        eprintln!("skipped: the port locks in /run/l4vs need root");
        return;
    }
    let pid = std::process::id();
    let prefix = format!("l4vs-cli-{pid}");
    let shared = ["--file-prefix", prefix.as_str()];
    let a = write_temp(
        "prefix-a.yaml",
        &ring_config(&format!("net_ring_{pid}b"), &shared),
    );
    let b = write_temp(
        "prefix-b.yaml",
        &ring_config(&format!("net_ring_{pid}c"), &shared),
    );
    let mut cleanup = Cleanup(vec![Path::new("/var/run/dpdk").join(&prefix)]);
    for port in ["b", "c"] {
        cleanup
            .0
            .push(format!("/run/l4vs/port-vdev=net_ring_{pid}{port}.lock").into());
    }
    let first = Running::start(&a);
    let err = run_fails(&b);
    let holder = first.pid();
    first.stop();
    assert!(!err.contains("Success"), "{err}");
    assert!(
        err.contains(&format!(
            "/dpdk/{prefix} is in use by another DPDK process (pid {holder}, lock "
        )) && err.contains("add --file-prefix NAME (or --no-shconf) to eal.args"),
        "{err}"
    );
}

/// Files and directories a test leaves behind, removed on drop (after the
/// [`Running`] directors made before it, which drop first).
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir_all(p));
        }
    }
}

/// `configs/lab-nat.yaml` with its worker on core 0, which every machine
/// has online.
fn lab_nat_on_core0() -> String {
    let text = std::fs::read_to_string(configs().join("lab-nat.yaml")).unwrap();
    let text2 = text.replacen("cores: [1]", "cores: [0]", 1);
    assert_ne!(text, text2);
    text2
}

/// Runs `l4vs run --config path`, which must fail within 30 s; its stderr.
fn run_fails(path: &Path) -> String {
    String::from_utf8_lossy(&run_fails_output(path).stderr).into_owned()
}

/// As [`run_fails`], with what it printed on stdout too.
fn run_fails_output(path: &Path) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_l4vs"))
        .args(["run", "--config", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running l4vs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "l4vs kept running: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    out
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().take(2).eq(["Uid:", "0"]))
}

/// A config with one `net_ring` port, `device` (at most 18 characters:
/// the ring PMD names its rings after it), that runs anywhere: no
/// hugepages, no PCI, one worker on a core this process may use, and an
/// admin socket named after the device, so that the directors of tests
/// running side by side in this namespace do not meet there. A ring port
/// has no traffic, so it forwards nothing.
fn ring_config(device: &str, extra_args: &[&str]) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim();
    let core: u32 = allowed
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut args = vec![
        "--no-huge",
        "-m",
        "128",
        "--no-pci",
        "--no-telemetry",
        "--log-level=*:error",
    ];
    args.extend_from_slice(extra_args);
    let args: Vec<String> = args.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "eal:\n  args: [{}]\n  main_core: {core}\nworkers:\n  cores: [{core}]\n  idle_sleep_us: 1000\n  connections: 1024\nports:\n  - name: ring\n    device: {device}\n    rx_desc: 64\n    tx_desc: 64\nmbufs: 1023\nadmin_socket: /run/l4vs/admin-test-{device}.sock\nmetrics_listen: off\nexception_path: false\n",
        args.join(", ")
    )
}

/// An `l4vs run` in the background until [`Running::stop`] or drop
/// (SIGINT, then SIGKILL after 10 s).
struct Running {
    child: Option<Child>,
}

impl Running {
    /// Starts `l4vs run --config path` and waits (30 s at most) for it to
    /// print that it is running.
    fn start(path: &Path) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_l4vs"))
            .args(["run", "--config", path.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running l4vs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut running = Running { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.contains("; running") => return running,
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let out = running.child.take().unwrap().wait_with_output().unwrap();
                    panic!(
                        "the first l4vs did not start: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
            assert!(Instant::now() < deadline, "the first l4vs never ran");
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGINT, and wait for it to end.
    fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.end();
    }
}

/// `l4vsadm -R` with `input` on its stdin, no director anywhere.
fn l4vsadm_restore(input: Vec<u8>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_l4vsadm"))
        .args(["--socket", "/nonexistent/l4vs-admin.sock", "-R"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running l4vsadm");
    let mut stdin = child.stdin.take().unwrap();
    // Written from a thread: the child may stop reading before the end.
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// `l4vsadm -R` checks its input before it looks for a director: a line
/// that is not UTF-8 is named, and more than one request's worth of
/// commands (16 MiB) is refused without reading on (it used to read all
/// of stdin first, gigabytes from an endless one).
#[test]
fn l4vsadm_restore_refuses_bad_input_before_connecting() {
    let out = l4vsadm_restore(b"-A -t 198.18.0.100:80 -s caf\xe9\n".to_vec());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "line 1: not UTF-8 text\n"
    );

    let mut huge = b"-A -t 198.18.0.100:80\n".to_vec();
    huge.resize((16 << 20) + 1, b' ');
    let out = l4vsadm_restore(huge);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "the input to restore is over 16 MiB: more than one request may carry\n"
    );

    // Within the limit, the same input gets as far as the director.
    let mut large = b"-A -t 198.18.0.100:80\n".to_vec();
    large.resize(16 << 20, b' ');
    let out = l4vsadm_restore(large);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("cannot reach l4vs on /nonexistent/l4vs-admin.sock"),
        "{err}"
    );
}

/// `l4vsadm` with `args`, no director anywhere.
fn l4vsadm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_l4vsadm"))
        .args(["--socket", "/nonexistent/l4vs-admin.sock"])
        .args(args)
        .output()
        .expect("running l4vsadm")
}

/// What the user typed comes back printable: a byte-order mark, a
/// terminal escape, a line break or 100 KB in an argument is escaped or
/// cut in the error, from clap's parsing, from l4vsadm's own checks and
/// from a `-R` line alike, as a config error quotes a value.
#[test]
fn l4vsadm_errors_show_what_was_typed_printably() {
    // clap: an argument it does not know.
    let out = l4vsadm(&["\u{feff}-A"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: unexpected argument '\\u{feff}-A' found\n"),
        "{err}"
    );
    assert!(!err.contains('\u{feff}'), "{err}");
    // The rest of clap's message is as clap writes it.
    assert!(
        err.contains("\nUsage: l4vsadm [OPTIONS] <--add-service|"),
        "{err}"
    );
    assert!(!err.contains('…'), "{err}");

    // l4vsadm's check of a scheduler name: escaped and cut at 64
    // characters, an escape counting as its length, as in a config error.
    // (One argument can be up to 128 KiB long: MAX_ARG_STRLEN.)
    let name = format!("\u{1b}[2J{}", "x".repeat(100_000));
    let out = l4vsadm(&["-A", "-t", "198.18.0.100:80", "-s", &name]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        format!(
            "Scheduler not found: `\\u{{1b}}[2J{}…` (100004 bytes) (l4vs has rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos)\n",
            "x".repeat(55),
        )
    );
    // A line break cannot make a second message.
    let out = l4vsadm(&["-A", "-t", "198.18.0.100:80", "-s", "x\nline 1: fake"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Scheduler not found: `x\\nline 1: fake` (l4vs has rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos)\n"
    );

    // l4vs itself prints its command-line errors so too.
    let out = l4vs(&["check-config", "--\u{1b}bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: unexpected argument '--\\u{1b}bogus' found\n"),
        "{err}"
    );
    assert!(err.contains("\nUsage: l4vs check-config"), "{err}");
    // check-config takes its file either way, and says so.
    let out = l4vs(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("\nUsage: l4vs check-config <FILE|--config <CONFIG>>\n"),
        "{err}"
    );
    // l4vs alone: its help, on stderr, status 2, as clap has it.
    let out = l4vs(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("\nUsage: l4vs <COMMAND>\n"), "{err}");

    // ipvsadm's -v prints the version, as -V and --version do.
    for flag in ["-v", "-V", "--version"] {
        let out = l4vsadm(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("l4vsadm {}\n", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
    }

    // A -R line: clap's reason, with the line's number.
    let out = l4vsadm_restore(b"-A -t 198.18.0.100:80\n-a \x07bell\n".to_vec());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "line 2: unexpected argument '\\u{7}bell' found\n"
    );
}
