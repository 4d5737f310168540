//! The data's life over the real binary and a real SQLite file: retention by age of receipt
//! (every total, /stats and `q` equal to a model of the rows left, the file smaller, a SIGKILL
//! in the middle of pruning harmless), erasure of one sender (POST /erase: gone from every endpoint
//! and from the text index, the others untouched, unsigned or wrongly signed erasing nothing),
//! and the disk budget on a small tmpfs (files under it, every webhook 200).

mod support;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{Binary, SECRET, TestServer, request, sign};
use webhook_api::config::DbLocation;
use webhook_api::store::{Message, Store};

/// A generated row and what the model needs of it.
#[derive(Clone, Debug)]
struct Row {
    m: Message,
    key: String,
}

const WORDS: [&str; 8] = [
    "alpha", "Beta", "gamma", "Ärger", "straße", "delta", "x", "50%_off",
];

/// `n` rows: seven senders, `ts` spread over ten days out of order, a few words of text (one in
/// ten none). Row `i` has id `m{i}`.
fn generate(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| {
            let t = (i as u64 * 7919) % 864_000;
            let ts = format!(
                "2025-01-{:02}T{:02}:{:02}:{:02}Z",
                10 + t / 86400,
                t / 3600 % 24,
                t / 60 % 60,
                t % 60
            );
            let text = (i % 10 != 0).then(|| {
                let w = |k: usize| WORDS[(i / k + k) % WORDS.len()];
                format!("{} {} {}", w(1), w(3), w(7))
            });
            let m = Message {
                message_id: format!("m{i}"),
                from: format!("+{}", 100 + i % 7),
                to: "+1".into(),
                ts: ts.clone(),
                text,
            };
            let key = webhook_api::ts::parse_message_ts(&ts).expect("ts");
            Row { m, key }
        })
        .collect()
}

/// Writes `rows` to a new database at `db` through the service's own writer, `per_day` rows per
/// day of receipt, the first `per_day` received `first_day` days ago, each next group two days
/// later (odd numbers of days, so no group sits on a whole-day retention boundary).
fn fill(db: &Path, rows: &[Row], per_day: usize, first_day: u64) {
    let s = Store::open(
        &DbLocation::File(db.into()),
        Duration::from_secs(5),
        0,
        Duration::from_secs(2),
        15,
    )
    .expect("open");
    for (k, group) in rows.chunks(per_day).enumerate() {
        let created = webhook_api::ts::utc_days_ago(first_day - 2 * k as u64);
        for chunk in group.chunks(500) {
            let batch = chunk.iter().map(|r| (r.m.clone(), r.key.clone(), None));
            s.insert_all(batch.collect(), &created).expect("insert");
        }
    }
}

fn get(addr: SocketAddr, path: &str) -> Value {
    let r = request(addr, "GET", path, &[], b"");
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

fn metric(addr: SocketAddr, series: &str) -> f64 {
    let r = request(addr, "GET", "/metrics", &[], b"");
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn fold(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

/// Every filter's total and its first page, and /stats, against the model of `rows`.
fn assert_matches_model(addr: SocketAddr, rows: &[Row]) {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| (&a.key, &a.m.message_id).cmp(&(&b.key, &b.m.message_id)));
    let senders: Vec<String> = (100..107).map(|n| format!("+{n}")).collect();
    let mut froms: Vec<Option<&str>> = vec![None];
    froms.extend(senders.iter().map(|s| Some(s.as_str())));
    for from in &froms {
        for since in [
            None,
            Some("2025-01-12T00:00:00Z"),
            Some("2025-01-17T13:30:00Z"),
        ] {
            for q in [
                None,
                Some("ärger"),
                Some("ALPHA"),
                Some("a"),
                Some("%_"),
                Some("ta"),
            ] {
                let since_key = since.map(|s| webhook_api::ts::parse_message_ts(s).expect("s"));
                let want: Vec<&&Row> = sorted
                    .iter()
                    .filter(|r| from.is_none_or(|f| r.m.from == f))
                    .filter(|r| since_key.as_ref().is_none_or(|s| &r.key >= s))
                    .filter(|r| {
                        q.is_none_or(|q| {
                            r.m.text
                                .as_ref()
                                .is_some_and(|t| fold(t).contains(&fold(q)))
                        })
                    })
                    .collect();
                let mut path = "/messages?limit=100".to_string();
                let enc = |s: &str| s.replace('%', "%25").replace('+', "%2B");
                for (name, v) in [("from", from), ("since", &since), ("q", &q)] {
                    if let Some(v) = v {
                        path += &format!("&{name}={}", enc(v));
                    }
                }
                let page = get(addr, &path);
                assert_eq!(page["total"], want.len(), "{path}");
                let ids: Vec<&str> = page["data"]
                    .as_array()
                    .expect("data")
                    .iter()
                    .map(|m| m["message_id"].as_str().expect("id"))
                    .collect();
                let want_ids: Vec<&str> = want
                    .iter()
                    .take(100)
                    .map(|r| r.m.message_id.as_str())
                    .collect();
                assert_eq!(ids, want_ids, "{path}");
            }
        }
    }
    let mut per_sender: BTreeMap<&str, i64> = BTreeMap::new();
    for r in rows {
        *per_sender.entry(&r.m.from).or_default() += 1;
    }
    let mut top: Vec<(&str, i64)> = per_sender.iter().map(|(k, v)| (*k, *v)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    top.truncate(10);
    let stats = get(addr, "/stats");
    let want = json!({
        "total_messages": rows.len(),
        "senders_count": per_sender.len(),
        "messages_per_sender": top.iter().map(|(f, n)| json!({"from": f, "count": n})).collect::<Vec<_>>(),
        "first_message_ts": sorted.first().map(|r| r.m.ts.clone()),
        "last_message_ts": sorted.last().map(|r| r.m.ts.clone()),
    });
    assert_eq!(stats, want);
}

/// Every message id the service lists, page by page.
fn all_ids(addr: SocketAddr) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let page = get(addr, &format!("/messages?limit=100&offset={}", ids.len()));
        let data = page["data"].as_array().expect("data").clone();
        if data.is_empty() {
            return ids;
        }
        ids.extend(
            data.iter()
                .map(|m| m["message_id"].as_str().expect("id").to_string()),
        );
    }
}

fn sqlite(db: &Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open(db).expect("open");
    c.query_row(sql, [], |r| r.get(0)).expect(sql)
}

#[test]
fn retention_keeps_exact_totals_survives_a_kill_and_shrinks_the_file() {
    let dir = support::temp_dir();
    let db = dir.join("app.db");
    // 20,000 rows received over 40 days, 1,000 per odd day (39 days ago ... 1 day ago).
    let rows = generate(20_000);
    fill(&db, &rows, 1000, 39);
    // A file from before incremental auto-vacuum: the service converts it.
    let c = rusqlite::Connection::open(&db).expect("open");
    c.execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")
        .expect("vacuum");
    drop(c);
    assert_eq!(sqlite(&db, "PRAGMA auto_vacuum"), 0);
    let bytes_before = std::fs::metadata(&db).expect("db").len();
    // Kept with RETENTION_DAYS=20: received 19 days ago or later (the last 10 groups).
    let kept: Vec<Row> = rows[10_000..].to_vec();
    let url = format!("sqlite:///{}", db.display());
    let vars = [("DATABASE_URL", url.as_str()), ("WEBHOOK_SECRET", SECRET)];

    // SIGKILL in the middle of the first pass.
    let mut with = vars.to_vec();
    with.push(("RETENTION_DAYS", "20"));
    let mut bin = Binary::start(&with);
    let series = "db_rows_pruned_total{reason=\"retention\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut at_kill = 0.0;
    while at_kill == 0.0 && Instant::now() < deadline {
        at_kill = metric(bin.addr, series);
    }
    bin.child.kill().expect("SIGKILL");
    let _ = bin.child.wait();
    assert!(
        at_kill > 0.0 && at_kill < 10_000.0,
        "killed mid-pass: {at_kill} of 10000 pruned"
    );
    assert_eq!(sqlite(&db, "PRAGMA auto_vacuum"), 2, "converted");

    // Restarted without retention: consistent, and nothing received within it is gone.
    let mut bin = Binary::start(&vars);
    let present: std::collections::HashSet<String> = all_ids(bin.addr).into_iter().collect();
    assert!(kept.iter().all(|r| present.contains(&r.m.message_id)));
    let left: Vec<Row> = rows
        .iter()
        .filter(|r| present.contains(&r.m.message_id))
        .cloned()
        .collect();
    assert!(left.len() < 20_000 && left.len() > 10_000, "{}", left.len());
    assert_matches_model(bin.addr, &left);
    assert_eq!(bin.terminate().code(), Some(0));

    // Restarted with retention: exactly the rows within it, every total and search exact.
    let mut bin = Binary::start(&with);
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(bin.addr, series) < (left.len() - 10_000) as f64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(metric(bin.addr, series), (left.len() - 10_000) as f64);
    // The pass's line: the rows, and the pages given back.
    let line = (bin.lines.iter())
        .map(|l| serde_json::from_str::<Value>(&l).expect("JSON"))
        .find(|l| l["event"] == "pruned")
        .expect("a pruned line");
    assert_eq!(line["retention"], left.len() - 10_000);
    assert!(line["pages_vacuumed"].as_u64() > Some(200), "{line}");
    assert_matches_model(bin.addr, &kept);
    // A new message after pruning is listed and found by its text.
    let body = json!({"message_id": "new", "from": "+100", "to": "+1", "ts": "2025-01-30T00:00:00Z", "text": "freshword"});
    assert_eq!(
        support::post_signed(bin.addr, &body.to_string()).status,
        200
    );
    assert_eq!(get(bin.addr, "/messages?q=freshword")["total"], 1);
    assert_eq!(bin.terminate().code(), Some(0));
    let c = rusqlite::Connection::open(&db).expect("open");
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
    drop(c);
    let bytes_after = std::fs::metadata(&db).expect("db").len();
    // The table's pages of the oldest rows are given back whole; the indexes by instant and by
    // sender hold the rows in another order, so their pages are left half full (reused by new
    // rows, not given back): about a quarter smaller here, where the rows are short.
    assert!(
        bytes_after * 10 < bytes_before * 8,
        "the file shrank: {bytes_before} to {bytes_after} bytes"
    );
    assert_eq!(
        sqlite(&db, "PRAGMA freelist_count"),
        0,
        "every free page given back"
    );
}

/// POST /erase signed with `secret` (or unsigned).
fn erase(addr: SocketAddr, body: &str, secret: Option<&str>) -> (u16, Value) {
    let sig = secret.map(|s| sign(s, body.as_bytes()));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(sig) = &sig {
        headers.push(("X-Signature", sig));
    }
    let r = request(addr, "POST", "/erase", &headers, body.as_bytes());
    (r.status, r.json())
}

#[test]
fn erasure_removes_one_sender_everywhere_and_only_when_signed() {
    let dir = support::temp_dir();
    // 3,000 rows; the newest 200 (the highest rowids, all in the text index) from +107 only.
    let mut rows = generate(2800);
    for i in 0..200 {
        let m = Message {
            message_id: format!("e{i}"),
            from: "+107".into(),
            to: "+1".into(),
            ts: "2025-01-15T10:00:00Z".into(),
            text: Some(format!("secretword {i}")),
        };
        let key = webhook_api::ts::parse_message_ts(&m.ts).expect("ts");
        rows.push(Row { m, key });
    }
    rows.iter_mut()
        .filter(|r| r.m.from == "+103")
        .for_each(|r| r.m.from = "+107".into());
    fill(&dir.join("app.db"), &rows, 3000, 1);
    let s = TestServer::start_in(dir.clone(), &[("WEBHOOK_SECRET", SECRET)]);
    let body = r#"{"from":"+107"}"#;
    // Unsigned, wrongly signed, signed twice: 401, nothing erased.
    assert_eq!(
        erase(s.addr, body, None),
        (401, json!({"detail": "invalid signature"}))
    );
    assert_eq!(erase(s.addr, body, Some("wrong")).0, 401);
    let sig = sign(SECRET, body.as_bytes());
    let twice = [("X-Signature", sig.as_str()), ("X-Signature", sig.as_str())];
    assert_eq!(
        request(s.addr, "POST", "/erase", &twice, body.as_bytes()).status,
        401
    );
    // Bad bodies: 422 in FastAPI's shape, nothing erased.
    let (status, err) = erase(s.addr, r#"{"from":"107"}"#, Some(SECRET));
    assert_eq!(
        (status, &err["detail"][0]["loc"]),
        (422, &json!(["body", "from"]))
    );
    assert_eq!(err["detail"][0]["type"], "string_pattern_mismatch");
    assert_eq!(
        erase(s.addr, "{}", Some(SECRET)).1["detail"][0]["type"],
        "missing"
    );
    assert_eq!(erase(s.addr, "[1]", Some(SECRET)).0, 422);
    assert_eq!(erase(s.addr, r#"{"from":7}"#, Some(SECRET)).0, 422);
    assert_matches_model(s.addr, &rows);
    assert_eq!(
        s.metrics().get("db_rows_pruned_total{reason=\"erase\"}"),
        0.0
    );

    let erased = rows.iter().filter(|r| r.m.from == "+107").count();
    assert_eq!(
        erase(s.addr, body, Some(SECRET)),
        (200, json!({"erased": erased}))
    );
    let left: Vec<Row> = rows
        .iter()
        .filter(|r| r.m.from != "+107")
        .cloned()
        .collect();
    assert_matches_model(s.addr, &left);
    assert_eq!(get(s.addr, "/messages?from=%2B107")["total"], 0);
    assert_eq!(get(s.addr, "/messages?q=secretword")["total"], 0);
    // Gone from the text index itself, not only from the table.
    let db = dir.join("app.db");
    let fts = "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH '\"secretword\"'";
    assert_eq!(sqlite(&db, fts), 0, "the erased texts are out of the index");
    assert_eq!(
        s.metrics().get("db_rows_pruned_total{reason=\"erase\"}"),
        erased as f64
    );
    let line = s
        .logs
        .lines()
        .into_iter()
        .find(|l| l["path"] == "/erase" && l["status"] == 200);
    assert_eq!(line.expect("logged")["erased"], erased);
    // Erasing again finds nothing; the newest rows were erased, and a new message takes a rowid
    // below the old index watermark: it is still found by its text.
    assert_eq!(
        erase(s.addr, body, Some(SECRET)),
        (200, json!({"erased": 0}))
    );
    s.put(
        "after",
        "+107",
        "2025-01-15T11:00:00Z",
        Some("secretword again"),
    );
    assert_eq!(get(s.addr, "/messages?q=secretword")["total"], 1);
    assert_eq!(get(s.addr, "/messages?q=ecretword%20ag")["total"], 1);
    assert_eq!(get(s.addr, "/stats")["total_messages"], left.len() + 1);
}

/// A tmpfs mounted for one test, unmounted on drop (needs root).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = support::temp_dir().join("tmpfs");
        std::fs::create_dir_all(&dir).expect("dir");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            support::skip_or_fail("tmpfs", "mounting a tmpfs needs root");
            return None;
        }
        Some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn the_disk_budget_holds_during_a_long_ingest_and_every_webhook_is_answered_200() {
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    let s = TestServer::start_in(
        fs.0.clone(),
        &[("WEBHOOK_SECRET", SECRET), ("MAX_DB_MB", "8")],
    );
    let budget = 8u64 << 20;
    let db = fs.0.join("app.db");
    let files = || {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        size(&db) + size(&fs.0.join("app.db-wal"))
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (sent, largest) = std::thread::scope(|scope| {
        let watch = scope.spawn(|| {
            let mut largest = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                largest = largest.max(files());
                std::thread::sleep(Duration::from_millis(5));
            }
            largest
        });
        let senders: Vec<_> = (0..4)
            .map(|t| {
                let addr = s.addr;
                scope.spawn(move || {
                    // About 600 characters of varied words, like a long chat message.
                    let words: Vec<String> = (0..90).map(|k| format!("w{}", (k * 7919 + t * 31) % 10007)).collect();
                    let until = Instant::now() + Duration::from_secs(12);
                    let mut n = 0;
                    while Instant::now() < until {
                        let text = format!("{n} {}", words.join(" "));
                        let body = json!({"message_id": format!("b{t}-{n}"), "from": format!("+{t}"), "to": "+1", "ts": "2025-01-15T10:00:00Z", "text": text});
                        let r = support::post_signed(addr, &body.to_string());
                        if r.status != 200 {
                            return (n, Some(format!("webhook {n}: {} {}", r.status, r.text())));
                        }
                        n += 1;
                    }
                    (n, None)
                })
            })
            .collect();
        let done: Vec<(u64, Option<String>)> = senders
            .into_iter()
            .map(|h| h.join().expect("sender"))
            .collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let refused: Vec<&String> = done.iter().filter_map(|(_, e)| e.as_ref()).collect();
        assert!(
            refused.is_empty(),
            "every webhook answered 200: {refused:?}"
        );
        (
            done.iter().map(|(n, _)| n).sum::<u64>(),
            watch.join().expect("watch"),
        )
    });
    // Measured at the end of each pass: under the budget.
    let passes: Vec<u64> = (s.logs.lines().iter())
        .filter(|l| l["event"] == "pruned")
        .map(|l| l["file_bytes"].as_u64().expect("bytes"))
        .collect();
    let stats = get(s.addr, "/stats");
    let kept = stats["total_messages"].as_f64().expect("n");
    let pruned = s.metrics().get("db_rows_pruned_total{reason=\"budget\"}");
    eprintln!(
        "sent {sent}, kept {kept}, pruned {pruned}, largest {largest} bytes ({:.2} of the budget), after each of {} passes at most {:?}",
        largest as f64 / budget as f64,
        passes.len(),
        passes.iter().max()
    );
    assert!(
        pruned > 2.0 * kept,
        "most of the ingest was pruned: {pruned} of {sent}"
    );
    assert_eq!(kept + pruned, sent as f64);
    assert!(
        passes.len() > 5 && passes.iter().all(|b| *b < budget),
        "{passes:?}"
    );
    // Between passes the text index's own merges write a new segment before they free the old
    // ones: the files peak above the budget, within the tmpfs (no webhook saw a full disk).
    assert!(largest < budget * 3 / 2, "{largest} bytes");
    assert_eq!(s.metrics().get("db_budget_bytes"), budget as f64);
    assert!(s.metrics().get("db_file_bytes") > 0.0);
}
