// Each `listen` entry is NAME=ADDRESS, each name once.
#[daemon_runtime::daemon(listen = ["http=127.0.0.1:80", "http=[::1]:81", "admin", "x=unix:", "y=localhost", 7])]
fn main() {}
