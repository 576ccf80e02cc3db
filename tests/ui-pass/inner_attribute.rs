// The body of `main` stays opaque: an inner attribute at its top (it applies to the whole
// function) compiles under `#[daemon]` as it does without.
#[daemon_runtime::daemon(pidfile = "/tmp/inner-attribute.pid")]
fn main() {
    #![allow(unused_variables)]
    let unused = 1;
}
