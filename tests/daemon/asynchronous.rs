//! SPEC §5.1: async services on tokio, in every arrangement of `#[daemon]` and
//! `#[tokio::main]`, the refusal of a process that used tokio first, a runtime that cannot
//! start, and tokio's own signal listeners next to the daemon's handlers.

use crate::support::*;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The example binaries of tokio_echo's service, and how many worker threads each runs.
const ARRANGEMENTS: [(&str, usize); 4] = [
    ("tokio_echo", 2),    // #[daemon(worker_threads = 2)] async fn main
    ("tokio_stacked", 2), // #[daemon] #[tokio::main(worker_threads = 2)]
    ("tokio_outer", 2),   // #[tokio::main(worker_threads = 2)] #[daemon]
    ("tokio_single", 0),  // #[daemon(flavor = "current_thread")]
];

/// Field 22 of a task's stat: when it started, in clock ticks since boot.
fn start_time(stat_path: &str) -> u64 {
    let text = fs::read_to_string(stat_path).unwrap_or_else(|e| panic!("{stat_path}: {e}"));
    let rest = &text[text.rfind(')').expect("stat format") + 2..];
    // Field 3 (the state) is the first after the name: field 22 is the 20th from there.
    rest.split_whitespace()
        .nth(19)
        .expect("field 22")
        .parse()
        .expect("a number")
}

fn tasks(pid: i32) -> Vec<i32> {
    let mut tasks: Vec<i32> = fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc/PID/task")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    tasks.sort_unstable();
    tasks
}

#[test]
fn every_arrangement_serves_from_its_workers_and_stops_gracefully() {
    for (example, workers) in ARRANGEMENTS {
        let sandbox = Sandbox::new(example);
        let port = free_port();
        let launched = launch(sandbox.command(example).env("ECHO_PORT", port.to_string()));
        launched.assert_started_quietly_or_announced();
        let pidfile = sandbox.path(&format!("{example}.pid"));
        let pid = read_pid(&pidfile);
        assert!(is_locked(&pidfile), "{example}: pidfile not locked");

        // As the launcher returns, the runtime is built (before readiness): exactly the main
        // thread and the runtime's workers, every one started in the daemon (field 22; the
        // count is what tells that nothing else was started).
        let tasks = tasks(pid);
        assert_eq!(tasks.len(), 1 + workers, "{example}: tasks {tasks:?}");
        let daemon_started = start_time(&format!("/proc/{pid}/stat"));
        for tid in &tasks {
            let started = start_time(&format!("/proc/{pid}/task/{tid}/stat"));
            assert!(
                started >= daemon_started,
                "{example}: task {tid} is older than the daemon"
            );
            if *tid != pid {
                // tokio's name for its workers ("tokio-rt-worker", "tokio-runtime-worker"
                // before), which a new thread gives itself once it runs.
                let comm = format!("/proc/{pid}/task/{tid}/comm");
                wait_until(
                    &format!("{example}: {comm} names a worker"),
                    GONE_TIMEOUT,
                    || fs::read_to_string(&comm).is_ok_and(|name| name.starts_with("tokio-r")),
                );
            }
        }

        // Answered by the connection's own task: on a worker, or on the only thread.
        assert_eq!(ask(port, "hello"), "hello\n", "{example}");
        let answer = ask(port, "thread");
        let (answer_pid, tid) = answer
            .trim()
            .split_once("/task/")
            .unwrap_or_else(|| panic!("{example}: {answer:?}"));
        assert_eq!(answer_pid, pid.to_string(), "{example}");
        let tid: i32 = tid.parse().unwrap();
        assert!(
            tasks.contains(&tid),
            "{example}: answered on {tid}, not one of {tasks:?}"
        );
        if workers > 0 {
            assert_ne!(
                tid, pid,
                "{example}: answered on the main thread, not by a worker"
            );
        }

        // SIGTERM in the middle of a 600 ms request: the answer still comes, a new connection
        // is refused meanwhile, then exit 0 and no pidfile.
        let log = sandbox.path(&format!("{example}.log"));
        let accepted = || {
            fs::read_to_string(&log)
                .unwrap_or_default()
                .matches(" connection ")
                .count()
        };
        let before = accepted();
        let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
        slow.set_read_timeout(Some(GONE_TIMEOUT)).unwrap();
        writeln!(slow, "slow goodbye").unwrap();
        // Accepted, and its line on the way: in the middle of the request.
        wait_until("the slow connection is accepted", GONE_TIMEOUT, || {
            accepted() > before
        });
        std::thread::sleep(Duration::from_millis(100));
        let signalled = Instant::now();
        signal(pid, libc::SIGTERM);
        wait_until("new connections are refused", GONE_TIMEOUT, || {
            refused(port)
        });
        let refused_after = signalled.elapsed();
        let mut reader = BufReader::new(&slow);
        let mut reply = String::new();
        reader.read_line(&mut reply).unwrap();
        assert_eq!(reply, "goodbye\n", "{example}");
        assert!(
            refused_after < Duration::from_millis(450),
            "{example}: refused only {refused_after:?} after SIGTERM, not while the request ran"
        );
        // The line in hand answered, the daemon closes the connection.
        reply.clear();
        assert_eq!(
            reader.read_line(&mut reply).unwrap(),
            0,
            "{example}: {reply:?}"
        );
        drop(slow);
        let status = wait_for_exit(pid, GONE_TIMEOUT).expect("the daemon is our child");
        assert_eq!(status.code(), Some(0), "{example}: {status:?}");
        assert!(!pidfile.exists(), "{example}: pidfile left behind");
        let log = fs::read_to_string(sandbox.path(&format!("{example}.log"))).unwrap();
        assert!(
            log.contains("shutting down,") && log.ends_with("bye\n"),
            "{example}: {log}"
        );
    }
}

#[test]
fn a_process_that_already_used_tokio_is_refused() {
    for (how, found) in [
        ("built", "is an epoll instance this program created"),
        ("entered", "tokio::runtime::Handle::try_current() succeeds"),
        // The runtime is gone; tokio::signal's handler and socket pair are not.
        (
            "signal",
            "a handler for SIGUSR1 was installed before the start, and descriptor ",
        ),
    ] {
        let sandbox = Sandbox::new(&format!("tokio-before-{how}"));
        let launched = launch(tunable(&sandbox).env("TOKIO_BEFORE", how));
        assert_failed_cleanly(&sandbox, &launched);
        assert!(
            launched.stderr.starts_with(
                "tunable: cannot daemonize a process in which an async runtime was already used ("
            ) && launched.stderr.contains(found)
                && launched.stderr.ends_with(
                    "fork would break it; start the daemon first thing in main, and let it build \
                     the runtime (`#[daemon] async fn main`, or `Daemon::run_async`)\n"
                ),
            "{how}: {launched:?}"
        );
        assert_eq!(
            fs::read_dir(&sandbox.dir).unwrap().count(),
            0,
            "{how}: files left"
        );
    }
}

#[test]
fn a_signal_handler_with_a_socket_pair_is_refused_and_either_alone_is_not() {
    // Both, not kept: the state tokio::signal (or signal-hook) leaves, refused.
    let sandbox = Sandbox::new("before-start-both");
    let launched = launch(tunable(&sandbox).env("BEFORE_START", "handler,pair"));
    assert_failed_cleanly(&sandbox, &launched);
    assert!(
        launched
            .stderr
            .contains("(a handler for SIGUSR2 was installed before the start, and descriptor ")
            && launched
                .stderr
                .contains(" is a Unix socket pair this program created: the signal state of"),
        "{launched:?}"
    );
    // Either alone, or the pair kept open through the start, or a pair beside glibc's own
    // handler (SIGSETXID, once a thread ran), or a handler beside connections to a named
    // socket: the start goes on.
    for what in [
        "handler",
        "pair",
        "handler,pair,kept",
        "thread,pair",
        "handler,named",
    ] {
        let sandbox = Sandbox::new("before-start");
        launch(tunable(&sandbox).env("BEFORE_START", what)).assert_started_quietly_or_announced();
        let pid = sandbox.daemon_pid();
        let sockets = fds(pid)
            .values()
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count();
        // A pair not kept was closed, as every descriptor the start does not keep.
        let kept = if what.ends_with("kept") { 2 } else { 0 };
        assert_eq!(sockets, kept, "{what}");
        signal(pid, libc::SIGTERM);
        wait_for_exit(pid, GONE_TIMEOUT);
    }
}

#[test]
fn a_runtime_that_cannot_start_fails_the_launch() {
    if !running_as_root("a_runtime_that_cannot_start_fails_the_launch") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    // The runtime #[daemon] builds, with ready = "auto" and "manual", and the one
    // #[tokio::main] builds under #[daemon].
    for (example, environment, pidfile) in [
        ("tokio_echo", &[][..], "tokio_echo.pid"),
        (
            "tokio_tunable",
            &[("WORKERS", "2"), ("READY", "manual")][..],
            "probe.pid",
        ),
        ("tokio_stacked", &[][..], "tokio_stacked.pid"),
    ] {
        let sandbox = Sandbox::new(&format!("runtime-cannot-start-{example}"));
        fs::set_permissions(&sandbox.dir, fs::Permissions::from_mode(0o777)).unwrap();
        // A user of its own, allowed 3 processes and threads: the launcher, the first child
        // and the daemon fit; two worker threads do not, and tokio panics starting them.
        let mut command = sandbox.command_for(sandbox.copy_example(example));
        let port = free_port().to_string();
        command.env("ECHO_PORT", &port).env("PORT", &port);
        command.envs(environment.iter().copied());
        run_as(&mut command, 64_321, 64_321, Some(3));
        let launched = launch(&mut command);
        assert_eq!(launched.code(), Some(1), "{example}: {launched:?}");
        assert!(
            launched
                .stderr
                .contains(": cannot start the tokio runtime: ")
                && launched.stderr.contains("can't spawn worker thread"),
            "{example}: {launched:?}"
        );
        assert!(
            launched.elapsed < Duration::from_secs(10),
            "{example}: took {:?}",
            launched.elapsed
        );
        assert!(
            sandbox.processes().is_empty(),
            "{example}: left {:?}",
            sandbox.processes()
        );
        assert!(
            !sandbox.path(pidfile).exists(),
            "{example}: pidfile left behind"
        );
    }
}

#[test]
fn futures_on_many_tasks_each_see_the_shutdown_after_a_burst_of_reloads() {
    let sandbox = Sandbox::new("tokio-watchers");
    let (pid, port) = start_tokio_tunable(&sandbox, &[("WORKERS", "2"), ("WATCHERS", "8")]);
    log_lines(port, 1);
    for _ in 0..30 {
        signal(pid, libc::SIGHUP);
    }
    terminate(pid);
    let log = fs::read_to_string(sandbox.path("stderr.log")).unwrap();
    assert!(log.contains("8 watchers saw the shutdown"), "{log}");
    assert!(
        log.contains("a later shutdown() is complete at once: true"),
        "{log}"
    );
    let taken: u32 = log
        .split(" reloads taken")
        .next()
        .and_then(|before| before.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        (1..=30).contains(&taken),
        "{taken} reloads taken of 30: {log}"
    );
}

/// Asks the tokio_tunable example (listening on `port`) to log `count` numbered lines; the
/// number of the last line written.
pub fn log_lines(port: u16, count: u64) -> u64 {
    let answer = ask(port, &count.to_string());
    answer
        .trim()
        .strip_prefix("ok ")
        .and_then(|last| last.parse().ok())
        .unwrap_or_else(|| panic!("answer {answer:?}"))
}

#[test]
fn tokio_signal_listeners_leave_the_daemons_handling_in_place() {
    let sandbox = Sandbox::new("tokio-signals");
    let (pid, port) = start_tokio_tunable(&sandbox, &[("TOKIO_SIGNALS", "1")]);
    log_lines(port, 1); // the body runs, its listeners are registered

    // SIGHUP: the daemon reopens its log (logrotate moved it), and tokio's listener hears it.
    let log = sandbox.path("stderr.log");
    fs::rename(&log, sandbox.path("stderr.log.1")).unwrap();
    signal(pid, libc::SIGHUP);
    wait_until("tokio heard SIGHUP, in the new log", GONE_TIMEOUT, || {
        fs::read_to_string(&log).is_ok_and(|text| text.contains("tokio saw SIGHUP"))
    });

    // SIGTERM: the daemon's graceful shutdown, and tokio's listener hears it too.
    terminate(pid);
    assert!(!sandbox.pidfile().exists());
    let text = fs::read_to_string(&log).unwrap();
    let (heard, bye) = (text.find("tokio saw SIGTERM"), text.find("bye"));
    assert!(heard.is_some() && heard < bye, "{text}");
}

#[test]
fn every_reload_reaches_the_async_body() {
    let sandbox = Sandbox::new("tokio-reloads");
    let port = free_port();
    launch(
        sandbox
            .command("tokio_echo")
            .env("ECHO_PORT", port.to_string()),
    )
    .assert_started_quietly_or_announced();
    let pid = read_pid(&sandbox.path("tokio_echo.pid"));
    let log = sandbox.path("tokio_echo.log");
    let reloads = || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("reload requested")
            .count()
    };
    // One SIGHUP at a time: each one is seen, none is lost after the one before.
    for expected in 1..=5 {
        signal(pid, libc::SIGHUP);
        let deadline = Instant::now() + GONE_TIMEOUT;
        while reloads() != expected {
            assert!(
                Instant::now() < deadline,
                "reload {expected} not seen: {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // A burst counts as one at least, and as no more reloads than were sent.
    for _ in 0..10 {
        signal(pid, libc::SIGHUP);
    }
    wait_until("the burst is seen", GONE_TIMEOUT, || reloads() > 5);
    std::thread::sleep(Duration::from_millis(100));
    assert!(reloads() <= 15, "{} reloads for 15 SIGHUPs", reloads());
    assert_eq!(ask(port, "still here"), "still here\n");
    terminate(pid);
}

#[test]
fn an_epoll_leaked_by_the_parent_is_no_reason_to_refuse() {
    let sandbox = Sandbox::new("leaked-epoll");
    let mut command = tunable(&sandbox);
    // A parent's whole reactor leaked across exec: an epoll instance (not close-on-exec)
    // watching an eventfd, both inherited.
    // SAFETY: the closure runs between fork and exec and only makes system calls.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            let epoll = libc::epoll_create1(0);
            let event_fd = libc::eventfd(0, 0);
            let mut event = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: 0,
            };
            if epoll < 0
                || event_fd < 0
                || libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, event_fd, &mut event) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    launch(&mut command).assert_started();
    let pid = sandbox.daemon_pid();
    let epolls: Vec<_> = fds(pid)
        .into_iter()
        .filter(|(_, target)| target.to_string_lossy().contains("eventpoll"))
        .collect();
    assert_eq!(epolls, [], "the inherited epoll was kept");
}
