//! Real senders over real sockets, against the real `start()` on its own SQLite file: Meta's
//! WhatsApp Cloud API (the registration handshake, deliveries of several entries and messages,
//! status updates, signatures over the exact bytes, the body cap, the 422s) and Standard
//! Webhooks on /webhook (fresh timestamps, the tolerance both ways, signature lists, rotation).
//! The copy-paste examples of docs/senders.md are run here too, with curl and openssl.

mod support;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::io::{Read, Write};
use support::{Resp, SECRET, TestServer, request, sign};

const APP_SECRET: &str = "meta-app-secret";
const VERIFY_TOKEN: &str = "verify-me";
const WHSEC: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn whatsapp_server() -> TestServer {
    TestServer::start_in(
        support::temp_dir(),
        &[
            ("WEBHOOK_SECRET", SECRET),
            ("WHATSAPP_APP_SECRET", APP_SECRET),
            ("WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN),
        ],
    )
}

/// A delivery in the shape Meta sends (its documentation's examples, two entries): a text and an
/// image for one business number, and the same text again (the same wamid) in the second entry.
/// Non-ASCII text is escaped as Meta escapes it.
const DELIVERY: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":"1749416383","text":{"body":"Does it come in another color? \u00e4\ud83d\ude00"},"type":"text"},{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUJGNjA2RTYyNkVBMjk3QTc1MgA=","timestamp":"1749416390","type":"image","image":{"caption":"this one","mime_type":"image/jpeg","sha256":"K8CeDAKeISbBYqEC6aHpR0F1ZVKcQmWAgVNdkKYfwvk=","id":"1003383421387256"}}]},"field":"messages"}]},{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":"1749416383","text":{"body":"Does it come in another color? \u00e4\ud83d\ude00"},"type":"text"}]},"field":"messages"}]}]}"#;

/// Status updates only (sent, delivered, read, and one Meta may add later).
const STATUSES: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"statuses":[{"id":"wamid.X1","status":"sent","timestamp":"1750263773","recipient_id":"16505551234"},{"id":"wamid.X1","status":"delivered","timestamp":"1750263774","recipient_id":"16505551234"},{"id":"wamid.X1","status":"read","timestamp":"1750263775","recipient_id":"16505551234"},{"id":"wamid.X1","status":"played","timestamp":"1750263776","recipient_id":"16505551234"}]},"field":"messages"}]}]}"#;

fn post_whatsapp(s: &TestServer, body: &[u8], signature: Option<&str>) -> Resp {
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend(signature.map(|sig| ("X-Hub-Signature-256", sig)));
    request(s.addr, "POST", "/webhook/whatsapp", &headers, body)
}

fn meta_signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", sign(secret, body))
}

/// The service's database file, opened read-only beside the running service (WAL).
fn open_db(s: &TestServer) -> rusqlite::Connection {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    rusqlite::Connection::open_with_flags(s.dir.join("app.db"), flags).expect("open")
}

fn total(s: &TestServer) -> i64 {
    s.get("/stats").json()["total_messages"]
        .as_i64()
        .expect("total")
}

fn handshake(s: &TestServer, query: &str) -> Resp {
    s.get(&format!("/webhook/whatsapp?{query}"))
}

#[test]
fn handshake_answers_the_challenge_as_plain_text_only_to_the_right_token() {
    let s = whatsapp_server();
    let r = handshake(
        &s,
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=verify-me",
    );
    assert_eq!(
        (r.status, r.header("content-type"), r.text().as_str()),
        (200, Some("text/plain; charset=utf-8"), "1158201444")
    );
    for query in [
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=verify-you",
        "hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token=verify-me",
        "hub.challenge=1158201444&hub.verify_token=verify-me",
        "hub.mode=subscribe&hub.challenge=1158201444",
        "hub.mode=subscribe&hub.verify_token=verify-me",
    ] {
        let r = handshake(&s, query);
        assert_eq!(
            (r.status, r.json()),
            (403, json!({"detail": "verification failed"})),
            "{query}"
        );
    }
    let m = s.metrics();
    assert_eq!(
        (
            m.get(r#"whatsapp_requests_total{result="verified"}"#),
            m.get(r#"whatsapp_requests_total{result="forbidden"}"#)
        ),
        (1.0, 5.0)
    );
    // No token configured: nothing verifies, not even an empty token.
    let s = TestServer::start();
    let r = handshake(&s, "hub.mode=subscribe&hub.challenge=1&hub.verify_token=");
    assert_eq!(r.status, 403);
}

#[test]
fn a_delivery_stores_each_message_once_in_one_commit() {
    let s = whatsapp_server();
    let sig = meta_signature(APP_SECRET, DELIVERY.as_bytes());
    let commits = |s: &TestServer| s.metrics().get("db_commit_seconds_count");
    let before = commits(&s);
    let r = post_whatsapp(&s, DELIVERY.as_bytes(), Some(&sig));
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    assert_eq!(
        commits(&s) - before,
        1.0,
        "all the delivery's messages in one commit"
    );
    let list = s.get("/messages").json();
    let text = "Does it come in another color? ä😀";
    assert_eq!(
        list,
        json!({"data": [
            {"message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", "from": "+16505551234",
             "to": "+15550783881", "ts": "2025-06-08T20:59:43Z", "text": text},
            {"message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUJGNjA2RTYyNkVBMjk3QTc1MgA=", "from": "+16505551234",
             "to": "+15550783881", "ts": "2025-06-08T20:59:50Z", "text": null}],
         "total": 2, "limit": 50, "offset": 0})
    );
    let stats = s.get("/stats").json();
    assert_eq!(
        (
            &stats["total_messages"],
            &stats["senders_count"],
            &stats["messages_per_sender"]
        ),
        (
            &json!(2),
            &json!(1),
            &json!([{"from": "+16505551234", "count": 2}])
        )
    );
    // Meta retries: the same delivery again stores nothing new.
    let r = post_whatsapp(&s, DELIVERY.as_bytes(), Some(&sig));
    assert_eq!(r.status, 200);
    assert_eq!(total(&s), 2);
    let m = s.metrics();
    let get = |series: &str| m.get(series);
    assert_eq!(
        [
            get(r#"whatsapp_requests_total{result="created"}"#),
            get(r#"whatsapp_requests_total{result="duplicate"}"#),
            get(r#"whatsapp_messages_total{result="created"}"#),
            get(r#"whatsapp_messages_total{result="duplicate"}"#),
            get(r#"webhook_requests_total{result="created"}"#),
        ],
        [1.0, 1.0, 2.0, 4.0, 0.0]
    );
    // The image is kept with its type and the message object as Meta sent it.
    {
        let db = open_db(&s);
        let rows: Vec<(String, Option<String>, Value)> = db
            .prepare("SELECT message_id, type, raw FROM messages ORDER BY ts_key")
            .and_then(|mut st| {
                st.query_map([], |r| {
                    let raw: String = r.get(2)?;
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        serde_json::from_str(&raw).expect("raw is JSON"),
                    ))
                })?
                .collect()
            })
            .expect("rows");
        let sent: Value = serde_json::from_str(DELIVERY).expect("delivery");
        let messages = &sent["entry"][0]["changes"][0]["value"]["messages"];
        assert_eq!(rows[0].1.as_deref(), Some("text"));
        assert_eq!(
            (rows[1].1.as_deref(), &rows[1].2),
            (Some("image"), &messages[1])
        );
        assert_eq!(rows[0].2, messages[0]);
    }
    // One log line per request, with its outcome.
    let lines: Vec<Value> = s
        .logs
        .lines()
        .into_iter()
        .filter(|l| l["path"] == "/webhook/whatsapp")
        .collect();
    let results: Vec<&Value> = lines.iter().map(|l| &l["result"]).collect();
    assert_eq!(results, [&json!("created"), &json!("duplicate")]);
    assert!(
        !s.logs.text().contains("another color"),
        "texts are never logged"
    );
}

#[test]
fn status_updates_are_acknowledged_and_counted_not_stored() {
    let s = whatsapp_server();
    let sig = meta_signature(APP_SECRET, STATUSES.as_bytes());
    let r = post_whatsapp(&s, STATUSES.as_bytes(), Some(&sig));
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    assert_eq!(total(&s), 0);
    let m = s.metrics();
    let status = |st: &str| m.get(&format!("whatsapp_statuses_total{{status=\"{st}\"}}"));
    assert_eq!(
        ["sent", "delivered", "read", "failed", "other"].map(status),
        [1.0, 1.0, 1.0, 0.0, 1.0]
    );
    assert_eq!(
        m.get(r#"whatsapp_requests_total{result="acknowledged"}"#),
        1.0
    );
    // A change of another field (a template's status, say) is acknowledged too.
    let other = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "message_template_status_update", "value": {"event": "APPROVED"}}]}]})
    .to_string();
    let r = post_whatsapp(
        &s,
        other.as_bytes(),
        Some(&meta_signature(APP_SECRET, other.as_bytes())),
    );
    assert_eq!((r.status, total(&s)), (200, 0));
}

#[test]
fn a_bad_missing_or_reserialized_signature_is_401_and_stores_nothing() {
    let s = whatsapp_server();
    let body = DELIVERY.as_bytes();
    let right = meta_signature(APP_SECRET, body);
    let reserialized =
        serde_json::to_string(&serde_json::from_str::<Value>(DELIVERY).expect("json"))
            .expect("ser");
    assert_ne!(
        reserialized, DELIVERY,
        "a proxy's bytes differ (the escapes are decoded)"
    );
    for (what, body, sig) in [
        ("missing", body.to_vec(), None),
        (
            "other secret",
            body.to_vec(),
            Some(meta_signature("other", body)),
        ),
        ("empty", body.to_vec(), Some(String::new())),
        (
            "truncated",
            body.to_vec(),
            Some(right[..right.len() - 2].to_string()),
        ),
        (
            "no sha256= and wrong",
            body.to_vec(),
            Some(sign("other", body)),
        ),
        (
            "re-serialized body",
            reserialized.into_bytes(),
            Some(right.clone()),
        ),
    ] {
        let r = post_whatsapp(&s, &body, sig.as_deref());
        assert_eq!(
            (r.status, r.json()),
            (401, json!({"detail": "invalid signature"})),
            "{what}"
        );
    }
    // Two signature headers: which one would count?
    let r = request(
        s.addr,
        "POST",
        "/webhook/whatsapp",
        &[
            ("X-Hub-Signature-256", &right),
            ("X-Hub-Signature-256", &right),
        ],
        body,
    );
    assert_eq!(r.status, 401);
    // Asked for `100 Continue` without a signature: refused at once, the body never sent.
    let head = "POST /webhook/whatsapp HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n";
    let r = support::parse_response(&support::exchange(s.addr, head.as_bytes())).expect("reply");
    assert_eq!(r.status, 401);
    // A bad body with a bad signature is a 401: the signature is checked before parsing.
    assert_eq!(post_whatsapp(&s, b"{", Some("sha256=00")).status, 401);
    assert_eq!(total(&s), 0);
    let m = s.metrics();
    assert_eq!(
        m.get(r#"whatsapp_requests_total{result="invalid_signature"}"#),
        9.0
    );
    assert_eq!(
        m.get(r#"webhook_requests_total{result="invalid_signature"}"#),
        0.0
    );
    // A well-formed signature with `100 Continue` asked: the interim answer, then the body.
    let mut c = std::net::TcpStream::connect(s.addr).expect("connect");
    (c.set_read_timeout(Some(std::time::Duration::from_secs(5)))).expect("timeout");
    let head = format!(
        "POST /webhook/whatsapp HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nX-Hub-Signature-256: {right}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).expect("head");
    let mut interim = [0u8; 25];
    c.read_exact(&mut interim).expect("an interim answer");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(body).expect("body");
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).expect("answer");
    assert_eq!(support::parse_response(&raw).map(|r| r.status), Some(200));
}

#[test]
fn app_secret_rotation_and_no_secret() {
    let s = TestServer::start_in(
        support::temp_dir(),
        &[
            ("WHATSAPP_APP_SECRET", "new"),
            ("WHATSAPP_APP_SECRET_PREVIOUS", APP_SECRET),
        ],
    );
    let body = DELIVERY.as_bytes();
    for secret in ["new", APP_SECRET] {
        let r = post_whatsapp(&s, body, Some(&meta_signature(secret, body)));
        assert_eq!(r.status, 200, "{secret}");
    }
    assert_eq!(total(&s), 2);
    let s = TestServer::start();
    let r = post_whatsapp(&s, body, Some(&meta_signature(APP_SECRET, body)));
    assert_eq!(
        (r.status, r.json()),
        (503, json!({"detail": "WHATSAPP_APP_SECRET not configured"}))
    );
}

#[test]
fn what_is_not_a_cloud_api_payload_is_422_naming_where() {
    let s = whatsapp_server();
    let delivery: Value = serde_json::from_str(DELIVERY).expect("json");
    let mut no_id = delivery.clone();
    let second = &mut no_id["entry"][0]["changes"][0]["value"]["messages"][1];
    second.as_object_mut().expect("message").remove("id");
    let mut bad_from = delivery.clone();
    bad_from["entry"][1]["changes"][0]["value"]["messages"][0]["from"] = json!("1650x");
    let mut bad_time = delivery.clone();
    bad_time["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = json!(1749416383);
    let mut no_metadata = delivery.clone();
    no_metadata["entry"][0]["changes"][0]["value"]
        .as_object_mut()
        .expect("value")
        .remove("metadata");
    let at = |path: &[Value]| Value::Array([&[json!("body")], path].concat());
    let m = |e: usize, c: usize, i: usize| {
        [
            json!("entry"),
            json!(e),
            json!("changes"),
            json!(c),
            json!("value"),
            json!("messages"),
            json!(i),
        ]
    };
    for (body, kind, loc) in [
        (
            json!({"object": "page", "entry": []}),
            "value_error",
            at(&[json!("object")]),
        ),
        (
            json!({"object": "whatsapp_business_account"}),
            "missing",
            at(&[json!("entry")]),
        ),
        (
            json!({"object": "whatsapp_business_account", "entry": {}}),
            "list_type",
            at(&[json!("entry")]),
        ),
        (
            no_id,
            "missing",
            at(&[&m(0, 0, 1)[..], &[json!("message_id")]].concat()),
        ),
        (
            bad_from,
            "string_pattern_mismatch",
            at(&[&m(1, 0, 0)[..], &[json!("from")]].concat()),
        ),
        (
            bad_time,
            "string_type",
            at(&[&m(0, 0, 0)[..], &[json!("timestamp")]].concat()),
        ),
        (
            no_metadata,
            "missing",
            at(&[
                json!("entry"),
                json!(0),
                json!("changes"),
                json!(0),
                json!("value"),
                json!("metadata"),
            ]),
        ),
    ] {
        let body = body.to_string();
        let r = post_whatsapp(
            &s,
            body.as_bytes(),
            Some(&meta_signature(APP_SECRET, body.as_bytes())),
        );
        assert_eq!(r.status, 422, "{body}");
        let detail = &r.json()["detail"];
        assert_eq!(
            (&detail[0]["type"], &detail[0]["loc"]),
            (&json!(kind), &loc),
            "{body}"
        );
        assert!(detail[0]["msg"].is_string() && detail[0].get("input").is_some());
    }
    let r = post_whatsapp(&s, b"[1]", Some(&meta_signature(APP_SECRET, b"[1]")));
    assert_eq!(r.json()["detail"][0]["loc"], json!(["body"]));
    assert_eq!(total(&s), 0, "nothing of a refused delivery is stored");
}

#[test]
fn deliveries_have_their_own_body_cap() {
    let s = whatsapp_server();
    // 2 MiB: over MAX_BODY_BYTES (64 KiB), under the WhatsApp cap (3 MiB).
    let mut delivery: Value = serde_json::from_str(DELIVERY).expect("json");
    delivery["entry"][0]["id"] = json!("x".repeat(2 << 20));
    let body = delivery.to_string();
    let r = post_whatsapp(
        &s,
        body.as_bytes(),
        Some(&meta_signature(APP_SECRET, body.as_bytes())),
    );
    assert_eq!((r.status, total(&s)), (200, 2));
    // The same body chunked, its chunks sent after the head in writes of their own, so the
    // decoder resumes over many reads: the delivery cap still applies (200, not 413).
    let sig = meta_signature(APP_SECRET, body.as_bytes());
    let mut c = std::net::TcpStream::connect(s.addr).expect("connect");
    let head = format!(
        "POST /webhook/whatsapp HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nX-Hub-Signature-256: {sig}\r\n\r\n"
    );
    c.write_all(head.as_bytes()).expect("head");
    for chunk in body.as_bytes().chunks(64 << 10) {
        std::thread::sleep(std::time::Duration::from_millis(2));
        c.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .expect("size");
        c.write_all(chunk)
            .and_then(|_| c.write_all(b"\r\n"))
            .expect("chunk");
    }
    c.write_all(b"0\r\n\r\n").expect("last chunk");
    let mut answer = String::new();
    c.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    // At both caps at once, a head of MAX_HEADER_BYTES (8,192, its blank line included) and a
    // body of exactly 3 MiB: the connection's buffer holds the whole request (the poller reads
    // 16 KiB at a time, so a buffer cap even one byte short of it leaves the request unread).
    let pad = (3 << 20) - body.len() + (2 << 20);
    delivery["entry"][0]["id"] = json!("x".repeat(pad));
    let body = delivery.to_string();
    assert_eq!(body.len(), 3 << 20);
    let sig = meta_signature(APP_SECRET, body.as_bytes());
    let head = format!(
        "POST /webhook/whatsapp HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\nX-Hub-Signature-256: {sig}\r\nX-Pad: ",
        body.len()
    );
    let head = format!("{head}{}\r\n\r\n", "p".repeat(8192 - head.len() - 4));
    assert_eq!(head.len(), 8192);
    let answer = support::exchange(s.addr, &[head.as_bytes(), body.as_bytes()].concat());
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let big = vec![b' '; (3 << 20) + 1];
    let r = post_whatsapp(&s, &big, Some(&meta_signature(APP_SECRET, &big)));
    assert_eq!(
        (r.status, r.json()),
        (413, json!({"detail": "payload too large"}))
    );
    // /webhook keeps its own cap.
    let r = request(
        s.addr,
        "POST",
        "/webhook",
        &[("X-Signature", &sign(SECRET, &big[..70_000]))],
        &big[..70_000],
    );
    assert_eq!(r.status, 413);
    let m = s.metrics();
    assert_eq!(
        (
            m.get(r#"whatsapp_requests_total{result="payload_too_large"}"#),
            m.get(r#"webhook_requests_total{result="payload_too_large"}"#)
        ),
        (1.0, 1.0)
    );
}

// ---- Standard Webhooks on /webhook ----

/// Standard base64 with padding (written here, apart from the service's decoder).
fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                A[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// `v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>` under the key of `secret` (after
/// `whsec_`, base64; else its bytes).
fn standard_signature(secret: &str, id: &str, ts: i64, body: &str) -> String {
    let key = match secret.strip_prefix("whsec_") {
        Some(b) => webhook_api::signature::base64(b).expect("base64 secret"),
        None => secret.as_bytes().to_vec(),
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    format!("v1,{}", b64(&mac.finalize().into_bytes()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn post_standard(s: &TestServer, headers: &[(&str, &str)], body: &str) -> Resp {
    request(s.addr, "POST", "/webhook", headers, body.as_bytes())
}

fn message(id: &str) -> String {
    json!({"message_id": id, "from": "+919876543210", "to": "+14155550100", "ts": "2025-01-15T10:00:00Z", "text": "hi"})
        .to_string()
}

#[test]
fn the_reference_test_vector_encodes_as_the_libraries_do() {
    assert_eq!(
        standard_signature(
            WHSEC,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            r#"{"email":"test@example.com","username":"test_user"}"#
        ),
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
}

#[test]
fn standard_webhooks_verify_within_the_tolerance_either_way() {
    let s = TestServer::start_in(
        support::temp_dir(),
        &[
            ("WEBHOOK_SECRET", WHSEC),
            ("WEBHOOK_SECRET_PREVIOUS", "raw-old-secret"),
        ],
    );
    let post = |id: &str, ts: i64, sig: &str| {
        let body = message(id);
        let ts = ts.to_string();
        let headers = [
            ("webhook-id", id),
            ("webhook-timestamp", &ts),
            ("webhook-signature", sig),
        ];
        post_standard(&s, &headers, &body)
    };
    let signed = |id: &str, ts: i64| standard_signature(WHSEC, id, ts, &message(id));
    let t = now();
    assert_eq!(post("msg_1", t, &signed("msg_1", t)).status, 200);
    // A list with one good entry among others (a rotation in progress, another version).
    let list = format!("v1,{} v2,abc {} v1,", b64(&[7; 32]), signed("msg_2", t));
    assert_eq!(post("msg_2", t, &list).status, 200);
    // The previous secret, a raw one (its bytes are the key).
    let old = standard_signature("raw-old-secret", "msg_3", t, &message("msg_3"));
    assert_eq!(post("msg_3", t, &old).status, 200);
    // Within 300 s either way (a margin for the seconds this test takes).
    assert_eq!(
        post("msg_4", t - 295, &signed("msg_4", t - 295)).status,
        200
    );
    assert_eq!(
        post("msg_5", t + 295, &signed("msg_5", t + 295)).status,
        200
    );
    let good = signed("msg_6", t);
    // From a fresh clock, and 302: `t` is seconds old by now, and the service's clock may pass a
    // second boundary the test's has not yet (301 ahead of the test is then 300: inside).
    let ahead = now() + 302;
    for (what, ts, sig) in [
        ("v1, alone", t, "v1,".to_string()),
        ("truncated", t, good[..good.len() - 4].to_string()),
        (
            "truncated to 16 bytes",
            t,
            format!(
                "v1,{}",
                b64(&webhook_api::signature::base64(&good[3..]).expect("b64")[..16])
            ),
        ),
        ("301 s old", t - 301, signed("msg_6", t - 301)),
        ("302 s ahead", ahead, signed("msg_6", ahead)),
        (
            "other secret",
            t,
            standard_signature("whsec_b3RoZXI=", "msg_6", t, &message("msg_6")),
        ),
        ("signed for another id", t, signed("msg_7", t)),
    ] {
        let r = post("msg_6", ts, &sig);
        assert_eq!(
            (r.status, r.json()),
            (401, json!({"detail": "invalid signature"})),
            "{what}"
        );
    }
    let body = message("msg_6");
    let ts = t.to_string();
    for headers in [
        vec![("webhook-id", "msg_6"), ("webhook-timestamp", ts.as_str())],
        vec![
            ("webhook-id", "msg_6"),
            ("webhook-signature", good.as_str()),
        ],
        vec![
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", good.as_str()),
        ],
        vec![
            ("webhook-id", "msg_6"),
            ("webhook-timestamp", "soon"),
            ("webhook-signature", good.as_str()),
        ],
        vec![
            ("webhook-id", "msg_6"),
            ("webhook-timestamp", &ts),
            ("webhook-signature", &good),
            ("webhook-signature", &good),
        ],
        // A webhook-* header makes it a Standard Webhooks request: X-Signature is not a fallback.
        vec![
            ("webhook-id", "msg_6"),
            ("X-Signature", &sign(WHSEC, body.as_bytes())),
        ],
    ] {
        let r = post_standard(&s, &headers, &body);
        assert_eq!(r.status, 401, "{headers:?}");
    }
    assert_eq!(total(&s), 5);
    // X-Signature requests as before, the secret's bytes as written (whsec_ and all).
    let body = message("msg_8");
    assert_eq!(
        post_standard(&s, &[("X-Signature", &sign(WHSEC, body.as_bytes()))], &body).status,
        200
    );
    assert_eq!(total(&s), 6);
}

/// A database written before schema version 2 (no `type`, no `raw`) is brought forward on open,
/// keeping its rows, and takes WhatsApp messages after.
#[test]
fn a_version_1_file_is_migrated_on_open() {
    let mut s = whatsapp_server();
    s.put("old", "+1", "2025-01-15T10:00:00Z", Some("kept"));
    s.stop();
    let db = rusqlite::Connection::open(s.dir.join("app.db")).expect("open");
    db.execute_batch(
        "ALTER TABLE messages DROP COLUMN type; ALTER TABLE messages DROP COLUMN raw;
         PRAGMA user_version = 1;",
    )
    .expect("back to version 1");
    drop(db);
    let s = s.restart(&[("WHATSAPP_APP_SECRET", APP_SECRET)]);
    let r = post_whatsapp(
        &s,
        DELIVERY.as_bytes(),
        Some(&meta_signature(APP_SECRET, DELIVERY.as_bytes())),
    );
    assert_eq!((r.status, total(&s)), (200, 3));
    assert_eq!(s.get("/messages?limit=1").json()["data"][0]["text"], "kept");
    {
        let db = open_db(&s);
        let v: i64 = db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        let types: Vec<Option<String>> = db
            .prepare("SELECT type FROM messages ORDER BY ts_key")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .expect("types");
        assert_eq!(
            (v, types),
            (2, vec![None, Some("text".into()), Some("image".into())])
        );
    }
}

/// Every shell example of docs/senders.md, run with its section's variables (the `export` lines
/// the page shows) against a server configured with them, prints what the page shows under it.
#[test]
fn the_docs_examples_run_as_written() {
    for tool in ["curl", "openssl", "base64", "od"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return support::skip_or_fail("docs_examples", &format!("{tool} is not installed"));
        }
    }
    let page = include_str!("../docs/senders.md");
    // (language, text) of every fenced block, in order.
    let mut blocks = Vec::new();
    let mut rest = page;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let (lang, body) = after.split_once('\n').expect("a fence line");
        let end = body.find("\n```").expect("a closing fence");
        blocks.push((lang.trim(), &body[..end]));
        rest = &body[end + 4..];
    }
    let vars: Vec<(String, String)> = blocks
        .iter()
        .filter_map(|(_, text)| text.strip_prefix("export "))
        .flat_map(|line| line.split_whitespace())
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| k != "URL")
        .collect();
    let config: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let s = TestServer::start_in(support::temp_dir(), &config);
    let url = format!("http://{}", s.addr);
    let mut ran = 0;
    for (i, (lang, script)) in blocks.iter().enumerate() {
        if *lang != "sh" {
            continue;
        }
        let (next_lang, want) = blocks.get(i + 1).expect("each example shows its output");
        assert_eq!(*next_lang, "text", "the output under {script}");
        let out = std::process::Command::new("sh")
            .args(["-c", script])
            .env("URL", &url)
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("sh runs");
        let got = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            (out.status.success(), got.trim()),
            (true, want.trim()),
            "{script}"
        );
        ran += 1;
    }
    assert_eq!(ran, 5, "every example ran");
    assert_eq!(total(&s), 2);
}
