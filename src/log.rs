//! JSON logging: exactly one object per line, each line built in a buffer and written with one
//! `write_all` under a lock, so lines from parallel workers never interleave.
//!
//! Writing never blocks a request: stdout goes through `Spool`, a bounded queue drained by a
//! thread of its own. When the reader of stdout does not keep up (a full pipe), lines are
//! dropped, counted (`log_lines_dropped_total`), and the next line that gets through says how
//! many were lost before it (`log_lines_dropped`).
//!
//! A page of our own instead of a logging crate: we need one fixed format, level filtering and
//! nothing else. String values are escaped by serde_json, so any byte a client sends (a path,
//! a message id) comes out as valid JSON. Callers decide what goes in a line; nothing here knows
//! about secrets, so the rule "never log the secret, the signature or a message text" is kept by
//! the callers: `server` (request and accept-error lines), `lib` (start-up and shutdown) and
//! `main` (a fatal error).
//!
//! Owns: `Level`, `Logger`, `Line`, `Spool`.
//! Leaves out: what goes in a line. Uses: `ts` (the line's time), `lock`, serde_json.

use std::fmt::{Display, Write as _};
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

/// Each level's name, in the order of `Level`.
const NAMES: [&str; 4] = ["DEBUG", "INFO", "WARNING", "ERROR"];

impl Level {
    /// `LOG_LEVEL` values, any case; `WARN` is accepted for `WARNING`.
    pub fn parse(s: &str) -> Option<Level> {
        let name = s.trim().to_ascii_uppercase();
        let name = if name == "WARN" { "WARNING" } else { &name };
        let levels = [Level::Debug, Level::Info, Level::Warning, Level::Error];
        levels.into_iter().find(|l| l.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        NAMES[self as usize]
    }
}

/// Where lines go (stdout in production, a shared buffer in tests) and which levels pass.
pub struct Logger {
    min: Level,
    out: Mutex<Box<dyn Write + Send>>,
    /// Lines the sink refused, in all (`/metrics`), and since the last line that got through.
    dropped: Arc<AtomicU64>,
    unreported: AtomicU64,
}

impl Logger {
    pub fn new(min: Level, out: Box<dyn Write + Send>) -> Logger {
        Logger {
            min,
            out: Mutex::new(out),
            dropped: Arc::default(),
            unreported: AtomicU64::new(0),
        }
    }

    /// Lines to stdout through a `Spool`, so a reader that stops reading never stalls a request.
    pub fn stdout(min: Level) -> Logger {
        Logger::new(min, Box::new(Spool::new(std::io::stdout())))
    }

    /// Whether lines of this level are written (so callers can skip building the others).
    pub fn enabled(&self, level: Level) -> bool {
        level >= self.min
    }

    /// The count of lines dropped, shared (for `/metrics`).
    pub fn dropped(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.dropped)
    }

    /// Writes the line if its level passes the filter.
    pub fn write(&self, line: Line) {
        if line.level >= self.min {
            self.always(line);
        }
    }

    /// Writes the line whatever `LOG_LEVEL` says: the start-up and shutdown lines, which tell the
    /// port and the version. A line the sink refuses (a full spool, a closed stdout) is dropped
    /// and counted: losing a log line must not fail or hold a request.
    pub fn always(&self, line: Line) {
        let lost = self.unreported.load(SeqCst);
        let line = match lost {
            0 => line,
            n => line.raw("log_lines_dropped", n),
        };
        let mut buf = line.buf;
        buf.push_str("}\n");
        let mut out = crate::lock(&self.out);
        match out.write_all(buf.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => _ = self.unreported.fetch_sub(lost, SeqCst),
            Err(_) => {
                self.dropped.fetch_add(1, SeqCst);
                self.unreported.fetch_add(1, SeqCst);
            }
        }
    }
}

/// Lines waiting for the spool's thread, at most (about a megabyte of request lines).
const SPOOL_LINES: usize = 4096;

/// A sink that never blocks its caller: each write is one line, queued for a thread that writes
/// it out; with the queue full, the write fails at once (`WouldBlock`). Dropped, it waits up to
/// two seconds for the queue to drain (the shutdown line is the last one queued).
pub struct Spool {
    queue: Option<SyncSender<Vec<u8>>>,
    drained: Receiver<()>,
}

impl Spool {
    pub fn new(mut out: impl Write + Send + 'static) -> Spool {
        let (queue, lines) = sync_channel::<Vec<u8>>(SPOOL_LINES);
        let (done, drained) = channel();
        let writer = move || {
            for line in lines {
                let _ = out.write_all(&line).and_then(|()| out.flush());
            }
            let _ = done.send(());
        };
        let spawned = std::thread::Builder::new().name("log".into()).spawn(writer);
        Spool {
            queue: spawned.ok().map(|_| queue),
            drained,
        }
    }
}

impl Write for Spool {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let queue = self.queue.as_ref().ok_or(ErrorKind::BrokenPipe)?;
        match queue.try_send(b.to_vec()) {
            Ok(()) => Ok(b.len()),
            Err(TrySendError::Full(_)) => Err(ErrorKind::WouldBlock.into()),
            Err(TrySendError::Disconnected(_)) => Err(ErrorKind::BrokenPipe.into()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if self.queue.take().is_some() {
            let _ = self.drained.recv_timeout(Duration::from_secs(2));
        }
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
        let (ts, level_name) = (crate::ts::now_utc(), level.as_str());
        let _ = write!(buf, "{{\"ts\":\"{ts}\",\"level\":\"{level_name}\""); // into a String: no error
        Line { level, buf }
    }

    /// A string field, JSON-escaped, cut to `MAX_VALUE_CHARS` characters (then ending in `…`),
    /// so that no value a client sends can make a line long.
    pub fn str(self, key: &str, value: &str) -> Line {
        let cut = value.char_indices().nth(MAX_VALUE_CHARS);
        let cut = cut.map(|(end, _)| format!("{}…", &value[..end]));
        let value = cut.as_deref().unwrap_or(value);
        // Serialising a &str cannot fail; the fallback only keeps the line valid JSON regardless.
        let escaped = serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into());
        self.raw(key, escaped)
    }

    /// A number or boolean field, written with `Display` (callers pass only numbers and bools;
    /// `str` passes its escaped string).
    pub fn raw(mut self, key: &str, value: impl Display) -> Line {
        let _ = write!(self.buf, ",\"{key}\":{value}"); // into a String: no error
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            crate::lock(&self.0).write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

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
