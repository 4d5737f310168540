//! Our own request and reply values, the API's errors, and the one place errors become HTTP.
//!
//! Owns: `Req` (with query decoding), `Reply`, `Facts` (what a handler tells the access log and
//! the metrics: it never logs or counts itself), `FieldError` (one 422 entry, FastAPI-shaped)
//! with its constructors, `ApiError` and `ApiError::into_reply`, the only mapping from an API
//! error to a status and body. Hex digits are read here (`hex_val`), for percent-decoding and
//! for the signatures.
//! Leaves out: sockets and framing (`server`, `wire`); which route fails how (the handlers).
//! Uses: serde_json.

use serde_json::{Value, json};

/// One HTTP request, body already read (and capped) by the server.
#[derive(Debug, Default)]
pub struct Req {
    pub method: String,
    /// The path without the query string, still percent-encoded (routes are plain ASCII).
    pub path: String,
    /// The raw query string, without the `?`.
    pub query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The declared body was over `MAX_BODY_BYTES`, so it was not read (`body` is empty). Every
    /// route answers 413; /webhook decides it itself, to count it as its outcome.
    pub body_too_large: bool,
}

impl Req {
    /// The value of a header sent exactly once; `None` when it is missing or repeated (which one
    /// would count?). `name` in lower case.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut all = self.headers.iter().filter(|(k, _)| k == name);
        match (all.next(), all.next()) {
            (Some((_, v)), None) => Some(v),
            _ => None,
        }
    }

    /// The last value of a query parameter (FastAPI's rule for repeated scalars); an empty value
    /// counts as absent. Parameters are split on `&` and `=`, `+` read as a space, and
    /// percent-decoded; invalid UTF-8 after decoding is replaced with U+FFFD (such a value then
    /// simply matches nothing).
    pub fn query_param(&self, name: &str) -> Option<String> {
        let pairs = self.query.split('&').filter(|p| !p.is_empty()).rev();
        let mut found = pairs.map(|p| p.split_once('=').unwrap_or((p, "")));
        let (_, v) = found.find(|(k, _)| percent_decode(k) == name)?;
        Some(percent_decode(v)).filter(|v| !v.is_empty())
    }
}

/// `application/x-www-form-urlencoded` decoding of one component. A `%` not followed by two hex
/// digits is kept as is, as browsers and Python do.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let digit = |j: usize| b.get(j).copied().and_then(hex_val);
    while i < b.len() {
        match (b[i], digit(i + 1), digit(i + 2)) {
            (b'+', ..) => out.push(b' '),
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi * 16 + lo);
                i += 2;
            }
            (c, ..) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The value of one hex digit, either case.
pub fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// What the access log and the metrics learn from a handler besides its reply. Only the
/// webhooks (`webhook`, `whatsapp`) and `erase` set anything here.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    /// The webhook outcome label (`created`, `duplicate`, ...); `None` for other routes.
    pub webhook_result: Option<&'static str>,
    /// The message id of a webhook payload, when the payload had one.
    pub message_id: Option<String>,
    /// What to add to counter families other than `webhook_requests_total`: (family, label
    /// value, how many). /webhook/whatsapp counts its outcome, messages and statuses here.
    pub counts: Vec<(&'static str, &'static str, u64)>,
    /// How many messages a POST /erase deleted.
    pub erased: Option<u64>,
    /// The plan a GET /messages was read by (`store::Plan`), logged at DEBUG.
    pub plan: Option<&'static str>,
}

/// One HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Extra headers (`Allow` on a 405, `Retry-After` on a refused connection).
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply::bytes(status, "application/json", body.to_string().into_bytes())
    }

    /// The same reply with one more header.
    pub fn with(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// A reply whose body is already serialised (the metrics text, the OpenAPI document).
    pub fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type,
            body,
            headers: Vec::new(),
        }
    }
}

/// One failing field in a 422, FastAPI (pydantic v2) style, as the JSON object sent: `type`
/// (machine-readable: `missing`, `string_type`, `json_invalid`, ...), `loc` (where:
/// `["body","from"]`, `["query","limit"]`), `msg`, `input` (the offending value, echoed back)
/// and, for a constraint, `ctx` (its details, e.g. `{"max_length":4096}`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError(pub Value);

impl FieldError {
    /// An error at `loc` (`["body"]`, `["body","entry",0,"changes"]`, ...).
    pub fn at(loc: Vec<Value>, kind: &'static str, msg: &str, input: Value) -> FieldError {
        FieldError(json!({ "type": kind, "loc": loc, "msg": msg, "input": input }))
    }

    /// An error on body field `field` (`loc: ["body", field]`).
    pub fn body(kind: &'static str, field: &str, msg: &str, input: Value) -> FieldError {
        FieldError::at(vec!["body".into(), field.into()], kind, msg, input)
    }

    /// An error on query parameter `name` (`loc: ["query", name]`).
    pub fn query(kind: &'static str, name: &str, msg: &str, input: &str) -> FieldError {
        FieldError::at(vec!["query".into(), name.into()], kind, msg, input.into())
    }

    /// The same error with constraint details.
    pub fn ctx(mut self, ctx: Value) -> FieldError {
        self.0["ctx"] = ctx;
        self
    }
}

/// Everything a handler can fail with. `into_reply` is the only mapping to HTTP.
#[derive(Debug)]
pub enum ApiError {
    /// No route has this path.
    NotFound,
    /// The path exists but not with this method; carries the `Allow` value.
    MethodNotAllowed(&'static str),
    /// The body is over `MAX_BODY_BYTES`.
    PayloadTooLarge,
    /// The variable named (`WEBHOOK_SECRET`, ...) is unset or empty, so no webhook can be verified.
    NotConfigured(&'static str),
    /// The signature is missing, malformed or wrong.
    InvalidSignature,
    /// The WhatsApp verification handshake failed (wrong token or mode).
    Forbidden,
    /// The body or the query failed validation; one entry per failing field.
    Validation(Vec<FieldError>),
    /// SQLite failed (disk full, locked, file gone): the sender should retry.
    StorageUnavailable,
    /// A read ran past `READ_BUDGET_MS` and was stopped.
    OverBudget,
    /// The client hung up while its read ran, and the read was stopped: 499, nginx's status
    /// for it, so the log line and the metrics say what happened (nobody reads the reply).
    ClientGone,
    /// A handler panicked.
    Internal,
    /// The request could not be read as HTTP (malformed, too large a head, timed out): the
    /// status and a short reason from the transport.
    Protocol(u16, &'static str),
    /// `MAX_CONNECTIONS` are open: the client should retry in a second.
    TooManyConnections,
    /// As many text searches as allowed are running or waiting: 503, retry in a second.
    SearchesBusy,
}

impl ApiError {
    pub fn into_reply(self) -> Reply {
        let detail = |status, text: &str| Reply::json(status, &json!({ "detail": text }));
        match self {
            ApiError::NotFound => detail(404, "Not Found"),
            ApiError::MethodNotAllowed(allow) => {
                detail(405, "Method Not Allowed").with("Allow", allow.into())
            }
            ApiError::PayloadTooLarge => detail(413, "payload too large"),
            ApiError::NotConfigured(var) => detail(503, &format!("{var} not configured")),
            ApiError::InvalidSignature => detail(401, "invalid signature"),
            ApiError::Forbidden => detail(403, "verification failed"),
            ApiError::Validation(errors) => {
                let list: Vec<Value> = errors.into_iter().map(|e| e.0).collect();
                Reply::json(422, &json!({ "detail": list }))
            }
            ApiError::StorageUnavailable => detail(503, "storage unavailable"),
            ApiError::OverBudget => detail(503, "query exceeded its time budget"),
            ApiError::ClientGone => detail(499, "client closed the request"),
            ApiError::Internal => detail(500, "internal error"),
            ApiError::Protocol(status, why) => detail(status, why),
            ApiError::TooManyConnections => retry_later("too many connections"),
            ApiError::SearchesBusy => retry_later("too many text searches at once"),
        }
    }
}

/// A 503 that tells the client to come back in a second.
fn retry_later(why: &str) -> Reply {
    Reply::json(503, &json!({ "detail": why })).with("Retry-After", "1".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(query: &str) -> Req {
        Req {
            query: query.into(),
            ..Req::default()
        }
    }

    #[test]
    fn query_decoding() {
        assert_eq!(percent_decode("%2B91+x%20y"), "+91 x y");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A4"), "ä");
        assert_eq!(percent_decode("%FF"), "\u{FFFD}");
        let r = req("limit=5&from=+919&limit=7&q=&flag");
        assert_eq!(r.query_param("limit").as_deref(), Some("7"));
        assert_eq!(r.query_param("from").as_deref(), Some(" 919"));
        assert_eq!(r.query_param("q"), None);
        assert_eq!(r.query_param("flag"), None);
        assert_eq!(r.query_param("missing"), None);
    }

    #[test]
    fn errors_map_to_status_and_body() {
        let r = ApiError::MethodNotAllowed("POST").into_reply();
        assert_eq!(
            (r.status, r.headers[0].0, r.headers[0].1.as_str()),
            (405, "Allow", "POST")
        );
        let r = ApiError::InvalidSignature.into_reply();
        assert_eq!(
            (r.status, r.body),
            (401, br#"{"detail":"invalid signature"}"#.to_vec())
        );
        let r = ApiError::TooManyConnections.into_reply();
        assert_eq!((r.status, r.headers[0].0), (503, "Retry-After"));
    }
}
