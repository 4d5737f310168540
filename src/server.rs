//! The server: an accept thread, a bounded hand-off queue, a fixed pool of workers, and
//! `handle`, the envelope every request goes through (route with panics caught, count, log).
//!
//! A worker owns one connection at a time and serves its keep-alive and pipelined requests,
//! reading in short slices; when others wait, a connection with no request ready goes back to
//! the end of the queue. Caps: `MAX_CONNECTIONS` open (past it, an immediate 503), and the head
//! and body caps of `wire`. Timeouts: `READ_TIMEOUT_MS` of silence or `REQUEST_TIMEOUT_MS` in
//! total while a request arrives (then 408), `WRITE_TIMEOUT_MS` per write, `IDLE_TIMEOUT_MS`
//! between requests. Accept errors (out of descriptors) are logged and retried. A panic costs
//! one request (500) or one connection, never a worker.
//!
//! Owns: sockets, threads, each connection's clock, the request envelope (request id, metrics,
//! the access log line). Leaves out: framing (`wire`), routes (`router`), statuses (`http`).
//! Uses: `wire`, `http`, `router`, `log`, `metrics` (through `App`), `ts`, uuid.

use crate::http::{ApiError, Facts, Reply, Req};
use crate::log::{Level, Line};
use crate::wire::{self, Limits, Parse, WireError};
use crate::{App, router};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker waits on its connection before checking the queue and the stop flag.
const IDLE_SLICE: Duration = Duration::from_millis(50);
/// The same, when other connections are waiting for a worker.
const BUSY_SLICE: Duration = Duration::from_millis(1);
/// The most header lines a request may have.
const MAX_HEADERS: usize = 100;

/// The listener and its threads.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
}

/// What the accept thread and the workers share.
struct Shared {
    stopping: AtomicBool,
    /// Connections accepted and not yet closed (served or queued).
    open: Arc<AtomicUsize>,
    /// Connections waiting in the queue for a worker.
    queued: AtomicUsize,
    /// Connections for the workers; `None` tells one worker to stop (sent by `stop`, after the
    /// connections already queued, so those are still served).
    queue: SyncSender<Option<Conn>>,
    bounds: Bounds,
}

/// What one connection may send and how long it may take, from the configuration, once.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    limits: Limits,
    idle: Duration,
    read: Duration,
    request: Duration,
    write: Duration,
}

/// One client connection: its socket, the bytes received and not yet consumed (part of a
/// request, or pipelined requests), and its timers.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// When the first byte of the request now in `buf` arrived (`None` while idle).
    request_started: Option<Instant>,
    /// When bytes last arrived, or the last response was sent.
    last_active: Instant,
    /// `100 Continue` was sent for the request now in `buf`.
    continue_sent: bool,
    _open: OpenGuard,
}

/// Decrements the open-connection count when the connection is dropped, however that happens.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

impl Server {
    /// Binds `0.0.0.0:PORT` and starts the accept thread and `WORKERS` workers.
    pub fn start(app: Arc<App>) -> Result<Server, String> {
        let c = &app.config;
        let listener = TcpListener::bind(("0.0.0.0", c.port)).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        // The queue can hold every open connection, so putting one back never blocks.
        let (queue, rx) = sync_channel(c.max_connections);
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            open: Arc::new(AtomicUsize::new(0)),
            queued: AtomicUsize::new(0),
            queue,
            bounds: Bounds {
                limits: Limits {
                    max_request_line: c.max_header_bytes,
                    max_head: c.max_header_bytes,
                    max_headers: MAX_HEADERS,
                    max_body: c.max_body_bytes,
                },
                idle: Duration::from_millis(c.idle_timeout_ms),
                read: Duration::from_millis(c.read_timeout_ms),
                request: Duration::from_millis(c.request_timeout_ms),
                write: Duration::from_millis(c.write_timeout_ms),
            },
        });
        let rx = Arc::new(Mutex::new(rx));
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .map_err(|e| e.to_string())
        };
        let workers = (0..c.workers)
            .map(|i| {
                let (app, shared, rx) = (Arc::clone(&app), Arc::clone(&shared), Arc::clone(&rx));
                spawn(
                    format!("worker-{i}"),
                    Box::new(move || work(&app, &shared, &rx)),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (app2, shared2) = (Arc::clone(&app), Arc::clone(&shared));
        let acceptor = spawn(
            "accept".into(),
            Box::new(move || accept(&app2, &shared2, &listener)),
        )?;
        Ok(Server {
            addr,
            shared,
            acceptor,
            workers,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets the workers finish the requests in flight (and those already
    /// received on queued connections), and joins every thread.
    pub fn stop(self) {
        self.shared.stopping.store(true, SeqCst);
        // Wake the accept thread, blocked in accept(), with a connection of our own.
        let _ = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.addr.port())),
            Duration::from_secs(1),
        );
        let _ = self.acceptor.join();
        // One stop message per worker, behind the connections already queued.
        for _ in &self.workers {
            let _ = self.shared.queue.send(None);
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// The accept loop: admit a connection if under the cap, else answer 503 and close it.
fn accept(app: &App, shared: &Shared, listener: &TcpListener) {
    let mut last_error_log: Option<Instant> = None;
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: keep listening; the condition passes when connections close.
                if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                    app.log.write(
                        Line::new(Level::Error)
                            .str("event", "accept_error")
                            .str("error", &e.to_string()),
                    );
                    last_error_log = Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        if shared.open.load(SeqCst) >= app.config.max_connections {
            app.metrics.rejected_connections.fetch_add(1, SeqCst);
            refuse(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(shared.bounds.write));
        shared.open.fetch_add(1, SeqCst);
        let conn = Conn {
            stream,
            buf: Vec::new(),
            request_started: None,
            last_active: Instant::now(),
            continue_sent: false,
            _open: OpenGuard(Arc::clone(&shared.open)),
        };
        shared.queued.fetch_add(1, SeqCst);
        if shared.queue.try_send(Some(conn)).is_err() {
            shared.queued.fetch_sub(1, SeqCst); // cannot happen: the queue holds max_connections
        }
    }
}

/// Past the connection cap: a quick 503 the client can read, then close. Never blocks long.
fn refuse(stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = send(
        &stream,
        &Answer::closing(ApiError::TooManyConnections.into_reply()),
    );
}

/// Writes an answer; `Connection: close` when it closes, and an HTTP/1.0 client kept alive is
/// told so.
fn send(stream: &TcpStream, a: &Answer) -> std::io::Result<()> {
    let resp = wire::Response {
        status: a.reply.status,
        content_type: a.reply.content_type,
        headers: &a.reply.headers,
        body: &a.reply.body,
        close: a.close,
        keep_alive_1_0: a.http_1_0 && !a.close,
        head_only: a.head_only,
        date: &crate::ts::http_date(),
    };
    wire::write_response(&mut &*stream, &resp)
}

/// A worker: take the next connection from the queue and serve it until it closes, goes idle
/// too long, or should make room for a waiting one.
fn work(app: &App, shared: &Shared, rx: &Mutex<Receiver<Option<Conn>>>) {
    loop {
        let next = crate::lock(rx).recv();
        let conn = match next {
            Ok(Some(conn)) => conn,
            // Stopping, but a connection rotated out before the stop is still queued behind this
            // message: pass the message back so that connection is served before the pool ends.
            Ok(None) if shared.queued.load(SeqCst) > 0 => {
                let _ = shared.queue.try_send(None);
                std::thread::yield_now();
                continue;
            }
            _ => return,
        };
        shared.queued.fetch_sub(1, SeqCst);
        // A bug in the framing code must cost this connection, not the worker.
        let kept = catch_unwind(AssertUnwindSafe(|| serve(app, shared, conn)))
            .ok()
            .flatten();
        if let Some(conn) = kept {
            shared.queued.fetch_add(1, SeqCst);
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                shared.queue.try_send(Some(conn))
            {
                shared.queued.fetch_sub(1, SeqCst);
            }
        }
    }
}

/// The answer to one request and how to send it.
struct Answer {
    reply: Reply,
    /// Close the connection after it (the client asked, or the request could not be read).
    close: bool,
    /// A HEAD request: headers only.
    head_only: bool,
    /// An HTTP/1.0 client, told explicitly when its connection is kept alive.
    http_1_0: bool,
}

impl Answer {
    /// A reply after which the connection is closed.
    fn closing(reply: Reply) -> Answer {
        Answer {
            reply,
            close: true,
            head_only: false,
            http_1_0: false,
        }
    }
}

/// Serves requests on `conn`. Returns the connection when it should go back to the queue
/// (others are waiting and it has no complete request), `None` when it is done and closed.
///
/// The worker never blocks on one client for long: it reads in short slices, and between slices
/// it parses what has arrived. A slow or stalled client is rotated out while others wait, and
/// closed (408) when its request deadline or read timeout passes.
fn serve(app: &App, shared: &Shared, mut conn: Conn) -> Option<Conn> {
    let mut chunk = [0u8; 8192];
    loop {
        let started = conn.request_started.unwrap_or_else(Instant::now);
        let mut answer = match wire::parse_request(&conn.buf, &shared.bounds.limits) {
            Parse::Done {
                head,
                body,
                consumed,
            } => {
                conn.buf.drain(..consumed);
                let (close, http_1_0) = (!head.keep_alive, head.minor == 0);
                let req = to_req(head, body);
                Answer {
                    close,
                    head_only: req.method == "HEAD",
                    http_1_0,
                    reply: handle(app, &req, None, started),
                }
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
                    other => Some(refusal(&other)?),
                };
                Answer::closing(handle(app, &req, early, started))
            }
            Parse::Incomplete { expect_continue } => {
                if expect_continue && !conn.continue_sent {
                    conn.continue_sent = true;
                    let _ = (&conn.stream).write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
                match receive(shared, &mut conn, &mut chunk) {
                    Received::More => continue,
                    Received::Rotate => return Some(conn),
                    Received::Closed => return None,
                    Received::TimedOut => {
                        let timeout = ApiError::Protocol(408, "request timeout");
                        Answer::closing(handle(app, &Req::default(), Some(timeout), started))
                    }
                }
            }
        };
        answer.close |= shared.stopping.load(SeqCst);
        if send(&conn.stream, &answer).is_err() || answer.close {
            return None;
        }
        conn.last_active = Instant::now();
        conn.request_started = (!conn.buf.is_empty()).then_some(conn.last_active);
        conn.continue_sent = false;
        // Others are waiting and no next request is here yet: let them have this worker.
        if conn.buf.is_empty() && shared.queued.load(SeqCst) > 0 {
            return Some(conn);
        }
    }
}

/// The one conversion from a framing error to the error the client is told; `None` when there is
/// nobody to answer.
fn refusal(error: &WireError) -> Option<ApiError> {
    let (status, detail) = error.status()?;
    Some(ApiError::Protocol(status, detail))
}

/// What one read slice brought.
#[derive(Debug, PartialEq, Eq)]
enum Received {
    More,
    Rotate,
    Closed,
    TimedOut,
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

/// Reads once, waiting at most a slice (shorter when others wait or the deadline is near). While
/// the server stops, an idle connection gets one short look for a request already sent.
fn receive(shared: &Shared, conn: &mut Conn, chunk: &mut [u8]) -> Received {
    let stopping = shared.stopping.load(SeqCst);
    let limit = wait_limit(
        conn.request_started,
        conn.last_active,
        Instant::now(),
        &shared.bounds,
    );
    if limit.is_zero() {
        return if conn.request_started.is_some() {
            Received::TimedOut
        } else {
            Received::Closed
        };
    }
    let slice = if shared.queued.load(SeqCst) > 0 || stopping {
        BUSY_SLICE
    } else {
        IDLE_SLICE
    };
    if conn
        .stream
        .set_read_timeout(Some(slice.min(limit)))
        .is_err()
    {
        return Received::Closed;
    }
    match conn.stream.read(chunk) {
        Ok(0) => Received::Closed,
        Ok(n) => {
            conn.buf.extend_from_slice(&chunk[..n]);
            conn.last_active = Instant::now();
            conn.request_started.get_or_insert(conn.last_active);
            Received::More
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            if stopping && conn.request_started.is_none() {
                Received::Closed
            // While stopping, a connection is served to its end, never put back in the queue.
            } else if shared.queued.load(SeqCst) > 0 && !stopping {
                Received::Rotate
            } else {
                Received::More
            }
        }
        Err(_) => Received::Closed,
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
    let mut reply = outcome.unwrap_or_else(ApiError::into_reply);
    let seconds = started.elapsed().as_secs_f64();
    app.metrics
        .record_request(&req.method, route, reply.status, seconds);
    let result = facts.webhook_result;
    if let Some(result) = result {
        app.metrics.record_webhook(result);
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
            },
            idle: Duration::from_secs(5),
            read: Duration::from_secs(2),
            request: Duration::from_secs(10),
            write: Duration::from_secs(1),
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
            framing: wire::Framing::None,
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
        let status = |e: WireError| refusal(&e).map(|a| a.into_reply().status);
        assert_eq!(status(WireError::Closed), None);
        assert_eq!(status(WireError::Bad("x")), Some(400));
        assert_eq!(status(WireError::UriTooLong), Some(414));
        assert_eq!(status(WireError::Version), Some(505));
    }
}
