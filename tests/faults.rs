//! Faults: a panicking handler, a poisoned store lock, a full disk, a locked database and a
//! deleted database file. Each must cost requests a clear 5xx, never the process, and the
//! service must recover by itself when the fault goes away. Needs `--features fault-injection`.
#![cfg(feature = "fault-injection")]

mod support;

use serde_json::json;
use std::process::Command;
use support::{SECRET, TestServer, request};

fn msg(id: &str, text: &str) -> String {
    json!({"message_id": id, "from": "+1", "to": "+2", "ts": "2025-01-15T10:00:00Z", "text": text})
        .to_string()
}

fn ready(s: &TestServer) -> (u16, serde_json::Value) {
    let r = s.get("/health/ready");
    (r.status, r.json())
}

#[test]
fn a_panicking_handler_costs_one_request() {
    let s = TestServer::start();
    for _ in 0..10 {
        let r = request(s.addr, "POST", "/__fault/panic", &[], b"");
        assert_eq!(
            (r.status, r.json()),
            (500, json!({"detail": "internal error"}))
        );
    }
    assert_eq!(
        s.post_signed(&msg("after", "x")).status,
        200,
        "every worker still serves"
    );
    assert_eq!(s.get("/messages").json()["total"], 1);
    let errors = s
        .logs
        .lines()
        .iter()
        .filter(|l| l["status"] == 500 && l["level"] == "ERROR")
        .count();
    assert_eq!(errors, 10, "each panic is logged as one ERROR request line");
}

#[test]
fn a_poisoned_store_lock_does_not_take_the_store_down() {
    let s = TestServer::start();
    s.put("before", "+1", "2025-01-15T10:00:00Z", None);
    let r = request(s.addr, "POST", "/__fault/panic-holding-store", &[], b"");
    assert_eq!(r.status, 500);
    assert_eq!(s.post_signed(&msg("after", "x")).status, 200);
    assert_eq!(s.get("/messages").json()["total"], 2);
    assert_eq!(ready(&s).0, 200);
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = support::temp_dir().join("tmpfs");
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status();
        ok.ok().filter(|s| s.success()).map(|_| Tmpfs(dir))
    }
    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status();
        assert!(ok.is_ok_and(|s| s.success()), "remount");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_503_and_recovers() {
    let Some(fs) = Tmpfs::mount("600k") else {
        support::skip_or_fail("tmpfs", "cannot mount a small tmpfs (needs root)");
        return;
    };
    let mut s = TestServer::start_in(fs.0.clone(), &[("WEBHOOK_SECRET", SECRET)]);
    let text = "x".repeat(4000);
    let mut acked = Vec::new();
    let mut refused = 0;
    for i in 0..400 {
        let id = format!("m{i}");
        match s.post_signed(&msg(&id, &text)) {
            r if r.status == 200 => acked.push(id),
            r => {
                assert_eq!(
                    (r.status, r.json()),
                    (503, json!({"detail": "storage unavailable"}))
                );
                refused += 1;
                if refused == 3 {
                    break;
                }
            }
        }
    }
    assert_eq!(
        refused,
        3,
        "the disk filled up after {} messages",
        acked.len()
    );
    assert_eq!(
        ready(&s),
        (
            503,
            json!({"status": "not_ready", "reason": "storage unavailable"})
        )
    );
    let metrics = s.metrics();
    assert!(metrics.get("webhook_requests_total{result=\"storage_error\"}") >= 3.0);
    assert_eq!(metrics.0.get("service_ready"), Some(&0.0));
    // The fault goes away: more room. The service recovers without a restart.
    fs.resize("8m");
    assert_eq!(ready(&s).0, 200);
    assert_eq!(s.post_signed(&msg("late", "x")).status, 200);
    let listed = s.get("/messages?limit=100").json();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["message_id"].as_str())
        .collect();
    for id in &acked {
        assert!(
            ids.contains(&id.as_str()) || listed["total"].as_i64() > Some(100),
            "acknowledged {id} is stored"
        );
    }
    assert_eq!(listed["total"].as_i64(), Some(acked.len() as i64 + 1));
    s.stop();
}

#[test]
fn a_locked_database_is_503_and_recovers() {
    let dir = support::temp_dir();
    let s = TestServer::start_in(
        dir.clone(),
        &[("WEBHOOK_SECRET", SECRET), ("BUSY_TIMEOUT_MS", "200")],
    );
    s.put("before", "+1", "2025-01-15T10:00:00Z", None);
    let other = rusqlite::Connection::open(dir.join("app.db")).expect("open");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let r = s.post_signed(&msg("blocked", "x"));
    assert_eq!(
        (r.status, r.json()),
        (503, json!({"detail": "storage unavailable"}))
    );
    assert_eq!(
        ready(&s),
        (
            503,
            json!({"status": "not_ready", "reason": "storage unavailable"})
        )
    );
    assert_eq!(
        s.get("/messages").json()["total"],
        1,
        "reads go on while writes are locked out"
    );
    other.execute_batch("ROLLBACK").expect("release");
    assert_eq!(ready(&s).0, 200);
    assert_eq!(
        s.post_signed(&msg("blocked", "x")).status,
        200,
        "the retry succeeds"
    );
}

#[test]
fn a_deleted_database_file_is_503_until_one_is_back() {
    let dir = support::temp_dir();
    let s = TestServer::start_in(dir.clone(), &[("WEBHOOK_SECRET", SECRET)]);
    s.put("before", "+1", "2025-01-15T10:00:00Z", None);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("app.db{suffix}")));
    }
    let r = s.post_signed(&msg("lost?", "x"));
    assert_eq!(
        (r.status, r.json()),
        (503, json!({"detail": "storage unavailable"})),
        "never a 200 into an unlinked file"
    );
    assert_eq!(ready(&s).0, 503);
    // An operator puts a database back (here an empty one): the service reopens it by itself.
    std::fs::write(dir.join("app.db"), b"").expect("create");
    assert_eq!(ready(&s), (200, json!({"status": "ok"})));
    assert_eq!(s.post_signed(&msg("lost?", "x")).status, 200);
    assert_eq!(s.get("/stats").json()["total_messages"], 1);
}

#[test]
fn a_missing_messages_table_makes_the_service_not_ready() {
    let dir = support::temp_dir();
    let s = TestServer::start_in(dir.clone(), &[("WEBHOOK_SECRET", SECRET)]);
    assert_eq!(ready(&s).0, 200);
    let other = rusqlite::Connection::open(dir.join("app.db")).expect("open");
    other
        .execute_batch("ALTER TABLE messages RENAME TO messages_away")
        .expect("rename");
    assert_eq!(
        ready(&s),
        (
            503,
            json!({"status": "not_ready", "reason": "database unavailable"})
        ),
        "readiness queries the messages table itself"
    );
    other
        .execute_batch("ALTER TABLE messages_away RENAME TO messages")
        .expect("rename back");
    assert_eq!(ready(&s).0, 200);
}
