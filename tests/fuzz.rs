//! Seeded fuzzing of the pure parsers: the body validator, the timestamp parsers, the query
//! parser, the signature header parser and the HTTP framing. No input may panic, and each
//! property below must hold. `make test` runs a short pass; `make fuzz` runs a million inputs per
//! target (FUZZ_ITERATIONS, FUZZ_SEED).

use serde_json::{Map, Value, json};
use webhook_api::http::Req;
use webhook_api::wire::{Limits, Parse, parse_request};
use webhook_api::{messages, ts, webhook};

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
        match r.below(6) {
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

#[test]
fn fuzz_body_validator() {
    let mut r = Rng::new(1);
    let (mut accepted, mut rejected) = (0u64, 0u64);
    for _ in 0..iterations() {
        let body = random_body(&mut r);
        match webhook::parse_body(&body).and_then(|p| webhook::validate(&p)) {
            Ok((m, key)) => {
                accepted += 1;
                // Anything accepted re-serialises to an equal message.
                let again = json!({"message_id": m.message_id, "from": m.from, "to": m.to, "ts": m.ts, "text": m.text});
                let reparsed =
                    webhook::validate(again.as_object().expect("object")).expect("re-validates");
                assert_eq!(reparsed, (m.clone(), key.clone()));
                assert!(
                    m.text
                        .as_ref()
                        .is_none_or(|t| t.chars().count() <= webhook::MAX_TEXT_CHARS)
                );
                assert_eq!(ts::parse_message_ts(&m.ts), Some(key));
            }
            Err(errors) => {
                rejected += 1;
                // Anything rejected names where: the body, or one of the known fields.
                assert!(!errors.is_empty());
                for e in errors {
                    assert_eq!(e.loc[0], "body", "{e:?}");
                    if let Some(field) = e.loc.get(1) {
                        assert!(
                            ["message_id", "from", "to", "ts", "text"]
                                .contains(&field.as_str().unwrap_or("")),
                            "{e:?}"
                        );
                    }
                    assert!(!e.msg.is_empty() && !e.kind.is_empty());
                }
            }
        }
    }
    eprintln!(
        "body validator: {} inputs, {accepted} accepted, {rejected} rejected",
        iterations()
    );
    assert!(
        accepted > 0 && rejected > 0,
        "the generator reaches both outcomes"
    );
}

#[test]
fn fuzz_timestamps() {
    let mut r = Rng::new(2);
    let mut accepted = 0u64;
    for _ in 0..iterations() {
        let s = random_ts(&mut r);
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
                    assert_eq!(e.loc[0], "query");
                    assert!(
                        ["limit", "offset", "since"].contains(&e.loc[1].as_str().unwrap_or("")),
                        "{e:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn fuzz_signature_headers() {
    let mut r = Rng::new(4);
    for _ in 0..iterations() {
        let hex: String = (0..*r.pick(&[62u64, 63, 64, 65]))
            .map(|_| *r.pick(&['a', 'F', '0', '9', 'g', ' ']))
            .collect();
        let header = format!(
            "{}{}",
            r.pick(&["", "sha256=", "SHA256=", "md5=", " "]),
            if r.below(2) == 0 { hex } else { r.text(70) }
        );
        if let Some(bytes) = webhook::parse_signature(&header) {
            let lower: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let given = header.trim().to_ascii_lowercase();
            assert!(
                given.ends_with(&lower) && given.len() - lower.len() <= 7,
                "{header:?}"
            );
        }
        assert!(
            !webhook::verify(&[b"k"], Some(&header), b"body")
                || header.contains(&webhook::sign_hex(b"k", b"body"))
        );
    }
}

#[test]
fn fuzz_http_framing() {
    let mut r = Rng::new(5);
    let limits = Limits {
        max_request_line: 256,
        max_head: 1024,
        max_headers: 20,
        max_body: 512,
    };
    let seeds: [&[u8]; 4] = [
        b"POST /webhook HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /webhook HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"GET /messages?limit=5 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"GET / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    ];
    let (mut done, mut failed) = (0u64, 0u64);
    for _ in 0..iterations() {
        let seed = r.pick(&seeds).to_vec();
        let raw = r.mutate(seed);
        match parse_request(&raw, &limits) {
            Parse::Done { body, consumed, .. } => {
                done += 1;
                assert!(consumed <= raw.len() && body.len() <= limits.max_body);
            }
            Parse::Failed { error, .. } => {
                failed += 1;
                assert!(
                    error.status().is_some(),
                    "a parse failure always has an answer: {error:?}"
                );
            }
            Parse::Incomplete { .. } => {}
        }
    }
    assert!(done > 0 && failed > 0);
}
