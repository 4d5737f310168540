//! Faults: a panicking handler, a poisoned store lock, a full disk, a locked database and a
//! deleted database file. Each must cost requests a clear 5xx, never the process, and the
//! service must recover by itself when the fault goes away. Needs `--features fault-injection`.
#![cfg(feature = "fault-injection")]

mod support;

use serde_json::json;
use std::process::Command;
use support::{Resp, SECRET, TestServer, request};

fn msg(id: &str, text: &str) -> String {
    json!({"message_id": id, "from": "+1", "to": "+2", "ts": "2025-01-15T10:00:00Z", "text": text})
        .to_string()
}

/// /health/ready once it answers `want` (readiness follows the health monitor, which probes every
/// 100 ms), or its answer after 2 s.
fn ready_is(s: &TestServer, want: u16) -> (u16, serde_json::Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let r = s.get("/health/ready");
        if r.status == want || std::time::Instant::now() > deadline {
            return (r.status, r.json());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `n` endless reads (taken as text searches), each on its own connection, given 300 ms to start.
fn endless_reads(addr: std::net::SocketAddr, n: usize) -> Vec<std::thread::JoinHandle<Resp>> {
    let crowd = (0..n)
        .map(|_| {
            std::thread::spawn(move || request(addr, "GET", "/__fault/endless-read", &[], b""))
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    crowd
}

/// Each of `paths` is a 200 within a second.
fn answer_within_a_second(s: &TestServer, paths: &[&str]) {
    for path in paths {
        let t = std::time::Instant::now();
        assert_eq!(s.get(path).status, 200, "{path}");
        assert!(
            t.elapsed().as_millis() < 1000,
            "{path} waited {:?}",
            t.elapsed()
        );
    }
}

/// Each of `crowd` was answered 503: its read was stopped at the budget.
fn stopped_at_the_budget(crowd: Vec<std::thread::JoinHandle<Resp>>) {
    for r in crowd {
        assert_eq!(r.join().expect("read").status, 503, "stopped at the budget");
    }
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
    assert_eq!(ready_is(&s, 200).0, 200);
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
        ready_is(&s, 503),
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
    assert_eq!(ready_is(&s, 200).0, 200);
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
        ready_is(&s, 503),
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
    assert_eq!(ready_is(&s, 200).0, 200);
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
    assert_eq!(ready_is(&s, 503).0, 503);
    // An operator puts a database back (here an empty one): the service reopens it by itself.
    std::fs::write(dir.join("app.db"), b"").expect("create");
    assert_eq!(ready_is(&s, 200), (200, json!({"status": "ok"})));
    assert_eq!(s.post_signed(&msg("lost?", "x")).status, 200);
    assert_eq!(s.get("/stats").json()["total_messages"], 1);
}

#[test]
fn a_missing_messages_table_makes_the_service_not_ready() {
    let dir = support::temp_dir();
    let s = TestServer::start_in(dir.clone(), &[("WEBHOOK_SECRET", SECRET)]);
    assert_eq!(ready_is(&s, 200).0, 200);
    let other = rusqlite::Connection::open(dir.join("app.db")).expect("open");
    other
        .execute_batch("ALTER TABLE messages RENAME TO messages_away")
        .expect("rename");
    assert_eq!(
        ready_is(&s, 503),
        (
            503,
            json!({"status": "not_ready", "reason": "database unavailable"})
        ),
        "readiness queries the messages table itself"
    );
    other
        .execute_batch("ALTER TABLE messages_away RENAME TO messages")
        .expect("rename back");
    assert_eq!(ready_is(&s, 200).0, 200);
}

#[test]
fn a_read_whose_client_hangs_up_is_stopped_logged_499_and_counted() {
    // A budget of a minute: only the hang-up can stop this read soon.
    let s = TestServer::start_in(
        support::temp_dir(),
        &[("WEBHOOK_SECRET", SECRET), ("READ_BUDGET_MS", "60000")],
    );
    let mut client = std::net::TcpStream::connect(s.addr).expect("connect");
    use std::io::Write;
    client
        .write_all(b"GET /__fault/endless-read HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let hung_up = std::time::Instant::now();
    drop(client);
    let line = loop {
        let found = s
            .logs
            .lines()
            .into_iter()
            .find(|l| l["path"] == "/__fault/endless-read");
        if let Some(line) = found {
            break line;
        }
        assert!(hung_up.elapsed().as_secs() < 10, "the read was not stopped");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        hung_up.elapsed().as_millis() < 2000,
        "stopped {:?} after",
        hung_up.elapsed()
    );
    assert_eq!(line["status"], 499);
    let counted = "http_requests_total{method=\"GET\",path=\"other\",status=\"499\"}";
    assert_eq!(s.metrics().get(counted), 1.0);
    assert_eq!(s.metrics().get("db_reads_over_budget_total"), 0.0);
    // A client that only half-closes is gone too, and can still read what it was answered.
    let mut client = std::net::TcpStream::connect(s.addr).expect("connect");
    client
        .write_all(b"GET /__fault/endless-read HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    std::thread::sleep(std::time::Duration::from_millis(300));
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut client, &mut answer).expect("the answer");
    assert!(
        answer.starts_with("HTTP/1.1 499 Client Closed Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with(r#"{"detail":"client closed the request"}"#),
        "{answer}"
    );
    // A client that stays gets its answer when the budget ends: a 503, not a 499.
    let s = TestServer::start_in(
        support::temp_dir(),
        &[("WEBHOOK_SECRET", SECRET), ("READ_BUDGET_MS", "300")],
    );
    let r = s.get("/__fault/endless-read");
    assert_eq!(
        (r.status, r.json()),
        (503, json!({"detail": "query exceeded its time budget"}))
    );
    assert_eq!(
        s.get("/messages").status,
        200,
        "the connection is free again"
    );
}

#[test]
fn a_read_stuck_past_its_budget_makes_the_service_not_ready_until_it_ends() {
    let s = TestServer::start_in(
        support::temp_dir(),
        &[("WEBHOOK_SECRET", SECRET), ("READ_BUDGET_MS", "200")],
    );
    let addr = s.addr;
    let stuck = std::thread::spawn(move || request(addr, "GET", "/__fault/stuck-read", &[], b""));
    std::thread::sleep(std::time::Duration::from_millis(900));
    assert_eq!(
        ready_is(&s, 503),
        (
            503,
            json!({"status": "not_ready", "reason": "reads stuck past their budget"})
        )
    );
    assert_eq!(
        s.get("/messages").status,
        200,
        "other read connections still serve"
    );
    assert_eq!(stuck.join().expect("stuck read").status, 200);
    assert_eq!(ready_is(&s, 200).0, 200);
}

#[test]
fn text_searches_never_hold_the_connection_plain_reads_use() {
    let s = TestServer::start_in(
        support::temp_dir(),
        &[
            ("WEBHOOK_SECRET", SECRET),
            ("READ_BUDGET_MS", "3000"),
            ("READ_CONNECTIONS", "3"),
        ],
    );
    // Four endless reads (taken as text searches) hold both search connections, two waiting.
    let crowd = endless_reads(s.addr, 4);
    answer_within_a_second(&s, &["/messages?limit=10", "/stats", "/health/ready"]);
    stopped_at_the_budget(crowd);
}

#[test]
fn webhooks_have_their_own_workers_and_never_queue_behind_reads() {
    let s = TestServer::start_in(
        support::temp_dir(),
        &[
            ("WEBHOOK_SECRET", SECRET),
            ("READ_BUDGET_MS", "3000"),
            ("WORKERS", "1"),
        ],
    );
    // The one worker of the general lane runs an endless read; another waits for it.
    let crowd = endless_reads(s.addr, 2);
    let addr = s.addr;
    // Several at once: the webhook lane has more workers than WORKERS, and they share commits.
    let posts: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                let t = std::time::Instant::now();
                let status = support::post_signed(addr, &msg(&format!("w{i}"), "x")).status;
                (status, t.elapsed())
            })
        })
        .collect();
    for p in posts {
        let (status, took) = p.join().expect("post");
        assert_eq!(status, 200);
        assert!(took.as_millis() < 1000, "a webhook waited {took:?}");
    }
    // The probes have workers of their own too.
    answer_within_a_second(&s, &["/health/live", "/health/ready", "/metrics"]);
    stopped_at_the_budget(crowd);
}

#[test]
fn a_probe_worker_serves_only_probes_whatever_is_pipelined_behind_one() {
    use std::io::Write;
    let s = TestServer::start_in(
        support::temp_dir(),
        &[
            ("WEBHOOK_SECRET", SECRET),
            ("READ_BUDGET_MS", "3000"),
            ("WORKERS", "4"),
        ],
    );
    // On each of two connections (the probes' lane has two workers), a probe and then an
    // endless read: the read goes to the general lane, not to the worker that served the probe.
    // One after the other: with nothing else queued, the worker would serve the read itself.
    let two = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\nGET /__fault/endless-read HTTP/1.1\r\nHost: x\r\n\r\n";
    let held: Vec<_> = (0..2)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(s.addr).expect("connect");
            c.write_all(two).expect("send");
            std::thread::sleep(std::time::Duration::from_millis(100));
            c
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    answer_within_a_second(&s, &["/health/live", "/health/ready", "/metrics"]);
    drop(held);
}

#[test]
fn a_request_that_arrives_while_a_worker_has_its_connection_is_served() {
    use std::io::{Read, Write};
    let s = TestServer::start_in(
        support::temp_dir(),
        &[
            ("WEBHOOK_SECRET", SECRET),
            ("READ_BUDGET_MS", "500"),
            ("WORKERS", "1"),
        ],
    );
    let sleep = |ms| std::thread::sleep(std::time::Duration::from_millis(ms));
    let mut a = std::net::TcpStream::connect(s.addr).expect("connect");
    a.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    a.write_all(b"GET /__fault/endless-read HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    sleep(100);
    // Another request waits for the only worker, so it hands the connection back to the poller
    // instead of waiting on it, and the poller must read what came meanwhile.
    let addr = s.addr;
    let b = std::thread::spawn(move || request(addr, "GET", "/health/live", &[], b"").status);
    sleep(100);
    a.write_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while String::from_utf8_lossy(&got).matches("HTTP/1.1 ").count() < 2 || !got.ends_with(b"}") {
        match a.read(&mut chunk) {
            Ok(n) if n > 0 => got.extend_from_slice(&chunk[..n]),
            other => panic!(
                "the second answer never came ({other:?}): {}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    let text = String::from_utf8_lossy(&got);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["503", "200"]);
    assert_eq!(b.join().expect("b"), 200);
}

/// A client that shuts its sending side while its first request runs, and another client waits
/// for the only worker: the connection goes back to the poller, which reads the request sent
/// before the shutdown together with the end of input, so that request's answer, the last, says
/// `Connection: close`; the first answer, given while more could still come, does not.
#[test]
fn a_client_that_half_closes_while_served_gets_connection_close_on_its_last_answer() {
    use std::io::{Read, Write};
    let s = TestServer::start_in(
        support::temp_dir(),
        &[("WEBHOOK_SECRET", SECRET), ("WORKERS", "1")],
    );
    let mut c = std::net::TcpStream::connect(s.addr).expect("connect");
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    // A read that takes two seconds; while it runs, another client's request, then this one's
    // second request and its half-close.
    c.write_all(b"GET /__fault/stuck-read HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    std::thread::sleep(std::time::Duration::from_millis(100));
    let addr = s.addr;
    let other = std::thread::spawn(move || request(addr, "GET", "/stats", &[], b"").status);
    std::thread::sleep(std::time::Duration::from_millis(200));
    c.write_all(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    c.shutdown(std::net::Shutdown::Write).expect("half-close");
    let mut got = Vec::new();
    c.read_to_end(&mut got).expect("read to the close");
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    let answers: Vec<&str> = text.split("http/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 2, "{text}");
    let connection = |a: &str| {
        let line = a.lines().find(|l| l.starts_with("connection:"));
        line.map(str::to_owned)
    };
    assert_eq!(connection(answers[0]), None, "{text}");
    assert_eq!(
        connection(answers[1]).as_deref(),
        Some("connection: close"),
        "{text}"
    );
    assert!(answers.iter().all(|a| a.starts_with("200")), "{text}");
    assert_eq!(other.join().expect("other"), 200);
}
