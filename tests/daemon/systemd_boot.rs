//! systemd 252 as PID 1 of private namespaces, for the tests and the benchmark: a cgroup2
//! directory of its own, `unshare` of the PID, mount, UTS, IPC and cgroup namespaces, `proc`,
//! a tmpfs on `/run`, a cgroup2 on `/sys/fs/cgroup`, and a unit path of its own with stub
//! targets and nothing else: the machine's units, `systemd-tmpfiles` among them, must never
//! run. Root only.

#![allow(dead_code)] // the benchmark uses a part

use crate::support::*;
use std::fs;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// The machine's cgroup2 mount, where the instance gets a directory of its own.
fn cgroup2_root() -> Option<PathBuf> {
    fs::read_to_string("/proc/self/mountinfo")
        .ok()?
        .lines()
        .find(|line| line.contains(" - cgroup2 "))
        .and_then(|line| line.split_whitespace().nth(4))
        .map(PathBuf::from)
}

/// A systemd, PID 1 of its namespaces; killed, and its cgroup removed, on drop.
pub struct Systemd {
    unshare: Child,
    pub pid: i32,
    cgroup: PathBuf,
    pub units: PathBuf,
}

impl Systemd {
    pub fn boot(sandbox: &Sandbox) -> Option<Systemd> {
        let Some(root) = cgroup2_root() else {
            skip_or_fail("no cgroup2 mount on this machine");
            return None;
        };
        let units = sandbox.path("units");
        fs::create_dir_all(&units).unwrap();
        for target in [
            "default",
            "sysinit",
            "basic",
            "multi-user",
            "sockets",
            "network",
            "shutdown",
        ] {
            fs::write(
                units.join(format!("{target}.target")),
                format!("[Unit]\nDescription={target}\n"),
            )
            .unwrap();
        }
        let cgroup = root.join(format!(
            "daemon-test-{}",
            sandbox.dir.file_name().unwrap().to_string_lossy()
        ));
        // The shell moves itself into the new cgroup, then becomes unshare; inside, systemd
        // sees a cgroup2 whose root is that directory, and no v1 hierarchy.
        let script = format!(
            r#"mkdir {cgroup} && echo $$ > {cgroup}/cgroup.procs && exec unshare --pid --fork --kill-child --mount --propagation private --uts --ipc --cgroup sh -c '
mount -t proc proc /proc && mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup &&
exec env -i container=daemon-test SYSTEMD_UNIT_PATH={units} SYSTEMD_GENERATOR_PATH= PATH=/usr/sbin:/usr/bin:/sbin:/bin /lib/systemd/systemd --show-status=no'"#,
            cgroup = cgroup.display(),
            units = units.display(),
        );
        let mut command = sandbox.command_for("sh");
        command
            .args(["-c", &script])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // If the test process dies (a CI timeout), so does unshare, and with it systemd
        // (--kill-child) and everything in its namespace.
        // SAFETY: prctl with integer arguments only, between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                Ok(())
            });
        }
        let unshare = command.spawn().expect("sh");
        let mut systemd = Systemd {
            pid: 0,
            unshare,
            cgroup,
            units,
        };
        let unshare_pid = systemd.unshare.id();
        wait_until(
            "systemd runs as PID 1 of the namespace",
            LAUNCH_TIMEOUT,
            || {
                let children =
                    fs::read_to_string(format!("/proc/{unshare_pid}/task/{unshare_pid}/children"))
                        .unwrap_or_default();
                systemd.pid = children
                    .split_whitespace()
                    .filter_map(|pid| pid.parse().ok())
                    .find(|&pid: &i32| {
                        fs::read_to_string(format!("/proc/{pid}/comm"))
                            .is_ok_and(|c| c == "systemd\n")
                    })
                    .unwrap_or(0);
                systemd.pid != 0
            },
        );
        wait_until("systemd is up", LAUNCH_TIMEOUT, || {
            let state = systemd.systemctl(&["is-system-running"]).stdout;
            matches!(state.trim(), "running" | "degraded")
        });
        Some(systemd)
    }

    /// `COMMAND` (a program and its arguments) inside the namespaces, through `nsenter`.
    pub fn nsenter(&self, command: &[&str]) -> Launch {
        let pid = self.pid.to_string();
        launch(
            std::process::Command::new("nsenter")
                .args(["-t", &pid, "-m", "-p"])
                .args(command)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped()),
        )
    }

    /// `systemctl ARGS` inside the namespaces.
    pub fn systemctl(&self, arguments: &[&str]) -> Launch {
        self.nsenter(&[&["systemctl", "--no-pager"][..], arguments].concat())
    }

    /// A property of a unit (`systemctl show -p`).
    pub fn property(&self, unit: &str, name: &str) -> String {
        let shown = self.systemctl(&["show", unit, "-p", name, "--value"]);
        shown.stdout.trim().to_owned()
    }

    /// `systemctl start UNIT`, which must succeed.
    pub fn start(&self, unit: &str) {
        let started = self.systemctl(&["start", unit]);
        assert_eq!(started.code(), Some(0), "start {unit}: {started:?}");
    }

    /// The unit's `MainPID`, as the namespace sees it.
    pub fn main_pid(&self, unit: &str) -> i32 {
        let pid = self.property(unit, "MainPID");
        pid.parse()
            .unwrap_or_else(|_| panic!("{unit}: MainPID={pid:?}"))
    }

    pub fn install(&self, name: &str, content: &str) {
        fs::write(self.units.join(name), content).unwrap();
        let reloaded = self.systemctl(&["daemon-reload"]);
        assert_eq!(reloaded.code(), Some(0), "{reloaded:?}");
    }
}

impl Drop for Systemd {
    fn drop(&mut self) {
        // PID 1 gone, the kernel ends everything in its namespace (and --kill-child ends
        // systemd if unshare goes first).
        if self.pid > 0 {
            // SAFETY: kill with integer arguments only.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        let deadline = Instant::now() + GONE_TIMEOUT;
        while self.cgroup.exists() && Instant::now() < deadline {
            remove_cgroup(&self.cgroup);
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.cgroup.exists() {
            eprintln!(
                "warning: cgroup {} could not be removed",
                self.cgroup.display()
            );
        }
    }
}

/// Removes a cgroup directory tree, deepest first (each is empty once its processes died).
fn remove_cgroup(dir: &std::path::Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove_cgroup(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}
