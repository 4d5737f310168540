//! Values, not presence: each test builds a state it knows (a clock it reads itself, a count of
//! connections it holds, a file whose size it can stat) and checks the number the service reports
//! or enforces against it, at the edges of every documented cap and range in its own unit.

mod support;

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{Resp, SECRET, TestServer, parse_response};

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

#[test]
fn idle_timeout_closes_a_kept_alive_connection_after_its_value() {
    let s = server(&[("IDLE_TIMEOUT_MS", "300")]);
    let mut c = TcpStream::connect(s.addr).expect("connect");
    c.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&c).status, 200);
    let since = Instant::now();
    let (after, rest) = closed_after(&mut c, since, Duration::from_secs(10));
    assert!(rest.is_empty(), "closed without an answer");
    within("IDLE_TIMEOUT_MS=300", after, 300, SLACK_MS);
}

#[test]
fn read_timeout_answers_408_after_its_value() {
    let s = server(&[("READ_TIMEOUT_MS", "300")]);
    let mut c = TcpStream::connect(s.addr).expect("connect");
    c.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        .expect("send");
    let since = Instant::now();
    let (after, rest) = closed_after(&mut c, since, Duration::from_secs(10));
    let r = parse_response(&rest).expect("a response");
    assert_eq!(r.status, 408);
    assert_request_id(&r);
    within("READ_TIMEOUT_MS=300", after, 300, SLACK_MS);
}

#[test]
fn request_timeout_ends_a_trickle_after_its_value() {
    // One byte every 50 ms never trips the 5 s read timeout; the 600 ms deadline ends it.
    let s = server(&[("READ_TIMEOUT_MS", "5000"), ("REQUEST_TIMEOUT_MS", "600")]);
    let mut c = TcpStream::connect(s.addr).expect("connect");
    let mut w = c.try_clone().expect("clone");
    let since = Instant::now();
    let trickle = std::thread::spawn(move || {
        for b in b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .chain([b'a'; 200].iter())
        {
            if w.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let (after, rest) = closed_after(&mut c, since, Duration::from_secs(10));
    assert_eq!(parse_response(&rest).map(|r| r.status), Some(408));
    within("REQUEST_TIMEOUT_MS=600", after, 600, SLACK_MS);
    trickle.join().expect("trickle");
}

#[test]
fn write_timeout_drops_a_client_that_stops_reading_after_its_value() {
    let s = server(&[("WRITE_TIMEOUT_MS", "300")]);
    // 25 messages of 4,000 characters: a 100 KB page; 300 of them are far more than loopback
    // buffers hold.
    for i in 0..25 {
        s.put(
            &format!("big{i}"),
            "+1",
            "2025-01-15T10:00:00Z",
            Some(&"x".repeat(4000)),
        );
    }
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
    // allowance on top for filling the buffers on a loaded machine.
    within("WRITE_TIMEOUT_MS=300", dropped, 300, SLACK_MS + 1500);
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
    // 3 kept alive after a request each, 1 that never sent a byte, 2 in the middle of a 2 s
    // request; the scrape itself is open and in progress.
    let mut kept: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut c = TcpStream::connect(s.addr).expect("connect");
            c.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("send");
            assert_eq!(read_response(&c).status, 200);
            c
        })
        .collect();
    kept.push(TcpStream::connect(s.addr).expect("connect"));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(gauges(), [5.0, 4.0, 1.0], "open, idle, in progress");
    let busy: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut c = TcpStream::connect(s.addr).expect("connect");
            c.write_all(b"GET /__fault/stuck-read HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("send");
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(gauges(), [7.0, 4.0, 3.0], "open, idle, in progress");
    drop(kept);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(gauges(), [3.0, 0.0, 3.0], "the idle ones closed");
    for c in &busy {
        assert_eq!(read_response(c).status, 200);
    }
    assert_eq!(gauges(), [3.0, 2.0, 1.0], "the busy ones now idle");
}
