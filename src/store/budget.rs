//! Reads' time budgets, and how many read connections there are.
//!
//! Owns: `Budget` (each read connection's deadline, checked by SQLite's progress handler every
//! few thousand instructions; past it the read is interrupted and fails with
//! `Error::OverBudget`), the `Clock` that holds a deadline for exactly one read, and the default
//! number of read connections.
//! Leaves out: choosing a connection for a read (`mod`). Uses: rusqlite.

use super::Error;
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// One connection's read budget: while a read runs on it, SQLite's progress handler (every few
/// thousand instructions) interrupts it once the clock passes `deadline`, and the read fails
/// with `Error::OverBudget`. Writes never see a deadline.
#[derive(Debug)]
pub(super) struct Budget {
    base: Instant,
    /// Nanoseconds since `base` at which the running read is interrupted; 0 when none runs.
    deadline: AtomicU64,
    pub(super) limit: Arc<AtomicU64>,
}

impl Budget {
    /// A budget checked by `conn`'s progress handler.
    pub(super) fn watch(
        conn: &mut Connection,
        limit: &Arc<AtomicU64>,
    ) -> Result<Arc<Budget>, Error> {
        let budget = Arc::new(Budget {
            base: Instant::now(),
            deadline: AtomicU64::new(0),
            limit: Arc::clone(limit),
        });
        budget.rewatch(conn)?;
        Ok(budget)
    }

    /// Makes `conn` (a new one, after the file was replaced) check this budget.
    pub(super) fn rewatch(self: &Arc<Budget>, conn: &mut Connection) -> Result<(), Error> {
        let watched = Arc::clone(self);
        conn.progress_handler(10_000, Some(move || watched.exceeded()))?;
        Ok(())
    }

    /// Whether the running read is past its deadline (the progress handler's question).
    fn exceeded(&self) -> bool {
        let d = self.deadline.load(Relaxed);
        d != 0 && self.base.elapsed().as_nanos() as u64 > d
    }

    /// Starts the clock of one read; it stops when the guard is dropped.
    pub(super) fn start(&self) -> Clock<'_> {
        let now = self.base.elapsed().as_nanos() as u64;
        let limit = self.limit.load(Relaxed).max(1);
        self.deadline.store(now.saturating_add(limit), Relaxed);
        Clock(self)
    }
}

pub(super) struct Clock<'a>(&'a Budget);

impl Drop for Clock<'_> {
    fn drop(&mut self) {
        self.0.deadline.store(0, Relaxed);
    }
}

/// Read connections when none is asked for: one per core, at most 8.
pub fn default_readers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(8))
}
