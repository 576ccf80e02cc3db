//! The one list of the attribute's keys: each key's name, what it takes and an example (both
//! used in messages), and the near misses people write instead.

/// A key of `#[daemon(...)]` (SPEC.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Pidfile,
    Umask,
    Workdir,
    Stdout,
    Stderr,
    User,
    Group,
    Chroot,
    KeepFds,
    Detach,
    Ready,
    ReadyTimeout,
    Shutdown,
    StopTimeout,
    Control,
    CoreDumps,
    Name,
    Crate,
    Listen,
    Flavor,
    WorkerThreads,
}

impl Key {
    /// Every key, in the order the documentation lists them.
    pub(crate) const ALL: [Key; 21] = [
        Key::Pidfile,
        Key::Umask,
        Key::Workdir,
        Key::Stdout,
        Key::Stderr,
        Key::User,
        Key::Group,
        Key::Chroot,
        Key::KeepFds,
        Key::Detach,
        Key::Ready,
        Key::ReadyTimeout,
        Key::Shutdown,
        Key::StopTimeout,
        Key::Control,
        Key::CoreDumps,
        Key::Name,
        Key::Crate,
        Key::Listen,
        Key::Flavor,
        Key::WorkerThreads,
    ];

    /// The key as written in the attribute.
    pub(crate) fn name(self) -> &'static str {
        self.describe().0
    }

    /// What the key takes, for messages: "a quoted path".
    pub(crate) fn takes(self) -> &'static str {
        self.describe().1
    }

    /// An example of the key with a value, for messages: `pidfile = "/run/mysvc.pid"`.
    pub(crate) fn example(self) -> &'static str {
        self.describe().2
    }

    fn describe(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Key::Pidfile => ("pidfile", "a quoted path", "pidfile = \"/run/mysvc.pid\""),
            Key::Umask => ("umask", "an octal integer", "umask = 0o022"),
            Key::Workdir => ("workdir", "a quoted path", "workdir = \"/var/lib/mysvc\""),
            Key::Stdout => ("stdout", "a quoted path", "stdout = \"/var/log/mysvc.log\""),
            Key::Stderr => ("stderr", "a quoted path", "stderr = \"/var/log/mysvc.err\""),
            Key::User => ("user", "a string", "user = \"mysvc\""),
            Key::Group => ("group", "a string", "group = \"mysvc\""),
            Key::Chroot => ("chroot", "a quoted path", "chroot = \"/var/empty\""),
            Key::KeepFds => (
                "keep_fds",
                "a list of descriptor numbers",
                "keep_fds = [3, 4]",
            ),
            Key::Detach => ("detach", "a quoted string", "detach = \"auto\""),
            Key::Ready => ("ready", "a quoted string", "ready = \"manual\""),
            Key::ReadyTimeout => ("ready_timeout", "a number of seconds", "ready_timeout = 30"),
            Key::Shutdown => ("shutdown", "a quoted string", "shutdown = \"exit\""),
            Key::StopTimeout => ("stop_timeout", "a number of seconds", "stop_timeout = 10"),
            Key::Control => ("control", "`true` or `false`", "control = false"),
            Key::CoreDumps => ("core_dumps", "`true` or `false`", "core_dumps = true"),
            Key::Name => ("name", "a string", "name = \"mysvc\""),
            Key::Crate => (
                "crate",
                "a quoted path",
                "crate = \"::my_reexport::daemon_runtime\"",
            ),
            Key::Listen => (
                "listen",
                "a list of \"NAME=ADDRESS\" strings",
                "listen = [\"http=127.0.0.1:8080\", \"admin=unix:/run/mysvc.sock\"]",
            ),
            Key::Flavor => ("flavor", "a quoted string", "flavor = \"current_thread\""),
            Key::WorkerThreads => ("worker_threads", "a positive integer", "worker_threads = 4"),
        }
    }

    /// The key of that name.
    pub(crate) fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|key| key.name() == name)
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Names people reach for that are not ours, and the key that does the job.
const ALIASES: &[(&str, Key)] = &[
    ("cwd", Key::Workdir),
    ("chdir", Key::Workdir),
    ("dir", Key::Workdir),
    ("directory", Key::Workdir),
    ("working_directory", Key::Workdir),
    ("log", Key::Stdout),
    ("logfile", Key::Stdout),
    ("uid", Key::User),
    ("gid", Key::Group),
    ("pid", Key::Pidfile),
    ("timeout", Key::ReadyTimeout),
    ("threads", Key::WorkerThreads),
    ("runtime", Key::Flavor),
];

/// `` `pidfile`, `umask`, ... ``, for messages.
pub(crate) fn key_list() -> String {
    Key::ALL
        .iter()
        .map(|key| format!("`{}`", key.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The message for a key that is not one: an alias's key, or the nearest key ("did you
/// mean"), or the list.
pub(crate) fn unknown_key(written: &str) -> String {
    let alias = ALIASES
        .iter()
        .find(|(alias, _)| *alias == written)
        .map(|(_, key)| *key);
    let near = || {
        Key::ALL
            .into_iter()
            .map(|key| (edit_distance(written, key.name()), key.name(), key))
            .filter(|(distance, name, _)| *distance <= (name.len() / 3).max(1))
            .min_by_key(|(distance, name, _)| (*distance, *name))
            .map(|(_, _, key)| key)
    };
    match alias.or_else(near) {
        Some(key) => format!("unknown key `{written}`; did you mean `{}`?", key.name()),
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
    use super::{edit_distance, unknown_key, Key};
    use std::collections::BTreeSet;
    use std::path::Path;

    #[test]
    fn suggests_the_nearest_key() {
        assert_eq!(edit_distance("pidfil", "pidfile"), 1);
        assert!(unknown_key("pidfil").contains("did you mean `pidfile`"));
        assert!(unknown_key("pid_file").contains("did you mean `pidfile`"));
        assert!(unknown_key("cwd").contains("did you mean `workdir`"));
        assert!(unknown_key("color").contains("the keys are"));
    }

    #[test]
    fn every_key_has_its_own_name() {
        for key in Key::ALL {
            assert_eq!(Key::from_name(key.name()), Some(key));
            assert!(key.example().starts_with(key.name()), "{key:?}");
        }
    }

    /// The keys named in the first column of the Markdown table that follows `heading` in
    /// `file` (a row may name several: `` | `stdout`, `stderr` | ``).
    fn table_keys(file: &Path, heading: &str) -> BTreeSet<String> {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        let lines: Vec<&str> = text.lines().collect();
        let start = lines
            .iter()
            .position(|line| line.contains(heading))
            .unwrap_or_else(|| panic!("{file:?} has no {heading:?}"));
        let table = lines[start..]
            .iter()
            .map(|line| line.trim_start_matches("///").trim())
            .skip_while(|line| !line.starts_with("| key |"))
            .skip(2)
            .take_while(|line| line.starts_with('|'));
        table
            .flat_map(|row| {
                let cell = row.split('|').nth(1).unwrap_or_default();
                cell.split(',')
                    .map(|name| name.trim().trim_matches('`').to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The key table is written three times: here, in the runtime's docs of the attribute,
    /// and in the README. They list the same keys.
    #[test]
    fn the_documented_key_tables_list_exactly_these_keys() {
        let ours: BTreeSet<String> = Key::ALL.iter().map(|key| key.name().to_owned()).collect();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (file, heading) in [
            ("README.md", "## Attribute keys"),
            (
                "daemon-runtime/src/lib.rs",
                "Turns `fn main` into a correct Unix daemon.",
            ),
        ] {
            let documented = table_keys(&root.join(file), heading);
            assert_eq!(documented, ours, "the key table of {file}");
        }
    }
}
