//! The builder that `#[daemon]` expands to, written by hand. With SPAWN_THREAD=1 a thread is
//! started first, which the start-up refuses (fork would keep only one thread).

use daemon_runtime::Daemon;
use std::time::Duration;

fn main() {
    if std::env::var_os("SPAWN_THREAD").is_some() {
        std::thread::spawn(|| std::thread::sleep(Duration::from_secs(3600)));
    }
    Daemon::new()
        .name("by-hand")
        .pidfile("${PROBE_DIR}/probe.pid")
        .umask(0o022)
        .run(|| loop {
            std::thread::sleep(Duration::from_secs(3600));
        })
}
