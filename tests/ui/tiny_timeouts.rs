// Timeouts that round to zero milliseconds are refused (huge ones compile: the runtime takes
// anything above a year as a year).
#[daemon_runtime::daemon(
    pidfile = "/tmp/tiny.pid",
    control = true,
    ready_timeout = 0.0000000001,
    stop_timeout = 0.0004,
)]
fn main() {}
