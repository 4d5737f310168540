//! JSON logging: exactly one object per line, each line built in a buffer and written with one
//! `write_all` under a lock, so lines from parallel workers never interleave.
//!
//! A page of our own instead of a logging crate: we need one fixed format, level filtering and
//! nothing else. String values are escaped by serde_json, so any byte a client sends (a path,
//! a message id) comes out as valid JSON. Callers decide what goes in a line; nothing here knows
//! about secrets, so the rule "never log the secret, the signature or a message text" is kept by
//! the callers: `server` (request and accept-error lines), `lib` (start-up and shutdown) and
//! `main` (a fatal error).
//!
//! Owns: `Level`, `Logger`, `Line`, and `Capture` (an in-memory sink for tests).
//! Leaves out: what goes in a line. Uses: `ts` (the line's time), `lock`, serde_json.

use std::fmt::Display;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

impl Level {
    /// `LOG_LEVEL` values, any case; `WARN` is accepted for `WARNING`.
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_uppercase().as_str() {
            "DEBUG" => Some(Level::Debug),
            "INFO" => Some(Level::Info),
            "WARNING" | "WARN" => Some(Level::Warning),
            "ERROR" => Some(Level::Error),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

/// Where lines go (stdout in production, a shared buffer in tests) and which levels pass.
pub struct Logger {
    min: Level,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Logger {
    pub fn new(min: Level, out: Box<dyn Write + Send>) -> Logger {
        Logger {
            min,
            out: Mutex::new(out),
        }
    }

    pub fn stdout(min: Level) -> Logger {
        Logger::new(min, Box::new(std::io::stdout()))
    }

    /// Whether lines of this level are written (so callers can skip building the others).
    pub fn enabled(&self, level: Level) -> bool {
        level >= self.min
    }

    /// Writes the line if its level passes the filter. A failed write (closed stdout) is ignored:
    /// losing a log line must not fail a request that has already been answered.
    pub fn write(&self, line: Line) {
        if line.level < self.min {
            return;
        }
        let mut buf = line.buf;
        buf.push_str("}\n");
        let mut out = crate::lock(&self.out);
        let _ = out.write_all(buf.as_bytes()).and_then(|()| out.flush());
    }
}

/// An in-memory sink, for tests that read what was logged. Clones share one buffer.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything written so far (lossy if a writer sent invalid UTF-8, which ours never do).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&crate::lock(&self.0)).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        crate::lock(&self.0).extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The longest string value in a line, in characters. Escaped, a value is at most 1,536 bytes (a
/// control character becomes six), so a request line, with its three client-chosen strings
/// (method, path, message id), stays under 4 KiB.
pub const MAX_VALUE_CHARS: usize = 256;

/// One log line under construction: `ts` and `level` first, then fields in the order added.
pub struct Line {
    level: Level,
    buf: String,
}

impl Line {
    pub fn new(level: Level) -> Line {
        let mut buf = String::with_capacity(256);
        buf.push_str("{\"ts\":\"");
        buf.push_str(&crate::ts::now_utc());
        buf.push_str("\",\"level\":\"");
        buf.push_str(level.as_str());
        buf.push('"');
        Line { level, buf }
    }

    /// A string field, JSON-escaped, cut to `MAX_VALUE_CHARS` characters (then ending in `…`),
    /// so that no value a client sends can make a line long.
    pub fn str(mut self, key: &str, value: &str) -> Line {
        self.key(key);
        let cut;
        let value = match value.char_indices().nth(MAX_VALUE_CHARS) {
            Some((end, _)) => {
                cut = format!("{}…", &value[..end]);
                &cut
            }
            None => value,
        };
        // Serialising a &str cannot fail; the fallback only keeps the line valid JSON regardless.
        self.buf
            .push_str(&serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into()));
        self
    }

    /// A number or boolean field, written with `Display` (callers pass only numbers and bools).
    pub fn raw(mut self, key: &str, value: impl Display) -> Line {
        self.key(key);
        self.buf.push_str(&value.to_string());
        self
    }

    fn key(&mut self, key: &str) {
        self.buf.push_str(",\"");
        self.buf.push_str(key);
        self.buf.push_str("\":");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_and_filtered() {
        let buf = Capture::default();
        let log = Logger::new(Level::Info, Box::new(buf.clone()));
        log.write(Line::new(Level::Debug).str("x", "dropped"));
        log.write(
            Line::new(Level::Warning)
                .str("path", "/a\"b\n\u{1}")
                .raw("status", 404)
                .raw("dup", false),
        );
        let text = buf.text();
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).expect("valid JSON");
        assert_eq!(v["level"], "WARNING");
        assert_eq!(v["path"], "/a\"b\n\u{1}");
        assert_eq!(v["status"], 404);
        assert_eq!(v["dup"], false);
        assert!(
            v["ts"]
                .as_str()
                .is_some_and(|t| t.len() == 24 && t.ends_with('Z'))
        );
    }
}
