//! SPEC §10: `upgrade` replaces a running daemon with the binary now at its path, while
//! clients keep connecting: no connection refused or reset, the pidfile's lock passed on,
//! the old daemon finishing its requests; a new binary that fails leaves the old one serving.

use crate::support::*;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What one client saw: every failure, and each reply with when its request was sent.
#[derive(Debug, Default)]
pub struct Seen {
    pub failures: Vec<String>,
    pub replies: Vec<(Instant, String)>,
}

/// Clients that connect in a loop, one request per connection, every third one slow.
pub struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Seen>>,
}

impl Clients {
    pub fn start(port: u16, count: usize) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..count)
            .map(|client| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut seen = Seen::default();
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let text = format!("client{client}-{n}");
                        let request = if n % 3 == 0 {
                            format!("slow {text}")
                        } else {
                            text.clone()
                        };
                        // When the request left: one sent after the upgrade returned must be
                        // answered by the new daemon (a reply read later may be the old one's).
                        let sent = Instant::now();
                        match exchange(port, &request) {
                            Ok(reply) => match reply.strip_suffix(&format!("{text}\n")) {
                                Some(prefix) => seen.replies.push((sent, prefix.into())),
                                None => seen.failures.push(format!("{request}: {reply:?}")),
                            },
                            Err(error) => seen.failures.push(format!("{request}: {error}")),
                        }
                    }
                    seen
                })
            })
            .collect();
        Clients { stop, threads }
    }

    pub fn finish(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::SeqCst);
        self.threads
            .into_iter()
            .map(|thread| thread.join().expect("a client"))
            .collect()
    }
}

/// One connection, one line, one answer.
pub fn exchange(port: u16, line: &str) -> std::io::Result<String> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, GONE_TIMEOUT)?;
    stream.set_read_timeout(Some(GONE_TIMEOUT))?;
    writeln!(stream, "{line}")?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    Ok(reply)
}

/// Installs the example `name` at `path` as a package manager does: a new file, renamed
/// over the old one.
fn install(sandbox: &Sandbox, name: &str, path: &Path) {
    let staged = sandbox.path("staged.bin");
    fs::copy(example(name), &staged).unwrap();
    fs::rename(&staged, path).unwrap();
}

/// The service `example` installed in the sandbox, started with `prefix`; its path and pid.
fn start_v1(sandbox: &Sandbox, example: &str, port: u16) -> (PathBuf, i32) {
    let binary = sandbox.copy_example(example);
    let mut command = sandbox.command_for(&binary);
    command
        .env("ECHO_PORT", port.to_string())
        .env("ECHO_PREFIX", "v1: ");
    launch(&mut command).assert_started_quietly_or_announced();
    let pid = read_pid(&sandbox.path(&format!("{example}.pid")));
    (binary, pid)
}

/// `upgrade` of the echo service at `binary`, on `port`, with `prefix` if one is given.
fn upgrade_command(sandbox: &Sandbox, binary: &Path, port: u16, prefix: Option<&str>) -> Command {
    let mut command = sandbox.command_for(binary);
    command.arg("upgrade").env("ECHO_PORT", port.to_string());
    if let Some(prefix) = prefix {
        command.env("ECHO_PREFIX", prefix);
    }
    command
}

fn upgrade(sandbox: &Sandbox, binary: &Path, port: u16, prefix: &str) -> Launch {
    launch(&mut upgrade_command(sandbox, binary, port, Some(prefix)))
}

/// No client saw a failure, each one saw `prefix` after `since`, and only that.
fn assert_served(seen: &[Seen], since: Instant, prefix: &str) {
    for (client, seen) in seen.iter().enumerate() {
        assert_eq!(seen.failures, Vec::<String>::new(), "client {client}");
        let after: Vec<&String> = seen
            .replies
            .iter()
            .filter(|(at, _)| *at > since)
            .map(|(_, prefix)| prefix)
            .collect();
        assert!(!after.is_empty(), "client {client}: no reply at the end");
        assert!(
            after.iter().all(|seen| *seen == prefix),
            "client {client}: {after:?}, not only {prefix:?}"
        );
    }
}

/// The pidfile names `pid`, is locked, and `status` agrees.
fn assert_running(sandbox: &Sandbox, example: &str, binary: &Path, pid: i32) {
    let pidfile = sandbox.path(&format!("{example}.pid"));
    assert_eq!(read_pid(&pidfile), pid);
    assert!(is_locked(&pidfile), "pidfile not locked");
    let status = launch(sandbox.command_for(binary).arg("status"));
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        status.stdout.ends_with(&format!(": running (pid {pid})\n")),
        "{status:?}"
    );
}

/// v1 serving, v2 installed and upgraded to while 4 clients connect without pause; then,
/// `with_v3`, a v3 that fails before it is ready (echo refuses a prefix of two lines).
fn upgrade_under_load(example: &str, with_v3: bool) {
    let sandbox = Sandbox::new(&format!("upgrade-{example}"));
    let port = free_port();
    let (binary, v1) = start_v1(&sandbox, example, port);
    let clients = Clients::start(port, 4);
    std::thread::sleep(Duration::from_millis(300));

    install(&sandbox, example, &binary);
    let upgraded = upgrade(&sandbox, &binary, port, "v2: ");
    let done = Instant::now();
    assert_eq!(upgraded.code(), Some(0), "{upgraded:?}");
    // Gone (a zombie at most) as `upgrade` returns, and the upgrade's lock with it.
    assert!(
        !is_alive(v1),
        "pid {v1} still runs after the upgrade returned"
    );
    assert!(!sandbox.path(&format!("{example}.pid.upgrade")).exists());
    let v2 = read_pid(&sandbox.path(&format!("{example}.pid")));
    let name = binary.file_name().unwrap().to_string_lossy();
    assert_eq!(
        upgraded.stdout,
        format!("{name}: upgraded (pid {v1} -> pid {v2})\n"),
        "{upgraded:?}"
    );
    std::thread::sleep(Duration::from_millis(700));
    let seen = clients.finish();
    assert_served(&seen, done, "v2: ");
    assert!(
        seen.iter()
            .any(|seen| seen.replies.iter().any(|(_, p)| p == "v1: ")),
        "no reply of v1 at all"
    );
    // The old daemon finished gracefully; the new one runs the new file.
    let status = wait_for_exit(v1, GONE_TIMEOUT).expect("the old daemon is our child");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(fs::read_link(format!("/proc/{v2}/exe")).unwrap(), binary);
    assert_running(&sandbox, example, &binary, v2);
    if !with_v3 {
        signal(v2, libc::SIGTERM);
        wait_for_exit(v2, GONE_TIMEOUT);
        return;
    }

    // v3 fails before it is ready: v2 keeps serving, untouched.
    let clients = Clients::start(port, 4);
    std::thread::sleep(Duration::from_millis(300));
    install(&sandbox, example, &binary);
    let before = Instant::now();
    let refused = upgrade(&sandbox, &binary, port, "v3\nwith a second line");
    assert_eq!(refused.code(), Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains("is more than one line")
            && refused
                .stderr
                .ends_with(&format!("; pid {v2} keeps running, untouched\n")),
        "{refused:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let seen = clients.finish();
    assert_served(&seen, before - Duration::from_secs(60), "v2: ");
    assert!(is_alive(v2));
    assert_running(&sandbox, example, &binary, v2);
    assert!(
        !sandbox.path(&format!("{example}.pid.upgrade")).exists(),
        "the upgrade's lock file was left"
    );
    terminate(v2);
}

#[test]
fn upgrade_replaces_the_echo_service_without_a_failed_connection() {
    upgrade_under_load("echo", true);
}

#[test]
fn upgrade_replaces_the_tokio_echo_service_without_a_failed_connection() {
    upgrade_under_load("tokio_echo", false);
}

/// The processes that have a listening TCP socket on `port` open, and how many such sockets
/// there are, as `ss` (iproute2) tells: the kernel filters, so that the many closed
/// connections of the other tests cost nothing.
fn listening_on(port: u16) -> (Vec<i32>, usize) {
    let listed = std::process::Command::new("ss")
        .args(["-Hltnp", &format!("sport = :{port}")])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .expect("run ss");
    let text = String::from_utf8_lossy(&listed.stdout);
    let mut pids: Vec<i32> = text
        .split("pid=")
        .skip(1)
        .filter_map(|rest| rest.split(',').next()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    (pids, text.lines().count())
}

#[test]
fn starts_racing_an_upgrade_make_no_third_daemon() {
    let sandbox = Sandbox::new("upgrade-race");
    let port = free_port();
    let (binary, v1) = start_v1(&sandbox, "echo", port);
    install(&sandbox, "echo", &binary);
    // A watcher samples, all along, who listens on the port.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                samples.push((Instant::now(), listening_on(port)));
                std::thread::sleep(Duration::from_millis(2));
            }
            samples
        })
    };
    // A request in hand keeps the old daemon busy for 300 ms of the upgrade.
    let slow = std::thread::spawn(move || exchange(port, "slow in hand"));
    std::thread::sleep(Duration::from_millis(50));
    let began = Instant::now();
    let upgrading = spawn(&mut upgrade_command(&sandbox, &binary, port, Some("v2: ")));
    let upgrader = upgrading.id() as i32;
    let upgrade_began = Instant::now();
    // `start`s, six at a time, until the upgrade is over, then six more.
    let start = || {
        let mut command = sandbox.command_for(&binary);
        command.arg("start").env("ECHO_PORT", port.to_string());
        (spawn(&mut command), Instant::now())
    };
    let mut starts: Vec<Launch> = Vec::new();
    let mut upgrading = Some(upgrading);
    let mut rounds_after = 0;
    let mut upgraded = None;
    while rounds_after < 1 {
        let batch: Vec<_> = (0..6).map(|_| start()).collect();
        if upgrading
            .as_mut()
            .is_some_and(|child| child.try_wait().unwrap().is_some())
        {
            upgraded = upgrading.take().map(|child| finish(child, upgrade_began));
        }
        if upgrading.is_none() {
            rounds_after += 1;
        }
        starts.extend(batch.into_iter().map(|(child, at)| finish(child, at)));
    }
    let upgraded = upgraded.expect("the upgrade ended");
    let ended = Instant::now();
    stop.store(true, Ordering::SeqCst);
    assert_eq!(slow.join().unwrap().unwrap(), "v1: in hand\n");
    let samples = watcher.join().unwrap();
    assert_eq!(upgraded.code(), Some(0), "{upgraded:?}");
    let v2 = read_pid(&sandbox.path("echo.pid"));
    assert!(starts.len() >= 12, "{} starts", starts.len());
    for start in &starts {
        assert_eq!(start.code(), Some(0), "{start:?}");
        let running = [v1, v2].map(|pid| format!(": already running (pid {pid})\n"));
        assert!(
            running
                .iter()
                .any(|said| start.stdout.ends_with(said.as_str())),
            "{start:?}"
        );
    }
    // One listening socket at every moment, held by the old daemon, the new one, or both
    // (while the old one finishes its connections); never by a third daemon. The `upgrade`
    // process and its first child hold it too for an instant, between the forks that hand it
    // to the new daemon: that child made the new daemon's session, so its pid is the
    // session's id (it is gone by now, and may have been when it was sampled).
    let first_child = stat(v2).session;
    let during = samples
        .iter()
        .filter(|(at, _)| *at > began && *at < ended)
        .count();
    assert!(during >= 2, "{during} samples during the upgrade");
    for (_, (pids, sockets)) in &samples {
        assert!(*sockets <= 1, "{sockets} listening sockets on the port");
        assert!(
            pids.iter()
                .all(|held| [v1, v2, upgrader, first_child].contains(held)),
            "{pids:?} listen, not only {v1}, {v2}, upgrade {upgrader} and its child {first_child}"
        );
    }
    wait_for_exit(v1, GONE_TIMEOUT);
    assert_eq!(sandbox.processes(), [v2], "the processes of the service");
    assert_eq!(listening_on(port).0, [v2]);
    signal(v2, libc::SIGTERM);
    wait_for_exit(v2, GONE_TIMEOUT);
}

#[test]
fn upgrade_refuses_what_it_cannot_replace() {
    let sandbox = Sandbox::new("upgrade-refusals");
    let port = free_port();
    let binary = sandbox.copy_example("echo");
    let upgrade_now = |binary: &Path| launch(&mut upgrade_command(&sandbox, binary, port, None));
    // Nothing running.
    let refused = upgrade_now(&binary);
    assert_eq!(refused.code(), Some(7), "{refused:?}");
    assert_eq!(
        refused.stderr,
        "echo.bin: cannot upgrade: not running: nothing to upgrade\n"
    );
    // A daemon started from another path is not replaced by this one.
    launch(sandbox.command("echo").env("ECHO_PORT", port.to_string()))
        .assert_started_quietly_or_announced();
    let pid = read_pid(&sandbox.path("echo.pid"));
    let refused = upgrade_now(&binary);
    assert_eq!(refused.code(), Some(1), "{refused:?}");
    assert!(
        refused.stderr.starts_with(&format!(
            "echo.bin: cannot upgrade: pid {pid} runs {}, not {}",
            example("echo").display(),
            binary.display()
        )),
        "{refused:?}"
    );
    assert!(is_alive(pid));
    assert_eq!(read_pid(&sandbox.path("echo.pid")), pid);
    assert_eq!(exchange(port, "still").unwrap(), "still\n");
    signal(pid, libc::SIGTERM);
    wait_for_exit(pid, GONE_TIMEOUT);
    // A daemon in the foreground (`run`, as under a supervisor) is its supervisor's to replace:
    // refused, and left serving.
    let refused_in_the_foreground = |pid: i32| {
        let refused = upgrade_now(&binary);
        assert_eq!(refused.code(), Some(1), "{refused:?}");
        assert!(
            refused.stderr.starts_with(&format!(
                "echo.bin: cannot upgrade: pid {pid} runs in the foreground"
            )),
            "{refused:?}"
        );
        assert_eq!(exchange(port, "still").unwrap(), "still\n");
    };
    let mut command = sandbox.command_for(&binary);
    command.arg("run").env("ECHO_PORT", port.to_string());
    let mut running = spawn(&mut command);
    wait_until("the foreground daemon is ready", LAUNCH_TIMEOUT, || {
        exchange(port, "up").is_ok()
    });
    let pid = running.id() as i32;
    refused_in_the_foreground(pid);
    signal(pid, libc::SIGTERM);
    let _ = running.wait();
    // The same when the session's leader is gone, as under a CI runner: the parent that waits
    // for the daemon shares its session. (`setsid` makes the outer shell lead a new session;
    // it leaves, and the inner shell, its child in that session, runs the daemon and waits.)
    let mut command = sandbox.command_for("setsid");
    command
        .args([
            "sh",
            "-c",
            r#"sh -c '"$0" run & wait' "$0" <&- >/dev/null 2>&1 & exit 0"#,
        ])
        .arg(&binary)
        .env("ECHO_PORT", port.to_string());
    let leader = launch(&mut command);
    assert_eq!(leader.code(), Some(0), "{leader:?}");
    wait_until("the foreground daemon is ready", LAUNCH_TIMEOUT, || {
        exchange(port, "up").is_ok()
    });
    let pid = read_pid(&sandbox.path("echo.pid"));
    let session = stat(pid).session;
    assert!(
        !Path::new(&format!("/proc/{session}")).exists(),
        "{session}"
    );
    refused_in_the_foreground(pid);
    // The inner shell, orphaned, is this (subreaper) process's child once the daemon ends.
    let shell = stat(pid).ppid;
    signal(pid, libc::SIGTERM);
    wait_for_exit(pid, GONE_TIMEOUT);
    wait_for_exit(shell, GONE_TIMEOUT);
}

/// The tunable example installed in the sandbox, serving `echo` on `port` and ignoring a
/// graceful shutdown request (only SIGKILL ends it); its path and pid.
fn start_tunable(sandbox: &Sandbox, port: u16) -> (PathBuf, i32) {
    let binary = sandbox.copy_example("tunable");
    let mut command = sandbox.command_for(&binary);
    command
        .env("CONTROL", "1")
        .env("MODE", "serve")
        .env("SHUTDOWN", "graceful")
        .env("LISTEN", format!("echo=127.0.0.1:{port}"));
    launch(&mut command).assert_started_quietly_or_announced();
    (binary, sandbox.daemon_pid())
}

/// `upgrade` of the tunable example at `binary`, on `port`, in `mode`.
fn tunable_upgrade(sandbox: &Sandbox, binary: &Path, port: u16, mode: &str) -> Command {
    let mut command = sandbox.command_for(binary);
    command
        .arg("upgrade")
        .env("CONTROL", "1")
        .env("MODE", mode)
        .env("LISTEN", format!("echo=127.0.0.1:{port}"));
    command
}

#[test]
fn a_new_binary_that_hangs_is_bounded_by_ready_timeout() {
    let sandbox = Sandbox::new("upgrade-hang");
    let port = free_port();
    let (binary, v1) = start_tunable(&sandbox, port);
    let mut command = tunable_upgrade(&sandbox, &binary, port, "hang");
    command
        .env("READY", "manual")
        .env("READY_TIMEOUT_MS", "300");
    let refused = launch(&mut command);
    assert_eq!(refused.code(), Some(1), "{refused:?}");
    assert!(
        refused
            .stderr
            .starts_with("tunable: not upgraded: not ready within 300ms (ready_timeout)")
            && refused
                .stderr
                .ends_with(&format!("; pid {v1} keeps running, untouched\n")),
        "{refused:?}"
    );
    assert_eq!(answering_pid(port), v1);
    assert_eq!(sandbox.processes(), [v1], "the hanging daemon was left");
    assert_eq!(read_pid(&sandbox.pidfile()), v1);
    assert!(is_locked(&sandbox.pidfile()));
}

#[test]
fn an_old_daemon_that_ignores_sigterm_is_killed_after_stop_timeout() {
    let sandbox = Sandbox::new("upgrade-stubborn");
    let port = free_port();
    let (binary, v1) = start_tunable(&sandbox, port);
    let mut command = tunable_upgrade(&sandbox, &binary, port, "serve");
    command.env("STOP_TIMEOUT_SECS", "1");
    let upgraded = launch(&mut command);
    assert_eq!(upgraded.code(), Some(0), "{upgraded:?}");
    let v2 = sandbox.daemon_pid();
    assert_eq!(
        upgraded.stdout,
        format!("tunable: upgraded (pid {v1} -> pid {v2})\n")
    );
    assert_eq!(
        upgraded.stderr,
        format!("tunable: pid {v1} was still running 1 s after SIGTERM, and was killed\n")
    );
    assert!(upgraded.elapsed >= Duration::from_secs(1), "{upgraded:?}");
    let status = wait_for_exit(v1, GONE_TIMEOUT).expect("our child");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert_eq!(answering_pid(port), v2);
    assert!(is_locked(&sandbox.pidfile()));
}

#[test]
fn a_second_upgrade_meanwhile_is_refused() {
    let sandbox = Sandbox::new("upgrade-twice");
    let port = free_port();
    let (binary, _) = start_v1(&sandbox, "echo", port);
    install(&sandbox, "echo", &binary);
    // A request in hand keeps the old daemon, and so the first upgrade, busy for 300 ms.
    let slow = std::thread::spawn(move || exchange(port, "slow in hand"));
    std::thread::sleep(Duration::from_millis(50));
    let command = |prefix: &str| upgrade_command(&sandbox, &binary, port, Some(prefix));
    let first = spawn(&mut command("v2: "));
    let began = Instant::now();
    std::thread::sleep(Duration::from_millis(100));
    let second = launch(&mut command("v3: "));
    // And `stop` waits for it to be over too.
    let stop = launch(sandbox.command_for(&binary).arg("stop"));
    let first = finish(first, began);
    assert_eq!(first.code(), Some(0), "{first:?}");
    assert_eq!(second.code(), Some(1), "{second:?}");
    assert!(
        second
            .stderr
            .starts_with("echo.bin: cannot upgrade: another upgrade is under way (pid "),
        "{second:?}"
    );
    assert_eq!(stop.code(), Some(1), "{stop:?}");
    assert!(stop.stderr.contains("an upgrade is under way"), "{stop:?}");
    assert_eq!(slow.join().unwrap().unwrap(), "v1: in hand\n");
    assert_eq!(exchange(port, "now").unwrap(), "v2: now\n");
    let v2 = read_pid(&sandbox.path("echo.pid"));
    signal(v2, libc::SIGTERM);
    wait_for_exit(v2, GONE_TIMEOUT);
}
