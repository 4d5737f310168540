//! The router: one `match` on (path, method), path before method, so it doubles as the endpoint
//! list. Unknown path: 404; known path, other method: 405 with `Allow`. HEAD is served wherever
//! GET is.
//!
//! Owns: the route list, the metrics `path` label, the readiness rule, the health, /metrics and
//! /openapi.json one-liners, and (test builds only) the fault-injection routes.
//! Leaves out: the webhook and listing handlers (`webhook`, `whatsapp`, `messages`, `erase`),
//! logging and counting. Uses: `http`, `webhook`, `whatsapp`, `messages`, `erase`, `metrics`,
//! `store` (through `App`), serde_json.

use crate::App;
use crate::http::{ApiError, Facts, Reply, Req};
use crate::{erase, messages, metrics, webhook, whatsapp};
use serde_json::json;

/// Every route and its methods (the `Allow` value: HEAD wherever GET), in the order of the
/// `match` below (the OpenAPI test and the metrics `path` label use this list).
pub const ROUTES: [(&str, &str); 9] = [
    ("/webhook", "POST"),
    ("/webhook/whatsapp", "GET, HEAD, POST"),
    ("/messages", "GET, HEAD"),
    ("/stats", "GET, HEAD"),
    ("/health/live", "GET, HEAD"),
    ("/health/ready", "GET, HEAD"),
    ("/metrics", "GET, HEAD"),
    ("/openapi.json", "GET, HEAD"),
    ("/erase", "POST"),
];

/// The hand-written OpenAPI 3.1 document (a test keeps its paths equal to `ROUTES`).
pub const OPENAPI: &str = include_str!("openapi.json");

/// Runs the handler for the request's route. The webhooks, /erase and /messages report `facts`.
pub fn route(app: &App, req: &Req, facts: &mut Facts) -> Result<Reply, ApiError> {
    // HEAD is GET without the body (RFC 9110); the server sends the headers only.
    let method = match req.method.as_str() {
        "HEAD" => "GET",
        method => method,
    };
    match (req.path.as_str(), method) {
        ("/webhook", "POST") => webhook::post(app, req, facts),
        ("/webhook/whatsapp", "POST") => whatsapp::post(app, req, facts),
        // A body over the cap is refused everywhere; the webhooks refuse it themselves, to count it.
        _ if req.body_too_large => Err(ApiError::PayloadTooLarge),
        ("/webhook/whatsapp", "GET") => whatsapp::handshake(app, req, facts),
        ("/messages", "GET") => messages::list(app, req, facts),
        ("/stats", "GET") => messages::stats(app, req),
        ("/health/live", "GET") => Ok(Reply::json(200, &json!({"status": "ok"}))),
        ("/health/ready", "GET") => Ok(match ready(app) {
            Ok(()) => Reply::json(200, &json!({"status": "ok"})),
            Err(reason) => Reply::json(503, &json!({"status": "not_ready", "reason": reason})),
        }),
        ("/metrics", "GET") => {
            app.store.file_bytes();
            let text = app.metrics.render(&app.store.writer, ready(app).is_ok());
            Ok(Reply::bytes(200, metrics::CONTENT_TYPE, text.into_bytes()))
        }
        ("/openapi.json", "GET") => Ok(Reply::bytes(200, "application/json", OPENAPI.into())),
        ("/erase", "POST") => erase::post(app, req, facts),
        #[cfg(feature = "fault-injection")]
        (path, "POST" | "GET") if path.starts_with("/__fault/") => fault(app, path),
        (path, _) => match ROUTES.iter().find(|(p, _)| *p == path) {
            Some((_, allow)) => Err(ApiError::MethodNotAllowed(allow)),
            None => Err(ApiError::NotFound),
        },
    }
}

/// Whether a request is refused whatever its body, so a client that asked for `100 Continue`
/// gets its answer instead and never sends the body. Only the webhooks can tell (no secret, or
/// no well-formed signature headers).
pub fn refused_without_body(app: &App, req: &Req) -> bool {
    let c = &app.config;
    let (secrets, claim) = match (req.path.as_str(), req.method.as_str()) {
        ("/webhook", "POST") => (&c.secrets, webhook::claim(app, req)),
        ("/webhook/whatsapp", "POST") => (&c.whatsapp_secrets, whatsapp::claim(req)),
        _ => return false,
    };
    secrets.is_empty() || claim.is_none()
}

/// The metrics `path` label: the route, or `other` for anything the router does not know.
pub fn route_label(path: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|(p, _)| *p == path)
        .map_or("other", |(p, _)| p)
}

/// Ready when the store's health is sound (its files in place, writes succeeding, no read stuck
/// past twice its budget, and the monitor's last real query against the messages table passed)
/// and a secret is configured; else the reason. Never waits: the monitor probes off the request
/// path. /metrics reports the same rule as `service_ready`, so an alert needs no prober.
fn ready(app: &App) -> Result<(), &'static str> {
    app.store.health()?;
    match app.config.secrets.is_empty() {
        true => Err("WEBHOOK_SECRET not configured"),
        false => Ok(()),
    }
}

/// Test builds only: panic on purpose, to prove a panic costs one request; run a read that
/// never ends, or one stuck past its budget.
#[cfg(feature = "fault-injection")]
fn fault(app: &App, path: &str) -> Result<Reply, ApiError> {
    match path {
        "/__fault/panic" => panic!("injected panic"),
        "/__fault/panic-holding-store" => app.store.panic_holding_write_lock(),
        "/__fault/endless-read" | "/__fault/stuck-read" => {
            let stuck = path == "/__fault/stuck-read";
            let read = app.store.endless_read(stuck).map_err(messages::read_error);
            read.map(|()| Reply::json(200, &json!({"status": "ok"})))
        }
        _ => Err(ApiError::NotFound),
    }
}
