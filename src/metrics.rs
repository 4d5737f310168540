//! Metrics: a counter family, a histogram and the process gauges, rendered as Prometheus text
//! format 0.0.4.
//!
//! Hand-written instead of a metrics crate: three families with fixed label sets need a few
//! atomics, two small maps and a renderer. Every label value comes from a fixed list (`method`
//! from a known set or `other`, `path` from the router's routes or `other`, `status` from the
//! codes we send), so no client can grow the label set.
//!
//! Owns: the metric primitives, the service's named metrics, the text rendering.
//! Left out on purpose: OpenMetrics (`# EOF`), exemplars, timestamps on samples, summaries; the
//! label values themselves (the router's routes, the webhooks' outcomes are given to it).
//! Uses: `lock`. Used by `store` for the writer's histograms.

use crate::lock;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Latency bounds in seconds: fine below a millisecond, where most answers land, and up to ten
/// seconds for the slow tail (a stalled client, a busy disk).
pub const SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Rows-per-commit bounds: powers of two up to the largest batches the writer sees under load.
pub const ROWS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A histogram: one atomic per bucket (not cumulative) plus the overflow slot, and the sum in
/// billionths. `count` is derived from the buckets, so a snapshot is always self-consistent.
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_billionths: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            bounds,
            counts,
            sum_billionths: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        let slot = self.bounds.iter().position(|&le| value <= le);
        self.counts[slot.unwrap_or(self.bounds.len())].fetch_add(1, Relaxed);
        self.sum_billionths.fetch_add((value * 1e9) as u64, Relaxed);
    }

    /// Cumulative bucket counts (the last one is `+Inf`, equal to the count) and the sum.
    pub fn snapshot(&self) -> (Vec<u64>, f64) {
        let mut running = 0;
        let cumulative = self.counts.iter().map(|c| {
            running += c.load(Relaxed);
            running
        });
        let sum = self.sum_billionths.load(Relaxed) as f64 / 1e9;
        (cumulative.collect(), sum)
    }

    /// The `_bucket`, `_sum` and `_count` samples of `name` with these labels.
    fn render(&self, out: &mut String, name: &str, pairs: &[(&str, &str)]) {
        let (cumulative, sum) = self.snapshot();
        let bounds = self.bounds.iter().map(f64::to_string);
        for (le, n) in bounds.chain(["+Inf".into()]).zip(&cumulative) {
            let l = labels(&[pairs, &[("le", &le)]].concat());
            let _ = writeln!(out, "{name}_bucket{l} {n}");
        }
        let l = labels(pairs);
        let _ = writeln!(out, "{name}_sum{l} {sum}");
        let _ = writeln!(out, "{name}_count{l} {}", cumulative[self.bounds.len()]);
    }
}

/// What the store's writer reports: how many rows each commit carried and how long it took
/// (rows, aggregates, text index and the fsync). Owned by the store, rendered here.
pub struct Writer {
    pub batch_rows: Histogram,
    pub commit_seconds: Histogram,
    /// Rows deleted, by reason (`store::prune::Reason`: retention, budget, erase).
    pub pruned: [AtomicU64; 3],
    /// Bytes of the database file and its WAL, as last measured.
    pub file_bytes: AtomicU64,
    /// `MAX_DB_MB` in bytes; 0 without a budget.
    pub budget_bytes: AtomicU64,
}

impl Default for Writer {
    fn default() -> Writer {
        Writer {
            batch_rows: Histogram::new(&ROWS),
            commit_seconds: Histogram::new(&SECONDS),
            pruned: Default::default(),
            file_bytes: AtomicU64::new(0),
            budget_bytes: AtomicU64::new(0),
        }
    }
}

/// A counter family whose label values are all known from the start: (name, help, label,
/// values). Each value is rendered, at 0 until counted.
#[rustfmt::skip] // one line reads better than four
pub type Family = (&'static str, &'static str, &'static str, &'static [&'static str]);

/// `db_rows_pruned_total`, its values in the order of `Writer::pruned`.
#[rustfmt::skip] // a table row
const PRUNED: Family = ("db_rows_pruned_total", "Rows deleted by retention, the disk budget or erasure.",
    "reason", &["retention", "budget", "erase"]);

/// The service's metrics. Cheap to update from many workers at once.
#[derive(Default)]
pub struct Metrics {
    http: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    /// The counter families with fixed labels (`webhook_requests_total`, the WhatsApp webhook's),
    /// each value's count in order.
    families: Vec<(Family, Vec<AtomicU64>)>,
    latency: Mutex<BTreeMap<(&'static str, &'static str), Histogram>>,
    /// Connections turned away at accept: `MAX_CONNECTIONS` open, none of them idle.
    pub rejected_connections: AtomicU64,
    /// Idle connections closed to admit a new one at `MAX_CONNECTIONS`.
    pub shed_connections: AtomicU64,
    /// Connections open now (each counts itself in and out).
    pub open_connections: Arc<AtomicUsize>,
    /// Connections parked with nothing in progress.
    pub idle_connections: AtomicUsize,
    /// Requests a worker is running now.
    pub in_progress: AtomicUsize,
    /// Reads stopped at `READ_BUDGET_MS`.
    pub reads_over_budget: AtomicU64,
    /// Connections dropped because handling them panicked in the poller (a bug, logged).
    pub connection_panics: AtomicU64,
    /// Text searches refused (503) because as many as allowed were running or waiting.
    pub searches_refused: AtomicU64,
    /// Log lines dropped because stdout's reader did not keep up (shared with the `Logger`).
    pub log_lines_dropped: Arc<AtomicU64>,
}

impl Metrics {
    /// Metrics at zero; `families` are the counter families with fixed labels, rendered after
    /// `http_requests_total` in this order.
    pub fn new(families: &[Family]) -> Metrics {
        Metrics {
            families: (families.iter())
                .map(|f| (*f, f.3.iter().map(|_| AtomicU64::new(0)).collect()))
                .collect(),
            ..Metrics::default()
        }
    }

    /// Counts one answered request and its latency. `route` must be a router route or `other`.
    pub fn record_request(&self, method: &str, route: &'static str, status: u16, seconds: f64) {
        let method = method_label(method);
        *lock(&self.http).entry((method, route, status)).or_default() += 1;
        let mut latency = lock(&self.latency);
        let hist = latency
            .entry((method, route))
            .or_insert_with(|| Histogram::new(&SECONDS));
        hist.observe(seconds); // a few atomics, under the map's lock
    }

    /// Adds `n` to the value `value` of family `name`; an unknown one is ignored (none is made).
    pub fn count(&self, name: &str, value: &str, n: u64) {
        for ((.., values), counts) in self.families.iter().filter(|(f, _)| f.0 == name) {
            if let Some(i) = values.iter().position(|v| *v == value) {
                counts[i].fetch_add(n, Relaxed);
            }
        }
    }

    /// The whole exposition: the service's families, then the process gauges.
    /// `ready` is the readiness rule's answer now, rendered as `service_ready`.
    pub fn render(&self, writer: &Writer, ready: bool) -> String {
        let mut out = self.render_service(writer, ready);
        render_process(&mut out);
        out
    }

    /// The service's own families, deterministic for a given history (pinned by a golden test).
    pub fn render_service(&self, writer: &Writer, ready: bool) -> String {
        let mut out = String::with_capacity(4096);
        let (http, latency) = ("http_requests_total", "request_latency_seconds");
        family(&mut out, http, "counter", "Total HTTP requests.");
        for ((method, path, status), n) in lock(&self.http).iter() {
            let status = status.to_string();
            let l = labels(&[("method", method), ("path", path), ("status", &status)]);
            let _ = writeln!(out, "{http}{l} {n}");
        }
        for (f, counts) in &self.families {
            counter(&mut out, f, counts);
        }
        family(
            &mut out,
            latency,
            "histogram",
            "Request latency in seconds.",
        );
        for ((method, path), hist) in lock(&self.latency).iter() {
            hist.render(&mut out, latency, &[("method", method), ("path", path)]);
        }
        #[rustfmt::skip] // a table: one family a line
        let histograms = [
            ("db_batch_rows", "Rows written by one commit of the writer.", &writer.batch_rows),
            ("db_commit_seconds", "Time to write and commit one batch, fsync included.", &writer.commit_seconds),
        ];
        for (name, help, hist) in histograms {
            family(&mut out, name, "histogram", help);
            hist.render(&mut out, name, &[]);
        }
        counter(&mut out, &PRUNED, &writer.pruned);
        #[rustfmt::skip] // a table: one sample a line
        let samples = [
            ("http_connections_rejected_total", "counter",
                "Connections refused: MAX_CONNECTIONS open, none idle.", self.rejected_connections.load(Relaxed)),
            ("http_connections_shed_total", "counter",
                "Idle connections closed to admit new ones at MAX_CONNECTIONS.", self.shed_connections.load(Relaxed)),
            ("http_connections_open", "gauge", "Connections open.", self.open_connections.load(Relaxed) as u64),
            ("http_connections_idle", "gauge",
                "Connections waiting between requests.", self.idle_connections.load(Relaxed) as u64),
            ("http_requests_in_progress", "gauge", "Requests being run.", self.in_progress.load(Relaxed) as u64),
            ("db_reads_over_budget_total", "counter",
                "Reads interrupted at READ_BUDGET_MS.", self.reads_over_budget.load(Relaxed)),
            ("http_connection_panics_total", "counter",
                "Connections dropped because handling them panicked (each is logged).", self.connection_panics.load(Relaxed)),
            ("db_searches_refused_total", "counter",
                "Text searches refused with 503: as many as allowed were running or waiting.", self.searches_refused.load(Relaxed)),
            ("log_lines_dropped_total", "counter",
                "Log lines dropped because the reader of stdout did not keep up.", self.log_lines_dropped.load(Relaxed)),
            ("service_ready", "gauge", "1 when /health/ready would answer 200, else 0.", u64::from(ready)),
            ("db_file_bytes", "gauge", "Bytes of the database file and its WAL.", writer.file_bytes.load(Relaxed)),
            ("db_budget_bytes", "gauge", "MAX_DB_MB in bytes; 0 without a budget.", writer.budget_bytes.load(Relaxed)),
        ];
        for (name, kind, help, value) in samples {
            sample(&mut out, name, kind, help, value);
        }
        out
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Methods we label by name; anything else is `other`, so the label set stays bounded.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("other")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A family of one unlabelled sample.
fn sample(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// A counter family with fixed labels, and each value's count, in order.
fn counter(out: &mut String, (name, help, label, values): &Family, counts: &[AtomicU64]) {
    family(out, name, "counter", help);
    for (value, n) in values.iter().zip(counts) {
        let l = labels(&[(label, value)]);
        let _ = writeln!(out, "{name}{l} {}", n.load(Relaxed));
    }
}

/// `{a="x",b="y"}` with values escaped as the format requires (`\\`, `\"`, `\n`); nothing
/// for no labels.
fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let pair = |(k, v): &(&str, &str)| {
        let v = v.replace('\\', "\\\\").replace('"', "\\\"");
        format!("{k}=\"{}\"", v.replace('\n', "\\n"))
    };
    let pairs: Vec<String> = pairs.iter().map(pair).collect();
    format!("{{{}}}", pairs.join(","))
}

/// `process_*` gauges from /proc/self, where it exists; elsewhere they are left out.
/// CPU ticks are converted at 100 per second (USER_HZ, fixed at 100 on Linux for every arch we
/// build for); reading sysconf would need libc and unsafe code for no practical gain.
fn render_process(out: &mut String) {
    const TICKS: f64 = 100.0;
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let stat = read("/proc/self/stat");
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    let boot = read("/proc/stat")
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok());
    let status = read("/proc/self/status");
    let bytes = |key: &str| {
        status.lines().find_map(|l| {
            let kib = l.strip_prefix(key)?.trim().trim_end_matches("kB").trim();
            kib.parse::<f64>().ok().map(|k| k * 1024.0)
        })
    };
    let fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as f64);
    #[rustfmt::skip] // a table: one sample a line
    let samples = [
        ("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
            field(14).zip(field(15)).map(|(user, system)| (user + system) / TICKS)),
        ("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
            boot.zip(field(22)).map(|(boot, start)| boot + start / TICKS)),
        ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", bytes("VmRSS:")),
        ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", bytes("VmSize:")),
        ("process_open_fds", "gauge", "Number of open file descriptors.", fds),
    ];
    for (name, kind, help, value) in samples {
        if let Some(v) = value {
            sample(out, name, kind, help, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_count_matches_inf() {
        let h = Histogram::new(&SECONDS);
        for s in [0.00005, 0.0001, 0.0003, 0.002, 20.0] {
            h.observe(s);
        }
        let (c, sum) = h.snapshot();
        assert!(c.windows(2).all(|w| w[0] <= w[1]), "cumulative: {c:?}");
        assert_eq!(c[0], 2, "0.00005 and 0.0001 are <= 0.0001");
        assert_eq!(c[2], 3);
        assert_eq!(c[SECONDS.len() - 1], 4, "20s is above the last bound");
        assert_eq!(c[SECONDS.len()], 5, "+Inf holds every observation");
        assert!((sum - 20.00245).abs() < 1e-6, "sum {sum}");
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(labels(&[("a", "x\\y\"z\nw")]), r#"{a="x\\y\"z\nw"}"#);
    }

    #[test]
    fn golden_exposition() {
        let m = Metrics::new(&[crate::webhook::COUNTER]);
        m.record_request("GET", "/health/live", 200, 0.00007);
        m.record_request("POST", "/webhook", 200, 0.003);
        m.record_request("BREW", "other", 404, 0.0002);
        m.count("webhook_requests_total", "created", 1);
        let writer = Writer::default();
        writer.batch_rows.observe(3.0);
        writer.batch_rows.observe(1.0);
        writer.commit_seconds.observe(0.004);
        let mut want = String::from(
            "# HELP http_requests_total Total HTTP requests.\n\
             # TYPE http_requests_total counter\n\
             http_requests_total{method=\"GET\",path=\"/health/live\",status=\"200\"} 1\n\
             http_requests_total{method=\"POST\",path=\"/webhook\",status=\"200\"} 1\n\
             http_requests_total{method=\"other\",path=\"other\",status=\"404\"} 1\n\
             # HELP webhook_requests_total Webhook outcomes.\n\
             # TYPE webhook_requests_total counter\n\
             webhook_requests_total{result=\"created\"} 1\n\
             webhook_requests_total{result=\"duplicate\"} 0\n\
             webhook_requests_total{result=\"invalid_signature\"} 0\n\
             webhook_requests_total{result=\"validation_error\"} 0\n\
             webhook_requests_total{result=\"payload_too_large\"} 0\n\
             webhook_requests_total{result=\"not_configured\"} 0\n\
             webhook_requests_total{result=\"storage_error\"} 0\n\
             # HELP request_latency_seconds Request latency in seconds.\n\
             # TYPE request_latency_seconds histogram\n",
        );
        let les = [
            "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
            "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
        ];
        for (method, path, first_bucket, sum) in [
            ("GET", "/health/live", 0, "0.00007"),
            ("POST", "/webhook", 5, "0.003"),
            ("other", "other", 1, "0.0002"),
        ] {
            for (i, le) in les.iter().enumerate() {
                let n = u8::from(i >= first_bucket);
                want += &format!(
                    "request_latency_seconds_bucket{{method=\"{method}\",path=\"{path}\",le=\"{le}\"}} {n}\n"
                );
            }
            want += &format!(
                "request_latency_seconds_sum{{method=\"{method}\",path=\"{path}\"}} {sum}\n"
            );
            want += &format!(
                "request_latency_seconds_count{{method=\"{method}\",path=\"{path}\"}} 1\n"
            );
        }
        want += "# HELP db_batch_rows Rows written by one commit of the writer.\n\
                 # TYPE db_batch_rows histogram\n";
        for (le, n) in [
            "1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024", "+Inf",
        ]
        .iter()
        .zip([1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2])
        {
            want += &format!("db_batch_rows_bucket{{le=\"{le}\"}} {n}\n");
        }
        want += "db_batch_rows_sum 4\ndb_batch_rows_count 2\n\
                 # HELP db_commit_seconds Time to write and commit one batch, fsync included.\n\
                 # TYPE db_commit_seconds histogram\n";
        for (i, le) in les.iter().enumerate() {
            let n = u8::from(i >= 5);
            want += &format!("db_commit_seconds_bucket{{le=\"{le}\"}} {n}\n");
        }
        want += "db_commit_seconds_sum 0.004\ndb_commit_seconds_count 1\n";
        writer.pruned[1].fetch_add(3, Relaxed);
        writer.file_bytes.store(8192, Relaxed);
        want += "# HELP db_rows_pruned_total Rows deleted by retention, the disk budget or erasure.\n\
                 # TYPE db_rows_pruned_total counter\n\
                 db_rows_pruned_total{reason=\"retention\"} 0\n\
                 db_rows_pruned_total{reason=\"budget\"} 3\n\
                 db_rows_pruned_total{reason=\"erase\"} 0\n\
                 # HELP http_connections_rejected_total Connections refused: MAX_CONNECTIONS open, none idle.\n\
                 # TYPE http_connections_rejected_total counter\n\
                 http_connections_rejected_total 0\n\
                 # HELP http_connections_shed_total Idle connections closed to admit new ones at MAX_CONNECTIONS.\n\
                 # TYPE http_connections_shed_total counter\n\
                 http_connections_shed_total 0\n\
                 # HELP http_connections_open Connections open.\n\
                 # TYPE http_connections_open gauge\n\
                 http_connections_open 0\n\
                 # HELP http_connections_idle Connections waiting between requests.\n\
                 # TYPE http_connections_idle gauge\n\
                 http_connections_idle 0\n\
                 # HELP http_requests_in_progress Requests being run.\n\
                 # TYPE http_requests_in_progress gauge\n\
                 http_requests_in_progress 0\n\
                 # HELP db_reads_over_budget_total Reads interrupted at READ_BUDGET_MS.\n\
                 # TYPE db_reads_over_budget_total counter\n\
                 db_reads_over_budget_total 0\n\
                 # HELP http_connection_panics_total Connections dropped because handling them panicked (each is logged).\n\
                 # TYPE http_connection_panics_total counter\n\
                 http_connection_panics_total 0\n\
                 # HELP db_searches_refused_total Text searches refused with 503: as many as allowed were running or waiting.\n\
                 # TYPE db_searches_refused_total counter\n\
                 db_searches_refused_total 0\n\
                 # HELP log_lines_dropped_total Log lines dropped because the reader of stdout did not keep up.\n\
                 # TYPE log_lines_dropped_total counter\n\
                 log_lines_dropped_total 0\n\
                 # HELP service_ready 1 when /health/ready would answer 200, else 0.\n\
                 # TYPE service_ready gauge\n\
                 service_ready 1\n\
                 # HELP db_file_bytes Bytes of the database file and its WAL.\n\
                 # TYPE db_file_bytes gauge\n\
                 db_file_bytes 8192\n\
                 # HELP db_budget_bytes MAX_DB_MB in bytes; 0 without a budget.\n\
                 # TYPE db_budget_bytes gauge\n\
                 db_budget_bytes 0\n";
        assert_eq!(m.render_service(&writer, true), want);
    }

    #[test]
    fn process_gauges_read_this_process() {
        // Spend a little user and system time first, so that the CPU total is not zero.
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(300) {
            let _ = std::fs::metadata("/proc/self/stat");
        }
        let mut out = String::new();
        render_process(&mut out);
        let value = |name: &str| -> f64 {
            out.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("{name} in {out}"))
        };
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        let kib = |key: &str| -> f64 {
            let line = status.lines().find(|l| l.starts_with(key)).expect(key);
            line[key.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .expect("kB")
        };
        let rss = value("process_resident_memory_bytes");
        assert!(
            (rss / 1024.0 - kib("VmRSS:")).abs() < kib("VmRSS:") / 2.0,
            "{rss}"
        );
        let vsz = value("process_virtual_memory_bytes");
        assert!(
            (vsz / 1024.0 - kib("VmSize:")).abs() < kib("VmSize:") / 10.0,
            "{vsz}"
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        // This test binary started moments ago.
        let start = value("process_start_time_seconds");
        assert!(
            start <= now + 1.0 && start > now - 600.0,
            "started {start}, now {now}"
        );
        let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
        let ticks: Vec<f64> = stat
            .rsplit(')')
            .next()
            .expect("fields")
            .split(' ')
            .skip(12)
            .take(2)
            .map(|t| t.parse().expect("ticks"))
            .collect();
        let cpu = value("process_cpu_seconds_total");
        assert!(
            ticks[0] >= 3.0 && ticks[1] >= 3.0,
            "user and system time spent: {ticks:?}"
        );
        assert!(
            (cpu - (ticks[0] + ticks[1]) / 100.0).abs() < 0.03,
            "{cpu} vs {ticks:?}"
        );
        let fds = std::fs::read_dir("/proc/self/fd").expect("fds").count() as f64;
        assert!((value("process_open_fds") - fds).abs() <= 4.0);
    }
}
