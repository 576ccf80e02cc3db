//! The Rust floor of the start-up benchmark: what `benches/floor.c` does, in Rust with raw
//! libc. Beside the C floor it shows what Rust's own process start costs; beside our daemon,
//! what this crate costs. PIDFILE names the pidfile.

use std::ffi::CString;

fn main() {
    let path = CString::new(std::env::var("PIDFILE").expect("PIDFILE")).expect("a path");
    // SAFETY: plain system calls on integers and the C strings above; the children only make
    // async-signal-safe calls (this process has one thread).
    unsafe {
        let mut pipe = [0; 2];
        if libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            std::process::exit(1);
        }
        let flags = libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW;
        let pidfile = libc::open(path.as_ptr(), flags, 0o600);
        if pidfile < 0 || libc::flock(pidfile, libc::LOCK_EX | libc::LOCK_NB) != 0 {
            std::process::exit(1);
        }
        let child = libc::fork();
        if child < 0 {
            std::process::exit(1);
        }
        if child == 0 {
            libc::setsid();
            if libc::fork() != 0 {
                libc::_exit(0);
            }
            let (low, high) = (pidfile.min(pipe[1]) as u32, pidfile.max(pipe[1]) as u32);
            libc::syscall(libc::SYS_close_range, 3u32, low - 1, 0);
            libc::syscall(libc::SYS_close_range, low + 1, high - 1, 0);
            libc::syscall(libc::SYS_close_range, high + 1, u32::MAX, 0);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
            let mut buf = [0u8; 24];
            let mut len = 0;
            let mut pid = libc::getpid() as u32;
            let mut digits = [0u8; 10];
            let mut count = 0;
            while pid > 0 || count == 0 {
                digits[count] = b'0' + (pid % 10) as u8;
                pid /= 10;
                count += 1;
            }
            while count > 0 {
                count -= 1;
                buf[len] = digits[count];
                len += 1;
            }
            buf[len] = b'\n';
            len += 1;
            libc::ftruncate(pidfile, 0);
            libc::pwrite(pidfile, buf.as_ptr().cast(), len, 0);
            libc::write(pipe[1], b"R".as_ptr().cast(), 1);
            libc::close(pipe[1]);
            loop {
                libc::pause();
            }
        }
        libc::close(pipe[1]);
        libc::waitpid(child, std::ptr::null_mut(), 0);
        let mut byte = 0u8;
        let ready = libc::read(pipe[0], (&mut byte as *mut u8).cast(), 1) == 1;
        std::process::exit(if ready { 0 } else { 1 });
    }
}
