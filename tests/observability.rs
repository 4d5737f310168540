//! Logs and metrics: exact counter deltas for known traffic, one JSON line per request that
//! matches `X-Request-ID`, no secret or signature in the output, promtool accepts /metrics.

mod support;

use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;
use support::{Binary, SECRET, TestServer, request, sign};

fn msg(id: &str) -> String {
    json!({"message_id": id, "from": "+1", "to": "+2", "ts": "2025-01-15T10:00:00Z", "text": "secret-ish text"}).to_string()
}

#[test]
fn counters_move_by_exactly_the_traffic_sent() {
    let s = TestServer::start_in(
        support::temp_dir(),
        &[("WEBHOOK_SECRET", SECRET), ("MAX_BODY_BYTES", "200")],
    );
    let before = s.metrics();
    s.post_signed(&msg("a")); // created
    s.post_signed(&msg("a")); // duplicate
    request(
        s.addr,
        "POST",
        "/webhook",
        &[("X-Signature", "00")],
        msg("b").as_bytes(),
    ); // invalid_signature
    s.post_signed("{}"); // validation_error
    s.post_signed(&"x".repeat(201)); // payload_too_large
    s.get("/nope"); // 404, path="other"
    s.get("/nope/again?x=1");
    request(s.addr, "BREW", "/webhook", &[], b""); // 405, method="other"
    let after = s.metrics();
    let delta = |series: &str| after.get(series) - before.get(series);
    for (result, n) in [
        ("created", 1.0),
        ("duplicate", 1.0),
        ("invalid_signature", 1.0),
        ("validation_error", 1.0),
        ("payload_too_large", 1.0),
        ("not_configured", 0.0),
        ("storage_error", 0.0),
    ] {
        assert_eq!(
            delta(&format!("webhook_requests_total{{result=\"{result}\"}}")),
            n,
            "{result}"
        );
    }
    let http = |m: &str, p: &str, st: u16| {
        delta(&format!(
            "http_requests_total{{method=\"{m}\",path=\"{p}\",status=\"{st}\"}}"
        ))
    };
    assert_eq!(http("POST", "/webhook", 200), 2.0);
    assert_eq!(http("POST", "/webhook", 401), 1.0);
    assert_eq!(http("POST", "/webhook", 422), 1.0);
    assert_eq!(http("POST", "/webhook", 413), 1.0);
    assert_eq!(http("GET", "other", 404), 2.0);
    assert_eq!(http("other", "/webhook", 405), 1.0);
    let count = delta("request_latency_seconds_count{method=\"POST\",path=\"/webhook\"}");
    assert_eq!(count, 5.0);
    assert_eq!(
        delta("request_latency_seconds_bucket{method=\"POST\",path=\"/webhook\",le=\"+Inf\"}"),
        count
    );
    assert!(after.get("request_latency_seconds_sum{method=\"POST\",path=\"/webhook\"}") > 0.0);
    assert!(
        after.0.keys().all(|k| !k.contains("/nope")),
        "raw paths never become labels"
    );
    assert!(after.get("process_resident_memory_bytes") > 0.0);
    assert!(after.get("process_open_fds") > 0.0);
    assert!(after.get("process_start_time_seconds") > 1.7e9);
}

#[test]
fn metrics_content_type_and_families() {
    let s = TestServer::start();
    s.get("/health/live");
    let r = s.get("/metrics");
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.text();
    assert!(text.ends_with('\n'));
    for (family, kind) in [
        ("http_requests_total", "counter"),
        ("webhook_requests_total", "counter"),
        ("request_latency_seconds", "histogram"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_start_time_seconds", "gauge"),
        ("process_open_fds", "gauge"),
    ] {
        assert!(text.contains(&format!("# HELP {family} ")), "{family} HELP");
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "{family} TYPE"
        );
    }
    assert!(
        !text.contains("inf\"") && !text.contains(" inf"),
        "+Inf spelled the Prometheus way"
    );
}

#[test]
fn one_json_line_per_request_matching_the_request_id() {
    let s = TestServer::start();
    let b = msg("m1");
    let sig = sign(SECRET, b.as_bytes());
    let responses = vec![
        s.post_signed(&b),
        s.post_signed(&b),
        request(
            s.addr,
            "POST",
            "/webhook",
            &[("X-Signature", "deadbeef")],
            b.as_bytes(),
        ),
        s.post_signed(r#"{"message_id":"v1","from":"bad"}"#),
        s.get("/messages?limit=5&q=secret"),
        s.get("/nope"),
    ];
    let lines = s.logs.lines();
    assert_eq!(
        lines.len(),
        1 + responses.len(),
        "the start-up line and exactly one line per request, nothing else"
    );
    for r in &responses {
        let id = r.header("x-request-id").expect("X-Request-ID");
        let matching: Vec<&Value> = lines.iter().filter(|l| l["request_id"] == id).collect();
        assert_eq!(matching.len(), 1, "exactly one line for request {id}");
        let l = matching[0];
        assert_eq!(l["status"], r.status);
        for field in ["ts", "level", "method", "path", "latency_ms"] {
            assert!(!l[field].is_null(), "{field} in {l}");
        }
        assert!(
            l["ts"]
                .as_str()
                .is_some_and(|t| t.len() == 24 && t.ends_with('Z')),
            "ms precision: {l}"
        );
    }
    let by = |i: usize| {
        lines
            .iter()
            .find(|l| l["request_id"] == responses[i].header("x-request-id").expect("id"))
            .expect("line")
    };
    assert_eq!(
        (
            by(0)["result"].clone(),
            by(0)["dup"].clone(),
            by(0)["message_id"].clone(),
            by(0)["level"].clone()
        ),
        (json!("created"), json!(false), json!("m1"), json!("INFO"))
    );
    assert_eq!(
        (by(1)["result"].clone(), by(1)["dup"].clone()),
        (json!("duplicate"), json!(true))
    );
    assert_eq!(
        (by(2)["result"].clone(), by(2)["level"].clone()),
        (json!("invalid_signature"), json!("ERROR"))
    );
    assert_eq!(
        (
            by(3)["result"].clone(),
            by(3)["message_id"].clone(),
            by(3)["level"].clone()
        ),
        (json!("validation_error"), json!("v1"), json!("WARNING"))
    );
    assert_eq!(
        (by(4)["path"].clone(), by(4).get("result")),
        (json!("/messages"), None),
        "path without query"
    );
    assert_eq!(by(5)["level"], "WARNING");
    let text = s.logs.text();
    for never in [SECRET, sig.as_str(), "deadbeef", "secret-ish text"] {
        assert!(!text.contains(never), "{never:?} must never be logged");
    }
}

#[test]
fn log_level_filters_every_line() {
    let s = TestServer::start_in(
        support::temp_dir(),
        &[("WEBHOOK_SECRET", SECRET), ("LOG_LEVEL", "warning")],
    );
    s.get("/health/live");
    s.get("/nope");
    request(s.addr, "POST", "/webhook", &[], b"{}");
    let levels: Vec<Value> = s.logs.lines().iter().map(|l| l["level"].clone()).collect();
    assert_eq!(
        levels,
        [json!("INFO"), json!("WARNING"), json!("ERROR")],
        "the 200 is filtered; the start-up line (INFO) is written at any level"
    );
    assert_eq!(s.logs.lines()[0]["event"], "startup");
}

#[test]
fn the_binary_writes_only_json_lines_and_exits_cleanly_on_sigterm() {
    let dir = support::temp_dir();
    let db = format!("sqlite:///{}", dir.join("app.db").display());
    let mut bin = Binary::start(&[("DATABASE_URL", &db), ("WEBHOOK_SECRET", SECRET)]);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let addr = bin.addr;
            scope.spawn(move || {
                for i in 0..25 {
                    let b = msg(&format!("t{t}-{i}"));
                    let sig = sign(SECRET, b.as_bytes());
                    assert_eq!(
                        request(
                            addr,
                            "POST",
                            "/webhook",
                            &[("X-Signature", &sig)],
                            b.as_bytes()
                        )
                        .status,
                        200
                    );
                    request(addr, "GET", "/messages?limit=3", &[], b"");
                }
            });
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    let status = bin.terminate();
    assert!(status.success(), "exit 0 on SIGTERM, got {status}");
    std::thread::sleep(Duration::from_millis(100));
    let lines = bin.drain();
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(
        parsed.iter().filter(|l| l["result"] == "created").count(),
        100
    );
    assert_eq!(
        parsed
            .iter()
            .filter(|l| l["request_id"].is_string())
            .count(),
        200
    );
    assert_eq!(
        parsed.len(),
        202,
        "start-up, one line per request, shutdown: nothing else on stdout"
    );
    assert_eq!(parsed[0]["event"], "startup");
    assert_eq!(
        parsed.last().map(|l| l["event"].clone()),
        Some(json!("shutdown"))
    );
    assert!(!lines.iter().any(|l| l.contains(SECRET)));
}

#[test]
fn promtool_accepts_the_live_exposition() {
    let Some(promtool) = support::promtool() else {
        return;
    };
    let s = TestServer::start();
    s.post_signed(&msg("a"));
    s.get("/nope");
    s.get("/messages");
    let text = s.get("/metrics").text();
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("promtool output");
    let said = [out.stdout, out.stderr].concat();
    assert!(
        out.status.success() && said.is_empty(),
        "promtool: {}",
        String::from_utf8_lossy(&said)
    );
}

#[test]
fn no_client_input_makes_a_log_line_long() {
    let s = TestServer::start();
    let id = "\u{1}".repeat(10_000);
    let body = json!({"message_id": id, "from": "+1", "to": "+2", "ts": "2025-01-15T10:00:00Z"});
    let r = s.post_signed(&body.to_string());
    assert_eq!(r.status, 422, "an id that long is refused");
    let path = format!("/{}", "\"".repeat(7000));
    let method = "X".repeat(1000);
    let raw = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    support::exchange(s.addr, raw.as_bytes());
    let text = s.logs.text();
    assert!(text.contains("\\u0001"), "the id was logged, cut");
    for line in text.lines() {
        assert!(line.len() < 4096, "{} bytes: {}", line.len(), &line[..200]);
        serde_json::from_str::<Value>(line).expect("still one JSON object");
    }
}

/// The plans a listing is read by, each in its DEBUG request line (`plan`), chosen from the
/// filters' sizes: a sender with 3 rows beside one with 300, a word in 2 rows, a `since` that
/// leaves 5 rows. At INFO the field is left out.
#[test]
fn each_listing_logs_the_plan_its_filters_chose_at_debug() {
    let s = TestServer::start();
    for i in 0..300 {
        let text = if i < 2 {
            "a rareword here"
        } else {
            "common text"
        };
        let ts = format!("2025-01-15T10:{:02}:{:02}Z", i / 60, i % 60);
        s.put(&format!("b{i:03}"), "+2", &ts, Some(text));
    }
    for i in 0..3 {
        s.put(
            &format!("a{i}"),
            "+1",
            "2025-01-15T11:00:00Z",
            Some("common"),
        );
    }
    let late = "2025-01-15T10:04:55Z"; // +2's last five rows
    for (query, plan, total) in [
        ("", "time", 303),
        ("?from=%2B2", "sender", 300),
        (&format!("?since={late}"), "time", 8),
        ("?q=rareword", "text", 2),
        ("?q=common", "text", 301),
        (
            "?from=%2B1&q=common&since=2025-01-15T10:00:00Z",
            "sender",
            3,
        ),
        ("?from=%2B2&q=rareword", "text", 2),
        (&format!("?from=%2B2&q=common&since={late}"), "time", 5),
    ] {
        let r = s.get(&format!("/messages{query}"));
        assert_eq!(r.json()["total"], total, "{query}");
        let id = r.header("x-request-id").expect("request id").to_string();
        let lines = s.logs.lines();
        let line = lines
            .iter()
            .find(|l| l["request_id"] == id)
            .expect("its line");
        assert_eq!(line["plan"], plan, "{query}");
    }
    let mut s = s.restart(&[("WEBHOOK_SECRET", SECRET), ("LOG_LEVEL", "INFO")]);
    let r = s.get("/messages?from=%2B1");
    assert_eq!(r.json()["total"], 3);
    let lines = s.logs.lines();
    let line = lines
        .iter()
        .rev()
        .find(|l| l["path"] == "/messages")
        .expect("its line");
    assert_eq!(line.get("plan"), None, "{line}");
    s.stop();
}
