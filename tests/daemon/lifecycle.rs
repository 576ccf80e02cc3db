//! SPEC §5 (graceful shutdown, reload, log reopening) and §8 (the control commands), with
//! the `lifecycle` and `echo` examples.

use crate::support::*;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

fn log_has(sandbox: &Sandbox, file: &str, text: &str) -> bool {
    fs::read_to_string(sandbox.path(file)).is_ok_and(|log| log.contains(text))
}

fn wait_for_log(sandbox: &Sandbox, file: &str, text: &str) {
    wait_until(&format!("{file} says {text:?}"), GONE_TIMEOUT, || {
        log_has(sandbox, file, text)
    });
}

/// Runs `lifecycle COMMAND` and returns what it said.
fn control(sandbox: &Sandbox, command: &str) -> Launch {
    launch(sandbox.command("lifecycle").arg(command))
}

fn assert_said(launched: &Launch, code: i32, stdout: &str) {
    assert_eq!(
        (launched.code(), launched.stdout.as_str()),
        (Some(code), stdout),
        "{launched:?}"
    );
}

#[test]
fn graceful_shutdown_and_reload_by_polling_by_waiting_and_by_descriptor() {
    for mode in ["poll", "wait", "fd"] {
        let sandbox = Sandbox::new("graceful");
        launch(sandbox.command("lifecycle").env("MODE", mode)).assert_started();
        let pid = sandbox.daemon_pid();
        wait_for_log(&sandbox, "stdout.log", "up ");
        signal(pid, libc::SIGHUP);
        wait_for_log(&sandbox, "stdout.log", "reload 1");
        signal(pid, libc::SIGHUP);
        wait_for_log(&sandbox, "stdout.log", "reload 2");
        // Signals are handled without a thread of the runtime's.
        assert_eq!(status(pid)["Threads"], "1", "MODE={mode}");
        // SIGINT (a Ctrl-C) asks the same as SIGTERM.
        signal(
            pid,
            if mode == "fd" {
                libc::SIGINT
            } else {
                libc::SIGTERM
            },
        );
        let status = wait_for_exit(pid, GONE_TIMEOUT).expect("the daemon is this test's child");
        assert_eq!(status.code(), Some(0), "MODE={mode}");
        let log = fs::read_to_string(sandbox.path("stdout.log")).unwrap();
        assert!(
            log.ends_with("shutting down\nbye\n"),
            "MODE={mode}: main did not finish its work:\n{log}"
        );
        assert!(
            !sandbox.pidfile().exists(),
            "MODE={mode}: pidfile left behind"
        );
    }
}

#[test]
fn every_thread_blocked_in_wait_sees_the_shutdown() {
    // Eight threads in `wait()` on one self-pipe: the first to wake must not drain the
    // wake-up the others are still to see. Several rounds, since it is a race.
    for round in 0..10 {
        let sandbox = Sandbox::new("waiters");
        let log = sandbox.path("stdout.log");
        launch(
            tunable(&sandbox)
                .env("MODE", "waiters")
                .env("SHUTDOWN", "graceful")
                .env("STDOUT", &log),
        )
        .assert_started_quietly_or_announced();
        let pid = sandbox.daemon_pid();
        wait_for_log(&sandbox, "stdout.log", "waiting");
        // Until all eight are blocked in poll: their wait channel says so, or (where the
        // kernel does not name it) the system call they are in, poll (7) or ppoll (271).
        let in_poll = |task: &Path| {
            fs::read_to_string(task.join("wchan")).is_ok_and(|wchan| wchan.contains("poll"))
                || fs::read_to_string(task.join("syscall"))
                    .is_ok_and(|call| ["7", "271"].contains(&call.split(' ').next().unwrap_or("")))
        };
        wait_until("eight threads wait", LAUNCH_TIMEOUT, || {
            fs::read_dir(format!("/proc/{pid}/task"))
                .map(|tasks| tasks.flatten().filter(|task| in_poll(&task.path())).count())
                .unwrap_or(0)
                == 8
        });
        signal(pid, libc::SIGTERM);
        let status = wait_for_exit(pid, GONE_TIMEOUT);
        let text = fs::read_to_string(&log).unwrap();
        assert_eq!(
            text.lines()
                .filter(|line| line.ends_with(": shutdown"))
                .count(),
            8,
            "round {round}: {status:?}\n{text}"
        );
        assert_eq!(
            status.and_then(|status| status.code()),
            Some(0),
            "round {round}"
        );
    }
}

#[test]
fn reload_after_logrotate_moved_the_log_writes_to_a_new_file() {
    let sandbox = Sandbox::new("logrotate");
    launch(&mut sandbox.command("lifecycle")).assert_started_quietly_or_announced();
    let pid = sandbox.daemon_pid();
    wait_for_log(&sandbox, "stdout.log", "up ");
    // logrotate without copytruncate: move, then signal.
    fs::rename(sandbox.path("stdout.log"), sandbox.path("stdout.log.1")).unwrap();
    let reloaded = control(&sandbox, "reload");
    assert_said(&reloaded, 0, &format!("lifecycle: reloading (pid {pid})\n"));
    wait_for_log(&sandbox, "stdout.log", "reload 1");
    let old = fs::read_to_string(sandbox.path("stdout.log.1")).unwrap();
    assert!(
        old.contains("up ") && !old.contains("reload"),
        "old log: {old:?}"
    );
    assert_eq!(fds(pid)[&1], sandbox.path("stdout.log"));
}

#[test]
fn every_control_command_in_every_state() {
    let sandbox = Sandbox::new("control");
    // Not running, no pidfile.
    assert_said(&control(&sandbox, "status"), 3, "lifecycle: not running\n");
    assert_said(&control(&sandbox, "stop"), 0, "lifecycle: not running\n");
    assert_said(&control(&sandbox, "reload"), 7, "lifecycle: not running\n");

    // Running.
    let started = launch(&mut sandbox.command("lifecycle"));
    let pid = sandbox.daemon_pid();
    assert_said(&started, 0, &format!("lifecycle: started (pid {pid})\n"));
    assert_said(
        &control(&sandbox, "start"),
        0,
        &format!("lifecycle: already running (pid {pid})\n"),
    );
    assert_said(
        &control(&sandbox, "status"),
        0,
        &format!("lifecycle: running (pid {pid})\n"),
    );
    assert_eq!(sandbox.processes(), vec![pid]);

    // Stop returns once the process is gone, and is idempotent.
    let stopped = control(&sandbox, "stop");
    assert!(!is_alive(pid), "stop returned while pid {pid} still runs");
    assert_said(&stopped, 0, &format!("lifecycle: stopped (pid {pid})\n"));
    assert!(!sandbox.pidfile().exists());
    assert_said(&control(&sandbox, "stop"), 0, "lifecycle: not running\n");

    // A stale pidfile: a dead pid, and a live process that holds no lock (this test).
    let stale = format!(
        "lifecycle: not running, but its pidfile {} remains (stale)\n",
        sandbox.pidfile().display()
    );
    for content in [
        "999999999\n".to_owned(),
        format!("{}\n", std::process::id()),
    ] {
        fs::write(sandbox.pidfile(), &content).unwrap();
        assert_said(&control(&sandbox, "status"), 1, &stale);
        assert_said(&control(&sandbox, "stop"), 0, "lifecycle: not running\n");
        assert_said(&control(&sandbox, "reload"), 7, "lifecycle: not running\n");
        assert_eq!(
            fs::read_to_string(sandbox.pidfile()).unwrap(),
            content,
            "a status command changed the pidfile"
        );
    }

    // Wrong commands.
    let unknown = control(&sandbox, "frobnicate");
    assert_eq!(unknown.code(), Some(2));
    assert_eq!(
        unknown.stderr,
        "lifecycle: unknown command `frobnicate`\nusage: lifecycle [start|stop|restart|status|reload|upgrade|run|unit [socket [NAME]]]\n"
    );
    let unit = control(&sandbox, "unit");
    assert_eq!(unit.code(), Some(0), "{unit:?}");
    assert!(
        unit.stdout.starts_with("[Unit]\nDescription=lifecycle\n"),
        "{unit:?}"
    );
    let wrong = launch(sandbox.command("lifecycle").args(["unit", "sockets"]));
    assert_eq!(
        (wrong.code(), wrong.stderr.as_str()),
        (
            Some(2),
            "lifecycle: usage: lifecycle unit [socket [NAME]]\n"
        )
    );
}

#[test]
fn restart_gives_a_new_pid() {
    let sandbox = Sandbox::new("restart");
    launch(&mut sandbox.command("lifecycle")).assert_started_quietly_or_announced();
    let old = sandbox.daemon_pid();
    let restarted = control(&sandbox, "restart");
    let new = sandbox.daemon_pid();
    assert_ne!(old, new);
    assert!(!is_alive(old));
    assert_said(
        &restarted,
        0,
        &format!("lifecycle: stopped (pid {old})\nlifecycle: started (pid {new})\n"),
    );
    assert_eq!(sandbox.processes(), vec![new]);
}

#[test]
fn stop_escalates_to_sigkill_after_stop_timeout() {
    let sandbox = Sandbox::new("stubborn");
    launch(sandbox.command("lifecycle").env("MODE", "stubborn"))
        .assert_started_quietly_or_announced();
    let pid = sandbox.daemon_pid();
    let stopped = control(&sandbox, "stop");
    assert_eq!(stopped.code(), Some(0), "{stopped:?}");
    // stop_timeout = 5 in the lifecycle example.
    let killed = format!("lifecycle: killed (pid {pid}): still running 5.");
    assert!(stopped.stdout.starts_with(&killed), "{stopped:?}");
    assert!(
        stopped.elapsed >= Duration::from_secs(5),
        "SIGKILL before stop_timeout"
    );
    assert!(!is_alive(pid));
    assert!(
        !sandbox.pidfile().exists(),
        "the killed daemon's pidfile was left"
    );
    assert!(log_has(
        &sandbox,
        "stdout.log",
        "ignoring the shutdown request"
    ));
}

#[test]
fn run_stays_in_the_foreground_with_the_pidfile_and_handlers() {
    let sandbox = Sandbox::new("run");
    let mut child = sandbox
        .command("lifecycle")
        .arg("run")
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    wait_until(
        "the pidfile names the foreground process",
        LAUNCH_TIMEOUT,
        || {
            fs::read_to_string(sandbox.pidfile())
                .is_ok_and(|pid| pid == format!("{}\n", child.id()))
        },
    );
    assert!(is_locked(&sandbox.pidfile()));
    assert_said(
        &control(&sandbox, "status"),
        0,
        &format!("lifecycle: running (pid {})\n", child.id()),
    );
    signal(child.id() as i32, libc::SIGTERM);
    let _ = child.stdout.take();
    let finished = finish(child, start);
    assert_eq!(finished.code(), Some(0), "{finished:?}");
    assert!(log_has(&sandbox, "stdout.log", "bye"));
    assert!(!sandbox.pidfile().exists());
}

#[test]
fn the_echo_service_finishes_an_open_connection_during_stop() {
    let sandbox = Sandbox::new("echo");
    let echo = |command: &str| launch(sandbox.command("echo").arg(command).env("ECHO_PORT", "0"));
    let started = echo("start");
    assert_eq!(started.code(), Some(0), "{started:?}");
    let pid = read_pid(&sandbox.path("echo.pid"));
    let port: u16 = fs::read_to_string(sandbox.path("echo.port"))
        .unwrap()
        .parse()
        .unwrap();

    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut line = String::new();
    writeln!(client, "hello").unwrap();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "hello\n");

    // `stop` in the background: the service stops accepting, but finishes this connection.
    let mut stop = sandbox.command("echo");
    stop.arg("stop");
    let stop_start = Instant::now();
    let stopping = stop.spawn().unwrap();
    wait_for_log(
        &sandbox,
        "echo.log",
        "echo: shutting down, 1 connection(s) to finish",
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "a new connection was accepted during shutdown"
    );
    line.clear();
    writeln!(client, "still here").unwrap();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "still here\n");
    assert!(
        is_alive(pid),
        "the service quit before the open connection ended"
    );
    drop((client, reader));

    let stopped = finish(stopping, stop_start);
    assert_said(&stopped, 0, &format!("echo: stopped (pid {pid})\n"));
    assert!(!is_alive(pid));
    let status = wait_for_exit(pid, GONE_TIMEOUT).expect("the daemon is this test's child");
    assert_eq!(
        status.code(),
        Some(0),
        "main returned Ok after the graceful shutdown"
    );
    assert!(log_has(&sandbox, "echo.log", "echo: bye"));
    assert!(!sandbox.path("echo.pid").exists());
}

#[test]
fn a_port_in_use_is_reported_by_the_launcher() {
    let sandbox = Sandbox::new("echo-busy");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let started = launch(sandbox.command("echo").env("ECHO_PORT", &port));
    assert_eq!(started.code(), Some(1), "{started:?}");
    assert_eq!(
        started.stderr,
        format!(
            "echo: cannot listen on echo=127.0.0.1:${{ECHO_PORT:-7007}} (127.0.0.1:{port}): \
             Address already in use\n"
        ),
        "{started:?}"
    );
    assert!(sandbox.processes().is_empty());
    assert!(!sandbox.path("echo.pid").exists());
}

#[test]
fn start_stop_daemon_agrees_with_status_and_stops_the_daemon() {
    let sandbox = Sandbox::new("start-stop-daemon");
    // dpkg installs it in /usr/sbin, which is not on every PATH.
    let program = ["/usr/sbin/start-stop-daemon", "/sbin/start-stop-daemon"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .unwrap_or("start-stop-daemon");
    let ssd = |action: &str| {
        let mut command = sandbox.command_for(program);
        command.arg(action).arg("--pidfile").arg(sandbox.pidfile());
        command
    };
    let ssd_status = || launch(&mut ssd("--status")).code();
    let ours = || control(&sandbox, "status").code();

    assert_eq!((ours(), ssd_status()), (Some(3), Some(3)), "not running");
    launch(&mut sandbox.command("lifecycle")).assert_started_quietly_or_announced();
    let pid = sandbox.daemon_pid();
    assert_eq!((ours(), ssd_status()), (Some(0), Some(0)), "running");

    // start-stop-daemon waits until /proc/PID is gone: the daemon, this (subreaper) test's
    // child, must be reaped meanwhile, as init would.
    let start = Instant::now();
    let stopping = ssd("--stop").args(["--retry", "5"]).spawn().unwrap();
    let status = wait_for_exit(pid, GONE_TIMEOUT).expect("the daemon is this test's child");
    assert_eq!(status.code(), Some(0));
    let stopped = finish(stopping, start);
    assert_eq!(stopped.code(), Some(0), "{stopped:?}");
    assert!(
        log_has(&sandbox, "stdout.log", "bye"),
        "SIGTERM from start-stop-daemon was not graceful"
    );
    assert!(!sandbox.pidfile().exists());

    fs::write(sandbox.pidfile(), "999999999\n").unwrap();
    assert_eq!((ours(), ssd_status()), (Some(1), Some(1)), "stale pidfile");
}

#[test]
fn stop_without_pidfds_waits_on_the_lock_instead() {
    let sandbox = Sandbox::new("no-pidfd");
    launch(&mut sandbox.command("lifecycle")).assert_started_quietly_or_announced();
    let pid = sandbox.daemon_pid();
    // A kernel older than 5.3: pidfd_open answers ENOSYS (strace injects it).
    let mut stop = sandbox.command_for("strace");
    let trace = sandbox.path("trace");
    stop.args(["-f", "-qq", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=pidfd_open",
            "-e",
            "inject=pidfd_open:error=ENOSYS",
        ])
        .arg(example("lifecycle"))
        .arg("stop");
    let stopped = launch(&mut stop);
    let trace = fs::read_to_string(trace).unwrap();
    assert!(
        trace.contains("ENOSYS") && trace.contains("(INJECTED)"),
        "pidfd_open was not refused:\n{trace}"
    );
    // The lock is released while the process exits, a moment before it is a zombie: the
    // fallback returns at that moment.
    assert!(!sandbox.pidfile().exists() || !is_locked(&sandbox.pidfile()));
    wait_until("the process is gone", Duration::from_secs(1), || {
        !is_alive(pid)
    });
    assert_said(&stopped, 0, &format!("lifecycle: stopped (pid {pid})\n"));
    assert!(log_has(&sandbox, "stdout.log", "bye"));
}

#[test]
fn stop_does_not_signal_a_pid_that_does_not_hold_the_pidfile() {
    let sandbox = Sandbox::new("forged-pid");
    launch(&mut sandbox.command("lifecycle")).assert_started_quietly_or_announced();
    let daemon = sandbox.daemon_pid();
    // A taken-over daemon (or anyone who may write the file) puts another process's pid in
    // its pidfile, hoping `stop`, run as root, kills that one.
    let mut bystander = sandbox.command_for("sleep").arg("30").spawn().unwrap();
    fs::write(sandbox.pidfile(), format!("{}\n", bystander.id())).unwrap();
    let stopped = control(&sandbox, "stop");
    assert_eq!(stopped.code(), Some(1), "{stopped:?}");
    assert_eq!(
        stopped.stderr,
        format!(
            "lifecycle: its pidfile {} is locked by pid {daemon} (lifecycle), but names pid {}, which does not hold it; not signalling any process\n",
            sandbox.pidfile().display(),
            bystander.id()
        )
    );
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the bystander was signalled"
    );
    assert!(is_alive(daemon));
    let _ = bystander.kill();
    let _ = bystander.wait();
}
