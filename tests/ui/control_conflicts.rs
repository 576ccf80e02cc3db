// `control = true` finds the daemon through its pidfile; `stop_timeout` belongs to `stop`.
#[daemon_runtime::daemon(control = true, stop_timeout = 5)]
fn main() {}

mod second {
    #[daemon_runtime::daemon(pidfile = "/run/x.pid", stop_timeout = 5)]
    fn main() {}
}
