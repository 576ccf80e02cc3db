//! A small TCP echo service on loopback, run with the control commands:
//!
//!     cargo run --example echo            # start (ECHO_PORT, default 7007)
//!     cargo run --example echo -- status
//!     cargo run --example echo -- reload  # reopens echo.log (after logrotate moved it)
//!     cargo run --example echo -- upgrade # the binary now at its path takes over, see below
//!     cargo run --example echo -- stop    # finishes open connections, then exits
//!
//! Each line is answered with ECHO_PREFIX (default empty) and the line; `slow TEXT` is
//! answered after 300 ms. Its socket is a `listen` entry: the launcher binds it (a port in
//! use is reported by the launcher), and `upgrade` hands it to the new daemon, which answers
//! the connections from then on while this one finishes those it has. An ECHO_PREFIX of more
//! than one line is refused before the daemon is ready (what a bad configuration looks like).
//! With ECHO_PORT=0 it takes a free port and writes it to `${TMPDIR:-/tmp}/echo.port`.

use daemon_runtime::Event;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::Duration;

#[daemon_runtime::daemon(
    pidfile = "${TMPDIR:-/tmp}/echo.pid",
    stdout = "${TMPDIR:-/tmp}/echo.log",
    stderr = "${TMPDIR:-/tmp}/echo.log",
    listen = ["echo=127.0.0.1:${ECHO_PORT:-7007}"],
    ready = "manual",
    shutdown = "graceful",
    control = true
)]
fn main() -> Result<(), String> {
    let prefix = std::env::var("ECHO_PREFIX").unwrap_or_default();
    if prefix.contains('\n') {
        return Err(format!("ECHO_PREFIX {prefix:?} is more than one line"));
    }
    let listener = daemon_runtime::tcp_listener("echo").map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    if std::env::var("ECHO_PORT").as_deref() == Ok("0") {
        let dir = std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into());
        std::fs::write(format!("{dir}/echo.port"), address.port().to_string())
            .map_err(|e| e.to_string())?;
    }
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    println!("echo: listening on {address}");
    daemon_runtime::ready();

    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    loop {
        // Sleeps until a client connects, or SIGTERM / SIGHUP arrives.
        match daemon_runtime::wait_or_readable(&listener, None) {
            Some(Event::Shutdown) => break,
            Some(Event::Reload) => println!("echo: reloaded (log reopened)"),
            None => {
                // Until none is waiting, or a stop is asked.
                while let Some(Ok((stream, peer))) =
                    (!daemon_runtime::shutdown_requested()).then(|| listener.accept())
                {
                    println!("echo: connection from {peer}");
                    let prefix = prefix.clone();
                    connections.push(std::thread::spawn(move || serve(stream, &prefix)));
                }
            }
        }
        connections.retain(|connection| !connection.is_finished());
    }
    // Connections already queued are answered too (closing the socket would reset them);
    // from then on, new ones are refused.
    while let Ok((stream, _)) = listener.accept() {
        let prefix = prefix.clone();
        connections.push(std::thread::spawn(move || serve(stream, &prefix)));
    }
    drop(listener);
    println!(
        "echo: shutting down, {} connection(s) to finish",
        connections.len()
    );
    for connection in connections {
        let _ = connection.join();
    }
    println!("echo: bye");
    Ok(())
}

fn serve(stream: TcpStream, prefix: &str) {
    let _ = stream.set_nonblocking(false);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        let reply = match line.strip_prefix("slow ") {
            Some(text) => {
                std::thread::sleep(Duration::from_millis(300));
                text
            }
            None => &line,
        };
        if writeln!(writer, "{prefix}{reply}").is_err() {
            break;
        }
    }
}
