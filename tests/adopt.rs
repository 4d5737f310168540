//! Adopting in place a database the FastAPI service wrote (its DDL exactly as SQLAlchemy creates
//! it): every row served byte for byte in instant-then-id order, /stats and filters agree with a
//! model of the rows, restarts serve the same, and a kill -9 midway through a million rows loses
//! nothing. The real binary on a real file throughout.

mod support;

use rusqlite::Connection;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{Binary, SECRET, request};

/// The FastAPI service's table, as SQLAlchemy writes it.
const LEGACY_DDL: &str = "CREATE TABLE messages (
	message_id VARCHAR NOT NULL, 
	from_msisdn VARCHAR NOT NULL, 
	to_msisdn VARCHAR NOT NULL, 
	ts VARCHAR NOT NULL, 
	text TEXT, 
	created_at VARCHAR NOT NULL, 
	PRIMARY KEY (message_id)
);
CREATE INDEX ix_messages_message_id ON messages (message_id);
CREATE INDEX ix_messages_ts ON messages (ts);
CREATE INDEX ix_messages_from_msisdn ON messages (from_msisdn);";

/// One legacy row and the instant key it must sort by, worked out from the instant it was
/// written from (not by parsing its `ts`).
#[derive(Clone, Debug)]
struct Row {
    id: String,
    from: String,
    ts: String,
    text: Option<String>,
    key: String,
}

/// Rows in every form the FastAPI service accepted, from a fixed seed.
fn legacy_rows(n: usize) -> Vec<Row> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let senders = [
        "+919876543210",
        "+14155550100",
        "+९१९८७६",
        "+٤٤٢٠٧٩",
        "+15550001111",
    ];
    (0..n)
        .map(|i| {
            let (y, mo, d) = (2024 + next(2), 1 + next(12), 1 + next(28));
            let (h, mi, s) = (next(24), next(60), next(60));
            let digits: String = (0..1 + next(12))
                .map(|_| char::from(b'0' + next(10) as u8))
                .collect();
            let date = format!("{y:04}-{mo:02}-{d:02}");
            let nanos = |digits: &str| format!("{:0<9}", &digits[..digits.len().min(9)]);
            let (ts, key_time) = match i % 8 {
                0 => (
                    format!("{date}T{h:02}:{mi:02}:{s:02}Z"),
                    format!("{h:02}:{mi:02}:{s:02}.000000000"),
                ),
                1 => (
                    format!("{date}T{h:02}:{mi:02}Z"),
                    format!("{h:02}:{mi:02}:00.000000000"),
                ),
                2 => (
                    format!("{date} {h:02}:{mi:02}:{s:02}Z"),
                    format!("{h:02}:{mi:02}:{s:02}.000000000"),
                ),
                3 | 4 => (
                    format!("{date}T{h:02}:{mi:02}:{s:02}.{digits}Z"),
                    format!("{h:02}:{mi:02}:{s:02}.{}", nanos(&digits)),
                ),
                5 => (
                    format!("{date} {h:02}:{mi:02}:{s:02},{digits}Z"),
                    format!("{h:02}:{mi:02}:{s:02}.{}", nanos(&digits)),
                ),
                6 => (format!("{date}T{h:02}Z"), format!("{h:02}:00:00.000000000")),
                _ => (String::new(), String::new()),
            };
            let (ts, key) = if ts.is_empty() {
                // No form we know: kept, and sorted by its own text.
                let odd = [
                    "2025-13-01T00:00:00Z",
                    "yesterday Z",
                    "2025-01-15T10:00:00+00:00Z",
                ][i % 3];
                (odd.to_string(), odd.to_string())
            } else {
                (ts, format!("{date}T{key_time}Z"))
            };
            let text = match i % 5 {
                0 => None,
                1 => Some(format!("Ünïcödé HELLO {i}")),
                _ => Some(format!("hello {i}")),
            };
            Row {
                id: format!("m{i:06}"),
                from: senders[i % senders.len()].into(),
                ts,
                text,
                key,
            }
        })
        .collect()
}

fn legacy_db(path: &Path, rows: &[Row]) {
    let mut c = Connection::open(path).expect("open");
    c.execute_batch(LEGACY_DDL).expect("DDL");
    let tx = c.transaction().expect("tx");
    for r in rows {
        tx.execute(
            "INSERT INTO messages VALUES (?1, ?2, '+10000000000', ?3, ?4, '2025-01-15T10:00:00Z')",
            (&r.id, &r.from, &r.ts, &r.text),
        )
        .expect("insert");
    }
    tx.commit().expect("commit");
}

/// A hash of every row's six columns, in rowid order.
fn six_columns(path: &Path) -> (u64, i64) {
    let c = Connection::open(path).expect("open");
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut stmt = c
        .prepare("SELECT message_id, from_msisdn, to_msisdn, ts, text, created_at FROM messages ORDER BY rowid")
        .expect("prepare");
    let mut rows = stmt.query([]).expect("query");
    let mut n = 0;
    while let Some(r) = rows.next().expect("row") {
        for i in 0..6 {
            r.get_ref(i)
                .expect("column")
                .as_bytes_or_null()
                .expect("text")
                .hash(&mut h);
        }
        n += 1;
    }
    (h.finish(), n)
}

/// The real binary on `file`, with the test secret.
fn start(file: &Path) -> Binary {
    let url = format!("sqlite:///{}", file.display());
    Binary::start(&[("DATABASE_URL", &url), ("WEBHOOK_SECRET", SECRET)])
}

/// Waits for the log line of `event` (at most `within`), returning it.
fn wait_for(bin: &Binary, event: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let line = bin
            .lines
            .recv_timeout(deadline - Instant::now())
            .expect(event);
        let v: Value = serde_json::from_str(&line).expect("JSON line");
        if v["event"] == event {
            return v;
        }
    }
}

fn get(bin: &Binary, path: &str) -> Value {
    let r = request(bin.addr, "GET", path, &[], b"");
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// Every row through /messages, page by page.
fn all_pages(bin: &Binary, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let page = get(
            bin,
            &format!("/messages?limit=100&offset={}{query}", out.len()),
        );
        let data = page["data"].as_array().expect("data").clone();
        if data.is_empty() {
            return out;
        }
        out.extend(data);
    }
}

/// Percent-encodes every byte but ASCII letters and digits.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn served_as_the_model(bin: &Binary, rows: &[Row]) {
    let mut model = rows.to_vec();
    model.sort_by(|a, b| (&a.key, &a.id).cmp(&(&b.key, &b.id)));
    let want: Vec<Value> = model
        .iter()
        .map(|r| json!({"message_id": r.id, "from": r.from, "to": "+10000000000", "ts": r.ts, "text": r.text}))
        .collect();
    assert!(
        all_pages(bin, "") == want,
        "every row, by instant then id, byte for byte"
    );
    let mut per_sender: BTreeMap<&str, u64> = BTreeMap::new();
    for r in rows {
        *per_sender.entry(&r.from).or_default() += 1;
    }
    let mut top: Vec<(&str, u64)> = per_sender.iter().map(|(f, n)| (*f, *n)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let top: Vec<Value> = top
        .iter()
        .map(|(f, n)| json!({"from": f, "count": n}))
        .collect();
    assert_eq!(
        get(bin, "/stats"),
        json!({"total_messages": rows.len(), "senders_count": per_sender.len(), "messages_per_sender": top,
               "first_message_ts": model[0].ts, "last_message_ts": model[model.len() - 1].ts})
    );
    let since = "2025-03-01T00:00:00Z";
    let q = "hello 1";
    let total = |query: &str| get(bin, &format!("/messages?limit=1{query}"))["total"].clone();
    for (query, n) in [
        (
            format!("&from={}", encode("+९१९८७६")),
            rows.iter().filter(|r| r.from == "+९१९८७६").count(),
        ),
        (
            format!("&since={since}"),
            rows.iter()
                .filter(|r| r.key.as_str() >= "2025-03-01T00:00:00.000000000Z")
                .count(),
        ),
        (
            format!("&q={}", encode(q)),
            rows.iter()
                .filter(|r| {
                    r.text
                        .as_ref()
                        .is_some_and(|t| t.to_lowercase().contains(q))
                })
                .count(),
        ),
    ] {
        assert_eq!(total(&query), json!(n), "{query}");
    }
}

#[test]
fn a_fastapi_database_is_adopted_in_place_and_served_by_our_rules() {
    let dir = support::temp_dir();
    let file = dir.join("fastapi.db");
    let rows = legacy_rows(20_000);
    legacy_db(&file, &rows);
    let (before, n) = six_columns(&file);
    let mut bin = start(&file);
    let done = wait_for(&bin, "adopted", Duration::from_secs(120));
    assert_eq!(
        (done["rows_done"].clone(), done["rows_total"].clone()),
        (json!(n), json!(n))
    );
    assert_eq!(get(&bin, "/health/ready"), json!({"status": "ok"}));
    served_as_the_model(&bin, &rows);
    // A new message after adoption, then a restart: the same rows, and the new one.
    let body =
        json!({"message_id": "new-1", "from": "+1", "to": "+2", "ts": "2026-01-01T00:00:00Z"})
            .to_string();
    assert_eq!(support::post_signed(bin.addr, &body).status, 200);
    assert!(bin.terminate().success());
    let bin = start(&file);
    let new = get(&bin, "/messages?from=%2B1");
    assert_eq!(
        (new["data"][0]["message_id"].clone(), new["total"].clone()),
        (json!("new-1"), json!(1))
    );
    assert_eq!(get(&bin, "/stats")["total_messages"], 20_001);
    let first = get(&bin, "/messages?limit=100");
    assert_eq!(
        all_pages(&bin, "")[..100],
        first["data"].as_array().expect("data")[..]
    );
    drop(bin);
    // Every row of the FastAPI service kept byte for byte (the new one is after them in rowid).
    let c = Connection::open(&file).expect("open");
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 2, "adopted, then migrated to the current schema");
    c.execute("DELETE FROM messages WHERE message_id = 'new-1'", [])
        .expect("delete");
    assert_eq!(six_columns(&file), (before, n));
}

#[test]
fn kill_9_midway_through_adopting_a_million_rows_loses_nothing() {
    let n: i64 = std::env::var("ADOPT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = support::temp_dir();
    let file = dir.join("big.db");
    let c = Connection::open(&file).expect("open");
    c.execute_batch(LEGACY_DDL).expect("DDL");
    c.execute(
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?1)
         INSERT INTO messages SELECT printf('id-%07d', i), '+91' || (i % 1000), '+1',
             printf('2025-%02d-%02d %02d:%02d:%02d.%dZ', 1 + i % 12, 1 + i % 28, i % 24, i % 60, (i / 60) % 60, i % 1000),
             CASE WHEN i % 3 = 0 AND i < ?1 - 1 THEN NULL ELSE 'text ' || i END, '2025-01-15T10:00:00Z' FROM k",
        [n],
    )
    .expect("rows");
    drop(c);
    let (before, rows) = six_columns(&file);
    assert_eq!(rows, n);
    let mut bin = start(&file);
    let progress = wait_for(&bin, "adopting", Duration::from_secs(120));
    assert!(
        progress["rows_done"].as_i64() < Some(n),
        "killed midway: {progress}"
    );
    let r = request(bin.addr, "GET", "/health/ready", &[], b"");
    assert_eq!(r.status, 503, "not ready while adopting");
    assert!(
        r.json()["reason"]
            .as_str()
            .unwrap_or("")
            .contains("adopting")
    );
    assert_eq!(
        request(bin.addr, "GET", "/health/live", &[], b"").status,
        200
    );
    bin.child.kill().expect("kill -9");
    bin.child.wait().expect("reaped");
    let bin = start(&file);
    let done = wait_for(&bin, "adopted", Duration::from_secs(600));
    assert_eq!(done["rows_total"], json!(n));
    let stats = get(&bin, "/stats");
    assert_eq!(
        (
            stats["total_messages"].clone(),
            stats["senders_count"].clone()
        ),
        (json!(n), json!(1000))
    );
    let q = get(&bin, &format!("/messages?q=text%20{}&limit=1", n - 1));
    assert_eq!(q["total"], json!(1), "the text index covers the last batch");
    drop(bin);
    assert_eq!(
        six_columns(&file),
        (before, n),
        "every row kept byte for byte"
    );
    let c = Connection::open(&file).expect("open");
    let missing: i64 = c
        .query_row(
            "SELECT count(*) FROM messages WHERE ts_key IS NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(missing, 0);
}
