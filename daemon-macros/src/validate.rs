//! Turns each parsed [`Entry`] into its typed setting ([`Args`]) and checks the settings
//! against each other. Every key is kept with its spans, so that a conflict can point at
//! both places; every mistake is collected, so that one compile shows all of them.

use crate::errors::Errors;
use crate::key::Key;
use crate::parse::Entry;
use crate::template;
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Expr, Lit, UnOp};

/// A validated value and where it was written.
pub(crate) struct Setting<T> {
    pub(crate) value: T,
    pub(crate) key: Span,
    pub(crate) span: Span,
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Ready {
    Auto,
    Manual,
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Detach {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Flavor {
    MultiThread,
    CurrentThread,
}

#[derive(Clone, Copy)]
pub(crate) enum Seconds {
    Whole(u64),
    Fraction(f64),
}

/// Every key of SPEC.md §2, each optional, validated.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) pidfile: Option<Setting<String>>,
    pub(crate) umask: Option<Setting<u32>>,
    pub(crate) workdir: Option<Setting<String>>,
    pub(crate) stdout: Option<Setting<String>>,
    pub(crate) stderr: Option<Setting<String>>,
    pub(crate) keep_fds: Option<Setting<Vec<i32>>>,
    pub(crate) ready: Option<Setting<Ready>>,
    pub(crate) detach: Option<Setting<Detach>>,
    pub(crate) ready_timeout: Option<Setting<Seconds>>,
    pub(crate) core_dumps: Option<Setting<bool>>,
    pub(crate) graceful: Option<Setting<bool>>,
    pub(crate) user: Option<Setting<String>>,
    pub(crate) group: Option<Setting<String>>,
    pub(crate) chroot: Option<Setting<String>>,
    pub(crate) stop_timeout: Option<Setting<Seconds>>,
    pub(crate) control: Option<Setting<bool>>,
    pub(crate) name: Option<Setting<String>>,
    pub(crate) krate: Option<Setting<syn::Path>>,
    pub(crate) listen: Option<Setting<Vec<String>>>,
    pub(crate) flavor: Option<Setting<Flavor>>,
    pub(crate) worker_threads: Option<Setting<usize>>,
}

/// The settings of the entries, then the checks between them. The mistakes the parsing
/// found are reported in their place.
pub(crate) fn args(entries: Vec<Result<Entry, syn::Error>>, errors: &mut Errors) -> Args {
    let mut args = Args::default();
    for entry in entries {
        if let Err(error) = entry.and_then(|entry| args.store(entry)) {
            errors.push(error);
        }
    }
    args.check_conflicts(errors);
    args
}

impl Args {
    fn store(&mut self, entry: Entry) -> syn::Result<()> {
        let Entry {
            key,
            key_span,
            value,
        } = entry;
        let span = value.span();
        let value = unwrap_groups(&value);
        fn at<T>(value: T, key: Span, span: Span) -> Option<Setting<T>> {
            Some(Setting { value, key, span })
        }
        match key {
            Key::Pidfile => self.pidfile = at(path(key, value)?, key_span, span),
            Key::Workdir => self.workdir = at(path(key, value)?, key_span, span),
            Key::Stdout => self.stdout = at(path(key, value)?, key_span, span),
            Key::Stderr => self.stderr = at(path(key, value)?, key_span, span),
            Key::Chroot => self.chroot = at(path(key, value)?, key_span, span),
            Key::User => self.user = at(string(key, value)?, key_span, span),
            Key::Group => self.group = at(string(key, value)?, key_span, span),
            Key::Umask => self.umask = at(umask(value)?, key_span, span),
            Key::KeepFds => self.keep_fds = at(keep_fds(value)?, key_span, span),
            Key::Ready => {
                let ready = match choice(key, value, &["auto", "manual"])? {
                    "auto" => Ready::Auto,
                    _ => Ready::Manual,
                };
                self.ready = at(ready, key_span, span);
            }
            Key::ReadyTimeout => self.ready_timeout = at(seconds(key, value)?, key_span, span),
            Key::StopTimeout => self.stop_timeout = at(seconds(key, value)?, key_span, span),
            Key::CoreDumps => self.core_dumps = at(boolean(key, value)?, key_span, span),
            Key::Control => self.control = at(boolean(key, value)?, key_span, span),
            Key::Name => self.name = at(name(value)?, key_span, span),
            Key::Crate => self.krate = at(crate_path(value)?, key_span, span),
            Key::Listen => self.listen = at(listen(value)?, key_span, span),
            Key::Shutdown => {
                let graceful = choice(key, value, &["exit", "graceful"])? == "graceful";
                self.graceful = at(graceful, key_span, span);
            }
            Key::Flavor => {
                let flavor = match choice(key, value, &["multi_thread", "current_thread"])? {
                    "multi_thread" => Flavor::MultiThread,
                    _ => Flavor::CurrentThread,
                };
                self.flavor = at(flavor, key_span, span);
            }
            Key::WorkerThreads => self.worker_threads = at(worker_threads(value)?, key_span, span),
            Key::Detach => {
                let detach = match choice(key, value, &["auto", "always", "never"])? {
                    "auto" => Detach::Auto,
                    "always" => Detach::Always,
                    _ => Detach::Never,
                };
                self.detach = at(detach, key_span, span);
            }
        }
        Ok(())
    }

    fn check_conflicts(&self, errors: &mut Errors) {
        let control = self.control.as_ref().filter(|control| control.value);
        if let (Some(control), None) = (control, &self.pidfile) {
            errors.at(
                control.span,
                "`control = true` needs a `pidfile`: `stop`, `status` and `reload` find the daemon through its lock",
            );
        }
        if let (Some(timeout), None) = (&self.stop_timeout, control) {
            errors.at(
                timeout.key,
                "`stop_timeout` is used by the `stop` command, which comes with `control = true`; add that, or remove `stop_timeout`",
            );
        }
        if let (Some(_), Some(workdir)) = (&self.chroot, &self.workdir) {
            // A template such as "${DATA_DIR}" is checked at start-up, once expanded.
            if !workdir.value.starts_with('/') && !workdir.value.starts_with('$') {
                errors.at(
                    workdir.span,
                    "with `chroot`, `workdir` is a path inside the new root and must start with `/`",
                );
            }
        }
        let Some(pidfile) = &self.pidfile else { return };
        for (key, log) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            if let Some(log) = log.as_ref().filter(|log| log.value == pidfile.value) {
                errors.at(
                    log.span,
                    format!(
                        "`{key}` names the same file as `pidfile`; the log would overwrite the pid"
                    ),
                );
                errors.at(pidfile.span, "`pidfile` is given here");
            }
        }
    }
}

fn unwrap_groups(mut expr: &Expr) -> &Expr {
    while let Expr::Group(group) = expr {
        expr = &group.expr;
    }
    expr
}

fn literal(expr: &Expr) -> Option<&Lit> {
    match unwrap_groups(expr) {
        Expr::Lit(lit) => Some(&lit.lit),
        _ => None,
    }
}

fn is_negative(expr: &Expr) -> bool {
    matches!(unwrap_groups(expr), Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)))
}

fn wrong_type(key: Key, expr: &Expr) -> syn::Error {
    let (name, takes, example) = (key.name(), key.takes(), key.example());
    syn::Error::new(
        expr.span(),
        format!("`{name}` takes {takes}, like `{example}`"),
    )
}

fn string(key: Key, expr: &Expr) -> syn::Result<String> {
    match literal(expr) {
        Some(Lit::Str(lit)) => {
            let value = lit.value();
            if value.is_empty() {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("`{key}` must not be empty"),
                ));
            }
            if value.contains('\0') {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("`{key}` must not contain a NUL byte"),
                ));
            }
            Ok(value)
        }
        _ => Err(wrong_type(key, expr)),
    }
}

fn path(key: Key, expr: &Expr) -> syn::Result<String> {
    if !matches!(literal(expr), Some(Lit::Str(_))) {
        return Err(wrong_type(key, expr));
    }
    let value = string(key, expr)?;
    template::check(&value)
        .map_err(|why| syn::Error::new(expr.span(), format!("`{key}`: {why}")))?;
    Ok(value)
}

fn name(expr: &Expr) -> syn::Result<String> {
    let value = string(Key::Name, expr)?;
    if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(syn::Error::new(
            expr.span(),
            "`name` must be one word without `/`: it names the service in messages and unit files",
        ));
    }
    Ok(value)
}

fn crate_path(expr: &Expr) -> syn::Result<syn::Path> {
    let value = string(Key::Crate, expr)?;
    syn::parse_str(&value).map_err(|_| {
        syn::Error::new(
            expr.span(),
            format!(
                "`crate` must be a Rust path to daemon_runtime, like `{}`; `{value}` is not a path",
                Key::Crate.example()
            ),
        )
    })
}

fn boolean(key: Key, expr: &Expr) -> syn::Result<bool> {
    match literal(expr) {
        Some(Lit::Bool(lit)) => Ok(lit.value),
        _ => Err(wrong_type(key, expr)),
    }
}

fn choice(key: Key, expr: &Expr, accepted: &[&'static str]) -> syn::Result<&'static str> {
    let quoted: Vec<String> = accepted
        .iter()
        .map(|choice| format!("\"{choice}\""))
        .collect();
    let expected = match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    let Some(Lit::Str(lit)) = literal(expr) else {
        return Err(syn::Error::new(
            expr.span(),
            format!("`{key}` takes a quoted string: {expected}"),
        ));
    };
    let value = lit.value();
    accepted
        .iter()
        .find(|choice| **choice == value)
        .copied()
        .ok_or_else(|| {
            syn::Error::new(
                lit.span(),
                format!("unknown `{key}` value \"{value}\": expected {expected}"),
            )
        })
}

/// `worker_threads`: at least 1, as `#[tokio::main]` checks it.
fn worker_threads(expr: &Expr) -> syn::Result<usize> {
    const RANGE: &str = "`worker_threads` must be at least 1";
    if is_negative(expr) {
        return Err(syn::Error::new(expr.span(), RANGE));
    }
    let Some(Lit::Int(lit)) = literal(expr) else {
        return Err(wrong_type(Key::WorkerThreads, expr));
    };
    match lit.base10_parse::<usize>() {
        Ok(0) => Err(syn::Error::new(lit.span(), RANGE)),
        Ok(count) => Ok(count),
        Err(_) => Err(syn::Error::new(
            lit.span(),
            "`worker_threads` is too large for this platform",
        )),
    }
}

fn umask(expr: &Expr) -> syn::Result<u32> {
    const RANGE: &str = "`umask` must be between 0o000 and 0o777";
    if is_negative(expr) {
        return Err(syn::Error::new(expr.span(), RANGE));
    }
    let Some(Lit::Int(lit)) = literal(expr) else {
        return Err(wrong_type(Key::Umask, expr));
    };
    let digits = lit.base10_digits();
    let written = lit.to_string();
    if written.len() > 1 && written.starts_with('0') && written.as_bytes()[1].is_ascii_digit() {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "`{written}` is the decimal number {digits} in Rust, not octal; write `0o{}`",
                match written.trim_start_matches('0') {
                    "" => "0",
                    digits => digits,
                }
            ),
        ));
    }
    match lit.base10_parse::<u32>() {
        Ok(mask) if mask <= 0o777 => Ok(mask),
        Ok(mask) => Err(syn::Error::new(
            lit.span(),
            format!("{RANGE}, found 0o{mask:o}"),
        )),
        Err(_) => Err(syn::Error::new(lit.span(), RANGE)),
    }
}

fn keep_fds(expr: &Expr) -> syn::Result<Vec<i32>> {
    let Expr::Array(array) = unwrap_groups(expr) else {
        return Err(wrong_type(Key::KeepFds, expr));
    };
    let mut fds = Vec::new();
    let mut errors = Errors::default();
    for element in &array.elems {
        let parsed = match literal(element) {
            Some(Lit::Int(lit)) if !is_negative(element) => lit.base10_parse::<i32>().ok(),
            _ if is_negative(element) => None,
            _ => {
                errors.at(
                    element.span(),
                    "`keep_fds` lists descriptor numbers, like `keep_fds = [3, 4]`",
                );
                continue;
            }
        };
        match parsed {
            Some(fd) if fd <= 2 => errors.at(
                element.span(),
                "descriptors 0, 1 and 2 are always kept (on /dev/null or the log files); list only descriptors above 2",
            ),
            Some(fd) if fds.contains(&fd) => {
                errors.at(element.span(), format!("descriptor {fd} is listed twice"))
            }
            Some(fd) => fds.push(fd),
            None => errors.at(
                element.span(),
                format!("a descriptor to keep is a number from 3 to {}", i32::MAX),
            ),
        }
    }
    match errors.into_error() {
        Some(error) => Err(error),
        None => Ok(fds),
    }
}

/// `listen = ["NAME=ADDRESS", ...]`: each a string with a name (letters, digits, `_`, `-`,
/// `.`) and an address (`HOST:PORT`, `[IPV6]:PORT`, `unix:PATH`), each name once.
fn listen(expr: &Expr) -> syn::Result<Vec<String>> {
    let Expr::Array(array) = unwrap_groups(expr) else {
        return Err(wrong_type(Key::Listen, expr));
    };
    let mut entries: Vec<String> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut errors = Errors::default();
    for element in &array.elems {
        let Some(Lit::Str(lit)) = literal(element) else {
            errors.push(wrong_type(Key::Listen, element));
            continue;
        };
        let entry = lit.value();
        let split = entry.split_once('=');
        let problem = match split {
            None => Some("write NAME=ADDRESS, like \"http=127.0.0.1:8080\"".to_owned()),
            Some((name, _))
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) =>
            {
                Some("the name before `=` is letters, digits, `_`, `-` and `.`".to_owned())
            }
            Some((_, address)) => match address.strip_prefix("unix:") {
                Some("") => Some("`unix:` needs a path".to_owned()),
                Some(path) => template::check(path).err(),
                // A port may come from a variable, checked once expanded at start-up.
                None if address.contains('$') => template::check(address).err(),
                None if address.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && port.parse::<u16>().is_ok()
                }) =>
                {
                    None
                }
                None => Some("the address is HOST:PORT, [IPV6]:PORT or unix:PATH".to_owned()),
            },
        };
        let name = split.map_or("", |(name, _)| name);
        if let Some(problem) = problem {
            errors.at(lit.span(), format!("`listen` entry \"{entry}\": {problem}"));
        } else if names.iter().any(|seen| seen == name) {
            errors.at(lit.span(), format!("`listen` names \"{name}\" twice"));
        } else {
            names.push(name.to_owned());
            entries.push(entry);
        }
    }
    match errors.into_error() {
        Some(error) => Err(error),
        None => Ok(entries),
    }
}

fn seconds(key: Key, expr: &Expr) -> syn::Result<Seconds> {
    let positive = || {
        syn::Error::new(
            expr.span(),
            format!("`{key}` must be greater than zero seconds"),
        )
    };
    if is_negative(expr) {
        return Err(positive());
    }
    match literal(expr) {
        Some(Lit::Int(lit)) => match lit.base10_parse::<u64>() {
            Ok(0) => Err(positive()),
            Ok(whole) => Ok(Seconds::Whole(whole)),
            Err(_) => Err(syn::Error::new(lit.span(), format!("`{key}` is too large"))),
        },
        Some(Lit::Float(lit)) => match lit.base10_parse::<f64>() {
            // The launcher counts in milliseconds: less than one rounds to no time at all.
            Ok(fraction) if fraction > 0.0 && fraction < 0.001 => Err(syn::Error::new(
                lit.span(),
                format!(
                    "`{key} = {lit}` rounds to zero: timeouts count in whole milliseconds, so write at least 0.001",
                    lit = lit.base10_digits()
                ),
            )),
            Ok(fraction) if fraction > 0.0 && fraction.is_finite() && fraction < 1e12 => {
                Ok(Seconds::Fraction(fraction))
            }
            _ => Err(positive()),
        },
        _ => Err(wrong_type(key, expr)),
    }
}
