//! Seeded fuzzing of the pure parsers: the body validator, the timestamp parsers, the query
//! parser, the signature header parser, base64, the Standard Webhooks headers, the WhatsApp
//! Cloud API payload and the HTTP framing. No input may panic, and each
//! property below must hold. `make test` runs a short pass; `make fuzz` runs a million inputs per
//! target (FUZZ_ITERATIONS, FUZZ_SEED).

mod support;

use serde_json::{Map, Value, json};
use webhook_api::http::Req;
use webhook_api::store::Message;
use webhook_api::wire::{Limits, Parse, parse_request};
use webhook_api::{messages, signature, ts, webhook};

fn iterations() -> u64 {
    std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn new(salt: u64) -> Rng {
        let seed = std::env::var("FUZZ_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0x5eed);
        Rng((seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    /// A string from an alphabet chosen to hit the interesting cases.
    fn text(&mut self, max: u64) -> String {
        const PIECES: &[&str] = &[
            "0",
            "9",
            "+",
            "-",
            ":",
            "T",
            "Z",
            "z",
            " ",
            ".",
            "%",
            "_",
            "&",
            "=",
            "a",
            "Ä",
            "ß",
            "٣",
            "２",
            "\u{0}",
            "\"",
            "\\",
            "\n",
            "2025",
            "-01-15",
            "T10:00:00",
            "Z",
            "+05:30",
            "%2B",
            "%C3%A4",
            "%FF",
            "sha256=",
            "é",
            "\u{1F600}",
        ];
        (0..self.below(max + 1))
            .map(|_| *self.pick(PIECES))
            .collect()
    }
    /// Flips, inserts or deletes a few bytes.
    fn mutate(&mut self, mut bytes: Vec<u8>) -> Vec<u8> {
        for _ in 0..self.below(4) {
            let at = self.below(bytes.len() as u64 + 1) as usize;
            match self.below(3) {
                0 if at < bytes.len() => bytes[at] = self.next() as u8,
                1 => bytes.insert(at, *self.pick(b"0123456789+-:TZ. \"{}[],\\\r\n\xff%")),
                _ if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {}
            }
        }
        bytes
    }
}

fn random_ts(r: &mut Rng) -> String {
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}Z",
        r.below(10000),
        r.below(14),
        r.below(33),
        r.below(26),
        r.below(62),
        r.below(62),
        match r.below(3) {
            0 => String::new(),
            _ => format!(".{}", &"123456789012"[..r.below(12) as usize]),
        }
    );
    String::from_utf8_lossy(&if r.below(2) == 0 {
        base.clone().into_bytes()
    } else {
        r.mutate(base.into_bytes())
    })
    .into_owned()
}

fn random_value(r: &mut Rng) -> Value {
    match r.below(8) {
        0 => Value::Null,
        1 => json!(r.below(1000)),
        2 => json!([r.text(3)]),
        3 => json!({"x": 1}),
        4 => json!(r.below(2) == 0),
        _ => json!(r.text(12)),
    }
}

fn random_body(r: &mut Rng) -> Vec<u8> {
    let mut m = Map::new();
    let valid = [
        ("message_id", json!(format!("m{}", r.below(100)))),
        ("from", json!(format!("+{}", r.below(1 << 40)))),
        ("to", json!("+14155550100")),
        ("ts", json!(random_ts(r))),
        ("text", json!("x".repeat(r.below(4100) as usize))),
    ];
    for (k, v) in valid {
        match r.below(12) {
            0 => {}
            1 => {
                m.insert(k.into(), random_value(r));
            }
            _ => {
                m.insert(k.into(), v);
            }
        }
    }
    if r.below(4) == 0 {
        m.insert(r.text(5), random_value(r));
    }
    let bytes = Value::Object(m).to_string().into_bytes();
    if r.below(3) == 0 {
        r.mutate(bytes)
    } else {
        bytes
    }
}

/// The instant key of a webhook `ts`, read independently of `ts.rs`: fixed positions, the
/// Gregorian calendar by hand, the fraction padded to nine digits.
fn reference_ts_key(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[b.len() - 1] != b'Z' {
        return None;
    }
    let (y, mo, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (h, mi, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let frac = match s.get(19..b.len() - 1)? {
        "" => String::new(),
        f => {
            let f = f.strip_prefix('.')?;
            if f.is_empty() || f.len() > 9 || !f.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            f.to_string()
        }
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo)
        || d == 0
        || d > days[mo as usize - 1]
        || h > 23
        || mi > 59
        || sec > 59
    {
        return None;
    }
    Some(format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}.{frac:0<9}Z"
    ))
}

/// What the validator must make of a body, read independently: the message and key when every
/// field is valid, `None` otherwise.
fn reference_message(body: &[u8]) -> Option<(Message, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let o = v.as_object()?;
    let string = |k: &str| o.get(k).and_then(Value::as_str);
    let msisdn = |s: &str| {
        (2..=32).contains(&s.len())
            && s.starts_with('+')
            && s[1..].bytes().all(|c| c.is_ascii_digit())
    };
    let id =
        string("message_id").filter(|id| !id.trim().is_empty() && id.chars().count() <= 256)?;
    let from = string("from").filter(|s| msisdn(s))?;
    let to = string("to").filter(|s| msisdn(s))?;
    let ts = string("ts")?;
    let key = reference_ts_key(ts)?;
    let text = match o.get("text") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if t.chars().count() <= 4096 => Some(t.clone()),
        _ => return None,
    };
    let m = Message {
        message_id: id.into(),
        from: from.into(),
        to: to.into(),
        ts: ts.into(),
        text,
    };
    Some((m, key))
}

#[test]
fn fuzz_body_validator() {
    let mut r = Rng::new(1);
    let (mut accepted, mut rejected) = (0u64, 0u64);
    for _ in 0..iterations() {
        let body = random_body(&mut r);
        let got = webhook::parse_body(&body).and_then(|p| webhook::validate(&p));
        // Accepted exactly when the independent reading accepts, and then with equal fields.
        assert_eq!(
            got.as_ref().ok(),
            reference_message(&body).as_ref(),
            "{}",
            String::from_utf8_lossy(&body)
        );
        match got {
            Ok(_) => accepted += 1,
            Err(errors) => {
                rejected += 1;
                // Anything rejected names where: the body, or one of the known fields.
                assert!(!errors.is_empty());
                for e in errors {
                    assert_eq!(e.0["loc"][0], "body", "{e:?}");
                    if let Some(field) = e.0["loc"].get(1) {
                        assert!(
                            ["message_id", "from", "to", "ts", "text"]
                                .contains(&field.as_str().unwrap_or("")),
                            "{e:?}"
                        );
                    }
                    let text = |k: &str| e.0[k].as_str().is_some_and(|t| !t.is_empty());
                    assert!(text("msg") && text("type"), "{e:?}");
                }
            }
        }
    }
    eprintln!(
        "body validator: {} inputs, {accepted} accepted ({}%), {rejected} rejected",
        iterations(),
        accepted * 100 / iterations().max(1)
    );
    assert!(
        accepted * 20 > iterations() && rejected * 20 > iterations(),
        "the generator reaches both outcomes, each at least 5%: {accepted} accepted"
    );
}

#[test]
fn fuzz_timestamps() {
    let mut r = Rng::new(2);
    let mut accepted = 0u64;
    for _ in 0..iterations() {
        let s = random_ts(&mut r);
        assert_eq!(ts::parse_message_ts(&s), reference_ts_key(&s), "{s:?}");
        if let Some(key) = ts::parse_message_ts(&s) {
            accepted += 1;
            assert_eq!(key.len(), 30, "{s} -> {key}");
            // A message ts is also a valid `since`, naming the same instant.
            assert_eq!(ts::parse_since(&s), Some(key));
        }
        let since = if r.below(2) == 0 {
            {
                let offsets = ["+05:30", " 01:00", "-23:59", "z", ""];
                let offset = *r.pick(&offsets);
                s.replace('Z', offset)
            }
        } else {
            r.text(30)
        };
        if let Some(key) = ts::parse_since(&since) {
            assert!(key.len() == 30 || key.len() == 31, "{since} -> {key}");
        }
    }
    eprintln!("timestamps: {} inputs, {accepted} accepted", iterations());
    assert!(accepted > 0);
}

#[test]
fn fuzz_query_strings() {
    let mut r = Rng::new(3);
    for _ in 0..iterations() {
        let names = ["limit", "offset", "from", "since", "q", "x"];
        let query: String = (0..r.below(5))
            .map(|_| format!("{}={}", r.pick(&names), r.text(8)))
            .collect::<Vec<_>>()
            .join(*r.pick(&["&", "&&", "=", ""]));
        let req = Req {
            query,
            ..Req::default()
        };
        match messages::parse_filter(&req) {
            Ok(f) => {
                assert!((1..=100).contains(&f.limit));
                assert!(f.from.as_ref().is_none_or(|v| !v.is_empty()));
            }
            Err(errors) => {
                for e in errors {
                    assert_eq!(e.0["loc"][0], "query");
                    assert!(
                        ["limit", "offset", "since"]
                            .contains(&e.0["loc"][1].as_str().unwrap_or("")),
                        "{e:?}"
                    );
                }
            }
        }
    }
}

/// The 32 bytes a header names, read independently: trimmed, an optional `sha256=` in any case,
/// then 64 hex digits.
fn reference_signature(header: &str) -> Option<Vec<u8>> {
    let h = header.trim();
    let hex = if h.len() >= 7 && h.is_char_boundary(7) && h[..7].eq_ignore_ascii_case("sha256=") {
        &h[7..]
    } else {
        h
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()
        .filter(|_| !hex.contains('+') && !hex.contains('-'))
}

#[test]
fn fuzz_signature_headers() {
    let mut r = Rng::new(4);
    let (mut parsed, mut verified) = (0u64, 0u64);
    for _ in 0..iterations() {
        let body = r.text(20).into_bytes();
        let right = support::sign("k", &body);
        // Mostly well-formed headers (a right or a random signature, each digit in either case,
        // every prefix spelling, spaces around), then some broken ones.
        let digits: String = match r.below(3) {
            0 => right.clone(),
            1 => (0..64)
                .map(|_| *r.pick(&['0', '9', 'a', 'f', 'c', '5']))
                .collect(),
            _ => {
                let mut d: Vec<char> = right.chars().collect();
                let at = r.below(64) as usize;
                d[at] = if d[at] == '0' { '1' } else { '0' };
                d.into_iter().collect()
            }
        };
        let digits: String = digits
            .chars()
            .map(|c| {
                if r.below(2) == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        let mut header = format!(
            "{}{}{digits}{}",
            r.pick(&["", " ", "\t"]),
            r.pick(&["", "sha256=", "SHA256=", "Sha256=", "md5=", "sha256:"]),
            r.pick(&["", " "])
        );
        match r.below(5) {
            0 => header = String::from_utf8_lossy(&r.mutate(header.into_bytes())).into_owned(),
            1 => header = r.text(70),
            _ => {}
        }
        let got = signature::parse_hex(&header);
        assert_eq!(
            got.map(|b| b.to_vec()),
            reference_signature(&header),
            "{header:?}"
        );
        parsed += u64::from(got.is_some());
        // Verified exactly when the header names the right bytes.
        let want = reference_signature(&header)
            .is_some_and(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>() == right);
        assert_eq!(
            signature::Claim::hex(&header).is_some_and(|c| c.verify(&["k"], &body)),
            want,
            "{header:?}"
        );
        verified += u64::from(want);
    }
    eprintln!(
        "signature headers: {} inputs, {parsed} parsed, {verified} verified",
        iterations()
    );
    assert!(parsed * 4 > iterations() && verified * 10 > iterations());
}

/// A simple, well-formed request built from random parts, and what a correct parser reads from
/// it: (method, target, minor version, headers as (lower-case name, value), body).
type Expected = (String, String, u8, Vec<(String, String)>, Vec<u8>);

fn simple_request(r: &mut Rng) -> (Vec<u8>, Expected) {
    let method = r
        .pick(&["GET", "POST", "PUT", "DELETE", "PATCH"])
        .to_string();
    let target: String = std::iter::once('/')
        .chain((0..r.below(20)).map(|_| *r.pick(&['a', 'z', '0', '/', '?', '=', '&', '%', '-'])))
        .collect();
    let minor = r.below(2) as u8;
    let mut headers: Vec<(String, String)> = (0..r.below(6))
        .map(|_| {
            let name = r.pick(&["Accept", "X-Signature", "content-type", "X-A"]);
            let value: String = (0..1 + r.below(12))
                .map(|_| *r.pick(&['a', 'Z', '0', ' ', '=', ';', '/', '"']))
                .collect();
            (name.to_string(), value.trim().to_string())
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    // HTTP/1.1 needs exactly one Host, HTTP/1.0 at most one.
    if minor == 1 || r.below(2) == 0 {
        headers.insert(0, ("Host".to_string(), "h".to_string()));
    }
    let body: Vec<u8> = (0..r.below(40)).map(|_| *r.pick(b"{}\"a:1,\r\n")).collect();
    let chunked = minor == 1 && r.below(3) == 0;
    let mut raw = format!("{method} {target} HTTP/1.{minor}\r\n");
    for (k, v) in &headers {
        raw += &format!("{k}: {v}\r\n");
    }
    let mut framed_body = Vec::new();
    if chunked {
        raw += "Transfer-Encoding: chunked\r\n\r\n";
        for part in body.chunks(1 + r.below(15) as usize) {
            framed_body.extend(format!("{:x}\r\n", part.len()).bytes());
            framed_body.extend(part);
            framed_body.extend(b"\r\n");
        }
        framed_body.extend(b"0\r\n\r\n");
        headers.push(("transfer-encoding".into(), "chunked".into()));
    } else if !body.is_empty() || r.below(2) == 0 {
        raw += &format!("Content-Length: {}\r\n\r\n", body.len());
        framed_body.extend(&body);
        headers.push(("content-length".into(), body.len().to_string()));
    } else {
        raw += "\r\n";
    }
    let mut bytes = raw.into_bytes();
    bytes.extend(framed_body);
    let headers = headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    (bytes, (method, target, minor, headers, body))
}

#[test]
fn fuzz_http_framing() {
    let mut r = Rng::new(5);
    let limits = Limits {
        max_request_line: 256,
        max_head: 1024,
        max_headers: 20,
        max_body: 512,
        large_body: ("", 0),
    };
    let read = |raw: &[u8]| match parse_request(raw, &limits) {
        Parse::Done {
            head,
            body,
            consumed,
        } => Ok((
            (head.method, head.target, head.minor, head.headers, body),
            consumed,
        )),
        Parse::Failed { error, .. } => Err(error.status().map(|(s, _)| s)),
        Parse::Incomplete { .. } | Parse::Chunking { .. } => Err(None),
    };
    let (mut done, mut failed) = (0u64, 0u64);
    for _ in 0..iterations() {
        let (raw, want) = simple_request(&mut r);
        // The whole request reads back as built; pipelined, it ends where the next begins.
        assert_eq!(
            read(&raw),
            Ok((want.clone(), raw.len())),
            "{}",
            String::from_utf8_lossy(&raw)
        );
        let (next, _) = simple_request(&mut r);
        let both = [raw.clone(), next].concat();
        assert_eq!(read(&both), Ok((want.clone(), raw.len())));
        // Any strict prefix waits for more bytes.
        let cut = r.below(raw.len() as u64) as usize;
        assert!(
            matches!(
                parse_request(&raw[..cut], &limits),
                Parse::Incomplete { .. } | Parse::Chunking { .. }
            ),
            "prefix of {cut} bytes"
        );
        // One known fault spliced into the head gives its own status.
        let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 2;
        let line_end = raw.windows(2).position(|w| w == b"\r\n").expect("line");
        let framed = want
            .3
            .iter()
            .any(|(k, _)| k == "content-length" || k == "transfer-encoding");
        let (fault, status, framing): (Vec<u8>, u16, bool) = match r.below(8) {
            0 => (
                b"Content-Length: 1\r\nContent-Length: 2\r\n".to_vec(),
                400,
                true,
            ),
            1 => (
                b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n".to_vec(),
                400,
                true,
            ),
            2 => (b"Bad Name: x\r\n".to_vec(), 400, false),
            3 => (b" folded\r\n".to_vec(), 400, false),
            4 => (b"Transfer-Encoding: gzip\r\n".to_vec(), 501, true),
            5 => ("X-Many: 1\r\n".repeat(21).into_bytes(), 431, false),
            6 => (b"Content-Length: 513\r\n".to_vec(), 413, true),
            _ => (
                format!("X-Long: {}\r\n", "a".repeat(1100)).into_bytes(),
                431,
                false,
            ),
        };
        // A folded line goes right after the first header (skipped when there is none); every
        // other fault at the end of the head.
        let folded = fault[0] == b' ';
        if !folded || head_end > line_end + 2 {
            let at = if folded {
                line_end
                    + 2
                    + raw[line_end + 2..]
                        .windows(2)
                        .position(|w| w == b"\r\n")
                        .expect("header end")
                    + 2
            } else {
                head_end
            };
            let mut bad = raw.clone();
            bad.splice(at..at, fault.iter().copied());
            let got = read(&bad).map(|_| ()).expect_err("a fault is refused");
            if framing && framed {
                // Two framings meet: any refusal of the framing is right, never a success.
                assert!(matches!(got, Some(400 | 413 | 501)), "{got:?}");
            } else {
                assert_eq!(got, Some(status), "{}", String::from_utf8_lossy(&bad));
            }
        }
        // Random damage: never a panic, and any success stays within the caps.
        match parse_request(&r.mutate(raw), &limits) {
            Parse::Done { body, consumed, .. } => {
                done += 1;
                assert!(consumed <= both.len() && body.len() <= limits.max_body);
            }
            Parse::Failed { error, .. } => {
                failed += 1;
                assert!(error.status().is_some(), "{error:?}");
            }
            Parse::Incomplete { .. } | Parse::Chunking { .. } => {}
        }
    }
    // Bad versions and an overlong request line, once each.
    for (line, status) in [("GET / HTTP/2.0", 505), ("GET / HTTP/1.2", 505)] {
        assert_eq!(
            read(format!("{line}\r\n\r\n").as_bytes()).map(|_| ()),
            Err(Some(status))
        );
    }
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(300));
    assert_eq!(read(long.as_bytes()).map(|_| ()), Err(Some(414)));
    eprintln!(
        "framing: {} requests read back exactly; damaged: {done} read, {failed} refused",
        iterations()
    );
    assert!(done > 0 && failed > 0);
}

/// Standard base64 with padding, and its strict reading, written here apart from the service's.
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn reference_b64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            let c = B64[(n >> (18 - 6 * i) & 63) as usize];
            out.push(if i <= chunk.len() { c as char } else { '=' });
        }
    }
    out
}

#[test]
fn fuzz_base64() {
    let mut r = Rng::new(5);
    let (mut decoded, mut refused) = (0u64, 0u64);
    for _ in 0..iterations() {
        let bytes: Vec<u8> = (0..r.below(40)).map(|_| r.next() as u8).collect();
        let padded = reference_b64(&bytes);
        // Every encoding decodes back, padded or not.
        assert_eq!(
            signature::base64(&padded).as_deref(),
            Some(&bytes[..]),
            "{padded}"
        );
        let bare = padded.trim_end_matches('=');
        assert_eq!(
            signature::base64(bare).as_deref(),
            Some(&bytes[..]),
            "{bare}"
        );
        // Damaged: never a panic; decoded only when the text is still of the grammar, and then
        // to as many bytes as its digits carry.
        let s = String::from_utf8_lossy(&r.mutate(padded.into_bytes())).into_owned();
        let body = s.trim_end_matches('=');
        let pad = s.len() - body.len();
        let grammar = body.bytes().all(|c| B64.contains(&c))
            && body.len() % 4 != 1
            && pad <= 2
            && (pad == 0 || s.len().is_multiple_of(4));
        match signature::base64(&s) {
            Some(out) => {
                decoded += 1;
                assert!(grammar, "{s:?}");
                assert_eq!(out.len(), body.len() * 3 / 4, "{s:?}");
                // Re-encoded, the same digits (but for unused low bits of the last one).
                let again = reference_b64(&out);
                let again = again.trim_end_matches('=');
                assert_eq!(again.len(), body.len(), "{s:?}");
                assert_eq!(
                    again[..body.len().saturating_sub(1)],
                    body[..body.len().saturating_sub(1)]
                );
            }
            None => {
                refused += 1;
                assert!(!grammar, "{s:?}");
            }
        }
    }
    eprintln!(
        "base64: {} inputs, damaged: {decoded} decoded, {refused} refused",
        iterations()
    );
    assert!(decoded > 0 && refused > 0);
}

#[test]
fn fuzz_standard_webhooks_headers() {
    use hmac::{Hmac, Mac};
    let mut r = Rng::new(6);
    let (now, key) = (1_700_000_000i64, [7u8; 24]);
    let secret = format!("whsec_{}", reference_b64(&key));
    let mut verified = 0u64;
    for _ in 0..iterations() {
        let body = r.text(20).into_bytes();
        let id = format!("msg_{}", r.below(1000));
        let ts = now + r.below(700) as i64 - 350;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(&body);
        let right = mac.finalize().into_bytes().to_vec();
        let good = format!("v1,{}", reference_b64(&right));
        // A list of entries: the right one or not, others around it, then some damage.
        let mut entries: Vec<String> = (0..r.below(4))
            .map(|_| match r.below(4) {
                0 => format!("v1,{}", reference_b64(&[r.next() as u8; 32])),
                1 => format!("v1a,{}", reference_b64(&right)),
                2 => format!("v1,{}", &good[3..3 + r.below(44) as usize]),
                _ => r.text(10),
            })
            .collect();
        if r.below(2) == 0 {
            entries.insert(r.below(entries.len() as u64 + 1) as usize, good.clone());
        }
        let mut header = entries.join(" ");
        if r.below(4) == 0 {
            header = String::from_utf8_lossy(&r.mutate(header.into_bytes())).into_owned();
        }
        let mut stamp = ts.to_string();
        if r.below(5) == 0 {
            stamp = String::from_utf8_lossy(&r.mutate(stamp.into_bytes())).into_owned();
        }
        let claim = signature::Claim::standard([Some(&id), Some(&stamp), Some(&header)], now, 300);
        let got = claim.is_some_and(|c| c.verify(&[&secret], &body));
        // Verified exactly when the timestamp is integer seconds within 300 s and some entry
        // is `v1,` and the base64 of the 32 right bytes.
        let in_time = stamp.bytes().all(|c| c.is_ascii_digit())
            && stamp
                .parse::<i64>()
                .is_ok_and(|t| t == ts && (t - now).abs() <= 300);
        let named = header
            .split_ascii_whitespace()
            .any(|e| e.strip_prefix("v1,").and_then(signature::base64).as_ref() == Some(&right));
        assert_eq!(got, in_time && named, "{stamp:?} {header:?}");
        verified += u64::from(got);
    }
    eprintln!(
        "standard webhooks: {} inputs, {verified} verified",
        iterations()
    );
    assert!(verified * 10 > iterations() && verified * 10 < iterations() * 9);
}

#[test]
fn fuzz_cloud_api_payloads() {
    use webhook_api::whatsapp;
    let mut r = Rng::new(7);
    let (mut accepted, mut refused) = (0u64, 0u64);
    for _ in 0..iterations() {
        let message = |r: &mut Rng, i: u64| {
            let mut m = json!({"from": format!("{}", r.below(1 << 40)), "id": format!("wamid.{}", r.below(50)),
                "timestamp": format!("{}", 1_700_000_000 + r.below(1000)), "type": "text", "text": {"body": r.text(8)}});
            match r.below(6) {
                0 => m["type"] = json!("image"),
                1 => m[*r.pick(&["from", "id", "timestamp", "type"])] = random_value(r),
                2 => m["timestamp"] = json!(r.text(6)),
                _ => {}
            }
            m["n"] = json!(i);
            m
        };
        let n_messages = r.below(4);
        let messages: Vec<Value> = (0..n_messages).map(|i| message(&mut r, i)).collect();
        let statuses: Vec<Value> = (0..r.below(3))
            .map(|_| json!({"id": "wamid.s", "status": *r.pick(&["sent", "read", "failed", "deleted"])}))
            .collect();
        let mut value = json!({"metadata": {"display_phone_number": "15550783881"}, "messages": messages, "statuses": statuses});
        if r.below(8) == 0 {
            value["metadata"] = random_value(&mut r);
        }
        let payload = json!({"object": if r.below(10) == 0 { "page" } else { "whatsapp_business_account" },
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]});
        let mut body = payload.to_string().into_bytes();
        if r.below(6) == 0 {
            body = r.mutate(body);
        }
        // Never a panic; accepted, every message is a row of its fields; refused, loc says where.
        match whatsapp::parse(&body) {
            Ok((rows, statuses)) => {
                accepted += 1;
                let sent: Value = serde_json::from_slice(&body).expect("accepted is JSON");
                let change = &sent["entry"][0]["changes"][0];
                // A change of another field is acknowledged and ignored.
                let value = match change["field"] == "messages" {
                    true => change["value"].clone(),
                    false => Value::Null,
                };
                let value = &value;
                let messages = value["messages"].as_array().map_or(&[][..], Vec::as_slice);
                assert_eq!(rows.len(), messages.len());
                for ((m, key, kept), sent) in rows.iter().zip(messages) {
                    assert_eq!(m.message_id, sent["id"].as_str().expect("id"));
                    assert_eq!(m.from, format!("+{}", sent["from"].as_str().expect("from")));
                    assert_eq!(Some(key.clone()), ts::parse_message_ts(&m.ts));
                    let kept = kept.as_ref().expect("kept");
                    assert_eq!(
                        serde_json::from_str::<Value>(&kept.raw).ok().as_ref(),
                        Some(sent)
                    );
                    let text = (kept.kind == "text")
                        .then(|| sent["text"]["body"].as_str())
                        .flatten();
                    assert_eq!(m.text.as_deref(), text);
                }
                let n = value["statuses"].as_array().map_or(0, Vec::len) as u64;
                assert_eq!(
                    statuses.iter().sum::<u64>(),
                    n,
                    "{}",
                    String::from_utf8_lossy(&body)
                );
            }
            Err(errors) => {
                refused += 1;
                assert!(!errors.is_empty());
                assert!(errors.iter().all(|e| e.0["loc"][0] == "body"
                    && e.0["msg"].as_str().is_some_and(|m| !m.is_empty())));
            }
        }
    }
    eprintln!(
        "cloud api payloads: {} inputs, {accepted} accepted, {refused} refused",
        iterations()
    );
    assert!(accepted * 10 > iterations() && refused * 10 > iterations());
}
