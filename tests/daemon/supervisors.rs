//! SPEC §7.1 and §7.2: `detach`, and sd_notify to a receiver the test owns (an abstract and a
//! path socket, with `SO_PASSCRED`, so that every message comes with the sender's pid).

use crate::support::*;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// A notification socket, as systemd's: a datagram socket that reports each sender's pid.
struct Receiver {
    fd: OwnedFd,
    /// What goes into `NOTIFY_SOCKET`: a path, or `@name`.
    address: String,
    /// Messages read but not yet asked for, in order.
    backlog: std::cell::RefCell<Vec<(i32, String)>>,
}

impl Receiver {
    fn bind(address: String) -> Receiver {
        // SAFETY: plain socket creation; the descriptor is owned below.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an all-zero sockaddr_un is valid; the path is copied within its bounds.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = address.as_bytes();
        let (path, skip) = match bytes.first() {
            Some(b'@') => (&bytes[1..], 1usize), // abstract: sun_path[0] stays 0
            _ => (bytes, 0),
        };
        for (i, b) in path.iter().enumerate() {
            addr.sun_path[i + skip] = *b as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sa_family_t>() + skip + path.len() + (1 - skip);
        // SAFETY: `addr` is a valid sockaddr_un of at least `len` bytes.
        let bound = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len as libc::socklen_t,
            )
        };
        assert_eq!(
            bound,
            0,
            "bind {address}: {}",
            std::io::Error::last_os_error()
        );
        let on: libc::c_int = 1;
        // SAFETY: SO_PASSCRED takes an int.
        let set = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PASSCRED,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0);
        Receiver {
            fd,
            address,
            backlog: Default::default(),
        }
    }

    /// The next datagram and its sender's pid, waiting at most `timeout`.
    fn next(&self, timeout: Duration) -> Option<(i32, String)> {
        let mut pollfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pollfd, 1, timeout.as_millis() as i32) } != 1 {
            return None;
        }
        let mut data = [0u8; 4096];
        let mut control = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: an all-zero msghdr is valid; the buffers outlive the call.
        let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
        header.msg_iov = &mut iov;
        header.msg_iovlen = 1;
        header.msg_control = control.as_mut_ptr().cast();
        header.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: `header` points at valid buffers.
        let len = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut header, 0) };
        assert!(len >= 0, "recvmsg: {}", std::io::Error::last_os_error());
        let mut pid = 0;
        // SAFETY: walking the control messages the kernel wrote, with the libc macros.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&header);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_CREDENTIALS
                {
                    let creds = libc::CMSG_DATA(cmsg).cast::<libc::ucred>().read_unaligned();
                    pid = creds.pid;
                }
                cmsg = libc::CMSG_NXTHDR(&header, cmsg);
            }
        }
        Some((
            pid,
            String::from_utf8_lossy(&data[..len as usize]).into_owned(),
        ))
    }

    /// The first message that starts with `prefix` (read before or now), and its pid; the
    /// others stay for later calls, in order.
    fn expect(&self, prefix: &str) -> (i32, String) {
        let deadline = Instant::now() + LAUNCH_TIMEOUT;
        loop {
            let mut backlog = self.backlog.borrow_mut();
            if let Some(at) = backlog.iter().position(|(_, m)| m.starts_with(prefix)) {
                return backlog.remove(at);
            }
            assert!(
                Instant::now() < deadline,
                "no {prefix:?} on {}; saw {backlog:?}",
                self.address
            );
            if let Some(message) = self.next(deadline.saturating_duration_since(Instant::now())) {
                backlog.push(message);
            }
        }
    }

    /// Every message not asked for yet, and every one that comes within `window`.
    fn drain(&self, window: Duration) -> Vec<String> {
        let deadline = Instant::now() + window;
        let mut messages: Vec<String> = self
            .backlog
            .borrow_mut()
            .drain(..)
            .map(|(_, m)| m)
            .collect();
        while let Some((_, message)) = self.next(deadline.saturating_duration_since(Instant::now()))
        {
            messages.push(message);
        }
        messages
    }
}

fn abstract_receiver(sandbox: &Sandbox) -> Receiver {
    Receiver::bind(format!("@{}/notify", sandbox.dir.display()))
}

#[test]
fn under_notify_socket_the_service_stays_in_the_foreground_and_says_each_step() {
    let sandbox = Sandbox::new("notify-foreground");
    let receiver = abstract_receiver(&sandbox);
    let mut service = tunable(&sandbox)
        .env("NOTIFY_SOCKET", &receiver.address)
        .env("WATCHDOG_USEC", "5000000")
        .env("SPAWN_ENV", "1")
        .spawn()
        .unwrap();
    let pid = service.id() as i32;
    // READY=1 from the very process the supervisor started: no fork.
    assert_eq!(receiver.expect("READY=1"), (pid, "READY=1".to_owned()));
    assert_eq!(
        receiver.expect("STATUS="),
        (pid, format!("STATUS=up {pid}"))
    );
    assert_eq!(read_pid(&sandbox.pidfile()), pid, "the pidfile names it");
    // The variables were taken out of the environment: the body's, and its child's.
    wait_until("the child wrote its environment", GONE_TIMEOUT, || {
        sandbox.path("child.env").exists()
    });
    let child_env = fs::read_to_string(sandbox.path("child.env")).unwrap();
    let body_env = fs::read_to_string(sandbox.path("body.env")).unwrap();
    assert!(body_env.contains("PROBE_DIR="), "{body_env}");
    for variable in ["NOTIFY_SOCKET", "WATCHDOG_USEC"] {
        assert!(
            !body_env.contains(variable),
            "{variable} in the body's environment"
        );
        assert!(
            !child_env.contains(variable),
            "{variable} in a child's environment"
        );
    }
    // A reload: one datagram with RELOADING=1 and the monotonic time, then READY=1.
    assert!(receiver.drain(Duration::from_millis(100)).is_empty());
    signal(pid, libc::SIGHUP);
    let (from, reloading) = receiver.expect("RELOADING=1");
    assert_eq!(from, pid);
    let usec: u64 = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|usec| usec.parse().ok())
        .unwrap_or_else(|| panic!("{reloading:?}"));
    assert!(usec > 0);
    assert_eq!(receiver.expect("READY=1").1, "READY=1");
    let more = receiver.drain(Duration::from_millis(200));
    assert!(
        !more.iter().any(|message| message.contains("RELOADING")),
        "more than one RELOADING=1: {more:?}"
    );
    // SIGTERM: STOPPING=1, once; exit 0, pidfile gone.
    terminate(pid);
    let _ = service.wait();
    let stopping: Vec<String> = receiver
        .drain(Duration::from_millis(200))
        .into_iter()
        .filter(|message| message.contains("STOPPING=1"))
        .collect();
    assert_eq!(stopping, vec!["STOPPING=1".to_owned()]);
    assert!(!sandbox.pidfile().exists());
}

#[test]
fn detach_always_under_notify_socket_names_the_daemon_as_main_pid() {
    let sandbox = Sandbox::new("notify-always");
    let receiver = Receiver::bind(sandbox.path("notify.sock").display().to_string());
    let start = Instant::now();
    let launcher = tunable(&sandbox)
        .env("NOTIFY_SOCKET", &receiver.address)
        .env("DETACH", "always")
        .spawn()
        .unwrap();
    let launcher_pid = launcher.id() as i32;
    let launched = finish(launcher, start);
    launched.assert_started();
    let daemon = sandbox.daemon_pid();
    assert_ne!(daemon, launcher_pid);
    // One datagram from the launcher (the process systemd started), naming the daemon.
    let (from, message) = receiver.expect("MAINPID=");
    assert_eq!(from, launcher_pid);
    assert_eq!(message, format!("MAINPID={daemon}\nREADY=1"));
    // The daemon speaks for itself afterwards.
    assert_eq!(
        receiver.expect("STATUS="),
        (daemon, format!("STATUS=up {daemon}"))
    );
    signal(daemon, libc::SIGTERM);
    wait_for_exit(daemon, GONE_TIMEOUT);
    assert_eq!(
        receiver.expect("STOPPING=1"),
        (daemon, "STOPPING=1".to_owned())
    );
}

#[test]
fn a_start_up_failure_under_notify_socket_sends_status_and_errno() {
    let sandbox = Sandbox::new("notify-failure");
    let receiver = abstract_receiver(&sandbox);
    let pidfile = sandbox.path("missing/p.pid");
    let launched = launch(
        tunable(&sandbox)
            .env("NOTIFY_SOCKET", &receiver.address)
            .env("PIDFILE", &pidfile),
    );
    assert_eq!(launched.code(), Some(1), "{launched:?}");
    let (_, message) = receiver.expect("STATUS=");
    assert_eq!(
        message,
        format!(
            "STATUS=cannot open pidfile {}: No such file or directory\nERRNO={}",
            pidfile.display(),
            libc::ENOENT
        )
    );
}

#[test]
fn a_supervisor_that_never_reads_does_not_block_the_service() {
    let sandbox = Sandbox::new("notify-full");
    // Bound, never read: its queue fills after a few hundred datagrams.
    let receiver = abstract_receiver(&sandbox);
    let mut service = tunable(&sandbox)
        .env("NOTIFY_SOCKET", &receiver.address)
        .env("READY", "manual")
        .env("MODE", "flood")
        .env("STDOUT", sandbox.path("out.log"))
        .spawn()
        .unwrap();
    wait_until("100,000 sends returned", LAUNCH_TIMEOUT, || {
        fs::read_to_string(sandbox.path("out.log")).is_ok_and(|log| log.contains("flooded"))
    });
    let _ = service.kill();
    let _ = service.wait();
}

#[test]
fn start_stop_daemon_notify_await_returns_once_the_service_is_ready() {
    let sandbox = Sandbox::new("ssd-notify");
    let ssd = ["/sbin/start-stop-daemon", "/usr/sbin/start-stop-daemon"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .expect("start-stop-daemon (dpkg) is installed");
    let launched = launch(
        sandbox
            .command_for(ssd)
            .args([
                "--start",
                "--background",
                "--notify-await",
                "--notify-timeout",
                "10",
            ])
            .args(["--pidfile"])
            .arg(sandbox.pidfile())
            .arg("--exec")
            .arg(example("tunable")),
    );
    assert_eq!(launched.code(), Some(0), "{launched:?}");
    // Ready means: running, pidfile written and locked.
    let pid = sandbox.daemon_pid();
    assert!(is_alive(pid));
    assert!(is_locked(&sandbox.pidfile()));
    signal(pid, libc::SIGTERM);
    wait_for_exit(pid, GONE_TIMEOUT);
}

#[test]
fn daemon_foreground_1_and_detach_never_stay_in_the_foreground() {
    for (variable, value) in [("DAEMON_FOREGROUND", "1"), ("DETACH", "never")] {
        let sandbox = Sandbox::new("foreground");
        let mut service = tunable(&sandbox).env(variable, value).spawn().unwrap();
        let pid = service.id() as i32;
        wait_until(
            "the pidfile names the started process",
            GONE_TIMEOUT,
            || fs::read_to_string(sandbox.pidfile()).is_ok_and(|text| text == format!("{pid}\n")),
        );
        assert_eq!(sandbox.processes(), vec![pid], "{variable}={value}: forked");
        terminate(pid);
        let _ = service.wait();
        assert!(!sandbox.pidfile().exists());
    }
}

// SPEC §7.3: listening sockets and socket activation.

#[test]
fn a_listen_entry_is_bound_by_the_launcher_and_taken_by_name() {
    let sandbox = Sandbox::new("listen");
    let port = free_port();
    launch(
        tunable(&sandbox)
            .env("LISTEN", format!("echo=127.0.0.1:{port}"))
            .env("READY", "manual")
            .env("MODE", "serve"),
    )
    .assert_started();
    let daemon = sandbox.daemon_pid();
    assert_eq!(ask(port, "hello"), format!("echo {daemon}: hello\n"));
}

#[test]
fn a_listen_entry_that_cannot_be_bound_is_a_launcher_error_naming_it() {
    let sandbox = Sandbox::new("listen-busy");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let launched = launch(
        tunable(&sandbox)
            .env("LISTEN", format!("echo=127.0.0.1:{port}"))
            .env("MODE", "serve"),
    );
    assert_eq!(
        launched.stderr,
        format!("tunable: cannot listen on echo=127.0.0.1:{port}: Address in use\n")
            .replace("Address in use", "Address already in use")
    );
    assert_failed_cleanly(&sandbox, &launched);
    let launched = launch(
        tunable(&sandbox)
            .env("LISTEN", "echo=127.0.0.1")
            .env("MODE", "serve"),
    );
    assert_eq!(
        launched.stderr,
        "tunable: cannot listen on echo=127.0.0.1: listen entry \"echo=127.0.0.1\": the address is HOST:PORT, [IPV6]:PORT or unix:PATH\n"
    );
}

/// `systemd-socket-activate` listening on `port` for the tunable example (which, by itself,
/// would bind `own_port`), passing the test's variables through.
fn socket_activate(
    sandbox: &Sandbox,
    port: u16,
    own_port: u16,
    detach: &str,
) -> std::process::Child {
    let mut command = sandbox.command_for("systemd-socket-activate");
    command
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg("--fdname=echo");
    for variable in [
        "DAEMON_TEST_SANDBOX",
        "PROBE_DIR",
        "TMPDIR",
        "MODE",
        "READY",
        "LISTEN",
        "DETACH",
        "SPAWN_ENV",
    ] {
        command.arg(format!("--setenv={variable}"));
    }
    command
        .arg(example("tunable"))
        .env("MODE", "serve")
        .env("READY", "manual")
        .env("LISTEN", format!("echo=127.0.0.1:{own_port}"))
        .env("DETACH", detach)
        .env("SPAWN_ENV", "1")
        .spawn()
        .expect("systemd-socket-activate (systemd) is installed")
}

#[test]
fn socket_activation_hands_the_socket_over_in_the_foreground_and_across_a_fork() {
    for detach in ["auto", "always"] {
        let sandbox = Sandbox::new("activated");
        let (port, own_port) = (free_port(), free_port());
        let mut activator = socket_activate(&sandbox, port, own_port, detach);
        let answer = ask(port, "activated");
        let daemon = sandbox.daemon_pid();
        assert_eq!(
            answer,
            format!("echo {daemon}: activated\n"),
            "detach={detach}"
        );
        match detach {
            // The process systemd-socket-activate became: no fork.
            "auto" => assert_eq!(daemon, activator.id() as i32),
            _ => assert_ne!(daemon, activator.id() as i32),
        }
        assert!(
            refused(own_port),
            "detach={detach}: it bound its own address too"
        );
        // Socket activation's variables were taken out: from the body's environment, and a
        // child's.
        for file in ["body.env", "child.env"] {
            let environment = fs::read_to_string(sandbox.path(file)).unwrap();
            assert!(environment.contains("PROBE_DIR="), "{file}: {environment}");
            for variable in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
                assert!(!environment.contains(variable), "{variable} in {file}");
            }
        }
        signal(daemon, libc::SIGTERM);
        wait_for_exit(daemon, GONE_TIMEOUT);
        let _ = activator.kill();
        let _ = activator.wait();
    }
}

#[test]
fn malformed_activation_variables_are_a_clear_error() {
    let sandbox = Sandbox::new("activation-bad");
    // LISTEN_PID names the launcher itself (the shell execs it), LISTEN_FDS is garbage.
    let launched = launch(
        sandbox
            .command_for("sh")
            .args(["-c", "LISTEN_PID=$$ LISTEN_FDS=many exec \"$0\""])
            .arg(example("tunable")),
    );
    assert_eq!(
        launched.stderr,
        "tunable: socket activation: LISTEN_FDS=many is not a number of descriptors\n"
    );
    let launched = launch(
        sandbox
            .command_for("sh")
            .args([
                "-c",
                "LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=a exec \"$0\" 3</dev/null 4</dev/null",
            ])
            .arg(example("tunable")),
    );
    assert_eq!(
        launched.stderr,
        "tunable: socket activation: LISTEN_FDNAMES=a names 1 descriptors, LISTEN_FDS=2\n"
    );
}

#[test]
fn the_activated_example_serves_by_itself() {
    let sandbox = Sandbox::new("activated-example");
    let port = free_port();
    launch(
        sandbox
            .command("activated")
            .env("ACTIVATED_PORT", port.to_string()),
    )
    .assert_started_quietly_or_announced();
    let daemon = read_pid(&sandbox.path("activated.pid"));
    assert_eq!(ask(port, "hi"), format!("echo {daemon}: hi\n"));
    signal(daemon, libc::SIGTERM);
    wait_for_exit(daemon, GONE_TIMEOUT);
}

// SPEC §7.4: PID 1 of a PID namespace.

/// The process of the sandbox that is `ns_pid` in its own PID namespace.
fn sandbox_process_as(sandbox: &Sandbox, ns_pid: i32) -> Option<i32> {
    sandbox
        .processes()
        .into_iter()
        .find(|&pid| namespace_pid(pid) == Some(ns_pid))
}

#[test]
fn as_pid_1_it_stays_an_init_that_reaps_orphans_forwards_signals_and_exits_with_the_service() {
    if !running_as_root(
        "as_pid_1_it_stays_an_init_that_reaps_orphans_forwards_signals_and_exits_with_the_service",
    ) {
        return;
    }
    let sandbox = Sandbox::new("pid-1");
    let log = sandbox.path("out.log");
    let start = Instant::now();
    let unshare = sandbox
        .command_for("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(example("tunable"))
        .env("MODE", "orphan-and-child")
        .env("READY", "manual")
        .env("STDOUT", &log)
        .spawn()
        .unwrap();
    // The body's own child: Command::status still gets its status.
    wait_until(
        "the body collected its child's status",
        LAUNCH_TIMEOUT,
        || fs::read_to_string(&log).is_ok_and(|log| log.contains("child status Ok(Some(7))")),
    );
    let init = sandbox_process_as(&sandbox, 1)
        .expect("PID 1 of the namespace runs (it stayed in the foreground)");
    let service = sandbox_process_as(&sandbox, 2).expect("the service runs as PID 2");
    // The pidfile names the service, as its namespace sees it.
    assert_eq!(read_pid(&sandbox.pidfile()), 2);
    // The orphan's child ended 100 ms after the body started: reparented to PID 1, reaped.
    std::thread::sleep(Duration::from_millis(300));
    let children = fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap();
    let children: Vec<i32> = children
        .split_whitespace()
        .map(|pid| pid.parse().unwrap())
        .collect();
    assert_eq!(
        children,
        vec![service],
        "PID 1 has other children (unreaped orphans?)"
    );
    // No zombie anywhere in the namespace.
    let zombies: Vec<i32> = processes_in_namespace_of(init)
        .into_iter()
        .filter(|&pid| {
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
        })
        .collect();
    assert!(zombies.is_empty(), "zombies in the namespace: {zombies:?}");
    // SIGTERM to PID 1 reaches the service, which removes its pidfile and exits 0; PID 1
    // exits with its status.
    signal(init, libc::SIGTERM);
    let done = finish(unshare, start);
    assert_eq!(done.code(), Some(0), "{done:?}");
    assert!(!sandbox.pidfile().exists(), "pidfile left");
}

// SPEC §7.5: inetd.

#[test]
fn a_connection_on_stdin_is_served_in_the_foreground_and_a_socketpair_is_not_inetd() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    let sandbox = Sandbox::new("inetd");
    // inetd's nowait mode: the accepted TCP connection is descriptors 0 and 1.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (connection, _) = listener.accept().unwrap();
    let mut service = tunable(&sandbox)
        .env("MODE", "inetd")
        .stdin(OwnedFd::from(connection.try_clone().unwrap()))
        .stdout(OwnedFd::from(connection))
        .spawn()
        .unwrap();
    client.set_read_timeout(Some(GONE_TIMEOUT)).unwrap();
    writeln!(client, "over inetd").unwrap();
    // Its stdout is the connection: first what the body prints at start, then the answer.
    let mut reader = BufReader::new(&client);
    let (mut greeting, mut answer) = (String::new(), String::new());
    reader.read_line(&mut greeting).unwrap();
    reader.read_line(&mut answer).unwrap();
    assert_eq!(greeting, format!("up {}\n", service.id()));
    assert_eq!(answer, format!("inetd {}: over inetd\n", service.id()));
    let _ = service.wait();
    // A socketpair on stdin is no inetd's: the service forks as usual.
    let sandbox = Sandbox::new("socketpair");
    let (ours, theirs) = UnixStream::pair().unwrap();
    let launched = launch(tunable(&sandbox).stdin(OwnedFd::from(theirs)));
    launched.assert_started();
    assert_ne!(sandbox.daemon_pid(), 0);
    drop(ours);
}

#[test]
fn a_listening_socket_on_stdin_is_listener_stdin() {
    // inetd's "wait" mode: the service gets the listening socket and accepts itself.
    let sandbox = Sandbox::new("inetd-wait");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut service = tunable(&sandbox)
        .env("MODE", "serve")
        .env("READY", "manual")
        .env("SOCKET_NAME", "stdin")
        .stdin(OwnedFd::from(listener))
        .spawn()
        .unwrap();
    let pid = service.id() as i32;
    assert_eq!(ask(port, "waited"), format!("echo {pid}: waited\n"));
    assert_eq!(read_pid(&sandbox.pidfile()), pid, "in the foreground");
    signal(pid, libc::SIGTERM);
    let _ = service.wait();
}

// SPEC §8: `unit` and `unit socket`.

#[test]
fn the_generated_units_pass_systemd_analyze_verify() {
    let sandbox = Sandbox::new("units");
    let port = free_port();
    let (service, socket) = activated_units(&sandbox, port);
    let program = example("activated");
    for line in [
        "Type=notify".to_owned(),
        format!("ExecStart={} run", program.display()),
        "ExecReload=/bin/kill -HUP $MAINPID".to_owned(),
        "UMask=0022".to_owned(),
        format!("Environment=\"ACTIVATED_PORT={port}\""),
        format!("Environment=\"TMPDIR={}\"", sandbox.dir.display()),
        "Restart=on-failure".to_owned(),
    ] {
        assert!(
            service.lines().any(|l| l == line),
            "no {line:?} in\n{service}"
        );
    }
    assert!(!service.contains("PIDFile="), "{service}");
    for line in [
        format!("ListenStream=127.0.0.1:{port}"),
        "FileDescriptorName=echo".to_owned(),
        "Service=activated.service".to_owned(),
    ] {
        assert!(
            socket.lines().any(|l| l == line),
            "no {line:?} in\n{socket}"
        );
    }
    fs::write(sandbox.path("activated.service"), &service).unwrap();
    fs::write(sandbox.path("activated.socket"), &socket).unwrap();
    let verified = launch(
        sandbox
            .command_for("systemd-analyze")
            .args(["verify", "--man=no", "--recursive-errors=yes"])
            .arg(sandbox.path("activated.service"))
            .arg(sandbox.path("activated.socket")),
    );
    assert_eq!(
        (verified.code(), verified.stderr.as_str()),
        (Some(0), ""),
        "{verified:?}"
    );
    // A program without `listen` has no socket unit, and says so.
    let none = launch(sandbox.command("lifecycle").args(["unit", "socket"]));
    assert_eq!(none.code(), Some(6), "{none:?}");
    assert_eq!(
        none.stderr,
        "lifecycle: it has no `listen` entries, so no socket unit\n"
    );
}

#[test]
fn a_process_already_running_as_the_target_user_goes_on() {
    if !running_as_root("a_process_already_running_as_the_target_user_goes_on") {
        return;
    }
    // systemd's `User=nobody` and the attribute's `user = "nobody"` do not fight.
    let (uid, gid, _) = ids_of("nobody");
    let sandbox = Sandbox::new("already-user");
    fs::set_permissions(
        &sandbox.dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut command = sandbox.command_for(sandbox.copy_example("tunable"));
    command.env("USER_NAME", "nobody");
    run_as(&mut command, uid, gid, None);
    launch(&mut command).assert_started();
    let pid = sandbox.daemon_pid();
    assert_eq!(
        status(pid)["Uid"].split_whitespace().next(),
        Some(uid.to_string().as_str())
    );
}

#[test]
fn the_activated_example_under_systemd_socket_activate_and_as_pid_1() {
    // Under systemd-socket-activate, with the `run` command: it answers on the socket it was
    // given, named by --fdname.
    let sandbox = Sandbox::new("activated-sa");
    let (port, own_port) = (free_port(), free_port());
    let mut activator = sandbox
        .command_for("systemd-socket-activate")
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg("--fdname=echo")
        .args(["--setenv=DAEMON_TEST_SANDBOX", "--setenv=TMPDIR"])
        .arg("--setenv=ACTIVATED_PORT")
        .arg(example("activated"))
        .arg("run")
        .env("ACTIVATED_PORT", own_port.to_string())
        .spawn()
        .unwrap();
    let pid = activator.id() as i32;
    assert_eq!(ask(port, "socket"), format!("echo {pid}: socket\n"));
    assert!(refused(own_port), "it bound its own address too");
    signal(pid, libc::SIGTERM);
    let _ = activator.wait();
    if !running_as_root("the_activated_example_under_systemd_socket_activate_and_as_pid_1") {
        return;
    }
    // As PID 1 of a PID namespace (a container's entrypoint): it stays up and serves.
    let sandbox = Sandbox::new("activated-pid-1");
    let port = free_port();
    let start = Instant::now();
    let unshare = sandbox
        .command_for("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(example("activated"))
        .env("ACTIVATED_PORT", port.to_string())
        .spawn()
        .unwrap();
    // The service is PID 2 of the namespace; PID 1 is its init.
    assert_eq!(ask(port, "container"), "echo 2: container\n");
    let init = sandbox_process_as(&sandbox, 1).expect("PID 1 runs");
    signal(init, libc::SIGTERM);
    let done = finish(unshare, start);
    assert_eq!(done.code(), Some(0), "{done:?}");
}

#[test]
fn a_stale_unix_socket_is_replaced_and_a_live_one_or_another_file_is_not() {
    use std::os::unix::net::UnixListener;
    let sandbox = Sandbox::new("listen-unix");
    let path = sandbox.path("echo.sock");
    let start = |sandbox: &Sandbox| {
        launch(tunable(sandbox).env("LISTEN", format!("echo=unix:{}", path.display())))
    };
    // Someone listens there: left alone, and the start says so.
    let live = UnixListener::bind(&path).unwrap();
    let launched = start(&sandbox);
    assert_eq!(
        launched.stderr,
        format!(
            "tunable: cannot listen on echo=unix:{}: Address already in use\n",
            path.display()
        )
    );
    assert_failed_cleanly(&sandbox, &launched);
    // The listener is gone, its file stays (a daemon that was killed): replaced.
    drop(live);
    assert!(path.exists());
    start(&sandbox).assert_started();
    let daemon = sandbox.daemon_pid();
    assert!(
        std::os::unix::net::UnixStream::connect(&path).is_ok(),
        "not listening"
    );
    signal(daemon, libc::SIGTERM);
    wait_for_exit(daemon, GONE_TIMEOUT);
    // A regular file at the path is never removed.
    let _ = fs::remove_file(&path);
    fs::write(&path, "precious").unwrap();
    let launched = start(&sandbox);
    assert_eq!(launched.code(), Some(1), "{launched:?}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn socket_activation_for_pid_1_reaches_the_service_under_its_init() {
    if !running_as_root("socket_activation_for_pid_1_reaches_the_service_under_its_init") {
        return;
    }
    // As podman does for a container: LISTEN_PID=1. systemd-socket-activate, PID 1 of a new
    // PID namespace, becomes the service on the first connection; the service, split off as
    // PID 2 by its init, must still take the socket (and not bind its own address).
    let sandbox = Sandbox::new("activated-pid-1-listen");
    let (port, own_port) = (free_port(), free_port());
    let start = Instant::now();
    let unshare = sandbox
        .command_for("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg("systemd-socket-activate")
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg("--fdname=echo")
        .args([
            "--setenv=DAEMON_TEST_SANDBOX",
            "--setenv=PROBE_DIR",
            "--setenv=TMPDIR",
        ])
        .args(["--setenv=MODE", "--setenv=READY", "--setenv=LISTEN"])
        .arg(example("tunable"))
        .env("MODE", "serve")
        .env("READY", "manual")
        .env("LISTEN", format!("echo=127.0.0.1:{own_port}"))
        .spawn()
        .unwrap();
    assert_eq!(ask(port, "podman"), "echo 2: podman\n");
    assert!(refused(own_port), "it bound its own address");
    let init = sandbox_process_as(&sandbox, 1).expect("PID 1 runs");
    signal(init, libc::SIGTERM);
    let done = finish(unshare, start);
    assert_eq!(done.code(), Some(0), "{done:?}");
}
