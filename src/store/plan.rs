//! The plan of one listing: which rows its page and its exact `total` are read from, chosen per
//! request from what the store already knows cheaply.
//!
//! Three paths, each giving the rows in page order or sorting a few:
//! - `sender`: the sender index, that sender's rows (from `since` on) in order; the text tested
//!   on each.
//! - `time`: the time index from `since` (or the start) in order, the other filters tested on
//!   each; a deep offset skips whole hours by their counts (`hours::seek`).
//! - `text`: the rows the trigram index matches, the other filters tested on each, then sorted.
//!
//! The choice: the sender's row count (`senders`), the rows since (`hours`), and the text's
//! matches counted in the trigram index, but never past what walking the best of the other two
//! would cost; the cheapest wins, and the text is tested by membership in the index's matches
//! unless they are too many to collect. One filter alone takes its total from its aggregate; filters together count their rows
//! along the chosen path. Either way `total` is exact; a test forces every plan in turn and
//! compares each page and total with a model of the rows.
//! Uses: rusqlite, `search`, `hours`, `counter` and the listing's types (mod).

use super::{Error, Filter, Message, Page, counter, hours, search};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

/// A listing's path through the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Plan {
    Sender,
    Time,
    Text,
}

impl Plan {
    /// The plan's name in the DEBUG request line (`plan`).
    pub fn name(self) -> &'static str {
        match self {
            Plan::Sender => "sender",
            Plan::Time => "time",
            Plan::Text => "text",
        }
    }
}

/// A `q` alone matching more rows than this walks the time index, keeping the matching rows,
/// rather than fetching and sorting every match.
const WALK_FROM: i64 = 2000;

/// One page and its total from one read transaction, by `forced` when it applies to the filters
/// (a `sender` plan needs `from`, a `text` plan an indexable `q`), else by the cheapest.
pub fn list(tx: &Connection, f: &Filter, forced: Option<Plan>) -> Result<Page, Error> {
    let q = f.q.as_deref().map(search::fold);
    let indexed = q.as_deref().is_some_and(search::indexed);
    let from_rows = (f.from.as_deref().map(|from| sender_rows(tx, from))).transpose()?;
    // One filter alone: its aggregate is the total, and it picks the plan.
    let alone = match (&from_rows, &f.since_key, &q) {
        (None, None, None) => Some((counter(tx, "messages")?, Plan::Time)),
        (Some(n), None, None) => Some((*n, Plan::Sender)),
        (None, Some(since), None) => Some((hours::count_since(tx, since)?, Plan::Time)),
        (None, None, Some(q)) => {
            let n = search::count(tx, q)?;
            let walk = n > WALK_FROM || !indexed;
            Some((n, if walk { Plan::Time } else { Plan::Text }))
        }
        _ => None,
    };
    let usable = |p: Plan| match p {
        Plan::Sender => f.from.is_some(),
        Plan::Text => indexed,
        Plan::Time => true,
    };
    let (chosen, by_index) = match alone {
        Some((_, p)) => (p, true),
        None => cheapest(tx, f, from_rows, q.as_deref().filter(|_| indexed))?,
    };
    let plan = forced.filter(|p| usable(*p)).unwrap_or(chosen);
    let mut w = Where::default();
    if let Some(from) = &f.from {
        w.add("from_msisdn = ?", [Sql::from(from.clone())]);
    }
    if let Some(since) = &f.since_key {
        w.add("ts_key >= ?", [Sql::from(since.clone())]);
    }
    if let Some(q) = &q {
        // Membership in the index's matches, unless they are too many to be worth collecting
        // (then each row's text is tested); `condition` tests rows itself for short patterns.
        let (clause, args) = match by_index || plan == Plan::Text {
            true => search::condition(q),
            false => search::contains(q),
        };
        w.add(&clause, args);
    }
    let table = match plan {
        Plan::Sender => "messages INDEXED BY messages_by_sender",
        Plan::Time => "messages INDEXED BY messages_by_time",
        Plan::Text => "messages NOT INDEXED", // the rowids from the index, then a sort
    };
    let total = match alone {
        Some((n, _)) => n,
        None => w.count(tx, table)?,
    };
    let mut offset = f.offset;
    if plan == Plan::Time && f.from.is_none() && q.is_none() && offset >= hours::SEEK_FROM {
        // Deep offset by instant: skip whole hours by their counts, then step inside one.
        if let Some((hour, rest)) = hours::seek(tx, f.since_key.as_deref(), offset)? {
            w.add("ts_key >= ?", [Sql::from(hour)]);
            offset = rest;
        }
    }
    let filter = w.sql();
    let mut args = w.args;
    args.push(Sql::Integer(i64::from(f.limit)));
    args.push(Sql::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
    let messages = tx
        .prepare_cached(&format!(
            "SELECT message_id, from_msisdn, to_msisdn, ts, text FROM {table} {filter}
             ORDER BY ts_key, message_id LIMIT ? OFFSET ?"
        ))?
        .query_map(params_from_iter(&args), |r| {
            Ok(Message {
                message_id: r.get(0)?,
                from: r.get(1)?,
                to: r.get(2)?,
                ts: r.get(3)?,
                text: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page {
        messages,
        total,
        plan,
    })
}

/// Testing a row's text by `instr()` fetches the row; testing its rowid against the index's
/// matches costs an index entry. A fetch costs about this many entries walked (a sender's 5,000
/// rows since a date: 12 ms by `instr()`, 2 ms by the index's 960 matches of a word).
const FETCH_COST: i64 = 20;

/// Filters together: the path with the fewest rows to walk, and whether the text is tested by
/// the index's matches (`true`) or on each row. The sender's and the time range's sizes are
/// exact aggregates; the text's matches are counted in the index only up to what walking the
/// other path row by row would cost, so judging never costs more than the path it replaces.
fn cheapest(
    tx: &Connection,
    f: &Filter,
    from_rows: Option<i64>,
    indexed_q: Option<&str>,
) -> Result<(Plan, bool), Error> {
    let time_rows = match &f.since_key {
        Some(since) => hours::count_since(tx, since)?,
        None => counter(tx, "messages")?,
    };
    let (path, rows) = match from_rows {
        Some(n) if n <= time_rows => (Plan::Sender, n),
        _ => (Plan::Time, time_rows),
    };
    let Some(q) = indexed_q else {
        return Ok((path, false));
    };
    let cap = rows.saturating_mul(FETCH_COST);
    Ok(match search::matches_up_to(tx, q, cap)? {
        // So few matches that fetching each costs less than walking the path's index.
        m if m.saturating_mul(FETCH_COST) < rows => (Plan::Text, true),
        m if m < cap => (path, true),
        _ => (path, false),
    })
}

/// A sender's row count, from the `senders` aggregate (0 for one never seen).
fn sender_rows(tx: &Connection, from: &str) -> Result<i64, Error> {
    let sql = "SELECT n FROM senders WHERE from_msisdn = ?1";
    let n = tx.prepare_cached(sql)?.query_row([from], |r| r.get(0));
    Ok(n.optional()?.unwrap_or(0))
}

/// A WHERE clause under construction: conditions with anonymous `?` parameters, bound in the
/// order they appear, never spliced into the SQL.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    args: Vec<Sql>,
}

impl Where {
    /// Adds a condition and the values of its `?`s, in order.
    fn add(&mut self, clause: &str, args: impl IntoIterator<Item = Sql>) {
        self.clauses.push(clause.to_string());
        self.args.extend(args);
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// `count(*)` of the rows that match, along `table`'s path.
    fn count(&self, conn: &Connection, table: &str) -> Result<i64, Error> {
        Ok(conn
            .prepare_cached(&format!("SELECT count(*) FROM {table} {}", self.sql()))?
            .query_row(params_from_iter(&self.args), |r| r.get(0))?)
    }
}
