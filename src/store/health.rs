//! The store's health: whether the files the connections have open are still the database's
//! (the database file and its WAL, each by device and inode), the probes a monitor thread runs
//! off the request path, and the verdict readiness reads without waiting for any lock.
//!
//! A deleted or replaced WAL is part of the database going away: its committed frames live on
//! only in the file the connections still have open. Before the next write they are copied into
//! the database (a checkpoint through that open file), and every connection is closed and opened
//! afresh, so nothing acknowledged is lost and no 200 is given into an unlinked file.
//!
//! Owns: `Files`, `Store::probe` (the monitor's round: a write after a failed one, a real
//! query), `Store::health` (the verdict), `ensure_file` (checked before every write).
//! Leaves out: when to probe (`lib` runs the monitor), the secret (`router`'s readiness rule).
//! Uses: `schema` (connect, in_transaction), `budget` (stuck reads), rusqlite.

use super::{Error, Store, schema};
use crate::lock;
use rusqlite::Connection;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::SeqCst;

/// (device, inode) of a file.
type Id = (u64, u64);

/// The identities of the database file and its WAL that the connections have open.
#[derive(Clone, Copy, Default, PartialEq, Debug)]
pub(super) struct Files {
    db: Option<Id>,
    wal: Option<Id>,
}

impl Files {
    /// What is at `path` (and `path-wal`) now.
    pub(super) fn at(path: &Path) -> Files {
        Files {
            db: file_id(path),
            wal: file_id(&beside(path, "-wal")),
        }
    }
}

impl Store {
    /// The readiness verdict, from flags and two `stat` calls: never waits for a lock a query or
    /// another process holds. The monitor's last round (`probe`) supplies what needs SQL.
    pub fn health(&self) -> Result<(), &'static str> {
        if self.adopting() {
            Err("adopting the database (see the adoption log lines)")
        } else if self.write_failing.load(SeqCst) || self.files_moved() {
            Err("storage unavailable")
        } else if self.reads_stuck() {
            Err("reads stuck past their budget")
        } else {
            lock(&self.verdict).map_or(Ok(()), Err)
        }
    }

    /// One round of the monitor (every 100 ms, off the request path): whether a write can succeed
    /// (`check_writable`) and a real query against the messages table does.
    pub fn probe(&self) {
        let verdict = match self.adopting() {
            true => Ok(()),
            false => (self.check_writable().map_err(|_| "storage unavailable"))
                .and_then(|()| self.ping().map_err(|_| "database unavailable")),
        };
        *lock(&self.verdict) = verdict.err();
    }

    /// A real query against the messages table.
    fn ping(&self) -> Result<(), Error> {
        let sql = "SELECT count(*) FROM (SELECT 1 FROM messages LIMIT 1)";
        Ok(self.reader(false)?.0.query_row(sql, [], |_| Ok(()))?)
    }

    /// Whether a write can succeed now: the files are in place, and, after a failed write, a
    /// probe transaction that writes 64 KiB (four of the largest messages) commits; clears the
    /// failure flag. A smaller probe can slip into space a failed batch freed and report ready
    /// while real batches still fail.
    fn check_writable(&self) -> Result<(), Error> {
        let mut conn = lock(&self.write);
        let failing = self.write_failing.load(SeqCst);
        let probe = "INSERT INTO probe VALUES (zeroblob(65536)); DELETE FROM probe;";
        let result = self.ensure_file(&mut conn).and_then(|()| match failing {
            true => schema::in_transaction(&conn, probe),
            false => Ok(()),
        });
        self.write_failing.store(result.is_err(), SeqCst);
        result
    }

    /// Whether the database file or its WAL is no longer the one the connections have open.
    fn files_moved(&self) -> bool {
        let Some(path) = &self.path else { return false };
        let (known, now) = (*lock(&self.files), Files::at(path));
        known.db != now.db || known.wal.is_some_and(|w| now.wal != Some(w))
    }

    /// Checks, before a write, that the files are still the ones the connections have open. A
    /// missing database file is an error until one is put back; a different one (restored,
    /// replaced) is reopened; a deleted or replaced WAL is checkpointed and the files reopened.
    pub(super) fn ensure_file(&self, write: &mut Connection) -> Result<(), Error> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let now = Files::at(path);
        let gone = || Error::Failed(format!("database file {} is gone", path.display()));
        let db = now.db.ok_or_else(gone)?;
        // Copied, not held: readiness reads it meanwhile, and a reopen may wait for locks. Only
        // writers call this, under the write lock, so no two run at once.
        let known = *lock(&self.files);
        if known.db == Some(db) {
            match known.wal {
                Some(wal) if now.wal != Some(wal) => self.rescue_wal(write)?,
                _ => {
                    lock(&self.files).wal = known.wal.or(now.wal); // created since: the one now
                    return Ok(());
                }
            }
        }
        let (w, readers, adopting) = schema::connect(path, self.busy_timeout, self.read.len())?;
        if adopting {
            return Err(Error::Failed(format!(
                "{} was replaced by a database to adopt: restart the service",
                path.display()
            )));
        }
        *write = w;
        for ((conn, budget), mut fresh) in self.read.iter().zip(readers) {
            budget.rewatch(&mut fresh)?;
            *lock(conn) = fresh;
        }
        *lock(&self.files) = Files::at(path);
        Ok(())
    }

    /// The WAL was deleted or replaced under the open connections: copies the frames of the one
    /// they have open into the database file, then closes every connection (none may go on using
    /// that WAL), for `ensure_file` to open them afresh.
    fn rescue_wal(&self, write: &mut Connection) -> Result<(), Error> {
        let mut readers: Vec<_> = self.read.iter().map(|(c, _)| lock(c)).collect();
        let busy: i64 = write.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            return Err(Error::Failed(
                "the WAL was deleted; its checkpoint is blocked".into(),
            ));
        }
        *write = Connection::open_in_memory()?;
        for conn in &mut readers {
            **conn = Connection::open_in_memory()?;
        }
        Ok(())
    }
}

/// Claims the database file for this process: an exclusive lock on `path.lock`, taken before
/// anything is written and held while the store lives (the kernel lets it go however the process
/// ends), holding this process's id. A second service on the same file is refused, naming the
/// holder.
pub(super) fn claim(path: &Path) -> Result<std::fs::File, Error> {
    use std::{io::Read, os::unix::fs::FileExt};
    let lock_path = beside(path, ".lock");
    let fail = |why: String| Error::Failed(format!("{}: {why}", lock_path.display()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| fail(e.to_string()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = (&file).read_to_string(&mut holder);
            return Err(fail(format!(
                "another service (pid {}) serves {}; one service per database file",
                holder.trim(),
                path.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(fail(e.to_string())),
    }
    let pid = std::process::id().to_string();
    (file
        .set_len(0)
        .and_then(|()| file.write_all_at(pid.as_bytes(), 0)))
    .map_err(|e| fail(e.to_string()))?;
    Ok(file)
}

/// A file beside the database file: its name followed by `suffix` (`-wal`, `.lock`).
pub(super) fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn file_id(path: &Path) -> Option<Id> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}
