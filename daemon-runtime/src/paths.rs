//! Path settings: `$VAR`, `${VAR}` and `${VAR:-default}` expansion from the launcher's
//! environment, then resolution of relative paths against the launch directory.

use crate::error::{Error, SystemAction};
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The path as a C string, for the system calls: the one place a NUL byte in a path is
/// refused.
pub(crate) fn c_string(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the path contains a NUL byte"))
}

/// Expands `template` and makes it absolute against `cwd`.
///
/// `$$` is a literal `$`. `${VAR:-default}` takes `default` when `VAR` is unset or empty,
/// as in the shell; `$VAR` and `${VAR}` with `VAR` unset is an [`Error::Variable`].
pub(crate) fn resolve(
    setting: &'static str,
    template: &Path,
    cwd: &mut Cwd,
) -> Result<PathBuf, Error> {
    let expanded = PathBuf::from(expand(setting, template.as_os_str(), &|name| {
        std::env::var_os(name)
    })?);
    if expanded.as_os_str().is_empty() {
        return Err(Error::Template {
            setting,
            template: template.display().to_string(),
            reason: "it expands to an empty path",
        });
    }
    if expanded.is_absolute() {
        Ok(expanded)
    } else {
        Ok(cwd.get()?.join(expanded))
    }
}

/// Expands `template` without making it absolute (a path inside a chroot).
pub(crate) fn expand_only(setting: &'static str, template: &Path) -> Result<PathBuf, Error> {
    expand(setting, template.as_os_str(), &|name| {
        std::env::var_os(name)
    })
    .map(PathBuf::from)
}

/// The environment variables `template` uses, in order, those in defaults included: the
/// expansion itself, run with every variable set and empty (so that every default is
/// expanded in turn), noting each name it looks up.
pub(crate) fn variables(template: &str) -> Vec<String> {
    let names = std::cell::RefCell::new(Vec::new());
    let _ = expand("template", OsStr::new(template), &|name| {
        names.borrow_mut().push(name.to_owned());
        Some(OsString::new())
    });
    names.into_inner()
}

/// The launch directory, read once and only if a relative path needs it.
#[derive(Default)]
pub(crate) struct Cwd(Option<PathBuf>);

impl Cwd {
    fn get(&mut self) -> Result<&Path, Error> {
        if self.0.is_none() {
            let cwd = std::env::current_dir().map_err(|source| Error::System {
                action: SystemAction::CurrentDir,
                source,
            })?;
            self.0 = Some(cwd);
        }
        Ok(self.0.as_deref().unwrap_or(Path::new("/")))
    }
}

fn expand(
    setting: &'static str,
    template: &OsStr,
    lookup: &dyn Fn(&str) -> Option<OsString>,
) -> Result<OsString, Error> {
    let bytes = template.as_bytes();
    let malformed = |reason| Error::Template {
        setting,
        template: template.to_string_lossy().into_owned(),
        reason,
    };
    let unset = |name: &str| Error::Variable {
        setting,
        template: template.to_string_lossy().into_owned(),
        variable: name.to_owned(),
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => {
                out.push(b'$');
                i += 2;
            }
            Some(b'{') => {
                let close = closing_brace(&bytes[i + 2..])
                    .ok_or_else(|| malformed("a `${` is never closed with `}`"))?;
                let inner = &bytes[i + 2..i + 2 + close];
                let (name, default) = match inner.windows(2).position(|pair| pair == b":-") {
                    Some(at) => (&inner[..at], Some(&inner[at + 2..])),
                    None => (inner, None),
                };
                let name = std::str::from_utf8(name)
                    .ok()
                    .filter(|name| is_name(name))
                    .ok_or_else(|| {
                        malformed("`${...}` must hold a variable name (letters, digits, `_`)")
                    })?;
                let value = lookup(name).filter(|value| default.is_none() || !value.is_empty());
                match (value, default) {
                    (Some(value), _) => out.extend_from_slice(value.as_bytes()),
                    // The default is expanded in turn, as the shell does: `${A:-${B:-/run}}`.
                    (None, Some(default)) => out.extend_from_slice(
                        expand(setting, OsStr::from_bytes(default), lookup)
                            .map_err(|error| match error {
                                // Name the whole template, not the default alone.
                                Error::Variable { variable, .. } => Error::Variable {
                                    setting,
                                    template: template.to_string_lossy().into_owned(),
                                    variable,
                                },
                                Error::Template { reason, .. } => malformed(reason),
                                other => other,
                            })?
                            .as_bytes(),
                    ),
                    (None, None) => return Err(unset(name)),
                }
                i += 2 + close + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let start = i + 1;
                let mut end = start;
                while end < bytes.len()
                    && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_')
                {
                    end += 1;
                }
                let name = std::str::from_utf8(&bytes[start..end]).unwrap_or_default();
                let value = lookup(name).ok_or_else(|| unset(name))?;
                out.extend_from_slice(value.as_bytes());
                i = end;
            }
            _ => {
                return Err(malformed(
                    "a `$` is not followed by a variable name; write `$$` for a `$`",
                ))
            }
        }
    }
    Ok(OsString::from_vec(out))
}

/// The position of the `}` that closes a `${` whose inside starts `bytes`, counting the
/// `${` nested in it.
fn closing_brace(bytes: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<OsString> {
        match name {
            "HOME" => Some("/home/me".into()),
            "EMPTY" => Some("".into()),
            _ => None,
        }
    }

    fn run(template: &str) -> Result<String, Error> {
        expand("pidfile", OsStr::new(template), &env).map(|s| s.into_string().unwrap())
    }

    #[test]
    fn expands_like_the_shell() {
        assert_eq!(run("/run/x.pid").unwrap(), "/run/x.pid");
        assert_eq!(run("$HOME/x").unwrap(), "/home/me/x");
        assert_eq!(run("${HOME}x").unwrap(), "/home/mex");
        assert_eq!(run("${NOPE:-/tmp}/x").unwrap(), "/tmp/x");
        assert_eq!(run("${EMPTY:-/tmp}/x").unwrap(), "/tmp/x");
        assert_eq!(run("${HOME:-/tmp}/x").unwrap(), "/home/me/x");
        assert_eq!(run("a$$b").unwrap(), "a$b");
        assert_eq!(run("$EMPTY/x").unwrap(), "/x");
    }

    #[test]
    fn a_default_is_expanded_in_turn() {
        assert_eq!(run("${NOPE:-${HOME}}/x").unwrap(), "/home/me/x");
        assert_eq!(run("${NOPE:-$HOME}/x").unwrap(), "/home/me/x");
        assert_eq!(run("${NOPE:-${NADA:-/srv}/a}/x").unwrap(), "/srv/a/x");
        assert_eq!(run("${HOME:-${NOPE}}/x").unwrap(), "/home/me/x");
        assert_eq!(run("${EMPTY:-${HOME}x}").unwrap(), "/home/mex");
        // An unset variable inside the default is named, with the whole template.
        assert_eq!(
            run("${NOPE:-${NADA}}/x").unwrap_err().to_string(),
            "cannot expand pidfile \"${NOPE:-${NADA}}/x\": environment variable NADA is not set \
             (write ${NADA:-default} to give a fallback)"
        );
        assert!(matches!(
            run("${NOPE:-${HOME}"),
            Err(Error::Template { .. })
        ));
    }

    #[test]
    fn names_the_unset_variable() {
        match run("${NOPE}/x") {
            Err(Error::Variable { variable, .. }) => assert_eq!(variable, "NOPE"),
            other => panic!("{other:?}"),
        }
        let message = run("$NOPE/x").unwrap_err().to_string();
        assert_eq!(
            message,
            "cannot expand pidfile \"$NOPE/x\": environment variable NOPE is not set \
             (write ${NOPE:-default} to give a fallback)"
        );
    }

    #[test]
    fn refuses_malformed_templates() {
        for bad in ["${HOME", "${}", "$", "/a/$-"] {
            assert!(matches!(run(bad), Err(Error::Template { .. })), "{bad}");
        }
    }

    #[test]
    fn resolves_relative_paths_against_the_launch_directory() {
        let mut cwd = Cwd(Some(PathBuf::from("/srv/app")));
        assert_eq!(
            resolve("pidfile", Path::new("run/x.pid"), &mut cwd).unwrap(),
            Path::new("/srv/app/run/x.pid")
        );
        assert_eq!(
            resolve("pidfile", Path::new("/abs"), &mut cwd).unwrap(),
            Path::new("/abs")
        );
    }
}
