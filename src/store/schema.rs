//! The database file: its tables and indexes, and the two connections opened on it with the
//! settings durability rests on.
//!
//! Owns: the DDL (every statement idempotent, so opening an existing file changes nothing), the
//! back-fill of aggregates for a file that predates them, the ordered migration steps between
//! versions, the connection pragmas, and which files are refused, adopted or brought up to
//! date; for the FastAPI service's file, the first stage of its adoption (our columns and tables
//! beside its own, and the resume mark).
//! Leaves out: what the tables are used for (`commit`, `search`, `hours`, `mod`), and the
//! adoption's batches and finish (`adopt`, which uses this file, never the other way round).
//! Uses: rusqlite, `Error`.

use super::Error;
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// The API's `messages` table (its six columns readable by any SQLite tool) plus two derived
/// columns, and the tables that keep totals, top senders, hour counts and the text index current.
pub(super) const SCHEMA: &str = "
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
pub(super) const BACKFILL: &str = "
INSERT INTO hours SELECT substr(ts_key, 1, 13), count(*) FROM messages
    WHERE NOT EXISTS (SELECT 1 FROM counters) GROUP BY 1;
INSERT INTO senders SELECT from_msisdn, count(*) FROM messages
    WHERE NOT EXISTS (SELECT 1 FROM senders) GROUP BY from_msisdn;
INSERT OR IGNORE INTO counters VALUES ('messages', (SELECT count(*) FROM messages));
INSERT OR IGNORE INTO counters VALUES ('senders', (SELECT count(*) FROM senders));
-- Rows up to this rowid are in the trigram index; the next write indexes the rest in batches.
INSERT OR IGNORE INTO counters VALUES ('fts_rowid', 0);
";

/// The steps that bring a file from one schema version to the next, in order: (the version a
/// step brings it to, its SQL). Version 1 is `SCHEMA` itself; files from before versioning (0,
/// with our columns) are at 1 once it has run.
const MIGRATIONS: &[(i64, &str)] = &[
    // A sender's message type (the Cloud API's `type`; NULL for /webhook) and the message object
    // as it was sent, so nothing of a message that is not text is lost.
    (
        2,
        "ALTER TABLE messages ADD COLUMN type TEXT; ALTER TABLE messages ADD COLUMN raw TEXT;",
    ),
];

/// The schema version this binary writes, kept in `PRAGMA user_version`: the last step's.
pub(super) const VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The steps after version `from` (the tables of `SCHEMA` in place), then the version.
pub(super) fn upgrade(from: i64) -> String {
    let steps = MIGRATIONS.iter().filter(|(v, _)| *v > from.max(1));
    let sql: String = steps.map(|(_, sql)| *sql).collect();
    format!("{sql} PRAGMA user_version = {VERSION};")
}

/// Creates what is missing in an open database (a new file, or memory) and brings it to
/// `VERSION`, all in one transaction.
pub fn create(conn: &Connection) -> Result<(), Error> {
    let from: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    in_transaction(conn, &format!("{SCHEMA} {BACKFILL} {}", upgrade(from)))
}

/// The FastAPI service's columns, in its order: a table with exactly these is adopted.
#[rustfmt::skip] // one line reads better than eight
const LEGACY_COLUMNS: [&str; 6] = ["message_id", "from_msisdn", "to_msisdn", "ts", "text", "created_at"];

/// Adoption's stage 1, one transaction: our columns and tables, and the resume mark
/// (`adoption.done`, the last rowid adopted). Until `adopt::finish` drops the mark, opening the
/// file resumes (`adopt`).
fn begin_adoption(conn: &Connection) -> Result<(), Error> {
    in_transaction(
        conn,
        &format!(
            "ALTER TABLE messages ADD COLUMN ts_key TEXT;
             ALTER TABLE messages ADD COLUMN text_fold TEXT;
             DROP INDEX IF EXISTS ix_messages_message_id;
             DROP INDEX IF EXISTS ix_messages_ts;
             DROP INDEX IF EXISTS ix_messages_from_msisdn;
             {SCHEMA}
             CREATE TABLE adoption (done INTEGER NOT NULL);
             INSERT INTO adoption VALUES (0);"
        ),
    )
}

/// Runs `sql` in one write transaction: all of it commits, or none of it.
pub(super) fn in_transaction(conn: &Connection, sql: &str) -> Result<(), Error> {
    let done = conn.execute_batch(&format!("BEGIN IMMEDIATE; {sql} COMMIT;"));
    Ok(done.inspect_err(|_| _ = conn.execute_batch("ROLLBACK"))?)
}

/// What `check_ours` found.
#[derive(PartialEq)]
enum Found {
    /// Ours (or a new, empty file): bring the schema up to date.
    Ours,
    /// The FastAPI service's database, not yet touched.
    Legacy,
    /// An adoption that has begun (`begin_adoption`), to be resumed by `adopt`.
    Adopting,
}

/// Refuses, before anything is written, a file this binary must not touch: not an SQLite
/// database, a newer schema version, or another application's tables.
fn check_ours(conn: &Connection, path: &Path) -> Result<Found, Error> {
    let refuse = |why: String| {
        Err(Error::Failed(format!(
            "{}: {why}; left untouched",
            path.display()
        )))
    };
    let version: i64 = match conn.query_row("PRAGMA user_version", [], |r| r.get(0)) {
        Ok(v) => v,
        Err(e) => return refuse(e.to_string()), // e.g. "file is not a database"
    };
    if version > VERSION {
        return refuse(format!(
            "schema version {version} is newer than this binary's {VERSION}"
        ));
    }
    let names = |sql: &str| -> Result<Vec<String>, Error> {
        let mut query = conn.prepare(sql)?;
        let names = query.query_map([], |r| r.get(0))?;
        Ok(names.collect::<Result<_, _>>()?)
    };
    let columns = names("SELECT name FROM pragma_table_info('messages')")?;
    let tables = names("SELECT name FROM sqlite_master WHERE type = 'table'")?;
    match (columns.is_empty(), columns.iter().any(|c| c == "ts_key")) {
        (true, _) if !tables.is_empty() => refuse("it holds another application's tables".into()),
        (false, false) if columns == LEGACY_COLUMNS && version == 0 => Ok(Found::Legacy),
        (false, false) => refuse("its messages table is not this service's".into()),
        _ if tables.iter().any(|t| t == "adoption") => Ok(Found::Adopting),
        _ => Ok(Found::Ours),
    }
}

/// Opens the write connection and `readers` read connections on `path` with our pragmas and
/// schema. The flag says the file is being adopted (`adopt`): the schema is complete only after.
pub fn connect(
    path: &Path,
    busy_timeout: Duration,
    readers: usize,
) -> Result<(Connection, Vec<Connection>, bool), Error> {
    let write = Connection::open(path)?;
    write.busy_timeout(busy_timeout)?;
    let found = check_ours(&write, path)?;
    // Before the first table: a new file gives freed pages back in steps (`prune`); an older
    // file keeps its mode until `prune` converts it.
    write.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")?;
    // `journal_mode` answers with a row, so it is read rather than executed.
    let _mode: String = write.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    // FULL: every commit is fsynced before `insert_all` returns (a 200 means "on disk").
    // temp_store: the container image has no /tmp.
    // wal_autocheckpoint 8000 pages (32 MiB) instead of 1000: the checkpoint runs inside a
    // committing request, and doing it an eighth as often lifted durable ingest by ~15% in
    // `make bench`. journal_size_limit truncates the WAL back to 64 MiB at most afterwards.
    // hard_heap_limit (process-wide): SQLite's own memory never passes 64 MiB; a statement
    // that would need more fails (a 503) instead of growing the process.
    write.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;
         PRAGMA wal_autocheckpoint = 8000; PRAGMA journal_size_limit = 67108864;
         PRAGMA hard_heap_limit = 67108864;",
    )?;
    match found {
        Found::Ours => create(&write)?,
        Found::Legacy => begin_adoption(&write)?,
        Found::Adopting => {}
    }
    let read = (0..readers)
        .map(|_| {
            let read = Connection::open(path)?;
            read.busy_timeout(busy_timeout)?;
            read.execute_batch("PRAGMA query_only = ON; PRAGMA temp_store = MEMORY;")?;
            Ok(read)
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok((write, read, found != Found::Ours))
}

/// What a finished backup holds.
pub struct Backup {
    pub rows: i64,
    pub bytes: u64,
}

/// Writes a consistent snapshot of the database at `from` to the new file `to` (SQLite's
/// `VACUUM INTO`: one read transaction, so writers go on meanwhile), then checks the copy with
/// `integrity_check`. `to` is a plain path (a `file:` URI or a query string is refused), created
/// here exclusively: an existing file, or a symlink even to nowhere, is refused, never followed.
pub fn backup(from: &Path, to: &Path, busy_timeout: Duration) -> Result<Backup, Error> {
    let fail =
        |why: &dyn std::fmt::Display| Error::Failed(format!("backup to {}: {why}", to.display()));
    let name = to.to_str().ok_or_else(|| fail(&"the path is not UTF-8"))?;
    if name.starts_with("file:") || name.contains('?') {
        return Err(fail(
            &"a plain file path only (no file: URI, no query string)",
        ));
    }
    if !from.exists() {
        return Err(fail(&format!("no database at {}", from.display())));
    }
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to);
    created.map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => fail(&"the file exists; choose a new name"),
        _ => fail(&e),
    })?;
    // VACUUM INTO takes an empty file; an absolute path is never read as a URI.
    let target = std::path::absolute(to).map_err(|e| fail(&e))?;
    let copy = || -> Result<Backup, Error> {
        let source = Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        source.busy_timeout(busy_timeout)?;
        source.execute("VACUUM INTO ?1", [target.to_string_lossy()])?;
        let copy = Connection::open_with_flags(to, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let check: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(fail(&format!("integrity_check: {check}")));
        }
        let rows = copy.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))?;
        let bytes = std::fs::metadata(to).map_err(|e| fail(&e))?.len();
        Ok(Backup { rows, bytes })
    };
    // A failed copy leaves nothing behind: the file is ours, created above.
    copy().inspect_err(|_| _ = std::fs::remove_file(to))
}
