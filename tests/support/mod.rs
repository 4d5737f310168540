//! Test support: start the real service with `start()` on port 0 and its own SQLite file, and a
//! raw HTTP/1.1 client over a real socket. Written by hand so the tests depend on nothing but the
//! crate's own dependencies.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use webhook_api::config::Config;
use webhook_api::log::Logger;

pub const SECRET: &str = "testsecret";

/// A fresh, empty folder for one test (unique per process and call).
pub fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join("webhook-api-tests").join(format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A test that cannot run here (a tool missing, no root) fails, naming the reason, unless the
/// person running it opted out explicitly with `SKIP_TESTS=<name>[,<name>...]`; a skip is never
/// silent. Returns normally only when the test should be skipped.
pub fn skip_or_fail(name: &str, why: &str) {
    let skipped = std::env::var("SKIP_TESTS")
        .unwrap_or_default()
        .split(',')
        .any(|n| n.trim() == name);
    assert!(
        skipped,
        "{why}. Fix that (see .ci/run), or skip this test on purpose with SKIP_TESTS={name}"
    );
    // Straight to the process's stderr, past the test harness's capture, so `cargo test` shows
    // the skip even though the test passes.
    let line = format!("SKIPPED on request (SKIP_TESTS={name}): {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// promtool's path: `$PROMTOOL`, the copy `make test` installs, or one on `PATH`. None (after
/// `skip_or_fail`) when there is none.
pub fn promtool() -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = std::env::var("PROMTOOL")
        .into_iter()
        .chain(["target/tools/promtool".to_string()])
        .chain(path.split(':').map(|dir| format!("{dir}/promtool")))
        .find(|p| std::path::Path::new(p).is_file());
    if found.is_none() {
        skip_or_fail(
            "promtool",
            "promtool not found (make test installs it into target/tools)",
        );
    }
    found
}

/// POST /webhook with `body` signed by the test secret.
pub fn post_signed(addr: SocketAddr, body: &str) -> Resp {
    let sig = sign(SECRET, body.as_bytes());
    request(
        addr,
        "POST",
        "/webhook",
        &[("Content-Type", "application/json"), ("X-Signature", &sig)],
        body.as_bytes(),
    )
}

/// The log lines a test server wrote: an in-memory sink whose clones share one buffer.
#[derive(Clone, Default)]
pub struct LogBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every log line is JSON"))
            .collect()
    }
}

pub struct TestServer {
    running: Option<webhook_api::Running>,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub logs: LogBuf,
}

impl TestServer {
    /// A server with the test secret, on a new database.
    pub fn start() -> TestServer {
        TestServer::start_in(temp_dir(), &[("WEBHOOK_SECRET", SECRET)])
    }

    /// A server on `dir/app.db` with these extra variables (PORT=0 and DEBUG logs unless given).
    pub fn start_in(dir: PathBuf, vars: &[(&str, &str)]) -> TestServer {
        let db = format!("sqlite:///{}", dir.join("app.db").display());
        let mut all: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), db),
            ("PORT".into(), "0".into()),
            ("LOG_LEVEL".into(), "DEBUG".into()),
        ];
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_lookup(|name| {
            all.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
        .expect("test config is valid");
        let logs = LogBuf::default();
        let running = webhook_api::start(
            config.clone(),
            Logger::new(config.log_level, Box::new(logs.clone())),
        )
        .expect("server starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], running.addr().port()));
        TestServer {
            running: Some(running),
            addr,
            dir,
            logs,
        }
    }

    /// Stops the server and starts a new one on the same database file.
    pub fn restart(mut self, vars: &[(&str, &str)]) -> TestServer {
        self.stop();
        TestServer::start_in(self.dir.clone(), vars)
    }

    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop();
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        request(self.addr, "GET", path, &[], b"")
    }

    /// POST /webhook with `body` signed by the test secret.
    pub fn post_signed(&self, body: &str) -> Resp {
        post_signed(self.addr, body)
    }

    /// Posts a valid message and asserts it was accepted.
    pub fn put(&self, id: &str, from: &str, ts: &str, text: Option<&str>) {
        let body = serde_json::json!({"message_id": id, "from": from, "to": "+14155550100", "ts": ts, "text": text});
        let r = self.post_signed(&body.to_string());
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The hex HMAC-SHA256 of `body` under `secret`: what a sender puts in `X-Signature`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "JSON content type"
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request on a new connection (`Connection: close`), read to the end.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += &format!("Content-Length: {}\r\n\r\n", body.len());
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    parse_response(&exchange(addr, &raw)).expect("a well-formed HTTP response")
}

/// Sends raw bytes and returns everything the server sends back until it closes (or 10 s pass).
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    try_exchange(addr, raw).expect("connect")
}

/// `exchange`, or `None` when the connection cannot be made (a server that is down).
pub fn try_exchange(addr: SocketAddr, raw: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Some(out)
}

/// Parses one HTTP/1.1 response (Content-Length, chunked, or to the end).
pub fn parse_response(raw: &[u8]) -> Option<Resp> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if find("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        let mut r = rest;
        loop {
            let nl = r.windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&r[..nl]).ok()?.trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(r.get(nl + 2..nl + 2 + size)?);
            r = &r[nl + 4 + size..];
        }
        body
    } else if let Some(n) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest.get(..n)?.to_vec()
    } else {
        rest.to_vec()
    };
    Some(Resp {
        status,
        headers,
        body,
    })
}

impl TestServer {
    /// The /metrics samples as `series -> value`, the series written exactly as rendered
    /// (`name{a="x",b="y"}`); a missing series reads as 0.
    pub fn metrics(&self) -> Metrics {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200);
        Metrics(
            r.text()
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .map(|l| {
                    let (series, value) = l.rsplit_once(' ').expect("sample line");
                    (series.to_string(), value.parse().expect("numeric sample"))
                })
                .collect(),
        )
    }
}

pub struct Metrics(pub std::collections::BTreeMap<String, f64>);

impl Metrics {
    pub fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }
}

/// The binary run to its end with `args` and no environment but `env`: its exit and output.
pub fn run_binary<A: AsRef<std::ffi::OsStr>>(
    args: &[A],
    env: &[(&str, &str)],
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_webhook-api"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run the binary")
}

/// The real binary, started with these variables, stdout captured line by line.
pub struct Binary {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl Binary {
    pub fn start(vars: &[(&str, &str)]) -> Binary {
        Binary::start_limited(vars, None)
    }

    /// The binary on a new database in a fresh folder (returned), signed with `SECRET`, logging
    /// at `level`, with `extra` variables.
    pub fn fresh(level: &str, extra: &[(&str, &str)]) -> (Binary, PathBuf) {
        let dir = temp_dir();
        let db = format!("sqlite:///{}", dir.join("app.db").display());
        let mut vars = vec![
            ("DATABASE_URL", db.as_str()),
            ("WEBHOOK_SECRET", SECRET),
            ("LOG_LEVEL", level),
        ];
        vars.extend_from_slice(extra);
        (Binary::start(&vars), dir)
    }

    /// Like `start`, with the open-file limit (`ulimit -n`) set to `nofile` when given.
    pub fn start_limited(vars: &[(&str, &str)], nofile: Option<u32>) -> Binary {
        // A port chosen here can be taken by another test's server before this one binds it:
        // then this one exits at start, and it is started again on another port.
        for _ in 0..5 {
            if let Some(bin) = Binary::try_start(vars, nofile) {
                return bin;
            }
        }
        panic!("the binary exited at start five times");
    }

    fn try_start(vars: &[(&str, &str)], nofile: Option<u32>) -> Option<Binary> {
        let bin = env!("CARGO_BIN_EXE_webhook-api");
        let mut cmd = match nofile {
            None => std::process::Command::new(bin),
            Some(n) => {
                let mut c = std::process::Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\""), bin]);
                c
            }
        };
        // A free port chosen here (the start-up line may be filtered out by LOG_LEVEL).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut child = cmd
            .env_clear()
            .envs(vars.iter().copied())
            .env("PORT", port.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        // Built before waiting, so a failed start still kills the child (Drop).
        let mut bin = Binary {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            lines,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        // Listening, and the listener is this child's (a connect may reach another test's
        // server that took the port first).
        loop {
            if listens(bin.child.id(), port) && TcpStream::connect(bin.addr).is_ok() {
                return Some(bin);
            }
            if let Some(status) = bin.child.try_wait().ok().flatten() {
                let out: Vec<String> = bin.lines.try_iter().collect();
                eprintln!("the binary exited at start ({status}): {out:?}");
                return None;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the binary did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits for the exit status (at most 10 s).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.send_sigterm();
        self.wait_exit()
    }

    /// Sends SIGTERM without waiting.
    pub fn send_sigterm(&self) {
        let pid = self.child.id().to_string();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -TERM");
    }

    /// Waits for the process to exit (at most 10 s) and returns its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..1000 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no exit within 10 s of SIGTERM");
    }

    /// The process's resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// GET /health/live; panics unless it is answered 200 within `within`.
    pub fn assert_serving(&self, within: Duration) {
        let t = std::time::Instant::now();
        let r = request(self.addr, "GET", "/health/live", &[], b"");
        assert_eq!(r.status, 200);
        assert!(
            t.elapsed() < within,
            "answered in {:?}, wanted under {within:?}",
            t.elapsed()
        );
    }

    /// Every stdout line received so far (after the start-up line).
    pub fn drain(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The local addresses of the sockets process `pid` holds listening on TCP `port`, IPv4 and
/// IPv6, as /proc/net/tcp and tcp6 write them (hex: `0100007F` is 127.0.0.1, 32 zeros is `::`).
pub fn listeners(pid: u32, port: u16) -> Vec<String> {
    let tables = ["/proc/net/tcp", "/proc/net/tcp6"].map(std::fs::read_to_string);
    let text = tables.into_iter().flatten().collect::<Vec<_>>().join("\n");
    let sockets: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (addr, local) = f.get(1)?.rsplit_once(':')?;
            let listening = u16::from_str_radix(local, 16).ok()? == port && f.get(3) == Some(&"0A");
            let inode = format!("socket:[{}]", f.get(9)?);
            listening.then(|| (addr.to_string(), inode))
        })
        .collect();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten();
    let held: Vec<std::path::PathBuf> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .collect();
    sockets
        .into_iter()
        .filter(|(_, inode)| held.iter().any(|t| t.as_os_str() == inode.as_str()))
        .map(|(addr, _)| addr)
        .collect()
}

/// Whether process `pid` holds the socket listening on TCP `port`.
fn listens(pid: u32, port: u16) -> bool {
    !listeners(pid, port).is_empty()
}

/// `webhook-api backup <to>` run on the database file `db`: its exit and output.
pub fn run_backup(db: &std::path::Path, to: &std::path::Path) -> std::process::Output {
    let url = format!("sqlite:///{}", db.display());
    run_binary(
        &["backup".as_ref(), to.as_os_str()],
        &[("DATABASE_URL", &url)],
    )
}

/// A backup run that succeeded: its one JSON line names `rows` rows and, as `bytes`, the size
/// of the file written at `to` (returned).
pub fn assert_backup_line(out: &std::process::Output, to: &std::path::Path, rows: u64) -> u64 {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let line: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    let size = std::fs::metadata(to).expect("the backup file").len();
    assert_eq!(
        (&line["rows"], &line["bytes"]),
        (&rows.into(), &size.into())
    );
    size
}
