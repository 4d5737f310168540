//! Storage: messages in SQLite, one mutex-guarded write connection and a few read connections.
//! Speaks the domain (messages, filters, pages, stats), never HTTP.
//!
//! Owns: the `Store` and its types; opening; listing and stats (reads); readiness checks; noticing
//! that the database file was deleted or replaced. One concern per file below it:
//!
//! - `schema`  tables, indexes, connection pragmas (WAL, `synchronous=FULL`: a 200 is on disk).
//! - `commit`  group commit: the insert queue, its leader, the write of one batch.
//! - `search`  text folding, the trigram index and the "text contains q" condition.
//! - `hours`   hour buckets for `since` totals and deep offsets.
//! - `plan`    a listing's path (sender, time or text index), its page and exact total.
//! - `budget`  each read's time budget, and the default number of read connections.
//! - `adopt`   adopting in place a database the FastAPI service wrote.
//! - `prune`   retention, the disk budget, erasure of one sender, vacuum.
//!
//! Tables: `messages` (a message's six columns plus `ts_key`, the sortable instant, `text_fold`,
//! and what a sender sent beside them, `type` and `raw`), the aggregates `senders`, `counters`
//! and `hours` kept in the insert transaction, the text index `messages_fts`, and `probe` for
//! the write check.
//! Leaves out: HTTP, validation (callers pass valid messages and keys), editing rows.
//! Uses: rusqlite, `crate::lock`, `crate::config::DbLocation`, `crate::metrics::Writer`.

mod adopt;
mod budget;
mod commit;
mod health;
mod hours;
mod plan;
mod prune;
mod schema;
mod search;

pub use budget::while_client;
pub use commit::{Row, Sent};
pub use plan::Plan;
pub use prune::{Pass, Policy, Reason};
pub use schema::{Backup, backup};
pub use search::fold;

use crate::config::DbLocation;
use crate::lock;
use budget::{Budget, default_readers};
use rusqlite::{Connection, OptionalExtension};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
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

/// Whether `insert_all` stored a new row or found the id already there (and changed nothing).
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
    /// The path the rows were read by (`plan`), for the DEBUG request line.
    pub plan: Plan,
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

/// Why the store could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// SQLite said no (disk full, locked, read-only, corrupt, out of its heap), or the
    /// database file is gone: the description, for the log.
    Failed(String),
    /// A read ran past its time budget and was interrupted.
    OverBudget,
    /// A read was interrupted because its client hung up.
    ClientGone,
    /// A text search was refused: as many as allowed are running or waiting.
    Busy,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Failed(why) => why,
            Error::OverBudget => "a read ran past its time budget",
            Error::ClientGone => "the client hung up",
            Error::Busy => "as many text searches as allowed are running",
        })
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::OperationInterrupted) if budget::HUNG_UP.get() => {
                Error::ClientGone
            }
            Some(rusqlite::ErrorCode::OperationInterrupted) => Error::OverBudget,
            _ => Error::Failed(format!("sqlite: {e}")),
        }
    }
}

pub struct Store {
    /// The file, for `File` databases: checked before every write so a deleted or replaced file
    /// or WAL is noticed (writes would otherwise go to an unlinked inode and vanish on restart).
    path: Option<PathBuf>,
    /// The lock on `path.lock` that makes this the one service on the file (`health::claim`).
    _claim: Option<std::fs::File>,
    /// The database file and WAL the connections have open (`health`).
    files: Mutex<health::Files>,
    /// The health monitor's last verdict: `None` when its probes passed (`health`).
    verdict: Mutex<Option<&'static str>>,
    /// Text searches running or waiting for a connection, and how many may (`open`'s
    /// `search_cap`; all the general workers but one): past that a search is refused at once
    /// (`Error::Busy`), so searches never hold every worker.
    searching: AtomicUsize,
    search_cap: usize,
    busy_timeout: Duration,
    write: Mutex<Connection>,
    /// Reads of an in-memory database share the write connection; this is their budget.
    write_budget: Arc<Budget>,
    /// Read connections, one per core by default, so reads neither wait for the write lock
    /// (WAL lets them run while a write commits) nor for each other. Empty for an in-memory
    /// database, where another connection would see a different, empty database.
    read: Vec<(Mutex<Connection>, Arc<Budget>)>,
    /// Where the next read starts looking for a free connection.
    next_read: AtomicUsize,
    queue: Mutex<commit::Queue>,
    /// Set when a write failed, cleared by the next that succeeds; readiness probes while set.
    write_failing: AtomicBool,
    /// Rows per commit and commit time, rendered on /metrics.
    pub writer: crate::metrics::Writer,
    /// Set while a FastAPI database is being adopted (`adopt`): every read and write refuses.
    adopting: AtomicBool,
}

impl Store {
    /// Opens (creating if needed) the database and its schema. `busy_timeout` is how long a
    /// statement waits for a lock held by another process before failing; `readers` the number
    /// of read connections (0: `default_readers()`); `read_budget` every read's time budget;
    /// `search_cap` how many text searches may run or wait for a connection at once (at least
    /// one).
    pub fn open(
        location: &DbLocation,
        busy_timeout: Duration,
        readers: usize,
        read_budget: Duration,
        search_cap: usize,
    ) -> Result<Store, Error> {
        let limit = u64::try_from(read_budget.as_nanos()).unwrap_or(u64::MAX);
        let readers = match readers {
            0 => default_readers(),
            n => n,
        };
        let mut claim = None;
        let (path, mut write, read, adopting) = match location {
            DbLocation::Memory => {
                let conn = Connection::open_in_memory()?;
                schema::create(&conn)?;
                (None, conn, Vec::new(), false)
            }
            DbLocation::File(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    let fail = |e| format!("cannot create database folder {}: {e}", dir.display());
                    std::fs::create_dir_all(dir).map_err(|e| Error::Failed(fail(e)))?;
                }
                claim = Some(health::claim(path)?);
                let (write, read, adopting) = schema::connect(path, busy_timeout, readers)?;
                (Some(path.clone()), write, read, adopting)
            }
        };
        let watch = |mut conn| Budget::watch(&mut conn, limit).map(|b| (Mutex::new(conn), b));
        let read = read.into_iter().map(watch).collect::<Result<_, _>>()?;
        Ok(Store {
            files: Mutex::new(path.as_deref().map(health::Files::at).unwrap_or_default()),
            verdict: Mutex::new(None),
            searching: AtomicUsize::new(0),
            search_cap: search_cap.max(1),
            _claim: claim,
            path,
            busy_timeout,
            write_budget: Budget::watch(&mut write, limit)?,
            write: Mutex::new(write),
            read,
            next_read: AtomicUsize::new(0),
            queue: Mutex::default(),
            write_failing: AtomicBool::new(false),
            writer: Default::default(),
            adopting: AtomicBool::new(adopting),
        })
    }

    /// One page of messages ordered by instant then id, and the exact count of all that match,
    /// by the plan `plan` judges cheapest (a test compares each plan with a model of the rows).
    pub fn list(&self, f: &Filter) -> Result<Page, Error> {
        self.list_by(f, None)
    }

    /// `list` by the plan `forced` when it applies to the filters (tests compare every plan).
    pub(crate) fn list_by(&self, f: &Filter, forced: Option<Plan>) -> Result<Page, Error> {
        self.usable()?;
        let (mut conn, budget, _search) = self.reader(f.q.is_some())?;
        let _clock = budget.start();
        // One read transaction, so `total` and the page come from the same snapshot.
        let tx = conn.transaction()?;
        let page = plan::list(&tx, f, forced)?;
        tx.finish()?;
        Ok(page)
    }

    /// Counts, top senders and the first and last timestamps, from one snapshot. Counts and the
    /// top ten come from the aggregates kept by `insert_all`; first and last are index lookups.
    pub fn stats(&self) -> Result<Stats, Error> {
        self.usable()?;
        let (mut conn, budget, _) = self.reader(false)?;
        let _clock = budget.start();
        let tx = conn.transaction()?;
        let top_senders = tx
            .prepare_cached(
                "SELECT from_msisdn, n FROM senders ORDER BY n DESC, from_msisdn ASC LIMIT 10",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        let edge = |order: &str| {
            let sql = format!("SELECT ts FROM messages ORDER BY {order} LIMIT 1");
            (tx.prepare_cached(&sql)?)
                .query_row([], |r| r.get(0))
                .optional()
        };
        let stats = Stats {
            total_messages: counter(&tx, "messages")?,
            senders_count: counter(&tx, "senders")?,
            top_senders,
            first_ts: edge("ts_key ASC, message_id ASC")?,
            last_ts: edge("ts_key DESC, message_id DESC")?,
        };
        tx.finish()?;
        Ok(stats)
    }

    /// Test builds only: panics while holding the write lock, poisoning it.
    #[cfg(feature = "fault-injection")]
    pub fn panic_holding_write_lock(&self) -> ! {
        let _held = lock(&self.write);
        panic!("injected panic holding the write lock")
    }

    /// A read connection and its budget: the first free one, else wait for one (the starting
    /// point rotates, so waits spread over all of them). Reads that search text (`q`, the only
    /// reads whose cost grows with the data) never take the first connection when there are
    /// others, and other reads wait only for it, so listing, stats and readiness never queue
    /// behind a crowd of text searches.
    fn reader(&self, searches_text: bool) -> Result<Reader<'_>, Error> {
        if self.read.is_empty() {
            return Ok((lock(&self.write), &self.write_budget, None));
        }
        let pool = &self.read[usize::from(searches_text && self.read.len() > 1)..];
        let search = match searches_text {
            true if self.searching.fetch_add(1, SeqCst) >= self.search_cap => {
                self.searching.fetch_sub(1, SeqCst);
                return Err(Error::Busy);
            }
            true => Some(Searching(&self.searching)),
            false => None,
        };
        let start = self.next_read.fetch_add(1, Relaxed);
        for i in 0..pool.len() {
            let (conn, budget) = &pool[(start + i) % pool.len()];
            let guard = match conn.try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            return Ok((guard, budget, search));
        }
        let (conn, budget) = &pool[if searches_text { start % pool.len() } else { 0 }];
        Ok((lock(conn), budget, search))
    }
}

/// A read connection held for one read, its budget, and, for a text search, its place among
/// the searches allowed.
type Reader<'a> = (
    MutexGuard<'a, Connection>,
    &'a Budget,
    Option<Searching<'a>>,
);

/// One text search counted in `Store::searching` for as long as it lives.
struct Searching<'a>(&'a AtomicUsize);

impl Drop for Searching<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// Adds to the `messages` and `senders` counters (a negative number takes away): what a write
/// or a deletion changed, in its transaction.
fn add_counts(conn: &Connection, messages: i64, senders: i64) -> Result<(), Error> {
    let mut count = conn.prepare_cached("UPDATE counters SET n = n + ?2 WHERE name = ?1")?;
    count.execute(rusqlite::params!["messages", messages])?;
    count.execute(rusqlite::params!["senders", senders])?;
    Ok(())
}

/// A value from the `counters` table.
fn counter(conn: &Connection, name: &str) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached("SELECT n FROM counters WHERE name = ?1")?
        .query_row([name], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::Value as Sql;

    fn msg(id: &str, from: &str, ts: &str, text: Option<&str>) -> Message {
        Message {
            message_id: id.into(),
            from: from.into(),
            to: "+1".into(),
            ts: ts.into(),
            text: text.map(Into::into),
        }
    }

    /// A new, empty folder of the calling test's own (`name`: one per test, as they run at once).
    pub(super) fn fresh_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("webhook-api-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A store on `db` with a 1 s busy timeout and the service's defaults: `default_readers()`,
    /// two-second reads, 15 text searches.
    fn open(db: &DbLocation) -> Store {
        Store::open(db, Duration::from_secs(1), 0, Duration::from_secs(2), 15).expect("open")
    }

    fn put(s: &Store, m: &Message) -> Inserted {
        let key = crate::ts::parse_message_ts(&m.ts).expect("valid ts");
        s.insert_all(vec![(m.clone(), key, None)], "2025-01-01T00:00:00.000Z")
            .expect("insert")[0]
    }

    /// Writes `rows` through the group commit, `chunk` rows a transaction.
    fn put_all(s: &Store, rows: &[(Message, String)], chunk: usize) {
        for chunk in rows.chunks(chunk) {
            let rows = chunk.iter().map(|(m, key)| (m.clone(), key.clone(), None));
            (s.insert_all(rows.collect(), "2025-01-01T00:00:00.000Z")).expect("insert");
        }
    }

    #[test]
    fn concurrent_inserts_share_commits_and_every_one_returns() {
        let s = Arc::new(open(&DbLocation::Memory));
        let (done, finished) = std::sync::mpsc::channel();
        for t in 0..16 {
            let (s, done) = (Arc::clone(&s), done.clone());
            std::thread::spawn(move || {
                for i in 0..100 {
                    let m = msg(&format!("{t}-{i}"), "+1", "2025-01-15T10:00:00Z", None);
                    assert_eq!(put(&s, &m), Inserted::New);
                }
                let _ = done.send(());
            });
        }
        // A lost wake-up leaves an inserter parked for good: fail instead of hanging.
        for _ in 0..16 {
            finished
                .recv_timeout(Duration::from_secs(60))
                .expect("every inserter returns");
        }
        assert_eq!(s.stats().expect("stats").total_messages, 1600);
        let (_, rows) = s.writer.batch_rows.snapshot();
        let commits = s.writer.commit_seconds.snapshot().0.last().copied();
        assert_eq!(rows, 1600.0, "every row went through a batch");
        assert!(
            commits.is_some_and(|c| c < 1600),
            "rows shared commits: {commits:?}"
        );
    }

    #[test]
    fn insert_is_idempotent_and_keeps_the_first_row() {
        let s = open(&DbLocation::Memory);
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
    fn insert_all_commits_once_and_a_repeated_id_is_a_duplicate() {
        let s = open(&DbLocation::Memory);
        put(&s, &msg("known", "+1", "2025-01-15T10:00:00Z", None));
        let row = |id: &str, kind: &str| {
            let m = msg(id, "+2", "2025-01-15T11:00:00Z", Some(id));
            let sent = Sent {
                kind: kind.into(),
                raw: format!("{{\"id\":\"{id}\"}}"),
            };
            (m, "2025-01-15T11:00:00.000000000Z".to_string(), Some(sent))
        };
        let rows = vec![
            row("a", "text"),
            row("known", "text"),
            row("b", "image"),
            row("a", "x"),
        ];
        let commits = || s.writer.commit_seconds.snapshot().0.last().copied();
        let before = commits();
        let got = s
            .insert_all(rows, "2025-01-01T00:00:00.000Z")
            .expect("insert");
        use Inserted::{Duplicate, New};
        assert_eq!(got, [New, Duplicate, New, Duplicate]);
        assert_eq!(
            commits().zip(before).map(|(a, b)| a - b),
            Some(1),
            "one commit"
        );
        assert_eq!(s.insert_all(Vec::new(), "x").expect("none"), []);
        let kept: Vec<(String, Option<String>, Option<String>)> = lock(&s.write)
            .prepare("SELECT message_id, type, raw FROM messages ORDER BY message_id")
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .expect("rows");
        let sent = |id: &str, k: &str| {
            (
                id.into(),
                Some(k.into()),
                Some(format!("{{\"id\":\"{id}\"}}")),
            )
        };
        assert_eq!(
            kept,
            [
                sent("a", "text"),
                sent("b", "image"),
                ("known".into(), None, None)
            ]
        );
        assert_eq!(s.stats().expect("stats").total_messages, 3);
    }

    #[test]
    fn stats_on_empty_and_filled() {
        let s = open(&DbLocation::Memory);
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
            plan: Plan::Time,
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
        let s = open(&DbLocation::Memory);
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
        put_all(&s, &rows, 300);
        // A few one at a time, after the text index's last batch.
        for (i, edge) in edges.iter().enumerate().take(5) {
            let m = msg(&format!("n{i}"), "+1", edge, Some("late abc"));
            put(&s, &m);
            let key = crate::ts::parse_message_ts(&m.ts).expect("ts");
            rows.push((m, key));
        }
        let mut long_hits = 0;
        let mut plans = std::collections::BTreeSet::new();
        for round in 0..600usize {
            let q = if round % 7 == 0 {
                "ABC".to_string()
            } else {
                word(1 + round % 5)
            };
            let filter = Filter {
                q: (round % 3 != 2).then(|| q.clone()),
                from: (round % 5 == 0).then(|| "+1".to_string()),
                since_key: (round % 4 != 0).then(|| sinces[(round / 3) % 3].to_string()),
                limit: 1 + (round % 100) as u32,
                offset: [0, 3, 999, 1000, 1234, 2500, 2999, 5000][round % 8],
            };
            let want = model(&rows, &filter);
            // The plan chosen, then each plan forced in turn (one that does not apply to these
            // filters falls back to the chosen one).
            for forced in [None, Some(Plan::Sender), Some(Plan::Time), Some(Plan::Text)] {
                let got = s.list_by(&filter, forced).expect("list");
                assert_eq!(got.total, want.total, "total for {filter:?} by {forced:?}");
                assert_eq!(
                    got.messages, want.messages,
                    "page for {filter:?} by {forced:?}"
                );
                plans.insert((forced, got.plan));
            }
            if filter.q.as_ref().is_some_and(|q| q.chars().count() >= 3) {
                long_hits += want.total;
            }
        }
        assert!(
            long_hits > 0,
            "some indexed queries match, so the comparison means something"
        );
        // Each plan was both chosen for some filters and forced on others.
        let chosen: Vec<_> = plans
            .iter()
            .filter(|(f, _)| f.is_none())
            .map(|p| p.1)
            .collect();
        assert_eq!(chosen, [Plan::Sender, Plan::Time, Plan::Text]);
        for p in [Plan::Sender, Plan::Time, Plan::Text] {
            assert!(
                plans.contains(&(Some(p), p)),
                "{p:?} forced on some filters"
            );
        }
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
        let dir = fresh_dir("store");
        let path = dir.join("app.db");
        let s = open(&DbLocation::File(path.clone()));
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
            assert!(!s.read.is_empty(), "a file database has read connections");
            for (r, _) in &s.read {
                let query_only: i64 = lock(r)
                    .query_row("PRAGMA query_only", [], |r| r.get(0))
                    .expect("q");
                assert_eq!(query_only, 1, "a read connection cannot write");
            }
        };
        check(&s);
        // The file header says WAL to any other process too (bytes 18 and 19 are 2).
        let header = std::fs::read(&path).expect("read the file");
        assert_eq!((header[18], header[19]), (2, 2));
        // A replaced file is reopened with the same settings.
        drop(s);
        let s = open(&DbLocation::File(path.clone()));
        std::fs::rename(&path, dir.join("old.db")).expect("move away");
        std::fs::copy(dir.join("old.db"), &path).expect("put a copy back");
        put(&s, &msg("after", "+1", "2025-01-15T10:00:00Z", None));
        check(&s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_past_their_budget_are_interrupted() {
        let dir = fresh_dir("budget");
        let db = DbLocation::File(dir.join("app.db"));
        let open_with = |budget| Store::open(&db, Duration::from_secs(1), 0, budget, 15);
        let s = open_with(Duration::from_nanos(1)).expect("open");
        let rows: Vec<(Message, String)> = (0..5000)
            .map(|i| {
                let m = msg(
                    &format!("m{i}"),
                    "+1",
                    "2025-01-15T10:00:00Z",
                    Some("some text"),
                );
                (m, "2025-01-15T10:00:00.000000000Z".to_string())
            })
            .collect();
        put_all(&s, &rows, 1000);
        let f = Filter {
            q: Some("me t".into()),
            limit: 10,
            ..Filter::default()
        };
        assert_eq!(s.list(&f).map(|p| p.total), Err(Error::OverBudget));
        assert!(
            matches!(s.stats(), Err(Error::OverBudget) | Ok(_)),
            "stats is cheap"
        );
        put(&s, &msg("w", "+1", "2025-01-15T10:00:00Z", None));
        drop(s);
        let s = open_with(Duration::from_secs(5)).expect("reopen");
        assert_eq!(
            s.list(&f).map(|p| p.total),
            Ok(5000),
            "the same read within a budget it fits"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_read_budget_ends_with_its_read() {
        // In memory, reads share the write connection: a read's deadline must not outlive it,
        // or the next big write would be interrupted.
        let budget = Duration::from_millis(20);
        let s =
            Store::open(&DbLocation::Memory, Duration::from_secs(1), 0, budget, 15).expect("open");
        s.list(&Filter {
            limit: 1,
            ..Filter::default()
        })
        .expect("list");
        std::thread::sleep(Duration::from_millis(40));
        let rows: Vec<(Message, String)> = (0..3000)
            .map(|i| {
                let m = msg(&format!("m{i}"), "+1", "2025-01-15T10:00:00Z", Some("text"));
                (m, "2025-01-15T10:00:00.000000000Z".to_string())
            })
            .collect();
        // The write is not a read.
        put_all(&s, &rows, 3000);
    }

    #[test]
    fn concurrent_reads_share_the_read_connections() {
        let dir = fresh_dir("readers");
        let db = DbLocation::File(dir.join("app.db"));
        let s =
            Store::open(&db, Duration::from_secs(5), 2, Duration::from_secs(2), 15).expect("open");
        put(&s, &msg("m1", "+1", "2025-01-15T10:00:00Z", Some("x")));
        std::thread::scope(|scope| {
            for _ in 0..6 {
                scope.spawn(|| {
                    for _ in 0..300 {
                        let page = s.list(&Filter {
                            limit: 5,
                            ..Filter::default()
                        });
                        assert_eq!(page.expect("list").total, 1);
                    }
                });
            }
        });
        assert!(
            s.next_read.load(Relaxed) >= 1800,
            "every read took a connection"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn inserts_fill_the_text_index_in_batches() {
        let s = open(&DbLocation::Memory);
        let watermark = |s: &Store| counter(&lock(&s.write), "fts_rowid").expect("watermark");
        for i in 0..255 {
            put(
                &s,
                &msg(&format!("m{i}"), "+1", "2025-01-15T10:00:00Z", Some("abc")),
            );
        }
        assert_eq!(watermark(&s), 0, "below a batch, rows wait for the index");
        put(&s, &msg("m255", "+1", "2025-01-15T10:00:00Z", Some("abc")));
        assert_eq!(
            watermark(&s),
            256,
            "a full batch is indexed in the insert that makes it"
        );
        let q = Filter {
            q: Some("abc".into()),
            limit: 1,
            ..Filter::default()
        };
        assert_eq!(s.list(&q).expect("list").total, 256);
    }

    #[test]
    fn files_that_are_not_ours_are_refused_untouched_and_backups_are_checked() {
        let dir = fresh_dir("files");
        std::fs::create_dir_all(&dir).expect("dir");
        for (name, sql, says) in [
            (
                "newer.db",
                "CREATE TABLE messages (ts_key TEXT); PRAGMA user_version = 99;",
                "newer",
            ),
            (
                "foreign.db",
                "CREATE TABLE messages (id INTEGER);",
                "not this service's",
            ),
            (
                // Two of the FastAPI service's columns only: not its table, not adopted.
                "partial.db",
                "CREATE TABLE messages (message_id TEXT, from_msisdn TEXT);",
                "not this service's",
            ),
            (
                "other.db",
                "CREATE TABLE invoices (n INTEGER);",
                "another application",
            ),
        ] {
            let path = dir.join(name);
            Connection::open(&path)
                .and_then(|c| c.execute_batch(sql))
                .expect("make");
            let before = std::fs::read(&path).expect("read");
            let Err(e) = Store::open(
                &DbLocation::File(path.clone()),
                Duration::from_secs(1),
                0,
                Duration::from_secs(2),
                15,
            ) else {
                panic!("{name} must be refused")
            };
            assert!(e.to_string().contains(says), "{name}: {e}");
            assert_eq!(
                std::fs::read(&path).expect("read"),
                before,
                "{name} untouched"
            );
        }
        // Ours, before versioning (0, our columns): opened, and versioned.
        let path = dir.join("app.db");
        let s = open(&DbLocation::File(path.clone()));
        put(&s, &msg("m1", "+1", "2025-01-15T10:00:00Z", None));
        let version: i64 = lock(&s.write)
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("v");
        assert_eq!(version, schema::VERSION);
        let copy = dir.join("copy.db");
        let done = backup(&path, &copy, Duration::from_secs(1)).expect("backup");
        assert_eq!(done.rows, 1);
        let over = backup(&path, &copy, Duration::from_secs(1)).map(|b| b.rows);
        let why = format!(
            "backup to {}: the file exists; choose a new name",
            copy.display()
        );
        assert!(
            matches!(&over, Err(Error::Failed(e)) if *e == why),
            "never over a file: {over:?}"
        );
        assert_eq!(
            std::fs::metadata(&copy).expect("copy").len(),
            done.bytes,
            "left as it was"
        );
        assert!(
            backup(
                &dir.join("none.db"),
                &dir.join("x.db"),
                Duration::from_secs(1)
            )
            .is_err()
        );
        assert!(
            !dir.join("x.db").exists(),
            "nothing written for a missing database"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn errors_name_the_path() {
        let bad = DbLocation::File("/proc/no-such-dir/app.db".into());
        let Err(e) = Store::open(&bad, Duration::from_secs(1), 0, Duration::from_secs(2), 15)
        else {
            panic!("cannot open under /proc")
        };
        assert!(e.to_string().contains("/proc/no-such-dir"), "{e}");
    }

    #[test]
    fn fold_is_unicode_aware() {
        assert_eq!(fold("ÄRGER Straße"), "ärger straße");
        assert!(fold("Ärger").contains(&fold("ärger")));
    }

    #[test]
    fn a_text_alone_walks_the_time_index_past_two_thousand_matches() {
        let s = open(&DbLocation::Memory);
        let row = |i: usize| {
            let m = msg(
                &format!("r{i}"),
                "+1",
                "2025-01-15T10:00:00Z",
                Some("a refund"),
            );
            (m, "2025-01-15T10:00:00.000000000Z".to_string())
        };
        put_all(&s, &(0..2000).map(row).collect::<Vec<_>>(), 500);
        let plan = |q: &str| {
            let f = Filter {
                q: Some(q.into()),
                limit: 5,
                ..Filter::default()
            };
            let page = s.list(&f).expect("list");
            (page.total, page.plan)
        };
        assert_eq!(plan("refund"), (2000, Plan::Text), "at 2,000 matches");
        // Too short for the trigram index: the time index, however few the matches.
        assert_eq!(plan("re"), (2000, Plan::Time));
        put_all(&s, &[row(2000)], 1);
        assert_eq!(plan("refund"), (2001, Plan::Time), "past 2,000");
    }

    #[test]
    fn filters_together_take_the_text_index_when_its_matches_cost_less_than_the_senders_rows() {
        let s = open(&DbLocation::Memory);
        let row = |i: usize, from: &str, text: &str| {
            let m = msg(
                &format!("{from}-{i}"),
                from,
                "2025-01-15T10:00:00Z",
                Some(text),
            );
            (m, "2025-01-15T10:00:00.000000000Z".to_string())
        };
        // One match of `refund`, from +1, in the text index (it indexes the first rows once
        // there are enough of them); a fetch costs 20 index entries.
        let mut rows = vec![row(0, "+1", "a refund")];
        rows.extend((1..20).map(|i| row(i, "+1", "hello")));
        rows.extend((0..400).map(|i| row(i, "+2", "hello")));
        put_all(&s, &rows, 420);
        let plan_of = |q: &str| {
            let f = Filter {
                from: Some("+1".into()),
                q: Some(q.into()),
                limit: 5,
                ..Filter::default()
            };
            let page = s.list(&f).expect("list");
            (page.total, page.plan)
        };
        let plan = || plan_of("refund");
        assert_eq!(
            plan(),
            (1, Plan::Sender),
            "20 rows of the sender: as costly"
        );
        put_all(&s, &[row(20, "+1", "hello")], 1);
        assert_eq!(plan(), (1, Plan::Text), "21 rows: the one match is cheaper");
        // A text with hundreds of matches (the other sender's too) walks the sender's rows.
        assert_eq!(plan_of("hello"), (20, Plan::Sender));
    }

    #[test]
    fn text_searches_past_their_cap_are_refused_at_once_and_never_hold_other_reads() {
        let dir = fresh_dir("cap");
        let db = DbLocation::File(dir.join("app.db"));
        let s = Store::open(&db, Duration::from_secs(5), 2, Duration::from_secs(5), 1);
        let s = Arc::new(s.expect("open"));
        let search = s.reader(true).expect("the one search allowed");
        assert_eq!(s.searching.load(SeqCst), 1);
        // The second search is refused without waiting (asked on a thread: a mutant that lets
        // it in waits for the held connection for good).
        let (tx, rx) = std::sync::mpsc::channel();
        let t = Arc::clone(&s);
        std::thread::spawn(move || {
            let _ = tx.send(t.reader(true).map(|_| ()));
        });
        let second = rx.recv_timeout(Duration::from_secs(5));
        assert!(matches!(second, Ok(Err(Error::Busy))), "{second:?}");
        assert_eq!(
            s.searching.load(SeqCst),
            1,
            "a refused search keeps no permit"
        );
        // Other reads take the connection searches never take.
        let count: i64 = (s.reader(false).expect("a plain read").0)
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .expect("count");
        assert_eq!(count, 0);
        drop(search);
        assert_eq!(
            s.searching.load(SeqCst),
            0,
            "the permit comes back with the read"
        );
        assert!(s.reader(true).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn readiness_sees_a_moved_database_or_wal_at_once_whatever_holds_the_writer() {
        let dir = fresh_dir("moved");
        let path = dir.join("app.db");
        let s = Store::open(
            &DbLocation::File(path.clone()),
            Duration::from_secs(5),
            1,
            Duration::from_secs(5),
            1,
        );
        let s = s.expect("open");
        let at = |i: u32| msg(&format!("m{i}"), "+1", "2025-01-15T10:00:00Z", None);
        assert_eq!(put(&s, &at(1)), Inserted::New);
        assert_eq!(put(&s, &at(2)), Inserted::New); // the WAL it wrote is now the known one
        assert_eq!(s.health(), Ok(()));
        // The writer is held (a long batch, a blocked probe): the verdict comes from `stat` alone.
        let writer = lock(&s.write);
        for name in ["app.db-wal", "app.db"] {
            let (from, to) = (dir.join(name), dir.join(format!("{name}.moved")));
            std::fs::rename(&from, &to).expect("move");
            assert_eq!(s.health(), Err("storage unavailable"), "{name} moved");
            std::fs::rename(&to, &from).expect("put back");
            assert_eq!(s.health(), Ok(()), "{name} back");
        }
        drop(writer);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn read_connections_default_to_one_per_core_at_most_eight_and_one_more() {
        let dir = fresh_dir("defaults");
        let s = open(&DbLocation::File(dir.join("app.db")));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        assert_eq!(s.read.len(), cores.min(8) + 1, "{cores} cores");
        assert!(
            s.read.len() >= 2,
            "one is always kept free of text searches"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
