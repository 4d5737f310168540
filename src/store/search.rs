//! Text search for `q`: case folding, the trigram index and its watermark, and the one condition
//! "the text contains q" that listing and counting share.
//!
//! Owns: `fold`; the FTS5 trigram index of `text_fold` (written in batches behind a watermark,
//! the `fts_rowid` counter; deleted rows taken out with `unindex`); the match clause. Patterns
//! of three characters or more go through
//! the index as a phrase, which with trigrams is exactly a substring match; shorter ones, those
//! holding NUL, and the rows above the watermark are matched with `instr()`. Either way `%` and
//! `_` are ordinary characters.
//! Leaves out: filters other than `q`, ordering and pages (`mod`).
//! Uses: rusqlite, `counter` (mod).

use super::{Error, counter};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, params_from_iter};

/// `text_fold` contains the bound pattern: instr() over bytes, a plain substring test; for valid
/// UTF-8 a byte substring is a character substring.
const CONTAINS: &str = "instr(CAST(text_fold AS BLOB), ?) > 0";

/// The rowids whose text contains the pattern: the indexed rows through the index (bound as a
/// phrase), the few above the watermark by instr() (bound as bytes).
const ROWIDS: &str = "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?
    UNION ALL SELECT rowid FROM messages
    WHERE rowid > (SELECT n FROM counters WHERE name = 'fts_rowid')
      AND instr(CAST(text_fold AS BLOB), ?) > 0";

/// Rows are added to the trigram index in batches of at least this many (in the transaction that
/// reaches it), not one transaction at a time: FTS5 writes a segment per transaction, and small
/// ones cost about a quarter of the ingest rate.
const BATCH: i64 = 256;

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

/// Whether the trigram index can answer a folded pattern: three characters or more (a trigram
/// needs three), and no NUL (it would end the FTS5 query string early).
pub fn indexed(q: &str) -> bool {
    q.chars().count() >= 3 && !q.contains('\0')
}

/// "The text contains `q`" (`q` folded) as a condition on `messages`, with its parameters.
pub fn condition(q: &str) -> (String, Vec<Sql>) {
    match rowids(q) {
        Some(args) => (format!("rowid IN ({ROWIDS})"), args),
        None => contains(q),
    }
}

/// "The text contains `q`" tested on each row, for paths that walk rows anyway.
pub fn contains(q: &str) -> (String, Vec<Sql>) {
    (CONTAINS.to_string(), vec![bytes(q)])
}

/// The indexed rows matching `q` (which `indexed` accepts), counted up to `cap` and no further,
/// so judging whether the text is narrower than another path costs at most that path's size.
/// Rows above the watermark, fewer than a batch, are left out of this estimate.
pub fn matches_up_to(conn: &Connection, q: &str, cap: i64) -> Result<i64, Error> {
    let sql = "SELECT count(*) FROM
        (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 LIMIT ?2)";
    let args = rusqlite::params![phrase(q), cap];
    Ok(conn.prepare_cached(sql)?.query_row(args, |r| r.get(0))?)
}

/// The number of rows whose text contains `q` (folded), counted in the index where it can.
pub fn count(conn: &Connection, q: &str) -> Result<i64, Error> {
    let (sql, args) = match rowids(q) {
        Some(args) => (format!("SELECT count(*) FROM ({ROWIDS})"), args),
        None => (
            format!("SELECT count(*) FROM messages WHERE {CONTAINS}"),
            vec![bytes(q)],
        ),
    };
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(args), |r| r.get(0))?)
}

/// `ROWIDS`' parameters when the index can answer `q`.
fn rowids(q: &str) -> Option<Vec<Sql>> {
    indexed(q).then(|| vec![phrase(q), bytes(q)])
}

/// Indexes the rows above the watermark once there are at least a batch of them, and moves the
/// watermark. Called in the insert transaction.
pub fn index_new_rows(conn: &Connection) -> Result<(), Error> {
    let watermark = counter(conn, "fts_rowid")?;
    let max = "SELECT coalesce(max(rowid), 0) FROM messages";
    let last: i64 = conn.prepare_cached(max)?.query_row([], |r| r.get(0))?;
    if last - watermark >= BATCH {
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

/// Takes a deleted row out of the index (only rows at or below the watermark are in it). A
/// contentless index forgets a row only when given the very text it indexed: `text_fold`.
pub fn unindex(conn: &Connection, rowid: i64, text_fold: &str) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO messages_fts (messages_fts, rowid, text_fold) VALUES ('delete', ?1, ?2)",
    )?
    .execute(rusqlite::params![rowid, text_fold])?;
    Ok(())
}

/// After deleting rows: a new row takes the rowid after the largest left, which may be at or
/// below the watermark once the newest rows are gone; the watermark comes down to it, so the new
/// row counts as not yet indexed (every row up to it is still in the index).
pub fn after_delete(conn: &Connection) -> Result<(), Error> {
    conn.prepare_cached(
        "UPDATE counters SET n = min(n, (SELECT coalesce(max(rowid), 0) FROM messages))
         WHERE name = 'fts_rowid'",
    )?
    .execute([])?;
    Ok(())
}

/// `q` as an FTS5 phrase: with the trigram tokenizer it matches exactly the texts that contain
/// `q` as a substring.
fn phrase(q: &str) -> Sql {
    Sql::Text(format!("\"{}\"", q.replace('"', "\"\"")))
}

fn bytes(q: &str) -> Sql {
    Sql::Blob(q.as_bytes().to_vec())
}
