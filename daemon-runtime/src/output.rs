//! The launcher's and the control commands' messages. They are written with their errors
//! ignored: `mysvc start | true` or a closed terminal must not turn a documented exit status
//! into a panic (`println!` panics on a broken pipe). And numbers written where nothing may
//! allocate ([`decimal`]).

/// Writes a line to stdout, ignoring errors.
macro_rules! say {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout(), $($arg)*);
    }};
}

/// Writes a line to stderr, ignoring errors.
macro_rules! complain {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr(), $($arg)*);
    }};
}

pub(crate) use {complain, say};

/// `n` in decimal digits, written into `buf`, without allocation: for what the daemon writes
/// between the fork and readiness, or from a signal handler (its pid, sd_notify numbers).
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[start..];
        }
    }
}
