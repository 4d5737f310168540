//! Writing one HTTP/1.1 response: the status line, `Date`, `Content-Type`, `Content-Length`,
//! the reply's own headers and the connection's fate, then the body (none for HEAD), in one
//! write. Uses: std only.

use std::io::{self, Write};

/// A response to write: status, headers and body.
pub struct Response<'a> {
    pub status: u16,
    pub content_type: &'a str,
    pub headers: &'a [(&'a str, String)],
    pub body: &'a [u8],
    /// Send `Connection: close` and let the caller close.
    pub close: bool,
    /// HTTP/1.0 peers that asked for keep-alive must be told it is granted.
    pub keep_alive_1_0: bool,
    /// A reply to HEAD: headers only.
    pub head_only: bool,
    /// The `Date` header's value (IMF-fixdate).
    pub date: &'a str,
}

/// Writes the whole response with one `write_all`.
pub fn write_response(w: &mut impl Write, resp: &Response<'_>) -> io::Result<()> {
    use std::fmt::Write as _;
    let mut head = String::with_capacity(256);
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        resp.status,
        reason(resp.status),
        resp.date,
        resp.content_type,
        resp.body.len()
    );
    for (k, v) in resp.headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    if resp.close {
        head.push_str("Connection: close\r\n");
    } else if resp.keep_alive_1_0 {
        head.push_str("Connection: keep-alive\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if !resp.head_only {
        out.extend_from_slice(resp.body);
    }
    w.write_all(&out)?;
    w.flush()
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
        let mut out = Vec::new();
        let extra = [("X-Request-ID", "abc".to_string())];
        let resp = Response {
            status: 200,
            content_type: "application/json",
            headers: &extra,
            body: b"{}",
            close: true,
            keep_alive_1_0: false,
            head_only: false,
            date: "Sun, 06 Nov 1994 08:49:37 GMT",
        };
        write_response(&mut out, &resp).expect("write");
        let text = String::from_utf8(out).expect("ascii");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
        assert!(
            text.contains(
                "\r\nContent-Length: 2\r\nX-Request-ID: abc\r\nConnection: close\r\n\r\n{}"
            )
        );
        assert!(text.ends_with(" GMT\r\nContent-Type: application/json\r\nContent-Length: 2\r\nX-Request-ID: abc\r\nConnection: close\r\n\r\n{}"));
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
