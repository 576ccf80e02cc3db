//! A daemon for the integration tests, written with the builder and configured by the
//! environment, so that one binary covers the combinations the hostile-review tests need.
//!
//! PROBE_DIR (required) holds the files. PIDFILE (default `${PROBE_DIR}/probe.pid`), STDOUT,
//! STDERR, WORKDIR, USER_NAME (`user`): the settings of the same names. READY=manual, SHUTDOWN=graceful,
//! CONTROL=1, READY_TIMEOUT_MS, STOP_TIMEOUT_SECS: the keys of the same names.
//!
//! MODE says what `main` does (before `ready()` where READY=manual):
//! - unset: prints `up PID`, then `reload N` at each `SIGHUP`, until it is stopped;
//! - `ready-on-shutdown`: waits for a shutdown request, then calls `ready()` and runs on;
//! - `worker`: forks a worker (no exec) that runs on, writes its pid to `worker.pid`, then
//!   calls `ready()` and runs on. The worker opens `worker.log` 16 times (taking the lowest
//!   free descriptor numbers) and forks a child of its own, which writes `grandchild wrote`
//!   through each;
//! - `worker-then-crash`: like `worker`, then the daemon dies by `SIGKILL` (a crash);
//! - `worker-then-fail`: forks the worker, then returns an error before `ready()`;
//! - `escaped-worker-then-killed`: forks a worker with a raw clone(2) (so no pthread_atfork
//!   handler runs: it keeps the pidfile's lock) that leaves the session (setsid), then dies
//!   by `SIGKILL` before `ready()` (so it cannot remove its pidfile);
//! - `exit`: calls `std::process::exit(3)` before `ready()`;
//! - `killed`: dies by `SIGKILL` before `ready()`;
//! - `hang`: never calls `ready()`;
//! - `flood`: sends 100,000 `STATUS=` messages, prints `flooded`, then calls `ready()`;
//! - `waiters`: calls `ready()`, then eight threads call `wait()` until it returns
//!   `Shutdown`; each prints `waiter N: shutdown`, and `main` returns when all have;
//! - `serve`: takes the `echo` socket (LISTEN=echo=ADDRESS, or socket activation), calls
//!   `ready()`, and answers each connection's first line with `echo PID: LINE`.
//!
//! TOKIO_BEFORE=built builds a tokio `current_thread` runtime before the daemon starts,
//! TOKIO_BEFORE=entered also enters it (both are refused: forking would break the runtime).
//! TOKIO_BEFORE=signal listens for `SIGUSR1` with `tokio::signal` on a runtime that is dropped
//! before the start (refused too: tokio's signal state outlives the runtime).
//! BEFORE_START, a comma-separated list: `handler` installs a `SIGUSR2` handler before the
//! start, `thread` runs a thread to its end (glibc then catches a signal of its own), `pair`
//! makes a Unix socket pair, `kept` adds the pair to `keep_fds`, `named` connects to a named
//! Unix socket. A handler of the program's own and a pair not kept are refused (tokio's
//! signal state looks so), anything less is not.
//!
//! DETACH=always|never sets `detach`; with SPAWN_ENV the body first runs a child that writes
//! its environment to `child.env`. The body tells a supervisor `STATUS=up PID`.
//!
//! With a MODE other than `waiters`, a graceful shutdown request is ignored: only `SIGKILL` ends the daemon.

use daemon_runtime::{Daemon, Detach, Ready, Shutdown};
use std::time::Duration;

fn main() -> Result<(), String> {
    let var = |name| std::env::var(name).ok();
    let mut daemon = Daemon::new()
        .name("tunable")
        .pidfile(var("PIDFILE").unwrap_or_else(|| "${PROBE_DIR}/probe.pid".into()));
    if let Some(path) = var("STDOUT") {
        daemon = daemon.stdout(path);
    }
    if let Some(path) = var("STDERR") {
        daemon = daemon.stderr(path);
    }
    if let Some(path) = var("WORKDIR") {
        daemon = daemon.workdir(path);
    }
    if let Some(user) = var("USER_NAME") {
        daemon = daemon.user(user);
    }
    if var("READY").as_deref() == Some("manual") {
        daemon = daemon.ready(Ready::Manual);
    }
    if var("SHUTDOWN").as_deref() == Some("graceful") {
        daemon = daemon.shutdown(Shutdown::Graceful);
    }
    if let Some(entry) = var("LISTEN") {
        daemon = daemon.listen(entry);
    }
    match var("DETACH").as_deref() {
        Some("always") => daemon = daemon.detach(Detach::Always),
        Some("never") => daemon = daemon.detach(Detach::Never),
        _ => {}
    }
    if var("CONTROL").is_some() {
        daemon = daemon.control(true);
    }
    if let Some(ms) = var("READY_TIMEOUT_MS").and_then(|ms| ms.parse().ok()) {
        daemon = daemon.ready_timeout(Duration::from_millis(ms));
    }
    if let Some(secs) = var("STOP_TIMEOUT_SECS").and_then(|secs| secs.parse().ok()) {
        daemon = daemon.stop_timeout(Duration::from_secs(secs));
    }
    // Held until the start: what a program that used tokio first looks like.
    if var("TOKIO_BEFORE").as_deref() == Some("signal") {
        // tokio::signal used on a runtime that is gone before the start: its signal state
        // (a handler, a socket pair) stays for the rest of the process.
        let _listener = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(async {
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
            })
            .expect("a signal listener");
    }
    // Neither alone is tokio's signal state: the start goes on.
    let before: Vec<String> = var("BEFORE_START")
        .map(|list| list.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let before = |what: &str| before.iter().any(|listed| listed == what);
    if before("handler") {
        extern "C" fn nothing(_: libc::c_int) {}
        // SAFETY: the handler does nothing, which is async-signal-safe.
        unsafe { libc::signal(libc::SIGUSR2, nothing as *const () as libc::sighandler_t) };
    }
    if before("thread") {
        // Gone again by the start; glibc has now caught its reserved SIGSETXID.
        std::thread::spawn(|| {}).join().expect("a thread");
    }
    let pair =
        before("pair").then(|| std::os::unix::net::UnixStream::pair().expect("a socket pair"));
    let _named = before("named").then(|| {
        use std::os::unix::net::{UnixListener, UnixStream};
        let path = format!("{}/named.sock", var("PROBE_DIR").expect("PROBE_DIR"));
        let listener = UnixListener::bind(&path).expect("a named socket");
        let client = UnixStream::connect(&path).expect("a connection");
        let accepted = listener.accept().expect("accepted").0;
        (listener, client, accepted)
    });
    if let (true, Some((one, other))) = (before("kept"), &pair) {
        use std::os::fd::AsRawFd;
        daemon = daemon.keep_fds(&[one.as_raw_fd(), other.as_raw_fd()]);
    }
    let runtime = var("TOKIO_BEFORE").filter(|how| how != "signal").map(|_| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    });
    let _entered = match (&runtime, var("TOKIO_BEFORE").as_deref()) {
        (Some(runtime), Some("entered")) => Some(runtime.enter()),
        _ => None,
    };
    daemon.run(|| {
        println!("up {}", std::process::id());
        daemon_runtime::notify::status(&format!("up {}", std::process::id()));
        if var("SPAWN_ENV").is_some() {
            // What the body, and a child of the service, see of the environment.
            let dir = var("PROBE_DIR").unwrap_or_default();
            let vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = std::fs::write(format!("{dir}/body.env"), vars.join("\n"));
            let _ = std::process::Command::new("sh")
                .args(["-c", "env > \"$PROBE_DIR/child.env\""])
                .status();
        }
        match var("MODE").unwrap_or_default().as_str() {
            "ready-on-shutdown" => {
                while !daemon_runtime::shutdown_requested() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                println!("asked to shut down; ready now anyway");
                daemon_runtime::ready();
            }
            "worker" => {
                fork_worker();
                daemon_runtime::ready();
            }
            "worker-then-crash" => {
                fork_worker();
                daemon_runtime::ready();
                std::thread::sleep(Duration::from_millis(100));
                // SAFETY: kill with integer arguments only.
                unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            }
            "worker-then-fail" => {
                fork_worker();
                return Err("the worker is up, but the configuration is not".to_owned());
            }
            "escaped-worker-then-killed" => {
                // SAFETY: a raw fork (clone with only SIGCHLD); the daemon has one thread, so
                // the child is a complete copy. It only calls setsid and sleeps.
                match unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) } {
                    0 => {
                        // SAFETY: no arguments.
                        unsafe { libc::setsid() };
                        loop {
                            std::thread::sleep(Duration::from_secs(3600));
                        }
                    }
                    pid => {
                        let pid = pid as i32;
                        write_worker_pid(pid);
                        // Only once it has left the session (getsid: its own), so that the
                        // launcher's clean-up cannot reach it.
                        // SAFETY: getsid takes an integer.
                        while unsafe { libc::getsid(pid) } != pid {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
                // SAFETY: kill with integer arguments only.
                unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            }
            "exit" => std::process::exit(3),
            // SAFETY: kill with integer arguments only.
            "killed" => unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            },
            "hang" => {}
            "inetd" => {
                // Started by an inetd: the connection is stdin and stdout.
                use std::io::{BufRead, Write};
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "inetd {}: {line}", std::process::id());
                let _ = out.flush();
                return Ok(());
            }
            "orphan-and-child" => {
                // An orphan for PID 1 to reap: a child that forks and leaves at once; its
                // child ends 100 ms later, reparented.
                // SAFETY: the daemon has a single thread.
                let parent = unsafe { libc::fork() };
                if parent == 0 {
                    // SAFETY: as above.
                    if unsafe { libc::fork() } == 0 {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    // SAFETY: leaves without the parent's atexit handlers or buffers.
                    unsafe { libc::_exit(0) };
                }
                // The intermediate child is the body's own: reaped here.
                // SAFETY: waits for the child just forked; a null status is allowed.
                unsafe { libc::waitpid(parent, std::ptr::null_mut(), 0) };
                // A child of the body's own: its status is the body's to collect.
                let status = std::process::Command::new("sh")
                    .args(["-c", "exit 7"])
                    .status();
                println!("child status {:?}", status.map(|status| status.code()));
                daemon_runtime::ready();
            }
            "serve" => {
                // Answers each line on the "echo" socket with `echo PID: LINE`.
                let name = var("SOCKET_NAME").unwrap_or_else(|| "echo".to_owned());
                let listener = daemon_runtime::tcp_listener(&name).map_err(|e| e.to_string())?;
                daemon_runtime::ready();
                for stream in listener.incoming().flatten() {
                    use std::io::{BufRead, Write};
                    let mut reader = std::io::BufReader::new(&stream);
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_ok() {
                        let _ = write!(&stream, "echo {}: {line}", std::process::id());
                    }
                }
            }
            "waiters" => {
                // Eight threads wait for events at once: each must see the shutdown.
                daemon_runtime::ready();
                let waiters: Vec<_> = (0..8)
                    .map(|n| {
                        std::thread::spawn(move || loop {
                            if daemon_runtime::wait() == daemon_runtime::Event::Shutdown {
                                println!("waiter {n}: shutdown");
                                return;
                            }
                        })
                    })
                    .collect();
                println!("waiting");
                for waiter in waiters {
                    let _ = waiter.join();
                }
                return Ok(());
            }
            "flood" => {
                // To a supervisor that never reads: every send must return at once.
                for n in 0..100_000 {
                    daemon_runtime::notify::status(&format!("busy {n}"));
                }
                println!("flooded");
                daemon_runtime::ready();
            }
            _ => daemon_runtime::ready(),
        }
        // Runs until it is stopped, saying so at each reload.
        let mut reloads = 0;
        loop {
            if daemon_runtime::wait() == daemon_runtime::Event::Reload {
                reloads += 1;
                println!("reload {reloads}");
            } else if var("MODE").is_none() {
                return Ok(());
            } else {
                // Deaf to the request: only SIGKILL ends it.
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    })
}

/// Forks a worker that sleeps (as a pre-forking server's would), and writes its pid to
/// `${PROBE_DIR}/worker.pid`. The worker opens `worker.log` and forks a child that writes
/// into it: a second generation, whose descriptors the runtime must leave alone.
fn fork_worker() {
    let dir = std::env::var("PROBE_DIR").expect("PROBE_DIR");
    // SAFETY: the daemon has a single thread, so the child is a complete copy.
    match unsafe { libc::fork() } {
        0 => {
            use std::io::Write;
            // Sixteen times: they take every free descriptor number up to about 20, the one
            // the pidfile had in the daemon among them.
            let path = format!("{dir}/worker.log");
            let mut logs: Vec<std::fs::File> = (0..16)
                .map(|_| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .expect("worker.log")
                })
                .collect();
            // SAFETY: the worker has a single thread.
            if unsafe { libc::fork() } == 0 {
                for log in &mut logs {
                    let _ = writeln!(log, "grandchild wrote");
                }
                std::process::exit(0);
            }
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        pid => write_worker_pid(pid),
    }
}

fn write_worker_pid(pid: i32) {
    let dir = std::env::var("PROBE_DIR").expect("PROBE_DIR");
    std::fs::write(format!("{dir}/worker.pid"), format!("{pid}\n")).expect("worker.pid");
}
