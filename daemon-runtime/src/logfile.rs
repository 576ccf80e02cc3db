//! A log file of the body's own that follows logrotate: it reopens its path at the first
//! write after a reload request (`SIGHUP`), as the `stdout` and `stderr` logs are reopened by
//! the handler itself.

use crate::events;
use nix::fcntl::OFlag;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// A file that the daemon's own logger writes to, reopened after `SIGHUP` (logrotate's
/// `postrotate` step): after a rotation that moved the file away, the next line goes to a new
/// file at the same path. Opened for append (so that `copytruncate` leaves no hole either),
/// created `0640`, never through a symbolic link.
///
/// For what writes to a file it opened once and never reopens, such as
/// `tracing_appender::rolling::never`, or a `File` handed to a logger:
///
/// ```no_run
/// # fn setup() -> std::io::Result<()> {
/// let log = daemon_runtime::LogFile::open("/var/log/mysvc/events.log")?;
/// // tracing_subscriber::fmt().with_writer(std::sync::Arc::new(log)).init();
/// // or, off the service's threads: tracing_appender::non_blocking(log)
/// # Ok(()) }
/// ```
///
/// The `stdout` and `stderr` keys need none of this: descriptors 1 and 2 are reopened by the
/// daemon itself, so `std::io::stderr()` and every logger writing to it follow the rotation.
/// Outside a daemon started by this crate nothing requests a reload, and the file stays.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    open: Mutex<Opened>,
}

#[derive(Debug)]
struct Opened {
    file: File,
    /// The reload count when `file` was opened.
    reloads: usize,
}

impl LogFile {
    /// Opens (or creates) `path` for append. A relative path is taken from the working
    /// directory now, and kept absolute for the reopens.
    pub fn open(path: impl AsRef<Path>) -> io::Result<LogFile> {
        let path = std::env::current_dir()?.join(path);
        let reloads = events::reload_count();
        let file = open(&path)?;
        Ok(LogFile {
            path,
            open: Mutex::new(Opened { file, reloads }),
        })
    }

    /// The path, absolute.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Opened> {
        let mut opened = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let reloads = events::reload_count();
        if opened.reloads != reloads {
            opened.reloads = reloads;
            // A failed reopen keeps the old file: better than losing the lines.
            if let Ok(file) = open(&self.path) {
                opened.file = file;
            }
        }
        opened
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NOCTTY).bits())
        .open(path)
}

impl Write for &LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.current().file.write(buf)
    }

    /// One `write(2)` per call when it can: a line that a logger hands over whole lands whole,
    /// in one file.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.current().file.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        (&*self).write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
