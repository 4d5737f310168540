//! Hour buckets: the number of rows in each hour of `ts_key`, kept in the insert transaction, so
//! that a `since` total and a deep offset skip whole hours instead of stepping row by row.
//!
//! Owns: the `hours` table, written (`record`, `forget`) and read (`count_since`, `seek`).
//! Leaves out: the rest of a listing (`mod`). Cost: one hour's rows are still counted one by one
//! (since's own hour, and the hour a deep page starts in).
//! Uses: rusqlite.

use super::Error;
use rusqlite::{Connection, params};

/// Offsets from which a listing by instant skips whole hours instead of stepping row by row.
pub const SEEK_FROM: u64 = 1000;

/// The hour bucket of a `ts_key` (`YYYY-MM-DDTHH`). Every key of that hour sorts after the
/// bucket and before the bucket followed by `;` (the next byte after `:`).
fn hour_of(key: &str) -> &str {
    key.get(..13).unwrap_or(key)
}

/// Counts one new row in its hour (in the insert transaction).
pub fn record(conn: &Connection, ts_key: &str) -> Result<(), Error> {
    let sql = "INSERT INTO hours VALUES (?1, 1) ON CONFLICT (hour) DO UPDATE SET n = n + 1";
    conn.prepare_cached(sql)?.execute([hour_of(ts_key)])?;
    Ok(())
}

/// Takes one deleted row out of its hour, and the hour out when it empties (`prune`).
pub fn forget(conn: &Connection, ts_key: &str) -> Result<(), Error> {
    let hour = hour_of(ts_key);
    conn.prepare_cached("UPDATE hours SET n = n - 1 WHERE hour = ?1")?
        .execute([hour])?;
    conn.prepare_cached("DELETE FROM hours WHERE hour = ?1 AND n = 0")?
        .execute([hour])?;
    Ok(())
}

/// Rows with `ts_key >= since`: whole hours from their counts, plus the rows of since's own hour.
pub fn count_since(conn: &Connection, since: &str) -> Result<i64, Error> {
    let later: i64 = conn
        .prepare_cached("SELECT coalesce(sum(n), 0) FROM hours WHERE hour > ?1")?
        .query_row([hour_of(since)], |r| r.get(0))?;
    Ok(later + count_in_hour(conn, since)?)
}

/// Rows with `ts_key >= since` within since's own hour.
fn count_in_hour(conn: &Connection, since: &str) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM messages WHERE ts_key >= ?1 AND ts_key < ?2")?
        .query_row(params![since, format!("{};", hour_of(since))], |r| r.get(0))?)
}

/// Where the page at `offset` (counted from `since`, or from the start) begins: the first key of
/// the hour to scan from, and the offset left inside it. `None` when the page starts in since's
/// own hour, where a plain offset is short anyway.
pub fn seek(
    conn: &Connection,
    since: Option<&str>,
    offset: u64,
) -> Result<Option<(String, u64)>, Error> {
    let mut rest = offset;
    let mut after = String::new();
    if let Some(since) = since {
        let first = count_in_hour(conn, since)? as u64;
        if rest < first {
            return Ok(None);
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
            return Ok(Some((row.get(0)?, rest)));
        }
        rest -= n as u64;
    }
    // Past the last row: an empty page (`~` sorts after every key).
    Ok(Some(("~".to_string(), 0)))
}
