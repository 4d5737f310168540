//! The binary: parses the command line, runs the service until SIGTERM or SIGINT, and maps every
//! outcome to an exit code. Nothing after start-up calls `process::exit`.
//! Uses: the library (`start`, `config`, `log`), signal-hook.
//!
//! `webhook-api`              serve (configuration from the environment, see `--help`)
//! `webhook-api healthcheck`  exit 0 if GET /health/ready on 127.0.0.1:$PORT answers 200 within 2 s
//! `webhook-api backup FILE`  a consistent, checked snapshot of the live database
//! `webhook-api --version`    print the version

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;
use webhook_api::config::{self, Config};
use webhook_api::log::{Level, Line, Logger};

const USAGE: &str =
    "webhook-api: receives signed WhatsApp-like messages over POST /webhook, stores each
exactly once in SQLite, and serves them on /messages, /stats, /health/*, /metrics.

Usage:
  webhook-api               serve until SIGTERM or SIGINT
  webhook-api healthcheck   exit 0 if /health/ready on 127.0.0.1:$PORT answers 200 within 2 s
  webhook-api backup FILE   write a consistent, checked copy of the live database (DATABASE_URL)
                            to the new file FILE while the service runs; restore = serve it
  webhook-api --version     print the version
  webhook-api --help, help  print this help

Environment:
";

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    // What ran, the event its failure is logged as, and the exit code of that failure.
    let (outcome, failed, code) = match arg.as_deref() {
        None => (serve(), "fatal", ExitCode::from(2)),
        Some("backup") => (
            backup(std::env::args().nth(2)),
            "backup_failed",
            ExitCode::FAILURE,
        ),
        Some("healthcheck") if healthcheck() => return ExitCode::SUCCESS,
        Some("healthcheck") => return ExitCode::FAILURE,
        Some("--version" | "-V") => {
            println!("webhook-api {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some("--help" | "-h" | "help") => {
            print!("{USAGE}{}", config::help());
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprint!("unknown argument {other:?}\n\n{USAGE}{}", config::help());
            return ExitCode::from(2);
        }
    };
    let Err(msg) = outcome else {
        return ExitCode::SUCCESS;
    };
    log(Line::new(Level::Error)
        .str("event", failed)
        .str("error", &msg));
    code
}

/// A line to stdout whatever `LOG_LEVEL` says: the outcome of a command run once.
fn log(line: Line) {
    Logger::stdout(Level::Debug).write(line);
}

fn serve() -> Result<(), String> {
    let config = Config::from_env()?;
    let signals = Signals::new([SIGTERM, SIGINT]);
    let mut signals = signals.map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let running = webhook_api::start(config.clone(), Logger::stdout(config.log_level))?;
    // Block until the first SIGTERM or SIGINT, then shut down cleanly.
    let _ = signals.forever().next();
    running.stop();
    Ok(())
}

/// `backup FILE`: a snapshot of the database named by `DATABASE_URL`, one JSON line when done.
fn backup(file: Option<String>) -> Result<(), String> {
    let file = file.ok_or("usage: webhook-api backup FILE")?;
    let config = Config::from_env()?;
    let config::DbLocation::File(db) = &config.db else {
        return Err("DATABASE_URL names an in-memory database: nothing to back up".into());
    };
    let started = std::time::Instant::now();
    let busy = Duration::from_millis(config.busy_timeout_ms);
    let done = webhook_api::store::backup(db, file.as_ref(), busy).map_err(|e| e.to_string())?;
    log(Line::new(Level::Info)
        .str("event", "backup")
        .str("file", &file)
        .raw("rows", done.rows)
        .raw("bytes", done.bytes)
        .raw("seconds", format!("{:.3}", started.elapsed().as_secs_f64())));
    Ok(())
}

/// The container's health check, with std only: true when /health/ready answers 200 in time.
fn healthcheck() -> bool {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(8000);
    let timeout = Duration::from_secs(2);
    let Ok(mut s) = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), timeout)
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let mut head = [0u8; 12];
    s.write_all(b"GET /health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_ok()
        && s.read_exact(&mut head).is_ok()
        && head.starts_with(b"HTTP/1.")
        && &head[8..12] == b" 200"
}
