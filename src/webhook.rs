//! POST /webhook: verify the signature over the raw body, validate the payload, store it once,
//! and name the outcome.
//!
//! Order of checks: body cap (the server reads no body over it and says so in the request),
//! secret configured, signature, JSON shape, fields, insert. Nothing is stored unless every check
//! passes, and the signature is checked before any parsing, so an unsigned body is never even
//! looked at. A request carrying any `webhook-*` header is verified by Standard Webhooks, any
//! other by `X-Signature`; both with `WEBHOOK_SECRET` and `WEBHOOK_SECRET_PREVIOUS`.
//!
//! Owns: which scheme a request uses, body validation, the outcomes of a webhook request (the
//! `result` of the log line and of `webhook_requests_total`); for every signed route
//! (/webhook/whatsapp and /erase too) the checks before the body (`signed`), the JSON body's
//! outer checks and a string field's (`parse_body`, `string_field`), what a failure's outcome is
//! (`outcome_of`) and how an outcome is told (`tell`).
//! Leaves out: the schemes themselves (`signature`), the timestamp grammar and the clock (`ts`),
//! storage (`store`). Uses: `http`, `signature`, `store`, `ts`, serde_json.

use crate::App;
use crate::http::{ApiError, Facts, FieldError, Reply, Req};
use crate::metrics::Family;
use crate::signature::{self, Claim};
use crate::store::{Inserted, Message};
use serde_json::{Map, Value, json};

/// The longest accepted `text`, in Unicode scalar values.
pub const MAX_TEXT_CHARS: usize = 4096;
/// The longest accepted `message_id` (gateways send ids of a few dozen characters).
pub const MAX_ID_CHARS: usize = 256;
/// The longest accepted `from`/`to`: `+` and digits (E.164 numbers have at most 15).
pub const MAX_MSISDN_CHARS: usize = 32;

/// Every outcome of a webhook request, as labelled in the log line and the metrics (which show
/// all, at 0 until seen).
#[rustfmt::skip] // a list, two lines rather than nine
pub const OUTCOMES: [&str; 7] = ["created", "duplicate", "invalid_signature",
    "validation_error", "payload_too_large", "not_configured", "storage_error"];

/// The outcome of a webhook request (either route's) that failed with `e`: a signed route fails
/// in no other way than these and storage.
pub fn outcome_of(e: &ApiError) -> &'static str {
    match e {
        ApiError::PayloadTooLarge => "payload_too_large",
        ApiError::NotConfigured(_) => "not_configured",
        ApiError::InvalidSignature => "invalid_signature",
        ApiError::Validation(_) => "validation_error",
        _ => "storage_error",
    }
}

/// `webhook_requests_total`, for `metrics::Metrics::new`.
#[rustfmt::skip] // one line reads better than six
pub const COUNTER: Family = ("webhook_requests_total", "Webhook outcomes.", "result", &OUTCOMES);

/// The handler: every check and the insert, then the outcome and message id into `facts`.
pub fn post(app: &App, req: &Req, facts: &mut Facts) -> Result<Reply, ApiError> {
    let result = receive(app, req, &mut facts.message_id);
    let outcome = match &result {
        Ok(Inserted::New) => "created",
        Ok(Inserted::Duplicate) => "duplicate",
        Err(e) => outcome_of(e),
    };
    tell(facts, COUNTER.0, outcome);
    result.map(|_| Reply::json(200, &json!({"status": "ok"})))
}

/// Records a webhook request's outcome (either route's, counted in `family`) for the log line
/// and the metrics.
pub fn tell(facts: &mut Facts, family: &'static str, outcome: &'static str) {
    facts.webhook_result = Some(outcome);
    facts.counts.push((family, outcome, 1));
}

/// The checks in their order, then the insert. Sets `message_id` once the payload has one.
fn receive(app: &App, req: &Req, message_id: &mut Option<String>) -> Result<Inserted, ApiError> {
    authenticate(app, req)?;
    let payload = parse_body(&req.body).map_err(ApiError::Validation)?;
    let id = payload.get("message_id").and_then(Value::as_str);
    *message_id = id.map(str::to_owned);
    let (message, ts_key) = validate(&payload).map_err(ApiError::Validation)?;
    let stored = (app.store).insert_all(vec![(message, ts_key, None)], &crate::ts::now_utc());
    Ok(stored.map_err(|_| ApiError::StorageUnavailable)?[0])
}

/// The body within its cap (else 413), a secret configured (else 503) and the request signed
/// with it by either scheme (else 401): what /webhook and /erase require before they read the
/// body.
pub fn authenticate(app: &App, req: &Req) -> Result<(), ApiError> {
    signed(req, "WEBHOOK_SECRET", &app.config.secrets, claim(app, req))
}

/// The checks every signed route makes before it reads the body, in this order: the body within
/// its cap (413), `secrets` not empty (503 naming `var`), `claim` that of the body under one of
/// them (401).
pub fn signed(
    req: &Req,
    var: &'static str,
    secrets: &[String],
    claim: Option<Claim>,
) -> Result<(), ApiError> {
    if req.body_too_large {
        Err(ApiError::PayloadTooLarge)
    } else if secrets.is_empty() {
        Err(ApiError::NotConfigured(var))
    } else if !claim.is_some_and(|c| c.verify(secrets, &req.body)) {
        Err(ApiError::InvalidSignature)
    } else {
        Ok(())
    }
}

/// The request's signature: by Standard Webhooks when it carries any `webhook-*` header, else
/// the one `X-Signature` header; `None` when no body could make it valid (a header missing or
/// repeated, a malformed signature, a timestamp outside `WEBHOOK_TOLERANCE_SECONDS`).
pub fn claim(app: &App, req: &Req) -> Option<Claim> {
    let names = signature::STANDARD_HEADERS;
    if req.headers.iter().any(|(k, _)| names.contains(&k.as_str())) {
        let (now, tolerance) = (crate::ts::unix_now(), app.config.tolerance_seconds);
        return Claim::standard(names.map(|h| req.header(h)), now, tolerance);
    }
    req.header("x-signature").and_then(Claim::hex)
}

/// The body as a JSON object, or the single `["body"]` error FastAPI gives.
pub fn parse_body(body: &[u8]) -> Result<Map<String, Value>, Vec<FieldError>> {
    let body_error = |kind, msg, input| FieldError::at(vec!["body".into()], kind, msg, input);
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        let at = body_error("json_invalid", "JSON decode error", json!({}));
        vec![at.ctx(json!({ "error": e.to_string() }))]
    })?;
    match value {
        // A key given twice is refused rather than "last wins": anything upstream that reads
        // the first would see another message than the one stored.
        Value::Object(map) => match duplicate_key(body) {
            None => Ok(map),
            Some(key) => Err(vec![FieldError::body(
                "value_error",
                &key,
                "Value error, the same key appears more than once",
                map[&key].clone(),
            )]),
        },
        other => Err(vec![body_error(
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
            other,
        )]),
    }
}

/// The first top-level key of a JSON object that appears twice (serde_json's map keeps one).
fn duplicate_key(body: &[u8]) -> Option<String> {
    struct Keys(Option<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
            d.deserialize_map(Keys(None))
        }
    }
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Keys;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Keys, A::Error> {
            let (mut seen, mut first) = (std::collections::HashSet::new(), None);
            while let Some((k, serde::de::IgnoredAny)) = m.next_entry::<String, _>()? {
                if !seen.insert(k.clone()) && first.is_none() {
                    first = Some(k);
                }
            }
            Ok(Keys(first))
        }
    }
    serde_json::from_slice::<Keys>(body).ok()?.0
}

/// Checks every field and collects every failure; on success returns the message and the sortable
/// key of its `ts`. Unknown fields are ignored.
pub fn validate(p: &Map<String, Value>) -> Result<(Message, String), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut keep = |field: Result<String, _>| field.map_err(|e| errors.extend(e)).ok();
    let message_id = keep(string_field(p, "message_id", |s| {
        let blank = |kind, msg| FieldError::body(kind, "message_id", msg, s.into());
        let (short, blank_msg) = (
            "String should have at least 1 character",
            "Value error, message_id must not be blank",
        );
        let empty = || blank("string_too_short", short).ctx(json!({"min_length": 1}));
        (too_long("message_id", s, MAX_ID_CHARS))
            .or_else(|| s.is_empty().then(empty))
            .or_else(|| s.trim().is_empty().then(|| blank("value_error", blank_msg)))
    }));
    let from = keep(string_field(p, "from", |s| msisdn_error("from", s)));
    let to = keep(string_field(p, "to", |s| msisdn_error("to", s)));
    let mut ts_key = None;
    let ts = keep(string_field(p, "ts", |s| {
        ts_key = crate::ts::parse_message_ts(s);
        ts_key.is_none().then(|| {
            FieldError::body(
                "value_error",
                "ts",
                "Value error, ts must be ISO-8601 UTC like 2025-01-15T10:00:00Z",
                s.into(),
            )
        })
    }));
    let text = match p.get("text") {
        None | Some(Value::Null) => None,
        Some(_) => keep(string_field(p, "text", |s| {
            too_long("text", s, MAX_TEXT_CHARS)
        })),
    };
    match (message_id, from, to, ts, ts_key) {
        (Some(message_id), Some(from), Some(to), Some(ts), Some(key)) if errors.is_empty() => Ok((
            Message {
                message_id,
                from,
                to,
                ts,
                text,
            },
            key,
        )),
        _ => Err(errors),
    }
}

/// Body field `name` of `p` as a string that `check` finds no fault with; else the one error
/// for it (one): missing, not a string, or `check`'s.
pub fn string_field(
    p: &Map<String, Value>,
    name: &str,
    check: impl FnOnce(&str) -> Option<FieldError>,
) -> Result<String, Vec<FieldError>> {
    let (kind, msg, input) = match p.get(name) {
        None => ("missing", "Field required", Value::Object(p.clone())),
        Some(Value::String(s)) => return check(s).map_or_else(|| Ok(s.clone()), |e| Err(vec![e])),
        Some(other) => (
            "string_type",
            "Input should be a valid string",
            other.clone(),
        ),
    };
    Err(vec![FieldError::body(kind, name, msg, input)])
}

/// A string over `max` characters (Unicode scalar values), FastAPI's way.
fn too_long(field: &str, s: &str, max: usize) -> Option<FieldError> {
    (s.chars().count() > max).then(|| {
        let msg = format!("String should have at most {max} characters");
        FieldError::body("string_too_long", field, &msg, s.into()).ctx(json!({"max_length": max}))
    })
}

/// `+` then one or more ASCII digits, at most `MAX_MSISDN_CHARS` in all.
pub fn msisdn_error(field: &str, s: &str) -> Option<FieldError> {
    if let Some(e) = too_long(field, s, MAX_MSISDN_CHARS) {
        return Some(e);
    }
    let ok = s
        .strip_prefix('+')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()));
    (!ok).then(|| {
        FieldError::body(
            "string_pattern_mismatch",
            field,
            "String should match pattern '^\\+[0-9]+$'",
            s.into(),
        )
        .ctx(json!({"pattern": "^\\+[0-9]+$"}))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str) -> Result<(Message, String), Vec<FieldError>> {
        let v: Value = serde_json::from_str(body).expect("test JSON");
        validate(v.as_object().expect("object"))
    }

    fn failing_fields(body: &str) -> Vec<String> {
        check(body)
            .expect_err("must fail")
            .iter()
            .map(|e| e.0["loc"][1].as_str().unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn valid_payloads() {
        let (m, key) = check(r#"{"message_id":"m1","from":"+91","to":"+1","ts":"2025-01-15T10:00:00Z","text":"hi","extra":1}"#)
            .expect("valid");
        assert_eq!(
            (m.message_id.as_str(), m.text.as_deref()),
            ("m1", Some("hi"))
        );
        assert_eq!(key, "2025-01-15T10:00:00.000000000Z");
        let (m, _) = check(
            r#"{"message_id":"m1","from":"+91","to":"+1","ts":"2025-01-15T10:00:00Z","text":null}"#,
        )
        .expect("null text");
        assert_eq!(m.text, None);
        let long = "é".repeat(MAX_TEXT_CHARS);
        let body =
            json!({"message_id":"m","from":"+1","to":"+2","ts":"2025-01-15T10:00:00Z","text":long});
        assert!(
            validate(body.as_object().expect("object")).is_ok(),
            "4096 scalar values, 8192 bytes"
        );
    }

    #[test]
    fn every_failing_field_is_named() {
        assert_eq!(failing_fields("{}"), ["message_id", "from", "to", "ts"]);
        assert_eq!(
            failing_fields(
                r#"{"message_id":1,"from":"919","to":"+1a","ts":"2025-01-15","text":5}"#
            ),
            ["message_id", "from", "to", "ts", "text"]
        );
        assert_eq!(
            failing_fields(r#"{"message_id":" ","from":"+","to":"+١٢","ts":"x"}"#),
            ["message_id", "from", "to", "ts"]
        );
        let too_long = json!({"message_id":"m","from":"+1","to":"+2","ts":"2025-01-15T10:00:00Z","text":"a".repeat(4097)});
        let errs = validate(too_long.as_object().expect("object")).expect_err("too long");
        assert_eq!(
            (&errs[0].0["type"], errs.len()),
            (&json!("string_too_long"), 1)
        );
    }

    #[test]
    fn body_shape() {
        assert_eq!(
            parse_body(b"[1]").expect_err("array")[0].0["type"],
            "model_attributes_type"
        );
        assert_eq!(
            parse_body(b"{\"a\":").expect_err("cut")[0].0["type"],
            "json_invalid"
        );
        assert_eq!(
            parse_body(b"{\"a\":\"\xff\"}").expect_err("utf-8")[0].0["type"],
            "json_invalid"
        );
        assert!(parse_body(b" {} ").is_ok());
        let dup =
            parse_body(br#"{"message_id":"A","x":1,"message_id":"B","x":2}"#).expect_err("dup");
        assert_eq!(
            (dup.len(), dup[0].0["loc"].clone()),
            (1, json!(["body", "message_id"]))
        );
        assert!(
            parse_body(br#"{"a":{"k":1,"k":2}}"#).is_ok(),
            "only top-level keys matter"
        );
    }
}
