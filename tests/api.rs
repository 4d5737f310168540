//! The HTTP contract, one test per behaviour, against the real `start()` on port 0 with its own
//! SQLite file, over real sockets.

mod support;

use serde_json::{Value, json};
use support::{SECRET, TestServer, request, sign};

fn body(id: &str, from: &str, ts: &str, text: Option<&str>) -> String {
    json!({"message_id": id, "from": from, "to": "+14155550100", "ts": ts, "text": text})
        .to_string()
}

fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["message_id"].as_str().expect("id").to_string())
        .collect()
}

fn total(s: &TestServer) -> i64 {
    s.get("/stats").json()["total_messages"]
        .as_i64()
        .expect("total")
}

#[test]
fn seed_example_roundtrip() {
    let s = TestServer::start();
    let b = r#"{"message_id":"m1","from":"+919876543210","to":"+14155550100","ts":"2025-01-15T10:00:00Z","text":"Hello"}"#;
    let r = s.post_signed(b);
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    assert!(r.header("x-request-id").is_some_and(|id| id.len() == 36));
    let list = s.get("/messages").json();
    assert_eq!(
        list,
        json!({"data": [{"message_id":"m1","from":"+919876543210","to":"+14155550100","ts":"2025-01-15T10:00:00Z","text":"Hello"}],
               "total": 1, "limit": 50, "offset": 0})
    );
}

#[test]
fn duplicate_is_ok_and_leaves_the_row_unchanged() {
    let s = TestServer::start();
    s.put("m1", "+1", "2025-01-15T10:00:00Z", Some("first"));
    let r = s.post_signed(&body("m1", "+2", "2026-01-15T10:00:00Z", Some("second")));
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    let list = s.get("/messages").json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["data"][0]["text"], "first");
    assert_eq!(list["data"][0]["from"], "+1");
}

#[test]
fn concurrent_identical_posts_store_one_row() {
    let s = TestServer::start();
    let b = body("race", "+1", "2025-01-15T10:00:00Z", Some("x"));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| {
                    (0..13)
                        .map(|_| s.post_signed(&b).status)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().expect("thread").iter().all(|&st| st == 200));
        }
    });
    assert_eq!(total(&s), 1);
    let created = s
        .logs
        .lines()
        .iter()
        .filter(|l| l["result"] == "created")
        .count();
    assert_eq!(created, 1, "exactly one request created the row");
}

#[test]
fn signature_failures_are_401_and_store_nothing() {
    let s = TestServer::start();
    let b = body("m1", "+1", "2025-01-15T10:00:00Z", None);
    let post = |headers: &[(&str, &str)], raw: &str| {
        request(s.addr, "POST", "/webhook", headers, raw.as_bytes())
    };
    let good = sign(SECRET, b.as_bytes());
    let other_body = sign(SECRET, b"{}");
    let other_secret = sign("nottestsecret", b.as_bytes());
    for headers in [
        vec![],
        vec![("X-Signature", "")],
        vec![("X-Signature", "invalid123")],
        vec![("X-Signature", other_body.as_str())],
        vec![("X-Signature", other_secret.as_str())],
        vec![("X-Signature", &good[..63])],
        vec![("X-Signature-Other", good.as_str())],
    ] {
        let r = post(&headers, &b);
        assert_eq!(
            (r.status, r.json()),
            (401, json!({"detail": "invalid signature"})),
            "{headers:?}"
        );
    }
    // A wrong signature is refused in every form a right one is accepted in: lower and upper
    // case, with and without the prefix (either case), with surrounding spaces.
    for wrong in [&other_body, &other_secret] {
        for form in [
            wrong.to_string(),
            wrong.to_uppercase(),
            format!("sha256={wrong}"),
            format!("SHA256={}", wrong.to_uppercase()),
            format!("sha256={}", wrong.to_uppercase()),
            format!(" sha256={wrong} "),
        ] {
            let r = post(&[("X-Signature", &form)], &b);
            assert_eq!(r.status, 401, "{form}");
        }
    }
    let short = format!("sha256={}", &good[..63]);
    assert_eq!(post(&[("X-Signature", &short)], &b).status, 401, "{short}");
    // Two X-Signature headers, even both right, are a 401: no "first one wins".
    let two = [
        ("X-Signature", good.as_str()),
        ("X-Signature", good.as_str()),
    ];
    assert_eq!(post(&two, &b).status, 401);
    // A bad body with a bad signature is a 401, not a 422: the signature comes first.
    assert_eq!(post(&[("X-Signature", "00")], "not json").status, 401);
    assert_eq!(total(&s), 0);
    // Upper-case hex and the sha256= prefix are accepted.
    assert_eq!(
        post(&[("X-Signature", &good.to_uppercase())], &b).status,
        200
    );
    for (i, form) in ["sha256={}", "SHA256={}", " sha256={} "].iter().enumerate() {
        let b2 = body(&format!("m{}", i + 2), "+1", "2025-01-15T10:00:00Z", None);
        let sig = form.replace("{}", &sign(SECRET, b2.as_bytes()).to_uppercase());
        assert_eq!(post(&[("X-Signature", &sig)], &b2).status, 200, "{sig}");
    }
    assert_eq!(total(&s), 4, "exactly the four rightly signed messages");
}

#[test]
fn signature_covers_the_raw_bytes() {
    let s = TestServer::start();
    let compact = r#"{"message_id":"w1","from":"+1","to":"+2","ts":"2025-01-15T10:00:00Z"}"#;
    let spaced = "{ \"message_id\": \"w1\",\n  \"from\": \"+1\", \"to\": \"+2\", \"ts\": \"2025-01-15T10:00:00Z\" }\n";
    let sig_compact = sign(SECRET, compact.as_bytes());
    let r = request(
        s.addr,
        "POST",
        "/webhook",
        &[("X-Signature", &sig_compact)],
        spaced.as_bytes(),
    );
    assert_eq!(r.status, 401, "same JSON, other bytes");
    assert_eq!(s.post_signed(spaced).status, 200, "signed as sent");
    assert_eq!(total(&s), 1);
}

#[test]
fn oversized_body_is_413_before_anything_else() {
    let s = TestServer::start_in(
        support::temp_dir(),
        &[("WEBHOOK_SECRET", SECRET), ("MAX_BODY_BYTES", "1000")],
    );
    let big = body("big", "+1", "2025-01-15T10:00:00Z", Some(&"a".repeat(1000)));
    for sig in [sign(SECRET, big.as_bytes()), "bad".to_string()] {
        let r = request(
            s.addr,
            "POST",
            "/webhook",
            &[("X-Signature", &sig)],
            big.as_bytes(),
        );
        assert_eq!(
            (r.status, r.json()),
            (413, json!({"detail": "payload too large"}))
        );
    }
    let fits = body("fits", "+1", "2025-01-15T10:00:00Z", Some(&"a".repeat(900)));
    assert!(fits.len() <= 1000);
    assert_eq!(s.post_signed(&fits).status, 200);
    assert_eq!(total(&s), 1);
}

#[test]
fn without_a_secret_webhooks_are_503_and_not_ready() {
    for vars in [vec![], vec![("WEBHOOK_SECRET", "")]] {
        let s = TestServer::start_in(support::temp_dir(), &vars);
        let b = body("m1", "+1", "2025-01-15T10:00:00Z", None);
        for sig in [sign("", b.as_bytes()), sign(SECRET, b.as_bytes())] {
            let r = request(
                s.addr,
                "POST",
                "/webhook",
                &[("X-Signature", &sig)],
                b.as_bytes(),
            );
            assert_eq!(
                (r.status, r.json()),
                (503, json!({"detail": "WEBHOOK_SECRET not configured"}))
            );
        }
        let r = s.get("/health/ready");
        assert_eq!(
            (r.status, r.json()),
            (
                503,
                json!({"status": "not_ready", "reason": "WEBHOOK_SECRET not configured"})
            )
        );
        assert_eq!(s.metrics().0.get("service_ready"), Some(&0.0));
        let outcome = |r: &str| format!("webhook_requests_total{{result=\"{r}\"}}");
        let counted = |r: &str| s.metrics().0.get(&outcome(r)).copied();
        assert_eq!(counted("not_configured"), Some(2.0));
        assert_eq!(counted("storage_error"), Some(0.0));
        assert_eq!(s.get("/health/live").json(), json!({"status": "ok"}));
        assert_eq!(total(&s), 0);
    }
}

#[test]
fn health_when_ready() {
    let s = TestServer::start();
    for path in ["/health/live", "/health/ready"] {
        let r = s.get(path);
        assert_eq!(
            (r.status, r.json()),
            (200, json!({"status": "ok"})),
            "{path}"
        );
    }
    assert_eq!(s.metrics().0.get("service_ready"), Some(&1.0));
}

/// Posts `raw` signed and returns the 422 detail list.
fn rejected(s: &TestServer, raw: &str) -> Vec<Value> {
    let r = s.post_signed(raw);
    assert_eq!(r.status, 422, "{raw} -> {}", r.text());
    r.json()["detail"].as_array().expect("detail list").clone()
}

fn locs(detail: &[Value]) -> Vec<Value> {
    detail.iter().map(|d| d["loc"].clone()).collect()
}

#[test]
fn validation_errors_are_fastapi_shaped() {
    let s = TestServer::start();
    for raw in ["not json", "{\"a\":", "", "\u{feff}{}"] {
        let d = rejected(&s, raw);
        assert_eq!(
            (locs(&d), d[0]["type"].clone()),
            (vec![json!(["body"])], json!("json_invalid")),
            "{raw}"
        );
    }
    let d = rejected(&s, "[1,2]");
    assert_eq!(
        (locs(&d), d[0]["type"].clone()),
        (vec![json!(["body"])], json!("model_attributes_type"))
    );
    let d = rejected(&s, "{}");
    assert_eq!(
        locs(&d),
        [
            json!(["body", "message_id"]),
            json!(["body", "from"]),
            json!(["body", "to"]),
            json!(["body", "ts"])
        ]
    );
    assert!(
        d.iter()
            .all(|e| e["type"] == "missing" && e["msg"] == "Field required")
    );
    let d = rejected(
        &s,
        r#"{"message_id":7,"from":"+1","to":"+2","ts":"2025-01-15T10:00:00Z","text":["x"]}"#,
    );
    assert_eq!(
        locs(&d),
        [json!(["body", "message_id"]), json!(["body", "text"])]
    );
    assert_eq!(d[0]["type"], "string_type");
    assert_eq!(d[0]["input"], 7);
    // An empty and a blank message_id, each whole entry as pydantic writes it.
    let d = rejected(&s, &body("", "+1", "2025-01-15T10:00:00Z", None));
    let want = json!([{"type": "string_too_short", "loc": ["body", "message_id"],
        "msg": "String should have at least 1 character", "input": "", "ctx": {"min_length": 1}}]);
    assert_eq!(Value::from(d), want);
    let d = rejected(&s, &body(" \t", "+1", "2025-01-15T10:00:00Z", None));
    let want = json!([{"type": "value_error", "loc": ["body", "message_id"],
        "msg": "Value error, message_id must not be blank", "input": " \t"}]);
    assert_eq!(Value::from(d), want);
    let cases = [
        (body("", "+1", "2025-01-15T10:00:00Z", None), "message_id"),
        (body("  ", "+1", "2025-01-15T10:00:00Z", None), "message_id"),
        (
            body("m", "919876543210", "2025-01-15T10:00:00Z", None),
            "from",
        ),
        (body("m", "+", "2025-01-15T10:00:00Z", None), "from"),
        (body("m", "+91 98", "2025-01-15T10:00:00Z", None), "from"),
        (body("m", "+٩١", "2025-01-15T10:00:00Z", None), "from"),
        (
            json!({"message_id":"m","from":"+1","to":"+1-415","ts":"2025-01-15T10:00:00Z"})
                .to_string(),
            "to",
        ),
        (body("m", "+1", "2025-01-15T10:00:00", None), "ts"),
        (body("m", "+1", "2025-01-15T10:00:00+00:00", None), "ts"),
        (body("m", "+1", "2025-01-15T10:00:00z", None), "ts"),
        (body("m", "+1", "2025-01-15 10:00:00Z", None), "ts"),
        (body("m", "+1", "2025-01-15", None), "ts"),
        (body("m", "+1", "2025-02-30T10:00:00Z", None), "ts"),
        (body("m", "+1", "2025-01-15T24:00:00Z", None), "ts"),
        (
            body("m", "+1", "2025-01-15T10:00:00.1234567890Z", None),
            "ts",
        ),
        (
            body("m", "+1", "2025-01-15T10:00:00Z", Some(&"é".repeat(4097))),
            "text",
        ),
    ];
    for (raw, field) in cases {
        let d = rejected(&s, &raw);
        assert_eq!(locs(&d), [json!(["body", field])], "{raw}");
        assert!(d[0]["msg"].is_string() && d[0]["type"].is_string());
    }
    assert_eq!(total(&s), 0, "nothing stored on any failure");
}

#[test]
fn accepted_edge_values() {
    let s = TestServer::start();
    s.put("max", "+1", "2025-01-15T10:00:00Z", Some(&"é".repeat(4096)));
    s.put("empty", "+1", "2025-01-15T10:00:01.123Z", Some(""));
    s.put("null", "+1", "2025-01-15T10:00:02.123456789Z", None);
    let r = s.post_signed(r#"{"message_id":"absent","from":"+1","to":"+2","ts":"2024-02-29T00:00:00Z","extra":{"x":1}}"#);
    assert_eq!(r.status, 200);
    let list = s.get("/messages").json();
    assert_eq!(ids(&list), ["absent", "max", "empty", "null"]);
    assert_eq!(list["data"][0]["text"], Value::Null);
    assert_eq!(list["data"][2]["text"], "");
    assert_eq!(list["data"][3]["text"], Value::Null);
    assert_eq!(
        list["data"][3]["ts"], "2025-01-15T10:00:02.123456789Z",
        "ts returned exactly as sent"
    );
}

#[test]
fn ordering_by_instant_then_id() {
    let s = TestServer::start();
    s.put("b", "+1", "2025-01-15T10:00:00Z", None);
    s.put("a", "+1", "2025-01-15T10:00:00Z", None);
    s.put("c", "+1", "2025-01-15T10:00:00.5Z", None);
    s.put("d", "+1", "2025-01-15T10:00:00.05Z", None);
    s.put("e", "+1", "2025-01-15T09:59:59.999Z", None);
    s.put("B", "+1", "2025-01-15T10:00:00.000Z", None);
    assert_eq!(
        ids(&s.get("/messages").json()),
        ["e", "B", "a", "b", "d", "c"]
    );
    let st = s.get("/stats").json();
    assert_eq!(
        (
            st["first_message_ts"].clone(),
            st["last_message_ts"].clone()
        ),
        (
            json!("2025-01-15T09:59:59.999Z"),
            json!("2025-01-15T10:00:00.5Z")
        )
    );
}

#[test]
fn pagination_edges() {
    let s = TestServer::start();
    for i in 0..7 {
        s.put(
            &format!("m{i}"),
            "+1",
            &format!("2025-01-15T10:00:0{i}Z"),
            None,
        );
    }
    let page = s.get("/messages?limit=3&offset=2").json();
    assert_eq!(
        (
            ids(&page),
            page["total"].clone(),
            page["limit"].clone(),
            page["offset"].clone()
        ),
        (
            vec!["m2".to_string(), "m3".into(), "m4".into()],
            json!(7),
            json!(3),
            json!(2)
        )
    );
    assert_eq!(ids(&s.get("/messages?limit=1").json()), ["m0"]);
    assert_eq!(ids(&s.get("/messages?limit=100&offset=6").json()), ["m6"]);
    let past = s.get("/messages?offset=1000").json();
    assert_eq!((ids(&past).len(), past["total"].clone()), (0, json!(7)));
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("offset=1e3", "offset"),
        ("since=not-a-date", "since"),
    ] {
        let r = s.get(&format!("/messages?{q}"));
        assert_eq!(r.status, 422, "{q}");
        assert_eq!(r.json()["detail"][0]["loc"], json!(["query", field]), "{q}");
    }
    assert_eq!(
        s.get("/messages?limit=&offset=").json()["limit"],
        50,
        "empty is absent"
    );
}

#[test]
fn filters_alone_and_combined() {
    let s = TestServer::start();
    s.put(
        "a",
        "+919876543210",
        "2025-01-15T09:00:00Z",
        Some("Hello world"),
    );
    s.put(
        "b",
        "+919876543210",
        "2025-01-15T10:00:00Z",
        Some("Ärger 100%_done"),
    );
    s.put(
        "c",
        "+14155550100",
        "2025-01-15T10:30:00Z",
        Some("hello again"),
    );
    s.put("d", "+14155550100", "2025-01-16T00:00:00Z", None);
    s.put(
        "e",
        "+919876543210",
        "2025-01-15T10:00:00.5Z",
        Some("100 percent"),
    );
    let q = |query: &str| ids(&s.get(&format!("/messages?{query}")).json());
    assert_eq!(q("from=%2B919876543210"), ["a", "b", "e"]);
    assert_eq!(
        q("from=+919876543210"),
        ["a", "b", "e"],
        "raw + arrives as a space"
    );
    assert_eq!(q("from=919876543210"), Vec::<String>::new());
    assert_eq!(q("since=2025-01-15T10:00:00Z"), ["b", "e", "c", "d"]);
    assert_eq!(q("since=2025-01-15T10:00:00.1Z"), ["e", "c", "d"]);
    assert_eq!(
        q("since=2025-01-15T15:30:00%2B05:30"),
        ["b", "e", "c", "d"],
        "offset converted to UTC"
    );
    assert_eq!(
        q("since=2025-01-15T15:30:00+05:30"),
        ["b", "e", "c", "d"],
        "raw + in the offset"
    );
    assert_eq!(q("since=2025-01-16"), ["d"], "a date alone is midnight UTC");
    assert_eq!(q("q=hello"), ["a", "c"]);
    assert_eq!(q("q=HELLO"), ["a", "c"]);
    assert_eq!(q("q=%C3%A4rger"), ["b"], "Unicode case-insensitive");
    assert_eq!(q("q=100%25"), ["b"], "% is literal");
    assert_eq!(
        q("q=%_"),
        ["b"],
        "a bad escape is kept literally: `%_` is in b"
    );
    assert_eq!(q("q=_"), ["b"], "_ is literal");
    assert_eq!(q("q=0%25_d"), ["b"]);
    assert_eq!(
        q("from=%2B919876543210&since=2025-01-15T10:00:00Z&q=hello&limit=10"),
        Vec::<String>::new()
    );
    assert_eq!(
        q("from=%2B919876543210&since=2025-01-15T09:00:00Z&q=100"),
        ["b", "e"]
    );
    let combined = s.get("/messages?from=%2B919876543210&q=100&limit=1").json();
    assert_eq!(
        (ids(&combined), combined["total"].clone()),
        (vec!["b".to_string()], json!(2))
    );
    assert_eq!(q("from=&since=&q="), ["a", "b", "e", "c", "d"]);
}

#[test]
fn stats_top_ten_with_ties() {
    let s = TestServer::start();
    assert_eq!(
        s.get("/stats").json(),
        json!({"total_messages":0,"senders_count":0,"messages_per_sender":[],"first_message_ts":null,"last_message_ts":null})
    );
    // 12 senders: +100 has 3, +101..+103 have 2, the rest 1; ties break by `from` ascending.
    let mut n = 0;
    for (sender, count) in [("+100", 3), ("+103", 2), ("+101", 2), ("+102", 2)]
        .into_iter()
        .chain((104..112).map(|i| (["+1", &i.to_string()[1..]].concat().leak() as &str, 1)))
    {
        for _ in 0..count {
            s.put(
                &format!("m{n}"),
                sender,
                &format!("2025-01-15T10:00:{:02}Z", n % 60),
                None,
            );
            n += 1;
        }
    }
    let st = s.get("/stats").json();
    assert_eq!(st["total_messages"], 17);
    assert_eq!(st["senders_count"], 12);
    let top: Vec<(String, i64)> = st["messages_per_sender"]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| {
            (
                e["from"].as_str().expect("from").to_string(),
                e["count"].as_i64().expect("count"),
            )
        })
        .collect();
    let want: Vec<(String, i64)> = [
        ("+100", 3),
        ("+101", 2),
        ("+102", 2),
        ("+103", 2),
        ("+104", 1),
        ("+105", 1),
        ("+106", 1),
        ("+107", 1),
        ("+108", 1),
        ("+109", 1),
    ]
    .iter()
    .map(|(f, c)| (f.to_string(), *c))
    .collect();
    assert_eq!(top, want);
}

#[test]
fn since_past_the_calendar_is_an_empty_page_not_an_error() {
    let s = TestServer::start();
    s.put("m1", "+1", "9999-12-31T23:59:59Z", None);
    for since in ["9999-12-31T23:30:00-01:00", "0000-01-01T00:00:00%2B01:00"] {
        let r = s.get(&format!("/messages?since={since}"));
        assert_eq!(r.status, 200, "{since}: {}", r.text());
        let want = if since.starts_with('9') { 0 } else { 1 };
        assert_eq!(r.json()["total"], want, "{since}");
    }
}

#[test]
fn stats_first_and_last_break_ties_by_id() {
    let s = TestServer::start();
    // Two messages share the earliest instant and two the latest, each pair in two spellings of
    // that instant, so only the tie-break (message_id, byte order) decides which `ts` is shown.
    s.put("b", "+1", "2025-01-15T09:00:00Z", None);
    s.put("a", "+1", "2025-01-15T09:00:00.000Z", None);
    s.put("mid", "+1", "2025-01-15T10:00:00Z", None);
    s.put("y", "+1", "2025-01-15T11:00:00.0Z", None);
    s.put("z", "+1", "2025-01-15T11:00:00.00Z", None);
    s.put("Z", "+1", "2025-01-15T11:00:00Z", None);
    let st = s.get("/stats").json();
    assert_eq!(st["first_message_ts"], "2025-01-15T09:00:00.000Z", "id a");
    assert_eq!(st["last_message_ts"], "2025-01-15T11:00:00.00Z", "id z");
    let list = s.get("/messages").json();
    assert_eq!(ids(&list), ["a", "b", "mid", "Z", "y", "z"]);
}

#[test]
fn unknown_paths_and_wrong_methods() {
    let s = TestServer::start();
    let r = s.get("/nope");
    assert_eq!((r.status, r.json()), (404, json!({"detail": "Not Found"})));
    let r = s.get("/webhook");
    assert_eq!(
        (r.status, r.json(), r.header("allow")),
        (405, json!({"detail": "Method Not Allowed"}), Some("POST"))
    );
    for path in [
        "/messages",
        "/stats",
        "/health/live",
        "/health/ready",
        "/metrics",
    ] {
        let r = request(s.addr, "POST", path, &[], b"");
        assert_eq!(
            (r.status, r.header("allow")),
            (405, Some("GET, HEAD")),
            "{path}"
        );
    }
    let r = request(s.addr, "DELETE", "/messages?x=1", &[], b"");
    assert_eq!(r.status, 405);
}

#[test]
fn restart_on_the_same_file_keeps_every_row() {
    let s = TestServer::start();
    for i in 0..20 {
        s.put(
            &format!("m{i:02}"),
            "+1",
            "2025-01-15T10:00:00Z",
            Some(&format!("text {i}")),
        );
    }
    let before = s.get("/messages?limit=100").json();
    let s = s.restart(&[("WEBHOOK_SECRET", SECRET)]);
    assert_eq!(s.get("/messages?limit=100").json(), before);
    assert_eq!(
        s.post_signed(&body("m00", "+9", "2025-01-15T10:00:00Z", None))
            .status,
        200
    );
    assert_eq!(
        total(&s),
        20,
        "a duplicate after restart is still a duplicate"
    );
}

#[test]
fn secret_rotation_accepts_the_previous_secret() {
    let s = TestServer::start_in(
        support::temp_dir(),
        &[
            ("WEBHOOK_SECRET", "new"),
            ("WEBHOOK_SECRET_PREVIOUS", "old"),
        ],
    );
    for (i, secret) in ["new", "old"].iter().enumerate() {
        let b = body(&format!("r{i}"), "+1", "2025-01-15T10:00:00Z", None);
        let r = request(
            s.addr,
            "POST",
            "/webhook",
            &[("X-Signature", &sign(secret, b.as_bytes()))],
            b.as_bytes(),
        );
        assert_eq!(r.status, 200, "signed with {secret}");
    }
    let b = body("r2", "+1", "2025-01-15T10:00:00Z", None);
    let r = request(
        s.addr,
        "POST",
        "/webhook",
        &[("X-Signature", &sign("other", b.as_bytes()))],
        b.as_bytes(),
    );
    assert_eq!(r.status, 401);
    // The previous secret alone never makes the service ready.
    let s = TestServer::start_in(support::temp_dir(), &[("WEBHOOK_SECRET_PREVIOUS", "old")]);
    assert_eq!(s.get("/health/ready").status, 503);
}

#[test]
fn openapi_document_lists_exactly_the_routes() {
    let s = TestServer::start();
    let doc = s.get("/openapi.json").json();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .expect("operations")
                .keys()
                .map(move |m| (path.clone(), m.to_uppercase()))
        })
        .collect();
    let mut routed: Vec<(String, String)> = webhook_api::router::ROUTES
        .iter()
        .flat_map(|(p, methods)| methods.split(", ").map(|m| (p.to_string(), m.to_string())))
        .filter(|(_, m)| m != "HEAD") // HEAD is GET's, not documented apart
        .collect();
    documented.sort();
    routed.sort();
    assert_eq!(documented, routed);
    // What the router really answers: every documented operation is routed (neither 404 nor
    // 405), every other common method on a documented path is a 405 naming the documented one,
    // and paths the document lacks are 404.
    for (path, method) in &documented {
        let r = request(s.addr, method, path, &[], b"");
        assert!(
            ![404, 405].contains(&r.status),
            "{method} {path} is routed: {}",
            r.status
        );
        let allow: Vec<&str> = documented
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, m)| m.as_str())
            .collect();
        for other in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if !allow.contains(&other) {
                let r = request(s.addr, other, path, &[], b"");
                let allow: Vec<&str> = allow
                    .iter()
                    .map(|m| if *m == "GET" { "GET, HEAD" } else { m })
                    .collect();
                assert_eq!(
                    (r.status, r.header("allow")),
                    (405, Some(allow.join(", ").as_str())),
                    "{other} {path}"
                );
            }
        }
    }
    for path in [
        "/",
        "/message",
        "/webhook/",
        "/health",
        "/stats/x",
        "/metrics.json",
    ] {
        assert_eq!(s.get(path).status, 404, "{path}");
    }
}

#[test]
fn nul_characters_are_stored_and_searchable() {
    let s = TestServer::start();
    s.put("nul", "+1", "2025-01-15T10:00:00Z", Some("ab\u{0}cd"));
    s.put("plain", "+1", "2025-01-15T10:00:01Z", Some("abcd"));
    let list = s.get("/messages").json();
    assert_eq!(
        list["data"][0]["text"], "ab\u{0}cd",
        "returned exactly as sent"
    );
    for (q, want) in [
        ("b%00c", vec!["nul"]),
        ("ab%00cd", vec!["nul"]),
        ("%00", vec!["nul"]),
        ("abcd", vec!["plain"]),
        ("bcd", vec!["plain"]),
    ] {
        let r = s.get(&format!("/messages?q={q}"));
        assert_eq!(r.status, 200, "q={q}");
        assert_eq!(ids(&r.json()), want, "q={q}");
    }
}

#[test]
fn caps_on_ids_and_numbers_and_duplicate_keys_are_422() {
    let s = TestServer::start();
    let long_id = "i".repeat(257);
    let long_number = format!("+{}", "1".repeat(32));
    for (raw, field, kind) in [
        (body(&long_id, "+1", "2025-01-15T10:00:00Z", None), "message_id", "string_too_long"),
        (body("m1", &long_number, "2025-01-15T10:00:00Z", None), "from", "string_too_long"),
        (
            r#"{"message_id":"A","from":"+1","to":"+2","ts":"2025-01-15T10:00:00Z","message_id":"B"}"#.to_string(),
            "message_id",
            "value_error",
        ),
    ] {
        let d = rejected(&s, &raw);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0]["loc"].clone(), d[0]["type"].clone()), (json!(["body", field]), json!(kind)));
    }
    // At the caps, accepted.
    s.put(
        &"i".repeat(256),
        &format!("+{}", "1".repeat(31)),
        "2025-01-15T10:00:00Z",
        None,
    );
    assert_eq!(total(&s), 1);
}

#[test]
fn reads_have_a_length_cap_on_q_and_a_time_budget() {
    let s = TestServer::start();
    let d = s.get(&format!("/messages?q={}", "a".repeat(201))).json();
    assert_eq!(d["detail"][0]["loc"], json!(["query", "q"]));
    assert_eq!(d["detail"][0]["type"], "string_too_long");
    assert_eq!(
        s.get(&format!("/messages?q={}", "a".repeat(200))).status,
        200
    );
    // Enough rows that a search takes more than a millisecond, then a 1 ms budget.
    let dir = s.dir.clone();
    drop(s);
    let store = webhook_api::store::Store::open(
        &webhook_api::config::DbLocation::File(dir.join("app.db")),
        std::time::Duration::from_secs(5),
        0,
        std::time::Duration::from_secs(2),
        15,
    )
    .expect("open");
    let rows = (0..30_000)
        .map(|i| {
            let m = webhook_api::store::Message {
                message_id: format!("m{i}"),
                from: "+1".into(),
                to: "+2".into(),
                ts: "2025-01-15T10:00:00Z".into(),
                text: Some(format!("text number {i}")),
            };
            (m, "2025-01-15T10:00:00.000000000Z".to_string(), None)
        })
        .collect::<Vec<_>>();
    for chunk in rows.chunks(10_000) {
        (store.insert_all(chunk.to_vec(), "2025-01-15T10:00:00.000Z")).expect("insert");
    }
    drop(store);
    let s = TestServer::start_in(dir, &[("WEBHOOK_SECRET", SECRET), ("READ_BUDGET_MS", "1")]);
    let r = s.get("/messages?q=r%201");
    assert_eq!(
        (r.status, r.json()),
        (503, json!({"detail": "query exceeded its time budget"}))
    );
    assert_eq!(s.metrics().get("db_reads_over_budget_total"), 1.0);
    assert_eq!(s.get("/health/live").status, 200, "the server goes on");
}

#[test]
fn expect_100_continue_only_for_a_webhook_that_can_succeed() {
    use std::io::{Read, Write};
    let s = TestServer::start();
    let head = |sig: &str| {
        format!(
            "POST /webhook HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n{sig}Content-Length: 60\r\n\r\n"
        )
    };
    // No signature: the 401 at once, never a 100.
    let mut c = std::net::TcpStream::connect(s.addr).expect("connect");
    c.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .expect("timeout");
    c.write_all(head("").as_bytes()).expect("send");
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 401 "), "{text}");
    // A well-formed signature: 100 Continue, the body is awaited.
    let mut c = std::net::TcpStream::connect(s.addr).expect("connect");
    c.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .expect("timeout");
    let sig = format!("X-Signature: {}\r\n", "a".repeat(64));
    c.write_all(head(&sig).as_bytes()).expect("send");
    let mut interim = [0u8; 25];
    c.read_exact(&mut interim).expect("an interim answer");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
}
