//! Crowds of connections that do nothing useful, against the real binary: idle sockets, idle
//! keep-alive connections, heads sent one byte a second, pipelining clients that never read.
//! Under each, normal signed webhooks and health checks are all answered (none refused), and
//! promptly; 10,000 idle connections cost next to no CPU and little memory. Each test prints the
//! median latency of the normal traffic with and without its crowd (`--nocapture` shows it);
//! the assertions only bound it generously, since a shared machine is noisy.

mod support;

use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{Binary, SECRET, request};

/// How much slower than without the crowd the normal traffic's median may be, at most.
const SLACK: Duration = Duration::from_millis(25);

/// One crowd at a time: together they would measure each other.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn binary() -> (Binary, std::sync::MutexGuard<'static, ()>) {
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // This process holds one end of every crowd connection.
    rlimit::increase_nofile_limit(u64::MAX).expect("raise the open-file limit");
    let db = format!("sqlite:///{}", support::temp_dir().join("app.db").display());
    // Timeouts long enough that the crowd stays for the whole test (checked by `still_open`).
    let bin = Binary::start(&[
        ("DATABASE_URL", &db),
        ("WEBHOOK_SECRET", SECRET),
        ("LOG_LEVEL", "ERROR"),
        ("IDLE_TIMEOUT_MS", "600000"),
        ("READ_TIMEOUT_MS", "600000"),
        ("REQUEST_TIMEOUT_MS", "600000"),
        ("WRITE_TIMEOUT_MS", "600000"),
    ]);
    (bin, turn)
}

/// Stores one new signed message; it must be a 200.
fn post(bin: &Binary, id: &str, text: &str) {
    let body = json!({"message_id": id, "from": "+1", "to": "+2", "ts": "2025-01-15T10:00:00Z",
        "text": text})
    .to_string();
    let r = support::post_signed(bin.addr, &body);
    assert_eq!(r.status, 200, "webhook {id}: {}", r.text());
}

/// 40 signed webhooks and 40 health checks, one at a time; each must be a 200. Returns the
/// median latency.
fn normal_traffic(bin: &Binary, tag: &str) -> Duration {
    let mut took: Vec<Duration> = (0..40)
        .flat_map(|i| {
            let t = Instant::now();
            post(bin, &format!("{tag}-{i}"), "normal");
            let webhook = t.elapsed();
            let t = Instant::now();
            assert_eq!(
                request(bin.addr, "GET", "/health/live", &[], b"").status,
                200
            );
            [webhook, t.elapsed()]
        })
        .collect();
    took.sort();
    took[took.len() / 2]
}

/// Runs the normal traffic without and then with `crowd` in place, prints both medians and
/// bounds the difference.
fn compare<T>(name: &str, bin: &Binary, crowd: impl FnOnce() -> T) -> T {
    let alone = normal_traffic(bin, &format!("{name}-alone"));
    let held = crowd();
    let crowded = normal_traffic(bin, &format!("{name}-crowded"));
    eprintln!("{name}: median {alone:?} alone, {crowded:?} with the crowd");
    assert!(crowded < alone + SLACK, "{name}: {crowded:?} vs {alone:?}");
    held
}

/// Asserts the server still holds at least `n` connections, so the crowd was really there.
fn still_open(bin: &Binary, n: usize) {
    let text = request(bin.addr, "GET", "/metrics", &[], b"").text();
    let open: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("http_connections_open ")?.parse().ok())
        .expect("http_connections_open");
    assert!(open >= n as f64, "{open} connections open, wanted {n}");
}

fn connect_many(bin: &Binary, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| TcpStream::connect(bin.addr).expect("connect"))
        .collect()
}

#[test]
fn idle_sockets_cost_nothing() {
    let (bin, _turn) = binary();
    let held = compare("5000 idle sockets", &bin, || connect_many(&bin, 5000));
    // Twice as many, and the server sits still.
    let more = connect_many(&bin, 5000);
    std::thread::sleep(Duration::from_millis(500));
    let cpu = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let f: Vec<f64> = stat
            .rsplit_once(')')
            .expect("comm")
            .1
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        (f[11] + f[12]) / 100.0
    };
    let before = cpu(bin.child.id());
    std::thread::sleep(Duration::from_secs(5));
    let used = cpu(bin.child.id()) - before;
    let rss_mib = bin.rss_kib() as f64 / 1024.0;
    eprintln!(
        "10000 idle connections: {:.1}% of a core over 5 s, RSS {rss_mib:.1} MiB",
        used / 5.0 * 100.0
    );
    assert!(used < 0.25, "{used} s of CPU in 5 s");
    assert!(rss_mib <= 32.0, "RSS {rss_mib} MiB");
    normal_traffic(&bin, "10000");
    still_open(&bin, 10_000);
    drop((held, more));
}

#[test]
fn idle_keep_alive_connections_cost_nothing() {
    let (bin, _turn) = binary();
    let held = compare("2000 idle keep-alive connections", &bin, || {
        let mut conns = connect_many(&bin, 2000);
        for c in &mut conns {
            c.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("send");
        }
        for c in &mut conns {
            let mut head = [0u8; 12];
            c.read_exact(&mut head).expect("an answer");
            assert_eq!(&head, b"HTTP/1.1 200");
        }
        conns
    });
    still_open(&bin, 2000);
    drop(held);
}

#[test]
fn heads_sent_a_byte_a_second_cost_nothing() {
    let (bin, _turn) = binary();
    let mut conns = compare("1000 heads at a byte a second", &bin, || {
        let mut conns = connect_many(&bin, 1000);
        for c in &mut conns {
            c.write_all(b"G").expect("first byte");
        }
        conns
    });
    // The crowd keeps trickling while the normal traffic runs again.
    let head = b"ET /health/live HTTP/1.1\r\nX-Slow: yes\r\n";
    for i in 0..2 {
        std::thread::sleep(Duration::from_secs(1));
        for c in &mut conns {
            let _ = c.write_all(&head[i..=i]);
        }
        normal_traffic(&bin, &format!("trickle-{i}"));
    }
    still_open(&bin, 1000);
}

#[test]
fn clients_that_pipeline_large_pages_and_never_read_cost_nothing() {
    let (bin, _turn) = binary();
    let text = "x".repeat(4000);
    for i in 0..100 {
        post(&bin, &format!("big-{i:03}"), &text);
    }
    // Each asks for 200 pages of about 400 KB and reads none of them.
    let page = b"GET /messages?limit=100 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200);
    let held = compare("32 pipelining non-readers", &bin, || {
        let mut conns = connect_many(&bin, 32);
        for c in &mut conns {
            c.set_nonblocking(true).expect("non-blocking");
            let _ = c.write(&page);
        }
        std::thread::sleep(Duration::from_millis(300));
        conns
    });
    still_open(&bin, 32);
    drop(held);
}
