//! `fork::daemon` (fork 0.11) in the start-up benchmark: a double fork, the launcher leaving
//! at once; the daemon then writes its pidfile itself (the crate has none). PIDFILE names it.

use std::io::Write;

fn main() {
    let pidfile = std::env::var("PIDFILE").expect("PIDFILE");
    if let Ok(fork::Fork::Child) = fork::daemon(false, false) {
        let written = std::fs::File::create(&pidfile)
            .and_then(|mut file| writeln!(file, "{}", std::process::id()));
        if written.is_ok() {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
    }
}
