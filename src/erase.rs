//! POST /erase: erases every message of one sender, `{"from":"+…"}`, signed with `X-Signature`
//! exactly like a webhook (whoever can write can erase; nobody else). Answers `{"erased":N}`.
//!
//! Order of checks, as for /webhook: secret configured (503), signature (401, before any
//! parsing), body (422, FastAPI shape), then the erasure, batch by batch through the writer.
//! Owns: the handler. Leaves out: the signature scheme and field rules (`webhook`), deleting
//! (`store::prune`), the log line (the server logs `erased` from `Facts`).
//! Uses: `http`, `webhook`, `store`, serde_json.

use crate::App;
use crate::http::{ApiError, Facts, FieldError, Reply, Req};
use crate::webhook;
use serde_json::{Value, json};

pub fn post(app: &App, req: &Req, facts: &mut Facts) -> Result<Reply, ApiError> {
    let Some(secret) = &app.config.secret else {
        return Err(ApiError::NotConfigured);
    };
    let secrets: Vec<&[u8]> = [Some(secret), app.config.secret_previous.as_ref()]
        .into_iter()
        .flatten()
        .map(|s| s.as_bytes())
        .collect();
    let mut signatures = req.headers.iter().filter(|(k, _)| k == "x-signature");
    let header = match (signatures.next(), signatures.next()) {
        (Some((_, v)), None) => Some(v.as_str()),
        _ => None,
    };
    if !webhook::verify(&secrets, header, &req.body) {
        return Err(ApiError::InvalidSignature);
    }
    let body = webhook::parse_body(&req.body).map_err(ApiError::Validation)?;
    let error = match body.get("from") {
        Some(Value::String(from)) => webhook::msisdn_error("from", from),
        Some(v) => Some(FieldError::body(
            "string_type",
            "from",
            "Input should be a valid string",
            v.clone(),
        )),
        None => Some(FieldError::body(
            "missing",
            "from",
            "Field required",
            Value::Object(body.clone()),
        )),
    };
    if let Some(e) = error {
        return Err(ApiError::Validation(vec![e]));
    }
    let from = body.get("from").and_then(Value::as_str).unwrap_or_default();
    let erased = (app.store.erase_sender(from)).map_err(|_| ApiError::StorageUnavailable)?;
    facts.erased = Some(erased);
    Ok(Reply::json(200, &json!({ "erased": erased })))
}
