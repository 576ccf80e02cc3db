//! What every daemon test needs: its own directory, the example binaries, launches with a
//! deadline, hostile launch conditions, and reading the real process out of /proc.
//!
//! The test process makes itself a child subreaper (prctl(2)), so the daemons it starts are
//! reparented to it: it can collect their exit status and leaves no zombie. Every process a
//! test starts carries `DAEMON_TEST_SANDBOX=<its directory>` in its environment; dropping the
//! [`Sandbox`] kills and reaps every process that carries it, also when the test failed.

#![allow(dead_code)] // each test file uses a part

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

/// How long any single launch may take before the test fails.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a daemon may take to go away after it was told to.
pub const GONE_TIMEOUT: Duration = Duration::from_secs(5);

const SANDBOX_VAR: &str = "DAEMON_TEST_SANDBOX";

static SETUP: Once = Once::new();

fn setup() {
    SETUP.call_once(|| {
        // SAFETY: prctl with integer arguments only.
        let ret = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(
            ret,
            0,
            "PR_SET_CHILD_SUBREAPER: {}",
            std::io::Error::last_os_error()
        );
    });
}

/// The path of an example binary, built by `cargo test` (which builds every example) or,
/// when only this test target was built, by one `cargo build --examples`.
pub fn example(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    let dir = std::env::current_exe()
        .expect("current_exe")
        .parent() // deps
        .and_then(Path::parent) // debug or release
        .expect("target directory")
        .join("examples");
    let path = dir.join(name);
    // Once per test process: `cargo test --test daemon` alone does not rebuild the examples,
    // and a stale example binary would test old code. A no-op when they are up to date.
    {
        BUILD.call_once(|| {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let release = dir.parent().and_then(Path::file_name) == Some("release".as_ref());
            let status = Command::new(cargo)
                .args(["build", "--examples", "--quiet"])
                .args(release.then_some("--release"))
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build --examples");
            assert!(status.success(), "cargo build --examples failed");
        });
    }
    assert!(
        path.exists(),
        "example binary {} is missing",
        path.display()
    );
    path
}

/// A test's own directory; on drop, every process started in it is killed and reaped, and
/// the directory removed.
pub struct Sandbox {
    pub dir: PathBuf,
    /// Every daemon pid read from the pidfile, to reap at the end.
    daemons: std::cell::RefCell<Vec<i32>>,
}

impl Sandbox {
    pub fn new(test: &str) -> Sandbox {
        setup();
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "daemon-test-{}-{}-{test}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create sandbox");
        Sandbox {
            dir,
            daemons: Default::default(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn pidfile(&self) -> PathBuf {
        self.path("probe.pid")
    }

    /// A command for an example binary: `PROBE_DIR` is this sandbox, stdin is `/dev/null`,
    /// stdout and stderr are captured.
    pub fn command(&self, example_name: &str) -> Command {
        self.command_for(example(example_name))
    }

    /// A copy of an example binary inside the sandbox, executable by anyone: for launches as
    /// another user, who may not reach the build directory (a checkout under /root).
    pub fn copy_example(&self, name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let copy = self.path(&format!("{name}.bin"));
        fs::copy(example(name), &copy).expect("copy the example");
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod the copy");
        copy
    }

    /// Like [`Sandbox::command`], for any program (a wrapper such as strace).
    pub fn command_for(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env(SANDBOX_VAR, &self.dir)
            .env("PROBE_DIR", &self.dir)
            .env("TMPDIR", &self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// The processes whose environment names this sandbox (the launchers, their children,
    /// the daemons), zombies excluded.
    pub fn processes(&self) -> Vec<i32> {
        let needle = format!("{SANDBOX_VAR}={}", self.dir.display()).into_bytes();
        let mut pids = Vec::new();
        for entry in fs::read_dir("/proc").expect("read /proc").flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(environ) = fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ
                .split(|&b| b == 0)
                .any(|var| var == needle.as_slice())
                && is_alive(pid)
            {
                pids.push(pid);
            }
        }
        pids
    }

    /// Reads the pid in the pidfile.
    pub fn daemon_pid(&self) -> i32 {
        let pid = read_pid(&self.pidfile());
        self.daemons.borrow_mut().push(pid);
        pid
    }
}

impl Drop for Sandbox {
    /// Must not panic: it also runs while a failed test unwinds.
    fn drop(&mut self) {
        // Only processes that carry this sandbox in their environment are killed: a pid read
        // earlier may have been reaped and reused since.
        let running = self.processes();
        for &pid in &running {
            // SAFETY: kill takes integers only.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // Reap them and the daemons that ended by themselves (this subreaper's children),
        // without waiting forever; a pid that is not our child (-1) is not waited for.
        let mut pids = running;
        pids.extend(self.daemons.borrow().iter().copied());
        let deadline = Instant::now() + GONE_TIMEOUT;
        for pid in pids {
            while Instant::now() < deadline {
                let mut raw = 0;
                // SAFETY: `raw` is valid for one write.
                let reaped = unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) };
                if reaped != 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub fn read_pid(pidfile: &Path) -> i32 {
    let content =
        fs::read_to_string(pidfile).unwrap_or_else(|e| panic!("read {}: {e}", pidfile.display()));
    content
        .strip_suffix('\n')
        .and_then(|line| line.parse().ok())
        .unwrap_or_else(|| panic!("pidfile holds {content:?}, not `PID\\n`"))
}

/// What a finished launcher said.
#[derive(Debug)]
pub struct Launch {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Launch {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn assert_started(&self) {
        assert_eq!(self.code(), Some(0), "launcher failed: {self:?}");
        assert_eq!(self.stderr, "", "launcher printed on success");
    }

    /// Like [`Launch::assert_started`], allowing the `start` command's `NAME: started (pid N)`.
    pub fn assert_started_quietly_or_announced(&self) {
        self.assert_started();
        assert!(
            self.stdout.is_empty() || self.stdout.contains(": started (pid "),
            "{self:?}"
        );
    }
}

/// Spawns a launcher and waits for it, killing it and failing the test after
/// [`LAUNCH_TIMEOUT`].
pub fn launch(command: &mut Command) -> Launch {
    let start = Instant::now();
    let child = spawn(command);
    finish(child, start)
}

/// Spawns, again for a moment while the program is "busy": a binary a test just copied
/// (`Sandbox::copy_example`) fails to execute while another test thread's fork still holds
/// the copy's write descriptor, between that fork and its exec (ETXTBSY).
pub fn spawn(command: &mut Command) -> Child {
    let deadline = Instant::now() + GONE_TIMEOUT;
    loop {
        match command.spawn() {
            Err(error)
                if error.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other.expect("spawn launcher"),
        }
    }
}

pub fn finish(mut child: Child, start: Instant) -> Launch {
    let deadline = start + LAUNCH_TIMEOUT;
    // Read the pipes on threads: a launcher that fills a pipe must not hang the test.
    let out = read_on_a_thread(child.stdout.take());
    let err = read_on_a_thread(child.stderr.take());
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("launcher still running after {LAUNCH_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    // The pipes end when every process that holds them has closed them: the launcher, and
    // whatever it started. A daemon that kept one would hang a plain join; this one fails.
    let deadline = Instant::now() + GONE_TIMEOUT;
    let collect = |pipe: std::sync::mpsc::Receiver<String>, name: &str| {
        pipe.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| {
                panic!("the launcher's {name} is still open {GONE_TIMEOUT:?} after it exited (a process it started keeps it)")
            })
    };
    Launch {
        status,
        stdout: collect(out, "stdout"),
        stderr: collect(err, "stderr"),
        elapsed,
    }
}

/// Reads a pipe to its end on a thread of its own; the text comes through the channel.
fn read_on_a_thread(pipe: Option<impl Read + Send + 'static>) -> std::sync::mpsc::Receiver<String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        let _ = sender.send(text);
    });
    receiver
}

/// The fields of /proc/PID/stat that matter here.
#[derive(Debug)]
pub struct Stat {
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    pub tty_nr: i32,
    pub tpgid: i32,
}

pub fn stat(pid: i32) -> Stat {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    let rest = &text[text.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| fields[i].parse::<i32>().expect("stat field");
    Stat {
        state: fields[0].chars().next().unwrap_or('?'),
        ppid: num(1),
        pgrp: num(2),
        session: num(3),
        tty_nr: num(4),
        tpgid: num(5),
    }
}

/// The lines of /proc/PID/status, by name.
pub fn status(pid: i32) -> BTreeMap<String, String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"))
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.trim().to_owned()))
        .collect()
}

/// The open descriptors of a process and what they point at.
pub fn fds(pid: i32) -> BTreeMap<i32, PathBuf> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .flatten()
        .filter_map(|entry| {
            let fd = entry.file_name().to_str()?.parse().ok()?;
            Some((fd, fs::read_link(entry.path()).ok()?))
        })
        .collect()
}

pub fn cwd(pid: i32) -> PathBuf {
    fs::read_link(format!("/proc/{pid}/cwd")).expect("read /proc/PID/cwd")
}

/// Alive and not a zombie.
pub fn is_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => text.rfind(')').and_then(|i| text[i + 2..].chars().next()) != Some('Z'),
        Err(_) => false,
    }
}

/// Waits for a process to be gone. For a daemon reparented to this (subreaper) process it
/// reaps it and returns its exit status.
pub fn wait_for_exit(pid: i32, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut raw = 0;
        // SAFETY: `raw` is valid for one write.
        let reaped = unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) };
        if reaped == pid {
            return Some(ExitStatus::from_raw(raw));
        }
        if reaped == -1 && !is_alive(pid) {
            return None; // not our child, and gone
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} still there after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until `condition` holds, failing the test after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether some open file description holds a lock on `path` (we try to take it, and give
/// it back at once if we got it).
pub fn is_locked(path: &Path) -> bool {
    let file = fs::File::open(path).expect("open pidfile");
    // SAFETY: flock on a descriptor we own.
    let ret = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if ret == 0 {
        return false; // closing `file` releases it
    }
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EWOULDBLOCK)
    );
    true
}

pub fn signal(pid: i32, signal: libc::c_int) {
    // SAFETY: kill takes integers only.
    let ret = unsafe { libc::kill(pid, signal) };
    assert_eq!(ret, 0, "kill({pid}, {signal})");
}

/// Sends SIGTERM to a daemon reparented to this (subreaper) process, reaps it, and asserts
/// that it exited 0; its exit status.
pub fn terminate(pid: i32) -> ExitStatus {
    signal(pid, libc::SIGTERM);
    let status = wait_for_exit(pid, GONE_TIMEOUT).expect("our child");
    assert_eq!(status.code(), Some(0), "{status:?}");
    status
}

/// A signal number as a bit of the /proc/PID/status masks.
pub fn bit(signal: libc::c_int) -> u64 {
    1 << (signal - 1)
}

pub fn mask(status: &BTreeMap<String, String>, key: &str) -> u64 {
    u64::from_str_radix(&status[key], 16).expect("hex mask")
}

/// Launch conditions a careless parent leaves behind.
pub struct Hostile {
    /// Descriptors to leak (open, no close-on-exec) into the launcher.
    pub leak_fds: Vec<RawFd>,
    /// Signals to block in the launcher's mask.
    pub block: Vec<libc::c_int>,
    /// Signals whose disposition is "ignore" in the launcher.
    pub ignore: Vec<libc::c_int>,
    /// The launcher's umask.
    pub umask: Option<libc::mode_t>,
    /// The launcher's soft and hard RLIMIT_NOFILE.
    pub nofile: Option<u64>,
}

impl Hostile {
    pub fn apply(self, command: &mut Command) {
        let source = fs::File::open("/dev/null").expect("open /dev/null");
        let Hostile {
            leak_fds,
            block,
            ignore,
            umask,
            nofile,
        } = self;
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // system calls on values prepared before the fork.
        unsafe {
            command.pre_exec(move || {
                if let Some(limit) = nofile {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for &fd in &leak_fds {
                    // dup2 leaves the new descriptor without FD_CLOEXEC: it survives exec.
                    if libc::dup2(source.as_raw_fd(), fd) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                for &signal in &block {
                    libc::sigaddset(&mut set, signal);
                }
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                for &signal in &ignore {
                    libc::signal(signal, libc::SIG_IGN);
                }
                if let Some(mask) = umask {
                    libc::umask(mask);
                }
                Ok(())
            });
        }
    }
}

/// A pseudo-terminal whose slave becomes the controlling terminal of the launched process,
/// which is made the leader of a new session: what a login shell's `exec mysvc` or
/// `ssh -t host mysvc` looks like.
pub struct Pty {
    pub master: Option<fs::File>,
    slave: fs::File,
}

impl Pty {
    pub fn open() -> Pty {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty writes two descriptors; the name, termios and winsize are not used.
        let ret = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(ret, 0, "openpty: {}", std::io::Error::last_os_error());
        use std::os::fd::FromRawFd;
        // SAFETY: openpty returned two fresh descriptors that we now own.
        let (master, slave) =
            unsafe { (fs::File::from_raw_fd(master), fs::File::from_raw_fd(slave)) };
        for fd in [master.as_raw_fd(), slave.as_raw_fd()] {
            // SAFETY: F_SETFD with an integer argument.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        Pty {
            master: Some(master),
            slave,
        }
    }

    /// Makes `command` run as the session leader of this terminal, with stdio on it.
    pub fn attach(&self, command: &mut Command) {
        let tty = |file: &fs::File| Stdio::from(file.try_clone().expect("dup pty"));
        command
            .stdin(tty(&self.slave))
            .stdout(tty(&self.slave))
            .stderr(tty(&self.slave));
        // SAFETY: setsid and ioctl are async-signal-safe; stdin is the slave by now.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Closes the master side: the kernel hangs the terminal up (SIGHUP to its session).
    pub fn hang_up(&mut self) {
        self.master.take();
    }

    /// Reads what is on the terminal without blocking for long.
    pub fn drain(&mut self) -> String {
        let Some(master) = &self.master else {
            return String::new();
        };
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let mut pollfd = libc::pollfd {
                fd: master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pollfd, 1, 50) } <= 0 {
                break;
            }
            // SAFETY: `buf` is valid for writes of its length.
            let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            text.extend_from_slice(&buf[..n as usize]);
        }
        String::from_utf8_lossy(&text).into_owned()
    }
}

/// Everything a correctly started daemon shows in /proc (SPEC §3), checked at once.
pub struct Expect {
    pub umask: &'static str,
    pub cwd: PathBuf,
    /// Descriptor → target for 0, 1, 2 and any kept descriptor.
    pub fds: Vec<(RawFd, PathBuf)>,
    pub pidfile: PathBuf,
    /// The directories of the log files, which the daemon keeps open (`O_PATH`) to reopen
    /// the logs on SIGHUP.
    pub log_dirs: Vec<PathBuf>,
    /// Sessions the daemon must not be in (the test's, the launcher's).
    pub foreign_sessions: Vec<i32>,
}

impl Expect {
    /// The probe example as started in `sandbox`: umask 027, cwd `/`, stdin on /dev/null,
    /// stdout and stderr on its two logs, not in this test's session.
    pub fn probe(sandbox: &Sandbox) -> Expect {
        Expect {
            umask: "0027",
            cwd: PathBuf::from("/"),
            fds: vec![
                (0, PathBuf::from("/dev/null")),
                (1, sandbox.path("stdout.log")),
                (2, sandbox.path("stderr.log")),
            ],
            pidfile: sandbox.pidfile(),
            log_dirs: vec![sandbox.dir.clone()],
            foreign_sessions: vec![own_session()],
        }
    }
}

pub fn assert_proper_daemon(pid: i32, expect: &Expect) {
    let stat = stat(pid);
    assert!(is_alive(pid), "daemon {pid} is not running");
    assert_ne!(
        stat.session, pid,
        "the daemon is a session leader: it could acquire a terminal"
    );
    assert_eq!(
        stat.pgrp, stat.session,
        "the daemon is not in its session's first process group"
    );
    for foreign in &expect.foreign_sessions {
        assert_ne!(
            stat.session, *foreign,
            "the daemon is still in a foreign session"
        );
    }
    assert_eq!(stat.tty_nr, 0, "the daemon has a controlling terminal");
    assert_eq!(stat.tpgid, -1, "the daemon has a controlling terminal");

    let status = status(pid);
    assert_eq!(status["Umask"], expect.umask, "umask");
    assert_eq!(status["Threads"], "1");
    assert_eq!(mask(&status, "SigBlk"), 0, "the signal mask is not empty");
    let ignored = mask(&status, "SigIgn");
    let expected =
        bit(libc::SIGPIPE) | bit(libc::SIGTSTP) | bit(libc::SIGTTIN) | bit(libc::SIGTTOU);
    assert_eq!(
        ignored, expected,
        "ignored signals: {ignored:#x}, expected PIPE TSTP TTIN TTOU only ({expected:#x})"
    );
    let caught = mask(&status, "SigCgt");
    // TERM and INT: shutdown; HUP: reopen the logs, reload; SEGV and BUS: Rust's
    // stack-overflow report, kept.
    let handled = bit(libc::SIGTERM)
        | bit(libc::SIGINT)
        | bit(libc::SIGHUP)
        | bit(libc::SIGSEGV)
        | bit(libc::SIGBUS);
    assert_eq!(
        caught, handled,
        "caught signals: {caught:#x}, expected TERM INT HUP SEGV BUS ({handled:#x})"
    );

    assert_eq!(cwd(pid), expect.cwd, "working directory");

    let mut actual = fds(pid);
    let pidfile_fds: Vec<RawFd> = actual
        .iter()
        .filter(|(_, target)| *target == &expect.pidfile)
        .map(|(fd, _)| *fd)
        .collect();
    assert_eq!(
        pidfile_fds.len(),
        1,
        "the daemon should hold the pidfile open once: {actual:?}"
    );
    actual.remove(&pidfile_fds[0]);
    for dir in &expect.log_dirs {
        let held: Vec<RawFd> = actual
            .iter()
            .filter(|(fd, target)| *target == dir && **fd > 2)
            .map(|(fd, _)| *fd)
            .collect();
        assert_eq!(held.len(), 1, "log directory {dir:?} held once: {actual:?}");
        actual.remove(&held[0]);
    }
    let expected: BTreeMap<RawFd, PathBuf> = expect.fds.iter().cloned().collect();
    assert_eq!(actual, expected, "open descriptors besides the pidfile");

    assert_eq!(read_pid(&expect.pidfile), pid, "pidfile content");
    assert!(is_locked(&expect.pidfile), "the pidfile is not locked");
}

/// The current session of this test process.
pub fn own_session() -> i32 {
    // SAFETY: getsid(0) takes no pointer.
    unsafe { libc::getsid(0) }
}

/// Whether this test runs as root; prints why it skips otherwise.
pub fn running_as_root(test: &str) -> bool {
    // SAFETY: no pointers.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        skip_or_fail(&format!("{test} needs root (CI runs as root)"));
    }
    root
}

/// Says that a test is skipped; with `DAEMON_TESTS_SKIP=fail` in the environment (as CI
/// sets it), fails instead, so that a machine that cannot run a test does not pass quietly.
pub fn skip_or_fail(why: &str) {
    if std::env::var("DAEMON_TESTS_SKIP").is_ok_and(|mode| mode == "fail") {
        panic!("cannot run: {why} (DAEMON_TESTS_SKIP=fail)");
    }
    eprintln!("skipped: {why}");
}

/// Makes `command` run as `uid`/`gid` (with only that group), as an unprivileged user would
/// start it; with `nproc`, also under that RLIMIT_NPROC.
pub fn run_as(command: &mut Command, uid: u32, gid: u32, nproc: Option<u64>) {
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls.
    unsafe {
        command.pre_exec(move || {
            if let Some(limit) = nproc {
                let rlimit = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_NPROC, &rlimit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::setgroups(1, &gid) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The ids of a user, from the user database (`id`).
pub fn ids_of(user: &str) -> (u32, u32, Vec<u32>) {
    let id = |flag: &str| {
        let out = Command::new("id")
            .arg(flag)
            .arg(user)
            .output()
            .expect("run id");
        assert!(
            out.status.success(),
            "id {flag} {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|n| n.parse::<u32>().expect("a number"))
            .collect::<Vec<_>>()
    };
    (id("-u")[0], id("-g")[0], id("-G"))
}

/// A system user with two supplementary groups, created once (as root) if missing:
/// `daemon-rs-test`, primary group `nogroup`, groups `daemon-rs-a` and `daemon-rs-b`.
pub fn user_with_groups() -> &'static str {
    static CREATE: Once = Once::new();
    CREATE.call_once(|| {
        let have = |what: &str, name: &str| {
            Command::new("getent")
                .args([what, name])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        for group in ["daemon-rs-a", "daemon-rs-b"] {
            if !have("group", group) {
                let _ = Command::new("groupadd").args(["--system", group]).status();
            }
        }
        if !have("passwd", "daemon-rs-test") {
            let _ = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--no-user-group",
                    "--gid",
                    "nogroup",
                ])
                .args([
                    "--groups",
                    "daemon-rs-a,daemon-rs-b",
                    "--shell",
                    "/usr/sbin/nologin",
                    "daemon-rs-test",
                ])
                .status();
        }
        assert!(
            have("passwd", "daemon-rs-test"),
            "could not create the user daemon-rs-test"
        );
    });
    "daemon-rs-test"
}

/// The numbers of a `Uid:`/`Gid:`/`Groups:` line of /proc/PID/status.
pub fn id_line(status: &BTreeMap<String, String>, key: &str) -> Vec<u32> {
    status[key]
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect()
}

/// Starts `count` launchers of the probe at once; asserts that exactly one started a daemon
/// and that every other one said `probe: already running (pid N)` with its pid. Returns it.
pub fn race_launchers(sandbox: &Sandbox, count: usize) -> i32 {
    let start = Instant::now();
    let children: Vec<_> = (0..count)
        .map(|_| {
            sandbox
                .command("probe")
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let launches: Vec<Launch> = children
        .into_iter()
        .map(|child| finish(child, start))
        .collect();
    let winners = launches
        .iter()
        .filter(|launch| launch.code() == Some(0))
        .count();
    assert_eq!(winners, 1, "{launches:#?}");
    let pid = sandbox.daemon_pid();
    for loser in launches.iter().filter(|launch| launch.code() != Some(0)) {
        assert_eq!(loser.code(), Some(1), "{loser:?}");
        assert_eq!(
            loser.stderr,
            format!("probe: already running (pid {pid})\n")
        );
    }
    pid
}

/// A failed start: exit status 1, nothing on stdout, no process and no pidfile left.
pub fn assert_failed_cleanly(sandbox: &Sandbox, launched: &Launch) {
    assert_eq!(launched.code(), Some(1), "{launched:?}");
    assert_eq!(launched.stdout, "", "{launched:?}");
    assert!(
        sandbox.processes().is_empty(),
        "left running: {:?}",
        sandbox.processes()
    );
    assert!(!sandbox.pidfile().exists(), "pidfile left behind");
}

/// The hard RLIMIT_NOFILE of this process, at most 2^20.
pub fn nofile_hard_limit() -> u64 {
    let mut rlimit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rlimit` is valid for one write.
    let ret = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlimit) };
    assert_eq!(ret, 0);
    rlimit.rlim_max.min(1 << 20)
}

/// The soft and hard RLIMIT_CORE of a process, as /proc/PID/limits writes them.
pub fn core_limit(pid: i32) -> [String; 2] {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).expect("read /proc/PID/limits");
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max core file size"))
        .expect("core line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    [fields[4].to_owned(), fields[5].to_owned()]
}

/// The builder example most tests start, configured by the environment.
pub fn tunable(sandbox: &Sandbox) -> Command {
    sandbox.command("tunable")
}

/// Starts the tokio_tunable example on a free port, with `extra` in its environment; its
/// pid and port.
pub fn start_tokio_tunable(sandbox: &Sandbox, extra: &[(&str, &str)]) -> (i32, u16) {
    let port = free_port();
    let mut command = sandbox.command("tokio_tunable");
    command.env("PORT", port.to_string());
    for (name, value) in extra {
        command.env(name, value);
    }
    launch(&mut command).assert_started();
    (sandbox.daemon_pid(), port)
}

/// The activated example's units, generated by the example itself, with the sandbox's
/// variables in their `Environment=` lines.
pub fn activated_units(sandbox: &Sandbox, port: u16) -> (String, String) {
    let print = |arguments: &[&str]| {
        let printed = launch(
            sandbox
                .command("activated")
                .env("ACTIVATED_PORT", port.to_string())
                .args(arguments),
        );
        assert_eq!(printed.code(), Some(0), "{printed:?}");
        printed.stdout
    };
    (print(&["unit"]), print(&["unit", "socket"]))
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Connects to `port` on loopback (retrying while nothing listens yet), sends a line,
/// returns the first line of the answer.
pub fn ask(port: u16, line: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let deadline = Instant::now() + LAUNCH_TIMEOUT;
    loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut stream) => {
                stream.set_read_timeout(Some(GONE_TIMEOUT)).unwrap();
                writeln!(stream, "{line}").unwrap();
                let mut answer = String::new();
                BufReader::new(stream).read_line(&mut answer).unwrap();
                return answer;
            }
            Err(error) => {
                assert!(Instant::now() < deadline, "connect to {port}: {error}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// The pid that answers on `port`: the activated and tunable examples say it in each
/// answer, `echo PID: LINE`.
pub fn answering_pid(port: u16) -> i32 {
    let answer = ask(port, "who");
    answer
        .strip_prefix("echo ")
        .and_then(|rest| rest.split(':').next()?.parse().ok())
        .unwrap_or_else(|| panic!("answer {answer:?}"))
}

/// Whether a connection to `port` on loopback is refused (nothing listens there), or accepted
/// (`false`). A connection that does not complete within 100 ms is not refused either: a
/// listener that no longer accepts, with its backlog full (of earlier probes), drops the
/// handshake, which a plain connect would retry only after a second. Another failure says
/// neither, for instance no local port free for the attempt (`EADDRNOTAVAIL`) while the other
/// tests leave thousands of closed connections behind: it is tried again, for up to a second.
pub fn refused(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        match std::net::TcpStream::connect_timeout(&address, Duration::from_millis(100)) {
            Ok(_) => return false,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return true,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(e) => {
                assert!(Instant::now() < deadline, "connect to {port}: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// The pid a process has in its own PID namespace (the last of `NSpid`).
pub fn namespace_pid(pid: i32) -> Option<i32> {
    status(pid)
        .get("NSpid")
        .and_then(|ids| ids.split_whitespace().last()?.parse().ok())
}

/// Every process (zombies included) in the PID namespace of `pid`, as the machine sees them.
pub fn processes_in_namespace_of(pid: i32) -> Vec<i32> {
    let namespace = fs::read_link(format!("/proc/{pid}/ns/pid")).expect("the namespace's process");
    fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|ns| ns == namespace))
        .collect()
}
