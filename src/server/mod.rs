//! The server: a poller thread that owns every waiting connection, pools of workers that run
//! requests (three lanes: webhooks, probes and the rest, `lanes`), and `handle`, the envelope
//! every request goes through (route with panics caught, count, log).
//!
//! Readiness, not threads, carries waiting connections: the poller (`poller`, over epoll through
//! mio) accepts, reads what arrives, keeps every deadline, and hands a connection to a worker
//! only when a whole request (or a framing error) is buffered. A worker answers it, writes what
//! the socket takes without waiting, serves requests already pipelined behind it (those of its
//! own lane, while no other request waits for a worker), and hands the connection back: to wait
//! for the next request, to take another lane's, or for a slow reader to take the rest of a
//! response. So idle, trickling and non-reading clients cost a registration and their bytes,
//! never a worker. At `MAX_CONNECTIONS` the connection idle longest is shed for a newcomer; only
//! when every connection has a request in progress does a newcomer get 503.
//!
//! Owns: the threads' start and stop, the request envelope (request id, metrics, the access log line), the
//! worker loop. Leaves out: sockets' waiting and deadlines (`poller`), buffers (`conn`), framing
//! (`wire`), routes (`router`), statuses (`http`), the pools (`lanes`).
//! Uses: `wire`, `http`, `router`, `log`, `metrics` (through `App`), `store::while_client` (a
//! read stops when its client hangs up), `ts`, `lock`, mio, uuid.

mod conn;
mod lanes;
mod poller;

use crate::http::{ApiError, Facts, Reply, Req};
use crate::log::{Level, Line};
use crate::wire::{self, Limits, Parse, WireError};
use crate::{App, lock, router};
use conn::Conn;
use lanes::{Lane, Lanes};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The most header lines a request may have.
const MAX_HEADERS: usize = 100;
/// How long a worker waits for a keep-alive client's next request after answering, when no
/// other request waits for a worker: a client sending requests back to back then never pays a
/// trip through the poller. Past it, the connection goes back to the poller.
const LINGER: Duration = Duration::from_millis(1);

/// The listener's threads.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    poller: JoinHandle<()>,
    lanes: Arc<Lanes<Job>>,
}

/// What the poller and the workers share.
struct Shared {
    stopping: AtomicBool,
    /// Requests handed to the workers and not yet taken by one.
    queued: AtomicUsize,
    bounds: Bounds,
    /// Connections workers hand back to the poller (with their token; `None` once closed, so the
    /// poller forgets the token), and its wake-up call.
    back: Mutex<Vec<(usize, Option<Conn>)>>,
    waker: mio::Waker,
    /// The poller's registry, for a worker to take a connection out of it while it lingers.
    registry: mio::Registry,
}

/// What one connection may send and how long it may take, from the configuration, once.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    limits: Limits,
    idle: Duration,
    read: Duration,
    request: Duration,
    write: Duration,
    /// Bytes a connection may buffer unparsed: one whole request of the largest size.
    max_buffered: usize,
}

/// A connection with a whole request buffered (or a framing error), for a worker: `parse` is
/// `None` when the worker is to parse it from the connection's buffer.
struct Job {
    token: usize,
    conn: Conn,
    parse: Option<Parse>,
    /// The lane it was sent to: the worker serves only requests of that lane.
    lane: Lane,
}

impl Server {
    /// Binds `HOST:PORT` and starts the poller and `WORKERS` workers.
    pub fn start(app: Arc<App>) -> Result<Server, String> {
        let c = &app.config;
        let err = |e: std::io::Error| e.to_string();
        // mio's bind: non-blocking, SO_REUSEADDR, and a backlog of 1024 rather than std's 128.
        let listener = mio::net::TcpListener::bind(SocketAddr::new(c.host, c.port)).map_err(err)?;
        let addr = listener.local_addr().map_err(err)?;
        let poll = mio::Poll::new().map_err(err)?;
        let limits = Limits {
            max_request_line: c.max_header_bytes,
            max_head: c.max_header_bytes,
            max_headers: MAX_HEADERS,
            max_body: c.max_body_bytes,
            large_body: ("/webhook/whatsapp", crate::whatsapp::MAX_BODY_BYTES),
        };
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            bounds: Bounds {
                limits,
                idle: Duration::from_millis(c.idle_timeout_ms),
                read: Duration::from_millis(c.read_timeout_ms),
                request: Duration::from_millis(c.request_timeout_ms),
                write: Duration::from_millis(c.write_timeout_ms),
                max_buffered: c.max_header_bytes
                    + c.max_body_bytes.max(crate::whatsapp::MAX_BODY_BYTES)
                    + 16 * 1024,
            },
            back: Mutex::default(),
            waker: mio::Waker::new(poll.registry(), poller::WAKER).map_err(err)?,
            registry: poll.registry().try_clone().map_err(err)?,
        });
        let (app2, shared2) = (Arc::clone(&app), Arc::clone(&shared));
        let run = Arc::new(move |job| work(&app2, &shared2, job));
        let lanes = Arc::new(Lanes::start(c.workers, run).map_err(err)?);
        let poller = poller::Poller::new(
            Arc::clone(&app),
            Arc::clone(&shared),
            poll,
            listener,
            Arc::clone(&lanes),
        )
        .map_err(err)?;
        let poller = std::thread::Builder::new()
            .name("poller".into())
            .spawn(move || poller.run())
            .map_err(err)?;
        Ok(Server {
            addr,
            shared,
            poller,
            lanes,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, finishes the requests in flight and those already arriving, and joins
    /// every thread.
    pub fn stop(self) {
        self.shared.stopping.store(true, SeqCst);
        let _ = self.shared.waker.wake();
        // The poller returns once no connection has a request left to finish.
        let _ = self.poller.join();
        self.lanes.stop();
    }
}

/// A worker's job: serve the connection's request (and what is pipelined behind it), then hand
/// it back to the poller or close it.
fn work(app: &App, shared: &Shared, job: Job) {
    let Job {
        token,
        mut conn,
        parse,
        lane,
    } = job;
    shared.queued.fetch_sub(1, SeqCst);
    let mut scratch = [0u8; 8192];
    // A bug in the framing code must cost this connection, not the worker.
    let keep = catch_unwind(AssertUnwindSafe(|| {
        let parse = parse.unwrap_or_else(|| conn.parse(&shared.bounds.limits, true));
        serve(app, shared, &mut conn, parse, &mut scratch, lane)
    }))
    .unwrap_or(false);
    let conn = (keep && conn.unblock().is_ok()).then_some(conn);
    let mut back = lock(&shared.back);
    // A live connection already in the list has a wake-up on its way; a closed one needs none
    // and sent none, so it must not stand in for one.
    let wake = conn.is_some() && back.iter().all(|(_, c)| c.is_none());
    back.push((token, conn));
    drop(back);
    // After the hand-back, so the poller never sees neither.
    app.metrics.in_progress.fetch_sub(1, SeqCst);
    if wake {
        let _ = shared.waker.wake();
    }
}

/// Serves the request in `parse` and every whole request buffered behind it. Returns whether
/// the poller should keep the connection: to wait for more bytes, or to send the rest of a
/// response the client is slow to read (nothing more is parsed until it has).
fn serve(
    app: &App,
    shared: &Shared,
    conn: &mut Conn,
    mut parse: Parse,
    scratch: &mut [u8],
    lane: Lane,
) -> bool {
    loop {
        let started = conn.request_started.unwrap_or_else(Instant::now);
        let (reply, mut close, head_only, http_1_0) = match parse {
            Parse::Done { head, body, .. } => {
                let (close, http_1_0) = (!head.keep_alive, head.minor == 0);
                let req = to_req(head, body);
                // Reads watch their client, so a hang-up stops them.
                let client = matches!(req.method.as_str(), "GET" | "HEAD")
                    .then(|| (Arc::clone(&conn.stream), conn.blocking));
                let reply = crate::store::while_client(client, || handle(app, &req, None, started));
                (reply, close, req.method == "HEAD", http_1_0)
            }
            Parse::Failed { head, error } => {
                let mut req = head.map(|h| to_req(h, Vec::new())).unwrap_or_default();
                // A body over the cap is routed, marked, so each route refuses it itself (and
                // /webhook counts it); any other framing error is answered here.
                let early = match error {
                    WireError::BodyTooLarge => {
                        req.body_too_large = true;
                        None
                    }
                    // `None`: the client is gone, nobody to answer.
                    other => match other.status() {
                        Some((status, detail)) => Some(ApiError::Protocol(status, detail)),
                        None => return false,
                    },
                };
                (handle(app, &req, early, started), true, false, false)
            }
            Parse::Incomplete { .. } | Parse::Chunking { .. } => return true,
        };
        // A client that has shut its sending side is answered every request it sent, then closed.
        close |= shared.stopping.load(SeqCst) || (conn.eof && conn.buf.is_empty());
        conn.out = wire::response(&reply, close, head_only, http_1_0, &crate::ts::http_date());
        conn.close_after = close;
        match conn.flush() {
            Ok(true) if !close => conn.finish_request(),
            // The client has not read it yet: the poller sends the rest when it does.
            Ok(false) => return true,
            _ => return false,
        }
        // While another request waits for a worker, the connection goes back to the poller, so
        // no client keeps a worker from others with requests pipelined. Else a next request
        // pipelined behind this one, or sent right after, is served without that trip.
        if shared.queued.load(SeqCst) > 0 {
            return true;
        }
        if conn.buf.is_empty()
            && !shared.stopping.load(SeqCst)
            && conn.linger(scratch, &shared.registry).is_err()
        {
            return false;
        }
        // Only a request of this worker's lane: another goes through the poller to its own, so no
        // read or webhook ever runs on a probe worker.
        let next = conn.head(&shared.bounds.limits);
        if next.is_some_and(|h| lanes::lane_of_head(&h) != lane) {
            return true;
        }
        parse = conn.parse(&shared.bounds.limits, true);
    }
}

/// How long a connection may still wait for bytes: between requests, until the idle timeout;
/// mid-request (`started`), until the nearer of the request deadline and the read timeout.
/// Zero means its time is up.
fn wait_limit(
    started: Option<Instant>,
    last_active: Instant,
    now: Instant,
    b: &Bounds,
) -> Duration {
    let silence = now.saturating_duration_since(last_active);
    match started {
        Some(started) => (started + b.request)
            .saturating_duration_since(now)
            .min(b.read.saturating_sub(silence)),
        None => b.idle.saturating_sub(silence),
    }
}

/// Our request value from a parsed head and body.
fn to_req(head: wire::Head, body: Vec<u8>) -> Req {
    let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
    Req {
        path: path.into(),
        query: query.into(),
        method: head.method,
        headers: head.headers,
        body,
        body_too_large: false,
    }
}

/// The path every request takes once read: route (a panic costs this request a 500, nothing
/// more), then stamp the request id, count and log. `early` is an answer decided before routing
/// (body too large, malformed request).
pub fn handle(app: &App, req: &Req, early: Option<ApiError>, started: Instant) -> Reply {
    let request_id = uuid::Uuid::new_v4().to_string();
    let route = router::route_label(&req.path);
    let mut facts = Facts::default();
    let outcome = match early {
        Some(e) => Err(e),
        None => catch_unwind(AssertUnwindSafe(|| router::route(app, req, &mut facts)))
            .unwrap_or(Err(ApiError::Internal)),
    };
    match outcome {
        Err(ApiError::OverBudget) => app.metrics.reads_over_budget.fetch_add(1, SeqCst),
        Err(ApiError::SearchesBusy) => app.metrics.searches_refused.fetch_add(1, SeqCst),
        _ => 0,
    };
    let mut reply = outcome.unwrap_or_else(ApiError::into_reply);
    let seconds = started.elapsed().as_secs_f64();
    app.metrics
        .record_request(&req.method, route, reply.status, seconds);
    let result = facts.webhook_result;
    for (family, value, n) in &facts.counts {
        app.metrics.count(family, value, *n);
    }
    let level = level_of(reply.status);
    if app.log.enabled(level) {
        let mut line = Line::new(level)
            .str("request_id", &request_id)
            .str("method", &req.method)
            .str("path", &req.path)
            .raw("status", reply.status)
            .raw("latency_ms", format!("{:.3}", seconds * 1000.0));
        if let Some(result) = result {
            if let Some(id) = &facts.message_id {
                line = line.str("message_id", id);
            }
            line = line.raw("dup", result == "duplicate").str("result", result);
        }
        if let Some(erased) = facts.erased {
            line = line.raw("erased", erased);
        }
        if let Some(plan) = facts.plan.filter(|_| app.log.enabled(Level::Debug)) {
            line = line.str("plan", plan);
        }
        app.log.write(line);
    }
    reply.headers.push(("X-Request-ID", request_id));
    reply
}

/// The log level of a request line: 2xx INFO, 4xx WARNING, 401 and 5xx ERROR.
fn level_of(status: u16) -> Level {
    match status {
        500.. | 401 => Level::Error,
        400..=499 => Level::Warning,
        _ => Level::Info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> Bounds {
        Bounds {
            limits: Limits {
                max_request_line: 10,
                max_head: 10,
                max_headers: 1,
                max_body: 1,
                large_body: ("", 0),
            },
            idle: Duration::from_secs(5),
            read: Duration::from_secs(2),
            request: Duration::from_secs(10),
            write: Duration::from_secs(1),
            max_buffered: 1,
        }
    }

    #[test]
    fn deadlines_idle_silence_and_total() {
        let (b, t0) = (bounds(), Instant::now());
        let s = Duration::from_secs;
        // Idle: the idle timeout from the last activity.
        assert_eq!(wait_limit(None, t0, t0 + s(1), &b), s(4));
        assert_eq!(wait_limit(None, t0, t0 + s(6), &b), s(0));
        // Mid-request: the read timeout from the last byte...
        assert_eq!(wait_limit(Some(t0), t0, t0 + s(1), &b), s(1));
        assert_eq!(wait_limit(Some(t0), t0, t0 + s(3), &b), s(0));
        // ... unless the whole-request deadline is nearer.
        let late = t0 + s(9);
        assert_eq!(wait_limit(Some(t0), late, late, &b), s(1));
        assert_eq!(wait_limit(Some(t0), t0 + s(10), t0 + s(10), &b), s(0));
    }

    #[test]
    fn requests_levels_and_refusals() {
        let head = wire::Head {
            method: "GET".into(),
            target: "/messages?limit=5&q=a?b".into(),
            minor: 1,
            headers: vec![("host".into(), "x".into())],
            framing: wire::Framing::Length(0),
            keep_alive: true,
            expect_continue: false,
        };
        let req = to_req(head, b"x".to_vec());
        assert_eq!(
            (req.path.as_str(), req.query.as_str(), req.body.as_slice()),
            ("/messages", "limit=5&q=a?b", &b"x"[..])
        );
        assert!(!req.body_too_large);
        let levels: Vec<Level> = [200, 301, 400, 401, 404, 422, 500, 503]
            .map(level_of)
            .to_vec();
        use Level::{Error as E, Info as I, Warning as W};
        assert_eq!(levels, [I, I, W, E, W, W, E, E]);
        let status = |e: WireError| {
            e.status()
                .map(|(s, d)| ApiError::Protocol(s, d).into_reply().status)
        };
        assert_eq!(status(WireError::Closed), None);
        assert_eq!(status(WireError::Bad("x")), Some(400));
        assert_eq!(status(WireError::UriTooLong), Some(414));
        assert_eq!(status(WireError::Version), Some(505));
    }
}
