//! Values, not presence: each test builds a state it knows (a clock it reads itself, a count of
//! connections it holds, a file whose size it can stat) and checks the number the service reports
//! or enforces against it, at the edges of every documented cap and range in its own unit.

mod support;

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{Resp, SECRET, TestServer, parse_response, request, sign};

/// A test server with the test secret and these variables.
fn server(vars: &[(&str, &str)]) -> TestServer {
    let mut all = vec![("WEBHOOK_SECRET", SECRET)];
    all.extend_from_slice(vars);
    TestServer::start_in(support::temp_dir(), &all)
}

/// Percent-encodes every byte.
fn encode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Reads one whole response (Content-Length framed) from a kept-alive connection.
fn read_response(mut s: &TcpStream) -> Resp {
    let (mut got, mut chunk) = (Vec::new(), [0u8; 4096]);
    loop {
        if let Some(r) = parse_response(&got) {
            let len = r.header("content-length").and_then(|v| v.parse().ok());
            if len == Some(r.body.len()) {
                return r;
            }
        }
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "closed before a whole response");
        got.extend_from_slice(&chunk[..n]);
    }
}

/// A connection that has sent `raw` and stays open.
fn hold(addr: std::net::SocketAddr, raw: &[u8]) -> TcpStream {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.write_all(raw).expect("send");
    c
}

/// Waits until the peer closes `s` (at most `within`), returning how long it took from `since`.
fn closed_after(s: &mut TcpStream, since: Instant, within: Duration) -> (Duration, Vec<u8>) {
    s.set_read_timeout(Some(within)).expect("timeout");
    let mut rest = Vec::new();
    let ended = s.read_to_end(&mut rest);
    assert!(
        ended.is_ok(),
        "still open {within:?} later ({ended:?}): the timeout was not applied"
    );
    (since.elapsed(), rest)
}

/// `elapsed` is within [`value`, `value` + `slack`].
fn within(what: &str, elapsed: Duration, value: u64, slack: u64) {
    let ms = elapsed.as_millis() as u64;
    assert!(ms >= value, "{what}: after {ms} ms, before its {value} ms");
    assert!(
        ms <= value + slack,
        "{what}: after {ms} ms, much later than its {value} ms"
    );
}

const SLACK_MS: u64 = 1500;

/// Stores `n` messages, each a text of 4,000 bytes of `ch` repeated.
fn fill(s: &TestServer, n: usize, ch: &str) {
    let text = ch.repeat(4000 / ch.len());
    for i in 0..n {
        s.put(
            &format!("fill{i}"),
            "+1",
            "2025-01-15T10:00:00Z",
            Some(&text),
        );
    }
}

/// A server with `var` at `ms` (and `more`); on a new connection, `send` runs with the clock
/// started, and the server must close it within [`ms`, `ms` + slack]. Returns what `send`
/// returned and what the server sent after it.
fn closes_after<T>(
    (var, ms): (&str, u64),
    more: &[(&str, &str)],
    send: impl FnOnce(&mut TcpStream) -> T,
) -> (T, Vec<u8>) {
    let value = ms.to_string();
    let mut vars = vec![(var, value.as_str())];
    vars.extend_from_slice(more);
    let s = server(&vars);
    let mut c = TcpStream::connect(s.addr).expect("connect");
    let since = Instant::now();
    let sent = send(&mut c);
    let (after, rest) = closed_after(&mut c, since, Duration::from_secs(10));
    within(&format!("{var}={ms}"), after, ms, SLACK_MS);
    (sent, rest)
}

#[test]
fn idle_timeout_closes_a_kept_alive_connection_after_its_value() {
    // The clock starts before the request: the connection's last activity is after it.
    let ((), rest) = closes_after(("IDLE_TIMEOUT_MS", 300), &[], |c| {
        c.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        assert_eq!(read_response(c).status, 200);
    });
    assert!(rest.is_empty(), "closed without an answer");
}

#[test]
fn read_timeout_answers_408_after_its_value() {
    let ((), rest) = closes_after(("READ_TIMEOUT_MS", 300), &[], |c| {
        c.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
            .expect("send");
    });
    let r = parse_response(&rest).expect("a response");
    assert_eq!(r.status, 408);
    assert_request_id(&r);
}

#[test]
fn request_timeout_ends_a_trickle_after_its_value() {
    // One byte every 50 ms never trips the 5 s read timeout; the 600 ms deadline ends it.
    let more = [("READ_TIMEOUT_MS", "5000")];
    let (trickle, rest) = closes_after(("REQUEST_TIMEOUT_MS", 600), &more, |c| {
        let mut w = c.try_clone().expect("clone");
        std::thread::spawn(move || {
            for b in b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: "
                .iter()
                .chain([b'a'; 200].iter())
            {
                if w.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    });
    assert_eq!(parse_response(&rest).map(|r| r.status), Some(408));
    trickle.join().expect("trickle");
}

#[test]
fn write_timeout_drops_a_client_that_stops_reading_after_its_value() {
    let s = server(&[("WRITE_TIMEOUT_MS", "1000")]);
    // 25 messages of 4,000 characters: a 100 KB page; 300 of them are far more than loopback
    // buffers hold.
    fill(&s, 25, "x");
    let open = || s.metrics().get("http_connections_open");
    assert_eq!(open(), 1.0, "only the scrape itself");
    let mut c = TcpStream::connect(s.addr).expect("connect");
    let pages = b"GET /messages?limit=100 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(300);
    let sent = Instant::now();
    let sender = std::thread::spawn(move || {
        let _ = c.write_all(&pages);
        c // kept open and never read
    });
    // The connection counts as open (2 with the scrape) until the write timeout drops it.
    let deadline = sent + Duration::from_secs(20);
    let mut was_open = false;
    let dropped = loop {
        match open() {
            2.0 => was_open = true,
            1.0 if was_open => break sent.elapsed(),
            n => assert!(n <= 2.0, "{n} open"),
        }
        assert!(
            Instant::now() < deadline,
            "a client that reads nothing is still connected 20 s later"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Its last progress came after the requests were sent: at least the value from then, and
    // allowance on top for filling the buffers on a loaded machine. (The value is 1 s, longer
    // than filling the buffers takes, so that a timeout read in a smaller unit is seen.)
    within("WRITE_TIMEOUT_MS=1000", dropped, 1000, SLACK_MS + 1500);
    drop(sender);
}

/// A UUID as `uuid` prints it (8-4-4-4-12 lower-case hex, version 4).
fn assert_request_id(r: &Resp) -> String {
    let id = r
        .header("x-request-id")
        .unwrap_or_else(|| panic!("no X-Request-ID on a {}", r.status));
    let parts: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(parts, [8, 4, 4, 4, 12], "{id}");
    assert!(
        id.bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{id}"
    );
    assert_eq!(&id[14..15], "4", "version 4: {id}");
    id.to_string()
}

fn post_body(message_id: &str, text: Option<&str>) -> String {
    json!({"message_id": message_id, "from": "+1", "to": "+2", "ts": "2025-01-15T10:00:00Z", "text": text})
        .to_string()
}

fn loc_of(r: &Resp) -> Option<Value> {
    (r.status == 422).then(|| r.json()["detail"][0]["loc"].clone())
}

#[test]
fn character_caps_count_characters_of_two_and_four_bytes() {
    let s = TestServer::start();
    for ch in ["é", "😀"] {
        // q: 200 characters.
        let q = |n: usize| s.get(&format!("/messages?q={}", encode(&ch.repeat(n))));
        assert_eq!(q(200).status, 200, "q of 200 {ch}");
        assert_eq!(
            loc_of(&q(201)),
            Some(json!(["query", "q"])),
            "q of 201 {ch}"
        );
        // message_id: 256 characters.
        let id = |n: usize| s.post_signed(&post_body(&ch.repeat(n), None));
        assert_eq!(id(256).status, 200, "message_id of 256 {ch}");
        assert_eq!(
            loc_of(&id(257)),
            Some(json!(["body", "message_id"])),
            "message_id of 257 {ch}"
        );
        // text: 4096 characters.
        let text =
            |n: usize| s.post_signed(&post_body(&format!("t-{ch}-{n}"), Some(&ch.repeat(n))));
        assert_eq!(text(4096).status, 200, "text of 4096 {ch}");
        assert_eq!(
            loc_of(&text(4097)),
            Some(json!(["body", "text"])),
            "text of 4097 {ch}"
        );
    }
    // `from` and `to` are `+` and ASCII digits, so characters are bytes there: 32 and 33.
    for field in ["from", "to"] {
        let at = |n: usize| {
            let mut body: Value =
                serde_json::from_str(&post_body(&format!("{field}{n}"), None)).expect("JSON");
            body[field] = json!(format!("+{}", "1".repeat(n - 1)));
            s.post_signed(&body.to_string())
        };
        assert_eq!(at(32).status, 200, "{field} of 32");
        assert_eq!(
            loc_of(&at(33)),
            Some(json!(["body", field])),
            "{field} of 33"
        );
    }
    // What was stored is what was sent: 256 two-byte characters come back whole.
    let stored = s.get("/messages?limit=100").json();
    let ids: Vec<usize> = stored["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["message_id"].as_str().expect("id").chars().count())
        .collect();
    assert_eq!(ids.iter().filter(|n| **n == 256).count(), 2, "{ids:?}");
}

#[test]
fn a_log_value_is_cut_at_256_characters_not_bytes() {
    let s = TestServer::start();
    let id_in_log = |id: &str| {
        let r = s.post_signed(&post_body(id, None));
        let rid = r.header("x-request-id").expect("id").to_string();
        let line = s
            .logs
            .lines()
            .into_iter()
            .find(|l| l["request_id"] == rid.as_str())
            .expect("the request's line");
        (
            r.status,
            line["message_id"].as_str().expect("message_id").to_string(),
        )
    };
    let at = "é".repeat(256);
    assert_eq!(id_in_log(&at), (200, at.clone()));
    let (status, logged) = id_in_log(&"é".repeat(300));
    assert_eq!(status, 422);
    assert_eq!(
        logged,
        format!("{at}…"),
        "256 characters, then the ellipsis"
    );
}

#[cfg(feature = "fault-injection")]
#[test]
fn latency_ms_and_the_histogram_sum_match_the_tests_own_clock() {
    // /__fault/stuck-read holds its request for 2 s.
    let s = TestServer::start();
    let t = Instant::now();
    let r = s.get("/__fault/stuck-read");
    let took = t.elapsed().as_secs_f64();
    assert_eq!(r.status, 200, "{}", r.text());
    let rid = assert_request_id(&r);
    let line = s
        .logs
        .lines()
        .into_iter()
        .find(|l| l["request_id"] == rid.as_str())
        .expect("the request's line");
    let ms = line["latency_ms"].as_f64().expect("a number");
    assert!(
        (2000.0..=took * 1000.0).contains(&ms),
        "latency_ms {ms}, the client measured {:.1} ms",
        took * 1000.0
    );
    let m = s.metrics();
    let sum = m.get(r#"request_latency_seconds_sum{method="GET",path="other"}"#);
    assert!(
        (2.0..=took).contains(&sum),
        "latency sum {sum} s, the client measured {took:.3} s"
    );
    assert_eq!(
        m.get(r#"request_latency_seconds_count{method="GET",path="other"}"#),
        1.0
    );
    assert_eq!(
        m.get(r#"request_latency_seconds_bucket{method="GET",path="other",le="1"}"#),
        0.0
    );
    assert_eq!(
        m.get(r#"request_latency_seconds_bucket{method="GET",path="other",le="2.5"}"#),
        1.0
    );
}

#[cfg(feature = "fault-injection")]
#[test]
fn connection_gauges_count_the_situation_the_test_built() {
    let s = TestServer::start();
    // The scrape's head arrives in two parts, so its connection is never idle when the poller
    // last counted (the idle gauge is stored once per poller turn, and a scrape on a connection
    // that was idle that turn would read itself as idle).
    let gauges = || {
        let mut c = TcpStream::connect(s.addr).expect("connect");
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n")
            .expect("send");
        std::thread::sleep(Duration::from_millis(50));
        c.write_all(b"\r\n").expect("send");
        let mut raw = Vec::new();
        c.read_to_end(&mut raw).expect("read");
        let r = parse_response(&raw).expect("a response");
        let m: std::collections::BTreeMap<&str, f64> = std::str::from_utf8(&r.body)
            .expect("text")
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect();
        [
            "http_connections_open",
            "http_connections_idle",
            "http_requests_in_progress",
        ]
        .map(|g| m[g])
    };
    // 3 kept alive after a request each, 1 that never sent a byte, then 2 in the middle of a 2 s
    // request; the scrape itself is open and in progress.
    let mut kept: Vec<TcpStream> = (0..3)
        .map(|_| {
            let c = hold(s.addr, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(read_response(&c).status, 200);
            c
        })
        .collect();
    kept.push(TcpStream::connect(s.addr).expect("connect"));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(gauges(), [5.0, 4.0, 1.0], "open, idle, in progress");
    let busy: Vec<TcpStream> = (0..2)
        .map(|_| {
            hold(
                s.addr,
                b"GET /__fault/stuck-read HTTP/1.1\r\nHost: x\r\n\r\n",
            )
        })
        .collect();
    // 5 more in the middle of sending a request: open, neither idle nor in progress.
    let half: Vec<TcpStream> = (0..5)
        .map(|_| {
            hold(
                s.addr,
                b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nab",
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(gauges(), [12.0, 4.0, 3.0], "open, idle, in progress");
    drop((kept, half));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        gauges(),
        [3.0, 0.0, 3.0],
        "the idle and half-sent ones closed"
    );
    for c in &busy {
        assert_eq!(read_response(c).status, 200);
    }
    assert_eq!(gauges(), [3.0, 2.0, 1.0], "the busy ones now idle");
}

/// Every refusal of `X-Signature` that needs no body, with `Expect: 100-continue`: the 401 at
/// once (never `100 Continue` first), the body never awaited.
#[test]
fn expect_100_continue_gets_the_401_at_once_for_every_bad_signature() {
    let s = TestServer::start();
    let ask = |sig: &str| {
        let head = format!(
            "POST /webhook HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n{sig}Content-Length: 60\r\n\r\n"
        );
        let mut c = TcpStream::connect(s.addr).expect("connect");
        c.write_all(head.as_bytes()).expect("send");
        let t = Instant::now();
        let (after, raw) = closed_after(&mut c, t, Duration::from_secs(5));
        (after, String::from_utf8_lossy(&raw).into_owned())
    };
    let good = "a".repeat(64);
    for sig in [
        String::new(),
        "X-Signature: \r\n".into(),
        format!("X-Signature: {}\r\n", "zz".repeat(32)),
        format!("X-Signature: {}\r\n", "a".repeat(63)),
        format!("X-Signature: {}\r\n", "a".repeat(65)),
        format!("X-Signature: sha256={}\r\n", "a".repeat(62)),
        "X-Signature: sha256=\r\n".into(),
        format!("X-Signature: {good}\r\nX-Signature: {good}\r\n"),
    ] {
        let (after, text) = ask(&sig);
        assert!(text.starts_with("HTTP/1.1 401 "), "{sig:?}: {text}");
        assert!(!text.contains("100 Continue"), "{sig:?}: {text}");
        assert!(
            text.ends_with(r#"{"detail":"invalid signature"}"#),
            "{sig:?}: {text}"
        );
        assert!(
            after < Duration::from_millis(1500),
            "{sig:?}: after {after:?}"
        );
    }
    // One well-formed signature (wrong or not): `100 Continue`, the body awaited.
    let mut c = TcpStream::connect(s.addr).expect("connect");
    c.write_all(
        format!("POST /webhook HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nX-Signature: sha256={good}\r\nContent-Length: 60\r\n\r\n")
            .as_bytes(),
    )
    .expect("send");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut interim = [0u8; 25];
    c.read_exact(&mut interim).expect("an interim answer");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    // No secret: the 503 at once.
    let none = TestServer::start_in(support::temp_dir(), &[]);
    let mut c = TcpStream::connect(none.addr).expect("connect");
    c.write_all(
        format!("POST /webhook HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nX-Signature: {good}\r\nContent-Length: 60\r\n\r\n")
            .as_bytes(),
    )
    .expect("send");
    let (after, raw) = closed_after(&mut c, Instant::now(), Duration::from_secs(5));
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    assert!(after < Duration::from_millis(1500), "after {after:?}");
}

/// Each numeric variable's range as `--help` prints it: both ends accepted, one past each
/// refused, naming the variable.
#[test]
fn every_config_range_holds_at_both_ends_and_refuses_one_past_each() {
    let ranges: [(&str, u64, u64); 15] = [
        ("PORT", 0, 65535),
        ("WORKERS", 1, 256),
        ("MAX_BODY_BYTES", 1, 16_777_216),
        ("MAX_HEADER_BYTES", 256, 1_048_576),
        ("MAX_CONNECTIONS", 1, 1_000_000),
        ("IDLE_TIMEOUT_MS", 1, 3_600_000),
        ("READ_TIMEOUT_MS", 1, 3_600_000),
        ("REQUEST_TIMEOUT_MS", 1, 3_600_000),
        ("WRITE_TIMEOUT_MS", 1, 3_600_000),
        ("BUSY_TIMEOUT_MS", 1, 3_600_000),
        ("READ_BUDGET_MS", 1, 3_600_000),
        ("READ_CONNECTIONS", 1, 64),
        // Checked once `--help` lists them (accepted and refused; no field read here).
        ("WEBHOOK_TOLERANCE_SECONDS", 1, 86_400),
        ("RETENTION_DAYS", 0, 36_500),
        ("MAX_DB_MB", 0, 16_777_216),
    ];
    let help = support::run_binary(&["--help"], &[]);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let listed = help.matches("..=").count();
    let ranges: Vec<_> = ranges
        .into_iter()
        .filter(|(name, ..)| help.contains(&format!("  {name} [")))
        .collect();
    assert_eq!(
        ranges.len(),
        listed,
        "every range --help lists is here:\n{help}"
    );
    for (name, min, max) in ranges {
        assert!(
            help.contains(&format!("{name} [default "))
                && help.contains(&format!(", {min}..={max}]")),
            "{name} {min}..={max} in --help"
        );
        let parse = |value: String| {
            webhook_api::config::Config::from_lookup(|n| (n == name).then(|| value.clone()))
        };
        let field = |c: &webhook_api::config::Config| -> Option<u64> {
            Some(match name {
                "PORT" => c.port.into(),
                "WORKERS" => c.workers as u64,
                "MAX_BODY_BYTES" => c.max_body_bytes as u64,
                "MAX_HEADER_BYTES" => c.max_header_bytes as u64,
                "MAX_CONNECTIONS" => c.max_connections as u64,
                "IDLE_TIMEOUT_MS" => c.idle_timeout_ms,
                "READ_TIMEOUT_MS" => c.read_timeout_ms,
                "REQUEST_TIMEOUT_MS" => c.request_timeout_ms,
                "WRITE_TIMEOUT_MS" => c.write_timeout_ms,
                "BUSY_TIMEOUT_MS" => c.busy_timeout_ms,
                "READ_BUDGET_MS" => c.read_budget_ms,
                "READ_CONNECTIONS" => c.read_connections as u64,
                _ => return None,
            })
        };
        for edge in [min, max] {
            let c = parse(edge.to_string()).unwrap_or_else(|e| panic!("{name}={edge}: {e}"));
            let read = field(&c).unwrap_or(edge);
            assert_eq!(read, edge, "{name}={edge} is read as given");
        }
        let below = min
            .checked_sub(1)
            .map_or("-1".to_string(), |n| n.to_string());
        for past in [below, (max + 1).to_string()] {
            let e = parse(past.clone())
                .err()
                .unwrap_or_else(|| panic!("{name}={past} accepted"));
            assert_eq!(
                e,
                format!("{name} must be an integer from {min} to {max}, got {past:?}")
            );
        }
    }
    // The refusal at start-up is the same message, one JSON line and a non-zero exit.
    let out = support::run_binary::<&str>(&[], &[("WORKERS", "257")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let line: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert!(
        line.to_string()
            .contains("WORKERS must be an integer from 1 to 256, got \\\"257\\\""),
        "{line}"
    );
}

/// A response to HEAD: its head, with as many filler bytes as its Content-Length names, so the
/// harness's parser takes it.
fn head_only(raw: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(raw);
    assert!(text.ends_with("\r\n\r\n"), "nothing after the head: {text}");
    let len: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("a Content-Length");
    let whole = [raw, &vec![b' '; len][..]].concat();
    parse_response(&whole).expect("a response")
}

/// Every kind of response the service sends, the poller's own refusals included: each carries a
/// fresh X-Request-ID, and the request's log line names the same id with the same status.
#[test]
fn every_response_kind_carries_an_x_request_id_equal_to_its_log_line() {
    let s = server(&[
        ("MAX_BODY_BYTES", "100"),
        ("MAX_HEADER_BYTES", "1024"),
        ("READ_TIMEOUT_MS", "300"),
        ("REQUEST_TIMEOUT_MS", "3000"),
        ("READ_BUDGET_MS", "100"),
    ]);
    let raw =
        |raw: &str| parse_response(&support::exchange(s.addr, raw.as_bytes())).expect("a response");
    let long_header = format!("X-Long: {}\r\n", "a".repeat(2000));
    let mut cases: Vec<(u16, Resp)> = vec![
        (200, s.get("/health/live")),
        (
            200,
            head_only(&support::exchange(
                s.addr,
                b"HEAD /messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )),
        ),
        (404, s.get("/nope")),
        (405, request(s.addr, "DELETE", "/messages", &[], b"")),
        (401, request(s.addr, "POST", "/webhook", &[], b"{}")),
        (422, s.post_signed("{}")),
        (
            413,
            raw("POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n"),
        ),
        (
            414,
            raw(&format!(
                "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(2000)
            )),
        ),
        (
            431,
            raw(&format!("GET / HTTP/1.1\r\nHost: x\r\n{long_header}\r\n")),
        ),
        (400, raw("GET / HTTP/1.1\r\n\r\n")),
        (
            400,
            raw(
                "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab",
            ),
        ),
        (
            400,
            raw(
                "POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n 2 \r\nab\r\n0\r\n\r\n",
            ),
        ),
        (417, raw("GET / HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\n")),
        (
            501,
            raw("POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
        ),
        (505, raw("GET / HTTP/2.0\r\nHost: x\r\n\r\n")),
        (408, raw("GET / HTTP/1.1\r\nHost: x\r\n")),
    ];
    #[cfg(feature = "fault-injection")]
    {
        cases.push((500, s.get("/__fault/panic")));
        cases.push((503, s.get("/__fault/endless-read")));
    }
    // A newcomer at MAX_CONNECTIONS with every connection mid-request.
    let full = server(&[("MAX_CONNECTIONS", "2")]);
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut c = TcpStream::connect(full.addr).expect("connect");
            c.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
                .expect("send");
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    cases.push((503, full.get("/health/live")));
    drop(held);
    // No secret configured.
    let none = TestServer::start_in(support::temp_dir(), &[]);
    cases.push((503, none.post_signed("{}")));
    let mut seen = std::collections::BTreeSet::new();
    for (i, (status, r)) in cases.iter().enumerate() {
        assert_eq!(r.status, *status, "case {i}: {}", r.text());
        let id = assert_request_id(r);
        assert!(seen.insert(id.clone()), "case {i}: {id} sent twice");
        std::thread::sleep(Duration::from_millis(1));
        let lines: Vec<Value> = [&s, &full, &none]
            .iter()
            .flat_map(|t| t.logs.lines())
            .filter(|l| l["request_id"] == id.as_str())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "case {i} ({status}): one log line with {id}"
        );
        assert_eq!(lines[0]["status"], *status, "case {i}");
    }
}

/// The backup line's `rows` and `bytes` against the file it wrote: its size on disk, and the rows
/// a plain SQLite connection counts in it (a page count that a wrong file would not match).
#[test]
fn the_backup_line_names_the_rows_and_the_size_of_the_file_written() {
    let s = TestServer::start();
    fill(&s, 300, "é");
    let file = s.dir.join("backup.db");
    let out = support::run_backup(&s.dir.join("app.db"), &file);
    let size = support::assert_backup_line(&out, &file, 300);
    assert!(size > 1_200_000, "300 rows of 4,000 bytes: {size}");
    let c = rusqlite::Connection::open(&file).expect("open the backup");
    let (rows, pages, page): (i64, i64, i64) = c
        .query_row(
            "SELECT (SELECT count(*) FROM messages), (SELECT page_count FROM pragma_page_count), (SELECT page_size FROM pragma_page_size)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("count");
    assert_eq!((rows, (pages * page) as u64), (300, size));
}

/// A FastAPI service's table, as SQLAlchemy writes it, with `n` plain rows.
fn legacy_db(path: &std::path::Path, n: usize) {
    let mut c = rusqlite::Connection::open(path).expect("open");
    c.execute_batch(
        "CREATE TABLE messages (message_id VARCHAR NOT NULL, from_msisdn VARCHAR NOT NULL,
         to_msisdn VARCHAR NOT NULL, ts VARCHAR NOT NULL, text TEXT, created_at VARCHAR NOT NULL,
         PRIMARY KEY (message_id));
         CREATE INDEX ix_messages_ts ON messages (ts);",
    )
    .expect("DDL");
    let tx = c.transaction().expect("tx");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO messages VALUES (?1, '+1', '+2', ?2, 'hello', '2025-01-15T10:00:00Z')",
            )
            .expect("prepare");
        for i in 0..n {
            let ts = format!("2025-01-{:02}T10:00:00Z", 1 + i % 28);
            insert
                .execute(rusqlite::params![format!("m{i:07}"), ts])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

/// While a legacy database is being adopted, every endpoint answers as documented: liveness 200,
/// readiness 503 naming the adoption, /metrics 200 with `service_ready 0`, every read and write
/// 503 `storage unavailable` (never a page of half the rows), unknown paths 404. After it, the
/// same requests answer from every row.
#[test]
fn every_endpoint_answers_as_documented_during_an_adoption() {
    let dir = support::temp_dir();
    let file = dir.join("fastapi.db");
    let n = 300_000;
    legacy_db(&file, n);
    let url = format!("sqlite:///{}", file.display());
    let bin = support::Binary::start(&[
        ("DATABASE_URL", &url),
        ("WEBHOOK_SECRET", SECRET),
        ("LOG_LEVEL", "INFO"),
    ]);
    let storage = json!({"detail": "storage unavailable"});
    let body = post_body("new", None);
    // Each answered at once: well under BUSY_TIMEOUT_MS (5 s), so none waited on the adoption's
    // write lock to fail.
    let timed = |path: &str| {
        let t = Instant::now();
        let r = request(bin.addr, "GET", path, &[], b"");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{path} took {:?}",
            t.elapsed()
        );
        r
    };
    let during = || {
        let get = |path: &str| {
            let r = timed(path);
            (r.status, r.text())
        };
        let json = |path: &str| {
            let r = timed(path);
            (r.status, r.json())
        };
        assert_eq!(json("/health/live"), (200, json!({"status": "ok"})));
        let ready = json("/health/ready");
        assert_eq!(ready.0, 503);
        assert_eq!(ready.1["status"], "not_ready");
        assert!(
            ready.1["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("adopting the database")),
            "{ready:?}"
        );
        assert_eq!(json("/messages"), (503, storage.clone()));
        assert_eq!(
            json("/messages?limit=1&offset=10&q=hel"),
            (503, storage.clone())
        );
        assert_eq!(
            json("/messages?from=%2B1&since=2025-01-02"),
            (503, storage.clone())
        );
        assert_eq!(json("/stats"), (503, storage.clone()));
        let post = support::post_signed(bin.addr, &body);
        assert_eq!(
            (post.status, post.json()),
            (503, storage.clone()),
            "/webhook"
        );
        let metrics = get("/metrics");
        assert_eq!(metrics.0, 200);
        assert!(
            metrics.1.lines().any(|l| l == "service_ready 0"),
            "{}",
            metrics.1
        );
        assert_eq!(json("/openapi.json").0, 200);
        assert_eq!(json("/nope"), (404, json!({"detail": "Not Found"})));
        // Still adopting after all of them: each was answered during the adoption.
        assert!(
            json("/health/ready").1["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("adopting")),
            "the adoption ended before the checks did: use more rows"
        );
    };
    during();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let line = bin
            .lines
            .recv_timeout(deadline - Instant::now())
            .expect("adopted within 300 s");
        if serde_json::from_str::<Value>(&line).expect("JSON")["event"] == "adopted" {
            break;
        }
    }
    let page = request(bin.addr, "GET", "/messages?limit=1", &[], b"").json();
    assert_eq!(page["total"], n);
    let stats = request(bin.addr, "GET", "/stats", &[], b"").json();
    assert_eq!(stats["total_messages"], n);
    let post = support::post_signed(bin.addr, &body);
    assert_eq!(post.status, 200);
    assert_eq!(
        request(bin.addr, "GET", "/health/ready", &[], b"").json(),
        json!({"status": "ok"})
    );
}

/// `WEBHOOK_SECRET_PREVIOUS` as configured: a set value is a second accepted key, an empty one is
/// none (nothing is ever verified against an empty key).
#[test]
fn config_previous_secret_is_a_second_key_and_empty_is_none() {
    let body = post_body("rotated", None);
    let signed = |s: &TestServer, key: &str| {
        let sig = sign(key, body.as_bytes());
        request(
            s.addr,
            "POST",
            "/webhook",
            &[("X-Signature", &sig)],
            body.as_bytes(),
        )
        .status
    };
    let s = server(&[("WEBHOOK_SECRET_PREVIOUS", "old")]);
    assert_eq!((signed(&s, "old"), signed(&s, SECRET)), (200, 200));
    assert_eq!(signed(&s, "other"), 401);
    let s = server(&[("WEBHOOK_SECRET_PREVIOUS", "")]);
    assert_eq!((signed(&s, ""), signed(&s, SECRET)), (401, 200));
}

/// `LOG_LEVEL` in every documented spelling, any case: which request lines pass is the level's
/// (a 200 is INFO, a 404 WARNING, a 401 ERROR); unset is INFO; anything else stops start-up.
#[test]
fn log_level_names_filter_by_their_level_in_any_case() {
    for (level, want) in [
        (Some("debug"), [200, 404, 401].as_slice()),
        (Some("Info"), &[200, 404, 401]),
        (None, &[200, 404, 401]),
        (Some("WARNING"), &[404, 401]),
        (Some("warn"), &[404, 401]),
        (Some("eRRoR"), &[401]),
    ] {
        let mut vars = vec![("WEBHOOK_SECRET", SECRET)];
        vars.extend(level.map(|l| ("LOG_LEVEL", l)));
        let dir = support::temp_dir();
        let db = format!("sqlite:///{}", dir.join("app.db").display());
        let config = webhook_api::config::Config::from_lookup(|n| match n {
            "DATABASE_URL" => Some(db.clone()),
            "PORT" => Some("0".into()),
            _ => vars
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string()),
        })
        .expect("valid");
        let logs = support::LogBuf::default();
        let running = webhook_api::start(
            config.clone(),
            webhook_api::log::Logger::new(config.log_level, Box::new(logs.clone())),
        )
        .expect("starts");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], running.addr().port()));
        for (path, status) in [("/health/live", 200), ("/nope", 404)] {
            assert_eq!(request(addr, "GET", path, &[], b"").status, status);
        }
        assert_eq!(request(addr, "POST", "/webhook", &[], b"{}").status, 401);
        running.stop();
        let logged: Vec<u64> = logs
            .lines()
            .iter()
            .filter_map(|l| l["status"].as_u64())
            .collect();
        assert_eq!(logged, want, "LOG_LEVEL={level:?}");
    }
    let bad =
        webhook_api::config::Config::from_lookup(|n| (n == "LOG_LEVEL").then(|| "verbose".into()));
    assert!(bad.is_err_and(|e| e.contains("LOG_LEVEL")));
}

/// The `Connection` header each version is sent: none on an HTTP/1.1 answer kept alive,
/// `keep-alive` on an HTTP/1.0 one kept alive (asked for), `close` when the connection closes.
#[test]
fn the_connection_header_follows_the_version_and_the_close() {
    let s = TestServer::start();
    let connection = |r: &Resp| r.header("connection").map(str::to_string);
    let c = hold(s.addr, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(connection(&read_response(&c)), None, "1.1 kept alive");
    let c = hold(
        s.addr,
        b"GET /health/live HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    let r = read_response(&c);
    assert_eq!(
        connection(&r).as_deref(),
        Some("keep-alive"),
        "1.0 kept alive"
    );
    let raw = support::exchange(s.addr, b"GET /health/live HTTP/1.0\r\n\r\n");
    let r = parse_response(&raw).expect("a response");
    assert_eq!(connection(&r).as_deref(), Some("close"), "1.0 closed");
    let raw = support::exchange(
        s.addr,
        b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let r = parse_response(&raw).expect("a response");
    assert_eq!(connection(&r).as_deref(), Some("close"), "1.1 closed");
}
