//! A small TCP echo service on loopback, run with the control commands:
//!
//!     cargo run --example echo            # start (ECHO_PORT, default 7007)
//!     cargo run --example echo -- status
//!     cargo run --example echo -- reload  # reopens echo.log (after logrotate moved it)
//!     cargo run --example echo -- stop    # finishes open connections, then exits
//!
//! It is ready only once it listens: a port already in use is reported by the launcher.
//! With ECHO_PORT=0 it takes a free port and writes it to `${TMPDIR:-/tmp}/echo.port`.

use daemon_runtime::Event;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;

#[daemon_runtime::daemon(
    pidfile = "${TMPDIR:-/tmp}/echo.pid",
    stdout = "${TMPDIR:-/tmp}/echo.log",
    stderr = "${TMPDIR:-/tmp}/echo.log",
    ready = "manual",
    shutdown = "graceful",
    control = true
)]
fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("ECHO_PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .unwrap_or(7007);
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let address = listener.local_addr()?;
    if port == 0 {
        let dir = std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into());
        std::fs::write(format!("{dir}/echo.port"), address.port().to_string())?;
    }
    listener.set_nonblocking(true)?;
    println!("echo: listening on {address}");
    daemon_runtime::ready();

    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    loop {
        // Sleeps until a client connects, or SIGTERM / SIGHUP arrives.
        match daemon_runtime::wait_or_readable(&listener, None) {
            Some(Event::Shutdown) => break,
            Some(Event::Reload) => println!("echo: reloaded (log reopened)"),
            None => {
                while let Ok((stream, peer)) = listener.accept() {
                    println!("echo: connection from {peer}");
                    connections.push(std::thread::spawn(move || serve(stream)));
                }
            }
        }
        connections.retain(|connection| !connection.is_finished());
    }
    drop(listener); // no new connections from here on
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

fn serve(stream: TcpStream) {
    let _ = stream.set_nonblocking(false);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        if writeln!(writer, "{line}").is_err() {
            break;
        }
    }
}
