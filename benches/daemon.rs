//! The performance figures of the README, measured side by side in one run:
//!
//!     cargo bench --bench daemon
//!
//! It builds the examples it starts (release), compiles the C floors with `cc`, and prints,
//! for each figure, the median over interleaved rounds, the spread (10th to 90th percentile)
//! and the ratio to a baseline measured in the same run. Linux only; some figures need root
//! (they say so). BENCHMARKS.md explains each figure and holds one run.

#[path = "../tests/daemon/support.rs"]
mod support;
#[path = "../tests/daemon/systemd_boot.rs"]
mod systemd_boot;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Rounds of each start-up and stop measurement.
const ROUNDS: usize = 40;

fn main() {
    // The daemons the programs start end up as this process's children: reaped here.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    raise_hard_limit();
    let bench = Bench::prepare();
    println!("daemon-runtime benchmark: {}", machine());
    println!("(median; spread = 10th-90th percentile; ratio = median / baseline median)\n");
    bench.time_to_ready();
    bench.stop_latency();
    bench.overhead();
    bench.upgrade();
    bench.cycles();
    bench.under_systemd();
    let _ = fs::remove_dir_all(&bench.dir);
}

/// The machine, for the record.
fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

struct Bench {
    dir: PathBuf,
    examples: PathBuf,
    c_floor: PathBuf,
    c_stop: PathBuf,
}

/// A start-up program (`Bench::command` tells it its pidfile).
struct Starter {
    name: &'static str,
    program: PathBuf,
}

/// A way to stop the running daemon: the command to run.
type Stopper<'a> = Box<dyn Fn() -> Command + 'a>;

/// Launch conditions of the start-up figure.
#[derive(Clone, Copy)]
enum Condition {
    Clean,
    Inherited(usize),
    Limit(Option<u64>),
}

impl Condition {
    fn label(self) -> String {
        match self {
            Condition::Clean => "0 inherited descriptors".into(),
            Condition::Inherited(count) => format!("{count} inherited descriptors"),
            Condition::Limit(Some(limit)) => format!("RLIMIT_NOFILE {limit}"),
            Condition::Limit(None) => {
                format!("RLIMIT_NOFILE at its hard maximum ({})", hard_limit())
            }
        }
    }
}

/// As root, the hard `RLIMIT_NOFILE` goes up to what the kernel allows (`fs.nr_open`), so that
/// "the hard maximum" is the system's, and 100,000 descriptors can be inherited.
fn raise_hard_limit() {
    let Some(most) = fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|n| n.trim().parse::<u64>().ok())
    else {
        return;
    };
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is valid for one write, then read; a refused raise changes nothing.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_max = limit.rlim_max.max(most);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

fn hard_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is valid for one write; getrlimit is async-signal-safe.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    limit.rlim_max
}

fn set_soft_limit(limit: u64) {
    let hard = hard_limit();
    let limit = libc::rlimit {
        rlim_cur: limit.min(hard),
        rlim_max: hard,
    };
    // SAFETY: `limit` is a valid rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
}

impl Bench {
    fn prepare() -> Bench {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let built = Command::new(cargo)
            .args(["build", "--release", "--quiet", "--examples"])
            .current_dir(&root)
            .status()
            .expect("cargo build --release --examples");
        assert!(built.success(), "building the examples failed");
        let dir = std::env::temp_dir().join(format!("daemon-bench-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a directory for the benchmark");
        let compile = |source: &str, name: &str| {
            let output = dir.join(name);
            let compiled = Command::new("cc")
                .args(["-O2", "-o"])
                .arg(&output)
                .arg(root.join("benches").join(source))
                .status()
                .expect("cc");
            assert!(compiled.success(), "cc {source} failed");
            output
        };
        Bench {
            c_floor: compile("floor.c", "c-floor"),
            c_stop: compile("stop.c", "c-stop"),
            examples: target.join("release").join("examples"),
            dir,
        }
    }

    fn example(&self, name: &str) -> PathBuf {
        self.examples.join(name)
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.join("bench.pid")
    }

    /// A command with nothing on its standard descriptors and the pidfile in its environment.
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env("BENCH_PIDFILE", self.pidfile())
            .env("PIDFILE", self.pidfile())
            .env("TMPDIR", &self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    /// Figure 1: spawning the launcher to its exit, with the pidfile naming a live daemon.
    fn time_to_ready(&self) {
        let starters = [
            Starter {
                name: "Rust floor (raw libc)",
                program: self.example("bench_floor"),
            },
            Starter {
                name: "C floor",
                program: self.c_floor.clone(),
            },
            Starter {
                name: "daemon-runtime (#[daemon])",
                program: self.example("bench_ready"),
            },
            Starter {
                name: "daemonize 0.5",
                program: self.example("bench_daemonize"),
            },
            Starter {
                name: "fork 0.11 daemon()",
                program: self.example("bench_fork"),
            },
        ];
        let conditions = [
            Condition::Clean,
            Condition::Inherited(10_000),
            Condition::Limit(None),
        ];
        println!("1. Time to ready: launcher spawned -> exited, pidfile naming a live daemon");
        for condition in conditions {
            println!("   {}:", condition.label());
            let mut times: Vec<Vec<f64>> = vec![Vec::new(); starters.len()];
            let mut not_ready = vec![0; starters.len()];
            let _held = hold_descriptors(condition);
            for round in 0..ROUNDS {
                // Each round in another order: no program always follows the same one.
                for step in 0..starters.len() {
                    let index = (round + step) % starters.len();
                    let (elapsed, ready) = self.start_once(&starters[index], condition);
                    times[index].push(elapsed);
                    not_ready[index] += usize::from(!ready);
                }
            }
            let baseline = median(&times[0]);
            for (index, starter) in starters.iter().enumerate() {
                let note = match not_ready[index] {
                    0 => String::new(),
                    n => format!("  not ready when the launcher returned: {n}/{ROUNDS}"),
                };
                print_row(starter.name, &times[index], baseline, "ms", &note);
            }
        }
        // Descriptor closing does not depend on the limit; the cost per inherited descriptor is
        // shown against the Rust floor's.
        println!("   descriptor closing:");
        let ours = &starters[2];
        let wide = support::nofile_hard_limit();
        let inherited = (wide.saturating_sub(64) as usize).min(100_000);
        // Each set in the same rounds, alternating, so that the machine's drift hits all.
        let floor = &starters[0];
        let sets: [Vec<(&Starter, Condition)>; 2] = [
            vec![
                (ours, Condition::Limit(Some(1024))),
                (ours, Condition::Limit(None)),
            ],
            vec![
                (ours, Condition::Clean),
                (ours, Condition::Inherited(inherited)),
                (floor, Condition::Clean),
                (floor, Condition::Inherited(inherited)),
            ],
        ];
        for set in sets {
            let mut times = vec![Vec::new(); set.len()];
            for _ in 0..ROUNDS {
                for (slot, (starter, condition)) in set.iter().enumerate() {
                    let _held = hold_descriptors(*condition);
                    times[slot].push(self.start_once(starter, *condition).0);
                }
            }
            for (slot, ((starter, condition), these)) in set.iter().zip(&times).enumerate() {
                // Each against the same program's first condition.
                let baseline = median(&times[if slot < 2 { 0 } else { 2 }]);
                let label = format!("{}, {}", starter.name, condition.label());
                print_row(&label, these, baseline, "ms", "");
            }
        }
        println!();
    }

    /// One start: the launcher's time, and whether the pidfile named a live daemon then.
    fn start_once(&self, starter: &Starter, condition: Condition) -> (f64, bool) {
        let pidfile = self.pidfile();
        let _ = fs::remove_file(&pidfile);
        let mut command = self.command(&starter.program);
        if let Condition::Limit(limit) = condition {
            let limit = limit.unwrap_or_else(hard_limit);
            // SAFETY: the closure makes one async-signal-safe call between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: hard_limit(),
                    };
                    libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                    Ok(())
                });
            }
        }
        let started = Instant::now();
        let status = command.status().expect("spawn a launcher");
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        assert!(status.success(), "{} failed: {status:?}", starter.name);
        let ready = live_pid(&pidfile).is_some();
        // Then the daemon goes: at once, or once it has written its pidfile.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(pid) = live_pid(&pidfile) {
                kill_and_reap(pid);
                break;
            }
            assert!(Instant::now() < deadline, "{}: no daemon", starter.name);
            std::thread::sleep(Duration::from_micros(200));
        }
        reap_strays();
        (elapsed, ready)
    }

    /// Figure 2: `stop` to its return, against `status` of the same binary, and the others.
    fn stop_latency(&self) {
        println!("2. Stop latency: stopper spawned -> returned, the daemon gone");
        let ours = self.example("bench_ready");
        let stoppers: [(&str, Stopper); 4] = [
            (
                "C floor (pidfd_open, kill, poll)",
                Box::new(|| self.command(&self.c_stop)),
            ),
            (
                "daemon-runtime `stop`",
                Box::new(|| {
                    let mut command = self.command(&ours);
                    command.arg("stop");
                    command
                }),
            ),
            (
                "start-stop-daemon --stop --retry TERM/5",
                Box::new(|| {
                    let mut command = self.command(Path::new("start-stop-daemon"));
                    command
                        .args(["--stop", "--quiet", "--retry", "TERM/5", "--pidfile"])
                        .arg(self.pidfile());
                    command
                }),
            ),
            (
                "kill, then poll every 100 ms (sh)",
                Box::new(|| {
                    let mut command = self.command(Path::new("sh"));
                    command.args([
                        "-c",
                        "pid=$(cat \"$PIDFILE\"); kill \"$pid\"; while kill -0 \"$pid\" 2>/dev/null; do sleep 0.1; done",
                    ]);
                    command
                }),
            ),
        ];
        let have_ssd = Command::new("start-stop-daemon")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); stoppers.len()];
        let mut status_times = Vec::new();
        for _ in 0..ROUNDS / 2 {
            for (index, (_, stopper)) in stoppers.iter().enumerate() {
                if index == 2 && !have_ssd {
                    continue;
                }
                let launched = self.command(&ours).status().expect("start");
                assert!(launched.success());
                let pid = live_pid(&self.pidfile()).expect("a daemon");
                // The daemon is this process's child: reaped the moment it exits, so that a
                // stopper that looks for the process (kill -0) does not see a zombie.
                let reaper = reap_on_a_thread(pid);
                if index == 1 {
                    let started = Instant::now();
                    let said = self.command(&ours).arg("status").status().expect("status");
                    assert_eq!(said.code(), Some(0));
                    status_times.push(started.elapsed().as_secs_f64() * 1000.0);
                }
                let started = Instant::now();
                let stopped = stopper().status().expect("a stopper");
                let elapsed = started.elapsed().as_secs_f64() * 1000.0;
                assert!(stopped.success(), "{}: {stopped:?}", stoppers[index].0);
                let _ = reaper.join();
                times[index].push(elapsed);
            }
        }
        let baseline = median(&times[0]);
        for (index, (name, _)) in stoppers.iter().enumerate() {
            if times[index].is_empty() {
                println!("   {name:<52} not measured: not installed (dpkg)");
                continue;
            }
            print_row(name, &times[index], baseline, "ms", "");
        }
        print_row(
            "daemon-runtime `status` (same exec cost)",
            &status_times,
            baseline,
            "ms",
            "",
        );
        // Each `stop` (index 1) against the `status` run just before it, in the same round.
        let ours_minus_status: Vec<f64> = times[1]
            .iter()
            .zip(&status_times)
            .map(|(stop, status)| stop - status)
            .collect();
        let difference = median(&ours_minus_status);
        println!(
            "   `stop` minus `status`, per round: median {difference:.3} ms (target: at most 1 ms)\n"
        );
    }

    /// Figure 3: what `#[daemon]` adds to a program: memory, threads, size, build time.
    fn overhead(&self) {
        println!("3. Overhead of #[daemon]");
        let idle = |daemon: &str, pidfile: &str, plain: &str| {
            let mut ours = Vec::new();
            let mut theirs = Vec::new();
            for _ in 0..5 {
                let launched = self.command(&self.example(daemon)).status().expect("start");
                assert!(launched.success(), "{daemon}");
                let pid = live_pid(&self.dir.join(pidfile)).expect("a daemon");
                let mut child = self
                    .command(&self.example(plain))
                    .stdout(Stdio::from(
                        fs::File::create(self.dir.join("plain.log")).expect("a log"),
                    ))
                    .spawn()
                    .expect("the plain program");
                std::thread::sleep(Duration::from_millis(400));
                ours.push(process_figures(pid));
                theirs.push(process_figures(child.id() as i32));
                kill_and_reap(pid);
                let _ = child.kill();
                let _ = child.wait();
            }
            (ours, theirs)
        };
        for (daemon, pidfile, plain, what) in [
            ("hello", "hello.pid", "plain_hello", "hello"),
            (
                "bench_async",
                "bench.pid",
                "plain_async",
                "async, 2 workers",
            ),
        ] {
            let (ours, theirs) = idle(daemon, pidfile, plain);
            type Figures = [(f64, f64, f64)];
            fn dirty(figures: &Figures) -> Vec<f64> {
                figures.iter().map(|f| f.0).collect()
            }
            fn clean(figures: &Figures) -> Vec<f64> {
                figures.iter().map(|f| f.1).collect()
            }
            let threads = |figures: &Figures| figures.iter().map(|f| f.2).collect::<Vec<_>>();
            type Column = fn(&Figures) -> Vec<f64>;
            let kinds: [(&str, Column); 2] = [
                ("anonymous memory", dirty),
                ("private file-backed memory", clean),
            ];
            for (kind, of) in kinds {
                let baseline = median(&of(&theirs));
                let without = format!("{what} without #[daemon]: {kind}");
                print_row(&without, &of(&theirs), baseline, "KiB", "");
                let with = format!("{what} with #[daemon]: {kind}");
                print_row(&with, &of(&ours), baseline, "KiB", "");
            }
            println!(
                "   {what}: threads {} without, {} with; anonymous memory {:+.0} KiB",
                median(&threads(&theirs)),
                median(&threads(&ours)),
                median(&dirty(&ours)) - median(&dirty(&theirs))
            );
        }
        let size =
            |name: &str| fs::metadata(self.example(name)).map_or(0.0, |m| m.len() as f64 / 1024.0);
        let (with, without) = (size("hello"), size("plain_hello"));
        println!(
            "   release binary size: hello {with:.0} KiB, plain_hello {without:.0} KiB (ratio {:.2})",
            with / without
        );
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let build = |name: &str| {
            let source = root.join("examples").join(format!("{name}.rs"));
            let file = fs::File::options()
                .append(true)
                .open(&source)
                .expect("the source");
            file.set_modified(std::time::SystemTime::now())
                .expect("touch");
            let started = Instant::now();
            let built = Command::new(&cargo)
                .args(["build", "--release", "--quiet", "--example", name])
                .current_dir(&root)
                .status()
                .expect("cargo build");
            assert!(built.success());
            started.elapsed().as_secs_f64() * 1000.0
        };
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            with.push(build("hello"));
            without.push(build("plain_hello"));
        }
        let baseline = median(&without);
        let label = "build of plain_hello after a touch (release)";
        print_row(label, &without, baseline, "ms", "");
        let label = "build of hello after a touch (release)";
        print_row(label, &with, baseline, "ms", "");
        // From nothing: a project of its own, `hello` with the runtime against the same body
        // alone (the crates are already downloaded: offline).
        let from_scratch = |with_attribute: bool| {
            let project = self
                .dir
                .join(if with_attribute { "with" } else { "without" });
            fs::create_dir_all(project.join("src")).expect("a project");
            let dependency = if with_attribute {
                format!(
                    "daemon-runtime = {{ path = {:?} }}",
                    root.join("daemon-runtime")
                )
            } else {
                String::new()
            };
            fs::write(
                project.join("Cargo.toml"),
                format!("[package]\nname = \"scratch\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n{dependency}\n"),
            )
            .expect("Cargo.toml");
            let source = if with_attribute {
                "hello.rs"
            } else {
                "plain_hello.rs"
            };
            fs::copy(
                root.join("examples").join(source),
                project.join("src/main.rs"),
            )
            .expect("main.rs");
            let started = Instant::now();
            let built = Command::new(&cargo)
                .args(["build", "--release", "--quiet", "--offline"])
                .env("CARGO_TARGET_DIR", project.join("target"))
                .current_dir(&project)
                .status()
                .expect("cargo build");
            assert!(built.success(), "the scratch build failed");
            started.elapsed().as_secs_f64()
        };
        let (without, with) = (from_scratch(false), from_scratch(true));
        println!(
            "   build from nothing (release, its own target directory): plain_hello {without:.1} s, hello with daemon-runtime {with:.1} s"
        );
        println!();
    }

    /// Figure 4a: `upgrade` under clients that hammer the port.
    fn upgrade(&self) {
        println!("4. Cost at scale");
        let echo = self.example("echo");
        let mut durations = Vec::new();
        let mut gaps = Vec::new();
        let mut quiet_gaps = Vec::new();
        let mut failures = 0;
        for _ in 0..5 {
            let port = support::free_port();
            let mut start = self.command(&echo);
            start.env("ECHO_PORT", port.to_string());
            assert!(start.status().expect("echo").success());
            let old = live_pid(&self.dir.join("echo.pid")).expect("echo runs");
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let clients: Vec<_> = (0..4)
                .map(|_| {
                    let stop = std::sync::Arc::clone(&stop);
                    std::thread::spawn(move || {
                        let mut answered = Vec::new();
                        let mut failed = 0;
                        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                            match exchange(port) {
                                true => answered.push(Instant::now()),
                                false => failed += 1,
                            }
                        }
                        (answered, failed)
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(100));
            let quiet = Instant::now();
            std::thread::sleep(Duration::from_millis(100));
            let began = Instant::now();
            let mut upgrade = self.command(&echo);
            upgrade.arg("upgrade").env("ECHO_PORT", port.to_string());
            assert!(upgrade.status().expect("upgrade").success());
            let ended = Instant::now();
            durations.push((ended - began).as_secs_f64() * 1000.0);
            assert!(
                !support::is_alive(old),
                "the old daemon runs on after upgrade returned"
            );
            reap_strays();
            std::thread::sleep(Duration::from_millis(200));
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let mut answered = Vec::new();
            for client in clients {
                let (times, failed) = client.join().expect("a client");
                answered.extend(times);
                failures += failed;
            }
            answered.sort();
            let longest = |from: Instant, to: Instant| {
                answered
                    .windows(2)
                    .filter(|pair| pair[1] > from && pair[0] < to)
                    .map(|pair| (pair[1] - pair[0]).as_secs_f64() * 1000.0)
                    .fold(0.0, f64::max)
            };
            gaps.push(longest(began, ended));
            quiet_gaps.push(longest(quiet, began));
            let new = live_pid(&self.dir.join("echo.pid")).expect("echo runs");
            let mut stop = self.command(&echo);
            stop.arg("stop");
            let reaper = reap_on_a_thread(new);
            let _ = stop.status();
            let _ = reaper.join();
        }
        let took = "upgrade: invoked -> old daemon gone (echo)";
        print_row(took, &durations, median(&durations), "ms", "");
        let baseline = median(&quiet_gaps);
        let quiet = "longest gap between answers, 100 ms before";
        print_row(quiet, &quiet_gaps, baseline, "ms", "");
        let during = "longest gap between answers during the upgrade";
        print_row(during, &gaps, baseline, "ms", "");
        println!("   connections that failed during the upgrades: {failures}");
    }

    /// Figure 4b: start/stop cycles, and what bounds them.
    fn cycles(&self) {
        let ours = self.example("bench_ready");
        let (mut starts, mut stops) = (Vec::new(), Vec::new());
        let count = 1000;
        let began = Instant::now();
        for _ in 0..count {
            let started = Instant::now();
            assert!(self.command(&ours).status().expect("start").success());
            starts.push(started.elapsed().as_secs_f64() * 1000.0);
            let pid = live_pid(&self.pidfile()).expect("a daemon");
            let reaper = reap_on_a_thread(pid);
            let stopped = Instant::now();
            assert!(self
                .command(&ours)
                .arg("stop")
                .status()
                .expect("stop")
                .success());
            stops.push(stopped.elapsed().as_secs_f64() * 1000.0);
            let _ = reaper.join();
        }
        let per_minute = count as f64 / began.elapsed().as_secs_f64() * 60.0;
        println!(
            "   {count} start/stop cycles: {per_minute:.0} per minute (start median {:.2} ms, stop median {:.2} ms; no sleep anywhere: each is a process start of the binary, ~1 ms by itself, as `status` shows above)",
            median(&starts),
            median(&stops)
        );
    }
}

impl Bench {
    /// Figure 4c: `systemctl start` to active, `Type=notify` against `Type=forking`, under
    /// systemd 252 booted as PID 1 of private namespaces (root only).
    fn under_systemd(&self) {
        // SAFETY: geteuid takes nothing and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            println!("   under systemd: needs root, not measured");
            return;
        }
        let sandbox = support::Sandbox::new("bench-systemd");
        let Some(systemd) = systemd_boot::Systemd::boot(&sandbox) else {
            println!("   under systemd: systemd could not be booted here, not measured");
            return;
        };
        let ours = self.example("bench_ready");
        // The notify unit is the one the program generates (`unit`); the forking one runs the
        // same program as a classic daemon, watched through its pidfile.
        let generated = Command::new(&ours)
            .arg("unit")
            .env("BENCH_PIDFILE", sandbox.path("notify.pid"))
            .output()
            .expect("bench_ready unit");
        let notify = String::from_utf8_lossy(&generated.stdout).replace(
            "[Service]",
            &format!(
                "[Service]\nEnvironment=DAEMON_TEST_SANDBOX={}",
                sandbox.dir.display()
            ),
        );
        let forking = format!(
            "[Service]\nType=forking\nPIDFile={pidfile}\nExecStart={}\nEnvironment=BENCH_PIDFILE={pidfile} DAEMON_TEST_SANDBOX={}\n",
            ours.display(),
            sandbox.dir.display(),
            pidfile = sandbox.path("forking.pid").display(),
        );
        let units = [("notify.service", notify), ("forking.service", forking)];
        for (unit, content) in &units {
            systemd.install(unit, content);
        }
        // systemd's own clock: from leaving "inactive" to entering "active".
        let took = |unit: &str| {
            let at = |property| {
                systemd
                    .property(unit, property)
                    .parse::<f64>()
                    .unwrap_or(0.0)
            };
            (at("ActiveEnterTimestampMonotonic") - at("InactiveExitTimestampMonotonic")) / 1000.0
        };
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); units.len()];
        for _ in 0..20 {
            for (index, (unit, _)) in units.iter().enumerate() {
                systemd.start(unit);
                times[index].push(took(unit));
                let stopped = systemd.systemctl(&["stop", unit]);
                assert_eq!(stopped.code(), Some(0), "{stopped:?}");
            }
        }
        let baseline = median(&times[0]);
        println!("   under systemd 252, inactive -> active by systemd's clock:");
        print_row(
            "Type=notify (the unit `unit` writes)",
            &times[0],
            baseline,
            "ms",
            "",
        );
        print_row("Type=forking, PIDFile=", &times[1], baseline, "ms", "");
    }
}

/// Opens `count` descriptors (not close-on-exec) for the launchers to inherit, while held.
fn hold_descriptors(condition: Condition) -> Held {
    let Condition::Inherited(count) = condition else {
        return Held(Vec::new());
    };
    set_soft_limit(count as u64 + 256);
    let null = fs::File::open("/dev/null").expect("/dev/null");
    Held(
        (0..count)
            .map(|_| {
                let copy = null.try_clone().expect("a descriptor");
                // std makes it close-on-exec: clear that, so that launchers inherit it.
                let fd = std::os::fd::OwnedFd::from(copy);
                // SAFETY: fcntl on a descriptor we own.
                unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::F_SETFD, 0) };
                fd
            })
            .collect(),
    )
}

/// Descriptors held open for the launchers to inherit; dropped, they close and the soft
/// `RLIMIT_NOFILE` goes back to 1,024, so that no condition leaks into the next.
struct Held(Vec<std::os::fd::OwnedFd>);

impl Drop for Held {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            self.0.clear();
            set_soft_limit(1024);
        }
    }
}

/// Reaps whatever ended and was reparented here (a first child that outlived its launcher).
fn reap_strays() {
    let mut status = 0;
    // SAFETY: `status` is valid for one write; WNOHANG never blocks.
    while unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {}
}

/// The pid the pidfile names, if that process is alive (not a zombie).
fn live_pid(pidfile: &Path) -> Option<i32> {
    let pid: i32 = fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    support::is_alive(pid).then_some(pid)
}

/// Reaps `pid`, a child of this process, on a thread of its own, the moment it exits.
fn reap_on_a_thread(pid: i32) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut status = 0;
        // SAFETY: `status` is valid for one write.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    })
}

fn kill_and_reap(pid: i32) {
    // SAFETY: kill and waitpid with integers and a valid pointer.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while libc::waitpid(pid, &mut status, 0) < 0 && Instant::now() < deadline {
            // Not our child yet (its parent has not exited): wait for the reparenting.
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

/// Anonymous memory (KiB: heap, stacks, data written, all private here), private file-backed
/// memory (KiB: pages of the binary and libraries that no other process maps; dirty as long
/// as a freshly built binary is not written back) and threads of a process.
fn process_figures(pid: i32) -> (f64, f64, f64) {
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| -> f64 {
        rollup
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0)
    };
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0.0);
    let anonymous = field("Anonymous:");
    let private = field("Private_Dirty:") + field("Private_Clean:");
    (anonymous, private - anonymous, threads)
}

/// One request on a new connection; whether it was answered.
fn exchange(port: u16) -> bool {
    use std::io::{BufRead, Write};
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if writeln!(stream, "ping").is_err() {
        return false;
    }
    let mut reply = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut reply)
        .is_ok()
        && reply.ends_with("ping\n")
}

fn median(samples: &[f64]) -> f64 {
    percentile(samples, 0.5)
}

fn percentile(samples: &[f64], fraction: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

fn print_row(name: &str, samples: &[f64], baseline: f64, unit: &str, note: &str) {
    let m = median(samples);
    println!(
        "   {name:<52} {m:>9.3} {unit}  spread {:>8.3}-{:<8.3}  ratio {:>5.2}{note}",
        percentile(samples, 0.1),
        percentile(samples, 0.9),
        m / baseline
    );
}
