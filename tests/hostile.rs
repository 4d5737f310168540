//! Hostile clients against the real binary: each case would crash, stall or bloat a naive
//! server. After each, the server must answer a normal request promptly with bounded RSS.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{Binary, SECRET, exchange, parse_response};

const PROMPT: Duration = Duration::from_secs(1);

fn binary(extra: &[(&str, &str)]) -> Binary {
    Binary::fresh("ERROR", extra).0
}

fn status_of(raw: &[u8], bin: &Binary) -> Option<u16> {
    parse_response(&exchange(bin.addr, raw)).map(|r| r.status)
}

/// Opens a connection and sends `raw` without closing it.
fn hold(bin: &Binary, raw: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(bin.addr).expect("connect");
    s.write_all(raw).expect("send");
    s
}

#[test]
fn huge_and_overflowing_content_lengths() {
    let bin = binary(&[]);
    let rss = bin.rss_kib();
    for (len, want) in [
        ("100000000000000", 413),
        ("18446744073709551615", 413),
        ("18446744073709551616", 400),
        ("99999999999999999999999", 400),
    ] {
        for method in ["GET /", "POST /webhook"] {
            let raw = format!("{method} HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n");
            assert_eq!(
                status_of(raw.as_bytes(), &bin),
                Some(want),
                "{method} with {len}"
            );
        }
    }
    bin.assert_serving(PROMPT);
    assert!(
        bin.rss_kib() < rss + 4096,
        "RSS grew from {rss} to {} KiB",
        bin.rss_kib()
    );
}

#[test]
fn early_close_mid_body() {
    let bin = binary(&[]);
    for _ in 0..50 {
        let s = hold(
            &bin,
            b"POST /webhook HTTP/1.1\r\nContent-Length: 1000\r\n\r\n0123456789",
        );
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    bin.assert_serving(PROMPT);
}

#[test]
fn stalled_bodies_and_headers_do_not_hold_the_workers() {
    let bin = binary(&[("WORKERS", "4"), ("READ_TIMEOUT_MS", "1500")]);
    let mut stalled: Vec<TcpStream> = (0..8)
        .map(|_| {
            hold(
                &bin,
                b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\nabc",
            )
        })
        .chain((0..8).map(|_| hold(&bin, b"GET /health/live HTTP/1.1\r\nHost: x\r\n")))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..5 {
        bin.assert_serving(PROMPT);
    }
    // After the read timeout each stalled client (a body, a head) is told 408 and closed.
    for i in [0, 15] {
        let mut answer = Vec::new();
        stalled[i]
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stalled[i].read_to_end(&mut answer).expect("read");
        assert_eq!(
            parse_response(&answer).map(|r| r.status),
            Some(408),
            "stalled client {i}"
        );
    }
}

#[test]
fn a_trickling_client_meets_the_request_deadline() {
    let bin = binary(&[("REQUEST_TIMEOUT_MS", "1000"), ("READ_TIMEOUT_MS", "800")]);
    let mut s = TcpStream::connect(bin.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let t = Instant::now();
    let mut answer = Vec::new();
    // One byte every 100 ms never trips the read timeout, but the request deadline ends it.
    for b in b"GET /health/live HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter()
    {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        if let Ok(n) = s.read(&mut buf) {
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || answer.ends_with(b"}") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(parse_response(&answer).map(|r| r.status), Some(408));
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "ended after {:?}",
        t.elapsed()
    );
    bin.assert_serving(PROMPT);
}

#[test]
fn endless_header_line_and_too_many_headers() {
    let bin = binary(&[]);
    let rss = bin.rss_kib();
    let mut s = TcpStream::connect(bin.addr).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nX-Endless: ").expect("send");
    let line = vec![b'a'; 64 * 1024];
    let mut sent = 0usize;
    // The server answers 431 and closes once the header block is over its cap; writes then fail.
    while sent < 200 << 20 && s.write_all(&line).is_ok() {
        sent += line.len();
    }
    assert!(
        sent < 16 << 20,
        "the server stopped reading after {sent} bytes"
    );
    assert!(
        bin.rss_kib() < rss + 4096,
        "RSS grew from {rss} to {} KiB",
        bin.rss_kib()
    );
    assert_eq!(
        status_of(
            format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000)).as_bytes(),
            &bin
        ),
        Some(431)
    );
    let many: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_eq!(
        status_of(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes(), &bin),
        Some(431)
    );
    assert_eq!(
        status_of(
            format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000)).as_bytes(),
            &bin
        ),
        Some(414)
    );
    bin.assert_serving(PROMPT);
}

#[test]
fn unparsable_content_length_is_refused_not_smuggled() {
    let bin = binary(&[]);
    for cl in ["5x", "-1", "0x10", "1 2", "", "5, 5"] {
        let raw = format!(
            "POST /webhook HTTP/1.1\r\nContent-Length: {cl}\r\n\r\nGET /nope HTTP/1.1\r\n\r\n"
        );
        let out = exchange(bin.addr, raw.as_bytes());
        assert_eq!(
            parse_response(&out).map(|r| r.status),
            Some(400),
            "Content-Length {cl:?}"
        );
        assert_eq!(
            out.windows(9).filter(|w| w == b"HTTP/1.1 ").count(),
            1,
            "one answer, nothing smuggled"
        );
    }
    // Content-Length and chunked together: whichever a proxy believed, the bytes after the
    // chunked body's end would be a second request. Refused, and nothing after it is answered.
    let both = "POST /webhook HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /health/live HTTP/1.1\r\nHost: x\r\n\r\n";
    let out = exchange(bin.addr, both.as_bytes());
    assert_eq!(parse_response(&out).map(|r| r.status), Some(400));
    assert_eq!(
        out.windows(9).filter(|w| w == b"HTTP/1.1 ").count(),
        1,
        "one answer, the smuggled GET is never served"
    );
    bin.assert_serving(PROMPT);
}

#[test]
fn at_the_cap_idle_connections_are_shed_and_busy_ones_refuse() {
    let bin = binary(&[("MAX_CONNECTIONS", "20")]);
    // 20 idle sockets fill the cap; 10 more each shed the one idle longest, never refused.
    let idle: Vec<TcpStream> = (0..30)
        .map(|_| {
            let c = TcpStream::connect(bin.addr).expect("connect");
            std::thread::sleep(Duration::from_millis(2));
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let closed: Vec<bool> = idle
        .iter()
        .map(|mut c| {
            c.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            matches!(c.read(&mut [0u8; 16]), Ok(0))
        })
        .collect();
    assert_eq!(closed.iter().filter(|c| **c).count(), 10, "{closed:?}");
    assert!(
        closed[..10].iter().all(|c| *c),
        "the oldest were shed: {closed:?}"
    );
    bin.assert_serving(PROMPT);
    // With every connection in the middle of a request, a newcomer gets 503 at once.
    drop(idle);
    std::thread::sleep(Duration::from_millis(100));
    let busy: Vec<TcpStream> = (0..20)
        .map(|_| {
            hold(
                &bin,
                b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let r = support::request(bin.addr, "GET", "/health/live", &[], b"");
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    assert_eq!(r.json()["detail"], "too many connections");
    assert!(t.elapsed() < PROMPT, "refused at once, not after a timeout");
    drop(busy);
    std::thread::sleep(Duration::from_millis(200));
    bin.assert_serving(PROMPT);
    assert!(sample(&bin, "http_connections_shed_total") >= 10.0);
    assert_eq!(sample(&bin, "http_connections_rejected_total"), 1.0);
}

#[test]
fn uploads_held_at_once_are_bounded_in_total() {
    // Seven uploads of 13 MB each, stalled before their end: without the cap on bytes parked
    // across connections (64 MiB) the process would hold 91 MB of them. Past the cap the next
    // upload is answered 503 and closed (its client, still sending, may see only a reset).
    let bin = binary(&[
        ("MAX_BODY_BYTES", "16777216"),
        ("READ_TIMEOUT_MS", "20000"),
        ("REQUEST_TIMEOUT_MS", "30000"),
    ]);
    let before = bin.rss_kib();
    let body = vec![b'x'; 13_000_000];
    let head = b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 16000000\r\n\r\n";
    let _uploads: Vec<TcpStream> = (0..7)
        .map(|_| {
            let mut s = hold(&bin, head);
            let _ = s.write_all(&body); // fails once the server has refused this one
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let grew_mib = bin.rss_kib().saturating_sub(before) / 1024;
    assert!(
        grew_mib < 75,
        "RSS grew by {grew_mib} MiB holding the uploads"
    );
    // Refused with its method and path: its head had arrived.
    let refused = r#"http_requests_total{method="POST",path="/webhook",status="503"}"#;
    assert!(sample(&bin, refused) >= 1.0, "no upload was refused");
    bin.assert_serving(PROMPT);
    let body = r#"{"message_id":"m1","from":"+1","to":"+2","ts":"2025-01-15T10:00:00Z"}"#;
    assert_eq!(support::post_signed(bin.addr, body).status, 200);
}

#[test]
fn uploads_well_under_the_total_cap_are_all_held_and_answered() {
    // Two uploads parked mid-body at once, 1 MB and 100 KB of 2 MB: 1.1 MB in all, far under
    // the 64 MiB the parked bytes may take, so neither is refused.
    let bin = binary(&[("MAX_BODY_BYTES", "4194304")]);
    let head = b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n";
    let mut uploads: Vec<TcpStream> = [1_000_000, 100_000]
        .into_iter()
        .map(|sent| {
            let mut s = hold(&bin, head);
            s.write_all(&vec![b'x'; sent]).expect("part of the body");
            std::thread::sleep(Duration::from_millis(200));
            s
        })
        .collect();
    for (s, sent) in uploads.iter_mut().zip([1_000_000, 100_000]) {
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(&vec![b'x'; 2_000_000 - sent])
            .expect("the rest");
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let status = parse_response(&answer).map(|r| r.status);
        assert_eq!(
            status,
            Some(401),
            "unsigned, read whole, not refused for its size"
        );
    }
}

/// One sample of a running binary's /metrics.
fn sample(bin: &Binary, series: &str) -> f64 {
    let text = support::request(bin.addr, "GET", "/metrics", &[], b"").text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} in {text}"))
}

#[test]
fn fd_exhaustion_does_not_stop_the_accept_loop() {
    let dir = support::temp_dir();
    let db = format!("sqlite:///{}", dir.join("app.db").display());
    let bin = Binary::start_limited(
        &[
            ("DATABASE_URL", &db),
            ("WEBHOOK_SECRET", SECRET),
            ("LOG_LEVEL", "ERROR"),
            // Above the descriptor limit, so that the limit is what is hit.
            ("MAX_CONNECTIONS", "1000"),
        ],
        Some(40),
    );
    let conns: Vec<TcpStream> = (0..80)
        .filter_map(|_| TcpStream::connect(bin.addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    drop(conns);
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        bin.assert_serving(Duration::from_secs(2));
    }
    let logged = bin.drain();
    // Hit and logged, once: the line is repeated at most once a second while it lasts.
    assert_eq!(
        logged.iter().filter(|l| l.contains("accept_error")).count(),
        1,
        "{logged:?}"
    );
}

/// Stores 100 messages of 4,000 characters: `/messages?limit=100` is then a 400 KB page.
fn store_large_page(bin: &Binary) {
    for i in 0..100 {
        let body = format!(
            r#"{{"message_id":"big{i}","from":"+1","to":"+2","ts":"2025-01-15T10:00:00Z","text":"{}"}}"#,
            "x".repeat(4000)
        );
        assert_eq!(support::post_signed(bin.addr, &body).status, 200);
    }
}

#[test]
fn idle_connections_keep_no_response_buffer() {
    let bin = binary(&[]);
    store_large_page(&bin);
    let page = b"GET /messages?limit=100 HTTP/1.1\r\nHost: x\r\n\r\n";
    let rss = bin.rss_kib();
    // 300 keep-alive connections that each read a 400 KB page, then stay open and idle: 120 MB
    // if each kept its last response's buffer.
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(bin.addr).expect("connect");
            s.write_all(page).expect("send");
            let mut got = Vec::new();
            let mut chunk = vec![0u8; 1 << 16];
            while parse_response(&got).is_none_or(|r| r.text().len() < 400_000) {
                let n = s.read(&mut chunk).expect("read");
                assert!(n > 0, "closed early");
                got.extend_from_slice(&chunk[..n]);
            }
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let grown = bin.rss_kib().saturating_sub(rss) / 1024;
    assert!(
        grown < 64,
        "RSS grew by {grown} MiB with the idle connections"
    );
    drop(idle);
}

#[test]
fn a_keep_alive_client_that_stops_reading_does_not_hold_the_worker() {
    let bin = binary(&[("WORKERS", "1")]);
    store_large_page(&bin);
    let mut a = TcpStream::connect(bin.addr).expect("connect");
    a.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut first = [0u8; 512];
    let _ = a.read(&mut first).expect("first answer");
    // Right after its answer (while the worker waits for a back-to-back request, its socket in
    // blocking mode), ask for 120 MB of responses (more than loopback buffers hold) and never
    // read them.
    let pages = b"GET /messages?limit=100 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(300);
    let sender = std::thread::spawn(move || {
        let _ = a.write_all(&pages);
        a // kept open, unread, until the test ends
    });
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        bin.assert_serving(PROMPT);
    }
    drop(sender);
}

/// The write timeout counts from the last progress, not from the start of the response: a
/// client that reads slowly but steadily gets every byte, however long it takes.
#[test]
fn a_slow_reader_that_keeps_reading_gets_every_byte() {
    let bin = binary(&[("WRITE_TIMEOUT_MS", "200"), ("IDLE_TIMEOUT_MS", "60000")]);
    store_large_page(&bin);
    let page = b"GET /messages?limit=100 HTTP/1.1\r\nHost: x\r\n\r\n";
    let last = b"GET /messages?limit=100 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut s = TcpStream::connect(bin.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(&[&page.repeat(15)[..], last].concat())
        .expect("send");
    let (started, mut got, mut chunk) = (Instant::now(), Vec::new(), [0u8; 32 * 1024]);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        started.elapsed() > Duration::from_millis(600),
        "read in {:?}: too fast to outlast the write timeout",
        started.elapsed()
    );
    assert_eq!(
        text.matches("HTTP/1.1 200").count(),
        16,
        "{} bytes",
        got.len()
    );
    assert!(text.ends_with("}"), "the last page is whole");
    // Closed once the page asked with `Connection: close` is sent (the poller sent its end),
    // not kept until the idle timeout.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "closed after {:?}",
        started.elapsed()
    );
}

/// A client that pauses before reading its answers: the poller waits for its socket to become
/// writable (not for the write timeout's sweep) and sends the rest as soon as it reads.
#[test]
fn a_client_that_reads_late_gets_the_rest_as_soon_as_it_reads() {
    let bin = binary(&[("WRITE_TIMEOUT_MS", "60000")]);
    store_large_page(&bin);
    let page = b"GET /messages?limit=100 HTTP/1.1\r\nHost: x\r\n\r\n";
    let last = b"GET /messages?limit=100 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut s = TcpStream::connect(bin.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(&[&page.repeat(29)[..], last].concat())
        .expect("send");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert_eq!(
        text.matches("HTTP/1.1 200").count(),
        30,
        "{} bytes",
        got.len()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "read in {:?}",
        started.elapsed()
    );
}

#[test]
fn a_pipelined_burst_larger_than_the_read_cap_is_served_in_full() {
    // A connection buffers at most a head, a body and 16 KiB (here about 18 KiB): 60 requests
    // of 900 bytes sent at once stay partly unread in the socket, with no readiness event left
    // to announce them.
    let bin = binary(&[("MAX_HEADER_BYTES", "1024"), ("MAX_BODY_BYTES", "1024")]);
    let pad = "x".repeat(840);
    let mut raw = String::new();
    for i in 0..60 {
        let close = if i == 59 { "Connection: close\r\n" } else { "" };
        raw += &format!("GET /health/live HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\n{close}\r\n");
    }
    let t = Instant::now();
    let out = String::from_utf8_lossy(&exchange(bin.addr, raw.as_bytes())).into_owned();
    assert_eq!(
        out.matches("HTTP/1.1 200 ").count(),
        60,
        "answered in {:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < PROMPT, "took {:?}", t.elapsed());
}

/// A client that sends its requests and shuts its sending side (`printf ... | nc -N`): the
/// server sees the end of its input with the bytes (not only once another event comes), answers
/// every request and closes, long before the idle timeout.
#[test]
fn a_client_that_half_closes_is_answered_and_closed_at_once() {
    let bin = binary(&[("IDLE_TIMEOUT_MS", "60000")]);
    for raw in [
        &b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(bin.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(raw).expect("send");
        s.shutdown(std::net::Shutdown::Write).expect("half-close");
        let started = Instant::now();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        let answered = text.matches("HTTP/1.1 ").count();
        assert_eq!(answered, raw.windows(5).filter(|w| w == b"GET /").count());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "closed after {:?}",
            started.elapsed()
        );
    }
    bin.assert_serving(PROMPT);
}

/// A connection a worker closes must not swallow the poller's wake-up for the next one handed
/// back: after a keep-alive client's worker waits out its linger, the connection is unregistered
/// until the poller takes it back, so its next request waits for that. Here another client's
/// connection, closed by the other worker, went into the hand-back list first, and the keep-alive
/// client's next request waited for the poller's 100 ms tick about one time in thirty.
#[test]
fn a_closed_connection_does_not_delay_the_next_hand_back() {
    let bin = binary(&[("WORKERS", "2")]);
    let ask = |s: &mut TcpStream, close: bool| {
        let c = if close { "Connection: close\r\n" } else { "" };
        let raw = format!("GET /health/live HTTP/1.1\r\nHost: x\r\n{c}\r\n");
        s.write_all(raw.as_bytes()).expect("send");
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        while !got.ends_with(b"}") {
            let n = s.read(&mut chunk).expect("read");
            assert!(n > 0, "closed early");
            got.extend_from_slice(&chunk[..n]);
        }
    };
    let mut kept = TcpStream::connect(bin.addr).expect("connect");
    kept.set_nodelay(true).expect("nodelay");
    let mut slow = 0;
    for _ in 0..300 {
        ask(&mut kept, false);
        let mut closed = TcpStream::connect(bin.addr).expect("connect");
        ask(&mut closed, true);
        drop(closed);
        std::thread::sleep(Duration::from_millis(4)); // past the 1 ms linger
        let started = Instant::now();
        ask(&mut kept, false);
        slow += usize::from(started.elapsed() > Duration::from_millis(60));
    }
    assert!(slow <= 2, "{slow} of 300 requests waited over 60 ms");
}

#[test]
fn keep_alive_and_pipelining() {
    let bin = binary(&[]);
    let out = exchange(
        bin.addr,
        b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&out);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "404", "200"]);
    // HTTP/1.0 closes unless asked; chunked bodies are read.
    let out = exchange(bin.addr, b"GET /health/live HTTP/1.0\r\n\r\n");
    assert_eq!(parse_response(&out).map(|r| r.status), Some(200));
    let body = r#"{"message_id":"ch","from":"+1","to":"+2","ts":"2025-01-15T10:00:00Z"}"#;
    let sig = support::sign(SECRET, body.as_bytes());
    let (a, b) = body.split_at(20);
    let raw = format!(
        "POST /webhook HTTP/1.1\r\nHost: x\r\nX-Signature: {sig}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    assert_eq!(status_of(raw.as_bytes(), &bin), Some(200));
}

#[test]
fn http_1_1_rules_hosts_targets_chunks_and_expectations() {
    let bin = binary(&[]);
    for (raw, want) in [
        (
            "GET /health/live HTTP/1.1\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            "GET /health/live HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
        ),
        (
            "GET http://example.com/health/live HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
            200,
        ),
        (
            "GET /health/live HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n",
            417,
        ),
        (
            "POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n 2\r\n{}\r\n0\r\n\r\n",
            400,
        ),
        (
            "POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2 \r\n{}\r\n0\r\n\r\n",
            400,
        ),
    ] {
        assert_eq!(status_of(raw.as_bytes(), &bin), Some(want), "{raw:?}");
    }
    // `100 Continue` only for a head that can succeed: without a well-formed signature the
    // answer is the 401 itself, at once, and the body is never waited for.
    let mut s = hold(
        &bin,
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 20\r\n\r\n",
    );
    s.set_read_timeout(Some(PROMPT)).expect("timeout");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 401 "), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    let body = r#"{"message_id":"c1","from":"+1","to":"+2","ts":"2025-01-15T10:00:00Z"}"#;
    let sig = support::sign(SECRET, body.as_bytes());
    let mut s = hold(&bin, format!("POST /webhook HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nX-Signature: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes());
    s.set_read_timeout(Some(PROMPT)).expect("timeout");
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).expect("100 Continue");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(body.as_bytes()).expect("body");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert_eq!(parse_response(&out).map(|r| r.status), Some(200));
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let bin = binary(&[("IDLE_TIMEOUT_MS", "300")]);
    // One that never sends, one idle after a request; each closed 300 ms (plus at most a
    // 100 ms sweep) after its last activity, not before.
    let silent = TcpStream::connect(bin.addr).expect("connect");
    let silent_since = Instant::now();
    let mut kept = hold(&bin, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut head = [0u8; 12];
    kept.read_exact(&mut head).expect("answered");
    let kept_since = Instant::now();
    for (mut c, since) in [(&silent, silent_since), (&kept, kept_since)] {
        c.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        let after = since.elapsed();
        assert!(
            after >= Duration::from_millis(250),
            "not before the timeout: {after:?}"
        );
        assert!(
            after < Duration::from_millis(1500),
            "closed by the idle timeout: {after:?}"
        );
    }
}
