//! A small TCP service with a `listen` entry, for every place a service runs:
//!
//!     cargo run --example activated                 # by itself: binds 127.0.0.1:7008
//!     systemd-socket-activate -l 127.0.0.1:7008 --fdname=echo target/debug/examples/activated run
//!     target/debug/examples/activated unit          # a systemd service unit for it
//!
//! Each connection's lines are answered with `echo PID: LINE`. Under socket activation it
//! uses the socket it is given, and binds nothing of its own. ACTIVATED_PORT changes the port.

use daemon_runtime::Event;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

#[daemon_runtime::daemon(
    pidfile = "${TMPDIR:-/tmp}/activated.pid",
    stdout = "${TMPDIR:-/tmp}/activated.log",
    stderr = "${TMPDIR:-/tmp}/activated.log",
    listen = ["echo=127.0.0.1:${ACTIVATED_PORT:-7008}"],
    shutdown = "graceful",
    control = true
)]
fn main() -> std::io::Result<()> {
    let listener = daemon_runtime::tcp_listener("echo")?;
    listener.set_nonblocking(true)?;
    println!("activated: serving on {}", listener.local_addr()?);
    daemon_runtime::notify::status("serving");
    loop {
        // Woken at least twice per watchdog interval, to ping it.
        let timeout = daemon_runtime::notify::watchdog_interval()
            .map(|interval| (interval / 2).clamp(Duration::from_millis(1), Duration::from_secs(1)));
        let event = daemon_runtime::wait_or_readable(&listener, timeout);
        daemon_runtime::notify::watchdog();
        match event {
            Some(Event::Shutdown) => break,
            Some(Event::Reload) => println!("activated: reloaded"),
            None => {}
        }
        // Until none is waiting, or a stop is asked (clients without pause must not hold it).
        while !daemon_runtime::shutdown_requested() {
            match listener.accept() {
                Ok((stream, _)) => serve(stream),
                Err(_) => break,
            }
        }
    }
    println!("activated: bye");
    Ok(())
}

fn serve(stream: TcpStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        if writeln!(writer, "echo {}: {line}", std::process::id()).is_err() {
            break;
        }
    }
}
