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
use std::fmt;
use std::sync::{Mutex, MutexGuard};
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

/// A storage failure. The HTTP layer maps every one of them to 503 "storage unavailable".
#[derive(Debug)]
pub enum Error {
    /// SQLite said no: disk full, file locked, read-only, corrupt, ...
    Sqlite(rusqlite::Error),
    /// The database's folder could not be created.
    Io(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sqlite(e) => write!(f, "sqlite: {e}"),
            Error::Io(e) => write!(f, "database folder: {e}"),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::Sqlite(e)
    }
}

pub struct Store {
    write: Mutex<Connection>,
    /// A second connection so reads do not wait for the write lock (WAL lets them run while a
    /// write commits). `None` for an in-memory database, where a second connection would see a
    /// different, empty database: reads then share the write connection.
    read: Option<Mutex<Connection>>,
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
";

impl Store {
    /// Opens (creating if needed) the database and its schema.
    pub fn open(location: &DbLocation) -> Result<Store, Error> {
        let path = match location {
            DbLocation::Memory => {
                let conn = Connection::open_in_memory()?;
                conn.execute_batch(SCHEMA)?;
                return Ok(Store {
                    write: Mutex::new(conn),
                    read: None,
                });
            }
            DbLocation::File(path) => path,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(Error::Io)?;
        }
        let write = Connection::open(path)?;
        write.busy_timeout(Duration::from_secs(5))?;
        // `journal_mode` answers with a row, so it is read rather than executed.
        let _mode: String = write.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        // FULL: every commit is fsynced before `insert` returns (a 200 means "on disk").
        // temp_store: the container image has no /tmp.
        write.execute_batch("PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;")?;
        write.execute_batch(SCHEMA)?;
        let read = Connection::open(path)?;
        read.busy_timeout(Duration::from_secs(5))?;
        read.execute_batch("PRAGMA query_only = ON; PRAGMA temp_store = MEMORY;")?;
        Ok(Store {
            write: Mutex::new(write),
            read: Some(Mutex::new(read)),
        })
    }

    /// Stores a message unless its id is already there; a known id leaves the stored row as it was.
    /// `ts_key` is the sortable instant of `m.ts`.
    pub fn insert(&self, m: &Message, ts_key: &str, created_at: &str) -> Result<Inserted, Error> {
        let conn = lock(&self.write);
        let changed = conn.prepare_cached(
            "INSERT INTO messages (message_id, from_msisdn, to_msisdn, ts, text, created_at, ts_key, text_fold)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (message_id) DO NOTHING",
        )?
        .execute(params![m.message_id, m.from, m.to, m.ts, m.text, created_at, ts_key, m.text.as_deref().map(fold)])?;
        Ok(if changed == 1 {
            Inserted::New
        } else {
            Inserted::Duplicate
        })
    }

    /// One page of messages ordered by instant then id, and the count of all that match.
    pub fn list(&self, f: &Filter) -> Result<Page, Error> {
        let mut clauses = Vec::new();
        let mut args: Vec<Sql> = Vec::new();
        if let Some(from) = &f.from {
            args.push(Sql::Text(from.clone()));
            clauses.push(format!("from_msisdn = ?{}", args.len()));
        }
        if let Some(since) = &f.since_key {
            args.push(Sql::Text(since.clone()));
            clauses.push(format!("ts_key >= ?{}", args.len()));
        }
        if let Some(q) = &f.q {
            // instr() is a plain substring test: `%` and `_` are ordinary characters.
            args.push(Sql::Text(fold(q)));
            clauses.push(format!("instr(text_fold, ?{}) > 0", args.len()));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let mut conn = self.reader();
        // One read transaction, so `total` and the page come from the same snapshot.
        let tx = conn.transaction()?;
        let total: i64 = tx
            .prepare_cached(&format!("SELECT count(*) FROM messages {filter}"))?
            .query_row(params_from_iter(&args), |r| r.get(0))?;
        let n = args.len();
        args.push(Sql::Integer(i64::from(f.limit)));
        args.push(Sql::Integer(i64::try_from(f.offset).unwrap_or(i64::MAX)));
        let messages = tx
            .prepare_cached(&format!(
                "SELECT message_id, from_msisdn, to_msisdn, ts, text FROM messages {filter}
                 ORDER BY ts_key, message_id LIMIT ?{} OFFSET ?{}",
                n + 1,
                n + 2
            ))?
            .query_map(params_from_iter(&args), row_to_message)?
            .collect::<Result<Vec<_>, _>>()?;
        tx.finish()?;
        Ok(Page { messages, total })
    }

    /// Counts, top senders and the first and last timestamps, from one snapshot.
    pub fn stats(&self) -> Result<Stats, Error> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        let (total_messages, senders_count): (i64, i64) = tx.query_row(
            "SELECT count(*), count(DISTINCT from_msisdn) FROM messages",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let top_senders = tx
            .prepare_cached(
                "SELECT from_msisdn, count(*) AS n FROM messages GROUP BY from_msisdn
                 ORDER BY n DESC, from_msisdn ASC LIMIT 10",
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

    fn reader(&self) -> MutexGuard<'_, Connection> {
        lock(self.read.as_ref().unwrap_or(&self.write))
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
/// final sigma), so the stored text and the query fold the same way.
pub fn fold(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
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
        let s = Store::open(&DbLocation::Memory).expect("open");
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
        let s = Store::open(&DbLocation::Memory).expect("open");
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

    #[test]
    fn fold_is_unicode_aware() {
        assert_eq!(fold("ÄRGER Straße"), "ärger straße");
        assert!(fold("Ärger").contains(&fold("ärger")));
    }
}
