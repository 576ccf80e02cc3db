//! Path settings: `$VAR`, `${VAR}` and `${VAR:-default}` expansion from the launcher's
//! environment, then resolution of relative paths against the launch directory.

use crate::error::{Error, SystemAction};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Expands `template` and makes it absolute against `cwd`.
///
/// `$$` is a literal `$`. `${VAR:-default}` takes `default` when `VAR` is unset or empty,
/// as in the shell; `$VAR` and `${VAR}` with `VAR` unset is an [`Error::Variable`].
pub(crate) fn resolve(
    setting: &'static str,
    template: &Path,
    cwd: &mut Cwd,
) -> Result<PathBuf, Error> {
    let expanded = PathBuf::from(expand(setting, template.as_os_str(), |name| {
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
    expand(setting, template.as_os_str(), |name| std::env::var_os(name)).map(PathBuf::from)
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
    lookup: impl Fn(&str) -> Option<OsString>,
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
                let close = bytes[i..]
                    .iter()
                    .position(|&b| b == b'}')
                    .ok_or_else(|| malformed("a `${` is never closed with `}`"))?;
                let inner = std::str::from_utf8(&bytes[i + 2..i + close])
                    .map_err(|_| malformed("a variable name is not valid UTF-8"))?;
                let (name, default) = match inner.split_once(":-") {
                    Some((name, default)) => (name, Some(default)),
                    None => (inner, None),
                };
                if !is_name(name) {
                    return Err(malformed(
                        "`${...}` must hold a variable name (letters, digits, `_`)",
                    ));
                }
                match (lookup(name), default) {
                    (Some(value), Some(default)) if value.is_empty() => {
                        out.extend_from_slice(default.as_bytes())
                    }
                    (Some(value), _) => out.extend_from_slice(value.as_bytes()),
                    (None, Some(default)) => out.extend_from_slice(default.as_bytes()),
                    (None, None) => return Err(unset(name)),
                }
                i += close + 1;
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
        expand("pidfile", OsStr::new(template), env).map(|s| s.into_string().unwrap())
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
