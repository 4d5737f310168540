//! Reads' time budgets, and how many read connections there are.
//!
//! Owns: `Budget` (each read connection's deadline, checked by SQLite's progress handler every
//! few thousand instructions; past it the read is interrupted and fails with
//! `Error::OverBudget`), the `Clock` that holds a deadline for exactly one read, the client a
//! read is for (a read whose client hung up is interrupted too: `Error::ClientGone`), and the
//! default number of read connections.
//! Also: whether a read is stuck past its budget (for readiness), and a test-only endless read.
//! Leaves out: choosing a connection for a read (`mod`). Uses: rusqlite, std's `TcpStream`.

use super::Error;
use rusqlite::Connection;
use std::cell::{Cell, RefCell};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

thread_local! {
    /// The client of the request this thread is serving (`while_client`). Thread-local because
    /// the progress handler runs on the thread that runs the read, and so the store's API needs
    /// no socket: the server sets it around one request, the handler asks it.
    /// With it, whether the socket is in blocking mode.
    static CLIENT: RefCell<Option<(Arc<TcpStream>, bool)>> = const { RefCell::new(None) };
    /// Progress-handler calls since the client was last asked (asked every 64th call, every
    /// millisecond or so of SQLite work, so the check costs a syscall that rarely).
    static CALLS: Cell<u32> = const { Cell::new(0) };
    /// The last read on this thread was interrupted because its client hung up.
    pub(super) static HUNG_UP: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (one request) with `client` watched by every read it makes: when the client hangs
/// up (its socket reads end-of-file or is reset), the read is interrupted and fails with
/// `Error::ClientGone`. A client that shuts down only its sending side while a read runs is
/// taken as gone as well.
/// `client` is the socket and whether it is in blocking mode (the check must not wait).
pub fn while_client<T>(client: Option<(Arc<TcpStream>, bool)>, f: impl FnOnce() -> T) -> T {
    CLIENT.set(client);
    HUNG_UP.set(false);
    let out = f();
    CLIENT.set(None);
    out
}

/// Asks (every 64th call) whether this thread's client has hung up.
fn client_gone() -> bool {
    let calls = CALLS.get().wrapping_add(1);
    CALLS.set(calls);
    if !calls.is_multiple_of(64) {
        return false;
    }
    let gone = CLIENT.with_borrow(|client| {
        let Some((stream, blocking)) = client else {
            return false;
        };
        // A blocking socket would wait for its timeout: asked in non-blocking mode, then put back.
        let _ = blocking.then(|| stream.set_nonblocking(true));
        let peeked = stream.peek(&mut [0]);
        let _ = blocking.then(|| stream.set_nonblocking(false));
        // Gone: end of stream, or any error but an empty socket's.
        peeked.map_or_else(|e| e.kind() != std::io::ErrorKind::WouldBlock, |n| n == 0)
    });
    HUNG_UP.set(gone);
    gone
}

/// One connection's read budget: while a read runs on it, SQLite's progress handler (every few
/// thousand instructions) interrupts it once the clock passes `deadline`, and the read fails
/// with `Error::OverBudget`. Writes never see a deadline.
#[derive(Debug)]
pub(super) struct Budget {
    base: Instant,
    /// Nanoseconds since `base` at which the running read is interrupted; 0 when none runs.
    deadline: AtomicU64,
    /// Every read's time budget in nanoseconds.
    limit: u64,
}

impl Budget {
    /// A budget checked by `conn`'s progress handler.
    pub(super) fn watch(conn: &mut Connection, limit: u64) -> Result<Arc<Budget>, Error> {
        let budget = Arc::new(Budget {
            base: Instant::now(),
            deadline: AtomicU64::new(0),
            limit,
        });
        budget.rewatch(conn)?;
        Ok(budget)
    }

    /// Makes `conn` (a new one, after the file was replaced) check this budget.
    pub(super) fn rewatch(self: &Arc<Budget>, conn: &mut Connection) -> Result<(), Error> {
        let watched = Arc::clone(self);
        Ok(conn.progress_handler(10_000, Some(move || watched.exceeded()))?)
    }

    /// Whether the running read must stop: past its deadline, or its client gone (the progress
    /// handler's question). Writes run with no deadline and are never stopped.
    fn exceeded(&self) -> bool {
        let d = self.deadline.load(Relaxed);
        d != 0 && (self.base.elapsed().as_nanos() as u64 > d || client_gone())
    }

    /// Whether the running read is past twice its budget (a stopped read ends at once, so one
    /// still running there cannot be stopped: it waits on the disk or a lock).
    pub(super) fn stuck(&self) -> bool {
        let d = self.deadline.load(Relaxed);
        d != 0 && self.base.elapsed().as_nanos() as u64 > d.saturating_add(self.limit)
    }

    /// Starts the clock of one read; it stops when the guard is dropped.
    pub(super) fn start(&self) -> Clock<'_> {
        let now = self.base.elapsed().as_nanos() as u64;
        let limit = self.limit.max(1);
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

impl super::Store {
    /// Test builds only: a read that never ends by itself, stopped only by its budget or its
    /// client's hang-up; or (`stuck`) one that holds a read connection, clock running, for two
    /// seconds without giving SQLite a chance to stop it.
    #[cfg(feature = "fault-injection")]
    pub fn endless_read(&self, stuck: bool) -> Result<(), Error> {
        let (conn, budget, _search) = self.reader(true)?;
        let _clock = budget.start();
        if stuck {
            std::thread::sleep(std::time::Duration::from_secs(2));
            return Ok(());
        }
        let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
        Ok(conn.query_row(sql, [], |_| Ok(()))?)
    }

    /// Whether a read has run past twice its budget: SQLite has not been able to stop it (it
    /// waits on the disk or a lock), and it holds a read connection meanwhile. For readiness.
    pub fn reads_stuck(&self) -> bool {
        let mut budgets = self.read.iter().map(|(_, b)| b.as_ref());
        budgets.any(Budget::stuck) || self.write_budget.stuck()
    }
}

/// Read connections when none is asked for: one per core, at most 8, and one more kept free of
/// text searches (`Store::reader`).
pub(super) fn default_readers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(8)) + 1
}
