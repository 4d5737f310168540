//! HTTP/1.1 framing: parse one request head and body from the bytes received so far, write one
//! response. No sockets, no clock, no threads: those live in `server`.
//!
//! Strict on purpose, because anything ambiguous is how requests get smuggled or servers get
//! exhausted: a body is framed by exactly one valid `Content-Length`, or by `chunked` alone;
//! both, several lengths, an unparsable length, obsolete line folding or a space before a
//! header's colon are a 400. Every read is capped: the request line (414), the header block and
//! the number of headers (431), chunk-size lines, and the body (413, answered before reading it
//! when the length is declared).
//!
//! RFC 9112 as written: an HTTP/1.1 request without `Host`, or any with two, is a 400; an
//! absolute-form target (`http://host/path`) is read as its path; a chunk size with spaces
//! around it is a 400; an `Expect` other than `100-continue` is a 417.
//!
//! Left out on purpose: TLS, upgrades (WebSocket, h2c), request trailers' contents (read and
//! dropped), `Transfer-Encoding` codings other than `chunked` (501), the asterisk and
//! authority forms of the target.
//! Uses: std only (`response`: `http::Reply`).

mod limits;
mod response;
pub use limits::{Limits, WireError};
pub use response::response;

/// How the body is framed: no body at all is `Length(0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct Head {
    pub method: String,
    /// The request target as sent (`/path?query`).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Header names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    /// Whether the client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
}

/// Reads one request head. Up to a few empty lines before the request line are skipped, as
/// RFC 9112 suggests (some clients send a stray CRLF after a body).
pub fn read_head(r: &mut &[u8], limits: &Limits) -> Result<Head, WireError> {
    let mut line: &[u8] = &[];
    for _ in 0..4 {
        line = read_line(r, limits.max_request_line, WireError::UriTooLong)?;
        if !line.is_empty() {
            break;
        }
    }
    let request_line =
        std::str::from_utf8(line).map_err(|_| WireError::Bad("request line is not UTF-8"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(WireError::Bad("malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(WireError::Bad("malformed method"));
    }
    // Absolute form (`http://host/path`, as sent to proxies) is read as its path. The authority
    // ends at the first `/`, `?` or `#` (RFC 3986), so `http://h?/x` is the path `/`, query `/x`.
    let target = match target.split_once("://") {
        Some((scheme, rest)) if matches!(&*scheme.to_ascii_lowercase(), "http" | "https") => {
            let rest = rest.split('#').next().unwrap_or(""); // a fragment is never sent on
            let path = &rest[rest.find(['/', '?']).unwrap_or(rest.len())..];
            match path.starts_with('/') {
                true => path.to_string(),
                false => format!("/{path}"),
            }
        }
        _ => target.to_string(),
    };
    if !target.starts_with('/') || target.bytes().any(|c| c <= b' ' || c == 0x7f) {
        return Err(WireError::Bad("malformed request target"));
    }
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        v if v.starts_with("HTTP/") => return Err(WireError::Version),
        _ => return Err(WireError::Bad("malformed request line")),
    };
    let headers = read_fields(r, limits, limits.max_head.saturating_sub(line.len()))?;
    let values = |name: &'static str| {
        (headers.iter()).filter_map(move |(k, v)| (k == name).then_some(v.as_str()))
    };
    let lengths: Vec<&str> = values("content-length").collect();
    let codings: Vec<&str> = values("transfer-encoding").collect();
    let framing = match (lengths.as_slice(), codings.as_slice()) {
        ([], []) => Framing::Length(0),
        ([len], []) => Framing::Length(parse_length(len)?),
        ([], [coding]) if coding.eq_ignore_ascii_case("chunked") && minor == 1 => Framing::Chunked,
        ([], _) => return Err(WireError::NotImplemented),
        ([_, _, ..], []) => return Err(WireError::Bad("more than one Content-Length")),
        _ => return Err(WireError::Bad("both Content-Length and Transfer-Encoding")),
    };
    let tokens = |name| {
        values(name)
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
    };
    let mut connection = tokens("connection");
    let keep_alive = match minor {
        1 => !connection.any(|t| t == "close"),
        _ => connection.any(|t| t == "keep-alive"),
    };
    // RFC 9112: an HTTP/1.1 request names exactly one Host; none may name two.
    match (values("host").count(), minor) {
        (0, 1) => return Err(WireError::Bad("missing Host header")),
        (2.., _) => return Err(WireError::Bad("more than one Host header")),
        _ => {}
    }
    if tokens("expect").any(|t| t != "100-continue") {
        return Err(WireError::Expectation);
    }
    // Every token is `100-continue` now, and each Expect header has one at least.
    let expect_continue = minor == 1 && values("expect").next().is_some();
    Ok(Head {
        method: method.to_string(),
        target,
        minor,
        headers,
        framing,
        keep_alive,
        expect_continue,
    })
}

/// Header (or trailer) lines up to the empty line, within `budget` bytes and the count cap.
fn read_fields(
    r: &mut &[u8],
    limits: &Limits,
    mut budget: usize,
) -> Result<Vec<(String, String)>, WireError> {
    let mut fields = Vec::new();
    loop {
        let line = read_line(r, budget, WireError::HeadTooLarge)?;
        budget = budget.saturating_sub(line.len() + 2);
        if line.is_empty() {
            return Ok(fields);
        }
        if fields.len() == limits.max_headers {
            return Err(WireError::HeadTooLarge);
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(WireError::Bad("obsolete header line folding"));
        }
        let text = std::str::from_utf8(line).map_err(|_| WireError::Bad("header is not UTF-8"))?;
        let (name, value) = text
            .split_once(':')
            .ok_or(WireError::Bad("header without a colon"))?;
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(WireError::Bad("malformed header name"));
        }
        if value.bytes().any(|c| (c < b' ' && c != b'\t') || c == 0x7f) {
            return Err(WireError::Bad("control character in a header value"));
        }
        let value = value.trim_matches([' ', '\t']).to_string();
        fields.push((name.to_ascii_lowercase(), value));
    }
}

/// Framing bytes (size lines, extensions, CRLFs, trailers) a chunked body may add, as a multiple
/// of `max_body`: one-byte chunks take five, so any body under the cap is accepted however it is
/// chunked, and a body's wire size (what it costs to receive) stays within nine times the cap.
pub const CHUNK_OVERHEAD: usize = 8;

/// A chunked body decoded as it arrives: each byte is taken once (only a size line or the
/// trailers, within their caps, are looked at again while they are incomplete), so a body in
/// one-byte chunks costs what its bytes cost, not the square of their number.
#[derive(Debug, Default)]
pub struct Chunked {
    pub body: Vec<u8>,
    step: Step,
    /// Framing bytes taken so far.
    overhead: usize,
}

/// Where a chunked body stands.
#[derive(Debug, Default, Clone, Copy)]
enum Step {
    #[default]
    Size,
    /// Bytes of the current chunk still to come.
    Data(u64),
    /// The CRLF after a chunk's data.
    End,
    /// After the last (empty) chunk.
    Trailers,
}

impl Chunked {
    /// Takes from `r` what it can. `Ok(true)` once the body and its trailers are complete;
    /// `Ok(false)` when more bytes are needed (what was taken is out of `r`).
    pub fn feed(&mut self, r: &mut &[u8], limits: &Limits) -> Result<bool, WireError> {
        let bad = WireError::Bad;
        loop {
            let before = r.len();
            let next = match self.step {
                Step::Data(_) if r.is_empty() => return Ok(false),
                Step::Data(left) => {
                    let n = r.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    self.body.extend_from_slice(&r[..n]);
                    *r = &r[n..];
                    self.step = match left - n as u64 {
                        0 => Step::End,
                        left => Step::Data(left),
                    };
                    continue;
                }
                Step::End => match read_line(r, 2, bad("chunk not followed by CRLF")) {
                    Ok([]) => Ok(Step::Size),
                    Ok(_) => Err(bad("chunk not followed by CRLF")),
                    Err(e) => Err(e),
                },
                Step::Size => read_line(r, 1024, bad("chunk size line too long"))
                    .and_then(chunk_size)
                    .and_then(|size| match (self.body.len() as u64).checked_add(size) {
                        Some(n) if n <= limits.max_body as u64 && size > 0 => Ok(Step::Data(size)),
                        Some(_) if size == 0 => Ok(Step::Trailers),
                        _ => Err(WireError::BodyTooLarge),
                    }),
                Step::Trailers => {
                    // Read (within the head caps) and dropped; taken all at once or not at all.
                    let mut rest = *r;
                    return match read_fields(&mut rest, limits, limits.max_head) {
                        Ok(_) => {
                            *r = rest;
                            Ok(true)
                        }
                        Err(WireError::Closed) => Ok(false),
                        Err(e) => Err(e),
                    };
                }
            };
            match next {
                Ok(step) => self.step = step,
                Err(WireError::Closed) => return Ok(false),
                Err(e) => return Err(e),
            }
            self.overhead += before - r.len();
            if self.overhead > limits.max_body.saturating_mul(CHUNK_OVERHEAD) + limits.max_head {
                return Err(WireError::BodyTooLarge);
            }
        }
    }

    /// Feeds the decoder the bytes of `buf` past `from` (the head's) and says where the request
    /// stands; `consumed` counts from the start of `buf`. `limits` are the target's.
    pub fn resume(mut self, head: Head, buf: &[u8], from: usize, limits: &Limits) -> Parse {
        let mut rest = &buf[from..];
        let fed = self.feed(&mut rest, limits);
        let consumed = buf.len() - rest.len();
        match fed {
            Ok(true) => Parse::Done {
                head,
                body: self.body,
                consumed,
            },
            Ok(false) => Parse::Chunking {
                head,
                decoder: self,
                consumed,
            },
            Err(error) => Parse::Failed {
                head: Some(head),
                error,
            },
        }
    }
}

/// A chunk-size line's size: hex digits only, no spaces around them (proxies disagree on those,
/// a smuggling seam), at most 16 of them; an extension after `;` is ignored.
fn chunk_size(line: &[u8]) -> Result<u64, WireError> {
    std::str::from_utf8(line)
        .ok()
        .map(|l| l.split(';').next().unwrap_or(""))
        .filter(|s| !s.is_empty() && s.len() <= 16 && s.bytes().all(|c| c.is_ascii_hexdigit()))
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or(WireError::Bad("malformed chunk size"))
}

/// The outcome of trying to parse one request from the bytes received so far.
#[derive(Debug)]
pub enum Parse {
    /// More bytes are needed. `expect_continue`: the head is complete and asks for
    /// `100 Continue` before sending its body.
    Incomplete { expect_continue: bool },
    /// A whole request; `consumed` bytes of the buffer belong to it (the rest is pipelined).
    Done {
        head: Head,
        body: Vec<u8>,
        consumed: usize,
    },
    /// A chunked body has begun and is not complete: the caller keeps `decoder` and feeds it
    /// what arrives after the `consumed` bytes (the head and the body so far), which it drops.
    Chunking {
        head: Head,
        decoder: Chunked,
        consumed: usize,
    },
    /// The request cannot be served; `head` is set when the head was read before the error.
    Failed {
        head: Option<Head>,
        error: WireError,
    },
}

/// Parses one request from the start of `buf`, which holds everything received and not yet
/// consumed. Running out of bytes is `Incomplete`, never an error, so the caller can read more
/// (or rotate to another connection) and call again. A body over the cap fails as soon as its
/// declared length is known, before it is received.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Parse {
    let mut cursor = buf;
    let head = match read_head(&mut cursor, limits) {
        Ok(head) => head,
        Err(WireError::Closed) => {
            return Parse::Incomplete {
                expect_continue: false,
            };
        }
        Err(error) => return Parse::Failed { head: None, error },
    };
    let limits = &limits.for_target(&head.target);
    let at = buf.len() - cursor.len();
    let n = match head.framing {
        Framing::Chunked => return Chunked::default().resume(head, buf, at, limits),
        Framing::Length(n) if n > limits.max_body as u64 => {
            return Parse::Failed {
                head: Some(head),
                error: WireError::BodyTooLarge,
            };
        }
        Framing::Length(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    // Do not copy a partial body on every call: wait until all of it is here.
    if cursor.len() < n {
        return Parse::Incomplete {
            expect_continue: head.expect_continue,
        };
    }
    let (body, consumed) = (cursor[..n].to_vec(), at + n);
    Parse::Done {
        head,
        body,
        consumed,
    }
}

/// One line without its CRLF (a bare LF is accepted), taken from the front of `r`; a line over
/// `cap` bytes is `too_long`, as soon as that many have arrived without a line end.
fn read_line<'a>(r: &mut &'a [u8], cap: usize, too_long: WireError) -> Result<&'a [u8], WireError> {
    let Some(end) = r.iter().position(|&c| c == b'\n') else {
        return Err(if r.len() > cap + 2 {
            too_long
        } else {
            WireError::Closed
        });
    };
    if end > cap + 1 {
        return Err(too_long);
    }
    let line = &r[..end];
    *r = &r[end + 1..];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.contains(&b'\r') {
        return Err(WireError::Bad("bare CR in a line"));
    }
    Ok(line)
}

/// A strict `Content-Length`: ASCII digits only, no sign, no overflow.
fn parse_length(v: &str) -> Result<u64, WireError> {
    let digits = !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit());
    (v.parse().ok().filter(|_| digits)).ok_or(WireError::Bad("malformed Content-Length"))
}

/// RFC 9110 token characters.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_request_line: 100,
        max_head: 300,
        max_headers: 5,
        max_body: 50,
        large_body: ("", 0),
    };

    fn head(raw: &str) -> Result<Head, WireError> {
        read_head(&mut raw.as_bytes(), &LIMITS)
    }

    fn status(raw: &str) -> Option<u16> {
        head(raw).err().and_then(|e| e.status()).map(|(s, _)| s)
    }

    /// The body of a POST framed by `framing` with the bytes `r`, through `parse_request`;
    /// `Closed` while it is incomplete.
    fn read_body(r: &mut &[u8], framing: Framing, limits: &Limits) -> Result<Vec<u8>, WireError> {
        let header = match framing {
            Framing::Length(0) => String::new(),
            Framing::Length(n) => format!("Content-Length: {n}\r\n"),
            Framing::Chunked => "Transfer-Encoding: chunked\r\n".into(),
        };
        let mut buf = format!("POST / HTTP/1.1\r\nHost: x\r\n{header}\r\n").into_bytes();
        buf.extend_from_slice(r);
        match parse_request(&buf, limits) {
            Parse::Done { body, .. } => Ok(body),
            Parse::Failed { error, .. } => Err(error),
            _ => Err(WireError::Closed),
        }
    }

    #[test]
    fn parses_a_plain_request() {
        let h =
            head("GET /messages?limit=1 HTTP/1.1\r\nHost: x\r\nX-A:  b \r\n\r\n").expect("valid");
        assert_eq!(
            (h.method.as_str(), h.target.as_str(), h.minor),
            ("GET", "/messages?limit=1", 1)
        );
        assert_eq!(h.headers[1], ("x-a".to_string(), "b".to_string()));
        assert_eq!((h.framing, h.keep_alive), (Framing::Length(0), true));
        let h = head("\r\nPOST / HTTP/1.0\nContent-Length: 12\n\n").expect("bare LF, leading CRLF");
        assert_eq!((h.framing, h.keep_alive), (Framing::Length(12), false));
        assert!(
            head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .expect("1.0")
                .keep_alive
        );
        assert!(
            !head("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n")
                .expect("close")
                .keep_alive
        );
        assert!(
            head("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n")
                .expect("expect")
                .expect_continue
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n")
                .expect("te")
                .framing,
            Framing::Chunked
        );
    }

    #[test]
    fn ambiguous_or_oversized_heads_are_refused() {
        for (raw, want) in [
            (
                "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                400,
            ),
            (
                "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            ("GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400),
            (
                "GET / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
                400,
            ),
            (
                "GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501,
            ),
            ("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\n\r\n", 505),
            ("GET /  HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, x\r\n\r\n",
                417,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n",
                417,
            ),
            ("GET ftp://x/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("G(T / HTTP/1.1\r\n\r\n", 400),
            (
                "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\n\r\n",
                431,
            ),
        ] {
            assert_eq!(status(raw), Some(want), "{raw:?}");
        }
        assert_eq!(
            status(&format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(200))),
            Some(414)
        );
        assert_eq!(
            status(&format!("GET / HTTP/1.1\r\nA: {}\r\n\r\n", "a".repeat(400))),
            Some(431)
        );
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\n"),
            None,
            "cut short: closed, nobody to answer"
        );
        let h = head("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n")
            .expect("parses");
        assert!(matches!(
            read_body(&mut &b""[..], h.framing, &LIMITS),
            Err(WireError::BodyTooLarge)
        ));
    }

    #[test]
    fn each_refusal_says_why() {
        let why = |raw: &str| head(raw).err().and_then(|e| e.status()).map(|(_, d)| d);
        assert_eq!(
            why("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Some("more than one Content-Length")
        );
        assert_eq!(why("GET / FOO/1.1\r\n\r\n"), Some("malformed request line"));
        assert_eq!(
            why("GET / HTTP/3\r\n\r\n"),
            Some("HTTP version not supported")
        );
        assert_eq!(why("GET / HTTP/1.1\r\n\r\n"), Some("missing Host header"));
    }

    #[test]
    fn every_refusal_has_its_own_reason() {
        // Each case is otherwise well-formed (it has its Host), so only the named fault can
        // refuse it.
        let why = |raw: &str| match head(raw) {
            Ok(_) => None,
            Err(e) => e.status(),
        };
        for (raw, want) in [
            (" / HTTP/1.1\r\nHost: x\r\n\r\n", (400, "malformed method")),
            (
                "G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
                (400, "malformed method"),
            ),
            (
                "GET x HTTP/1.1\r\nHost: x\r\n\r\n",
                (400, "malformed request target"),
            ),
            (
                "GET /a\u{7f} HTTP/1.1\r\nHost: x\r\n\r\n",
                (400, "malformed request target"),
            ),
            (
                "GET / HTTP/1.1\r\nHost: x\r\n\tA: b\r\n\r\n",
                (400, "obsolete header line folding"),
            ),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nA: b\u{1}\r\n\r\n",
                (400, "control character in a header value"),
            ),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nA: \u{7f}\r\n\r\n",
                (400, "control character in a header value"),
            ),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
                (400, "malformed Content-Length"),
            ),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5a\r\n\r\n",
                (400, "malformed Content-Length"),
            ),
        ] {
            assert_eq!(why(raw), Some(want), "{raw:?}");
        }
        // Accepted: a tab inside a value, keep-alive spelled out, no Expect.
        let h = head("GET / HTTP/1.1\r\nHost: x\r\nA: b\tc\r\nConnection: keep-alive\r\n\r\n")
            .expect("valid");
        assert_eq!((h.keep_alive, h.expect_continue), (true, false));
        assert_eq!(h.headers[1].1, "b\tc");
    }

    #[test]
    fn caps_hold_at_their_exact_bounds() {
        // Request line: 100 bytes is the cap (LIMITS), CRLF not counted.
        let line = |len: usize| format!("GET /{} HTTP/1.1", "a".repeat(len - 14));
        assert_eq!(line(100).len(), 100);
        let ok = format!("{}\r\nHost: x\r\n\r\n", line(100));
        assert!(head(&ok).is_ok());
        assert_eq!(
            status(&format!("{}\r\nHost: x\r\n\r\n", line(101))),
            Some(414)
        );
        // Without its line end yet: up to the cap and its CRLF it waits, past it it is refused.
        assert!(matches!(
            head(&line(100)[..]).map(|_| ()),
            Err(WireError::Closed)
        ));
        assert!(matches!(
            head(&format!("{}\r", line(100))).map(|_| ()),
            Err(WireError::Closed)
        ));
        assert!(matches!(
            head(&format!("{}\r\n", line(101))).map(|_| ()),
            Err(WireError::UriTooLong)
        ));
        let waiting = format!("{}\r", line(101)); // cap + 2 bytes: its CRLF may still come
        assert!(matches!(head(&waiting).map(|_| ()), Err(WireError::Closed)));
        assert!(matches!(
            head(&line(103)).map(|_| ()),
            Err(WireError::UriTooLong)
        ));
        // Head: 300 bytes in all (LIMITS), each line counted with its CRLF.
        let with = |pad: usize| {
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nA: {}\r\n\r\n",
                "a".repeat(pad)
            )
        };
        assert!(
            head(&with(274)).is_ok(),
            "277 bytes of header line: the most that fits"
        );
        assert_eq!(status(&with(275)), Some(431));
        // Body: 50 bytes is the cap (LIMITS), declared or chunked.
        let body = "b".repeat(50);
        let raw = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{body}");
        assert!(
            matches!(parse_request(raw.as_bytes(), &LIMITS), Parse::Done { consumed, .. } if consumed == raw.len())
        );
        let raw = raw.replace("50\r\n", "51\r\n");
        assert!(matches!(
            parse_request(raw.as_bytes(), &LIMITS),
            Parse::Failed {
                error: WireError::BodyTooLarge,
                ..
            }
        ));
        let chunked = |n: usize| format!("{n:x}\r\n{}\r\n0\r\n\r\n", "c".repeat(n));
        assert_eq!(
            read_body(&mut chunked(50).as_bytes(), Framing::Chunked, &LIMITS)
                .map(|b| b.len())
                .ok(),
            Some(50)
        );
        assert!(matches!(
            read_body(&mut chunked(51).as_bytes(), Framing::Chunked, &LIMITS),
            Err(WireError::BodyTooLarge)
        ));
        assert!(matches!(
            read_body(
                &mut "+5\r\nhello\r\n0\r\n\r\n".as_bytes(),
                Framing::Chunked,
                &LIMITS
            ),
            Err(WireError::Bad(_))
        ));
    }

    #[test]
    fn absolute_targets_and_hosts() {
        let h = head("GET http://example.com/messages?q=a HTTP/1.1\r\nHost: example.com\r\n\r\n")
            .expect("absolute form");
        assert_eq!(h.target, "/messages?q=a");
        let h = head("GET HTTPS://example.com HTTP/1.1\r\nHost: x\r\n\r\n").expect("no path");
        assert_eq!(h.target, "/");
        assert!(
            head("GET / HTTP/1.0\r\n\r\n").is_ok(),
            "HTTP/1.0 needs no Host"
        );
    }

    #[test]
    fn absolute_authority_ends_at_the_first_slash_query_or_fragment() {
        let target =
            |t: &str| head(&format!("GET {t} HTTP/1.1\r\nHost: x\r\n\r\n")).map(|h| h.target);
        assert_eq!(
            target("http://gw.internal?/messages?limit=1")
                .ok()
                .as_deref(),
            Some("/?/messages?limit=1")
        );
        assert_eq!(target("http://gw#/messages").ok().as_deref(), Some("/"));
        assert_eq!(target("http://gw/a#b").ok().as_deref(), Some("/a"));
        assert_eq!(target("http://gw?q=1").ok().as_deref(), Some("/?q=1"));
    }

    #[test]
    fn chunk_sizes_cannot_overflow() {
        let read = |raw: &str| read_body(&mut raw.as_bytes(), Framing::Chunked, &LIMITS);
        for raw in [
            "1\r\nx\r\nffffffffffffffff\r\n",
            "ffffffffffffffff\r\n",
            "1\r\nx\r\nfffffffffffffff0\r\n",
        ] {
            assert!(matches!(read(raw), Err(WireError::BodyTooLarge)), "{raw:?}");
        }
    }

    #[test]
    fn chunked_bodies_decode_the_same_however_they_arrive() {
        let body: Vec<u8> = (0..50u8).collect();
        let mut raw = Vec::new();
        for b in &body {
            raw.extend_from_slice(format!("1;e=v\r\n{}\r\n", *b as char).as_bytes());
        }
        raw.extend_from_slice(b"0\r\nT: v\r\n\r\n");
        // Fed one byte at a time, as a trickling client sends it: each byte is taken once.
        let mut decoder = Chunked::default();
        let mut fed = 0;
        for i in 0..raw.len() {
            let mut r = &raw[fed..=i];
            let done = decoder.feed(&mut r, &LIMITS).expect("valid");
            fed = i + 1 - r.len();
            assert_eq!(done, i == raw.len() - 1, "done only at the last byte");
        }
        assert_eq!(decoder.body, body);
        // The framing may be up to CHUNK_OVERHEAD times the body cap (plus the head cap), no more.
        let cap = LIMITS.max_body * CHUNK_OVERHEAD + LIMITS.max_head;
        let mut big = Vec::new();
        while big.len() < 2 * cap {
            big.extend_from_slice(b"0001;eeeeeeeeeeeeeeeeeeeeeeee\r\nx\r\n");
        }
        let mut decoder = Chunked::default();
        assert!(matches!(
            decoder.feed(&mut &big[..], &LIMITS),
            Err(WireError::BodyTooLarge)
        ));
        assert!(
            decoder.body.len() < LIMITS.max_body,
            "refused for its framing, not its body"
        );
        // At the cap exactly (700 bytes: 49 one-byte chunks of 5 framing bytes, 452 bytes of
        // extension, the last chunk's 3), the body is taken; one framing byte more is refused.
        let framed = |ext: usize| {
            let mut raw = format!("1;{}\r\nx\r\n", "e".repeat(ext - 1)).into_bytes();
            raw.extend_from_slice(&b"1\r\nx\r\n".repeat(48));
            raw.extend_from_slice(b"0\r\n\r\n");
            Chunked::default().feed(&mut &raw[..], &LIMITS)
        };
        assert_eq!(cap, 700);
        assert!(matches!(framed(452), Ok(true)), "{:?}", framed(452));
        assert!(matches!(framed(453), Err(WireError::BodyTooLarge)));
    }

    #[test]
    fn bodies_by_length_and_chunks() {
        let read = |framing, raw: &str| read_body(&mut raw.as_bytes(), framing, &LIMITS);
        assert_eq!(
            read(Framing::Length(5), "hello world").expect("5 bytes"),
            b"hello"
        );
        assert!(matches!(
            read(Framing::Length(5), "hel"),
            Err(WireError::Closed)
        ));
        assert!(matches!(
            read(Framing::Length(51), ""),
            Err(WireError::BodyTooLarge)
        ));
        assert_eq!(
            read(
                Framing::Chunked,
                "5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n"
            )
            .expect("chunks"),
            b"hello world"
        );
        assert!(matches!(
            read(Framing::Chunked, "5\r\nhelloXX0\r\n\r\n"),
            Err(WireError::Bad(_))
        ));
        for bad in [
            "zz\r\n",
            " 5\r\nhello\r\n0\r\n\r\n",
            "5 \r\nhello\r\n0\r\n\r\n",
            "5 ;x\r\n",
        ] {
            assert!(
                matches!(read(Framing::Chunked, bad), Err(WireError::Bad(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            read(Framing::Chunked, "40\r\n"),
            Err(WireError::BodyTooLarge)
        ));
        let many = "a\r\n0123456789\r\n".repeat(6);
        assert!(matches!(
            read(Framing::Chunked, &many),
            Err(WireError::BodyTooLarge)
        ));
    }

    #[test]
    fn parse_request_waits_for_whole_requests() {
        let raw = b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhelloGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for cut in [0, 10, 40, 79] {
            assert!(
                matches!(
                    parse_request(&raw[..cut], &LIMITS),
                    Parse::Incomplete { .. }
                ),
                "cut at {cut}"
            );
        }
        assert!(matches!(
            parse_request(&raw[..79], &LIMITS),
            Parse::Incomplete {
                expect_continue: true
            }
        ));
        let Parse::Done {
            head,
            body,
            consumed,
        } = parse_request(raw, &LIMITS)
        else {
            panic!("complete")
        };
        assert_eq!(
            (head.target.as_str(), body.as_slice()),
            ("/webhook", &b"hello"[..])
        );
        assert!(
            matches!(parse_request(&raw[consumed..], &LIMITS), Parse::Done { .. }),
            "pipelined request"
        );
        let big = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000000\r\n\r\n";
        assert!(matches!(
            parse_request(big, &LIMITS),
            Parse::Failed {
                head: Some(_),
                error: WireError::BodyTooLarge
            }
        ));
        let endless = vec![b'a'; 1000];
        assert!(matches!(
            parse_request(&endless, &LIMITS),
            Parse::Failed {
                head: None,
                error: WireError::UriTooLong
            }
        ));
    }
}
