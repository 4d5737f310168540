//! Group commit: every insert goes through one queue, and one transaction (one fsync) serves all
//! the rows waiting at that moment, while each request still learns its own outcome.
//!
//! Owns: the queue of waiting rows, the leader who writes them, the guard that hands leadership
//! on even when the leader panics, and the write of one batch (rows and aggregates together).
//! Wake-ups are targeted: a leader wakes its batch's threads and one waiting thread to lead the
//! next batch, never everyone (a wake-all woke the next batch's rows too, only to sleep again:
//! at 64 connections that was most of the process's context switches).
//! Leaves out: reading (`mod`), what hour and text-index bookkeeping mean (`hours`, `search`).
//! Uses: rusqlite, `hours`, `search`, `lock`, `metrics::Writer` (through the `Store`).

use super::{Error, Inserted, Message, Store, hours, lock, search};
use rusqlite::{Connection, TransactionBehavior, params};
use std::collections::HashMap;
use std::sync::atomic::Ordering::SeqCst;
use std::thread::Thread;
use std::time::Instant;

/// What a sender sent beside a message's API fields, kept in its row (`type`, `raw`) and not
/// shown by `list`: the WhatsApp Cloud API's message type and the message object as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub kind: String,
    pub raw: String,
}

/// A row for `Store::insert_all`: the message, the key of its `ts`, what the sender sent beside it.
pub type Row = (Message, String, Option<Sent>);

/// One row waiting to be written, and where its outcome goes.
pub(super) struct Job {
    seq: u64,
    /// The inserting thread, woken when the row's outcome is published.
    thread: Thread,
    message: Message,
    ts_key: String,
    sent: Option<Sent>,
    created_at: String,
}

/// Rows waiting for the next transaction and outcomes waiting to be collected. One inserting
/// thread at a time is the *leader*: it takes every waiting row, writes them in one transaction,
/// publishes each row's outcome, and wakes the others.
#[derive(Default)]
pub(super) struct Queue {
    next_seq: u64,
    waiting: Vec<Job>,
    outcomes: HashMap<u64, Result<Inserted, Error>>,
    leader: bool,
}

impl Store {
    /// Stores each row (message, `ts_key`: the sortable instant of its `ts`, what the sender sent
    /// beside it) unless its id is already there; a known id leaves the stored row as it was. The
    /// rows commit in the same transaction, or fail together; an outcome for each, in order. A
    /// second row with the id of an earlier one is a duplicate of it. Returns once the rows'
    /// transaction is on disk.
    ///
    /// Rows that arrive while a transaction is being written go together into the next one, so
    /// one fsync serves many requests. Each still learns its own outcome.
    pub fn insert_all(&self, rows: Vec<Row>, created_at: &str) -> Result<Vec<Inserted>, Error> {
        let mut queue = lock(&self.queue);
        let first = queue.next_seq;
        queue.next_seq += rows.len() as u64;
        // Queued together under one lock, so the leader that takes them takes them all.
        let me = std::thread::current();
        let jobs = (rows.into_iter().zip(first..)).map(|((message, ts_key, sent), seq)| Job {
            seq,
            thread: me.clone(),
            message,
            ts_key,
            sent,
            created_at: created_at.into(),
        });
        queue.waiting.extend(jobs);
        let seqs = first..queue.next_seq;
        loop {
            // A batch's outcomes are published together.
            if seqs.clone().all(|s| queue.outcomes.contains_key(&s)) {
                return seqs.filter_map(|s| queue.outcomes.remove(&s)).collect();
            }
            if queue.leader {
                drop(queue);
                // Until the leader publishes this row's outcome or hands over leadership; a
                // wake-up before this parks is not lost (park returns at once), and a spurious
                // return just asks again.
                std::thread::park();
                queue = lock(&self.queue);
                continue;
            }
            queue.leader = true;
            let batch = std::mem::take(&mut queue.waiting);
            drop(queue);
            // On every exit, even unwinding from a panic, the guard publishes each row's outcome
            // (failed when none was written), clears the leader flag and wakes the waiters, so
            // nobody waits forever.
            let mut guard = Leader {
                store: self,
                batch: batch.iter().map(|j| (j.seq, j.thread.clone())).collect(),
                written: None,
            };
            guard.written = Some(self.write_batch(&batch));
            drop(guard);
            queue = lock(&self.queue);
        }
    }

    /// Writes a batch in one transaction (all rows commit together or none do), after checking
    /// the file is still in place; remembers whether it failed, for readiness, and reports the
    /// batch's size and time to the writer's metrics.
    fn write_batch(&self, batch: &[Job]) -> Result<HashMap<u64, Inserted>, Error> {
        let mut conn = lock(&self.write);
        let started = Instant::now();
        let result = (self.usable())
            .and_then(|()| self.ensure_file(&mut conn))
            .and_then(|()| write_rows(&mut conn, batch));
        self.writer
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        self.writer.batch_rows.observe(batch.len() as f64);
        self.write_failing.store(result.is_err(), SeqCst);
        result
    }
}

/// The rows of a batch, their aggregates (senders, counters, hours) and, when due, the text
/// index, in one transaction. Returns each row's outcome by sequence number.
fn write_rows(conn: &mut Connection, batch: &[Job]) -> Result<HashMap<u64, Inserted>, Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = HashMap::with_capacity(batch.len());
    let (mut new_messages, mut new_senders) = (0i64, 0i64);
    for job in batch {
        let m = &job.message;
        let changed = tx
            .prepare_cached(
                "INSERT INTO messages (message_id, from_msisdn, to_msisdn, ts, text, created_at, ts_key, text_fold, type, raw)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (message_id) DO NOTHING",
            )?
            .execute(params![
                m.message_id,
                m.from,
                m.to,
                m.ts,
                m.text,
                job.created_at,
                job.ts_key,
                m.text.as_deref().map(search::fold),
                job.sent.as_ref().map(|s| &s.kind),
                job.sent.as_ref().map(|s| &s.raw)
            ])?;
        if changed == 1 {
            new_messages += 1;
            hours::record(&tx, &job.ts_key)?;
            // The sender's count after this row: 1 for a new sender.
            let sender = "INSERT INTO senders VALUES (?1, 1)
                          ON CONFLICT (from_msisdn) DO UPDATE SET n = n + 1 RETURNING n";
            let n: i64 = tx
                .prepare_cached(sender)?
                .query_row([&m.from], |r| r.get(0))?;
            new_senders += i64::from(n == 1);
        }
        // One row: 0 changed is the id already there, 1 a new row.
        let inserted = [Inserted::Duplicate, Inserted::New][changed];
        outcomes.insert(job.seq, inserted);
    }
    super::add_counts(&tx, new_messages, new_senders)?;
    if new_messages > 0 {
        search::index_new_rows(&tx)?;
    }
    tx.commit()?;
    Ok(outcomes)
}

/// Ends a group-commit leader's turn: publishes each row's outcome from `written` (every row
/// failed when it is `None`: the leader unwound from a panic), clears the flag, wakes the batch's
/// threads and the first waiting one, to lead the next batch.
struct Leader<'a> {
    store: &'a Store,
    batch: Vec<(u64, Thread)>,
    written: Option<Result<HashMap<u64, Inserted>, Error>>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut queue = lock(&self.store.queue);
        let failed = Err(Error::Failed("the writer failed".into()));
        let written = self.written.take().unwrap_or(failed);
        for (seq, _) in &self.batch {
            let outcome = written.as_ref().map(|o| o[seq]).map_err(Error::clone);
            queue.outcomes.insert(*seq, outcome);
        }
        queue.leader = false;
        let next = queue.waiting.first().map(|j| j.thread.clone());
        drop(queue);
        // Not the leader itself: it is awake, and a token left for it would cut its next wait
        // short for nothing.
        let me = std::thread::current().id();
        let batch = self.batch.iter().map(|(_, t)| t);
        for thread in batch.chain(&next).filter(|t| t.id() != me) {
            thread.unpark();
        }
    }
}
