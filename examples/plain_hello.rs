//! `hello` without `#[daemon]`: the same body, for the benchmark's overhead figures (memory,
//! threads, binary size, build time). It runs in the foreground; its stdout is the log.

use std::time::Duration;

fn main() {
    for tick in 1.. {
        println!("hello from pid {}, tick {tick}", std::process::id());
        std::thread::sleep(Duration::from_secs(1));
    }
}
