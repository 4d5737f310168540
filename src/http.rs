//! Our own request and reply values, the API's errors, and the one place errors become HTTP.
//!
//! Nothing here knows the transport: `server` turns whatever arrives on the socket into a [`Req`]
//! and writes a [`Reply`] back. Handlers take a `Req` and return `Result<Reply, ApiError>`, so a
//! test can build a request in one line. A `Reply` also carries the facts the access log and the
//! metrics need (webhook result, message id); handlers never log or count themselves.

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
}

impl Req {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Query parameters, split on `&` and `=`, `+` read as a space, percent-decoded. Invalid UTF-8
    /// after decoding is replaced with U+FFFD (such a value then simply matches nothing).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }

    /// The last value of a query parameter (FastAPI's rule for repeated scalars); an empty value
    /// counts as absent.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty())
    }
}

/// `application/x-www-form-urlencoded` decoding of one component. A `%` not followed by two hex
/// digits is kept as is, as browsers and Python do.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let digit = |j: usize| b.get(j).copied().and_then(hex_val);
                match (digit(i + 1), digit(i + 2)) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi * 16 + lo);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The value of one hex digit, either case.
pub fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// What the access log and the metrics learn from a reply.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    /// The /webhook outcome (`created`, `duplicate`, ... ); `None` for other routes.
    pub result: Option<&'static str>,
    /// The message id of a webhook payload, when the payload had one.
    pub message_id: Option<String>,
}

/// One HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Extra headers (`Allow` on a 405).
    pub headers: Vec<(&'static str, String)>,
    pub facts: Facts,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply::bytes(status, "application/json", body.to_string().into_bytes())
    }

    /// A reply whose body is already serialised (the metrics text, the OpenAPI document).
    pub fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type,
            body,
            headers: Vec::new(),
            facts: Facts::default(),
        }
    }

    /// The webhook outcome, for the log and the metrics.
    pub fn with_result(mut self, result: &'static str) -> Reply {
        self.facts.result = Some(result);
        self
    }
}

/// One failing field in a 422, FastAPI (pydantic v2) style.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// Machine-readable kind: `missing`, `string_type`, `json_invalid`, `int_parsing`, ...
    pub kind: &'static str,
    /// Where: `["body","from"]`, `["query","limit"]`, `["body"]`.
    pub loc: Vec<Value>,
    pub msg: String,
    /// The offending value (what FastAPI echoes back).
    pub input: Value,
    /// Constraint details, e.g. `{"max_length":4096}`.
    pub ctx: Option<Value>,
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
    /// `WEBHOOK_SECRET` is unset or empty, so no webhook can be verified.
    NotConfigured,
    /// `X-Signature` is missing, malformed or wrong.
    InvalidSignature,
    /// The body or the query failed validation; one entry per failing field.
    Validation(Vec<FieldError>),
    /// SQLite failed (disk full, locked, file gone): the sender should retry.
    StorageUnavailable,
    /// A handler panicked.
    Internal,
    /// The request could not be read as HTTP (malformed, too large a head, timed out): the
    /// status and a short reason from the transport.
    Protocol(u16, &'static str),
}

impl ApiError {
    pub fn into_reply(self) -> Reply {
        let detail = |status, text: &str| Reply::json(status, &json!({ "detail": text }));
        match self {
            ApiError::NotFound => detail(404, "Not Found"),
            ApiError::MethodNotAllowed(allow) => {
                let mut r = detail(405, "Method Not Allowed");
                r.headers.push(("Allow", allow.to_string()));
                r
            }
            ApiError::PayloadTooLarge => {
                detail(413, "payload too large").with_result("payload_too_large")
            }
            ApiError::NotConfigured => {
                detail(503, "WEBHOOK_SECRET not configured").with_result("not_configured")
            }
            ApiError::InvalidSignature => {
                detail(401, "invalid signature").with_result("invalid_signature")
            }
            ApiError::Validation(errors) => {
                let list: Vec<Value> = errors
                    .into_iter()
                    .map(|e| {
                        let mut v =
                            json!({ "type": e.kind, "loc": e.loc, "msg": e.msg, "input": e.input });
                        if let Some(ctx) = e.ctx {
                            v["ctx"] = ctx;
                        }
                        v
                    })
                    .collect();
                Reply::json(422, &json!({ "detail": list })).with_result("validation_error")
            }
            ApiError::StorageUnavailable => {
                detail(503, "storage unavailable").with_result("storage_error")
            }
            ApiError::Internal => detail(500, "internal error"),
            ApiError::Protocol(status, why) => detail(status, why),
        }
    }
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
        assert_eq!(r.body, br#"{"detail":"invalid signature"}"#);
        assert_eq!(r.facts.result, Some("invalid_signature"));
    }
}
