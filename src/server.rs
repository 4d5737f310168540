//! The server: an accept thread, a bounded hand-off queue, a fixed pool of workers, and
//! `handle`, the envelope every request goes through (route with panics caught, count, log).
//!
//! Our own HTTP/1.1 layer over `std::net` (framing is in `wire`). Thread-per-request: a worker
//! owns one connection at a time and serves its keep-alive and pipelined requests. What keeps it
//! standing under hostile clients:
//!
//! - **Caps** on open connections (past `MAX_CONNECTIONS` a new one gets an immediate 503 and is
//!   closed, never queued without bound), request line, headers and body (see `wire`).
//! - **Timeouts** on every socket operation: `READ_TIMEOUT_MS` of silence or `REQUEST_TIMEOUT_MS`
//!   in total while a request arrives (then 408 and close), `WRITE_TIMEOUT_MS` per write,
//!   `IDLE_TIMEOUT_MS` between keep-alive requests.
//! - **Fairness**: when connections are waiting in the queue, a worker whose connection has no
//!   request ready puts it back at the end of the queue and takes the next one, so a few idle
//!   keep-alive clients cannot hold every worker.
//! - **Accept errors** (e.g. out of file descriptors) are logged and retried after a pause; the
//!   accept loop never ends before `stop()`.
//! - A panic anywhere in a worker costs one request (500) or one connection, never the worker.

use crate::http::{ApiError, Reply, Req};
use crate::log::{Level, Line};
use crate::wire::{self, Limits, Parse};
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
    limits: Limits,
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
            limits: Limits {
                max_request_line: c.max_header_bytes,
                max_head: c.max_header_bytes,
                max_headers: MAX_HEADERS,
                max_body: c.max_body_bytes,
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
        let c = &app.config;
        if shared.open.load(SeqCst) >= c.max_connections {
            app.metrics.rejected_connections.fetch_add(1, SeqCst);
            refuse(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(Duration::from_millis(c.write_timeout_ms)));
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
fn refuse(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let body = br#"{"detail":"too many connections"}"#;
    let _ = write!(
        stream,
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(body);
}

/// A worker: take the next connection from the queue and serve it until it closes, goes idle
/// too long, or should make room for a waiting one.
fn work(app: &App, shared: &Shared, rx: &Mutex<Receiver<Option<Conn>>>) {
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
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

/// Serves requests on `conn`. Returns the connection when it should go back to the queue
/// (others are waiting and it has no complete request), `None` when it is done and closed.
///
/// The worker never blocks on one client for long: it reads in short slices, and between slices
/// it parses what has arrived. A slow or stalled client is rotated out while others wait, and
/// closed (408) when its request deadline or read timeout passes.
fn serve(app: &App, shared: &Shared, mut conn: Conn) -> Option<Conn> {
    let c = &app.config;
    let (idle_timeout, read_timeout, request_timeout) = (
        Duration::from_millis(c.idle_timeout_ms),
        Duration::from_millis(c.read_timeout_ms),
        Duration::from_millis(c.request_timeout_ms),
    );
    let mut chunk = [0u8; 8192];
    loop {
        let started = conn.request_started.unwrap_or_else(Instant::now);
        let (reply, close, head_only, http_1_0) =
            match wire::parse_request(&conn.buf, &shared.limits) {
                Parse::Done {
                    head,
                    body,
                    consumed,
                } => {
                    conn.buf.drain(..consumed);
                    let (keep_alive, http_1_0) = (head.keep_alive, head.minor == 0);
                    let req = to_req(head.method, &head.target, head.headers, body);
                    (
                        handle(app, &req, None, started),
                        !keep_alive,
                        req.method == "HEAD",
                        http_1_0,
                    )
                }
                Parse::Failed { head, error } => {
                    let (status, detail) = error.status()?;
                    let req = head
                        .map(|h| to_req(h.method, &h.target, h.headers, Vec::new()))
                        .unwrap_or_default();
                    let early = if status == 413 {
                        ApiError::PayloadTooLarge
                    } else {
                        ApiError::Protocol(status, detail)
                    };
                    (handle(app, &req, Some(early), started), true, false, false)
                }
                Parse::Incomplete { expect_continue } => {
                    if expect_continue && !conn.continue_sent {
                        conn.continue_sent = true;
                        let _ = (&conn.stream).write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    match receive(
                        shared,
                        &mut conn,
                        &mut chunk,
                        idle_timeout,
                        read_timeout,
                        request_timeout,
                    ) {
                        Received::More => continue,
                        Received::Rotate => return Some(conn),
                        Received::Closed => return None,
                        Received::TimedOut => {
                            let reply = handle(
                                app,
                                &Req::default(),
                                Some(ApiError::Protocol(408, "request timeout")),
                                started,
                            );
                            (reply, true, false, false)
                        }
                    }
                }
            };
        let close = close || shared.stopping.load(SeqCst);
        let resp = wire::Response {
            status: reply.status,
            content_type: reply.content_type,
            headers: &reply.headers,
            body: &reply.body,
            close,
            keep_alive_1_0: http_1_0 && !close,
            head_only,
        };
        if wire::write_response(&mut &conn.stream, &resp).is_err() || close {
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

/// What one read slice brought.
enum Received {
    More,
    Rotate,
    Closed,
    TimedOut,
}

/// Reads once, waiting at most a slice (shorter when others wait or the deadline is near).
fn receive(
    shared: &Shared,
    conn: &mut Conn,
    chunk: &mut [u8],
    idle_timeout: Duration,
    read_timeout: Duration,
    request_timeout: Duration,
) -> Received {
    let now = Instant::now();
    let silence = now.saturating_duration_since(conn.last_active);
    let stopping = shared.stopping.load(SeqCst);
    let limit = match conn.request_started {
        // Mid-request: the total deadline and the longest silence both apply.
        Some(started) => (started + request_timeout)
            .saturating_duration_since(now)
            .min(read_timeout.saturating_sub(silence)),
        // Idle between requests: close when the idle timeout passes, or when the server stops
        // and one short look finds no request already sent.
        None => idle_timeout.saturating_sub(silence),
    };
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
fn to_req(method: String, target: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Req {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Req {
        method,
        path: path.into(),
        query: query.into(),
        headers,
        body,
    }
}

/// The path every request takes once read: route (a panic costs this request a 500, nothing
/// more), then stamp the request id, count and log. `early` is an answer decided before routing
/// (body too large, malformed request).
pub fn handle(app: &App, req: &Req, early: Option<ApiError>, started: Instant) -> Reply {
    let request_id = uuid::Uuid::new_v4().to_string();
    let route = router::route_label(&req.path);
    let mut reply = match early {
        Some(e) => e.into_reply(),
        None => match catch_unwind(AssertUnwindSafe(|| router::route(app, req))) {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => e.into_reply(),
            Err(_) => ApiError::Internal.into_reply(),
        },
    };
    let seconds = started.elapsed().as_secs_f64();
    app.metrics
        .record_request(&req.method, route, reply.status, seconds);
    let result = reply.facts.result.filter(|_| route == "/webhook");
    if let Some(result) = result {
        app.metrics.record_webhook(result);
    }
    let level = match reply.status {
        500.. | 401 => Level::Error,
        400..=499 => Level::Warning,
        _ => Level::Info,
    };
    if app.log.enabled(level) {
        let mut line = Line::new(level)
            .str("request_id", &request_id)
            .str("method", &req.method)
            .str("path", &req.path)
            .raw("status", reply.status)
            .raw("latency_ms", format!("{:.3}", seconds * 1000.0));
        if let Some(result) = result {
            if let Some(id) = &reply.facts.message_id {
                line = line.str("message_id", id);
            }
            line = line.raw("dup", result == "duplicate").str("result", result);
        }
        app.log.write(line);
    }
    reply.headers.push(("X-Request-ID", request_id));
    reply
}
