//! The appliance files in `dist/`: the systemd unit passes
//! `systemd-analyze verify` once `dist/install` has put the programs it
//! names in place (and a broken unit does not), the installer keeps an
//! operator's files, and `l4vs-prepare` reserves hugepages, mounts
//! hugetlbfs and binds NICs idempotently.
//!
//! Nothing here touches the machine: the installer writes into a scratch
//! root (its DESTDIR), and `l4vs-prepare` runs against a fake sysfs and
//! /proc with fake `mount`, `modprobe` and `dpdk-devbind.py` first on its
//! PATH, which only record their arguments.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository root")
}

/// A fresh scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("l4vs-systemd-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("creating a scratch directory");
        Scratch(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// Writes `text` to `rel`, creating its directories.
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `dist/install` into `destdir` with the test build's binaries.
fn install(destdir: &Path, extra: &[&str]) -> Output {
    let bins = Path::new(env!("CARGO_BIN_EXE_l4vs")).parent().unwrap();
    Command::new(repo().join("dist/install"))
        .arg("--destdir")
        .arg(destdir)
        .arg("--from")
        .arg(bins)
        .args(extra)
        .env_remove("DESTDIR")
        .env_remove("PREFIX")
        .output()
        .expect("running dist/install")
}

// ---- the unit ---------------------------------------------------------------

/// `systemd-analyze verify` on `unit`. It exits 0 after mere warnings
/// (a misspelt value is "ignoring"), so any line about the unit is a
/// failure too, not only the exit status.
fn verify(unit: &Path) -> Result<(), String> {
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "systemd-analyze is missing, so the unit cannot be checked: install systemd \
                 (Debian: apt-get install systemd; scripts/test installs it)"
            )
        });
    let out = Command::new(analyze)
        .arg("verify")
        .arg(unit)
        .output()
        .expect("running systemd-analyze verify");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Lines about other units (a distribution's own) are not ours to fix.
    let ours: Vec<&str> = all.lines().filter(|l| l.contains("l4vs")).collect();
    if out.status.success() && ours.is_empty() {
        if !all.trim().is_empty() {
            eprintln!("systemd-analyze verify, about other units:\n{all}");
        }
        Ok(())
    } else {
        Err(format!("status {}\n{all}", out.status))
    }
}

/// The installed unit with its /usr/local paths moved into `root`, where
/// the installer put the programs: verify checks that ExecStart= and
/// ExecStartPre= name executables, and `--root` would also move
/// /bin/kill and the system's own units out of reach.
fn rooted_unit(root: &Path, unit: &str, dir: &str) -> PathBuf {
    let rooted = unit.replace(
        "/usr/local/",
        &format!("{}/usr/local/", root.to_str().unwrap()),
    );
    let p = root.join(dir).join("l4vs.service");
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, rooted).unwrap();
    p
}

#[test]
fn the_installed_unit_passes_systemd_analyze_verify() {
    let s = Scratch::new("verify");
    let root = s.path("root");
    let out = install(&root, &[]);
    assert!(out.status.success(), "{}", text(&out));
    for f in [
        "usr/local/bin/l4vs",
        "usr/local/bin/l4vsadm",
        "usr/local/lib/l4vs/l4vs-prepare",
    ] {
        let mode = fs::metadata(root.join(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{f} is not executable");
    }
    let unit = fs::read_to_string(root.join("etc/systemd/system/l4vs.service")).unwrap();
    let checked = rooted_unit(&root, &unit, "verify");
    if let Err(e) = verify(&checked) {
        panic!("systemd-analyze verify refuses the unit:\n{e}");
    }
}

#[test]
fn systemd_analyze_verify_refuses_a_broken_unit() {
    let s = Scratch::new("broken");
    let root = s.path("root");
    assert!(install(&root, &[]).status.success());
    let unit = fs::read_to_string(root.join("etc/systemd/system/l4vs.service")).unwrap();
    // Each breakage with what verify says about it: a misspelt value (a
    // warning only, exit status 0), a program that is not there, an
    // unknown key.
    let broken = [
        ("Type=notify", "Type=notfy", "notfy"),
        (
            "/usr/local/bin/l4vs run",
            "/usr/local/bin/l4vs-missing run",
            "not executable",
        ),
        ("NotifyAccess=main", "NotifyAcess=main", "NotifyAcess"),
    ];
    for (i, (from, to, said)) in broken.into_iter().enumerate() {
        assert!(unit.contains(from), "the unit has no {from}");
        let p = rooted_unit(&root, &unit.replace(from, to), &format!("broken{i}"));
        match verify(&p) {
            Ok(()) => panic!("systemd-analyze verify accepted a unit with {to}"),
            Err(e) => assert!(e.contains(said), "expected {said:?} in:\n{e}"),
        }
    }
}

#[test]
fn the_unit_says_what_the_director_relies_on() {
    let unit = fs::read_to_string(repo().join("dist/systemd/l4vs.service")).unwrap();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for want in [
        "Type=notify",
        "NotifyAccess=main",
        "ExecStartPre=+/usr/local/lib/l4vs/l4vs-prepare",
        "ExecStart=/usr/local/bin/l4vs run --config /etc/l4vs/l4vs.yaml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
        "Restart=on-failure",
        "RuntimeDirectory=l4vs",
        "RuntimeDirectoryMode=0700",
        "LimitMEMLOCK=infinity",
    ] {
        assert!(lines.contains(&want), "the unit lacks {want}");
    }
    // The ExecStart= command line is one the binary takes.
    let out = Command::new(env!("CARGO_BIN_EXE_l4vs"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("--config"),
        "{}",
        text(&out)
    );
}

#[test]
fn install_keeps_the_operators_files_and_follows_the_prefix() {
    let s = Scratch::new("install");
    let root = s.path("root");
    s.write("root/etc/l4vs/l4vs.yaml", "# mine\n");
    s.write("root/etc/default/l4vs", "L4VS_HUGEPAGES_2M=4096\n");
    for _ in 0..2 {
        let out = install(&root, &["--prefix", "/opt/l4vs"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    assert_eq!(
        fs::read_to_string(root.join("etc/l4vs/l4vs.yaml")).unwrap(),
        "# mine\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/default/l4vs")).unwrap(),
        "L4VS_HUGEPAGES_2M=4096\n"
    );
    assert_eq!(
        fs::read(root.join("etc/l4vs/l4vs.yaml.example")).unwrap(),
        fs::read(repo().join("configs/example-full.yaml")).unwrap()
    );
    let unit = fs::read_to_string(root.join("etc/systemd/system/l4vs.service")).unwrap();
    assert!(unit.contains("ExecStart=/opt/l4vs/bin/l4vs run --config /etc/l4vs/l4vs.yaml"));
    assert!(unit.contains("ExecStartPre=+/opt/l4vs/lib/l4vs/l4vs-prepare"));
    assert!(!unit.contains("/usr/local/"), "{unit}");
    assert!(root.join("opt/l4vs/bin/l4vsadm").exists());

    // Without a build, it says to make one.
    let out = Command::new(repo().join("dist/install"))
        .args(["--destdir", root.to_str().unwrap(), "--from"])
        .arg(s.path("nothing-built"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cargo build --release"),
        "{}",
        text(&out)
    );
}

// ---- l4vs-prepare -------------------------------------------------------------

/// A fake machine for `l4vs-prepare`: sysfs with 2 MB and 1 GB pools on
/// two NUMA nodes and two NICs, /proc with its mounts and meminfo, and
/// fake `mount`, `modprobe` and `dpdk-devbind.py` that log their
/// arguments to `calls`.
struct FakeMachine {
    s: Scratch,
}

const POOL_2M: &str = "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
const POOL_1G: &str = "sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages";
const HUGETLBFS_2M: &str = "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n";

impl FakeMachine {
    fn new(name: &str, mounts: &str) -> FakeMachine {
        let s = Scratch::new(name);
        s.write(POOL_2M, "0\n");
        s.write(POOL_1G, "0\n");
        for node in 0..2 {
            for kb in [2048, 1_048_576] {
                s.write(
                    &format!(
                        "sys/devices/system/node/node{node}/hugepages/hugepages-{kb}kB/nr_hugepages"
                    ),
                    "0\n",
                );
            }
        }
        s.write("proc/mounts", mounts);
        s.write("proc/meminfo", "Hugepagesize:       2048 kB\n");
        // One NIC on vfio-pci already, one on its kernel driver.
        s.write("sys/bus/pci/drivers/vfio-pci/.keep", "");
        s.write("sys/bus/pci/drivers/ixgbe/.keep", "");
        for (dev, driver) in [("0000:03:00.0", "vfio-pci"), ("0000:03:00.1", "ixgbe")] {
            s.write(&format!("sys/bus/pci/devices/{dev}/.keep"), "");
            symlink(
                s.path(&format!("sys/bus/pci/drivers/{driver}")),
                s.path(&format!("sys/bus/pci/devices/{dev}/driver")),
            )
            .unwrap();
        }
        for tool in ["mount", "modprobe", "dpdk-devbind.py"] {
            let p = s.write(
                &format!("bin/{tool}"),
                &format!("#!/bin/sh\necho \"{tool} $*\" >> \"$(dirname \"$0\")/../calls\"\n"),
            );
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        FakeMachine { s }
    }

    /// Runs l4vs-prepare with `defaults` as /etc/default/l4vs and `env`.
    fn prepare(&self, defaults: &str, env: &[(&str, &str)]) -> Output {
        let s = &self.s;
        s.write("default", defaults);
        let path = format!(
            "{}:{}",
            s.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(repo().join("dist/systemd/l4vs-prepare"));
        for (k, _) in std::env::vars() {
            if k.starts_with("L4VS_") {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove("RUNTIME_DIRECTORY")
            .env("PATH", path)
            .env("L4VS_DEFAULTS", s.path("default"))
            .env("L4VS_SYSFS", s.path("sys"))
            .env("L4VS_PROC", s.path("proc"))
            .env("L4VS_RUN_DIR", s.path("run/l4vs"))
            .env("L4VS_HUGEPAGES_MOUNT", s.path("dev/hugepages"))
            .env("L4VS_HUGEPAGES_MOUNT_1G", s.path("dev/hugepages1G"))
            .env("L4VS_DEVBIND", s.path("bin/dpdk-devbind.py"));
        cmd.envs(env.iter().copied());
        cmd.output().expect("running l4vs-prepare")
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.s.path(rel))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    fn calls(&self) -> String {
        self.read("calls")
    }
}

#[test]
fn prepare_reserves_the_pages_asked_for_and_is_idempotent() {
    let m = FakeMachine::new("pages", HUGETLBFS_2M);
    let out = m.prepare("L4VS_HUGEPAGES_2M=512\n", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(m.read(POOL_2M), "512");
    assert_eq!(m.read(POOL_1G), "0", "no 1G pages were asked for");
    assert!(
        text(&out).contains("reserved 512 2M hugepages"),
        "{}",
        text(&out)
    );
    // hugetlbfs is mounted already; nothing else was asked for.
    assert_eq!(m.calls(), "");
    let run = fs::metadata(m.s.path("run/l4vs")).unwrap();
    assert!(run.is_dir());
    assert_eq!(run.permissions().mode() & 0o777, 0o700);

    // Again: nothing changes, and it says so.
    let out = m.prepare("L4VS_HUGEPAGES_2M=512\n", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(m.read(POOL_2M), "512");
    assert!(text(&out).contains("nothing to do"), "{}", text(&out));
    assert_eq!(m.calls(), "");

    // It never lowers a count (something else may use the pages), and the
    // environment wins over the file.
    let out = m.prepare("L4VS_HUGEPAGES_2M=256\n", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(m.read(POOL_2M), "512");
    let out = m.prepare("L4VS_HUGEPAGES_2M=256\n", &[("L4VS_HUGEPAGES_2M", "700")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(m.read(POOL_2M), "700");

    // Without a settings file: the default, 1024.
    let none = m.s.path("no-such-file");
    let out = m.prepare("", &[("L4VS_DEFAULTS", none.to_str().unwrap())]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(m.read(POOL_2M), "1024");
}

#[test]
fn prepare_reserves_per_numa_node_and_1g_pages_with_their_mount() {
    let m = FakeMachine::new("nodes", HUGETLBFS_2M);
    let out = m.prepare(
        "L4VS_HUGEPAGES_2M=64\nL4VS_HUGEPAGES_1G=2\nL4VS_HUGEPAGES_NODES=\"0 1\"\n",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    for node in 0..2 {
        let pool = format!("sys/devices/system/node/node{node}/hugepages");
        assert_eq!(
            m.read(&format!("{pool}/hugepages-2048kB/nr_hugepages")),
            "64"
        );
        assert_eq!(
            m.read(&format!("{pool}/hugepages-1048576kB/nr_hugepages")),
            "2"
        );
    }
    assert_eq!(m.read(POOL_2M), "0", "per node, not the global pool");
    // 2M pages have a mount; 1G pages get one of their own.
    let mount_1g = m.s.path("dev/hugepages1G");
    assert_eq!(
        m.calls(),
        format!(
            "mount -t hugetlbfs -o pagesize=1G nodev {}",
            mount_1g.display()
        )
    );
    assert!(mount_1g.is_dir());

    // Once the kernel lists it (as pagesize=1024M), nothing is mounted.
    m.s.write(
        "proc/mounts",
        &format!(
            "{HUGETLBFS_2M}nodev {} hugetlbfs rw,relatime,pagesize=1024M 0 0\n",
            mount_1g.display()
        ),
    );
    fs::remove_file(m.s.path("calls")).unwrap();
    let out = m.prepare(
        "L4VS_HUGEPAGES_2M=64\nL4VS_HUGEPAGES_1G=2\nL4VS_HUGEPAGES_NODES=\"0 1\"\n",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(m.calls(), "");
}

#[test]
fn prepare_mounts_hugetlbfs_when_it_is_missing() {
    let m = FakeMachine::new("mount", "proc /proc proc rw 0 0\n");
    let out = m.prepare("L4VS_HUGEPAGES_2M=8\n", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        m.calls(),
        format!(
            "mount -t hugetlbfs -o pagesize=2M nodev {}",
            m.s.path("dev/hugepages").display()
        )
    );
}

#[test]
fn prepare_fails_clearly_when_the_kernel_gives_fewer_pages() {
    let m = FakeMachine::new("short", HUGETLBFS_2M);
    // A pool that takes the write and reads back 0, as the kernel does
    // when it finds no free memory for the pages.
    fs::remove_file(m.s.path(POOL_2M)).unwrap();
    symlink("/dev/null", m.s.path(POOL_2M)).unwrap();
    let out = m.prepare("L4VS_HUGEPAGES_2M=512\n", &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("reserved only 0 of 512 2M hugepages"),
        "{said}"
    );
    assert!(
        said.contains("hugepages=512"),
        "says how to reserve at boot: {said}"
    );

    // A count that is not a number, and a page size the machine lacks.
    let out = m.prepare("L4VS_HUGEPAGES_2M=lots\n", &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("must be a number, not 'lots'"),
        "{}",
        text(&out)
    );
    fs::remove_file(m.s.path(POOL_1G)).unwrap();
    let out = m.prepare("L4VS_HUGEPAGES_2M=0\nL4VS_HUGEPAGES_1G=1\n", &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no 1G hugepages"), "{}", text(&out));
}

#[test]
fn prepare_loads_vfio_and_binds_only_what_is_not_bound() {
    let m = FakeMachine::new("vfio", HUGETLBFS_2M);
    let out = m.prepare("L4VS_HUGEPAGES_2M=0\nL4VS_VFIO=1\n", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(m.calls(), "modprobe vfio-pci");
    // Loaded: not again.
    m.s.write("sys/module/vfio_pci/.keep", "");
    fs::remove_file(m.s.path("calls")).unwrap();

    let bind = "L4VS_HUGEPAGES_2M=0\nL4VS_BIND=\"0000:03:00.0 0000:03:00.1\"\n";
    let out = m.prepare(bind, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(m.calls(), "dpdk-devbind.py --bind=vfio-pci 0000:03:00.1");
    assert!(text(&out).contains("0000:03:00.0 is on vfio-pci already"));

    // Without dpdk-devbind.py it says where to get it.
    let out = m.prepare(bind, &[("L4VS_DEVBIND", "l4vs-test-no-such-devbind.py")]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("apt-get install dpdk"),
        "{}",
        text(&out)
    );

    // A device that is not there.
    let out = m.prepare("L4VS_HUGEPAGES_2M=0\nL4VS_BIND=0000:99:00.0\n", &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("0000:99:00.0, which is not a PCI device"),
        "{}",
        text(&out)
    );
}
