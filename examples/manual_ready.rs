//! A daemon with `ready = "manual"` for the integration tests. MODE says what `main` does
//! before `ready()`: `ok` (the default) sleeps DELAY_MS then calls it, `err` returns an
//! error, `panic` panics, `exit` calls `std::process::exit(3)`, `return` returns without it,
//! `hang` never calls it (the 1.5 s `ready_timeout` passes). AFTER says how `main` ends
//! 100 ms after `ready()`: `return`, `err`, `panic` or `exit`; unset, it runs on.

use std::time::Duration;

#[derive(Debug)]
#[allow(dead_code)] // read through `Debug`, in the launcher's message
struct ConfigError(&'static str);

#[daemon_runtime::daemon(
    pidfile = "${PROBE_DIR}/probe.pid",
    stderr = "${PROBE_DIR}/stderr.log",
    ready = "manual",
    ready_timeout = 1.5,
    name = "manual-ready"
)]
fn main() -> Result<(), ConfigError> {
    let mode = std::env::var("MODE").unwrap_or_default();
    let delay = std::env::var("DELAY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0);
    std::thread::sleep(Duration::from_millis(delay));
    match mode.as_str() {
        "err" => return Err(ConfigError("no listen address configured")),
        "panic" => panic!("the configuration is corrupt"),
        "exit" => std::process::exit(3),
        "return" => return Ok(()),
        "hang" => std::thread::sleep(Duration::from_secs(3600)),
        _ => {}
    }
    daemon_runtime::ready();
    let after = std::env::var("AFTER").unwrap_or_default();
    if !after.is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
    match after.as_str() {
        "return" => Ok(()),
        "err" => Err(ConfigError("lost the configuration")),
        "panic" => panic!("lost the configuration"),
        "exit" => std::process::exit(3),
        _ => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
}
