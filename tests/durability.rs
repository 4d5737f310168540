//! Durability: concurrent signed writers against the real binary, `kill -9` at random moments
//! over ten rounds, restart on the same file; every message that got a 200 must be there, intact,
//! and SQLite's integrity check must pass. And SIGTERM with requests in flight (bodies still
//! arriving, inserts queued): each is finished and answered, and every 200 is in the file.

mod support;

use serde_json::json;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Binary, SECRET, sign};

const ROUNDS: usize = 10;
const WRITERS: usize = 8;

#[test]
fn every_acknowledged_message_survives_kill_9() {
    let dir = support::temp_dir();
    let db_path = dir.join("app.db");
    let db = format!("sqlite:///{}", db_path.display());
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    // A small seeded generator, so a failure can be replayed.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..ROUNDS {
        let mut bin = Binary::start(&[
            ("DATABASE_URL", &db),
            ("WEBHOOK_SECRET", SECRET),
            ("LOG_LEVEL", "ERROR"),
            ("WORKERS", "8"),
        ]);
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (acked, stop, addr) = (Arc::clone(&acked), Arc::clone(&stop), bin.addr);
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let id = format!("r{round}-w{w}-{i}");
                        let text = format!("payload of {id} ✓");
                        let body = json!({"message_id": id, "from": format!("+{w}"), "to": "+2", "ts": "2025-01-15T10:00:00Z", "text": text}).to_string();
                        let raw = format!(
                            "POST /webhook HTTP/1.1\r\nHost: x\r\nX-Signature: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            sign(SECRET, body.as_bytes()),
                            body.len()
                        );
                        let answer = support::try_exchange(addr, raw.as_bytes()).unwrap_or_default();
                        if support::parse_response(&answer).is_some_and(|r| r.status == 200) {
                            acked.lock().expect("lock").insert(id, text);
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100 + next() % 300));
        let _ = bin.child.kill(); // SIGKILL: no shutdown, no final checkpoint
        let _ = bin.child.wait();
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            w.join().expect("writer");
        }
    }
    let acked = acked.lock().expect("lock");
    assert!(
        acked.len() > ROUNDS * 10,
        "only {} messages were acknowledged",
        acked.len()
    );
    let conn = rusqlite::Connection::open(&db_path).expect("open the database after the crashes");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    let mut stmt = conn
        .prepare("SELECT text FROM messages WHERE message_id = ?1")
        .expect("prepare");
    for (id, text) in acked.iter() {
        let stored: String = stmt
            .query_row([id], |r| r.get(0))
            .unwrap_or_else(|e| panic!("acknowledged {id} is missing: {e}"));
        assert_eq!(&stored, text, "{id} intact");
    }
    let (total, counted): (i64, i64) = conn
        .query_row(
            "SELECT count(*), (SELECT n FROM counters WHERE name = 'messages') FROM messages",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("counts");
    assert_eq!(total, counted, "the aggregates commit with the rows");
    eprintln!(
        "kill -9 rounds: {ROUNDS}, acknowledged messages checked: {}, rows stored: {total}",
        acked.len()
    );
}

/// A signed request for a new message, split so a test can send it in two parts.
fn signed_post(id: &str, close: bool) -> Vec<u8> {
    let body = json!({"message_id": id, "from": "+1", "to": "+2", "ts": "2025-01-15T10:00:00Z", "text": id}).to_string();
    format!(
        "POST /webhook HTTP/1.1\r\nHost: x\r\nX-Signature: {}\r\nContent-Length: {}\r\n{}\r\n{body}",
        sign(SECRET, body.as_bytes()),
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes()
}

type Writers = (
    Arc<Mutex<Vec<String>>>,
    Arc<AtomicBool>,
    Vec<std::thread::JoinHandle<()>>,
);

/// `n` threads posting new signed messages (ids `{prefix}{w}-{i}`) until `stop`; every id
/// answered 200 goes into the list.
fn writers(addr: std::net::SocketAddr, n: usize, prefix: &'static str) -> Writers {
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let handles = (0..n)
        .map(|w| {
            let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let id = format!("{prefix}{w}-{i}");
                    let answer = support::try_exchange(addr, &signed_post(&id, true));
                    if answer
                        .and_then(|a| support::parse_response(&a))
                        .is_some_and(|r| r.status == 200)
                    {
                        acked.lock().expect("lock").push(id);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    (acked, stop, handles)
}

#[test]
fn sigterm_finishes_requests_in_flight_and_keeps_every_acknowledged_one() {
    let dir = support::temp_dir();
    let db_path = dir.join("app.db");
    let db = format!("sqlite:///{}", db_path.display());
    let mut bin = Binary::start(&[
        ("DATABASE_URL", &db),
        ("WEBHOOK_SECRET", SECRET),
        ("WORKERS", "8"),
    ]);
    // Requests whose bodies are still arriving when the signal comes: four sent well before it,
    // two just before (possibly not yet accepted, or accepted and not yet read: either way a
    // request arriving, to be finished, not a connection to close).
    let half = |i: usize| {
        let raw = signed_post(&format!("half-{i}"), true);
        let (first, rest) = raw.split_at(raw.len() - 20);
        let mut s = TcpStream::connect(bin.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(first).expect("first part");
        (s, rest.to_vec())
    };
    let mut halves: Vec<(TcpStream, Vec<u8>)> = (0..4).map(half).collect();
    // Writers keep inserts queued in the group commit up to the moment of the signal and after.
    let (acked, stop, writers) = writers(bin.addr, 6, "w");
    std::thread::sleep(Duration::from_millis(300));
    halves.extend((4..6).map(half));
    bin.send_sigterm();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        bin.child.try_wait().expect("wait").is_none(),
        "the process waits for the requests still arriving"
    );
    for (s, rest) in &mut halves {
        s.write_all(rest).expect("the rest of the body");
    }
    for (i, (s, _)) in halves.iter_mut().enumerate() {
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let r = support::parse_response(&out).expect("an answer to the request in flight");
        assert_eq!(r.status, 200, "half-{i}: {}", r.text());
        acked.lock().expect("lock").push(format!("half-{i}"));
    }
    let status = bin.wait_exit();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().expect("writer");
    }
    assert!(status.success(), "exit 0 on SIGTERM, got {status}");
    let lines = bin.drain();
    assert!(
        lines
            .last()
            .is_some_and(|l| l.contains("\"event\":\"shutdown\"")),
        "the last line is shutdown"
    );
    let acked = acked.lock().expect("lock");
    assert!(acked.len() > 10, "only {} acknowledged", acked.len());
    let conn = rusqlite::Connection::open(&db_path).expect("open the database");
    let mut stmt = conn
        .prepare("SELECT count(*) FROM messages WHERE message_id = ?1")
        .expect("prepare");
    for id in acked.iter() {
        let n: i64 = stmt.query_row([id], |r| r.get(0)).expect("count");
        assert_eq!(n, 1, "acknowledged {id} is in the database");
    }
    // Every request logged as created is in the file too (the writers may have lost answers to
    // the closing socket, never rows that were committed and answered).
    let created = lines
        .iter()
        .filter(|l| l.contains("\"result\":\"created\""))
        .count();
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .expect("count");
    assert_eq!(
        stored as usize, created,
        "every created row logged is stored, and no other"
    );
}

#[test]
fn backup_under_writes_holds_every_acknowledged_message_and_serves() {
    let dir = support::temp_dir();
    let db = format!("sqlite:///{}", dir.join("app.db").display());
    let bin = Binary::start(&[
        ("DATABASE_URL", &db),
        ("WEBHOOK_SECRET", SECRET),
        ("LOG_LEVEL", "ERROR"),
    ]);
    let (acked, stop, writers) = writers(bin.addr, 4, "b");
    std::thread::sleep(Duration::from_millis(300));
    let before: Vec<String> = acked.lock().expect("lock").clone();
    let file = dir.join("backup.db");
    let run = |file: &std::path::Path| {
        support::run_binary(
            &["backup".as_ref(), file.as_os_str()],
            &[("DATABASE_URL", &db)],
        )
    };
    let out = run(&file);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().expect("writer");
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(line["event"], "backup");
    assert!(before.len() > 10, "writes were going on: {}", before.len());
    let copy = rusqlite::Connection::open(&file).expect("open the backup");
    let mut stmt = copy
        .prepare("SELECT count(*) FROM messages WHERE message_id = ?1")
        .expect("prepare");
    for id in &before {
        let n: i64 = stmt.query_row([id], |r| r.get(0)).expect("count");
        assert_eq!(n, 1, "{id}, acknowledged before the backup began, is in it");
    }
    let rows: i64 = copy
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .expect("rows");
    assert_eq!(line["rows"], rows);
    // Never over an existing file; the backup stays as it was.
    let size = std::fs::metadata(&file).expect("size").len();
    assert!(!run(&file).status.success(), "refuses to overwrite");
    assert_eq!(std::fs::metadata(&file).expect("size").len(), size);
    // Restore is serving the file.
    drop(bin);
    let restored = format!("sqlite:///{}", file.display());
    let bin = Binary::start(&[("DATABASE_URL", &restored), ("WEBHOOK_SECRET", SECRET)]);
    let stats = support::request(bin.addr, "GET", "/stats", &[], b"").json();
    assert_eq!(stats["total_messages"], rows);
}

#[test]
fn files_that_are_not_ours_are_refused_untouched() {
    let dir = support::temp_dir();
    let make = |name: &str, sql: &str| {
        let path = dir.join(name);
        rusqlite::Connection::open(&path)
            .and_then(|c| c.execute_batch(sql))
            .expect(name);
        path
    };
    let newer = make(
        "newer.db",
        "CREATE TABLE messages (message_id TEXT PRIMARY KEY, ts_key TEXT); PRAGMA user_version = 99;",
    );
    let foreign = make(
        "foreign.db",
        "CREATE TABLE messages (id INTEGER, body BLOB); INSERT INTO messages VALUES (1, x'00');",
    );
    let other_app = make("other.db", "CREATE TABLE invoices (n INTEGER);");
    let not_db = dir.join("notes.db");
    std::fs::write(&not_db, "this is not a database\n".repeat(100)).expect("write");
    for (file, says) in [
        (&newer, "newer than this binary"),
        (&foreign, "not this service's"),
        (&other_app, "another application's tables"),
        (&not_db, "not a database"),
    ] {
        let before = std::fs::read(file).expect("read");
        let db = format!("sqlite:///{}", file.display());
        let out = support::run_binary::<&str>(&[], &[("DATABASE_URL", &db), ("PORT", "0")]);
        assert_eq!(out.status.code(), Some(2), "{}", file.display());
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().count(), 1, "one line: {text}");
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect("JSON");
        assert_eq!(line["event"], "fatal");
        let error = line["error"].as_str().unwrap_or("");
        assert!(
            error.contains(says) && error.contains(&file.display().to_string()),
            "{error}"
        );
        assert_eq!(
            std::fs::read(file).expect("read"),
            before,
            "{} untouched",
            file.display()
        );
        assert!(!dir.join(format!("{}-wal", file.display())).exists());
    }
}
