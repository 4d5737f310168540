//! Writing one HTTP/1.1 response: the status line, `Date`, `Content-Type`, `Content-Length`,
//! the reply's own headers and the connection's fate, then the body (none for HEAD), as the
//! bytes of one write. Uses: `http::Reply`.

use crate::http::Reply;
use std::fmt::Write as _;

/// `reply` as bytes: `Connection: close` when `close`, `keep-alive` for an HTTP/1.0 client kept
/// alive (`http_1_0`), headers only for a HEAD (`head_only`); `date` is the `Date` header's value
/// (IMF-fixdate).
pub fn response(
    reply: &Reply,
    close: bool,
    head_only: bool,
    http_1_0: bool,
    date: &str,
) -> Vec<u8> {
    let (status, body) = (reply.status, &reply.body);
    let mut head = String::with_capacity(256);
    let _ = write!(
        head,
        "HTTP/1.1 {status} {}\r\nDate: {date}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        reason(status),
        reply.content_type,
        body.len()
    );
    for (k, v) in &reply.headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    if close {
        head.push_str("Connection: close\r\n");
    } else if http_1_0 {
        head.push_str("Connection: keep-alive\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        414 => "URI Too Long",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        499 => "Client Closed Request",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_framed() {
        let reply = Reply::bytes(200, "application/json", b"{}".to_vec())
            .with("X-Request-ID", "abc".into());
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let text = |close, head_only, http_1_0| {
            String::from_utf8(response(&reply, close, head_only, http_1_0, date)).expect("ascii")
        };
        let head = "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Type: application/json\r\nContent-Length: 2\r\nX-Request-ID: abc\r\n";
        assert_eq!(
            text(true, false, false),
            format!("{head}Connection: close\r\n\r\n{{}}")
        );
        assert_eq!(text(false, false, false), format!("{head}\r\n{{}}"));
        assert_eq!(
            text(false, true, true),
            format!("{head}Connection: keep-alive\r\n\r\n")
        );
        assert_eq!(
            text(true, true, true),
            format!("{head}Connection: close\r\n\r\n")
        );
    }

    #[test]
    fn status_lines_carry_the_rfc_9110_reason_phrases() {
        for (status, phrase) in [
            (100, "Continue"),
            (200, "OK"),
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (408, "Request Timeout"),
            (413, "Content Too Large"),
            (414, "URI Too Long"),
            (417, "Expectation Failed"),
            (422, "Unprocessable Content"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (501, "Not Implemented"),
            (503, "Service Unavailable"),
            (505, "HTTP Version Not Supported"),
        ] {
            assert_eq!(reason(status), phrase, "{status}");
        }
    }
}
