//! What one request may send (`Limits`, one path allowed a larger body) and why one could not
//! be read (`WireError`, with the status the client is told). Uses: std only.

/// Caps on what one request may send.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes in the request line, CRLF included.
    pub max_request_line: usize,
    /// Bytes in the request line plus all header lines.
    pub max_head: usize,
    /// Number of header lines.
    pub max_headers: usize,
    /// Bytes of body (declared or, for chunked, received).
    pub max_body: usize,
    /// One path with its own body cap; `("", 0)`: none.
    pub large_body: (&'static str, usize),
}

impl Limits {
    /// The caps for a request to `target`: the large-body path's own body cap for that path.
    pub fn for_target(&self, target: &str) -> Limits {
        let large = target.split('?').next() == Some(self.large_body.0);
        let max_body = if large {
            self.large_body.1
        } else {
            self.max_body
        };
        Limits { max_body, ..*self }
    }
}

/// Why a request could not be read. `status()` is what the client is told, if anything.
#[derive(Debug)]
pub enum WireError {
    /// The input ended (the buffer holds no more, or the peer closed): nobody to answer yet.
    /// Timeouts are not decided here: `server` owns the clock and answers 408 itself.
    Closed,
    /// Malformed or ambiguous framing: 400.
    Bad(&'static str),
    /// The request line is over its cap: 414.
    UriTooLong,
    /// The header block or header count is over its cap: 431.
    HeadTooLarge,
    /// The body is over its cap: 413.
    BodyTooLarge,
    /// A transfer coding we do not implement: 501.
    NotImplemented,
    /// Not HTTP/1.0 or HTTP/1.1: 505.
    Version,
    /// An `Expect` other than `100-continue`: 417.
    Expectation,
}

impl WireError {
    /// The status to answer with and a short detail; `None` when there is nobody to answer.
    pub fn status(&self) -> Option<(u16, &'static str)> {
        Some(match self {
            WireError::Closed => return None,
            WireError::Bad(why) => (400, why),
            WireError::UriTooLong => (414, "request line too long"),
            WireError::HeadTooLarge => (431, "request header fields too large"),
            WireError::BodyTooLarge => (413, "payload too large"),
            WireError::NotImplemented => (501, "transfer coding not implemented"),
            WireError::Version => (505, "HTTP version not supported"),
            WireError::Expectation => (417, "expectation failed"),
        })
    }
}
