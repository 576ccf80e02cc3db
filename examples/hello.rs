//! The README example: a daemon that writes a line to its log every second.
//!
//!     cargo run --example hello          # starts it; the launcher returns once it runs
//!     tail -f "${TMPDIR:-/tmp}/hello.log"
//!     kill "$(cat "${TMPDIR:-/tmp}/hello.pid")"

use std::time::Duration;

#[daemon_runtime::daemon(
    pidfile = "${TMPDIR:-/tmp}/hello.pid",
    stdout = "${TMPDIR:-/tmp}/hello.log"
)]
fn main() {
    for tick in 1.. {
        println!("hello from pid {}, tick {tick}", std::process::id());
        std::thread::sleep(Duration::from_secs(1));
    }
}
