//! SPEC §8: the `unit` and `unit socket` commands print systemd units for the service, as
//! they are to be installed (`mysvc unit > /etc/systemd/system/mysvc.service`).
//!
//! The service unit runs the program in the foreground with `Type=notify` (the service tells
//! systemd when it is ready, reloading, stopping); it has no `PIDFile=`, which belongs to
//! `Type=forking`. The variables the settings' paths use are written as `Environment=` lines
//! with their values now, so that the service finds the same files as the program does when
//! started from this shell.

use crate::builder::Daemon;
use std::fmt::Write as _;
use std::path::Path;

/// The service unit.
pub(crate) fn service(daemon: &Daemon, name: &str) -> Result<String, String> {
    let program = std::env::current_exe()
        .map_err(|error| format!("cannot find the program's own path: {error}"))?;
    let mut unit = String::new();
    let _ = writeln!(unit, "[Unit]\nDescription={name}");
    if !daemon.listen.is_empty() {
        let _ = writeln!(unit, "After=network.target");
    }
    let _ = writeln!(unit, "\n[Service]\nType=notify");
    let _ = writeln!(
        unit,
        "ExecStart={} run",
        command_word(&program.to_string_lossy())
    );
    let _ = writeln!(unit, "ExecReload=/bin/kill -HUP $MAINPID");
    let _ = writeln!(unit, "UMask={:04o}", daemon.umask);
    if daemon.chroot.is_none() && daemon.workdir.is_absolute() && !has_variable(&daemon.workdir) {
        let directory = daemon.workdir.to_string_lossy().replace('%', "%%");
        let _ = writeln!(unit, "WorkingDirectory={directory}");
    }
    for (variable, value) in variables(daemon) {
        let _ = writeln!(unit, "Environment=\"{variable}={}\"", escape(&value));
    }
    let _ = writeln!(unit, "Restart=on-failure");
    let _ = writeln!(unit, "\n[Install]\nWantedBy=multi-user.target");
    Ok(unit)
}

/// The socket unit for one `listen` entry: systemd gives every descriptor of a socket unit
/// the same `FileDescriptorName=`, so an entry is a unit (`NAME-ENTRY.socket`). `entry` may
/// be left out when there is one.
pub(crate) fn socket(daemon: &Daemon, name: &str, entry: Option<&str>) -> Result<String, String> {
    let entries: Vec<(&str, &str)> = daemon
        .listen
        .iter()
        .filter_map(|entry| entry.split_once('='))
        .collect();
    let names = || {
        entries
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (socket_name, address) = match (entry, entries.as_slice()) {
        (_, []) => return Err("it has no `listen` entries, so no socket unit".to_owned()),
        (None, [only]) => *only,
        (None, _) => {
            return Err(format!(
                "it listens on several sockets; name one: `unit socket NAME` with NAME one of {}",
                names()
            ))
        }
        (Some(wanted), _) => *entries
            .iter()
            .find(|(name, _)| *name == wanted)
            .ok_or_else(|| format!("no `listen` entry \"{wanted}\"; there are: {}", names()))?,
    };
    // What the service would bind: variables expanded now, a relative path made absolute
    // against this directory, a host name resolved (ListenStream= takes addresses).
    let listen = match address.strip_prefix("unix:") {
        Some(path) => {
            let path = expand(path);
            match std::env::current_dir() {
                Ok(cwd) if Path::new(&path).is_relative() => cwd.join(path).display().to_string(),
                _ => path,
            }
        }
        None => {
            use std::net::ToSocketAddrs;
            let address = expand(address);
            address
                .to_socket_addrs()
                .ok()
                .and_then(|mut addresses| addresses.next())
                .map_or(address, |resolved| resolved.to_string())
        }
    }
    .replace('%', "%%");
    let mut unit = String::new();
    let _ = writeln!(unit, "[Unit]\nDescription={name} socket {socket_name}");
    let _ = writeln!(unit, "\n[Socket]\nListenStream={listen}");
    let _ = writeln!(unit, "FileDescriptorName={socket_name}");
    let _ = writeln!(unit, "Service={name}.service");
    let _ = writeln!(unit, "\n[Install]\nWantedBy=sockets.target");
    Ok(unit)
}

/// The variables the settings use, with their values in this environment (unset ones are
/// left out: their defaults apply).
fn variables(daemon: &Daemon) -> Vec<(String, String)> {
    let mut templates: Vec<String> = [
        &daemon.pidfile,
        &daemon.stdout,
        &daemon.stderr,
        &daemon.chroot,
    ]
    .into_iter()
    .flatten()
    .map(|path| path.to_string_lossy().into_owned())
    .collect();
    templates.push(daemon.workdir.to_string_lossy().into_owned());
    templates.extend(daemon.listen.iter().cloned());
    let mut names: Vec<String> = templates
        .iter()
        .flat_map(|template| crate::paths::variables(template))
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| std::env::var(&name).ok().map(|value| (name, value)))
        .collect()
}

fn has_variable(path: &Path) -> bool {
    path.to_string_lossy().contains('$')
}

/// A `listen` address with its variables expanded now (what the service would bind).
fn expand(address: &str) -> String {
    crate::paths::expand_only("listen", Path::new(address))
        .map(|path| path.to_string_lossy().into_owned())
        .unwrap_or_else(|_| address.to_owned())
}

/// The program's path as `ExecStart=`'s first word: `%` (specifiers) and `$` (variables)
/// doubled, and quoted if it has spaces.
fn command_word(path: &str) -> String {
    let path = path.replace('$', "$$");
    match path.contains(char::is_whitespace) {
        true => format!("\"{}\"", escape(&path)),
        false => path.replace('%', "%%"),
    }
}

/// Escapes a value inside systemd's double quotes: `\`, `"`, a newline (C-style), and `%`
/// (specifiers).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace('%', "%%")
}

#[cfg(test)]
mod tests {
    use super::{command_word, escape};

    #[test]
    fn values_are_escaped_for_systemd() {
        assert_eq!(command_word("/opt/a%b$c/svc"), "/opt/a%%b$$c/svc");
        assert_eq!(command_word("/opt/my svc"), "\"/opt/my svc\"");
        assert_eq!(escape("a\"b\\c\nd%e"), "a\\\"b\\\\c\\nd%%e");
    }

    #[test]
    fn finds_the_variables_of_a_template() {
        assert_eq!(
            crate::paths::variables("${RUNTIME_DIRECTORY:-/run}/x-$USER.pid$$${B:-${C}}"),
            ["RUNTIME_DIRECTORY", "USER", "B", "C"]
        );
    }
}
