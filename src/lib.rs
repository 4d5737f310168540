//! webhook-api: receives signed WhatsApp-like messages, stores each exactly once in SQLite, and
//! serves them back with pagination, filters, stats, health probes, metrics and JSON logs.
//!
//! Read in this order; data flows one way, top to bottom (each module's head says what it owns,
//! leaves out and uses):
//!
//! - `server`   the poller (`server/poller.rs`: listener, waiting connections, deadlines), one
//!   connection's buffers and I/O (`server/conn.rs`), two fixed lanes of workers (webhooks, the
//!   rest), and `server::handle`, the path every request takes: route (panics caught), then
//!   count and log.
//! - `wire`     HTTP/1.1 framing: parse a request head and body within caps, write a response.
//! - `http`     `Req`, `Reply`, `Facts`, `ApiError` and its single mapping to HTTP.
//! - `router`   the one `match` on (path, method); health, /metrics, /openapi.json.
//! - `webhook`  POST /webhook: signature scheme, validation, insert, the outcome.
//! - `signature` every signature scheme (X-Signature, X-Hub-Signature-256, Standard Webhooks)
//!   and the one constant-time, full-length compare.
//! - `whatsapp` /webhook/whatsapp: Meta's handshake, Cloud API deliveries into messages.
//! - `messages` GET /messages and GET /stats: query parsing and replies.
//! - `erase`    POST /erase: one sender's messages, signed like a webhook.
//! - `store`    SQLite: `schema`, `commit` (group commit), `search` (text index), `hours`,
//!   `budget` (read time budgets), `adopt` (the FastAPI service's database, in place), `prune`
//!   (retention, disk budget, erasure). No HTTP.
//! - `ts`       timestamp grammar, the sortable instant key, the wall clock.
//! - `metrics`  counters, histogram, Prometheus text.
//! - `log`      one JSON object per line.
//! - `config`   environment variables: the table and the parsing.
//!
//! This file: `App` (what handlers may use), `start()` (used by `main` and the tests alike; it
//! runs an adoption and, when configured, pruning in the background), `Running` (`addr()`,
//! `stop()`), `Ticker` (the threads of the health monitor and of pruning), and `lock`, the one
//! poisoned-lock rule.

pub mod config;
pub mod erase;
pub mod http;
pub mod log;
pub mod messages;
pub mod metrics;
pub mod router;
pub mod server;
pub mod signature;
pub mod store;
pub mod ts;
pub mod webhook;
pub mod whatsapp;
pub mod wire;

use config::{Config, DbLocation};
use log::{Level, Line, Logger};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Takes a lock even if a panic poisoned it. Every lock here guards data that stays sound when
/// a holder panics: SQLite connections (rusqlite rolls back an open transaction when it is
/// dropped, and each statement is self-contained), the insert queue (the leader's guard settles
/// its batch), counters and the log sink. A panic costs one request, never the locks.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Everything a handler may use. Read-only once started (the store and metrics lock inside).
pub struct App {
    pub config: Config,
    pub store: store::Store,
    pub metrics: metrics::Metrics,
    pub log: Logger,
}

/// A running service.
pub struct Running {
    app: Arc<App>,
    server: server::Server,
    monitor: Ticker,
    pruner: Option<Ticker>,
}

/// Descriptors kept back from `MAX_CONNECTIONS=auto` for the database files, the listener, the
/// poller and stdout (at most half the limit, for tiny limits).
const FD_RESERVE: u64 = 64;

/// Raises the soft open-file limit to the hard one, as Go's runtime does, and sets an `auto`
/// `MAX_CONNECTIONS` from it; opens the database, binds the port and starts the server; logs the
/// start-up line.
pub fn start(mut config: Config, log: Logger) -> Result<Running, String> {
    let nofile = rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::Resource::NOFILE.get().map(|(soft, _)| soft))
        .unwrap_or(1024);
    if config.max_connections == 0 {
        let max = nofile.saturating_sub(FD_RESERVE).max(nofile / 2).max(1);
        config.max_connections = usize::try_from(max).unwrap_or(usize::MAX);
    }
    let store = store::Store::open(
        &config.db,
        Duration::from_millis(config.busy_timeout_ms),
        config.read_connections,
        Duration::from_millis(config.read_budget_ms),
        config.workers - 1,
    )
    .map_err(|e| format!("cannot open database: {e}"))?;
    let mut metrics =
        metrics::Metrics::new(&[&[webhook::COUNTER][..], &whatsapp::COUNTERS].concat());
    metrics.log_lines_dropped = log.dropped();
    let policy = store::Policy {
        retention_days: config.retention_days,
        max_bytes: config.max_db_mb << 20,
    };
    let pruning = policy.retention_days > 0 || policy.max_bytes > 0;
    let converted = (pruning.then(|| store.prepare_pruning(&policy)).transpose())
        .map_err(|e| format!("cannot prepare pruning: {e}"))?;
    let app = Arc::new(App {
        config,
        store,
        metrics,
        log,
    });
    app.store.probe();
    let probed = Arc::clone(&app);
    let monitor = Ticker::start(Duration::from_millis(100), move |_| probed.store.probe());
    let server = match server::Server::start(Arc::clone(&app)) {
        Ok(server) => server,
        Err(e) => {
            monitor.stop(); // its reference to the store goes too: the database is closed
            return Err(format!("cannot listen: {e}"));
        }
    };
    let c = &app.config;
    let database = match &c.db {
        DbLocation::Memory => ":memory:".to_string(),
        DbLocation::File(p) => p.display().to_string(),
    };
    // At any LOG_LEVEL: it is how an operator learns the port (with PORT=0) and the version.
    app.log.always(
        Line::new(Level::Info)
            .str("event", "startup")
            .str("version", env!("CARGO_PKG_VERSION"))
            .str("host", &c.host.to_string())
            .raw("port", server.addr().port())
            .raw("workers", c.workers)
            .raw("max_connections", c.max_connections)
            .raw("nofile_limit", nofile)
            .str("database", &database)
            .raw("secret_configured", !c.secrets.is_empty())
            .raw("previous_secret_configured", c.secrets.len() > 1),
    );
    if let Some((took, before, after)) = converted.flatten() {
        app.log.write(
            (Line::new(Level::Info).str("event", "vacuum_converted"))
                .raw("took_ms", took.as_millis())
                .raw("bytes_before", before)
                .raw("bytes_after", after),
        );
    }
    if app.store.adopting() {
        let app = Arc::clone(&app);
        std::thread::spawn(move || adopt(&app));
    }
    let pruned = Arc::clone(&app);
    let pass = move |go: &dyn Fn() -> bool| prune(&pruned, &policy, go);
    let pruner = pruning.then(|| Ticker::start(Duration::from_millis(250), pass));
    Ok(Running {
        app,
        server,
        monitor,
        pruner,
    })
}

/// One pruning pass, logged when it deleted or gave back anything (or failed). Waits while a
/// FastAPI database is being adopted.
fn prune(app: &App, policy: &store::Policy, go: &dyn Fn() -> bool) {
    if app.store.adopting() {
        return;
    }
    match app.store.prune(policy, go) {
        Ok(pass) if pass == store::Pass::default() => {}
        Ok(pass) => app.log.write(
            (Line::new(Level::Info).str("event", "pruned"))
                .raw("retention", pass.retention)
                .raw("budget", pass.budget)
                .raw("pages_vacuumed", pass.vacuumed)
                .raw("file_bytes", app.store.file_bytes()),
        ),
        Err(e) => app.log.write(
            (Line::new(Level::Error).str("event", "prune_failed")).str("error", &e.to_string()),
        ),
    }
}

/// A thread that runs `tick` now and then every `period` until stopped: the health monitor
/// (every 100 ms, so that readiness and /metrics read a verdict instead of waiting for a lock or
/// a busy timeout) and the pruning passes (every 250 ms). `tick` gets a "go on" flag that turns
/// false when `stop` is called, so a long pass ends between two batches.
struct Ticker(Arc<AtomicBool>, std::thread::JoinHandle<()>);

impl Ticker {
    fn start(period: Duration, mut tick: impl FnMut(&dyn Fn() -> bool) + Send + 'static) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let go = move || !stopped.load(SeqCst);
        let thread = std::thread::spawn(move || {
            while go() {
                tick(&go);
                std::thread::park_timeout(period);
            }
        });
        Ticker(stop, thread)
    }

    /// Ends the tick under way at its next batch and waits for the thread.
    fn stop(self) {
        self.0.store(true, SeqCst);
        self.1.thread().unpark();
        let _ = self.1.join();
    }
}

/// Adopts a FastAPI service's database while the server answers (not ready until done), with a
/// progress line per batch. A failure is logged and leaves the service not ready; the next start
/// resumes where the last batch ended.
fn adopt(app: &App) {
    let started = std::time::Instant::now();
    let progress = |event: &str, done: i64, total: i64| {
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
        app.log.write(
            (Line::new(Level::Info).str("event", event))
                .raw("rows_done", done)
                .raw("rows_total", total)
                .raw("rows_per_second", rate.round()),
        );
    };
    let step = |done, total| progress("adopting", done, total);
    match app.store.adopt(step) {
        Ok((done, total)) => progress("adopted", done, total),
        Err(e) => app.log.write(
            (Line::new(Level::Error).str("event", "adoption_failed")).str("error", &e.to_string()),
        ),
    }
}

impl Running {
    /// The bound address (useful with `PORT=0`).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Finishes the requests in flight, stops the workers, closes the database, logs shutdown.
    pub fn stop(self) {
        self.server.stop();
        if let Some(pruner) = self.pruner {
            pruner.stop();
        }
        self.monitor.stop();
        let line = Line::new(Level::Info).str("event", "shutdown");
        self.app
            .log
            .always(line.str("version", env!("CARGO_PKG_VERSION")));
        // The workers held the other references; dropping the last one closes both connections.
        drop(self.app);
    }
}
