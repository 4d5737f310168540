//! Configuration: one field per environment variable, parsed and validated once at start-up.
//!
//! A bad value is an error naming the variable, never a silent fallback to the default. The
//! lookup is a parameter so tests can build a `Config` without touching the process environment.

use crate::log::Level;
use std::path::PathBuf;

/// Where the SQLite database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbLocation {
    /// `sqlite://`: a private in-memory database, gone when the process exits.
    Memory,
    /// `sqlite:///rel/path.db` or `sqlite:////abs/path.db`.
    File(PathBuf),
}

/// No `Debug`: the secret must never end up in a log line by accident.
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`, SQLAlchemy style. Defaults to `sqlite:///app.db` (relative to the working dir).
    pub db: DbLocation,
    /// `WEBHOOK_SECRET`, the HMAC key. Defaults to none: the service runs but is not ready and
    /// answers webhooks with 503. An empty value counts as none.
    pub secret: Option<String>,
    /// `LOG_LEVEL`: DEBUG, INFO, WARNING (or WARN), ERROR, any case. Defaults to INFO.
    pub log_level: Level,
    /// `PORT`, listening on all interfaces. Defaults to 8000; 0 picks a free port (tests).
    pub port: u16,
    /// `WORKERS`, threads that serve connections and run handlers. Defaults to 16 (enough for
    /// group commit to batch well; each idle worker costs a few KiB of RSS); 1..=256.
    pub workers: usize,
    /// `MAX_BODY_BYTES`, the largest accepted request body. Defaults to 65536; 1..=16 MiB.
    pub max_body_bytes: usize,
    /// `WEBHOOK_SECRET_PREVIOUS`, a second accepted HMAC key while senders move to a new one.
    /// Defaults to none. Ignored while `WEBHOOK_SECRET` is unset.
    pub secret_previous: Option<String>,
    /// `MAX_HEADER_BYTES`, request line plus headers. Defaults to 8192; 256..=1 MiB.
    pub max_header_bytes: usize,
    /// `MAX_CONNECTIONS`, open connections (served plus queued); past it new ones get a quick
    /// 503 and are closed. Defaults to 512; 1..=65536.
    pub max_connections: usize,
    /// `IDLE_TIMEOUT_MS`, how long a keep-alive connection may wait for its next request.
    /// Defaults to 5000; 1..=3600000.
    pub idle_timeout_ms: u64,
    /// `READ_TIMEOUT_MS`, the longest silence while a request is being received. Defaults to
    /// 5000; 1..=3600000.
    pub read_timeout_ms: u64,
    /// `REQUEST_TIMEOUT_MS`, the deadline for receiving a whole request (head and body) from its
    /// first byte. Defaults to 10000; 1..=3600000.
    pub request_timeout_ms: u64,
    /// `WRITE_TIMEOUT_MS`, the longest a response write may block. Defaults to 5000; 1..=3600000.
    pub write_timeout_ms: u64,
    /// `BUSY_TIMEOUT_MS`, how long a database statement waits for a lock held by another
    /// process (a backup tool, say) before the request fails with 503. Defaults to 5000; 1..=3600000.
    pub busy_timeout_ms: u64,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, String> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `get`, applying the defaults documented on each field.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let db =
            parse_database_url(&get("DATABASE_URL").unwrap_or_else(|| "sqlite:///app.db".into()))?;
        let secret = get("WEBHOOK_SECRET").filter(|s| !s.is_empty());
        let log_level = match get("LOG_LEVEL") {
            None => Level::Info,
            Some(v) => Level::parse(&v).ok_or_else(|| {
                format!("LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {v:?}")
            })?,
        };
        Ok(Config {
            db,
            secret,
            log_level,
            port: number(&get, "PORT", 8000, 0, u16::MAX as usize)? as u16,
            workers: number(&get, "WORKERS", 16, 1, 256)?,
            max_body_bytes: number(&get, "MAX_BODY_BYTES", 65536, 1, 16 << 20)?,
            secret_previous: get("WEBHOOK_SECRET_PREVIOUS").filter(|s| !s.is_empty()),
            max_header_bytes: number(&get, "MAX_HEADER_BYTES", 8192, 256, 1 << 20)?,
            max_connections: number(&get, "MAX_CONNECTIONS", 512, 1, 65536)?,
            idle_timeout_ms: number(&get, "IDLE_TIMEOUT_MS", 5000, 1, HOUR_MS)? as u64,
            read_timeout_ms: number(&get, "READ_TIMEOUT_MS", 5000, 1, HOUR_MS)? as u64,
            request_timeout_ms: number(&get, "REQUEST_TIMEOUT_MS", 10000, 1, HOUR_MS)? as u64,
            write_timeout_ms: number(&get, "WRITE_TIMEOUT_MS", 5000, 1, HOUR_MS)? as u64,
            busy_timeout_ms: number(&get, "BUSY_TIMEOUT_MS", 5000, 1, HOUR_MS)? as u64,
        })
    }
}

const HOUR_MS: usize = 3_600_000;

/// An integer variable within `min..=max`, or `default` when unset.
fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, String> {
    match get(name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "{name} must be an integer from {min} to {max}, got {v:?}"
            )),
        },
    }
}

/// SQLAlchemy's SQLite URL forms: `sqlite://` (memory), `sqlite:///relative.db`,
/// `sqlite:////absolute.db`. `sqlite:///:memory:` is memory too.
pub fn parse_database_url(url: &str) -> Result<DbLocation, String> {
    let bad = || {
        format!(
            "DATABASE_URL must look like sqlite:///relative.db or sqlite:////abs/path.db, got {url:?}"
        )
    };
    let rest = url.strip_prefix("sqlite://").ok_or_else(bad)?;
    if rest.is_empty() || rest == "/:memory:" {
        return Ok(DbLocation::Memory);
    }
    // What follows the third slash is the path: "/data/app.db" stays absolute, "app.db" relative.
    let path = rest
        .strip_prefix('/')
        .filter(|p| !p.is_empty())
        .ok_or_else(bad)?;
    // Query strings (`?mode=...`) are not supported; refuse rather than create a file named so.
    if path.contains('?') {
        return Err(bad());
    }
    Ok(DbLocation::File(PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Config, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults() {
        let c = from(&[]).expect("defaults are valid");
        assert_eq!(c.db, DbLocation::File("app.db".into()));
        assert_eq!((c.port, c.workers, c.max_body_bytes), (8000, 16, 65536));
        assert_eq!(c.secret, None);
        assert_eq!(c.log_level, Level::Info);
    }

    #[test]
    fn database_urls() {
        assert_eq!(parse_database_url("sqlite://"), Ok(DbLocation::Memory));
        assert_eq!(
            parse_database_url("sqlite:////data/app.db"),
            Ok(DbLocation::File("/data/app.db".into()))
        );
        assert_eq!(
            parse_database_url("sqlite:///./x/app.db"),
            Ok(DbLocation::File("./x/app.db".into()))
        );
        for bad in [
            "postgres://x",
            "app.db",
            "sqlite:///",
            "sqlite:///a.db?mode=ro",
            "sqlite:/x",
        ] {
            assert!(parse_database_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_are_errors_not_fallbacks() {
        assert!(from(&[("PORT", "80x")]).is_err());
        assert!(from(&[("PORT", "70000")]).is_err());
        assert!(from(&[("WORKERS", "0")]).is_err());
        assert!(from(&[("LOG_LEVEL", "verbose")]).is_err());
        assert_eq!(
            from(&[("LOG_LEVEL", "warn")]).map(|c| c.log_level),
            Ok(Level::Warning)
        );
        assert_eq!(from(&[("WEBHOOK_SECRET", "")]).map(|c| c.secret), Ok(None));
    }
}
