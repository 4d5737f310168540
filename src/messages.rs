//! GET /messages and GET /stats: bounded query parsing, one store call, a JSON reply.
//!
//! Query rules: `limit` 1..=100 (default 50), `offset` >= 0 (default 0), both integers or a 422
//! naming `["query", name]`; an empty parameter is an absent one; a `from` that arrived as a
//! space then digits (a raw `+` in the URL) is read as `+digits`; `since` as in `ts.rs`.
//!
//! Owns: the query grammar of /messages and the JSON shapes of both replies.
//! Leaves out: how filters are answered (`store`), the timestamp grammar (`ts`).
//! Uses: `http`, `store`, `ts`, serde_json.

use crate::App;
use crate::http::{ApiError, Facts, FieldError, Reply, Req};
use crate::store::{self, Filter};
use serde_json::{Value, json};
use std::io::Write as _;

/// The longest `q`, in characters: longer patterns only cost more (each three characters are
/// one more trigram to intersect) and no sender's search needs them.
pub const MAX_Q_CHARS: usize = 200;
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 100;

pub fn list(app: &App, req: &Req, facts: &mut Facts) -> Result<Reply, ApiError> {
    let filter = parse_filter(req).map_err(ApiError::Validation)?;
    let page = app.store.list(&filter).map_err(read_error)?;
    facts.plan = Some(page.plan.name());
    let body = page_json(&page, filter.limit, filter.offset);
    Ok(Reply::bytes(200, "application/json", body))
}

pub fn stats(app: &App, _req: &Req) -> Result<Reply, ApiError> {
    let s = app.store.stats().map_err(read_error)?;
    let per_sender: Vec<Value> = s
        .top_senders
        .iter()
        .map(|(from, n)| json!({ "from": from, "count": n }))
        .collect();
    let body = json!({
        "total_messages": s.total_messages,
        "senders_count": s.senders_count,
        "messages_per_sender": per_sender,
        "first_message_ts": s.first_ts,
        "last_message_ts": s.last_ts,
    });
    Ok(Reply::json(200, &body))
}

/// A failed read as the client is told it: past its budget, client gone, or storage trouble.
pub fn read_error(e: store::Error) -> ApiError {
    match e {
        store::Error::OverBudget => ApiError::OverBudget,
        store::Error::ClientGone => ApiError::ClientGone,
        store::Error::Busy => ApiError::SearchesBusy,
        store::Error::Failed(_) => ApiError::StorageUnavailable,
    }
}

/// The page as JSON, written straight from the rows, keys in the FastAPI service's order. A
/// `serde_json::Value` tree per message (an ordered map, an allocation per key) cost more than
/// the read itself: over half the CPU of the no-filter page in a profile.
fn page_json(page: &store::Page, limit: u32, offset: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 192 * page.messages.len());
    out.extend_from_slice(b"{\"data\":[");
    for (i, m) in page.messages.iter().enumerate() {
        let fields = [
            ("message_id", Some(m.message_id.as_str())),
            ("from", Some(&m.from)),
            ("to", Some(&m.to)),
            ("ts", Some(&m.ts)),
            ("text", m.text.as_deref()),
        ];
        for (j, (key, value)) in fields.into_iter().enumerate() {
            let open = match (i, j) {
                (0, 0) => "{",
                (_, 0) => ",{",
                _ => ",",
            };
            let _ = write!(out, "{open}\"{key}\":"); // writing to a Vec cannot fail
            let _ = serde_json::to_writer(&mut out, &value);
        }
        out.push(b'}');
    }
    let total = page.total;
    let _ = write!(
        out,
        "],\"total\":{total},\"limit\":{limit},\"offset\":{offset}}}"
    );
    out
}

/// The filter and page of a /messages request, or every failing parameter.
pub fn parse_filter(req: &Req) -> Result<Filter, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut int = |name: &str, default: u64, min: u64, max: u64| -> u64 {
        let Some(raw) = req.query_param(name) else {
            return default;
        };
        let err = match raw.trim().parse::<i128>() {
            Err(_) => {
                let msg = "Input should be a valid integer, unable to parse string as an integer";
                FieldError::query("int_parsing", name, msg, &raw)
            }
            Ok(n) if n < i128::from(min) => {
                let msg = format!("Input should be greater than or equal to {min}");
                FieldError::query("greater_than_equal", name, &msg, &raw).ctx(json!({ "ge": min }))
            }
            Ok(n) if n > i128::from(max) => {
                let msg = format!("Input should be less than or equal to {max}");
                FieldError::query("less_than_equal", name, &msg, &raw).ctx(json!({ "le": max }))
            }
            Ok(n) => return n as u64,
        };
        errors.push(err);
        default
    };
    let limit = int("limit", u64::from(DEFAULT_LIMIT), 1, u64::from(MAX_LIMIT)) as u32;
    // SQLite's OFFSET is a signed 64-bit integer.
    let offset = int("offset", 0, 0, i64::MAX as u64);
    let from = req.query_param("from").map(|f| match f.strip_prefix(' ') {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) => {
            format!("+{digits}")
        }
        _ => f,
    });
    let since_key = req.query_param("since").and_then(|s| {
        let key = crate::ts::parse_since(&s);
        if key.is_none() {
            let msg = "Value error, since must be an ISO-8601 date or date-time";
            errors.push(FieldError::query("value_error", "since", msg, &s));
        }
        key
    });
    let q = req.query_param("q");
    if let Some(q) = q.as_deref().filter(|q| q.chars().count() > MAX_Q_CHARS) {
        let msg = format!("String should have at most {MAX_Q_CHARS} characters");
        let e = FieldError::query("string_too_long", "q", &msg, q);
        errors.push(e.ctx(json!({ "max_length": MAX_Q_CHARS })));
    }
    let filter = Filter {
        from,
        since_key,
        q,
        limit,
        offset,
    };
    errors.is_empty().then_some(filter).ok_or(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<Filter, Vec<FieldError>> {
        parse_filter(&Req {
            query: q.into(),
            ..Req::default()
        })
    }

    #[test]
    fn defaults_and_bounds() {
        let f = parse("").expect("defaults");
        assert_eq!((f.limit, f.offset, f.from, f.q), (50, 0, None, None));
        assert_eq!(
            parse("limit=100&offset=7")
                .map(|f| (f.limit, f.offset))
                .expect("ok"),
            (100, 7)
        );
        for (q, field, kind) in [
            ("limit=0", "limit", "greater_than_equal"),
            ("limit=101", "limit", "less_than_equal"),
            ("limit=abc", "limit", "int_parsing"),
            ("limit=1.5", "limit", "int_parsing"),
            ("offset=-1", "offset", "greater_than_equal"),
            (
                "offset=99999999999999999999999",
                "offset",
                "less_than_equal",
            ),
            ("since=soon", "since", "value_error"),
        ] {
            let errs = parse(q).expect_err(q);
            assert_eq!(
                (errs[0].0["loc"][1].as_str(), errs[0].0["type"].as_str()),
                (Some(field), Some(kind)),
                "{q}"
            );
        }
        let errs = parse("limit=0&offset=x").expect_err("two");
        assert_eq!(errs.len(), 2);
        assert_eq!(
            (errs[0].0["input"].clone(), errs[1].0["input"].clone()),
            ("0".into(), "x".into())
        );
        assert_eq!(errs[0].0["ctx"], json!({"ge": 1}));
    }

    #[test]
    fn from_accepts_raw_plus() {
        assert_eq!(
            parse("from=+919").expect("ok").from.as_deref(),
            Some("+919")
        );
        assert_eq!(
            parse("from=%2B919").expect("ok").from.as_deref(),
            Some("+919")
        );
        assert_eq!(
            parse("from=+alice").expect("ok").from.as_deref(),
            Some(" alice")
        );
        assert_eq!(parse("from=").expect("ok").from, None);
    }

    #[test]
    fn since_with_raw_plus_offset() {
        let f = parse("since=2025-01-15T15:00:00+05:30").expect("ok");
        assert_eq!(
            f.since_key.as_deref(),
            Some("2025-01-15T09:30:00.000000000Z")
        );
    }
}
