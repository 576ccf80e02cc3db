//! The launcher's and the control commands' messages. They are written with their errors
//! ignored: `mysvc start | true` or a closed terminal must not turn a documented exit status
//! into a panic (`println!` panics on a broken pipe).

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
