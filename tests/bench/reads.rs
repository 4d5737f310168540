//! The read classes of `/messages`, on the FastAPI service's minimal table: this service alone,
//! or beside a peer binary (BENCH_PEER) on copies of the same file, in one sitting.
//!
//! The data, one file per size (generated once, cached in target/release/bench-data/, copied
//! fresh for each server): `messages(message_id, from_msisdn, to_msisdn, ts, text, created_at)`
//! with no index but its primary key, so each server builds its own (this service adopts the
//! file in place; the peer creates its indexes). Rows arrive in time order over four weeks from
//! 2025-03-03, each `ts` up to five minutes late; 1,000 senders with a long tail (sender k has
//! weight about 1/(k+1): the busiest, +919876500000, sends 10% of the rows, the quietest 0.015%);
//! texts of 3 to 12 everyday words (0.5% have none: media), about 1% with the rarer word
//! `refund`, twice as often in the second fortnight as in the first (complaints after an outage).
//!
//! The classes (the default page of 50), their filter values chosen so each returns a full page:
//! - no filter;
//! - `from`: the busiest sender (10% of the rows);
//! - `since`: the middle of the four weeks, 2025-03-17T00:00:00Z (half the rows);
//! - `q`: `refund` (1% of the rows);
//! - deep offset: the last page (`offset` = rows - 50);
//! - `from` + `since` + `q`: all three at once (0.07% of the rows: a full page from 100k rows;
//!   at 10k rows about 7 rows, as a 1% word leaves no room for a 50-row page after two more
//!   filters that each cut).
//!
//! Each cell is a class at one size and 1 or 64 connections, BENCH_SECS for each server; the
//! servers alternate which goes first from cell to cell, so drift hits both alike. Before a
//! class is measured, both servers' first page must agree (status, `total`, the page's message
//! ids): a disagreement is a MISMATCH row of the table and the bench exits non-zero.
//! Leaves out: writes, /stats, memory (the main table has them).
//! Uses: `harness` (servers, connections), rusqlite (the generated file), serde_json (pages).

use crate::harness::{Run, Server, drive, get};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bumped whenever the generated data changes, so a cached file of another version is not used.
const DATA_VERSION: u32 = 1;
const SINCE: &str = "2025-03-17T00:00:00Z";
const BUSIEST: &str = "%2B919876500000";
const WORD: &str = "refund";

/// Each class's name and query string at `rows` rows.
fn classes(rows: u64) -> [(&'static str, String); 6] {
    let (from, since, q) = (
        format!("from={BUSIEST}"),
        format!("since={SINCE}"),
        format!("q={WORD}"),
    );
    [
        ("no filter", String::new()),
        ("`from`", from.clone()),
        ("`since`", since.clone()),
        ("`q`", q.clone()),
        ("deep offset", format!("offset={}", rows.saturating_sub(50))),
        ("`from` + `since` + `q`", format!("{from}&{since}&{q}")),
    ]
}

/// The read classes at each size in `sizes`: the table's lines, and how many classes the
/// servers disagreed on (or answered other than 200).
pub fn run(
    ours: &Path,
    peer: Option<&Path>,
    sizes: &[u64],
    secs: f64,
    dir: &Path,
) -> (Vec<String>, usize) {
    let bins: Vec<&Path> = [Some(ours), peer].into_iter().flatten().collect();
    let mut out = vec![header(bins.len() > 1)];
    let (mut cell, mut mismatches) = (0, 0);
    for &rows in sizes {
        let data = cached(rows);
        let copies: Vec<PathBuf> = (0..bins.len())
            .map(|i| dir.join(format!("reads-{rows}-{i}.db")))
            .collect();
        let mut ready = Vec::new();
        let servers: Vec<Server> = bins
            .iter()
            .zip(&copies)
            .map(|(bin, copy)| {
                std::fs::copy(&data, copy).expect("copy the data");
                let t = Instant::now();
                let server = Server::start(bin, copy);
                server.ready(Duration::from_secs(900));
                ready.push(format!("{:.2} s", t.elapsed().as_secs_f64()));
                server
            })
            .collect();
        out.push(format!(
            "| {rows} rows: start to ready on the fresh copy: {} (this service adopts it{}) |",
            ready.join(" and "),
            if peer.is_some() {
                "; the peer builds its indexes"
            } else {
                ""
            }
        ));
        for (name, query) in classes(rows) {
            let path = format!("/messages?{query}");
            let pages: Vec<Page> = servers.iter().map(|s| Page::of(s, &path)).collect();
            if pages.iter().any(|p| p.status != 200 || *p != pages[0]) {
                mismatches += 1;
                let seen: Vec<String> = pages.iter().map(Page::describe).collect();
                let line = format!("MISMATCH: {name} at {rows} rows: {}", seen.join(" vs "));
                eprintln!("\n*** {line} ***\n");
                out.push(format!("| **{line}** |"));
            }
            for conns in [1, 64] {
                let mut runs: Vec<Option<Run>> = servers.iter().map(|_| None).collect();
                for k in 0..servers.len() {
                    let i = (k + cell) % servers.len();
                    let request = get(&path);
                    drive(servers[i].addr, 1, 0.2, &|_, _| request.clone());
                    runs[i] = Some(drive(servers[i].addr, conns, secs, &|_, _| request.clone()));
                }
                cell += 1;
                let runs: Vec<Run> = runs.into_iter().flatten().collect();
                out.push(row(name, rows, pages[0].total, conns, &runs));
            }
        }
        drop(servers);
        for copy in copies {
            for end in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{end}", copy.display()));
            }
        }
    }
    (out, mismatches)
}

fn header(peer: bool) -> String {
    let mut cols =
        "| read class | rows | total | conns | req/s | p50 ms | p99 ms | errors |".to_string();
    if peer {
        cols += " peer req/s | peer p50 ms | peer p99 ms | peer errors | ours/peer req/s |";
    }
    let rule = "---|".repeat(cols.matches('|').count() - 1);
    format!("{cols}\n|{rule}")
}

fn row(name: &str, rows: u64, total: Option<i64>, conns: usize, runs: &[Run]) -> String {
    let total = total.map_or("?".into(), |t| t.to_string());
    let mut line = format!("| {name} | {rows} | {total} | {conns} |");
    for run in runs {
        line += &format!(
            " {:.0} | {:.3} | {:.3} | {} |",
            run.rps(),
            run.pct(0.5),
            run.pct(0.99),
            run.errors
        );
    }
    if let [ours, peer] = runs {
        line += &format!(" {:.2}x |", ours.rps() / peer.rps());
    }
    line
}

/// What a server answered to a class's first page: the part both servers must agree on.
#[derive(PartialEq)]
struct Page {
    status: u16,
    total: Option<i64>,
    ids: Vec<String>,
}

impl Page {
    fn of(server: &Server, path: &str) -> Page {
        let (status, body) = server.fetch(path).unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let ids = body["data"].as_array().map_or(Vec::new(), |data| {
            data.iter()
                .map(|m| m["message_id"].as_str().unwrap_or("?").to_string())
                .collect()
        });
        Page {
            status,
            total: body["total"].as_i64(),
            ids,
        }
    }

    fn describe(&self) -> String {
        let first = self.ids.first().map_or("none", String::as_str);
        format!(
            "status {}, total {:?}, {} ids from {first}",
            self.status,
            self.total,
            self.ids.len()
        )
    }
}

/// The generated file of `rows` rows, made now unless a run before this one made it.
fn cached(rows: u64) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let dir = exe
        .ancestors()
        .nth(2)
        .expect("target/release")
        .join("bench-data");
    let path = dir.join(format!("minimal-{rows}-v{DATA_VERSION}.db"));
    if !path.exists() {
        std::fs::create_dir_all(&dir).expect("bench-data dir");
        let partial = path.with_extension("partial");
        let _ = std::fs::remove_file(&partial);
        let t = Instant::now();
        generate(&partial, rows).expect("generate the data");
        std::fs::rename(&partial, &path).expect("keep the data");
        eprintln!(
            "generated {} in {:.1} s",
            path.display(),
            t.elapsed().as_secs_f64()
        );
    }
    path
}

/// Everyday words of the texts; none holds `refund`, nor do two in a row.
const WORDS: [&str; 48] = [
    "hi", "hello", "thanks", "order", "delivery", "today", "tomorrow", "please", "check", "status",
    "my", "the", "is", "when", "will", "it", "arrive", "payment", "still", "waiting", "for", "an",
    "update", "can", "you", "call", "me", "back", "address", "new", "number", "ok", "great", "app",
    "login", "problem", "account", "help", "invoice", "price", "week", "morning", "café", "👍",
    "package", "late", "sorry", "ticket",
];

/// splitmix64's finaliser: a bijection, so ids made from distinct numbers never collide.
fn mix(z: u64) -> u64 {
    let z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A time `secs` after 2025-03-03T00:00:00Z (within March), with `ms` milliseconds if given.
fn stamp(secs: u64, ms: Option<u64>) -> String {
    let (d, h, m, s) = (
        3 + secs / 86400,
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
    );
    let frac = ms.map_or(String::new(), |ms| format!(".{ms:03}"));
    format!("2025-03-{d:02}T{h:02}:{m:02}:{s:02}{frac}Z")
}

/// Writes the table and `rows` rows (see the top of this file) in one transaction.
fn generate(path: &Path, rows: u64) -> rusqlite::Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
         CREATE TABLE messages (message_id TEXT PRIMARY KEY, from_msisdn TEXT NOT NULL,
             to_msisdn TEXT NOT NULL, ts TEXT NOT NULL, text TEXT, created_at TEXT NOT NULL);
         BEGIN;",
    )?;
    let mut insert = conn.prepare("INSERT INTO messages VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
    let span = 28 * 86400;
    for i in 0..rows {
        let r = mix(i ^ 0x5eed_0000_0000_0000);
        let u = (r >> 11) as f64 / (1u64 << 53) as f64;
        let sender = (1001f64.powf(u) as u64).clamp(1, 1000) - 1;
        let secs = i * span / rows + r % 300;
        let r2 = mix(r);
        let text = (!r2.is_multiple_of(200)).then(|| {
            let mut words: Vec<&str> = (0..3 + r2 / 200 % 10)
                .map(|w| WORDS[(mix(r2 + w) % WORDS.len() as u64) as usize])
                .collect();
            // 2/3 % of the rows before the middle, 4/3 % after: 1% in all.
            let odds = if secs < span / 2 { 67 } else { 133 };
            if mix(r2 ^ 1) % 10_000 < odds {
                let at = (r2 >> 40) as usize % words.len();
                words.insert(at, WORD);
            }
            let text = words.join(" ");
            let mut chars = text.chars();
            chars
                .next()
                .into_iter()
                .flat_map(char::to_uppercase)
                .chain(chars)
                .collect::<String>()
        });
        insert.execute(rusqlite::params![
            format!("wamid.{:016x}", mix(i)),
            format!("+9198765{sender:05}"),
            "+14155550100",
            stamp(secs, None),
            text,
            stamp(secs + 1 + r2 % 3, Some(r2 >> 20 & 511)),
        ])?;
    }
    drop(insert);
    conn.execute_batch("COMMIT")
}
