//! A daemon for the privilege tests, configured by the environment through the builder:
//! PROBE_USER, PROBE_GROUP and PROBE_CHROOT (with workdir `/` inside it), CORE_DUMPS=1.
//! PROBE_DIR holds the pidfile and the logs.

use daemon_runtime::Daemon;
use std::time::Duration;

fn main() {
    let mut daemon = Daemon::new()
        .name("privileged")
        .pidfile("${PROBE_DIR}/probe.pid")
        .stdout("${PROBE_DIR}/stdout.log")
        .stderr("${PROBE_DIR}/stderr.log")
        .core_dumps(std::env::var_os("CORE_DUMPS").is_some());
    if let Ok(user) = std::env::var("PROBE_USER") {
        daemon = daemon.user(user);
    }
    if let Ok(group) = std::env::var("PROBE_GROUP") {
        daemon = daemon.group(group);
    }
    if let Ok(root) = std::env::var("PROBE_CHROOT") {
        daemon = daemon.chroot(root);
    }
    daemon.run(|| {
        println!(
            "up as uid {}",
            std::fs::metadata("/proc/self")
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
                .unwrap_or(u32::MAX)
        );
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    })
}
