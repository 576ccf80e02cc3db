//! What a hostile review broke, one test per finding (issue "Broken promises found by a
//! hostile review"): each reproduces what was seen, and checks what must hold instead.

use crate::support::*;
use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Asserts exit 1, the message, and that nothing of the start is left.
fn assert_refused(sandbox: &Sandbox, launched: &Launch, message: &str) {
    assert_eq!(
        launched.stderr,
        format!("tunable: {message}\n"),
        "{launched:?}"
    );
    assert_failed_cleanly(sandbox, launched);
}

fn secret(sandbox: &Sandbox) -> std::path::PathBuf {
    let secret = sandbox.path("secret");
    fs::write(&secret, "root only\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    secret
}

fn assert_untouched(secret: &Path) {
    assert_eq!(
        fs::read_to_string(secret).unwrap(),
        "root only\n",
        "written to"
    );
}

// 1. Log files are as safe as the pidfile.

#[test]
fn a_log_path_the_services_user_controls_cannot_point_roots_writes_elsewhere() {
    if !running_as_root("a_log_path_the_services_user_controls_cannot_point_roots_writes_elsewhere")
    {
        return;
    }
    let (nobody, nogroup, _) = ids_of("nobody");
    let sandbox = Sandbox::new("log-planted");
    let secret = secret(&sandbox);
    // The service's user owns its log directory, as logrotate's `create` flow needs.
    let logs = sandbox.path("logs");
    fs::create_dir(&logs).unwrap();
    std::os::unix::fs::chown(&logs, Some(nobody), Some(nogroup)).unwrap();
    let log = logs.join("out.log");
    let start = || {
        launch(
            tunable(&sandbox)
                .env("USER_NAME", "nobody")
                .env("STDOUT", &log),
        )
    };
    let refused = |why: &str| format!("cannot open stdout log {}: {why}", log.display());

    // A symbolic link to a root-only file.
    std::os::unix::fs::symlink(&secret, &log).unwrap();
    assert_refused(
        &sandbox,
        &start(),
        &refused("it is a symbolic link, which is never followed for a log file"),
    );
    assert_untouched(&secret);

    // A hard link to it.
    fs::remove_file(&log).unwrap();
    fs::hard_link(&secret, &log).unwrap();
    assert_refused(
        &sandbox,
        &start(),
        &refused("it has 2 hard links; refusing it as root"),
    );
    assert_untouched(&secret);

    // A file of a third user.
    fs::remove_file(&log).unwrap();
    fs::write(&log, "").unwrap();
    std::os::unix::fs::chown(&log, Some(64_321), None).unwrap();
    assert_refused(
        &sandbox,
        &start(),
        &refused(&format!(
            "it is owned by uid 64321, not by root or the daemon's user (uid {nobody}); refusing it as root"
        )),
    );

    // A character device, where a log file belongs.
    let launched = launch(tunable(&sandbox).env("STDOUT", "/dev/zero"));
    assert_refused(
        &sandbox,
        &launched,
        "cannot open stdout log /dev/zero: it is a character device, not a regular file or a FIFO (leave the setting out for /dev/null)",
    );

    // The user's own file, as logrotate's `create 0640 nobody nogroup` leaves it: taken.
    std::os::unix::fs::chown(&log, Some(nobody), Some(nogroup)).unwrap();
    start().assert_started();
    let pid = sandbox.daemon_pid();
    assert_eq!(fds(pid)[&1], log);
}

#[test]
fn a_log_in_a_directory_anyone_may_write_is_refused_as_root() {
    if !running_as_root("a_log_in_a_directory_anyone_may_write_is_refused_as_root") {
        return;
    }
    let sandbox = Sandbox::new("log-open-dir");
    let open = sandbox.path("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let launched = launch(tunable(&sandbox).env("STDERR", open.join("err.log")));
    assert_refused(
        &sandbox,
        &launched,
        &format!(
            "cannot open stderr log {}/err.log: its directory {} may be written by anyone and has no sticky bit; refusing it as root",
            open.display(),
            open.display()
        ),
    );
    assert!(!open.join("err.log").exists(), "created in it");
}

#[test]
fn the_sighup_reopen_does_not_follow_a_swapped_link() {
    if !running_as_root("the_sighup_reopen_does_not_follow_a_swapped_link") {
        return;
    }
    let sandbox = Sandbox::new("log-swapped");
    let secret = secret(&sandbox);
    let log = sandbox.path("out.log");
    launch(tunable(&sandbox).env("STDOUT", &log)).assert_started();
    let pid = sandbox.daemon_pid();
    let rotated = sandbox.path("out.log.1");
    for (round, plant) in ["symlink", "hard link"].into_iter().enumerate() {
        // Moved away, as logrotate would, and a link planted at the path before the SIGHUP.
        fs::rename(&log, &rotated).unwrap();
        match plant {
            "symlink" => std::os::unix::fs::symlink(&secret, &log).unwrap(),
            _ => fs::hard_link(&secret, &log).unwrap(),
        }
        signal(pid, libc::SIGHUP);
        // The daemon prints `reload N` after the handler ran: into the file it kept.
        let said = format!("reload {}", round + 1);
        wait_until(
            &format!("{plant}: the kept log says {said}"),
            GONE_TIMEOUT,
            || fs::read_to_string(&rotated).is_ok_and(|text| text.contains(&said)),
        );
        assert_eq!(fds(pid)[&1], rotated, "{plant}: stdout moved");
        assert_untouched(&secret);
        fs::remove_file(&log).unwrap();
        fs::rename(&rotated, &log).unwrap();
    }
}

// 2. A readiness timeout never leaves a daemon running.

#[test]
fn a_daemon_that_becomes_ready_in_its_grace_period_is_still_stopped() {
    let sandbox = Sandbox::new("late-ready");
    // Graceful: SIGTERM only asks; the body then calls ready(), which closes the pipe, and
    // runs on. The launcher must see that the process is still there, and kill it.
    let launched = launch(
        tunable(&sandbox)
            .env("READY", "manual")
            .env("SHUTDOWN", "graceful")
            .env("MODE", "ready-on-shutdown")
            .env("READY_TIMEOUT_MS", "300"),
    );
    assert!(
        launched.stderr.starts_with(
            "tunable: not ready within 300ms (ready_timeout); stopped the daemon (pid "
        ),
        "{launched:?}"
    );
    assert_failed_cleanly(&sandbox, &launched);
    // The next start makes the one daemon there is.
    launch(&mut tunable(&sandbox)).assert_started();
    assert_eq!(sandbox.processes(), vec![sandbox.daemon_pid()]);
}

#[test]
fn a_deadline_that_passes_during_set_up_stops_a_daemon_deaf_to_sigterm() {
    let sandbox = Sandbox::new("slow-set-up");
    // strace holds the daemon's write of its pid for 300 ms: the 50 ms deadline passes while
    // it sets up, with its graceful SIGTERM handler already installed. It then becomes ready
    // (closing the pipe) and ignores the request. strace follows every process of the start,
    // so it returns only once they are all gone.
    let mut command = sandbox.command_for("strace");
    command
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=pwrite64"])
        .args(["-e", "inject=pwrite64:delay_enter=300000"])
        .arg(example("tunable"))
        .env("SHUTDOWN", "graceful")
        .env("MODE", "worker")
        .env("READY_TIMEOUT_MS", "50");
    let launched = launch(&mut command);
    assert!(
        launched.stderr.starts_with(
            "tunable: not ready within 50ms (ready_timeout); stopped the daemon (pid "
        ),
        "{launched:?}"
    );
    assert_failed_cleanly(&sandbox, &launched);
}

// 3. A worker that outlives the daemon does not keep its lock; 4. no one else's lock makes
// the service "running"; start, status and stop agree, and name the holder.

#[test]
fn a_worker_that_outlives_a_crashed_daemon_does_not_keep_its_lock() {
    let sandbox = Sandbox::new("worker-lock");
    let start = || {
        launch(
            tunable(&sandbox)
                .env("CONTROL", "1")
                .env("MODE", "worker-then-crash"),
        )
    };
    let launched = start();
    assert_eq!(launched.code(), Some(0), "{launched:?}");
    let daemon = sandbox.daemon_pid();
    let worker = read_pid(&sandbox.path("worker.pid"));
    wait_for_exit(daemon, GONE_TIMEOUT); // it SIGKILLs itself
    assert!(is_alive(worker));
    assert!(!is_locked(&sandbox.pidfile()), "the worker holds the lock");
    let status = launch(tunable(&sandbox).env("CONTROL", "1").arg("status"));
    assert_eq!(status.code(), Some(1), "stale: {status:?}");
    // A new daemon starts beside the old worker.
    let launched = start();
    assert_eq!(launched.code(), Some(0), "{launched:?}");
    assert_eq!(
        launched.stdout,
        format!("tunable: started (pid {})\n", sandbox.daemon_pid())
    );
}

#[test]
fn a_lock_held_by_another_process_is_named_by_every_command() {
    let sandbox = Sandbox::new("foreign-lock");
    let control = |command: &str| launch(tunable(&sandbox).env("CONTROL", "1").arg(command));
    control("start").assert_started_quietly_or_announced();
    let daemon = sandbox.daemon_pid();
    signal(daemon, libc::SIGKILL);
    wait_for_exit(daemon, GONE_TIMEOUT);
    // After the crash, someone who may open the file takes a shared lock on it.
    let mut holder = sandbox
        .command_for("flock")
        .args(["--shared", "--no-fork"])
        .arg(sandbox.pidfile())
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    wait_until("flock holds the lock", GONE_TIMEOUT, || {
        fs::read_to_string(format!("/proc/{}/comm", holder.id())).is_ok_and(|c| c == "sleep\n")
    });
    let who = format!(
        "its pidfile {} is locked by pid {} (sleep), but names pid {daemon}, which does not hold it",
        sandbox.pidfile().display(),
        holder.id()
    );
    let status = control("status");
    assert_eq!(
        (status.code(), status.stderr.as_str()),
        (
            Some(4),
            format!("tunable: cannot tell whether it runs: {who}\n").as_str()
        ),
        "{status:?}"
    );
    for command in ["stop", "reload"] {
        let said = control(command);
        assert_eq!(
            (said.code(), said.stderr.as_str()),
            (
                Some(1),
                format!("tunable: {who}; not signalling any process\n").as_str()
            ),
            "{command}: {said:?}"
        );
    }
    let started = control("start");
    assert_eq!(started.code(), Some(1), "{started:?}");
    assert_eq!(
        started.stderr,
        format!(
            "tunable: cannot start: pidfile {} is locked by pid {} (sleep), not by a running daemon of this service (pid {daemon}, which it names, does not hold it); stop that process, then start again\n",
            sandbox.pidfile().display(),
            holder.id()
        )
    );
    assert!(sandbox
        .processes()
        .iter()
        .all(|&pid| pid == holder.id() as i32));
    let _ = holder.kill();
    let _ = holder.wait();
    control("start").assert_started_quietly_or_announced();
}

#[test]
fn an_unprivileged_user_cannot_lock_a_root_services_pidfile() {
    if !running_as_root("an_unprivileged_user_cannot_lock_a_root_services_pidfile") {
        return;
    }
    let (uid, gid, _) = ids_of("nobody");
    let sandbox = Sandbox::new("lock-dos");
    let control = |command: &str| {
        launch(
            tunable(&sandbox)
                .env("CONTROL", "1")
                .env("USER_NAME", "nobody")
                .env("SHUTDOWN", "graceful")
                .arg(command),
        )
    };
    control("start").assert_started_quietly_or_announced();
    assert_eq!(control("stop").code(), Some(0));
    // Dropped to nobody, the daemon could not unlink it: the emptied pidfile stays.
    assert_eq!(fs::read_to_string(sandbox.pidfile()).unwrap(), "");
    assert_eq!(
        fs::metadata(sandbox.pidfile()).unwrap().mode() & 0o777,
        0o600
    );
    let mut flock = sandbox.command_for("flock");
    flock
        .args(["--shared", "--nonblock"])
        .arg(sandbox.pidfile())
        .arg("true");
    run_as(&mut flock, uid, gid, None);
    let tried = launch(&mut flock);
    assert_ne!(tried.code(), Some(0), "nobody took a lock: {tried:?}");
    assert!(tried.stderr.contains("Permission denied"), "{tried:?}");
    let started = control("start");
    started.assert_started_quietly_or_announced();
    let pid = sandbox.daemon_pid();
    // start-stop-daemon (as root) still reads the pid.
    let ssd = launch(
        sandbox
            .command_for("start-stop-daemon")
            .arg("--status")
            .arg("--pidfile")
            .arg(sandbox.pidfile()),
    );
    assert_eq!(ssd.code(), Some(0), "{ssd:?} (daemon {pid})");
}

// 5. Nothing left behind in manual mode.

#[test]
fn a_worker_forked_before_ready_is_not_left_behind_when_main_fails() {
    let sandbox = Sandbox::new("worker-fail");
    let launched = launch(
        tunable(&sandbox)
            .env("READY", "manual")
            .env("MODE", "worker-then-fail")
            .env("STDERR", sandbox.path("stderr.log")),
    );
    assert_eq!(
        launched.stderr,
        "tunable: main returned an error before it was ready: \"the worker is up, but the configuration is not\"\n"
    );
    assert!(
        launched.elapsed < Duration::from_secs(2),
        "took {:?}",
        launched.elapsed
    );
    let worker = read_pid(&sandbox.path("worker.pid"));
    wait_for_exit(worker, GONE_TIMEOUT);
    assert_failed_cleanly(&sandbox, &launched);
}

// 6. Exit codes survive a closed pipe.

/// A pipe whose read end is already closed.
fn broken_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned here alone.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read_end);
    Stdio::from(write_end)
}

#[test]
fn exit_codes_survive_a_closed_pipe() {
    let sandbox = Sandbox::new("closed-pipe");
    let run = |command: &str| {
        let start = Instant::now();
        let child = tunable(&sandbox)
            .env("CONTROL", "1")
            .arg(command)
            .stdout(broken_pipe())
            .stderr(broken_pipe())
            .spawn()
            .unwrap();
        finish(child, start).code()
    };
    assert_eq!(run("start"), Some(0), "start | true");
    let pid = sandbox.daemon_pid();
    assert!(is_alive(pid));
    assert_eq!(run("start"), Some(0), "start again: already running");
    assert_eq!(run("status"), Some(0));
    assert_eq!(run("reload"), Some(0));
    assert_eq!(run("stop"), Some(0));
    assert_eq!(run("status"), Some(3));
    assert_eq!(run("bogus"), Some(2));
    // A launcher error, to a closed stderr.
    let start = Instant::now();
    let child = tunable(&sandbox)
        .env("PIDFILE", sandbox.path("missing/p.pid"))
        .stderr(broken_pipe())
        .spawn()
        .unwrap();
    assert_eq!(finish(child, start).code(), Some(1));
}

// 7. The pidfile and a log are never the same file.

#[test]
fn the_pidfile_and_a_log_are_never_the_same_file() {
    let sandbox = Sandbox::new("log-is-pidfile");
    // Two spellings of one file.
    for (key, value) in [("STDOUT", "./probe.pid"), ("STDERR", "probe.pid")] {
        let launched = launch(tunable(&sandbox).env(key, value));
        let stream = key.to_lowercase();
        assert_refused(
            &sandbox,
            &launched,
            &format!(
                "cannot open {stream} log {dir}/{value}: it is the pidfile {dir}/probe.pid; a log must be another file",
                dir = sandbox.dir.display()
            ),
        );
    }
}

// 8. Durations are bounded.

#[test]
fn a_huge_stop_timeout_does_not_panic() {
    let sandbox = Sandbox::new("huge-stop");
    let control = |command: &str| {
        launch(
            tunable(&sandbox)
                .env("CONTROL", "1")
                .env("SHUTDOWN", "graceful")
                .env("STOP_TIMEOUT_SECS", u64::MAX.to_string())
                .env("READY_TIMEOUT_MS", u64::MAX.to_string())
                .arg(command),
        )
    };
    control("start").assert_started_quietly_or_announced();
    let pid = sandbox.daemon_pid();
    let stopped = control("stop");
    assert_eq!(
        (stopped.code(), stopped.stdout.as_str()),
        (Some(0), format!("tunable: stopped (pid {pid})\n").as_str()),
        "{stopped:?}"
    );
}

// 9. No pidfile on procfs or sysfs.

#[test]
fn a_pidfile_on_a_pseudo_file_system_is_refused() {
    let sandbox = Sandbox::new("pseudo-fs");
    for (dir, fs_name) in [("/proc/self", "procfs"), ("/sys/kernel", "sysfs")] {
        let launched = launch(tunable(&sandbox).env("PIDFILE", format!("{dir}/x.pid")));
        assert_refused(
            &sandbox,
            &launched,
            &format!(
                "cannot open pidfile {dir}/x.pid: its directory {dir} is on {fs_name}, a pseudo file system of the kernel, not a place for a pidfile"
            ),
        );
    }
}

#[test]
fn a_sysctl_is_never_written_as_a_pidfile() {
    if !running_as_root("a_sysctl_is_never_written_as_a_pidfile") {
        return;
    }
    // In a UTS namespace of its own, so that even a failure changes nothing of the machine.
    let sandbox = Sandbox::new("sysctl");
    let mut command = sandbox.command_for("unshare");
    command
        .args(["--uts", "sh", "-c"])
        .arg(r#"echo before > /proc/sys/kernel/domainname && "$0"; echo "status $?"; cat /proc/sys/kernel/domainname"#)
        .arg(example("tunable"))
        .env("PIDFILE", "/proc/sys/kernel/domainname");
    let launched = launch(&mut command);
    assert_eq!(launched.stdout, "status 1\nbefore\n", "{launched:?}");
    assert!(
        launched
            .stderr
            .contains("its directory /proc/sys/kernel is on procfs"),
        "{launched:?}"
    );
}

// 10. Ctrl-C cancels a start.

#[test]
fn sigint_or_sigterm_to_the_waiting_launcher_cancels_the_start() {
    for (signal_number, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let sandbox = Sandbox::new("cancel");
        let mut command = tunable(&sandbox);
        command.env("READY", "manual").env("MODE", "hang");
        let start = Instant::now();
        let launcher = command.spawn().unwrap();
        wait_until("the daemon wrote its pid", LAUNCH_TIMEOUT, || {
            fs::read_to_string(sandbox.pidfile()).is_ok_and(|pid| pid.ends_with('\n'))
        });
        let daemon = sandbox.daemon_pid();
        signal(launcher.id() as i32, signal_number);
        let launched = finish(launcher, start);
        assert_eq!(launched.code(), Some(128 + signal_number), "{launched:?}");
        assert_eq!(
            launched.stderr,
            format!("tunable: start cancelled by {name}; stopped the daemon (pid {daemon})\n")
        );
        assert!(sandbox.processes().is_empty(), "{:?}", sandbox.processes());
        assert!(!sandbox.pidfile().exists(), "pidfile left");
    }
}

#[test]
fn sigint_at_a_random_moment_of_the_start_gives_a_whole_daemon_or_nothing() {
    let sandbox = Sandbox::new("cancel-random");
    let mut seed = std::process::id() as u64;
    let (mut started, mut cancelled) = (0, 0);
    for _ in 0..30 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_micros(seed >> 33 & 0x1fff); // up to ~8 ms
        let start = Instant::now();
        let launcher = tunable(&sandbox).spawn().unwrap();
        std::thread::sleep(delay);
        // SAFETY: kill with integer arguments only.
        unsafe { libc::kill(launcher.id() as i32, libc::SIGINT) };
        let launched = finish(launcher, start);
        match launched.code() {
            Some(0) => {
                started += 1;
                let pid = sandbox.daemon_pid();
                assert_eq!(sandbox.processes(), vec![pid]);
                assert!(is_locked(&sandbox.pidfile()));
                signal(pid, libc::SIGTERM);
                wait_for_exit(pid, GONE_TIMEOUT);
            }
            Some(130) => {
                cancelled += 1;
                assert!(
                    launched
                        .stderr
                        .starts_with("tunable: start cancelled by SIGINT; "),
                    "{launched:?}"
                );
                wait_until("nothing of the start is left", GONE_TIMEOUT, || {
                    sandbox.processes().is_empty()
                });
                assert!(!sandbox.pidfile().exists(), "pidfile left: {launched:?}");
            }
            // Killed before it could catch SIGINT (before main), by the default action.
            None => {
                cancelled += 1;
                assert!(sandbox.processes().is_empty());
                assert!(!sandbox.pidfile().exists());
            }
            other => panic!("exit {other:?}: {launched:?}"),
        }
    }
    eprintln!("started {started}, cancelled {cancelled}");
}

// 11. The working directory is entered as the daemon's user.

#[test]
fn a_working_directory_the_user_may_not_enter_is_refused() {
    if !running_as_root("a_working_directory_the_user_may_not_enter_is_refused") {
        return;
    }
    let sandbox = Sandbox::new("private-workdir");
    let private = sandbox.path("private");
    fs::create_dir(&private).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let launched = launch(
        tunable(&sandbox)
            .env("USER_NAME", "nobody")
            .env("WORKDIR", &private),
    );
    assert_refused(
        &sandbox,
        &launched,
        &format!(
            "cannot use working directory {}: Permission denied",
            private.display()
        ),
    );
}

// 12. Messages that tell the truth.

#[test]
fn the_launcher_says_how_the_daemon_ended_and_where_its_log_is() {
    let sandbox = Sandbox::new("ended");
    let manual = |mode: &str| {
        let mut command = tunable(&sandbox);
        command.env("READY", "manual").env("MODE", mode);
        command
    };
    let no_log = " (it has no stderr log: set `stderr` to keep what it prints)";
    assert_refused(
        &sandbox,
        &launch(&mut manual("exit")),
        &format!("the daemon exited with status 3 before it was ready{no_log}"),
    );
    assert_refused(
        &sandbox,
        &launch(&mut manual("killed")),
        &format!("the daemon was killed by SIGKILL before it was ready{no_log}"),
    );
    let log = sandbox.path("err.log");
    assert_refused(
        &sandbox,
        &launch(manual("exit").env("STDERR", &log)),
        &format!(
            "the daemon exited with status 3 before it was ready (its stderr log {} may say why)",
            log.display()
        ),
    );
}

#[test]
fn a_file_size_limit_of_zero_is_reported_as_file_too_large() {
    let sandbox = Sandbox::new("fsize");
    let mut command = tunable(&sandbox);
    // SAFETY: the closure runs between fork and exec and only calls setrlimit.
    unsafe {
        command.pre_exec(|| {
            let zero = libc::rlimit {
                rlim_cur: 0,
                rlim_max: libc::RLIM_INFINITY,
            };
            match libc::setrlimit(libc::RLIMIT_FSIZE, &zero) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let launched = launch(&mut command);
    assert_refused(
        &sandbox,
        &launched,
        &format!(
            "cannot write pidfile {}: File too large",
            sandbox.pidfile().display()
        ),
    );
}

#[test]
fn a_fifo_log_without_a_reader_says_so() {
    let sandbox = Sandbox::new("fifo-log");
    let fifo = sandbox.path("log.fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let launched = launch(tunable(&sandbox).env("STDOUT", &fifo));
    assert_refused(
        &sandbox,
        &launched,
        &format!(
            "cannot open stdout log {}: it is a FIFO that no process is reading; start its reader first",
            fifo.display()
        ),
    );
}

#[test]
fn status_words_its_errors_as_the_launcher_does() {
    let sandbox = Sandbox::new("status-words");
    fs::write(sandbox.path("file"), "").unwrap();
    let pidfile = sandbox.path("file/p.pid");
    let run = |command: &str| {
        launch(
            tunable(&sandbox)
                .env("CONTROL", "1")
                .env("PIDFILE", &pidfile)
                .arg(command),
        )
    };
    let status = run("status");
    assert_eq!(
        (status.code(), status.stderr.as_str()),
        (
            Some(4),
            format!(
                "tunable: cannot tell whether it runs: pidfile {}: Not a directory\n",
                pidfile.display()
            )
            .as_str()
        )
    );
    let started = run("start");
    assert_eq!(
        started.stderr,
        format!(
            "tunable: cannot open pidfile {}: Not a directory\n",
            pidfile.display()
        )
    );
}

// Found by the review of these fixes.

#[test]
fn a_symbolic_link_on_a_log_directorys_path_is_followed_only_where_only_root_may_change_it() {
    if !running_as_root(
        "a_symbolic_link_on_a_log_directorys_path_is_followed_only_where_only_root_may_change_it",
    ) {
        return;
    }
    let (nobody, nogroup, _) = ids_of("nobody");
    let sandbox = Sandbox::new("log-dir-link");
    // Where root's writes must not go: a root-only directory.
    let elsewhere = sandbox.path("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
    // The service's home, which its user owns: it can replace `logs` with a link.
    let home = sandbox.path("home");
    fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(nobody), Some(nogroup)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, home.join("logs")).unwrap();
    let log = home.join("logs/out.log");
    let launched = launch(tunable(&sandbox).env("STDOUT", &log));
    assert_refused(
        &sandbox,
        &launched,
        &format!(
            "cannot open stdout log {}: its path goes through a symbolic link in a directory that a user other than root may change; refusing it as root",
            log.display()
        ),
    );
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "written through"
    );
    // The pidfile goes through the same walk.
    let launched = launch(tunable(&sandbox).env("PIDFILE", home.join("logs/x.pid")));
    assert_eq!(launched.code(), Some(1), "{launched:?}");
    assert!(launched
        .stderr
        .contains("its path goes through a symbolic link"));
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "written through"
    );
    // A link only root may change (like /var/run -> /run) is followed.
    let trusted = sandbox.path("trusted");
    fs::create_dir(&trusted).unwrap();
    std::os::unix::fs::symlink(&elsewhere, trusted.join("logs")).unwrap();
    let log = trusted.join("logs/out.log");
    launch(tunable(&sandbox).env("STDOUT", &log)).assert_started();
    assert_eq!(fds(sandbox.daemon_pid())[&1], elsewhere.join("out.log"));
}

#[test]
fn a_worker_that_forks_again_keeps_its_descriptors() {
    let sandbox = Sandbox::new("second-generation");
    launch(tunable(&sandbox).env("MODE", "worker")).assert_started();
    // The worker's child writes through the 16 descriptors the worker opened; one of them
    // has the number the pidfile had, which the fork handler must not close again.
    wait_until("the grandchild wrote 16 lines", GONE_TIMEOUT, || {
        fs::read_to_string(sandbox.path("worker.log"))
            .is_ok_and(|log| log.lines().filter(|l| *l == "grandchild wrote").count() == 16)
    });
}

#[test]
fn a_pidfile_still_locked_after_a_failed_start_is_left_in_place() {
    let sandbox = Sandbox::new("escaped-holder");
    // A worker made with a raw clone (no fork handler runs) keeps the pidfile's lock and
    // leaves the session, out of reach of the launcher's clean-up; the daemon is then killed
    // (it cannot remove its pidfile).
    let launched = launch(
        tunable(&sandbox)
            .env("READY", "manual")
            .env("MODE", "escaped-worker-then-killed"),
    );
    assert_eq!(launched.code(), Some(1), "{launched:?}");
    assert!(
        launched
            .stderr
            .starts_with("tunable: the daemon was killed by SIGKILL before it was ready"),
        "{launched:?}"
    );
    let worker = read_pid(&sandbox.path("worker.pid"));
    assert!(is_alive(worker));
    // Unlinking it would let a second start lock a new file beside the holder: it stays.
    assert!(sandbox.pidfile().exists(), "a locked pidfile was removed");
    assert!(is_locked(&sandbox.pidfile()));
    let status = launch(tunable(&sandbox).env("CONTROL", "1").arg("status"));
    assert_eq!(status.code(), Some(4), "{status:?}");
    assert!(
        status
            .stderr
            .contains(&format!("is locked by pid {worker} (tunable)")),
        "{status:?}"
    );
}

#[test]
fn a_daemon_killed_by_a_real_time_signal_is_reported_as_such() {
    let sandbox = Sandbox::new("rt-signal");
    let mut command = tunable(&sandbox);
    command.env("READY", "manual").env("MODE", "hang");
    let start = Instant::now();
    let launcher = command.spawn().unwrap();
    wait_until("the daemon wrote its pid", LAUNCH_TIMEOUT, || {
        fs::read_to_string(sandbox.pidfile()).is_ok_and(|pid| pid.ends_with('\n'))
    });
    // A real-time signal's default action ends the process; its number is one nix's
    // `Signal` cannot name, and the launcher must still read the wait status.
    signal(sandbox.daemon_pid(), libc::SIGRTMIN() + 1);
    let launched = finish(launcher, start);
    assert_refused(
        &sandbox,
        &launched,
        "the daemon was killed by SIGRTMIN+1 before it was ready (it has no stderr log: set `stderr` to keep what it prints)",
    );
}
