//! Storage: the `messages` table in SQLite, one mutex-guarded write connection and one read
//! connection. Speaks the domain (messages, filters, stats), never HTTP.
//!
//! Durability: WAL with `synchronous=FULL`, so when `insert` returns the row is on disk and a
//! crash or power cut right after loses nothing. Idempotency: `message_id` is the primary key and
//! `INSERT ... ON CONFLICT DO NOTHING` reports, through the change count, whether the row is new.
//!
//! Besides the spec's columns the table keeps two derived ones: `ts_key`, the instant of `ts` as
//! a sortable string (see `ts.rs`), and `text_fold`, the text case-folded for `q`. Both are
//! written on insert only, so the spec's columns stay readable by any SQLite tool.

use crate::config::DbLocation;
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// One stored message, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub message_id: String,
    pub from: String,
    pub to: String,
    /// Exactly as sent.
    pub ts: String,
    pub text: Option<String>,
}

/// Whether `insert` stored a new row or found the id already there (and changed nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New,
    Duplicate,
}

/// The filters and page of a listing. Absent filters are `None`.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub from: Option<String>,
    /// The `ts_key` the instant must reach (inclusive).
    pub since_key: Option<String>,
    /// Substring of the text, compared case-insensitively.
    pub q: Option<String>,
    pub limit: u32,
    pub offset: u64,
}

/// One page of messages plus the number of all rows matching the filters.
#[derive(Debug)]
pub struct Page {
    pub messages: Vec<Message>,
    pub total: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Stats {
    pub total_messages: i64,
    pub senders_count: i64,
    /// At most ten `(from, count)`, count descending, ties by `from` ascending.
    pub top_senders: Vec<(String, i64)>,
    pub first_ts: Option<String>,
    pub last_ts: Option<String>,
}

/// A storage failure: SQLite said no (disk full, locked, read-only, corrupt), or the database
/// file is gone. Only ever mapped to 503 and logged, so it carries just the description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error(format!("sqlite: {e}"))
    }
}

/// One row waiting to be written, and where its outcome goes.
struct Job {
    seq: u64,
    message: Message,
    ts_key: String,
    created_at: String,
}

/// The group-commit queue: rows waiting for the next transaction and outcomes waiting to be
/// collected. One inserting thread at a time is the *leader*: it takes every waiting row, writes
/// them in one transaction, publishes each row's outcome, and wakes the others.
#[derive(Default)]
struct Queue {
    next_seq: u64,
    waiting: Vec<Job>,
    outcomes: HashMap<u64, Result<Inserted, Error>>,
    leader: bool,
}

pub struct Store {
    /// The file, for `File` databases: checked before every write so a deleted or replaced file
    /// is noticed (writes would otherwise go to an unlinked inode and vanish on restart).
    path: Option<PathBuf>,
    /// (device, inode) of the file the connections have open.
    file_id: Mutex<Option<(u64, u64)>>,
    busy_timeout: Duration,
    write: Mutex<Connection>,
    /// A second connection so reads do not wait for the write lock (WAL lets them run while a
    /// write commits). `None` for an in-memory database, where a second connection would see a
    /// different, empty database: reads then share the write connection.
    read: Option<Mutex<Connection>>,
    queue: Mutex<Queue>,
    done: Condvar,
    /// Set when a write failed, cleared by the next that succeeds; readiness probes while set.
    write_failing: AtomicBool,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    message_id  TEXT PRIMARY KEY,
    from_msisdn TEXT NOT NULL,
    to_msisdn   TEXT NOT NULL,
    ts          TEXT NOT NULL,
    text        TEXT,
    created_at  TEXT NOT NULL,
    ts_key      TEXT NOT NULL,
    text_fold   TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (ts_key, message_id);
CREATE INDEX IF NOT EXISTS messages_by_sender ON messages (from_msisdn, ts_key, message_id);
-- Aggregates kept current in the insert transaction, so /stats and unfiltered totals do not
-- scan the table.
CREATE TABLE IF NOT EXISTS senders (from_msisdn TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS senders_by_count ON senders (n DESC, from_msisdn);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
-- Rows per hour of ts_key (`YYYY-MM-DDTHH`): `since` totals and deep offsets skip whole hours.
CREATE TABLE IF NOT EXISTS hours (hour TEXT PRIMARY KEY, n INTEGER NOT NULL);
-- Trigram index of text_fold for `q` (contentless: it stores only the index, keyed by rowid).
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5 (
    text_fold, content = '', tokenize = 'trigram case_sensitive 1'
);
-- Written and rolled back by the readiness probe while writes are failing.
CREATE TABLE IF NOT EXISTS probe (b BLOB);
";

/// Fills the aggregates and the text index from the table when they are new (a database from
/// before they existed).
const BACKFILL: &str = "
INSERT INTO hours SELECT substr(ts_key, 1, 13), count(*) FROM messages
    WHERE NOT EXISTS (SELECT 1 FROM counters) GROUP BY 1;
INSERT INTO senders SELECT from_msisdn, count(*) FROM messages
    WHERE NOT EXISTS (SELECT 1 FROM senders) GROUP BY from_msisdn;
INSERT OR IGNORE INTO counters VALUES ('messages', (SELECT count(*) FROM messages));
INSERT OR IGNORE INTO counters VALUES ('senders', (SELECT count(*) FROM senders));
-- Rows up to this rowid are in the trigram index; the next write indexes the rest in batches.
INSERT OR IGNORE INTO counters VALUES ('fts_rowid', 0);
";

impl Store {
    /// Opens (creating if needed) the database and its schema. `busy_timeout` is how long a
    /// statement waits for a lock held by another process before failing.
    pub fn open(location: &DbLocation, busy_timeout: Duration) -> Result<Store, Error> {
        let (path, write, read) = match location {
            DbLocation::Memory => {
                let conn = Connection::open_in_memory()?;
                conn.execute_batch(SCHEMA)?;
                conn.execute_batch(BACKFILL)?;
                (None, conn, None)
            }
            DbLocation::File(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| Error(format!("database folder: {e}")))?;
                }
                let (write, read) = connect(path, busy_timeout)?;
                (Some(path.clone()), write, Some(Mutex::new(read)))
            }
        };
        Ok(Store {
            file_id: Mutex::new(path.as_deref().and_then(file_id)),
            path,
            busy_timeout,
            write: Mutex::new(write),
            read,
            queue: Mutex::new(Queue::default()),
            done: Condvar::new(),
            write_failing: AtomicBool::new(false),
        })
    }

    /// Stores a message unless its id is already there; a known id leaves the stored row as it was.
    /// `ts_key` is the sortable instant of `m.ts`. Returns once the row's transaction is on disk.
    ///
    /// Group commit: rows that arrive while a transaction is being written go together into the
    /// next one, so one fsync serves many requests. Each still learns its own outcome.
    pub fn insert(&self, m: &Message, ts_key: &str, created_at: &str) -> Result<Inserted, Error> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let seq = q.next_seq;
        q.next_seq += 1;
        q.waiting.push(Job {
            seq,
            message: m.clone(),
            ts_key: ts_key.into(),
            created_at: created_at.into(),
        });
        loop {
            if let Some(outcome) = q.outcomes.remove(&seq) {
                return outcome;
            }
            if q.leader {
                q = self.done.wait(q).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            q.leader = true;
            let batch = std::mem::take(&mut q.waiting);
            drop(q);
            // On every exit, even unwinding from a panic, the guard fails any row left without an
            // outcome, clears the leader flag and wakes the waiters, so nobody waits forever.
            let guard = Leader {
                store: self,
                seqs: batch.iter().map(|j| j.seq).collect(),
            };
            let outcome = self.write_batch(&batch);
            q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            for job in &batch {
                q.outcomes.insert(
                    job.seq,
                    outcome.as_ref().map(|o| o[&job.seq]).map_err(Error::clone),
                );
            }
            drop(q);
            drop(guard);
            q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Imports rows (message and `ts_key`) in transactions of `chunk` rows, bypassing the
    /// group-commit queue: for preloading a database (the benchmark) or a bulk import.
    pub fn import(
        &self,
        rows: Vec<(Message, String)>,
        created_at: &str,
        chunk: usize,
    ) -> Result<(), Error> {
        let jobs: Vec<Job> = rows
            .into_iter()
            .enumerate()
            .map(|(i, (message, ts_key))| Job {
                seq: i as u64,
                message,
                ts_key,
                created_at: created_at.into(),
            })
            .collect();
        for batch in jobs.chunks(chunk.max(1)) {
            self.write_batch(batch)?;
        }
        Ok(())
    }

    /// Writes a batch in one transaction; all rows commit together or none do.
    fn write_batch(&self, batch: &[Job]) -> Result<HashMap<u64, Inserted>, Error> {
        let mut conn = lock(&self.write);
        let result = self.ensure_file(&mut conn).and_then(|()| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut outcomes = HashMap::with_capacity(batch.len());
            let (mut new_messages, mut new_senders) = (0i64, 0i64);
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO messages (message_id, from_msisdn, to_msisdn, ts, text, created_at, ts_key, text_fold)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (message_id) DO NOTHING",
                )?;
                let mut bump = tx.prepare_cached("UPDATE senders SET n = n + 1 WHERE from_msisdn = ?1")?;
                let mut first = tx.prepare_cached("INSERT INTO senders VALUES (?1, 1)")?;
                let mut hour = tx.prepare_cached(
                    "INSERT INTO hours VALUES (?1, 1) ON CONFLICT (hour) DO UPDATE SET n = n + 1",
                )?;
                for job in batch {
                    let m = &job.message;
                    let text_fold = m.text.as_deref().map(fold);
                    let changed = insert.execute(params![
                        m.message_id, m.from, m.to, m.ts, m.text, job.created_at, job.ts_key, text_fold
                    ])?;
                    let inserted = if changed == 1 { Inserted::New } else { Inserted::Duplicate };
                    if inserted == Inserted::New {
                        new_messages += 1;
                        hour.execute([hour_of(&job.ts_key)])?;
                        if bump.execute([&m.from])? == 0 {
                            first.execute([&m.from])?;
                            new_senders += 1;
                        }
                    }
                    outcomes.insert(job.seq, inserted);
                }
                let mut count = tx.prepare_cached("UPDATE counters SET n = n + ?2 WHERE name = ?1")?;
                count.execute(params!["messages", new_messages])?;
                count.execute(params!["senders", new_senders])?;
                if new_messages > 0 {
                    index_text(&tx, FTS_BATCH)?;
                }
            }
            tx.commit()?;
            Ok(outcomes)
        });
        self.write_failing.store(result.is_err(), SeqCst);
        result
    }

    /// Whether a write can succeed now: the file is in place, and, after a failed write, a probe
    /// transaction that writes 64 KiB (four of the largest messages) commits. Used by readiness;
    /// clears the failure flag. A smaller probe can slip into space a failed batch freed and
    /// report ready while real batches still fail.
    pub fn check_writable(&self) -> Result<(), Error> {
        let mut conn = lock(&self.write);
        self.ensure_file(&mut conn)?;
        if self.write_failing.load(SeqCst) {
            conn.execute_batch(
                "BEGIN IMMEDIATE; INSERT INTO probe VALUES (zeroblob(65536)); DELETE FROM probe; COMMIT;",
            )
            .inspect_err(|_| {
                let _ = conn.execute_batch("ROLLBACK");
            })?;
            self.write_failing.store(false, SeqCst);
        }
        Ok(())
    }

    /// Checks that the database file is still the one the connections have open. A missing file
    /// is an error until one is put back; a different file (restored, replaced) is reopened.
    fn ensure_file(&self, write: &mut Connection) -> Result<(), Error> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let current = file_id(path)
            .ok_or_else(|| Error(format!("database file {} is gone", path.display())))?;
        let mut known = self.file_id.lock().unwrap_or_else(|p| p.into_inner());
        if *known != Some(current) {
            let (w, r) = connect(path, self.busy_timeout)?;
            *write = w;
            if let Some(read) = &self.read {
                *lock(read) = r;
            }
            *known = Some(current);
        }
        Ok(())
    }

    /// One page of messages ordered by instant then id, and the count of all that match. Uses
    /// every shortcut: aggregates for totals, the trigram index for `q`, hour buckets for deep
    /// offsets (a test compares each with a plain model of the rows).
    pub fn list(&self, f: &Filter) -> Result<Page, Error> {
        let q = f.q.as_deref().map(fold);
        // The trigram index answers `q` of three characters or more exactly: a phrase of
        // consecutive trigrams is a substring. Shorter patterns fall back to instr(). Either way
        // `%` and `_` are ordinary characters.
        // A NUL ends an FTS5 query string early, so such patterns take the plain path too.
        let indexed_q = q
            .as_ref()
            .is_some_and(|q| q.chars().count() >= 3 && !q.contains('\0'));
        let mut w = Where::default();
        if let Some(from) = &f.from {
            w.add("from_msisdn = ?", from.clone());
        }
        if let Some(since) = &f.since_key {
            w.add("ts_key >= ?", since.clone());
        }
        match &q {
            Some(q) if indexed_q => {
                // Indexed rows through the index, the few above the watermark by instr().
                w.add(
                    "rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?",
                    phrase(q),
                );
                w.extend(
                    &format!(
                        " UNION ALL SELECT rowid FROM messages
                          WHERE rowid > (SELECT n FROM counters WHERE name = 'fts_rowid') AND {CONTAINS})"
                    ),
                    q.as_bytes().to_vec(),
                );
            }
            Some(q) => w.add(CONTAINS, q.as_bytes().to_vec()),
            None => {}
        }
        let mut conn = self.reader();
        // One read transaction, so `total` and the page come from the same snapshot.
        let tx = conn.transaction()?;
        let total: i64 = match (&f.from, &f.since_key, &q) {
            (None, None, None) => counter(&tx, "messages")?,
            (Some(from), None, None) => tx
                .prepare_cached("SELECT n FROM senders WHERE from_msisdn = ?1")?
                .query_row([from], |r| r.get(0))
                .optional()?
                .unwrap_or(0),
            (None, Some(since), None) => count_since(&tx, since)?,
            (None, None, Some(q)) if indexed_q => tx
                .prepare_cached(&format!(
                    "SELECT (SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?1)
                          + (SELECT count(*) FROM messages WHERE rowid > (SELECT n FROM counters WHERE name = 'fts_rowid')
                             AND {})",
                    CONTAINS.replace('?', "?2")
                ))?
                .query_row(params![phrase(q), q.as_bytes()], |r| r.get(0))?,
            _ => w.count(&tx)?,
        };
        let mut offset = f.offset;
        let mut table = "messages";
        if f.from.is_none() && q.is_none() && offset >= SEEK_FROM {
            // Deep offset by instant: skip whole hours by their counts, then step inside one.
            let (start_hour, rest) = seek_hour(&tx, f.since_key.as_deref(), offset)?;
            if let Some(hour) = start_hour {
                w.add("ts_key >= ?", hour);
                offset = rest;
            }
        } else if indexed_q && f.from.is_none() && f.since_key.is_none() && total > 2000 {
            // Many matches: walk the time index and keep the matching rows, rather than fetch
            // and sort every match.
            table = "messages INDEXED BY messages_by_time";
        }
        let filter = w.sql();
        let mut args = w.args;
        let n = args.len();
        args.push(Sql::Integer(i64::from(f.limit)));
        args.push(Sql::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
        let messages = tx
            .prepare_cached(&format!(
                "SELECT message_id, from_msisdn, to_msisdn, ts, text FROM {table} {filter}
                 ORDER BY ts_key, message_id LIMIT ?{} OFFSET ?{}",
                n + 1,
                n + 2
            ))?
            .query_map(params_from_iter(&args), row_to_message)?
            .collect::<Result<Vec<_>, _>>()?;
        tx.finish()?;
        Ok(Page { messages, total })
    }

    /// Counts, top senders and the first and last timestamps, from one snapshot. Counts and the
    /// top ten come from the aggregates kept by `insert`; first and last are index lookups.
    pub fn stats(&self) -> Result<Stats, Error> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        let total_messages = counter(&tx, "messages")?;
        let senders_count = counter(&tx, "senders")?;
        let top_senders = tx
            .prepare_cached(
                "SELECT from_msisdn, n FROM senders ORDER BY n DESC, from_msisdn ASC LIMIT 10",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        let edge = |order: &str| {
            tx.query_row(
                &format!("SELECT ts FROM messages ORDER BY {order} LIMIT 1"),
                [],
                |r| r.get(0),
            )
            .optional()
        };
        let first_ts = edge("ts_key ASC, message_id ASC")?;
        let last_ts = edge("ts_key DESC, message_id DESC")?;
        tx.finish()?;
        Ok(Stats {
            total_messages,
            senders_count,
            top_senders,
            first_ts,
            last_ts,
        })
    }

    /// A real query against the messages table, for readiness.
    pub fn ping(&self) -> Result<(), Error> {
        self.reader().query_row(
            "SELECT count(*) FROM (SELECT 1 FROM messages LIMIT 1)",
            [],
            |_| Ok(()),
        )?;
        Ok(())
    }

    /// Test builds only: panics while holding the write lock, poisoning it.
    #[cfg(feature = "fault-injection")]
    pub fn panic_holding_write_lock(&self) -> ! {
        let _held = lock(&self.write);
        panic!("injected panic holding the write lock")
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        lock(self.read.as_ref().unwrap_or(&self.write))
    }
}

/// Opens the write and read connections on `path` with our pragmas and schema.
fn connect(path: &Path, busy_timeout: Duration) -> Result<(Connection, Connection), Error> {
    let write = Connection::open(path)?;
    write.busy_timeout(busy_timeout)?;
    // `journal_mode` answers with a row, so it is read rather than executed.
    let _mode: String = write.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    // FULL: every commit is fsynced before `insert` returns (a 200 means "on disk").
    // temp_store: the container image has no /tmp.
    // wal_autocheckpoint 8000 pages (32 MiB) instead of 1000: the checkpoint runs inside a
    // committing request, and doing it an eighth as often lifted durable ingest by ~15% in
    // `make bench`. journal_size_limit truncates the WAL back to 64 MiB at most afterwards.
    write.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;
         PRAGMA wal_autocheckpoint = 8000; PRAGMA journal_size_limit = 67108864;",
    )?;
    write.execute_batch(SCHEMA)?;
    write.execute_batch(BACKFILL)?;
    let read = Connection::open(path)?;
    read.busy_timeout(busy_timeout)?;
    read.execute_batch("PRAGMA query_only = ON; PRAGMA temp_store = MEMORY;")?;
    Ok((write, read))
}

/// `text_fold` contains the bound pattern: instr() over bytes, a plain substring test (`%` and
/// `_` are ordinary); for valid UTF-8 a byte substring is a character substring.
const CONTAINS: &str = "instr(CAST(text_fold AS BLOB), ?) > 0";

/// Rows are added to the trigram index in batches of at least this many (in the transaction that
/// reaches it), not one transaction at a time: FTS5 writes a segment per transaction, and small
/// ones cost about a quarter of the ingest rate. Rows above the watermark are matched by instr().
const FTS_BATCH: i64 = 256;

/// Indexes the rows above the `fts_rowid` watermark once there are at least `min` of them
/// (rowids only grow: rows are never deleted), and moves the watermark.
fn index_text(conn: &Connection, min: i64) -> Result<(), Error> {
    let watermark = counter(conn, "fts_rowid")?;
    let last: i64 = conn
        .prepare_cached("SELECT coalesce(max(rowid), 0) FROM messages")?
        .query_row([], |r| r.get(0))?;
    if last - watermark >= min {
        conn.prepare_cached(
            "INSERT INTO messages_fts (rowid, text_fold)
             SELECT rowid, text_fold FROM messages WHERE rowid > ?1 AND rowid <= ?2 AND text_fold IS NOT NULL",
        )?
        .execute([watermark, last])?;
        conn.prepare_cached("UPDATE counters SET n = ?1 WHERE name = 'fts_rowid'")?
            .execute([last])?;
    }
    Ok(())
}

/// `q` as an FTS5 phrase: with the trigram tokenizer it matches exactly the texts that contain
/// `q` as a substring.
fn phrase(q: &str) -> String {
    format!("\"{}\"", q.replace('"', "\"\""))
}

/// Offsets from which a listing by instant skips whole hours instead of stepping row by row.
const SEEK_FROM: u64 = 1000;

/// The hour bucket of a `ts_key` (`YYYY-MM-DDTHH`). Every key of that hour sorts after the
/// bucket and before the bucket followed by `;` (the next byte after `:`).
fn hour_of(key: &str) -> &str {
    key.get(..13).unwrap_or(key)
}

/// Rows with `ts_key >= since`: whole hours from their counts, plus the rows of since's own hour.
fn count_since(conn: &Connection, since: &str) -> Result<i64, Error> {
    let hour = hour_of(since);
    let later: i64 = conn
        .prepare_cached("SELECT coalesce(sum(n), 0) FROM hours WHERE hour > ?1")?
        .query_row([hour], |r| r.get(0))?;
    Ok(later + count_in_hour(conn, since)?)
}

/// Rows with `ts_key >= since` within since's own hour.
fn count_in_hour(conn: &Connection, since: &str) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM messages WHERE ts_key >= ?1 AND ts_key < ?2")?
        .query_row(params![since, format!("{};", hour_of(since))], |r| r.get(0))?)
}

/// Where the page at `offset` (counted from `since`, or from the start) begins: the hour to scan
/// from and the offset left inside it. `None` when the page starts in since's own hour, where a
/// plain offset is short anyway.
fn seek_hour(
    conn: &Connection,
    since: Option<&str>,
    offset: u64,
) -> Result<(Option<String>, u64), Error> {
    let mut rest = offset;
    let mut after = String::new();
    if let Some(since) = since {
        let first = count_in_hour(conn, since)? as u64;
        if rest < first {
            return Ok((None, offset));
        }
        rest -= first;
        after = hour_of(since).to_string();
    }
    let mut stmt =
        conn.prepare_cached("SELECT hour, n FROM hours WHERE hour > ?1 ORDER BY hour")?;
    let mut rows = stmt.query([&after])?;
    while let Some(row) = rows.next()? {
        let n: i64 = row.get(1)?;
        if rest < n as u64 {
            return Ok((Some(row.get(0)?), rest));
        }
        rest -= n as u64;
    }
    // Past the last row: an empty page.
    Ok((Some("~".to_string()), 0))
}

/// A WHERE clause under construction, its parameters always bound, never spliced into the SQL.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    args: Vec<Sql>,
}

impl Where {
    /// Adds a condition with one `?` for `value`.
    fn add(&mut self, clause: &str, value: impl Into<Sql>) {
        self.args.push(value.into());
        self.clauses
            .push(clause.replace('?', &format!("?{}", self.args.len())));
    }

    /// Appends to the last condition a continuation with one more `?` for `value`.
    fn extend(&mut self, tail: &str, value: impl Into<Sql>) {
        self.args.push(value.into());
        let tail = tail.replace('?', &format!("?{}", self.args.len()));
        if let Some(last) = self.clauses.last_mut() {
            last.push_str(&tail);
        }
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// `count(*)` of the rows that match, the plain way.
    fn count(&self, conn: &Connection) -> Result<i64, Error> {
        Ok(conn
            .prepare_cached(&format!("SELECT count(*) FROM messages {}", self.sql()))?
            .query_row(params_from_iter(&self.args), |r| r.get(0))?)
    }
}

/// A value from the `counters` table.
fn counter(conn: &Connection, name: &str) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached("SELECT n FROM counters WHERE name = ?1")?
        .query_row([name], |r| r.get(0))?)
}

/// (device, inode) of a file, or `None` when it does not exist.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Ends a group-commit leader's turn: fails any row of its batch left without an outcome (only
/// when the leader unwound from a panic), clears the flag and wakes the waiters.
struct Leader<'a> {
    store: &'a Store,
    seqs: Vec<u64>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut q = self.store.queue.lock().unwrap_or_else(|p| p.into_inner());
        for seq in &self.seqs {
            q.outcomes
                .entry(*seq)
                .or_insert_with(|| Err(Error("the writer failed".into())));
        }
        q.leader = false;
        self.store.done.notify_all();
    }
}

/// A poisoned lock means a panic while it was held. rusqlite rolls back any open transaction when
/// it is dropped and every statement here is self-contained, so the connection is still sound.
fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn row_to_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        message_id: r.get(0)?,
        from: r.get(1)?,
        to: r.get(2)?,
        ts: r.get(3)?,
        text: r.get(4)?,
    })
}

/// Case folding for `q`: each character lower-cased on its own (no context rules such as the Greek
/// final sigma), so the stored text and the query fold the same way. NUL becomes U+FFFF (a
/// noncharacter): SQLite's text functions and the FTS5 tokenizer mishandle NUL, and mapping
/// both sides the same way keeps a substring a substring.
pub fn fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c == '\0' { '\u{FFFF}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, from: &str, ts: &str, text: Option<&str>) -> Message {
        Message {
            message_id: id.into(),
            from: from.into(),
            to: "+1".into(),
            ts: ts.into(),
            text: text.map(Into::into),
        }
    }

    fn put(s: &Store, m: &Message) -> Inserted {
        let key = crate::ts::parse_message_ts(&m.ts).expect("valid ts");
        s.insert(m, &key, "2025-01-01T00:00:00.000Z")
            .expect("insert")
    }

    #[test]
    fn insert_is_idempotent_and_keeps_the_first_row() {
        let s = Store::open(&DbLocation::Memory, Duration::from_secs(1)).expect("open");
        assert_eq!(
            put(&s, &msg("m1", "+1", "2025-01-15T10:00:00Z", Some("a"))),
            Inserted::New
        );
        assert_eq!(
            put(&s, &msg("m1", "+2", "2025-01-16T10:00:00Z", Some("b"))),
            Inserted::Duplicate
        );
        let page = s
            .list(&Filter {
                limit: 10,
                ..Filter::default()
            })
            .expect("list");
        assert_eq!(
            page.messages,
            vec![msg("m1", "+1", "2025-01-15T10:00:00Z", Some("a"))]
        );
    }

    #[test]
    fn stats_on_empty_and_filled() {
        let s = Store::open(&DbLocation::Memory, Duration::from_secs(1)).expect("open");
        let empty = s.stats().expect("stats");
        assert_eq!(
            (empty.total_messages, empty.first_ts, empty.last_ts),
            (0, None, None)
        );
        put(&s, &msg("b", "+2", "2025-01-15T10:00:00.5Z", None));
        put(&s, &msg("a", "+1", "2025-01-15T10:00:00Z", None));
        put(&s, &msg("c", "+1", "2025-01-14T10:00:00Z", None));
        let st = s.stats().expect("stats");
        assert_eq!(
            st.top_senders,
            vec![("+1".to_string(), 2), ("+2".to_string(), 1)]
        );
        assert_eq!(st.first_ts.as_deref(), Some("2025-01-14T10:00:00Z"));
        assert_eq!(st.last_ts.as_deref(), Some("2025-01-15T10:00:00.5Z"));
    }

    /// The listing by its definition, over the rows in memory, sharing nothing with `list`: the
    /// rows that match every filter, sorted by (instant key, message_id) as bytes, then the page.
    fn model(rows: &[(Message, String)], f: &Filter) -> Page {
        let lower = |s: &str| -> String { s.chars().flat_map(char::to_lowercase).collect() };
        let mut hits: Vec<&(Message, String)> = rows
            .iter()
            .filter(|(m, key)| {
                f.from.as_ref().is_none_or(|from| &m.from == from)
                    && f.since_key.as_ref().is_none_or(|since| key >= since)
                    && f.q.as_ref().is_none_or(|q| {
                        m.text
                            .as_ref()
                            .is_some_and(|t| lower(t).contains(&lower(q)))
                    })
            })
            .collect();
        hits.sort_by(|a, b| {
            (a.1.as_bytes(), a.0.message_id.as_bytes())
                .cmp(&(b.1.as_bytes(), b.0.message_id.as_bytes()))
        });
        Page {
            total: hits.len() as i64,
            messages: hits
                .iter()
                .skip(f.offset as usize)
                .take(f.limit as usize)
                .map(|(m, _)| m.clone())
                .collect(),
        }
    }

    #[test]
    fn every_shortcut_agrees_with_a_model_of_the_rows() {
        let s = Store::open(&DbLocation::Memory, Duration::from_secs(1)).expect("open");
        const ALPHABET: [&str; 17] = [
            "a", "b", "A", "Ä", "ä", "ß", "%", "_", "\"", "é", "Σ", "σ", "ς", " ", "x", "😀", "\0",
        ];
        let mut seed = 12345u64;
        let mut rand = move |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        let mut word = |len: usize| {
            (0..len)
                .map(|_| ALPHABET[rand(ALPHABET.len())])
                .collect::<String>()
        };
        // The `since` values filtered by, and rows exactly on each of them (several spellings of
        // the same instant), just before and just after, and on the edges of their hours.
        let sinces = [
            "2025-01-15T10:30:00.000000000Z",
            "2025-01-16T00:00:00.000000000Z",
            "2025-01-17T01:59:59.500000000Z",
        ];
        let edges = [
            "2025-01-15T10:30:00Z",
            "2025-01-15T10:30:00.000Z",
            "2025-01-15T10:29:59.999999999Z",
            "2025-01-15T10:30:00.000000001Z",
            "2025-01-15T10:00:00Z",
            "2025-01-15T10:59:59.999999999Z",
            "2025-01-16T00:00:00Z",
            "2025-01-16T00:00:00.0Z",
            "2025-01-15T23:59:59.999999999Z",
            "2025-01-17T01:59:59.5Z",
            "2025-01-17T01:59:59.500000000Z",
            "2025-01-17T01:59:59.499999999Z",
            "2025-01-17T02:00:00Z",
        ];
        // 3,000 rows over about 50 hours, out of order, some sharing an instant.
        let mut rows: Vec<(Message, String)> = (0..3000u64)
            .map(|i| {
                // Every text holds "abc", so q=abc has over 2,000 matches (the time-index walk).
                let text = if i % 10 == 0 {
                    None
                } else {
                    Some(format!("{}abc{}", word((i % 23) as usize), word(2)))
                };
                let ts = if i % 41 == 0 {
                    edges[(i / 41) as usize % edges.len()].to_string()
                } else {
                    let t = (i * 7919) % 180_000;
                    format!(
                        "2025-01-{:02}T{:02}:{:02}:{:02}.{}Z",
                        15 + t / 86400,
                        t / 3600 % 24,
                        t / 60 % 60,
                        t % 60,
                        i % 3
                    )
                };
                let key = crate::ts::parse_message_ts(&ts).expect("ts");
                let m = Message {
                    message_id: format!("m{i}"),
                    from: format!("+{}", i % 3),
                    to: "+1".into(),
                    ts,
                    text,
                };
                (m, key)
            })
            .collect();
        for chunk in rows.chunks(700) {
            s.import(chunk.to_vec(), "2025-01-01T00:00:00.000Z", 300)
                .expect("import");
        }
        // A few through the group-commit path, after the text index's last batch.
        for (i, edge) in edges.iter().enumerate().take(5) {
            let m = msg(&format!("n{i}"), "+1", edge, Some("late abc"));
            put(&s, &m);
            let key = crate::ts::parse_message_ts(&m.ts).expect("ts");
            rows.push((m, key));
        }
        let mut long_hits = 0;
        for round in 0..600usize {
            let q = if round % 7 == 0 {
                "ABC".to_string()
            } else {
                word(1 + round % 5)
            };
            let filter = Filter {
                q: (round % 3 != 2).then(|| q.clone()),
                from: (round % 5 == 0).then(|| "+1".to_string()),
                since_key: (round % 4 != 0).then(|| sinces[round % 3].to_string()),
                limit: 1 + (round % 100) as u32,
                offset: [0, 3, 999, 1000, 1234, 2500, 2999, 5000][round % 8],
            };
            let got = s.list(&filter).expect("list");
            let want = model(&rows, &filter);
            assert_eq!(got.total, want.total, "total for {filter:?}");
            assert_eq!(got.messages, want.messages, "page for {filter:?}");
            if filter.q.as_ref().is_some_and(|q| q.chars().count() >= 3) {
                long_hits += got.total;
            }
        }
        assert!(
            long_hits > 0,
            "some indexed queries match, so the comparison means something"
        );
        // /stats against the same model.
        let st = s.stats().expect("stats");
        let all = model(
            &rows,
            &Filter {
                limit: u32::MAX,
                ..Filter::default()
            },
        );
        assert_eq!(st.total_messages, all.total);
        assert_eq!(st.first_ts.as_ref(), all.messages.first().map(|m| &m.ts));
        assert_eq!(st.last_ts.as_ref(), all.messages.last().map(|m| &m.ts));
        assert_eq!(st.senders_count, 3);
    }

    #[test]
    fn durability_settings_are_pinned_on_every_connection() {
        let dir = std::env::temp_dir().join(format!("webhook-api-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("app.db");
        let s = Store::open(&DbLocation::File(path.clone()), Duration::from_secs(1)).expect("open");
        let check = |s: &Store| {
            let w = lock(&s.write);
            let pragma = |name: &str| -> String {
                w.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, Sql>(0))
                    .map(|v| match v {
                        Sql::Integer(n) => n.to_string(),
                        Sql::Text(t) => t,
                        other => format!("{other:?}"),
                    })
                    .expect(name)
            };
            // What "a 200 means on disk" rests on: WAL, and an fsync on every commit.
            assert_eq!(pragma("journal_mode"), "wal");
            assert_eq!(pragma("synchronous"), "2", "FULL");
            assert_eq!(pragma("temp_store"), "2", "MEMORY: the image has no /tmp");
            assert_eq!(pragma("wal_autocheckpoint"), "8000");
            assert_eq!(pragma("journal_size_limit"), "67108864");
            let r = lock(
                s.read
                    .as_ref()
                    .expect("a file database has a read connection"),
            );
            let query_only: i64 = r
                .query_row("PRAGMA query_only", [], |r| r.get(0))
                .expect("q");
            assert_eq!(query_only, 1, "the read connection cannot write");
        };
        check(&s);
        // The file header says WAL to any other process too (bytes 18 and 19 are 2).
        let header = std::fs::read(&path).expect("read the file");
        assert_eq!((header[18], header[19]), (2, 2));
        // A replaced file is reopened with the same settings.
        drop(s);
        let s = Store::open(&DbLocation::File(path.clone()), Duration::from_secs(1)).expect("open");
        std::fs::rename(&path, dir.join("old.db")).expect("move away");
        std::fs::copy(dir.join("old.db"), &path).expect("put a copy back");
        put(&s, &msg("after", "+1", "2025-01-15T10:00:00Z", None));
        check(&s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fold_is_unicode_aware() {
        assert_eq!(fold("ÄRGER Straße"), "ärger straße");
        assert!(fold("Ärger").contains(&fold("ärger")));
    }
}
