//! The logging setups async services reach for (`tracing`), with logrotate: every numbered
//! line is complete and in exactly one file, after rotations that move the log and signal the
//! daemon, after `copytruncate`, and when a non-blocking writer is flushed at a graceful exit.
//! The tokio_tunable example writes the lines; logrotate is the real one.

use crate::asynchronous::log_lines;
use crate::support::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Stops the daemon with SIGTERM: exit 0, no pidfile.
fn stop(sandbox: &Sandbox, pid: i32) {
    terminate(pid);
    assert!(!sandbox.pidfile().exists(), "pidfile left behind");
}

/// Runs logrotate (forced) on `log` with `directives`, its state in the sandbox.
fn logrotate(sandbox: &Sandbox, log: &Path, directives: &str) {
    let config = sandbox.path("logrotate.conf");
    fs::write(
        &config,
        format!(
            "{} {{\n    rotate 50\n    missingok\n    nocompress\n{directives}}}\n",
            log.display()
        ),
    )
    .unwrap();
    let rotated = launch(
        Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(sandbox.path("logrotate.state"))
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    );
    assert_eq!(rotated.code(), Some(0), "logrotate: {rotated:?}");
}

/// The directives that move the log away, create a new one, and send SIGHUP.
fn move_and_signal(sandbox: &Sandbox) -> String {
    format!(
        "    create 0640\n    postrotate\n        kill -HUP $(cat {})\n    endscript\n",
        sandbox.pidfile().display()
    )
}

/// Runs `meanwhile` while a thread has the daemon on `port` log lines, 50 at a time, without
/// pause; the number of the last line once both are done.
fn logging_during(port: u16, meanwhile: impl FnOnce()) -> u64 {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut last = 0;
            while !done.load(Ordering::SeqCst) {
                last = log_lines(port, 50);
            }
            last
        })
    };
    meanwhile();
    done.store(true, Ordering::SeqCst);
    writer.join().expect("the writer")
}

/// `log` and its rotated copies (`log.1`, `log.2`, ...).
fn generations(log: &Path) -> Vec<PathBuf> {
    let name = log.file_name().unwrap().to_str().unwrap().to_owned();
    let mut files: Vec<PathBuf> = fs::read_dir(log.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            let file = path.file_name().unwrap().to_str().unwrap();
            file == name
                || file
                    .strip_prefix(&format!("{name}."))
                    .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .collect();
    files.sort();
    files
}

/// Checks that every line of `files` is a whole `tracing` line (no NUL hole, no torn line) and
/// that the numbered lines are exactly `1..=last`, each in one file only. How many files held
/// numbered lines.
fn assert_each_line_once(files: &[PathBuf], last: u64) -> usize {
    let mut seen = vec![0u32; last as usize + 1];
    let mut holding = 0;
    for file in files {
        let text = fs::read(file).unwrap();
        assert!(
            !text.contains(&0),
            "{}: a hole of NUL bytes",
            file.display()
        );
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{}: a torn last line",
            file.display()
        );
        let mut numbered = 0;
        for line in text.lines() {
            assert!(
                line.starts_with("20") && line.contains(" INFO tokio_tunable: "),
                "{}: not a whole line: {line:?}",
                file.display()
            );
            if let Some(n) = line.split(" INFO tokio_tunable: line ").nth(1) {
                let n: usize = n.parse().unwrap_or_else(|_| panic!("{line:?}"));
                assert!(n as u64 <= last, "line {n} after the last, {last}");
                seen[n] += 1;
                numbered += 1;
            }
        }
        if numbered > 0 {
            holding += 1;
        }
    }
    for (n, count) in seen.iter().enumerate().skip(1) {
        assert_eq!(*count, 1, "line {n} is in {count} files");
    }
    holding
}

#[test]
fn tracing_to_stderr_follows_logrotate_moves_while_it_logs() {
    let sandbox = Sandbox::new("tracing-move");
    let (pid, port) = start_tokio_tunable(&sandbox, &[("WRITER", "stderr")]);
    let log = sandbox.path("stderr.log");
    // Lines are written all along, while logrotate moves the log three times.
    let last = logging_during(port, || {
        for _ in 0..3 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            logrotate(&sandbox, &log, &move_and_signal(&sandbox));
        }
    });
    stop(&sandbox, pid);
    let files = generations(&log);
    assert_eq!(files.len(), 4, "{files:?}");
    let holding = assert_each_line_once(&files, last);
    assert!(holding >= 3, "the rotations did not split the lines");
}

#[test]
fn tracing_to_stderr_survives_copytruncate() {
    let sandbox = Sandbox::new("tracing-copytruncate");
    let (pid, port) = start_tokio_tunable(&sandbox, &[("WRITER", "stderr")]);
    let log = sandbox.path("stderr.log");
    // copytruncate loses what is written between its copy and its truncation (logrotate(8)
    // says so): the lines come between the rotations.
    let mut last = 0;
    for _ in 0..3 {
        last = log_lines(port, 500);
        logrotate(&sandbox, &log, "    copytruncate\n");
    }
    last = last.max(log_lines(port, 500));
    stop(&sandbox, pid);
    let files = generations(&log);
    assert_eq!(files.len(), 4, "{files:?}");
    // Appending, the daemon's next line goes to the start of the truncated file: no hole.
    assert_eq!(assert_each_line_once(&files, last), 4);
}

#[test]
fn a_non_blocking_writer_flushes_its_lines_at_a_graceful_exit() {
    let sandbox = Sandbox::new("tracing-non-blocking");
    let (pid, port) = start_tokio_tunable(
        &sandbox,
        &[("WRITER", "non_blocking"), ("SHUTDOWN_LINES", "20000")],
    );
    let before = log_lines(port, 10);
    // The 20,000 lines are handed to tracing-appender's thread as main returns; its guard,
    // dropped by main, waits until they are written.
    stop(&sandbox, pid);
    let log = sandbox.path("stderr.log");
    assert_eq!(
        assert_each_line_once(std::slice::from_ref(&log), before + 20_000),
        1
    );
    assert!(fs::read_to_string(&log).unwrap().ends_with("bye\n"));
}

#[test]
fn a_log_file_of_the_body_reopens_on_sighup() {
    let sandbox = Sandbox::new("tracing-logfile");
    let (pid, port) = start_tokio_tunable(&sandbox, &[("WRITER", "logfile")]);
    let log = sandbox.path("own.log");
    let last = logging_during(port, || {
        for _ in 0..2 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            logrotate(&sandbox, &log, &move_and_signal(&sandbox));
        }
    });
    // The first line after the last SIGHUP goes to the new file.
    let last = log_lines(port, 1).max(last);
    stop(&sandbox, pid);
    let files = generations(&log);
    assert_eq!(files.len(), 3, "{files:?}");
    let holding = assert_each_line_once(&files, last);
    assert!(holding >= 2, "the rotations did not split the lines");
    let newest = fs::read_to_string(&log).unwrap();
    assert!(newest.contains(&format!("line {last}\n")), "{newest}");
}

#[test]
fn a_rolling_never_appender_keeps_writing_to_the_moved_file() {
    // What the README says: tracing_appender::rolling opens its file once; after logrotate
    // moved it, the lines go on into the moved file. (daemon_runtime::LogFile reopens.)
    let sandbox = Sandbox::new("tracing-never");
    let (pid, port) = start_tokio_tunable(&sandbox, &[("WRITER", "never")]);
    let log = sandbox.path("own.log");
    log_lines(port, 10);
    logrotate(&sandbox, &log, &move_and_signal(&sandbox));
    let last = log_lines(port, 10);
    stop(&sandbox, pid);
    let moved = sandbox.path("own.log.1");
    let text = fs::read_to_string(&moved).unwrap();
    assert!(text.contains(&format!("line {last}\n")), "{text}");
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "",
        "the new file got lines"
    );
}
