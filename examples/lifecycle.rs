//! A daemon with `shutdown = "graceful"` and the control commands, for the integration tests.
//!
//! MODE says how `main` watches for events: `wait` (the default) blocks in
//! `daemon_runtime::wait()`, `poll` polls the flags, `fd` puts `events_fd()` in its own
//! poll(2), `stubborn` ignores the shutdown request (so that `stop` has to kill it). Each
//! reload prints `reload N`; a shutdown prints `shutting down`, takes 200 ms, prints `bye`.

use daemon_runtime::Event;
use std::os::fd::AsRawFd;
use std::time::Duration;

#[daemon_runtime::daemon(
    pidfile = "${PROBE_DIR}/probe.pid",
    stdout = "${PROBE_DIR}/stdout.log",
    stderr = "${PROBE_DIR}/stderr.log",
    shutdown = "graceful",
    control = true,
    stop_timeout = 5,
    name = "lifecycle"
)]
fn main() {
    let mode = std::env::var("MODE").unwrap_or_default();
    println!("up {}", std::process::id());
    let mut reloads = 0;
    loop {
        let event = match mode.as_str() {
            "poll" => poll_flags(),
            "fd" => poll_descriptor(),
            _ => Some(daemon_runtime::wait()),
        };
        match event {
            Some(Event::Reload) => {
                reloads += 1;
                println!("reload {reloads}");
            }
            Some(Event::Shutdown) if mode == "stubborn" => {
                println!("ignoring the shutdown request");
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            Some(Event::Shutdown) => {
                println!("shutting down");
                std::thread::sleep(Duration::from_millis(200));
                println!("bye");
                return;
            }
            None => {}
        }
    }
}

fn poll_flags() -> Option<Event> {
    if daemon_runtime::shutdown_requested() {
        return Some(Event::Shutdown);
    }
    if daemon_runtime::reload_requested() {
        return Some(Event::Reload);
    }
    std::thread::sleep(Duration::from_millis(10));
    None
}

fn poll_descriptor() -> Option<Event> {
    let fd = daemon_runtime::events_fd().expect("started as a daemon");
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pollfd, 1, 1000) };
    daemon_runtime::wait_timeout(Duration::ZERO)
}
