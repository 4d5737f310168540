//! POST /erase: erases every message of one sender, `{"from":"+…"}`, signed exactly like a
//! webhook (`X-Signature` or Standard Webhooks: whoever can write can erase; nobody else).
//! Answers `{"erased":N}`.
//!
//! Order of checks, as for /webhook: secret configured (503), signature (401, before any
//! parsing), body (422, FastAPI shape), then the erasure, batch by batch through the writer.
//! Owns: the handler. Leaves out: the signature scheme and field rules (`webhook`), deleting
//! (`store::prune`), the log line (the server logs `erased` from `Facts`).
//! Uses: `http`, `webhook`, `store`, serde_json.

use crate::App;
use crate::http::{ApiError, Facts, Reply, Req};
use crate::webhook;
use serde_json::json;

pub fn post(app: &App, req: &Req, facts: &mut Facts) -> Result<Reply, ApiError> {
    webhook::authenticate(app, req)?;
    let body = webhook::parse_body(&req.body).map_err(ApiError::Validation)?;
    let from = webhook::string_field(&body, "from", |s| webhook::msisdn_error("from", s));
    let from = from.map_err(ApiError::Validation)?;
    let erased = (app.store.erase_sender(&from)).map_err(|_| ApiError::StorageUnavailable)?;
    facts.erased = Some(erased);
    Ok(Reply::json(200, &json!({ "erased": erased })))
}
