//! The operators' pack in `ops/`: the alert rules pass `promtool check rules` and their unit
//! tests, every expression of the rules and the dashboard parses, and every metric they name is
//! in a live /metrics of the real binary, so a metric renamed in the code fails here. Also the
//! binary's own commands an operator runs: the container health check, `--version`, `--help`.

mod support;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::Command;
use support::{Binary, request};

/// Runs promtool with `args`; panics with its output unless it succeeds.
fn promtool(promtool: &str, args: &[&str]) {
    let out = Command::new(promtool)
        .args(args)
        .output()
        .expect("run promtool");
    let said = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
    assert!(out.status.success(), "promtool {args:?}: {said}");
}

/// Every PromQL expression of the pack, Grafana's variables replaced by values PromQL accepts.
fn expressions() -> Vec<String> {
    let rules = std::fs::read_to_string("ops/alerts.yml").expect("ops/alerts.yml");
    let mut exprs: Vec<String> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(|e| e.trim().to_string())
        .collect();
    assert!(
        exprs
            .iter()
            .all(|e| !e.is_empty() && !e.starts_with(['|', '>'])),
        "every expr in alerts.yml is on one line: {exprs:?}"
    );
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string("ops/dashboard.json").expect("dashboard"))
            .expect("dashboard.json is JSON");
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| match (k.as_str(), v) {
                ("expr", Value::String(e)) => out.push(e.clone()),
                _ => walk(v, out),
            }),
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let before = exprs.len();
    walk(&dashboard, &mut exprs);
    assert!(
        exprs.len() > before + 10,
        "the dashboard's panels have expressions"
    );
    exprs
        .into_iter()
        .map(|e| {
            e.replace("$__rate_interval", "5m")
                .replace("$instance", ".*")
        })
        .collect()
}

/// The metric names an expression reads: identifiers outside label matchers, strings and
/// ranges, that are not functions, keywords, or the label lists of `by (...)` and its kin.
fn metric_names(expr: &str) -> Vec<String> {
    const KEYWORDS: [&str; 5] = ["and", "or", "unless", "bool", "offset"];
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let mut names = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(close) = match c {
            '{' => Some('}'),
            '[' => Some(']'),
            '"' => Some('"'),
            _ => None,
        } {
            i += 1 + chars[i + 1..]
                .iter()
                .position(|&x| x == close)
                .expect("closed");
        } else if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let rest: String = chars[i..]
                .iter()
                .collect::<String>()
                .trim_start()
                .to_string();
            if GROUPING.contains(&word.as_str()) {
                // Skip the label list that follows.
                i += chars[i..]
                    .iter()
                    .position(|&x| x == ')')
                    .expect("label list")
                    + 1;
            } else if !c.is_ascii_digit() // a number or a duration
                && !rest.starts_with('(') // a function
                && !rest.starts_with("by") // an aggregation: `sum by (...)`
                && !rest.starts_with("without")
                && !KEYWORDS.contains(&word.as_str())
            {
                names.push(word);
            }
            continue;
        }
        i += 1;
    }
    names
}

#[test]
fn metric_names_are_read_from_expressions() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (instance, le) (rate(a_bucket{path=~"/x|y"}[5m]))) > 0.1 and on (x) b_total offset 5m"#
        ),
        ["a_bucket", "b_total"]
    );
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let Some(p) = support::promtool() else {
        return;
    };
    promtool(&p, &["check", "rules", "ops/alerts.yml"]);
    promtool(&p, &["test", "rules", "ops/alerts_test.yml"]);
}

#[test]
fn every_expression_parses_and_reads_only_metrics_the_binary_exports() {
    let exprs = expressions();
    if let Some(p) = support::promtool() {
        // Written as recording rules, promtool parses each expression.
        let rules: Vec<Value> = (exprs.iter().enumerate())
            .map(|(n, e)| json!({"record": format!("pack:expr_{n}"), "expr": e}))
            .collect();
        let file = support::temp_dir().join("exprs.yml");
        let doc = json!({"groups": [{"name": "pack", "rules": rules}]});
        std::fs::write(&file, doc.to_string()).expect("write rules");
        promtool(&p, &["check", "rules", file.to_str().expect("path")]);
    }
    let db = format!("sqlite:///{}", support::temp_dir().join("app.db").display());
    let mut b = Binary::start(&[("DATABASE_URL", &db), ("WEBHOOK_SECRET", support::SECRET)]);
    let body = json!({"message_id": "m1", "from": "+1", "to": "+2", "ts": "2025-01-15T10:00:00Z"})
        .to_string();
    let r = support::post_signed(b.addr, &body);
    assert_eq!(r.status, 200);
    let text = request(b.addr, "GET", "/metrics", &[], b"").text();
    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let sample = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    assert_eq!(
        sample("db_batch_rows_count"),
        Some(1.0),
        "the writer counts its commit"
    );
    assert_eq!(sample("db_batch_rows_sum"), Some(1.0));
    assert_eq!(sample("db_commit_seconds_count"), Some(1.0));
    assert_eq!(sample("service_ready"), Some(1.0));
    let mut used = BTreeSet::new();
    for e in &exprs {
        used.extend(metric_names(e));
    }
    // `up` is written by Prometheus itself for every target, never by an exporter.
    let missing: Vec<_> = used
        .iter()
        .filter(|n| *n != "up" && !exported.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the pack uses metrics /metrics does not have: {missing:?}\n{text}"
    );
    assert!(used.len() >= 15, "{used:?}");
    b.terminate();
}

/// `webhook-api healthcheck` (the image's HEALTHCHECK): exit 0 only while /health/ready on
/// 127.0.0.1:$PORT answers 200; 1 when it answers otherwise or nothing listens.
#[test]
fn the_health_check_command_follows_readiness() {
    let check = |port: u16| {
        let port = port.to_string();
        support::run_binary(&["healthcheck"], &[("PORT", &port)])
            .status
            .code()
    };
    let dir = support::temp_dir();
    let db = format!("sqlite:///{}", dir.join("app.db").display());
    let ready = Binary::start(&[("DATABASE_URL", &db), ("WEBHOOK_SECRET", "s")]);
    assert_eq!(check(ready.addr.port()), Some(0));
    // No secret: the service runs but is not ready (503).
    let db2 = format!("sqlite:///{}", dir.join("other.db").display());
    let unready = Binary::start(&[("DATABASE_URL", &db2)]);
    assert_eq!(
        request(unready.addr, "GET", "/health/ready", &[], b"").status,
        503
    );
    assert_eq!(check(unready.addr.port()), Some(1));
    let port = ready.addr.port();
    drop(ready);
    assert_eq!(check(port), Some(1), "nothing listens");
}

#[test]
fn version_help_and_unknown_arguments() {
    let run = |arg: &str| support::run_binary(&[arg], &[]);
    let version = run("--version");
    assert_eq!(version.status.code(), Some(0));
    let text = String::from_utf8_lossy(&version.stdout).into_owned();
    assert_eq!(
        text.trim(),
        format!("webhook-api {}", env!("CARGO_PKG_VERSION"))
    );
    let help = run("--help");
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(
        text.contains("healthcheck") && text.contains("WEBHOOK_SECRET"),
        "{text}"
    );
    let wrong = run("--nope");
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("unknown argument"));
}

/// The listening addresses of the binary started with `HOST` set (or not): what the kernel
/// shows it listening on, and what answers.
fn started_on(host: Option<&str>) -> (Binary, Vec<String>) {
    let db = format!("sqlite:///{}", support::temp_dir().join("app.db").display());
    let mut vars = vec![("DATABASE_URL", db.as_str()), ("WEBHOOK_SECRET", "s")];
    vars.extend(host.map(|h| ("HOST", h)));
    let b = Binary::start(&vars);
    let addrs = support::listeners(b.child.id(), b.addr.port());
    (b, addrs)
}

/// The first address of this machine that is not a loopback one, if it has any (the source
/// address the kernel would pick for a route outward; nothing is sent).
fn outward_ipv4() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    Some(s.local_addr().ok()?.ip()).filter(|ip| !ip.is_loopback())
}

#[test]
fn host_chooses_the_listening_address() {
    let live = |addr: std::net::SocketAddr| request(addr, "GET", "/health/live", &[], b"").status;
    let reachable = |addr: std::net::SocketAddr| {
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok()
    };
    // Unset: every IPv4 interface (what the image needs).
    let (b, addrs) = started_on(None);
    assert_eq!(addrs, ["00000000"], "0.0.0.0 by default");
    drop(b);
    // 127.0.0.1: loopback only; this machine's outward address is refused.
    let (b, addrs) = started_on(Some("127.0.0.1"));
    assert_eq!(addrs, ["0100007F"]);
    assert_eq!(live(b.addr), 200);
    match outward_ipv4() {
        Some(ip) => assert!(!reachable((ip, b.addr.port()).into()), "{ip} is refused"),
        None => eprintln!("no outward IPv4 address here: only the kernel's table was checked"),
    }
    drop(b);
    // `::`: one IPv6 socket that also takes IPv4 (dual stack): [::1] and 127.0.0.1 answer.
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        return support::skip_or_fail("ipv6", "no IPv6 loopback here");
    }
    let (b, addrs) = started_on(Some("::"));
    assert_eq!(addrs, ["0".repeat(32)], "one socket on ::");
    let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, b.addr.port()));
    assert_eq!((live(v6), live(b.addr)), (200, 200), "[::1] and 127.0.0.1");
}

#[test]
fn a_bad_host_stops_start_up_naming_it() {
    let out = support::run_binary::<&str>(&[], &[("HOST", "localhost")]);
    assert_eq!(out.status.code(), Some(2));
    let line: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(
        line["error"],
        r#"HOST must be an IP address (0.0.0.0, 127.0.0.1, ::), got "localhost""#
    );
}

#[test]
fn help_as_a_word_is_dash_dash_help() {
    let run = |arg: &str| support::run_binary(&[arg], &[]);
    let (word, flag) = (run("help"), run("--help"));
    assert_eq!(word.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&word.stdout),
        String::from_utf8_lossy(&flag.stdout)
    );
    assert!(String::from_utf8_lossy(&word.stdout).contains("  HOST [default 0.0.0.0]"));
}
