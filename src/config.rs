//! Configuration: one field per environment variable, parsed and validated once at start-up.
//!
//! Owns: `VARS`, the one table of variables (name, default, range, meaning) that `--help`
//! prints and that the README and `.env.example` must match (a test checks); parsing; the
//! database URL grammar. A bad value is an error naming the variable, never a silent fallback
//! to the default. The lookup is a parameter so tests can build a `Config` without touching the
//! process environment.
//! Leaves out: acting on any value. Uses: `log::Level`.

use crate::log::Level;
use std::net::IpAddr;
use std::path::PathBuf;

/// Where the SQLite database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbLocation {
    /// `sqlite://`: a private in-memory database, gone when the process exits.
    Memory,
    /// `sqlite:///rel/path.db` or `sqlite:////abs/path.db`.
    File(PathBuf),
}

/// One environment variable: name, default (`""` for none), range for numbers, meaning.
pub struct Var {
    pub name: &'static str,
    pub default: &'static str,
    pub range: Option<(usize, usize)>,
    pub meaning: &'static str,
}

#[rustfmt::skip] // one line per variable reads as the table it is
const fn var(name: &'static str, default: &'static str, range: Option<(usize, usize)>, meaning: &'static str) -> Var {
    Var { name, default, range, meaning }
}

const HOUR_MS: Option<(usize, usize)> = Some((1, 3_600_000));

/// Every variable the service reads, in the order of the README table and `.env.example`.
#[rustfmt::skip]
pub const VARS: [Var; 23] = [
    var("DATABASE_URL", "sqlite:///app.db", None, "SQLite URL: sqlite:////abs/path.db (four slashes), sqlite:///rel/path.db (relative to the working directory: sqlite:///tmp/x.db is ./tmp/x.db), sqlite:// (memory); parent folders are created"),
    var("WEBHOOK_SECRET", "", None, "HMAC-SHA256 key for X-Signature and Standard Webhooks (whsec_ + base64, or raw); unset or empty: the service runs, is not ready, and answers webhooks 503"),
    var("LOG_LEVEL", "INFO", None, "DEBUG, INFO, WARNING (or WARN), ERROR; any case"),
    var("PORT", "8000", Some((0, 65535)), "listening port (on HOST); 0 picks a free port (the start-up line names it)"),
    var("HOST", "0.0.0.0", None, "listening address: 0.0.0.0 all IPv4 interfaces, 127.0.0.1 this machine only, :: IPv6 and IPv4 (dual stack)"),
    var("WORKERS", "16", Some((1, 256)), "worker threads for every request but webhooks, which have 4 times as many of their own"),
    var("MAX_BODY_BYTES", "65536", Some((1, 16 << 20)), "largest request body in bytes; larger gets 413"),
    var("WEBHOOK_SECRET_PREVIOUS", "", None, "a second accepted HMAC key while senders move to a new one"),
    var("MAX_HEADER_BYTES", "8192", Some((256, 1 << 20)), "request line plus headers in bytes; larger gets 414 or 431"),
    var("MAX_CONNECTIONS", "auto", Some((1, 1_000_000)), "open connections; at the cap the one idle longest is shed for a newcomer (503 when none is idle); auto: the open-file limit less a reserve"),
    var("IDLE_TIMEOUT_MS", "5000", HOUR_MS, "how long a keep-alive connection may wait for its next request"),
    var("READ_TIMEOUT_MS", "5000", HOUR_MS, "longest silence while a request arrives; then 408"),
    var("REQUEST_TIMEOUT_MS", "10000", HOUR_MS, "deadline for a whole request from its first byte; then 408"),
    var("WRITE_TIMEOUT_MS", "5000", HOUR_MS, "longest a response write may block; then the connection is dropped"),
    var("BUSY_TIMEOUT_MS", "5000", HOUR_MS, "how long a statement waits for a lock another process holds; then 503"),
    var("READ_BUDGET_MS", "2000", HOUR_MS, "longest a /messages or /stats read may run; then it is interrupted and answered 503"),
    var("READ_CONNECTIONS", "auto", Some((1, 64)), "SQLite read connections, so reads run on every core; auto: one per core, at most 8, plus one kept free of text searches"),
    var("WEBHOOK_TOLERANCE_SECONDS", "300", Some((1, 86_400)), "how far a Standard Webhooks webhook-timestamp may lie from now, either way; further gets 401"),
    var("WHATSAPP_VERIFY_TOKEN", "", None, "the verify token of /webhook/whatsapp's GET handshake (Meta's dashboard); unset or empty: the handshake gets 403"),
    var("WHATSAPP_APP_SECRET", "", None, "the Meta app secret that signs /webhook/whatsapp deliveries (X-Hub-Signature-256); unset or empty, and no previous one: 503"),
    var("WHATSAPP_APP_SECRET_PREVIOUS", "", None, "a second accepted app secret while the app's secret is rotated"),
    var("RETENTION_DAYS", "0", Some((0, 36500)), "messages received (created_at) longer ago than this many days are deleted, every aggregate kept exact; 0: kept forever"),
    var("MAX_DB_MB", "0", Some((0, 1 << 24)), "disk budget for the database file and its WAL in MiB: past 50% of it in live pages the oldest received are deleted down to 40% (the WAL, free pages and the text index's pending merges take the rest); 0: no budget"),
];

/// The variables as `--help` lists them: name, meaning, default and range.
pub fn help() -> String {
    VARS.iter()
        .map(|v| {
            let default = Some(v.default).filter(|d| !d.is_empty()).unwrap_or("none");
            let range = (v.range).map_or(String::new(), |(lo, hi)| format!(", {lo}..={hi}"));
            let (name, meaning) = (v.name, v.meaning);
            format!("  {name} [default {default}{range}]\n      {meaning}\n")
        })
        .collect()
}

/// No `Debug`: the secret must never end up in a log line by accident. Each field is the
/// variable of `VARS` it names.
#[derive(Clone)]
pub struct Config {
    pub db: DbLocation,
    /// `WEBHOOK_SECRET` and `WEBHOOK_SECRET_PREVIOUS`, those set and not empty; the previous
    /// one is ignored while `WEBHOOK_SECRET` is unset.
    pub secrets: Vec<String>,
    pub log_level: Level,
    pub port: u16,
    pub host: IpAddr,
    /// `WORKERS`: 16 by default; the webhook lane has 4 times as many (`server`).
    pub workers: usize,
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    /// `MAX_CONNECTIONS`; 0 for `auto` until `start` sets it from the open-file limit.
    pub max_connections: usize,
    pub idle_timeout_ms: u64,
    pub read_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub write_timeout_ms: u64,
    /// `BUSY_TIMEOUT_MS` (a backup tool, say, holding the lock).
    pub busy_timeout_ms: u64,
    pub read_budget_ms: u64,
    /// `READ_CONNECTIONS`; 0 for `auto`.
    pub read_connections: usize,
    pub tolerance_seconds: u64,
    /// `WHATSAPP_VERIFY_TOKEN`; an empty value counts as none.
    pub whatsapp_verify_token: Option<String>,
    /// `WHATSAPP_APP_SECRET` and `WHATSAPP_APP_SECRET_PREVIOUS`, those set and not empty.
    pub whatsapp_secrets: Vec<String>,
    /// `RETENTION_DAYS`; 0: off.
    pub retention_days: u64,
    /// `MAX_DB_MB`; 0: off.
    pub max_db_mb: u64,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, String> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `get`, applying the defaults of `VARS`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let text = |name: &str| get(name).or_else(|| lookup(name).map(|v| v.default.into()));
        let given = |name: &str| get(name).filter(|s| !s.is_empty());
        let db = parse_database_url(&text("DATABASE_URL").unwrap_or_default())?;
        let level = text("LOG_LEVEL").unwrap_or_default();
        let log_level = Level::parse(&level).ok_or_else(|| {
            format!("LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level:?}")
        })?;
        let host = text("HOST").unwrap_or_default();
        let bad_host =
            |_| format!("HOST must be an IP address (0.0.0.0, 127.0.0.1, ::), got {host:?}");
        let host = host.trim().parse().map_err(bad_host)?;
        let n = |name: &str| number(name, text(name));
        Ok(Config {
            db,
            secrets: ["WEBHOOK_SECRET", "WEBHOOK_SECRET_PREVIOUS"]
                .into_iter()
                .map_while(given)
                .collect(),
            log_level,
            port: n("PORT")? as u16,
            host,
            workers: n("WORKERS")?,
            max_body_bytes: n("MAX_BODY_BYTES")?,
            max_header_bytes: n("MAX_HEADER_BYTES")?,
            max_connections: n("MAX_CONNECTIONS")?,
            idle_timeout_ms: n("IDLE_TIMEOUT_MS")? as u64,
            read_timeout_ms: n("READ_TIMEOUT_MS")? as u64,
            request_timeout_ms: n("REQUEST_TIMEOUT_MS")? as u64,
            write_timeout_ms: n("WRITE_TIMEOUT_MS")? as u64,
            busy_timeout_ms: n("BUSY_TIMEOUT_MS")? as u64,
            read_budget_ms: n("READ_BUDGET_MS")? as u64,
            read_connections: n("READ_CONNECTIONS")?,
            tolerance_seconds: n("WEBHOOK_TOLERANCE_SECONDS")? as u64,
            whatsapp_verify_token: given("WHATSAPP_VERIFY_TOKEN"),
            whatsapp_secrets: ["WHATSAPP_APP_SECRET", "WHATSAPP_APP_SECRET_PREVIOUS"]
                .into_iter()
                .filter_map(given)
                .collect(),
            retention_days: n("RETENTION_DAYS")? as u64,
            max_db_mb: n("MAX_DB_MB")? as u64,
        })
    }
}

/// The variable `name` of `VARS`.
fn lookup(name: &str) -> Option<&'static Var> {
    VARS.iter().find(|v| v.name == name)
}

/// A numeric variable's `value` (given, else its default) within its range in `VARS`; one whose
/// default is `auto` may also be `auto`, which is 0.
fn number(name: &str, value: Option<String>) -> Result<usize, String> {
    let var = lookup(name);
    let (min, max) = var.and_then(|v| v.range).unwrap_or((0, 0));
    let value_trimmed = value.as_deref().map(str::trim);
    if var.is_some_and(|v| v.default == "auto") && value_trimmed == Some("auto") {
        return Ok(0);
    }
    match value_trimmed.map(str::parse::<usize>) {
        Some(Ok(n)) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{name} must be an integer from {min} to {max}, got {:?}",
            value.unwrap_or_default()
        )),
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
        assert!(c.secrets.is_empty());
        assert_eq!(c.log_level, Level::Info);
    }

    #[test]
    fn help_readme_and_env_example_list_the_same_variables() {
        let readme = include_str!("../README.md");
        let example = include_str!("../.env.example");
        // Each assignment with the comment lines just above it.
        let (mut entries, mut comment) = (Vec::new(), String::new());
        for line in example.lines() {
            match line.split_once('=') {
                Some((name, _)) if !line.starts_with('#') => {
                    entries.push((name, std::mem::take(&mut comment)));
                }
                _ if line.starts_with('#') => comment += line,
                _ => comment.clear(),
            }
        }
        let names: Vec<&str> = entries.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            VARS.map(|v| v.name),
            ".env.example: every variable, in order"
        );
        let help = help();
        for (v, (_, comment)) in VARS.iter().zip(&entries) {
            let default = Some(v.default).filter(|d| !d.is_empty()).unwrap_or("none");
            let cell = if v.default.is_empty() {
                "none".into()
            } else {
                format!("`{default}`")
            };
            let range = v
                .range
                .map(|(lo, hi)| format!("{lo}..={hi}"))
                .unwrap_or_default();
            let row = format!("| `{}` | {cell} | {range} |", v.name);
            assert!(readme.contains(&row), "README row {row}");
            assert!(
                comment.contains(&format!("Default: {default}")),
                ".env.example {}",
                v.name
            );
            assert!(comment.contains(&range), ".env.example range of {}", v.name);
            assert!(
                help.contains(&format!("{} [default {default}", v.name)),
                "--help {}",
                v.name
            );
        }
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
        assert_eq!(
            from(&[("WEBHOOK_SECRET", "")]).map(|c| c.secrets.len()),
            Ok(0)
        );
        let host = |v: &str| from(&[("HOST", v)]).map(|c| c.host.to_string());
        assert_eq!(from(&[]).map(|c| c.host.to_string()), Ok("0.0.0.0".into()));
        assert_eq!(host(" :: "), Ok("::".into()));
        assert_eq!(host("127.0.0.1"), Ok("127.0.0.1".into()));
        for bad in ["", "localhost", "[::]", "0.0.0.0:80", "256.0.0.1"] {
            let err = host(bad).err().unwrap_or_default();
            assert!(
                err.starts_with("HOST must be an IP address"),
                "{bad}: {err}"
            );
        }
    }
}
