//! The binary: parses the command line, runs the service until SIGTERM or SIGINT, and maps every
//! outcome to an exit code. Nothing after start-up calls `process::exit`.
//! Uses: the library (`start`, `config`, `log`), signal-hook.
//!
//! `webhook-api`              serve (configuration from the environment, see `--help`)
//! `webhook-api healthcheck`  exit 0 if GET /health/ready on 127.0.0.1:$PORT answers 200 within 2 s
//! `webhook-api --version`    print the version

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
  webhook-api --version     print the version
  webhook-api --help        print this help

Environment:
";

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        None => match serve() {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                Logger::stdout(Level::Debug).write(
                    Line::new(Level::Error)
                        .str("event", "fatal")
                        .str("error", &msg),
                );
                ExitCode::from(2)
            }
        },
        Some("healthcheck") => {
            if healthcheck() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some("--version" | "-V") => {
            println!("webhook-api {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help" | "-h") => {
            print!("{USAGE}{}", config::help());
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprint!("unknown argument {other:?}\n\n{USAGE}{}", config::help());
            ExitCode::from(2)
        }
    }
}

fn serve() -> Result<(), String> {
    let config = Config::from_env()?;
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let running = webhook_api::start(config.clone(), Logger::stdout(config.log_level))?;
    // Block until the first SIGTERM or SIGINT, then shut down cleanly.
    let _ = signals.forever().next();
    running.stop();
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
