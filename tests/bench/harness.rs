//! The load harness of `make bench`: a server process under test, keep-alive client connections
//! that drive it for a fixed time, and what they measured (requests, errors, latencies).
//! Leaves out: what the requests are and how results are tabled (`bench.rs`, `reads.rs`).
//! Uses: std only (threads, blocking sockets), /proc for the server's memory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub const SECRET: &str = "benchsecret";

/// What one scenario measured.
pub struct Run {
    pub requests: u64,
    pub errors: u64,
    pub secs: f64,
    /// Of the answers that succeeded (a quick refusal would flatter the percentiles).
    pub latencies_us: Vec<u32>,
}

impl Run {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }
    pub fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

/// `conns` keep-alive connections, each sending `make(conn, i)` back to back for `secs`.
pub fn drive(
    addr: SocketAddr,
    conns: usize,
    secs: f64,
    make: &(dyn Fn(usize, u64) -> Vec<u8> + Sync),
) -> Run {
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let results: Vec<(u64, u64, Vec<u32>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..conns)
            .map(|c| {
                let stop = &stop;
                scope.spawn(move || {
                    let (mut ok, mut errors, mut lat) = (0u64, 0u64, Vec::with_capacity(100_000));
                    let mut conn: Option<BufReader<TcpStream>> = None;
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let req = make(c, i);
                        i += 1;
                        if conn.is_none() {
                            conn = TcpStream::connect(addr).ok().map(|s| {
                                let _ = s.set_nodelay(true);
                                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                                BufReader::new(s)
                            });
                        }
                        let Some(r) = conn.as_mut() else {
                            errors += 1;
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        };
                        let t = Instant::now();
                        match exchange(r, &req) {
                            Some((status, close, _)) => {
                                if (200..300).contains(&status) {
                                    let us = t.elapsed().as_micros().min(u128::from(u32::MAX));
                                    lat.push(us as u32);
                                    ok += 1
                                } else {
                                    errors += 1
                                }
                                if close {
                                    conn = None;
                                }
                            }
                            None => {
                                errors += 1;
                                conn = None;
                            }
                        }
                    }
                    (ok, errors, lat)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut run = Run {
        requests: 0,
        errors: 0,
        secs,
        latencies_us: Vec::new(),
    };
    for (ok, errors, lat) in results {
        run.requests += ok;
        run.errors += errors;
        run.latencies_us.extend(lat);
    }
    run.latencies_us.sort_unstable();
    run
}

/// Writes one request and reads its response: the status, whether the server closes, the body.
pub fn exchange(r: &mut BufReader<TcpStream>, req: &[u8]) -> Option<(u16, bool, Vec<u8>)> {
    r.get_mut().write_all(req).ok()?;
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let status = line.split(' ').nth(1)?.parse().ok()?;
    let (mut len, mut close) = (0usize, false);
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        if k.eq_ignore_ascii_case("content-length") {
            len = v.trim().parse().ok()?;
        } else if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close") {
            close = true;
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some((status, close, body))
}

pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").into_bytes()
}

/// The server under test, on its own database.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(bin: &Path, db: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("DATABASE_URL", format!("sqlite:///{}", db.display()))
            .env("WEBHOOK_SECRET", SECRET)
            .env("WHATSAPP_APP_SECRET", SECRET)
            .env("LOG_LEVEL", "ERROR")
            .env("PORT", port.to_string())
            .env("MAX_CONNECTIONS", "1024")
            .stdout(Stdio::null());
        // The settings whose trade-offs the README measures (MALLOC_ARENA_MAX: glibc's arenas).
        for var in ["WORKERS", "READ_CONNECTIONS", "MALLOC_ARENA_MAX"] {
            if let Ok(v) = std::env::var(var) {
                cmd.env(var, v);
            }
        }
        let mut child = cmd.spawn().expect("start the server");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let t = Instant::now();
        // A server may build its indexes before it listens (the peer does): minutes at most.
        while TcpStream::connect(addr).is_err() {
            let exited = child.try_wait().ok().flatten();
            assert!(exited.is_none(), "{} exited: {exited:?}", bin.display());
            assert!(
                t.elapsed() < Duration::from_secs(300),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Server { child, addr }
    }

    /// One request on a fresh connection: the status and the body.
    pub fn fetch(&self, path: &str) -> Option<(u16, Vec<u8>)> {
        let mut conn = BufReader::new(TcpStream::connect(self.addr).ok()?);
        exchange(&mut conn, &get(path)).map(|(status, _, body)| (status, body))
    }

    /// Waits until /health/ready answers 200 (an adoption in progress answers 503), for at
    /// most `within`; returns how long it took.
    pub fn ready(&self, within: Duration) -> Duration {
        let t = Instant::now();
        while self.fetch("/health/ready").map(|r| r.0) != Some(200) {
            assert!(t.elapsed() < within, "not ready within {within:?}");
            std::thread::sleep(Duration::from_millis(1));
        }
        t.elapsed()
    }

    /// Resets the kernel's peak-RSS mark (VmHWM).
    pub fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }

    pub fn peak_rss_mb(&self) -> f64 {
        self.memory_mib("VmHWM:")
    }

    /// A memory line of /proc/<pid>/status (`VmRSS:`, `VmHWM:`) in MiB.
    pub fn memory_mib(&self, key: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(f64::NAN);
        kib / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
