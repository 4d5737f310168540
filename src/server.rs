//! The server: a fixed pool of worker threads sharing one tiny_http listener, and the envelope
//! every request goes through: `handle` routes (catching panics), then counts and logs.
//!
//! tiny_http is seen only in this file. Its limits are known and accepted for this first cut: it
//! has no read timeouts and aborts on absurd Content-Length values; the reliability work replaces
//! the transport behind `handle`, which stays as it is.

use crate::http::{ApiError, Reply, Req};
use crate::log::{Level, Line};
use crate::{App, router};
use std::io::Read;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

/// The listener and its workers.
pub struct Server {
    http: Arc<tiny_http::Server>,
    workers: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl Server {
    /// Binds `0.0.0.0:port` and starts `app.config.workers` threads.
    pub fn start(app: Arc<App>) -> Result<Server, String> {
        let http =
            tiny_http::Server::http(("0.0.0.0", app.config.port)).map_err(|e| e.to_string())?;
        let addr = http
            .server_addr()
            .to_ip()
            .ok_or("listener has no IP address")?;
        let http = Arc::new(http);
        let stopping = Arc::new(AtomicBool::new(false));
        let workers = (0..app.config.workers)
            .map(|i| {
                let (app, http, stopping) =
                    (Arc::clone(&app), Arc::clone(&http), Arc::clone(&stopping));
                std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || work(&app, &http, &stopping))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        Ok(Server {
            http,
            workers,
            stopping,
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests, lets each worker finish the one it is serving, and joins them.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        // One unblock per waiting worker (each call releases one recv()).
        for _ in &self.workers {
            self.http.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// A worker's loop: take a request, read its body within the cap, answer it.
fn work(app: &App, http: &tiny_http::Server, stopping: &AtomicBool) {
    while !stopping.load(Ordering::SeqCst) {
        let Ok(mut rq) = http.recv() else { continue };
        let started = Instant::now();
        let cap = app.config.max_body_bytes;
        let (path, query) = rq.url().split_once('?').unwrap_or((rq.url(), ""));
        let mut req = Req {
            method: rq.method().as_str().to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers: rq
                .headers()
                .iter()
                .map(|h| {
                    (
                        h.field.as_str().as_str().to_ascii_lowercase(),
                        h.value.as_str().to_string(),
                    )
                })
                .collect(),
            body: Vec::new(),
        };
        let mut oversized = rq.body_length().is_some_and(|n| n > cap);
        if !oversized {
            // Read at most cap + 1 bytes: one more than allowed proves the body is too large.
            let read = rq
                .as_reader()
                .take(cap as u64 + 1)
                .read_to_end(&mut req.body);
            oversized = req.body.len() > cap;
            if read.is_err() {
                continue; // the client went away mid-body: nobody to answer
            }
        }
        let reply = handle(app, &req, oversized, started);
        let mut resp = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
        let headers = reply.headers.iter().map(|(k, v)| (*k, v.as_str()));
        for (k, v) in [("Content-Type", reply.content_type)]
            .into_iter()
            .chain(headers)
        {
            if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                resp.add_header(h);
            }
        }
        let _ = rq.respond(resp);
    }
}

/// The path every request takes once read: route (a panic costs this request a 500, nothing
/// more), then stamp the request id, count and log. `oversized` short-cuts to 413.
pub fn handle(app: &App, req: &Req, oversized: bool, started: Instant) -> Reply {
    let request_id = uuid::Uuid::new_v4().to_string();
    let route = router::route_label(&req.path);
    let mut reply = if oversized {
        ApiError::PayloadTooLarge.into_reply()
    } else {
        match catch_unwind(AssertUnwindSafe(|| router::route(app, req))) {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => e.into_reply(),
            Err(_) => ApiError::Internal.into_reply(),
        }
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
    reply.headers.push(("X-Request-ID", request_id));
    reply
}
