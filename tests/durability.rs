//! Durability: concurrent signed writers against the real binary, `kill -9` at random moments
//! over ten rounds, restart on the same file; every message that got a 200 must be there, intact,
//! and SQLite's integrity check must pass.

mod support;

use serde_json::json;
use std::collections::BTreeMap;
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
                            "POST /webhook HTTP/1.1\r\nX-Signature: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
