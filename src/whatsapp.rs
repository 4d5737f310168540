//! /webhook/whatsapp: Meta's WhatsApp Cloud API webhook. GET is the verification handshake that
//! registers the URL; POST is a delivery of messages and status updates.
//!
//! Handshake: `hub.mode=subscribe` and `hub.verify_token` equal to `WHATSAPP_VERIFY_TOKEN`: 200
//! with `hub.challenge` as a plain-text body (Meta refuses a JSON-wrapped one); anything else 403.
//!
//! Delivery, in this order, nothing stored on any failure: body over `MAX_BODY_BYTES` (413); no
//! app secret (503); `X-Hub-Signature-256` over the raw bytes as received (401), before any
//! parsing; a valid Cloud API payload (422, FastAPI-shaped); then
//! every message of every entry is stored through the one insert path, all in one commit, and
//! 200 comes once they are on disk. A message is `wamid` as `message_id`, `+` and the sender's
//! digits as `from`, `+` and the receiving number's digits as `to`, the Unix timestamp as an
//! RFC 3339 `ts`, `text.body` as `text` (null for other types); its `type` and the message
//! object as sent (re-serialized, same JSON) are kept in the row beside it. Status updates are
//! counted by status, not stored; changes of other fields are acknowledged and ignored.
//!
//! Owns: the handshake, the payload grammar (a 422 names the first failure, `loc` its path in
//! the body), the WhatsApp outcome and counter labels.
//! Leaves out: the signature scheme (`signature`), the checks before the body, the JSON body's
//! outer checks and a failure's outcome (`webhook`, shared with /webhook), storage (`store`).
//! Uses: `http`, `signature`, `store`, `ts`, `webhook`, serde_json.

use crate::App;
use crate::http::{ApiError, Facts, FieldError, Reply, Req};
use crate::signature::Claim;
use crate::store::{Inserted, Row, Sent};
use crate::webhook;
use serde_json::{Map, Value, json};

/// The largest delivery body: Meta's payloads reach 3 MB. Fixed, whatever `MAX_BODY_BYTES` is.
pub const MAX_BODY_BYTES: usize = 3 << 20;

/// The labels of a status update's `status`; any other counts as `other`.
const STATUSES: [&str; 5] = ["sent", "delivered", "read", "failed", "other"];

/// The route's counter families, for `metrics::Metrics::new`: each request's outcome, each
/// message's (new or already stored), each status update's status.
#[rustfmt::skip] // a table: one family a line
pub const COUNTERS: [crate::metrics::Family; 3] = [
    ("whatsapp_requests_total", "WhatsApp webhook outcomes.", "result", &["created", "duplicate",
        "acknowledged", "verified", "forbidden", "invalid_signature", "validation_error",
        "payload_too_large", "not_configured", "storage_error"]),
    ("whatsapp_messages_total", "WhatsApp messages received, new or already stored.", "result", &["created", "duplicate"]),
    ("whatsapp_statuses_total", "WhatsApp status updates received, by status.", "status", &STATUSES),
];

/// GET: the verification handshake.
pub fn handshake(app: &App, req: &Req, facts: &mut Facts) -> Result<Reply, ApiError> {
    let token = app.config.whatsapp_verify_token.as_deref();
    let ok = token.is_some()
        && req.query_param("hub.verify_token").as_deref() == token
        && req.query_param("hub.mode").as_deref() == Some("subscribe");
    let challenge = req
        .query_param("hub.challenge")
        .filter(|c| ok && c.len() <= 256);
    let outcome = ["forbidden", "verified"][usize::from(challenge.is_some())];
    webhook::tell(facts, COUNTERS[0].0, outcome);
    let challenge = challenge.ok_or(ApiError::Forbidden)?;
    let r = Reply::bytes(200, "text/plain; charset=utf-8", challenge.into_bytes());
    Ok(r.with("X-Content-Type-Options", "nosniff".into()))
}

/// POST: a delivery. The checks in their order, then the insert and the counts.
pub fn post(app: &App, req: &Req, facts: &mut Facts) -> Result<Reply, ApiError> {
    let secrets = &app.config.whatsapp_secrets;
    let stored = webhook::signed(req, "WHATSAPP_APP_SECRET", secrets, claim(req))
        .and_then(|()| parse(&req.body).map_err(ApiError::Validation))
        .and_then(|(rows, statuses)| {
            let rows = app.store.insert_all(rows, &crate::ts::now_utc());
            Ok((rows.map_err(|_| ApiError::StorageUnavailable)?, statuses))
        });
    let outcome = match &stored {
        Ok((rows, _)) if rows.contains(&Inserted::New) => "created",
        Ok((rows, _)) if !rows.is_empty() => "duplicate",
        Ok(_) => "acknowledged",
        Err(e) => webhook::outcome_of(e),
    };
    webhook::tell(facts, COUNTERS[0].0, outcome);
    let (rows, statuses) = stored?;
    let new = rows.iter().filter(|s| **s == Inserted::New).count() as u64;
    let (messages, old) = (COUNTERS[1].0, rows.len() as u64 - new);
    facts
        .counts
        .extend([(messages, "created", new), (messages, "duplicate", old)]);
    let statuses = STATUSES.into_iter().zip(statuses);
    (facts.counts).extend(statuses.map(|(status, n)| (COUNTERS[2].0, status, n)));
    Ok(Reply::json(200, &json!({"status": "ok"})))
}

/// The delivery's signature (`X-Hub-Signature-256`); `None` when it is missing or malformed.
pub fn claim(req: &Req) -> Option<Claim> {
    req.header("x-hub-signature-256").and_then(Claim::hex)
}

/// A Cloud API delivery: its messages as rows for `Store::insert_all`, and how many status
/// updates it carried of each of `STATUSES`.
pub type Delivery = (Vec<Row>, [u64; 5]);

/// Parses and validates a delivery; a 422 names the first failing part (and, for a message,
/// each failing field).
pub fn parse(body: &[u8]) -> Result<Delivery, Vec<FieldError>> {
    let root = Value::Object(webhook::parse_body(body)?);
    let root = At {
        v: &root,
        loc: vec!["body".into()],
    };
    let (mut rows, mut statuses) = (Vec::new(), [0; 5]);
    let object = root.key("object")?;
    if object.str()? != "whatsapp_business_account" {
        return Err(object.bad("Input should be 'whatsapp_business_account'"));
    }
    for entry in root.key("entry")?.items()? {
        for change in entry.key("changes")?.items()? {
            let value = change.key("value")?;
            if change.v.get("field") != Some(&json!("messages")) {
                continue; // another field's change: acknowledged, not kept
            }
            if let Some(list) = value.opt("messages") {
                let to = value.key("metadata")?.key("display_phone_number")?.str()?;
                let to = format!("+{}", to.replace(['+', ' ', '-', '(', ')'], ""));
                for m in list.items()? {
                    rows.push(message(&m, &to)?);
                }
            }
            let list = value.opt("statuses").map(|s| s.items()).transpose()?;
            for s in list.unwrap_or_default() {
                let status = s.v.get("status").and_then(Value::as_str).unwrap_or("other");
                statuses[STATUSES.iter().position(|k| *k == status).unwrap_or(4)] += 1;
            }
        }
    }
    Ok((rows, statuses))
}

/// One message object as a row for `Store::insert_all`: its fields in /webhook's terms, held to
/// /webhook's rules (a failure names the field as /webhook calls it: `message_id` is the `id`).
fn message(m: &At, to: &str) -> Result<Row, Vec<FieldError>> {
    let k = m.key("type")?;
    let kind = Some(k.str()?).filter(|k| (1..=64).contains(&k.len()));
    let kind = kind.ok_or_else(|| k.bad("Value error, type must be 1 to 64 bytes"))?;
    let t = m.key("timestamp")?;
    let ts = crate::ts::from_unix(t.str()?).ok_or_else(|| t.bad("Value error, Unix seconds"))?;
    let from =
        m.v.get("from")
            .map(|f| f.as_str().map_or(f.clone(), |f| json!(format!("+{f}"))));
    let text = m.v.pointer("/text/body").filter(|_| kind == "text");
    let id = m.v.get("id");
    let mut fields = Map::new();
    fields.extend(
        [("message_id", id), ("from", from.as_ref()), ("text", text)]
            .into_iter()
            .filter_map(|(k, v)| Some((k.into(), v?.clone()))),
    );
    fields.extend([("to".into(), json!(to)), ("ts".into(), json!(ts))]);
    let (message, key) = webhook::validate(&fields).map_err(|errors| {
        // Each `loc` (`["body", field]`) moved under the message's place in the body.
        let at = |mut e: FieldError| {
            let loc = e.0["loc"].as_array_mut().expect("every loc is a list");
            loc.splice(..1, m.loc.iter().cloned());
            e
        };
        errors.into_iter().map(at).collect::<Vec<_>>()
    })?;
    let sent = Sent {
        kind: kind.into(),
        raw: m.v.to_string(),
    };
    Ok((message, key, Some(sent)))
}

/// A value in the body and where it is, for a 422's `loc`.
struct At<'a> {
    v: &'a Value,
    loc: Vec<Value>,
}

impl<'a> At<'a> {
    fn child(&self, key: Value, v: &'a Value) -> At<'a> {
        let loc = [&self.loc[..], &[key]].concat();
        At { v, loc }
    }

    fn fail(&self, kind: &'static str, msg: &str) -> Vec<FieldError> {
        vec![FieldError::at(self.loc.clone(), kind, msg, self.v.clone())]
    }

    /// A value that has the right type but is not acceptable.
    fn bad(&self, msg: &str) -> Vec<FieldError> {
        self.fail("value_error", msg)
    }

    fn opt(&self, key: &str) -> Option<At<'a>> {
        Some(self.child(key.into(), self.v.get(key)?))
    }

    /// A field that must be there (a field of what is not an object is missing too).
    fn key(&self, key: &str) -> Result<At<'a>, Vec<FieldError>> {
        let at = || self.child(key.into(), self.v);
        (self.opt(key)).ok_or_else(|| at().fail("missing", "Field required"))
    }

    fn str(&self) -> Result<&'a str, Vec<FieldError>> {
        let not = || self.fail("string_type", "Input should be a valid string");
        self.v.as_str().ok_or_else(not)
    }

    fn items(&self) -> Result<Vec<At<'a>>, Vec<FieldError>> {
        let not = || self.fail("list_type", "Input should be a valid list");
        let list = self.v.as_array().ok_or_else(not)?.iter().enumerate();
        Ok(list.map(|(i, v)| self.child(i.into(), v)).collect())
    }
}
