//! Pruning: retention by age of receipt, the disk budget, erasure of one sender's messages, and
//! giving the space back.
//!
//! Owns: deleting rows in small batches through the one write connection, each batch one short
//! transaction that takes its rows out of `messages`, the aggregates (`senders`, `counters`,
//! `hours`) and the text index together, the exact inverse of `commit::write_rows`; incremental
//! vacuum in small steps; the one-time conversion of a file to `auto_vacuum = INCREMENTAL`; the
//! size of the database files.
//! Between two batches the writer is free for as long as the batch held it, so webhooks wait a
//! few milliseconds at most, never for a whole pass.
//! Leaves out: when pruning is on, the thread that runs a pass every 250 ms (the budget is
//! checked this often) and the log lines (`lib`), HTTP (`erase`).
//! Uses: rusqlite, `hours`, `search`, `health` (the WAL's name), `lock`, `metrics::Writer` (through
//! the `Store`).

use super::{Error, Store, health, hours, lock, search};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, TransactionBehavior};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Rows deleted per transaction (about 10 ms of the writer's time at 1M rows).
const BATCH: u64 = 100;
/// After each batch the writer is left to webhooks for this many times as long as it took.
const REST: u32 = 3;
/// Most text-index merge steps and vacuum steps in one pass.
const STEPS: usize = 16;
/// Most text-index merge steps after one deletion (of about 32 pages each: 32 MiB written).
const MERGE_STEPS: usize = 256;
/// Free pages given back to the file system per step of incremental vacuum (4 MiB).
const VACUUM_PAGES: i64 = 1024;

/// Why rows were deleted: the `reason` label of `db_rows_pruned_total`, in the order of
/// `metrics::Writer::pruned`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Retention,
    Budget,
    Erase,
}

/// What to prune: messages received more than `retention_days` ago (0: none), and the oldest
/// received while the database files would pass `max_bytes` (0: no budget).
#[derive(Clone, Copy, Debug, Default)]
pub struct Policy {
    pub retention_days: u64,
    pub max_bytes: u64,
}

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub retention: u64,
    pub budget: u64,
    /// Pages given back to the file system.
    pub vacuumed: u64,
}

/// What converting the file to incremental auto-vacuum cost (a whole VACUUM, and the index of
/// receipt times when it was new): the time, the bytes before and after.
pub type Converted = (Duration, u64, u64);

impl Store {
    /// Erases every message from `from`, in batches, then merges the text index so no segment
    /// keeps their trigrams; with `secure_delete`, freed space is overwritten with zeros (the WAL
    /// keeps the old pages until it is checkpointed over). Returns how many.
    pub fn erase_sender(&self, from: &str) -> Result<u64, Error> {
        let secure =
            |on: &str| lock(&self.write).execute_batch(&format!("PRAGMA secure_delete = {on};"));
        secure("ON")?;
        let sql = "WHERE from_msisdn = ?1";
        let from = [Sql::from(from.to_string())];
        let erased = self.delete_all(Reason::Erase, sql, &from, u64::MAX, &|| true);
        let merged = erased
            .as_ref()
            .map_or(Ok(()), |_| self.merge_index(MERGE_STEPS, &|| true));
        secure("OFF")?;
        merged?;
        erased
    }

    /// Before the first pass: the index that finds the oldest received rows, a WAL kept within
    /// an eighth of the budget, and (once per file, when it was made without it) the conversion
    /// to incremental auto-vacuum, which rewrites the whole file: `None` when not needed.
    pub fn prepare_pruning(&self, p: &Policy) -> Result<Option<Converted>, Error> {
        let conn = lock(&self.write);
        let (started, bytes_before) = (Instant::now(), self.file_bytes());
        conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS messages_by_receipt ON messages (created_at);",
        )?;
        if p.max_bytes > 0 {
            let wal = (p.max_bytes / 8).min(32 << 20);
            conn.execute_batch(&format!(
                "PRAGMA wal_autocheckpoint = {}; PRAGMA journal_size_limit = {wal};",
                (wal / 4096).max(16)
            ))?;
        }
        if pragma(&conn, "auto_vacuum")? == 2 || self.path.is_none() {
            return Ok(None);
        }
        // VACUUM copies the database into a temporary one: on disk (TMPDIR), not in memory.
        conn.execute_batch(
            "PRAGMA temp_store = FILE; PRAGMA auto_vacuum = INCREMENTAL; VACUUM;
             PRAGMA temp_store = MEMORY; PRAGMA wal_checkpoint(TRUNCATE);",
        )?;
        Ok(Some((started.elapsed(), bytes_before, self.file_bytes())))
    }

    /// One pass of `p`: retention, then the budget, then vacuum; `go` says whether to go on
    /// (false stops between two batches).
    pub fn prune(&self, p: &Policy, go: &dyn Fn() -> bool) -> Result<Pass, Error> {
        let mut pass = Pass::default();
        if p.retention_days > 0 {
            let cutoff = crate::ts::utc_days_ago(p.retention_days);
            let sql = "WHERE created_at < ?1 ORDER BY created_at";
            let cutoff = [Sql::from(cutoff)];
            pass.retention = self.delete_all(Reason::Retention, sql, &cutoff, u64::MAX, go)?;
        }
        // Under a budget, live pages are brought under 40% of it once they pass 50%. The rest is
        // for the WAL (an eighth), a tick's arrivals, and what deleting costs before it frees
        // anything: the text index keeps a deleted row's trigrams until it merges them. So the
        // rows' share of the excess goes at once (the live size cannot be watched batch by batch).
        let (high, low) = (p.max_bytes / 10 * 5, p.max_bytes / 10 * 4);
        let live = {
            let conn = lock(&self.write);
            let used = pragma(&conn, "page_count")? - pragma(&conn, "freelist_count")?;
            (used * pragma(&conn, "page_size")?) as u64
        };
        if p.max_bytes > 0 && live > high {
            let rows = self.stats()?.total_messages as u64;
            let n = (rows as u128 * u128::from(live - low) / u128::from(live)) as u64 + 1;
            pass.budget = self.delete_all(Reason::Budget, "ORDER BY created_at", &[], n, go)?;
        }
        // Deleted rows leave the text index only when its segments merge: after a large share of
        // the rows (the first pass after retention is turned on), merge now rather than wait for
        // the index's own merges; under a budget, a few steps after every deletion (its passes
        // must stay short, to look at the budget again soon). Then free pages go back, in at
        // most `STEPS` steps a pass.
        let deleted = pass.retention + pass.budget;
        if p.max_bytes > 0 && deleted > 0 {
            self.merge_index(STEPS, go)?;
        } else if deleted > 0 && deleted * 20 >= self.stats()?.total_messages as u64 {
            self.merge_index(MERGE_STEPS, go)?;
        }
        // Steps of 4 MiB, or a 64th of the budget.
        let pages = match p.max_bytes {
            0 => VACUUM_PAGES,
            b => (b as i64 / 64 / 4096).clamp(16, VACUUM_PAGES),
        };
        for _ in 0..STEPS {
            let (freed, took) = self.vacuum_step(pages, p.max_bytes > 0)?;
            pass.vacuumed += freed;
            if freed == 0 || !go() {
                break;
            }
            std::thread::sleep(took);
        }
        if pass.vacuumed > 0 {
            // The file shrinks when the WAL is copied back (if no reader holds an older snapshot).
            lock(&self.write).execute_batch("PRAGMA wal_checkpoint(PASSIVE);")?;
        }
        if p.max_bytes > 0 {
            self.writer.budget_bytes.store(p.max_bytes, Relaxed);
        }
        self.file_bytes(); // sets the gauge
        Ok(pass)
    }

    /// Bytes of the database file and its WAL (0 in memory). Also sets the /metrics gauge.
    pub fn file_bytes(&self) -> u64 {
        let Some(path) = &self.path else { return 0 };
        let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let bytes = size(path) + size(&health::beside(path, "-wal"));
        self.writer.file_bytes.store(bytes, Relaxed);
        bytes
    }

    /// Deletes up to `most` of the rows `filter` picks (a WHERE and ORDER BY over `messages`)
    /// batch by batch while `go` says so, resting between batches `REST` times as long as each
    /// held the writer.
    fn delete_all(
        &self,
        reason: Reason,
        filter: &str,
        args: &[Sql],
        most: u64,
        go: &dyn Fn() -> bool,
    ) -> Result<u64, Error> {
        // The budget cannot wait (past it webhooks fail): larger batches, shorter rests.
        let (size, rest) = match reason {
            Reason::Budget => (BATCH * 5, 1),
            _ => (BATCH, REST),
        };
        let mut done = 0;
        while go() && done < most {
            let started = Instant::now();
            let batch = (most - done).min(size);
            let n = self.delete_batch(filter, args, batch)?;
            self.writer.pruned[reason as usize].fetch_add(n, Relaxed);
            done += n;
            if n < batch {
                break;
            }
            std::thread::sleep(started.elapsed() * rest);
        }
        Ok(done)
    }

    /// One batch in one transaction: the rows, their counts in `senders`, `counters` and
    /// `hours`, and their entries in the text index.
    fn delete_batch(&self, filter: &str, args: &[Sql], most: u64) -> Result<u64, Error> {
        let mut conn = lock(&self.write);
        self.usable()?;
        self.ensure_file(&mut conn)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let rows: Vec<(i64, String, String, Option<String>)> = tx
            .prepare_cached(&format!(
                "SELECT rowid, from_msisdn, ts_key, text_fold FROM messages {filter} LIMIT {most}"
            ))?
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?;
        let watermark = super::counter(&tx, "fts_rowid")?;
        let mut gone_senders = 0;
        for (rowid, from, ts_key, text_fold) in &rows {
            if let Some(text) = text_fold.as_deref().filter(|_| *rowid <= watermark) {
                search::unindex(&tx, *rowid, text)?;
            }
            hours::forget(&tx, ts_key)?;
            tx.prepare_cached("UPDATE senders SET n = n - 1 WHERE from_msisdn = ?1")?
                .execute([from])?;
            gone_senders += tx
                .prepare_cached("DELETE FROM senders WHERE from_msisdn = ?1 AND n = 0")?
                .execute([from])? as i64;
            tx.prepare_cached("DELETE FROM messages WHERE rowid = ?1")?
                .execute([rowid])?;
        }
        super::add_counts(&tx, -(rows.len() as i64), -gone_senders)?;
        search::after_delete(&tx)?;
        tx.commit()?;
        Ok(rows.len() as u64)
    }

    /// Merges the text index's segments, about 32 pages a step, until one is left (a step that
    /// changes nothing) or `steps` steps are done (while rows arrive there is always a new
    /// segment): the entries a delete left beside the rows it took out cancel then.
    fn merge_index(&self, steps: usize, go: &dyn Fn() -> bool) -> Result<(), Error> {
        for _ in 0..steps {
            if !go() {
                break;
            }
            let conn = lock(&self.write);
            let (started, before) = (Instant::now(), conn.total_changes());
            conn.execute_batch(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('merge', -32);",
            )?;
            if conn.total_changes() - before <= 1 {
                return Ok(());
            }
            drop(conn);
            std::thread::sleep(started.elapsed());
        }
        Ok(())
    }

    /// Gives up to `pages` free pages back (the file shrinks at the next checkpoint); returns
    /// how many and how long the writer was held. Nothing in a file without incremental
    /// auto-vacuum, nor (`spare`) while free pages are under an eighth of the file: under a
    /// budget, giving back pages new rows would take again is churn.
    fn vacuum_step(&self, pages: i64, spare: bool) -> Result<(u64, Duration), Error> {
        let conn = lock(&self.write);
        let started = Instant::now();
        let free = pragma(&conn, "freelist_count")?;
        let few = spare && free * 8 <= pragma(&conn, "page_count")?;
        if free == 0 || few || pragma(&conn, "auto_vacuum")? != 2 {
            return Ok((0, Duration::ZERO));
        }
        let free = free.min(pages);
        // Each step of the statement frees one page: run it to the end.
        let mut vacuum = conn.prepare(&format!("PRAGMA incremental_vacuum({free})"))?;
        let mut steps = vacuum.query([])?;
        while steps.next()?.is_some() {}
        Ok((free as u64, started.elapsed()))
    }
}

fn pragma(conn: &Connection, name: &str) -> Result<i64, Error> {
    Ok(conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?)
}
