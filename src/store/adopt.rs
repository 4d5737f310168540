//! Adoption in place of a database the FastAPI service wrote: its `messages` table (a message's
//! six columns, `message_id` the primary key) gains our derived columns and tables, row by row
//! in batches, resumable after a crash at any point.
//!
//! Owns: stages 2 and 3 (batches, finish) after `schema` began the adoption (stage 1: our
//! columns and tables, the resume mark), the resume mark's progress, and the `Store`'s
//! `adopting` state (every read and write refuses until `Store::adopt` has finished).
//! Every row keeps its bytes; only `ts_key` and `text_fold` are added (a `ts` in a form we do not
//! know sorts by its text, `ts::legacy_key`). The FastAPI indexes are dropped: ours replace them.
//! Leaves out: when to run and what to log (`Store::adopt`, called by `start`), the schema itself.
//! Uses: rusqlite, `schema` (backfill, version, `in_transaction`), `search::fold`,
//! `ts::legacy_key`, the `Store`'s write connection.

use super::{Error, Store, lock, schema, search};
use rusqlite::{Connection, params};
use std::sync::atomic::Ordering::SeqCst;

impl Store {
    /// Whether the file is a FastAPI service's database still being adopted: `adopt` must run
    /// before anything is read or written.
    pub fn adopting(&self) -> bool {
        self.adopting.load(SeqCst)
    }

    /// Adopts the file in batches (one transaction each, so a crash resumes at the next open),
    /// reporting (rows done, rows in all) after each; then the store serves. Returns the last
    /// report. Rows are counted once: nothing else writes while the file is being adopted.
    pub fn adopt(&self, mut progress: impl FnMut(i64, i64)) -> Result<(i64, i64), Error> {
        let (mut done, total) = {
            let conn = lock(&self.write);
            let count = |sql| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
            let done =
                count("SELECT count(*) FROM messages WHERE rowid <= (SELECT done FROM adoption)")?;
            (done, count("SELECT count(*) FROM messages")?)
        };
        loop {
            let mut conn = lock(&self.write);
            let Some(rows) = step(&mut conn)? else {
                finish(&conn)?;
                self.adopting.store(false, SeqCst);
                return Ok((done, total));
            };
            drop(conn);
            done += rows;
            progress(done, total);
        }
    }

    /// Refuses while the file is being adopted.
    pub(super) fn usable(&self) -> Result<(), Error> {
        match self.adopting() {
            true => Err(Error::Failed("the database is being adopted".into())),
            false => Ok(()),
        }
    }
}

/// Rows per transaction: big enough that fsyncs do not dominate, small enough that a kill -9
/// loses little work and a progress line comes every second or so.
pub const BATCH: i64 = 50_000;

/// Stage 2: derives the keys of the next `BATCH` rows in rowid order and indexes their text, in
/// one transaction with the resume mark. Returns how many rows it adopted, or `None` when none
/// was left.
pub fn step(conn: &mut Connection) -> Result<Option<i64>, Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let done: i64 = tx.query_row("SELECT done FROM adoption", [], |r| r.get(0))?;
    let rows: Vec<(i64, String, Option<String>)> = tx
        .prepare("SELECT rowid, ts, text FROM messages WHERE rowid > ?1 ORDER BY rowid LIMIT ?2")?
        .query_map([done, BATCH], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let Some(&(last, _, _)) = rows.last() else {
        return Ok(None);
    };
    {
        let mut set =
            tx.prepare("UPDATE messages SET ts_key = ?2, text_fold = ?3 WHERE rowid = ?1")?;
        let mut index =
            tx.prepare("INSERT INTO messages_fts (rowid, text_fold) VALUES (?1, ?2)")?;
        for (rowid, ts, text) in &rows {
            let fold = text.as_deref().map(search::fold);
            set.execute(params![rowid, crate::ts::legacy_key(ts), fold])?;
            if let Some(fold) = fold {
                index.execute(params![rowid, fold])?;
            }
        }
    }
    tx.execute("UPDATE adoption SET done = ?1", [last])?;
    tx.commit()?;
    Ok(Some(rows.len() as i64))
}

/// Stage 3, one transaction: the aggregates from the adopted rows, the text index's watermark at
/// the last row indexed, the schema's later steps (`begin` laid down version 1's); the resume
/// mark goes.
pub fn finish(conn: &Connection) -> Result<(), Error> {
    let backfill = schema::BACKFILL;
    let sql = format!(
        "{backfill} UPDATE counters SET n = (SELECT done FROM adoption) WHERE name = 'fts_rowid';
         DROP TABLE adoption; {}",
        schema::upgrade(1)
    );
    schema::in_transaction(conn, &sql)
}
