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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DbLocation;
    use crate::store::{Filter, Message, Row};
    use std::path::PathBuf;

    /// A store on a new file of its own: one read connection, one text search at a time.
    fn file_store(name: &str) -> (PathBuf, Store) {
        let dir = crate::store::tests::fresh_dir(&format!("prune-{name}"));
        let db = DbLocation::File(dir.join("app.db"));
        let s = Store::open(&db, Duration::from_secs(5), 1, Duration::from_secs(5), 1);
        (dir, s.expect("open"))
    }

    /// `n` messages from `from`, ids `{tag}{i}`, each at its own hour, a text holding `word`
    /// (none when it is empty), and a `to` of `pad` bytes (bulk without text-index entries).
    fn rows(tag: &str, from: &str, n: usize, word: &str, pad: usize) -> Vec<Row> {
        let row = |i: usize| {
            let ts = format!("2025-01-{:02}T{:02}:00:00Z", 1 + i / 24 % 28, i % 24);
            let key = crate::ts::parse_message_ts(&ts).expect("ts");
            let text = (!word.is_empty()).then(|| format!("{word} number {i}"));
            let to = format!("+{}", "1".repeat(pad.max(1)));
            let m = Message {
                message_id: format!("{tag}{i}"),
                from: from.into(),
                to,
                ts,
                text,
            };
            (m, key, None)
        };
        (0..n).map(row).collect()
    }

    /// `hours` ago in the `created_at` format, by the test's own clock and formatting.
    fn received(hours: i64) -> String {
        let t = time::OffsetDateTime::now_utc() - time::Duration::hours(hours);
        let (date, ms) = (t.date(), t.millisecond());
        let (y, mo, d) = (date.year(), u8::from(date.month()), date.day());
        let (h, mi, s) = (t.hour(), t.minute(), t.second());
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
    }

    fn put(s: &Store, rows: Vec<Row>, created_at: &str) {
        s.insert_all(rows, created_at).expect("insert");
    }

    fn int(s: &Store, sql: &str) -> i64 {
        lock(&s.write).query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    fn live(s: &Store) -> u64 {
        let pages = int(s, "PRAGMA page_count") - int(s, "PRAGMA freelist_count");
        (pages * int(s, "PRAGMA page_size")) as u64
    }

    /// Rows of the text index that hold `word` (its own MATCH, not the service's search).
    fn indexed(s: &Store, word: &str) -> i64 {
        int(
            s,
            &format!("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH '\"{word}\"'"),
        )
    }

    fn search(s: &Store, q: &str) -> i64 {
        let f = Filter {
            q: Some(q.into()),
            limit: 1,
            ..Filter::default()
        };
        s.list(&f).expect("search").total
    }

    fn ids(s: &Store) -> Vec<String> {
        let w = lock(&s.write);
        let mut stmt = w
            .prepare("SELECT message_id FROM messages ORDER BY rowid")
            .expect("ids");
        let ids = stmt.query_map([], |r| r.get(0)).expect("ids");
        ids.collect::<Result<_, _>>().expect("ids")
    }

    /// Bytes of the file and its WAL, by the file system.
    fn on_disk(dir: &std::path::Path) -> (u64, u64) {
        let size = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
        (size("app.db"), size("app.db-wal"))
    }

    const EVERYTHING: &dyn Fn() -> bool = &|| true;

    fn policy(retention_days: u64, max_bytes: u64) -> Policy {
        Policy {
            retention_days,
            max_bytes,
        }
    }

    /// One pass of `policy(retention_days, max_bytes)`, never told to stop.
    fn pass(s: &Store, retention_days: u64, max_bytes: u64) -> Pass {
        let p = policy(retention_days, max_bytes);
        s.prune(&p, EVERYTHING).expect("prune")
    }

    /// Rows of the text index's own data: fewer once its segments merge.
    fn index_rows(s: &Store) -> i64 {
        int(s, "SELECT count(*) FROM messages_fts_data")
    }

    /// The text index merged since it had `before` rows of data.
    fn assert_merged(s: &Store, before: i64) {
        let merged = index_rows(s);
        assert!(
            merged < before,
            "{merged} rows of the index, {before} before"
        );
    }

    #[test]
    fn retention_takes_what_was_received_before_the_cutoff_out_of_every_table_and_the_index() {
        let (dir, s) = file_store("retention");
        // 250 received two days ago (+1 only then, +2 also later), 10 twelve hours ago.
        put(&s, rows("old", "+1", 150, "oldword", 0), &received(48));
        put(&s, rows("mid", "+2", 100, "oldword", 0), &received(47));
        put(&s, rows("new", "+2", 10, "freshword", 0), &received(12));
        assert_eq!(indexed(&s, "oldword"), 250);
        // Nothing asked, nothing deleted.
        let none = pass(&s, 0, 0);
        assert_eq!((none.retention, none.budget), (0, 0));
        assert_eq!(s.stats().expect("stats").total_messages, 260);
        let segments = index_rows(&s);
        let done = pass(&s, 1, 0);
        assert_eq!((done.retention, done.budget), (250, 0));
        assert_eq!(
            s.writer.pruned.each_ref().map(|n| n.load(Relaxed)),
            [250, 0, 0]
        );
        let stats = s.stats().expect("stats");
        assert_eq!((stats.total_messages, stats.senders_count), (10, 1));
        assert_eq!(stats.top_senders, vec![("+2".to_string(), 10)]);
        assert_eq!(
            ids(&s),
            (0..10).map(|i| format!("new{i}")).collect::<Vec<_>>()
        );
        assert_eq!(int(&s, "SELECT count(*) FROM senders"), 1);
        assert_eq!(int(&s, "SELECT sum(n) FROM hours"), 10);
        assert_eq!(int(&s, "SELECT count(*) FROM hours"), 10);
        // Out of the text index itself, and the index merged (fewer of its pages than before).
        assert_eq!((indexed(&s, "oldword"), indexed(&s, "freshword")), (0, 10));
        assert_eq!((search(&s, "oldword"), search(&s, "freshword")), (0, 10));
        assert_merged(&s, segments);
        // Every free page given back, and the file cut to its pages at the checkpoint.
        assert!(done.vacuumed > 0);
        assert_eq!(int(&s, "PRAGMA freelist_count"), 0);
        let pages = int(&s, "PRAGMA page_count") as u64;
        let (file, wal) = on_disk(&dir);
        assert_eq!(file, pages * 4096);
        assert_eq!(s.file_bytes(), file + wal);
        assert_eq!(s.writer.file_bytes.load(Relaxed), file + wal);
        assert_eq!(s.writer.budget_bytes.load(Relaxed), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn erasing_a_sender_takes_its_rows_out_of_every_table_and_the_index() {
        let (dir, s) = file_store("erase");
        put(&s, rows("keep", "+2", 230, "plainword", 0), &received(2));
        // The newest rows, indexed with the rest (the index takes rows 256 at a time): erasing
        // them moves the index's watermark back.
        put(&s, rows("gone", "+1", 30, "secretword", 0), &received(1));
        assert_eq!(indexed(&s, "secretword"), 30);
        assert_eq!(s.erase_sender("+1"), Ok(30));
        assert_eq!(s.erase_sender("+1"), Ok(0));
        assert_eq!(
            s.writer.pruned.each_ref().map(|n| n.load(Relaxed)),
            [0, 0, 30]
        );
        let stats = s.stats().expect("stats");
        assert_eq!((stats.total_messages, stats.senders_count), (230, 1));
        assert_eq!(ids(&s).len(), 230);
        assert_eq!(int(&s, "SELECT sum(n) FROM hours"), 230);
        assert_eq!(indexed(&s, "secretword"), 0);
        assert_eq!(search(&s, "plainword"), 230);
        // A new row takes a rowid the index had passed: it is still found by its text.
        put(&s, rows("again", "+1", 1, "secretword", 0), &received(0));
        assert_eq!(search(&s, "secretword"), 1);
        assert_eq!(s.stats().expect("stats").senders_count, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_budget_deletes_the_oldest_share_of_rows_once_they_pass_half_of_it() {
        let (dir, s) = file_store("budget");
        let at = [received(40), received(30), received(20), received(10)];
        for (i, at) in at.iter().enumerate() {
            put(
                &s,
                rows(&format!("r{i}-"), &format!("+{i}"), 300, "word", 200),
                at,
            );
        }
        // Rows until the live bytes divide by 5, so that half of twice them is exactly them.
        let mut extra = 0;
        while !live(&s).is_multiple_of(5) {
            put(
                &s,
                rows(&format!("x{extra}-"), "+9", 1, "", 200),
                &received(5),
            );
            extra += 1;
        }
        let (rows_before, live_before) = (1200 + extra as u64, live(&s));
        for max_bytes in [2 * live_before, 2 * live_before + 20] {
            let budget = pass(&s, 0, max_bytes).budget;
            assert_eq!(budget, 0, "at or under half of {max_bytes}");
        }
        let segments = index_rows(&s);
        let max_bytes = 2 * live_before - 20;
        let done = pass(&s, 0, max_bytes);
        // The rows' share of what is over 40% of the budget, and one more.
        let n = rows_before * (live_before - max_bytes / 10 * 4) / live_before + 1;
        assert!(n > 200 && n < 300, "{n} of {rows_before}");
        assert_eq!((done.retention, done.budget), (0, n));
        assert_eq!(
            s.writer.pruned.each_ref().map(|n| n.load(Relaxed)),
            [0, n, 0]
        );
        // The oldest received went, in the order they were written.
        let written = (0..4).flat_map(|i| (0..300).map(move |j| format!("r{i}-{j}")));
        let written: Vec<_> = written
            .chain((0..extra).map(|x| format!("x{x}-0")))
            .collect();
        assert_eq!(ids(&s), written[n as usize..]);
        let stats = s.stats().expect("stats");
        assert_eq!(stats.total_messages as u64, rows_before - n);
        assert_eq!(int(&s, "SELECT sum(n) FROM hours") as u64, rows_before - n);
        assert_eq!(indexed(&s, "word"), 1200 - n as i64);
        assert_merged(&s, segments);
        assert_eq!(s.writer.budget_bytes.load(Relaxed), max_bytes);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn free_pages_go_back_in_sixteen_steps_a_pass_and_under_a_budget_only_past_an_eighth() {
        let (dir, s) = file_store("vacuum");
        put(&s, rows("old", "+1", 2000, "", 1000), &received(48));
        put(&s, rows("new", "+2", 290, "", 1000), &received(1));
        put(&s, rows("few", "+3", 10, "", 1000), &received(1));
        // A budget of 8 MiB: steps of a 64th of it, 32 pages; what is left is far under half.
        let done = pass(&s, 1, 8 << 20);
        assert_eq!(
            (done.retention, done.budget, done.vacuumed),
            (2000, 0, 16 * 32)
        );
        let free = int(&s, "PRAGMA freelist_count");
        assert!(free * 8 > int(&s, "PRAGMA page_count"), "{free}");
        // The next pass gives back the rest, and the file shrinks to its pages.
        let rest = Pass {
            retention: 0,
            budget: 0,
            vacuumed: free as u64,
        };
        assert_eq!(pass(&s, 1, 8 << 20), rest);
        assert_eq!(int(&s, "PRAGMA freelist_count"), 0);
        let (file, _) = on_disk(&dir);
        assert_eq!(file, int(&s, "PRAGMA page_count") as u64 * 4096);
        // A few pages freed, under an eighth of the file: kept under a budget (new rows take
        // them again), given back without one.
        assert_eq!(s.erase_sender("+3"), Ok(10));
        let few = int(&s, "PRAGMA freelist_count");
        assert!(few > 0 && few * 8 <= int(&s, "PRAGMA page_count"), "{few}");
        assert_eq!(pass(&s, 1, 8 << 20), Pass::default());
        assert_eq!(int(&s, "PRAGMA freelist_count"), few);
        assert_eq!(pass(&s, 1, 0).vacuumed, few as u64);
        assert_eq!(int(&s, "PRAGMA freelist_count"), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn preparing_keeps_the_wal_to_an_eighth_of_the_budget_and_converts_a_file_once() {
        let (dir, s) = file_store("prepare");
        put(&s, rows("m", "+1", 500, "word", 100), &received(1));
        let wal = |s: &Store| {
            let pages = int(s, "PRAGMA wal_autocheckpoint");
            (pages, int(s, "PRAGMA journal_size_limit"))
        };
        // New files are made for incremental vacuum; without a budget the WAL's settings stay.
        let no_budget = policy(1, 0);
        assert_eq!(s.prepare_pruning(&no_budget), Ok(None));
        assert_eq!(wal(&s), (8000, 64 << 20));
        let budgets = [
            (8 << 20, (256, 1 << 20)),
            (64 << 10, (16, 8 << 10)),
            (1 << 30, (8192, 32 << 20)),
        ];
        for (max_bytes, want) in budgets {
            assert_eq!(s.prepare_pruning(&policy(0, max_bytes)), Ok(None));
            assert_eq!(wal(&s), want, "a budget of {max_bytes}");
        }
        // A file made without it (as older services made theirs) is converted, once.
        let unconvert = "PRAGMA auto_vacuum = NONE; VACUUM;";
        lock(&s.write).execute_batch(unconvert).expect("unconvert");
        assert_eq!(int(&s, "PRAGMA auto_vacuum"), 0);
        let before = on_disk(&dir);
        let converted = s.prepare_pruning(&no_budget).expect("prepare");
        let (took, from, to) = converted.expect("converted");
        let after = on_disk(&dir);
        assert_eq!(int(&s, "PRAGMA auto_vacuum"), 2);
        assert_eq!((from, to), (before.0 + before.1, after.0 + after.1));
        assert!(took > Duration::ZERO && after.1 == 0, "{took:?}, {after:?}");
        assert_eq!(s.prepare_pruning(&no_budget), Ok(None));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
