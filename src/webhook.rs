//! POST /webhook: verify the signature over the raw body, validate the payload, store it once,
//! and name the outcome.
//!
//! Order of checks: body cap (the server reads no body over it and says so in the request),
//! secret configured, signature, JSON shape, fields, insert. Nothing is stored unless every check
//! passes, and the signature is checked before any parsing, so an unsigned body is never even
//! looked at. A request carrying any `webhook-*` header is verified by Standard Webhooks, any
//! other by `X-Signature`; both with `WEBHOOK_SECRET` and `WEBHOOK_SECRET_PREVIOUS`.
//!
//! Owns: which scheme a request uses, body validation, the `Outcome` of a webhook request and its
//! label (the `result` of the log line and of `webhook_requests_total`).
//! Leaves out: the schemes themselves (`signature`), the timestamp grammar and the clock (`ts`),
//! storage (`store`). Uses: `http`, `signature`, `store`, `ts`, serde_json.

use crate::App;
use crate::http::{ApiError, Facts, FieldError, Reply, Req};
use crate::signature::{self, Claim};
use crate::store::{Inserted, Message};
use serde_json::{Map, Value, json};

/// The longest accepted `text`, in Unicode scalar values.
pub const MAX_TEXT_CHARS: usize = 4096;
/// The longest accepted `message_id` (gateways send ids of a few dozen characters).
pub const MAX_ID_CHARS: usize = 256;
/// The longest accepted `from`/`to`: `+` and digits (E.164 numbers have at most 15).
pub const MAX_MSISDN_CHARS: usize = 32;

/// What became of one webhook request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Duplicate,
    InvalidSignature,
    ValidationError,
    PayloadTooLarge,
    NotConfigured,
    StorageError,
}

impl Outcome {
    /// Every outcome's label, in the order of the variants (the metrics show all, at 0 until seen).
    pub const LABELS: [&'static str; 7] = [
        "created",
        "duplicate",
        "invalid_signature",
        "validation_error",
        "payload_too_large",
        "not_configured",
        "storage_error",
    ];

    pub fn label(self) -> &'static str {
        Outcome::LABELS[self as usize]
    }
}

/// `webhook_requests_total`, for `metrics::Metrics::new`.
pub const COUNTER: crate::metrics::Family = (
    "webhook_requests_total",
    "Webhook outcomes.",
    "result",
    &Outcome::LABELS,
);

/// The handler: every check and the insert, then the outcome and message id into `facts`.
pub fn post(app: &App, req: &Req, facts: &mut Facts) -> Result<Reply, ApiError> {
    let result = receive(app, req, &mut facts.message_id);
    let outcome = match &result {
        Ok(Inserted::New) => Outcome::Created,
        Ok(Inserted::Duplicate) => Outcome::Duplicate,
        Err(ApiError::PayloadTooLarge) => Outcome::PayloadTooLarge,
        Err(ApiError::NotConfigured(_)) => Outcome::NotConfigured,
        Err(ApiError::InvalidSignature) => Outcome::InvalidSignature,
        Err(ApiError::Validation(_)) => Outcome::ValidationError,
        // `receive` fails in no other way than storage.
        Err(_) => Outcome::StorageError,
    };
    facts.webhook_result = Some(outcome.label());
    facts.counts.push((COUNTER.0, outcome.label(), 1));
    result.map(|_| Reply::json(200, &json!({"status": "ok"})))
}

/// The checks in their order, then the insert. Sets `message_id` once the payload has one.
fn receive(app: &App, req: &Req, message_id: &mut Option<String>) -> Result<Inserted, ApiError> {
    if req.body_too_large {
        return Err(ApiError::PayloadTooLarge);
    }
    authenticate(app, req)?;
    let payload = parse_body(&req.body).map_err(ApiError::Validation)?;
    *message_id = payload
        .get("message_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (message, ts_key) = validate(&payload).map_err(ApiError::Validation)?;
    app.store
        .insert(&message, &ts_key, &crate::ts::now_utc())
        .map_err(|_| ApiError::StorageUnavailable)
}

/// A secret configured (else 503) and the request signed with it by either scheme (else 401):
/// what /webhook and /erase require before they read the body.
pub fn authenticate(app: &App, req: &Req) -> Result<(), ApiError> {
    let secrets = secrets(app).ok_or(ApiError::NotConfigured("WEBHOOK_SECRET"))?;
    match claim(app, req).is_some_and(|c| c.verify(&secrets, &req.body)) {
        true => Ok(()),
        false => Err(ApiError::InvalidSignature),
    }
}

/// `WEBHOOK_SECRET` and, if set, the previous one, accepted too so senders can move to a new key
/// one by one; `None` when no secret is configured.
fn secrets(app: &App) -> Option<Vec<&str>> {
    let (c, p) = (
        app.config.secret.as_deref()?,
        app.config.secret_previous.as_deref(),
    );
    Some([Some(c), p].into_iter().flatten().collect())
}

/// The request's signature: by Standard Webhooks when it carries any `webhook-*` header, else
/// the one `X-Signature` header; `None` when no body could make it valid (a header missing or
/// repeated, a malformed signature, a timestamp outside `WEBHOOK_TOLERANCE_SECONDS`).
fn claim(app: &App, req: &Req) -> Option<Claim> {
    let names = signature::STANDARD_HEADERS;
    if req.headers.iter().any(|(k, _)| names.contains(&k.as_str())) {
        let (now, tolerance) = (crate::ts::unix_now(), app.config.tolerance_seconds);
        return Claim::standard(names.map(|h| req.header(h)), now, tolerance);
    }
    req.header("x-signature").and_then(Claim::hex)
}

/// Whether the request is refused whatever its body: no secret (503), or no well-formed
/// signature headers (401).
pub fn refused_without_body(app: &App, req: &Req) -> bool {
    app.config.secret.is_none() || claim(app, req).is_none()
}

/// The body as a JSON object, or the single `["body"]` error FastAPI gives.
pub fn parse_body(body: &[u8]) -> Result<Map<String, Value>, Vec<FieldError>> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        vec![FieldError {
            kind: "json_invalid",
            loc: vec!["body".into()],
            msg: "JSON decode error".into(),
            input: json!({}),
            ctx: Some(json!({ "error": e.to_string() })),
        }]
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
        other => Err(vec![FieldError {
            kind: "model_attributes_type",
            loc: vec!["body".into()],
            msg: "Input should be a valid dictionary or object to extract fields from".into(),
            input: other,
            ctx: None,
        }]),
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
    let whole = Value::Object(p.clone());
    let mut string =
        |name: &str, check: &mut dyn FnMut(&str) -> Option<FieldError>| -> Option<String> {
            let err = match p.get(name) {
                None => FieldError::body("missing", name, "Field required", whole.clone()),
                Some(Value::String(s)) => match check(s) {
                    None => return Some(s.clone()),
                    Some(e) => e,
                },
                Some(other) => FieldError::body(
                    "string_type",
                    name,
                    "Input should be a valid string",
                    other.clone(),
                ),
            };
            errors.push(err);
            None
        };
    let message_id = string("message_id", &mut |s| {
        if let Some(e) = too_long("message_id", s, MAX_ID_CHARS) {
            Some(e)
        } else if s.is_empty() {
            Some(
                FieldError::body(
                    "string_too_short",
                    "message_id",
                    "String should have at least 1 character",
                    s.into(),
                )
                .ctx(json!({"min_length": 1})),
            )
        } else if s.trim().is_empty() {
            Some(FieldError::body(
                "value_error",
                "message_id",
                "Value error, message_id must not be blank",
                s.into(),
            ))
        } else {
            None
        }
    });
    let from = string("from", &mut |s| msisdn_error("from", s));
    let to = string("to", &mut |s| msisdn_error("to", s));
    let mut ts_key = None;
    let ts = string("ts", &mut |s| {
        ts_key = crate::ts::parse_message_ts(s);
        ts_key.is_none().then(|| {
            FieldError::body(
                "value_error",
                "ts",
                "Value error, ts must be ISO-8601 UTC like 2025-01-15T10:00:00Z",
                s.into(),
            )
        })
    });
    let text = match p.get("text") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match too_long("text", s, MAX_TEXT_CHARS) {
            None => Some(s.clone()),
            Some(e) => {
                errors.push(e);
                None
            }
        },
        Some(other) => {
            errors.push(FieldError::body(
                "string_type",
                "text",
                "Input should be a valid string",
                other.clone(),
            ));
            None
        }
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
            .map(|e| e.loc[1].as_str().unwrap_or("").to_string())
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
        assert_eq!((errs[0].kind, errs.len()), ("string_too_long", 1));
    }

    #[test]
    fn body_shape() {
        assert_eq!(
            parse_body(b"[1]").expect_err("array")[0].kind,
            "model_attributes_type"
        );
        assert_eq!(
            parse_body(b"{\"a\":").expect_err("cut")[0].kind,
            "json_invalid"
        );
        assert_eq!(
            parse_body(b"{\"a\":\"\xff\"}").expect_err("utf-8")[0].kind,
            "json_invalid"
        );
        assert!(parse_body(b" {} ").is_ok());
        let dup =
            parse_body(br#"{"message_id":"A","x":1,"message_id":"B","x":2}"#).expect_err("dup");
        assert_eq!(
            (dup.len(), dup[0].loc.clone()),
            (1, vec![json!("body"), json!("message_id")])
        );
        assert!(
            parse_body(br#"{"a":{"k":1,"k":2}}"#).is_ok(),
            "only top-level keys matter"
        );
    }
}
