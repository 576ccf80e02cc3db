//! Parsing and validation of the attribute's arguments: `#[daemon(key = value, ...)]`.
//!
//! Every key is kept with its spans so that a repeat or a conflict can point at both places.
//! Mistakes are collected, never returned early, so that one compile shows all of them.

use crate::errors::Errors;
use crate::template;
use proc_macro2::{Span, TokenStream};
use std::collections::HashMap;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, Lit, Token, UnOp};

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

#[derive(Clone, Copy)]
pub(crate) enum Seconds {
    Whole(u64),
    Fraction(f64),
}

/// Every key of SPEC.md §2, each optional.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) pidfile: Option<Setting<String>>,
    pub(crate) umask: Option<Setting<u32>>,
    pub(crate) workdir: Option<Setting<String>>,
    pub(crate) stdout: Option<Setting<String>>,
    pub(crate) stderr: Option<Setting<String>>,
    pub(crate) keep_fds: Option<Setting<Vec<i32>>>,
    pub(crate) ready: Option<Setting<Ready>>,
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
    seen: HashMap<&'static str, Span>,
}

/// The accepted keys, each with what it takes and an example (both used in messages).
const KEYS: &[(&str, &str, &str)] = &[
    ("pidfile", "a quoted path", "pidfile = \"/run/mysvc.pid\""),
    ("umask", "an octal integer", "umask = 0o022"),
    ("workdir", "a quoted path", "workdir = \"/var/lib/mysvc\""),
    ("stdout", "a quoted path", "stdout = \"/var/log/mysvc.log\""),
    ("stderr", "a quoted path", "stderr = \"/var/log/mysvc.err\""),
    ("user", "a string", "user = \"mysvc\""),
    ("group", "a string", "group = \"mysvc\""),
    ("chroot", "a quoted path", "chroot = \"/var/empty\""),
    (
        "keep_fds",
        "a list of descriptor numbers",
        "keep_fds = [3, 4]",
    ),
    ("detach", "a quoted string", "detach = \"auto\""),
    ("ready", "a quoted string", "ready = \"manual\""),
    ("ready_timeout", "a number of seconds", "ready_timeout = 30"),
    ("shutdown", "a quoted string", "shutdown = \"exit\""),
    ("stop_timeout", "a number of seconds", "stop_timeout = 10"),
    ("control", "`true` or `false`", "control = false"),
    ("core_dumps", "`true` or `false`", "core_dumps = true"),
    ("name", "a string", "name = \"mysvc\""),
    (
        "crate",
        "a quoted path",
        "crate = \"::my_reexport::daemon_runtime\"",
    ),
];

/// Names people reach for that are not ours, and the key that does the job.
const ALIASES: &[(&str, &str)] = &[
    ("cwd", "workdir"),
    ("chdir", "workdir"),
    ("dir", "workdir"),
    ("directory", "workdir"),
    ("working_directory", "workdir"),
    ("log", "stdout"),
    ("logfile", "stdout"),
    ("uid", "user"),
    ("gid", "group"),
    ("pid", "pidfile"),
    ("timeout", "ready_timeout"),
];

pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Args {
    let mut args = Args::default();
    let parser = syn::meta::parser(|meta| args.entry(meta, errors));
    if let Err(error) = syn::parse::Parser::parse2(parser, tokens) {
        errors.push(error);
    }
    args.check_conflicts(errors);
    args
}

impl Args {
    fn entry(&mut self, meta: ParseNestedMeta<'_>, errors: &mut Errors) -> syn::Result<()> {
        let key_span = meta.path.span();
        let value = parse_value(&meta)?;
        if let Value::Call = value {
            let key = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            errors.at(key_span, format!("write `{key} = value`, not `{key}(...)`"));
            return Ok(());
        }
        let Some(ident) = meta.path.get_ident() else {
            errors.at(
                key_span,
                format!(
                    "expected a key such as `pidfile`; the keys are: {}",
                    key_list()
                ),
            );
            return Ok(());
        };
        let written = ident.to_string();
        let Some(&(key, what, example)) = KEYS.iter().find(|(key, _, _)| *key == written) else {
            errors.at(key_span, unknown_key(&written));
            return Ok(());
        };
        if let Some(&first) = self.seen.get(key) {
            errors.at(key_span, format!("`{key}` is given twice; keep one"));
            errors.at(first, format!("`{key}` is first given here"));
            return Ok(());
        }
        self.seen.insert(key, key_span);
        let value = match value {
            Value::Expr(value) => value,
            Value::Missing => {
                errors.at(key_span, format!("`{key}` needs a value, like `{example}`"));
                return Ok(());
            }
            Value::Unparsable(span) => {
                errors.at(span, format!("`{key}` takes {what}, like `{example}`"));
                return Ok(());
            }
            Value::Call => return Ok(()),
        };
        let span = value.span();
        let value = unwrap_groups(&value);
        if let Err(error) = self.store(key, key_span, span, value) {
            errors.push(error);
        }
        Ok(())
    }

    fn store(
        &mut self,
        key: &'static str,
        key_span: Span,
        span: Span,
        value: &Expr,
    ) -> syn::Result<()> {
        fn set<T>(slot: &mut Option<Setting<T>>, value: T, key: Span, span: Span) {
            *slot = Some(Setting { value, key, span });
        }
        match key {
            "pidfile" => set(&mut self.pidfile, path(key, value)?, key_span, span),
            "workdir" => set(&mut self.workdir, path(key, value)?, key_span, span),
            "stdout" => set(&mut self.stdout, path(key, value)?, key_span, span),
            "stderr" => set(&mut self.stderr, path(key, value)?, key_span, span),
            "umask" => set(&mut self.umask, umask(value)?, key_span, span),
            "keep_fds" => set(&mut self.keep_fds, keep_fds(value)?, key_span, span),
            "ready" => {
                let mode = match choice(key, value, &["auto", "manual"])? {
                    "auto" => Ready::Auto,
                    _ => Ready::Manual,
                };
                set(&mut self.ready, mode, key_span, span);
            }
            "ready_timeout" => set(
                &mut self.ready_timeout,
                seconds(key, value)?,
                key_span,
                span,
            ),
            "core_dumps" => set(&mut self.core_dumps, boolean(key, value)?, key_span, span),
            "name" => set(&mut self.name, name(value)?, key_span, span),
            "crate" => set(&mut self.krate, crate_path(value)?, key_span, span),
            // Keys whose behaviour has not landed yet: validated, then refused.
            "user" => set(&mut self.user, string(key, value)?, key_span, span),
            "group" => set(&mut self.group, string(key, value)?, key_span, span),
            "chroot" => set(&mut self.chroot, path(key, value)?, key_span, span),
            "detach" => {
                choice(key, value, &["auto", "always", "never"])?;
                return Err(syn::Error::new(key_span, "`detach` is not supported yet: today the daemon always detaches (double fork), except under the `run` command of `control = true`; leave it out for now"));
            }
            "shutdown" => {
                let graceful = choice(key, value, &["exit", "graceful"])? == "graceful";
                set(&mut self.graceful, graceful, key_span, span);
            }
            "stop_timeout" => set(&mut self.stop_timeout, seconds(key, value)?, key_span, span),
            "control" => set(&mut self.control, boolean(key, value)?, key_span, span),
            _ => unreachable!("every key of KEYS is handled"),
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

/// What follows a key.
enum Value {
    Expr(Expr),
    /// A bare `key`.
    Missing,
    /// `key(...)`.
    Call,
    /// `key = tokens that are no expression` (such as an unquoted path).
    Unparsable(Span),
}

/// Reads what follows a key. Only a broken token stream is an `Err`: every other mistake is
/// a [`Value`], so that the keys after it are still checked.
fn parse_value(meta: &ParseNestedMeta<'_>) -> syn::Result<Value> {
    if meta.input.peek(Token![=]) {
        let input = meta.value()?;
        if input.fork().parse::<Expr>().is_ok() {
            return Ok(Value::Expr(input.parse()?));
        }
        let span = input.span();
        while !input.is_empty() && !input.peek(Token![,]) {
            input.parse::<proc_macro2::TokenTree>()?;
        }
        return Ok(Value::Unparsable(span));
    }
    if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<TokenStream>()?;
        return Ok(Value::Call);
    }
    Ok(Value::Missing)
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

fn example(key: &str) -> &'static str {
    KEYS.iter()
        .find(|(name, _, _)| *name == key)
        .map_or("", |(_, _, example)| example)
}

fn wrong_type(key: &str, expr: &Expr, what: &str) -> syn::Error {
    syn::Error::new(
        expr.span(),
        format!("`{key}` takes {what}, like `{}`", example(key)),
    )
}

fn string(key: &str, expr: &Expr) -> syn::Result<String> {
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
        _ => Err(wrong_type(key, expr, "a string")),
    }
}

fn path(key: &str, expr: &Expr) -> syn::Result<String> {
    if !matches!(literal(expr), Some(Lit::Str(_))) {
        return Err(wrong_type(key, expr, "a quoted path"));
    }
    let value = string(key, expr)?;
    template::check(&value)
        .map_err(|why| syn::Error::new(expr.span(), format!("`{key}`: {why}")))?;
    Ok(value)
}

fn name(expr: &Expr) -> syn::Result<String> {
    let value = string("name", expr)?;
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
    let value = string("crate", expr)?;
    syn::parse_str(&value).map_err(|_| {
        syn::Error::new(
            expr.span(),
            format!(
                "`crate` must be a Rust path to daemon_runtime, like `{}`; `{value}` is not a path",
                example("crate")
            ),
        )
    })
}

fn boolean(key: &str, expr: &Expr) -> syn::Result<bool> {
    match literal(expr) {
        Some(Lit::Bool(lit)) => Ok(lit.value),
        _ => Err(wrong_type(key, expr, "`true` or `false`")),
    }
}

fn choice(key: &str, expr: &Expr, accepted: &[&'static str]) -> syn::Result<&'static str> {
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

fn umask(expr: &Expr) -> syn::Result<u32> {
    const RANGE: &str = "`umask` must be between 0o000 and 0o777";
    if is_negative(expr) {
        return Err(syn::Error::new(expr.span(), RANGE));
    }
    let Some(Lit::Int(lit)) = literal(expr) else {
        return Err(wrong_type("umask", expr, "an octal integer"));
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
        return Err(wrong_type("keep_fds", expr, "a list of descriptor numbers"));
    };
    let mut fds = Vec::new();
    let mut errors: Option<syn::Error> = None;
    let mut push = |error: syn::Error| match &mut errors {
        Some(errors) => errors.combine(error),
        None => errors = Some(error),
    };
    for element in &array.elems {
        let parsed = match literal(element) {
            Some(Lit::Int(lit)) if !is_negative(element) => lit.base10_parse::<i32>().ok(),
            _ if is_negative(element) => None,
            _ => {
                push(syn::Error::new(
                    element.span(),
                    "`keep_fds` lists descriptor numbers, like `keep_fds = [3, 4]`",
                ));
                continue;
            }
        };
        match parsed {
            Some(fd) if fd <= 2 => push(syn::Error::new(
                element.span(),
                "descriptors 0, 1 and 2 are always kept (on /dev/null or the log files); list only descriptors above 2",
            )),
            Some(fd) if fds.contains(&fd) => push(syn::Error::new(element.span(), format!("descriptor {fd} is listed twice"))),
            Some(fd) => fds.push(fd),
            None => push(syn::Error::new(
                element.span(),
                format!("a descriptor to keep is a number from 3 to {}", i32::MAX),
            )),
        }
    }
    match errors {
        Some(errors) => Err(errors),
        None => Ok(fds),
    }
}

fn seconds(key: &str, expr: &Expr) -> syn::Result<Seconds> {
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
        _ => Err(wrong_type(key, expr, "a number of seconds")),
    }
}

fn key_list() -> String {
    KEYS.iter()
        .map(|(key, _, _)| format!("`{key}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_key(written: &str) -> String {
    let alias = ALIASES
        .iter()
        .find(|(alias, _)| *alias == written)
        .map(|(_, key)| *key);
    let near = || {
        KEYS.iter()
            .map(|(key, _, _)| (edit_distance(written, key), *key))
            .filter(|(distance, key)| *distance <= (key.len() / 3).max(1))
            .min()
            .map(|(_, key)| key)
    };
    match alias.or_else(near) {
        Some(key) => format!("unknown key `{written}`; did you mean `{key}`?"),
        None => format!("unknown key `{written}`; the keys are: {}", key_list()),
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::{edit_distance, unknown_key};

    #[test]
    fn suggests_the_nearest_key() {
        assert_eq!(edit_distance("pidfil", "pidfile"), 1);
        assert!(unknown_key("pidfil").contains("did you mean `pidfile`"));
        assert!(unknown_key("pid_file").contains("did you mean `pidfile`"));
        assert!(unknown_key("cwd").contains("did you mean `workdir`"));
        assert!(unknown_key("color").contains("the keys are"));
    }
}
