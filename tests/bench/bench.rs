//! `make bench`: drives the release binary with signed requests over keep-alive connections and
//! prints two tables: the main one, with this machine's own limits measured in the same run so
//! every figure can be read as a ratio, and the read classes of `/messages` (`reads`), beside a
//! peer binary when one is given. Loopback only, bounded in time (BENCH_SECS per scenario and
//! per server in a read class's cell, default 5).
//!
//! Usage: bench <path to webhook-api>   (the Makefile passes target/release/webhook-api)
//!        bench footprint <path>        binary size, time to ready, idle RSS, RSS after
//!                                      FOOTPRINT_SECS (60) of mixed load; exits non-zero if the
//!                                      binary does not serve (CI runs it on the static build)
//! Env:   BENCH_SECS (5); BENCH_ROWS (the sizes: "100000,1000000" for the main table,
//!        "10000,100000,1000000" for the read classes); BENCH_ONLY=read (the read classes only),
//!        or any other text (only the load scenarios whose name holds it, no limits, no read
//!        classes); BENCH_PEER=<binary> (the read classes also against it, on a copy of the same
//!        file, and ours/peer); BENCH_KEEP (keep the temporary directory); WORKERS,
//!        READ_CONNECTIONS and MALLOC_ARENA_MAX are passed on to the servers
//! Rows:  limits; load scenarios at 16 and 64 connections (with the writer's commits after each
//!        that writes); per preloaded size, single-client reads, the query mix from 1 and from 64
//!        clients on the same rows, and a crowd of costly searches beside a cheap read. Then the
//!        read classes (see `reads`); if the servers disagree on one, the bench exits non-zero.
//! Uses: `harness` (servers and connections), `reads`, the crate's `Store` (preloading).

mod harness;
mod reads;

use harness::{Run, SECRET, Server, drive, exchange, get};
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use webhook_api::config::DbLocation;
use webhook_api::store::{Message, Row, Store};

/// Builds the request a connection sends next, from its index and its request count.
type MakeRequest = Box<dyn Fn(usize, u64) -> Vec<u8> + Sync>;

/// The writer's totals from /metrics: commits, rows committed, seconds spent committing.
fn writer(addr: SocketAddr) -> [f64; 3] {
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut text = String::new();
    conn.read_to_string(&mut text).expect("metrics");
    let sample = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    };
    [
        "db_batch_rows_count",
        "db_batch_rows_sum",
        "db_commit_seconds_sum",
    ]
    .map(sample)
}

/// The `/messages` query mix: no filter, a sender, a time, a text search and an offset, in turn.
fn mixed(c: usize, i: u64) -> Vec<u8> {
    let q = [
        "",
        "from=%2B910000000007",
        "since=2025-01-15T10:00:00Z",
        "q=hello",
        "offset=400&limit=100",
    ];
    get(&format!("/messages?{}", q[(c + i as usize) % q.len()]))
}

/// A timestamp from the message id, spread over about a month, as a real stream's would be.
fn spread_ts(id: &str) -> String {
    let t = id
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % (30 * 86400);
    format!(
        "2025-01-{:02}T{:02}:{:02}:{:02}Z",
        1 + t / 86400,
        t / 3600 % 24,
        t / 60 % 60,
        t % 60
    )
}

fn post(id: &str, from: u64, text: &str) -> Vec<u8> {
    let ts = spread_ts(id);
    let body = format!(
        r#"{{"message_id":"{id}","from":"+91{from:010}","to":"+14155550100","ts":"{ts}","text":"{text}"}}"#
    );
    let sig = sign_hex(SECRET.as_bytes(), body.as_bytes());
    format!("POST /webhook HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nX-Signature: {sig}\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        .into_bytes()
}

/// The hex HMAC-SHA256 of `body` under `key`, as a sender signs.
fn sign_hex(key: &[u8], body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A typical WhatsApp Cloud API delivery: one text message, in the shape Meta sends it.
fn post_whatsapp(id: &str, from: u64, text: &str) -> Vec<u8> {
    let body = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"contacts":[{{"profile":{{"name":"Sheena Nelson"}},"wa_id":"91{from:010}"}}],"messages":[{{"from":"91{from:010}","id":"wamid.{id}","timestamp":"1749416383","text":{{"body":"{text}"}},"type":"text"}}]}},"field":"messages"}}]}}]}}"#
    );
    let sig = sign_hex(SECRET.as_bytes(), body.as_bytes());
    format!("POST /webhook/whatsapp HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nX-Hub-Signature-256: sha256={sig}\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        .into_bytes()
}

fn row(out: &mut Vec<String>, name: &str, conns: usize, run: &Run, rss: Option<f64>) {
    out.push(format!(
        "| {name} | {conns} | {:.0} | {:.2} | {:.2} | {} | {} |",
        run.rps(),
        run.pct(0.5),
        run.pct(0.99),
        run.errors,
        rss.map_or("".into(), |r| format!("{r:.1}"))
    ));
}

/// This machine's durable-commit limits: one row per transaction, and 64 rows per transaction.
fn commit_limits(dir: &Path, secs: f64) -> (f64, f64) {
    let conn = rusqlite::Connection::open(dir.join("limit.db")).expect("open");
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);")
        .expect("setup");
    let measure = |per_tx: usize| {
        let t = Instant::now();
        let mut rows = 0usize;
        while t.elapsed().as_secs_f64() < secs / 2.0 {
            conn.execute_batch("BEGIN").expect("begin");
            for _ in 0..per_tx {
                conn.execute(
                    "INSERT INTO t (v) VALUES ('a message of about this size, signed')",
                    [],
                )
                .expect("insert");
            }
            conn.execute_batch("COMMIT").expect("commit");
            rows += per_tx;
        }
        rows as f64 / t.elapsed().as_secs_f64()
    };
    (measure(1), measure(64))
}

/// The service's own writer in-process (`Store::insert_all`, the same transaction as a batch of
/// webhooks) on a table of 20,000 rows, at 8, 32 and 128 rows a commit: rows/s for each, so the
/// cost of the rows themselves reads apart from the cost of HTTP and of gathering a batch.
fn writer_limits(dir: &Path) -> Vec<(usize, f64)> {
    let store = Store::open(
        &DbLocation::File(dir.join("writer.db")),
        Duration::from_secs(5),
        0,
        Duration::from_secs(2),
        15,
    )
    .expect("open");
    let rows = |from: u64, n: u64| -> Vec<Row> {
        (from..from + n)
            .map(|i| {
                let id = format!("w{}-{i}", i % 64);
                let ts = spread_ts(&id);
                let key = webhook_api::ts::parse_message_ts(&ts).expect("valid ts");
                let from = format!("+91{:010}", i % 1000);
                let text = Some("about the weather today".to_string());
                let to = "+14155550100".to_string();
                (
                    Message {
                        message_id: id,
                        from,
                        to,
                        ts,
                        text,
                    },
                    key,
                    None,
                )
            })
            .collect()
    };
    let at = "2025-01-15T10:00:00.000Z";
    for batch in rows(0, 20_000).chunks(500) {
        store.insert_all(batch.to_vec(), at).expect("insert");
    }
    [8, 32, 128]
        .into_iter()
        .enumerate()
        .map(|(k, chunk)| {
            let rows = rows(20_000 + k as u64 * 4096, 4096);
            let batches: Vec<Vec<Row>> = rows.chunks(chunk).map(<[Row]>::to_vec).collect();
            let t = Instant::now();
            for batch in batches {
                store.insert_all(batch, at).expect("insert");
            }
            (chunk, 4096.0 / t.elapsed().as_secs_f64())
        })
        .collect()
}

/// A tiny_http hello-world with two threads: the HTTP ceiling of this machine with the load
/// generator on the same cores.
fn hello_baseline(conns: usize, secs: f64) -> Run {
    let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
    let addr = server.server_addr().to_ip().expect("ip");
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let s = std::sync::Arc::clone(&server);
            std::thread::spawn(move || {
                while let Ok(rq) = s.recv() {
                    let _ = rq.respond(tiny_http::Response::from_string("{\"status\":\"ok\"}"));
                }
            })
        })
        .collect();
    let run = drive(addr, conns, secs, &|_, _| get("/"));
    for _ in &threads {
        server.unblock();
    }
    run
}

/// Eight clients looping on the costliest searches allowed (a one-character `q` deep into its
/// matches, and `q=%` that matches nothing), each stopped by the read budget or answered, while one
/// client lists `/messages?limit=10`: its latency, and RSS at rest (a fresh server after one
/// listing), at peak and two seconds after the crowd has gone (freed memory the allocator keeps
/// shows there).
fn crowd_of_searches(out: &mut Vec<String>, server: &Server, rows: u64, secs: f64) {
    drive(server.addr, 1, 0.2, &|_, _| get("/messages?limit=10"));
    let at_rest = server.memory_mib("VmRSS:");
    server.reset_peak();
    let stop = AtomicBool::new(false);
    let run = std::thread::scope(|s| {
        for c in 0..8 {
            let (stop, addr) = (&stop, server.addr);
            s.spawn(move || {
                let path = match c % 2 {
                    0 => format!("/messages?q=1&offset={}&limit=100", rows / 2),
                    _ => "/messages?q=%25".to_string(),
                };
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(conn) = TcpStream::connect(addr) {
                        let mut conn = BufReader::new(conn);
                        while !stop.load(Ordering::Relaxed)
                            && exchange(&mut conn, &get(&path)).is_some()
                        {}
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        let run = drive(server.addr, 1, secs.min(5.0), &|_, _| {
            get("/messages?limit=10")
        });
        stop.store(true, Ordering::Relaxed);
        run
    });
    let peak = server.peak_rss_mb();
    std::thread::sleep(Duration::from_secs(2));
    let name = format!("{rows} rows: /messages?limit=10 during 8 looping costly searches");
    row(out, &name, 1, &run, Some(peak));
    out.push(format!(
        "| RSS during it: {at_rest:.1} MiB at rest, {peak:.1} MiB at peak, {:.1} MiB 2 s after | | | | | | |",
        server.memory_mib("VmRSS:")
    ));
}

/// Preloads `rows` messages: 1,000 senders, one message a second, 1% mention "hello".
fn preload(db: &Path, rows: u64) {
    let store = Store::open(
        &DbLocation::File(db.to_path_buf()),
        Duration::from_secs(5),
        0,
        Duration::from_secs(2),
        15,
    )
    .expect("open");
    let mut batch = Vec::with_capacity(10_000);
    let base = 1_736_935_200u64; // 2025-01-15T10:00:00Z
    for i in 0..rows {
        let t = base + i;
        let ts = format!(
            "2025-01-{:02}T{:02}:{:02}:{:02}Z",
            15 + t.saturating_sub(base) / 86400 % 14,
            (10 + (t - base) / 3600) % 24,
            (t - base) / 60 % 60,
            (t - base) % 60
        );
        let key = webhook_api::ts::parse_message_ts(&ts).expect("valid ts");
        let text = if i % 100 == 0 {
            format!("Hello number {i}")
        } else {
            format!("message {i} about the weather")
        };
        let m = Message {
            message_id: format!("p{i:08}"),
            from: format!("+91{:010}", i % 1000),
            to: "+14155550100".into(),
            ts,
            text: Some(text),
        };
        batch.push((m, key, None));
        if batch.len() == 10_000 {
            let at = "2025-01-15T10:00:00.000Z";
            store
                .insert_all(std::mem::take(&mut batch), at)
                .expect("insert");
        }
    }
    store
        .insert_all(batch, "2025-01-15T10:00:00.000Z")
        .expect("insert");
}

/// `bench footprint <bin>`: the numbers of the README's footprint table.
fn footprint(bin: &Path) {
    let size = std::fs::metadata(bin).expect("binary").len();
    let dir = std::env::temp_dir().join(format!("webhook-api-footprint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let started = Instant::now();
    let server = Server::start(bin, &dir.join("app.db"));
    server.ready(Duration::from_secs(10));
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    std::thread::sleep(Duration::from_secs(1));
    let idle = server.memory_mib("VmRSS:");
    let secs: f64 = std::env::var("FOOTPRINT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60.0);
    let run_id = std::process::id();
    let run = drive(server.addr, 16, secs, &|c, i| match i % 4 {
        0 | 3 => {
            let text = if i % 100 == 0 {
                "Hello there"
            } else {
                "about the weather today"
            };
            post(&format!("f{run_id}-{c}-{i}"), i % 1000, text)
        }
        1 => get([
            "/messages?q=hello&limit=20",
            "/messages?limit=20",
            "/messages?offset=2000",
        ][(i / 4 % 3) as usize]),
        _ => get("/stats"),
    });
    let (after, peak) = (server.memory_mib("VmRSS:"), server.peak_rss_mb());
    println!("| measure | value |\n|---|---|");
    println!(
        "| binary size | {:.2} MB ({size} bytes) |",
        size as f64 / 1e6
    );
    println!("| start to ready | {ready_ms:.1} ms |");
    println!("| idle RSS | {idle:.1} MiB |");
    println!(
        "| RSS after {secs:.0} s of mixed load (16 connections, {:.0} req/s, {} errors) | {after:.1} MiB (peak {peak:.1} MiB) |",
        run.rps(),
        run.errors
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        run.requests > 0 && run.errors == 0,
        "the binary must serve without errors"
    );
}

/// The machine's limits: raw durable commits, our writer in-process, a hello-world server.
fn limits(out: &mut Vec<String>, dir: &Path, secs: f64) {
    let (single, batched) = commit_limits(dir, secs);
    out.push(format!(
        "| limit: durable commits, 1 row each (rows/s) | 1 | {single:.0} | | | | |"
    ));
    out.push(format!(
        "| limit: durable commits, 64 rows each (rows/s) | 1 | {batched:.0} | | | | |"
    ));
    for (chunk, rate) in writer_limits(dir) {
        out.push(format!(
            "| limit: our writer in-process, {chunk} rows a commit (rows/s) | 1 | {rate:.0} | | | | |"
        ));
    }
    let hello = hello_baseline(64, secs);
    row(
        out,
        "limit: tiny_http hello-world, 2 threads",
        64,
        &hello,
        None,
    );
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("footprint") {
        let bin = PathBuf::from(
            std::env::args()
                .nth(2)
                .expect("bench footprint <path to binary>"),
        );
        footprint(&std::fs::canonicalize(&bin).expect("the binary exists"));
        return;
    }
    let bin = std::env::args().nth(1);
    let bin = std::fs::canonicalize(bin.as_deref().unwrap_or("target/release/webhook-api"))
        .expect("the binary exists");
    let peer = std::env::var_os("BENCH_PEER")
        .map(|p| std::fs::canonicalize(p).expect("BENCH_PEER names a binary that exists"));
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    let sizes = |default: &str| -> Vec<u64> {
        std::env::var("BENCH_ROWS")
            .unwrap_or_else(|_| default.into())
            .split(',')
            .filter_map(|v| v.trim().parse().ok())
            .collect()
    };
    let only = std::env::var("BENCH_ONLY").ok();
    let dir = std::env::temp_dir().join(format!("webhook-api-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut tables = Vec::new();
    if only.as_deref() != Some("read") {
        let sizes = sizes("100000,1000000");
        tables.push(scenarios(&bin, secs, &sizes, &dir, only.as_deref()));
    }
    let mut mismatches = 0;
    if only.as_deref().is_none_or(|o| o == "read") {
        let sizes = sizes("10000,100000,1000000");
        let (table, disagreed) = reads::run(&bin, peer.as_deref(), &sizes, secs, &dir);
        tables.push(table);
        mismatches = disagreed;
    }
    if std::env::var("BENCH_KEEP").is_ok() {
        eprintln!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let tables: Vec<String> = tables.iter().map(|t| t.join("\n")).collect();
    println!("{}", tables.join("\n\n"));
    if mismatches > 0 {
        eprintln!("the servers disagreed on {mismatches} read classes (the MISMATCH rows)");
        std::process::exit(1);
    }
}

/// The main table: the limits (unless BENCH_ONLY), the load scenarios at 16 and 64
/// connections, and per preloaded size the single-client reads, the query mix and the crowd.
fn scenarios(bin: &Path, secs: f64, sizes: &[u64], dir: &Path, only: Option<&str>) -> Vec<String> {
    let mut out = vec![
        "| scenario | conns | req/s | p50 ms | p99 ms | errors | peak RSS MB |".to_string(),
        "|---|---|---|---|---|---|---|".to_string(),
    ];

    // BENCH_ONLY: run only the load scenarios whose name holds it, without the limits (for
    // comparing two builds on one scenario, many times, in one sitting).
    if only.is_none() {
        limits(&mut out, dir, secs);
    }
    let server = Server::start(bin, &dir.join("load.db"));

    // Duplicates target rows that exist: insert them first.
    let mut seeder = BufReader::new(TcpStream::connect(server.addr).expect("connect"));
    for i in 0..1000 {
        assert_eq!(
            exchange(&mut seeder, &post(&format!("dup{i}"), i, "seed")).map(|r| r.0),
            Some(200)
        );
    }
    let run_id = std::process::id();
    for conns in [16, 64] {
        let scenarios: [(&str, MakeRequest); 6] = [
            (
                "POST /webhook, new messages",
                Box::new(move |c, i| {
                    let text = if i % 100 == 0 {
                        "Hello there"
                    } else {
                        "about the weather today"
                    };
                    post(&format!("n{run_id}-{conns}-{c}-{i}"), i % 1000, text)
                }),
            ),
            (
                "POST /webhook/whatsapp, new messages (one a delivery)",
                Box::new(move |c, i| {
                    post_whatsapp(
                        &format!("w{run_id}-{conns}-{c}-{i}"),
                        i % 1000,
                        "about the weather today",
                    )
                }),
            ),
            (
                "POST /webhook, duplicates",
                Box::new(|c, i| post(&format!("dup{}", (c as u64 * 7 + i) % 1000), 1, "seed")),
            ),
            ("GET /health/live", Box::new(|_, _| get("/health/live"))),
            ("GET /messages (mixed filters)", Box::new(mixed)),
            ("GET /stats", Box::new(|_, _| get("/stats"))),
        ];
        let chosen = scenarios
            .iter()
            .filter(|(name, _)| only.is_none_or(|o| name.contains(o)));
        for (name, make) in chosen {
            server.reset_peak();
            let before = writer(server.addr);
            let run = drive(server.addr, conns, secs, make.as_ref());
            row(&mut out, name, conns, &run, Some(server.peak_rss_mb()));
            let [commits, rows, seconds] = [0, 1, 2].map(|i| writer(server.addr)[i] - before[i]);
            if commits > 0.0 {
                out.push(format!(
                    "| writer during it (/metrics): {commits:.0} commits, {:.1} rows and {:.2} ms each | | | | | | |",
                    rows / commits,
                    seconds * 1e3 / commits
                ));
            }
        }
    }
    drop(server);

    for &rows in sizes {
        let db = dir.join(format!("preloaded-{rows}.db"));
        let t = Instant::now();
        preload(&db, rows);
        eprintln!(
            "preloaded {rows} rows in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let server = Server::start(bin, &db);
        let deep = rows.saturating_sub(100);
        for (name, path) in [
            ("/messages, no filter", "/messages".to_string()),
            (
                "/messages?from=",
                "/messages?from=%2B910000000007".to_string(),
            ),
            (
                "/messages?since=",
                "/messages?since=2025-01-20T00:00:00Z".to_string(),
            ),
            ("/messages?q=", "/messages?q=hello".to_string()),
            (
                "/messages, deep offset",
                format!("/messages?offset={deep}&limit=100"),
            ),
            ("/stats", "/stats".to_string()),
        ] {
            server.reset_peak();
            let run = drive(server.addr, 1, secs.min(3.0), &|_, _| get(&path));
            row(
                &mut out,
                &format!("{rows} rows: {name}"),
                1,
                &run,
                Some(server.peak_rss_mb()),
            );
        }
        // Reads on every core: the same query mix from one client and from 64, on the same rows.
        let rates = [1, 64].map(|conns| {
            server.reset_peak();
            let run = drive(server.addr, conns, secs.min(3.0), &mixed);
            let name = format!("{rows} rows: /messages (mixed filters)");
            row(&mut out, &name, conns, &run, Some(server.peak_rss_mb()));
            run.rps()
        });
        out.push(format!(
            "| reads at 64 connections: {:.2}x the rate at 1 | | | | | | |",
            rates[1] / rates[0]
        ));
        drop(server);
        crowd_of_searches(&mut out, &Server::start(bin, &db), rows, secs);
    }
    out
}
