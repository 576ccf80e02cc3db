//! SPEC §7 and §8 under a real systemd: systemd 252 as PID 1 of private namespaces, booted
//! by `systemd_boot` (the way the supervisors issue describes). Root only.

use crate::support::*;
use crate::systemd_boot::Systemd;
use std::fs;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One systemd at a time: each is a whole init with its journal.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The common start of a test under systemd: root, one instance at a time (the guard, to
/// keep until the end), its sandbox, the booted systemd. `None` (after saying so) where it
/// cannot run.
fn under_systemd(
    test: &str,
    sandbox_name: &str,
) -> Option<(std::sync::MutexGuard<'static, ()>, Sandbox, Systemd)> {
    if !running_as_root(test) {
        return None;
    }
    let one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sandbox = Sandbox::new(sandbox_name);
    let systemd = Systemd::boot(&sandbox)?;
    Some((one, sandbox, systemd))
}

/// Installs the activated example's units, and starts the socket: the first connection to
/// the port returned starts the service.
fn listen_through_systemd(sandbox: &Sandbox, systemd: &Systemd) -> u16 {
    let port = free_port();
    let (service, socket) = activated_units(sandbox, port);
    systemd.install("activated.service", &service);
    systemd.install("activated-echo.socket", &socket);
    systemd.start("activated-echo.socket");
    port
}

/// A pid of systemd's namespace, as the machine sees it.
fn host_pid(systemd: &Systemd, ns_pid: i32) -> i32 {
    processes_in_namespace_of(systemd.pid)
        .into_iter()
        .find(|&pid| namespace_pid(pid) == Some(ns_pid))
        .unwrap_or_else(|| panic!("no process {ns_pid} in systemd's namespace"))
}

#[test]
fn the_generated_service_starts_reloads_and_stops_under_systemd() {
    let Some((_one, sandbox, systemd)) = under_systemd(
        "the_generated_service_starts_reloads_and_stops_under_systemd",
        "systemd-service",
    ) else {
        return;
    };
    let port = free_port();
    let (service, _) = activated_units(&sandbox, port);
    systemd.install("activated.service", &service);
    systemd.start("activated.service");
    let main_pid = systemd.main_pid("activated.service");
    // The pid systemd watches is the one in the pidfile and the one that answers (all as
    // the namespace sees them).
    assert_eq!(read_pid(&sandbox.path("activated.pid")), main_pid);
    // (Its answer names its pid as its namespace sees it, as MainPID does.)
    assert_eq!(answering_pid(port), main_pid);
    assert_eq!(
        systemd.property("activated.service", "StatusText"),
        "serving"
    );
    // Reload: done within a second, still active, same process.
    let start = Instant::now();
    let reloaded = systemd.systemctl(&["reload", "activated.service"]);
    assert_eq!(reloaded.code(), Some(0), "{reloaded:?}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "reload took {:?}",
        start.elapsed()
    );
    assert_eq!(
        systemd.property("activated.service", "ActiveState"),
        "active"
    );
    assert_eq!(
        systemd.property("activated.service", "MainPID"),
        main_pid.to_string()
    );
    let stopped = systemd.systemctl(&["stop", "activated.service"]);
    assert_eq!(stopped.code(), Some(0), "{stopped:?}");
    assert_eq!(systemd.property("activated.service", "Result"), "success");
    assert!(!sandbox.path("activated.pid").exists(), "pidfile left");
}

#[test]
fn the_generated_socket_activates_the_service_on_the_first_connection() {
    let Some((_one, sandbox, systemd)) = under_systemd(
        "the_generated_socket_activates_the_service_on_the_first_connection",
        "systemd-socket",
    ) else {
        return;
    };
    let port = listen_through_systemd(&sandbox, &systemd);
    assert_eq!(
        systemd.property("activated.service", "ActiveState"),
        "inactive"
    );
    // The first connection starts the service, which answers on systemd's socket.
    let answering = answering_pid(port);
    wait_until("the service is active", LAUNCH_TIMEOUT, || {
        systemd.property("activated.service", "ActiveState") == "active"
    });
    let main_pid = systemd.main_pid("activated.service");
    assert_eq!(answering, main_pid, "the process systemd started answers");
    let stopped = systemd.systemctl(&["stop", "activated.service", "activated-echo.socket"]);
    assert_eq!(stopped.code(), Some(0), "{stopped:?}");
}

#[test]
fn a_watchdog_keeps_a_pinging_service_alive() {
    let Some((_one, sandbox, systemd)) = under_systemd(
        "a_watchdog_keeps_a_pinging_service_alive",
        "systemd-watchdog",
    ) else {
        return;
    };
    let (service, _) = activated_units(&sandbox, free_port());
    fs::create_dir_all(systemd.units.join("activated.service.d")).unwrap();
    fs::write(
        systemd.units.join("activated.service.d/watchdog.conf"),
        "[Service]\nWatchdogSec=1s\n",
    )
    .unwrap();
    systemd.install("activated.service", &service);
    systemd.start("activated.service");
    let main_pid = systemd.property("activated.service", "MainPID");
    assert_eq!(systemd.property("activated.service", "WatchdogUSec"), "1s");
    // Three intervals: a service that did not ping would have been killed twice over.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        systemd.property("activated.service", "ActiveState"),
        "active"
    );
    assert_eq!(systemd.property("activated.service", "MainPID"), main_pid);
    // The pings arrive: the watchdog's timestamp moves on.
    let pinged = || {
        systemd
            .property("activated.service", "WatchdogTimestampMonotonic")
            .parse::<u64>()
            .unwrap()
    };
    let first = pinged();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(pinged() > first, "no WATCHDOG=1 in 1.5 s");
}

/// A unit for the tunable example, with the sandbox's variables.
fn tunable_unit(sandbox: &Sandbox, service: &str, extra_environment: &str) -> String {
    format!(
        "[Service]\n{service}\nExecStart={}\nEnvironment=PROBE_DIR={dir} TMPDIR={dir} DAEMON_TEST_SANDBOX={dir} {extra_environment}\n",
        example("tunable").display(),
        dir = sandbox.dir.display()
    )
}

#[test]
fn a_forking_unit_with_a_pidfile_runs_the_classic_daemon() {
    let Some((_one, sandbox, systemd)) = under_systemd(
        "a_forking_unit_with_a_pidfile_runs_the_classic_daemon",
        "systemd-forking",
    ) else {
        return;
    };
    let unit = tunable_unit(
        &sandbox,
        &format!("Type=forking\nPIDFile={}", sandbox.pidfile().display()),
        "",
    );
    systemd.install("tunable.service", &unit);
    systemd.start("tunable.service");
    let main_pid = systemd.main_pid("tunable.service");
    assert_eq!(read_pid(&sandbox.pidfile()), main_pid);
    let stopped = systemd.systemctl(&["stop", "tunable.service"]);
    assert_eq!(stopped.code(), Some(0), "{stopped:?}");
    assert_eq!(systemd.property("tunable.service", "Result"), "success");
}

#[test]
fn detach_always_under_type_notify_makes_the_daemon_the_main_pid() {
    let Some((_one, sandbox, systemd)) = under_systemd(
        "detach_always_under_type_notify_makes_the_daemon_the_main_pid",
        "systemd-always",
    ) else {
        return;
    };
    let unit = tunable_unit(&sandbox, "Type=notify", "DETACH=always");
    systemd.install("tunable.service", &unit);
    systemd.start("tunable.service");
    let main_pid = systemd.main_pid("tunable.service");
    // The launcher systemd started has exited; the daemon it forked is the main process. It
    // is no session leader (systemd makes the process it starts one; the daemon, forked
    // twice, is not).
    assert_eq!(read_pid(&sandbox.pidfile()), main_pid);
    let daemon = host_pid(&systemd, main_pid);
    assert_ne!(
        stat(daemon).session,
        daemon,
        "the foreground process, not the daemon"
    );
    assert_eq!(systemd.property("tunable.service", "ActiveState"), "active");
    let stopped = systemd.systemctl(&["stop", "tunable.service"]);
    assert_eq!(stopped.code(), Some(0), "{stopped:?}");
    assert_eq!(systemd.property("tunable.service", "Result"), "success");
}

#[test]
fn under_systemd_an_async_service_logs_to_the_journal() {
    let Some((_one, sandbox, systemd)) = under_systemd(
        "under_systemd_an_async_service_logs_to_the_journal",
        "systemd-journal",
    ) else {
        return;
    };
    // A journald of the namespace's own, its journal in the namespace's /run only.
    systemd.install(
        "systemd-journald.socket",
        "[Unit]\nDefaultDependencies=no\n[Socket]\nListenStream=/run/systemd/journal/stdout\nListenDatagram=/run/systemd/journal/socket\nPassCredentials=yes\nService=systemd-journald.service\n",
    );
    systemd.install(
        "systemd-journald.service",
        "[Unit]\nDefaultDependencies=no\nRequires=systemd-journald.socket\n[Service]\nType=notify\nExecStartPre=/bin/sh -c 'mkdir -p /run/systemd/journald.conf.d && printf \"[Journal]\\nStorage=volatile\\n\" > /run/systemd/journald.conf.d/volatile.conf'\nExecStart=/lib/systemd/systemd-journald\nSockets=systemd-journald.socket\nRuntimeDirectory=systemd/journal\n",
    );
    systemd.start("systemd-journald.socket");
    // tokio_tunable in the foreground (Type=notify), `tracing` to stderr, no `stderr` key.
    let port = free_port();
    systemd.install(
        "tokio-journal.service",
        &format!(
            "[Service]\nType=notify\nExecStart={}\nEnvironment=PROBE_DIR={dir} PORT={port} STDERR=inherit DAEMON_TEST_SANDBOX={dir}\n",
            example("tokio_tunable").display(),
            dir = sandbox.dir.display()
        ),
    );
    systemd.start("tokio-journal.service");
    let main_pid = host_pid(&systemd, systemd.main_pid("tokio-journal.service"));
    let stderr = fs::read_link(format!("/proc/{main_pid}/fd/2")).unwrap();
    assert!(
        stderr.to_string_lossy().starts_with("socket:"),
        "stderr is {stderr:?}, not the journal's stream"
    );
    let last = crate::asynchronous::log_lines(port, 3);
    wait_until("the lines are in the journal", LAUNCH_TIMEOUT, || {
        let journal = systemd.nsenter(&[
            "journalctl",
            "--no-pager",
            "-o",
            "cat",
            "-u",
            "tokio-journal.service",
        ]);
        journal
            .stdout
            .contains(&format!("tokio_tunable: line {last}\n"))
    });
    assert!(!sandbox.path("stderr.log").exists(), "a log file was made");
    let stopped = systemd.systemctl(&["stop", "tokio-journal.service"]);
    assert_eq!(stopped.code(), Some(0), "{stopped:?}");
    assert_eq!(
        systemd.property("tokio-journal.service", "Result"),
        "success"
    );
}

#[test]
fn under_systemd_upgrade_says_to_restart_and_a_restart_keeps_connections_queued() {
    let Some((_one, sandbox, systemd)) = under_systemd(
        "under_systemd_upgrade_says_to_restart_and_a_restart_keeps_connections_queued",
        "systemd-restart",
    ) else {
        return;
    };
    let port = listen_through_systemd(&sandbox, &systemd);
    let first = answering_pid(port);
    // `upgrade` leaves a unit's main process to systemd, and says what to do instead (run
    // in systemd's namespaces, where the pidfile's pid is the daemon's).
    let pid = systemd.pid.to_string();
    let refused = launch(
        sandbox
            .command_for("nsenter")
            .args(["-t", &pid, "-m", "-p", "--"])
            .arg(example("activated"))
            .arg("upgrade")
            .env("ACTIVATED_PORT", port.to_string()),
    );
    assert_eq!(refused.code(), Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains("runs under systemd")
            && refused
                .stderr
                .contains("socket activation and `systemctl restart`"),
        "{refused:?}"
    );
    assert_eq!(answering_pid(port), first, "the service was disturbed");
    // What it says works: while clients connect without pause, a restart of the service
    // refuses none of them (systemd's socket queues them meanwhile).
    let clients = crate::upgrade::Clients::start(port, 4);
    std::thread::sleep(Duration::from_millis(200));
    let restarted = systemd.systemctl(&["restart", "activated.service"]);
    assert_eq!(restarted.code(), Some(0), "{restarted:?}");
    let done = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    let seen = clients.finish();
    let second = systemd.main_pid("activated.service");
    assert_ne!(second, first);
    for (client, seen) in seen.iter().enumerate() {
        assert_eq!(seen.failures, Vec::<String>::new(), "client {client}");
        assert!(
            seen.replies
                .iter()
                .any(|(at, prefix)| *at > done && *prefix == format!("echo {second}: ")),
            "client {client}: no answer from the restarted service"
        );
    }
    let stopped = systemd.systemctl(&["stop", "activated.service", "activated-echo.socket"]);
    assert_eq!(stopped.code(), Some(0), "{stopped:?}");
}
