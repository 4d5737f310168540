//! The README and docs/ against the real binary, so a page cannot drift from the code:
//! - every shell block marked `<!-- run -->` runs as written, in order, in one shell session per
//!   page on a fresh database, under sh (dash here), bash and zsh (when installed); each
//!   full-line `# ...` comment in such a block is the exact output line of the command above it;
//! - the README's configuration table is `webhook-api --help` (names, order, defaults, ranges),
//!   and every default quoted in a docs table (`64 KiB`, `5 s`) is the variable's default;
//! - the metrics table in docs/operations.md is the families and types of a live /metrics, and
//!   every metric name anywhere in the pages is exported; the alert table is ops/alerts.yml;
//! - the input caps in docs/api.md hold at the cap and refuse one past it as the table says;
//! - the module map in docs/design.md lists every file of src/ with what it uses, as the code
//!   has it, and the graph has no circle;
//! - the README is at most 250 lines, every page's contents list and relative link resolves.

mod support;

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use support::{Binary, request};

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// README.md and every page of docs/, as (path, text).
fn pages() -> Vec<(String, String)> {
    let mut paths: Vec<String> = std::fs::read_dir("docs")
        .expect("docs/")
        .flatten()
        .map(|e| e.path().display().to_string())
        .filter(|p| p.ends_with(".md"))
        .collect();
    paths.sort();
    paths.insert(0, "README.md".into());
    paths.into_iter().map(|p| (p.clone(), read(&p))).collect()
}

/// The markdown tables of `text`: each a list of rows, each row its cells (header included,
/// the `|---|` line left out).
fn tables(text: &str) -> Vec<Vec<Vec<String>>> {
    let mut out: Vec<Vec<Vec<String>>> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        let Some(inner) = line.trim().strip_prefix('|') else {
            open = false;
            continue;
        };
        if !open {
            out.push(Vec::new());
            open = true;
        }
        if inner.starts_with("---") {
            continue;
        }
        let cells = inner.trim_end_matches('|').split(" | ");
        let row = cells.map(|c| c.trim().to_string()).collect();
        out.last_mut().expect("a table").push(row);
    }
    out
}

/// The words between backticks in `cell`.
fn ticked(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// `webhook-api --help`'s variables: (name, default, range).
fn help() -> Vec<(String, String, String)> {
    let out = support::run_binary(&["--help"], &[]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("  ")?.split_once(" [default ")?;
            let inside = rest.strip_suffix(']')?;
            let (default, range) = inside.split_once(", ").unwrap_or((inside, ""));
            Some((name.to_string(), default.to_string(), range.to_string()))
        })
        .collect()
}

fn start() -> Binary {
    let db = format!("sqlite:///{}", support::temp_dir().join("app.db").display());
    Binary::start(&[("DATABASE_URL", &db), ("WEBHOOK_SECRET", support::SECRET)])
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn the_readme_is_short_and_every_contents_list_and_link_resolves() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(lines <= 250, "README.md has {lines} lines, at most 250");
    for (path, text) in pages() {
        let dir = std::path::Path::new(&path)
            .parent()
            .expect("dir")
            .to_path_buf();
        for link in text.split("](").skip(1) {
            let target = &link[..link.find(')').expect("closed link")];
            if target.starts_with("http") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file = if file.is_empty() {
                dir.join(&path)
            } else {
                dir.join(file)
            };
            let file = if target.starts_with('#') {
                path.clone().into()
            } else {
                file
            };
            let shown = file.display().to_string();
            // Written by other pages' authors on their own branches.
            if !file.exists() && ["docs/senders.md", "docs/data.md"].contains(&shown.as_str()) {
                eprintln!("{path}: {shown} is not here yet (its own branch writes it)");
                continue;
            }
            assert!(file.exists(), "{path}: the link {target} names no file");
            if !anchor.is_empty() && shown.ends_with(".md") {
                let there = anchors(&read(&shown));
                assert!(
                    there.contains(anchor),
                    "{path}: no heading #{anchor} in {shown}"
                );
            }
        }
    }
}

#[test]
fn the_configuration_table_is_the_binarys_help_and_quoted_defaults_are_its_defaults() {
    let help = help();
    assert!(help.len() >= 17, "{help:?}");
    let readme = read("README.md");
    let table = tables(&readme)
        .into_iter()
        .find(|t| t[0].first().is_some_and(|c| c == "variable"))
        .expect("the configuration table");
    let rows: Vec<(String, String, String)> = table[1..]
        .iter()
        .map(|r| {
            (
                r[0].trim_matches('`').into(),
                r[1].trim_matches('`').into(),
                r[2].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows, help,
        "README's table against --help (name, default, range)"
    );
    // Every table with a default column: the default of the one variable a row names.
    let default_of: BTreeMap<&str, &str> = help
        .iter()
        .map(|(n, d, _)| (n.as_str(), d.as_str()))
        .collect();
    let mut checked = 0;
    for (path, text) in pages() {
        for table in tables(&text) {
            if table[0].get(1).map(String::as_str) != Some("default") {
                continue;
            }
            for row in &table[1..] {
                let vars: Vec<&str> = ticked(&row[0])
                    .into_iter()
                    .filter(|v| default_of.contains_key(v))
                    .collect();
                let quoted = row[1].trim_matches('`');
                if vars.len() != 1 || quoted.is_empty() {
                    continue;
                }
                let actual = default_of[vars[0]];
                let as_number = |unit: &str, times: u64| {
                    let n = quoted.strip_suffix(unit)?.trim().parse::<u64>().ok()?;
                    Some((n * times).to_string())
                };
                let same = quoted == actual
                    || as_number(" KiB", 1024).as_deref() == Some(actual)
                    || as_number(" s", 1000).as_deref() == Some(actual)
                    || as_number(" ms", 1).as_deref() == Some(actual);
                assert!(
                    same,
                    "{path}: {} quotes {quoted}, --help says {actual}",
                    vars[0]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 25, "defaults checked: {checked}");
}

#[test]
fn the_metrics_and_alert_tables_are_what_the_binary_and_ops_have() {
    let mut b = start();
    let r = support::post_signed(
        b.addr,
        &json!({"message_id": "m", "from": "+1", "to": "+2", "ts": "2025-01-15T10:00:00Z"})
            .to_string(),
    );
    assert_eq!(r.status, 200);
    let text = request(b.addr, "GET", "/metrics", &[], b"").text();
    let exported: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    let ops = read("docs/operations.md");
    let table = tables(&ops)
        .into_iter()
        .find(|t| t[0].first().is_some_and(|c| c == "family"))
        .expect("the metrics table");
    let documented: BTreeMap<String, String> = table[1..]
        .iter()
        .map(|r| (r[0].trim_matches('`').to_string(), r[1].clone()))
        .collect();
    assert_eq!(
        documented, exported,
        "docs/operations.md's metrics table against /metrics"
    );
    // Every metric name quoted anywhere: a family, or a histogram's series.
    let mut series: BTreeSet<String> = BTreeSet::new();
    for (name, kind) in &exported {
        series.insert(name.clone());
        if kind == "histogram" {
            series.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
        }
    }
    const PREFIXES: [&str; 6] = [
        "http_",
        "webhook_requests",
        "request_latency",
        "db_",
        "process_",
        "service_",
    ];
    for (path, text) in pages() {
        for quoted in ticked(&text.replace("```", "")) {
            let words = quoted.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            for word in words.filter(|w| PREFIXES.iter().any(|p| w.starts_with(p))) {
                assert!(
                    series.contains(word),
                    "{path} names `{word}`, which /metrics lacks"
                );
            }
        }
    }
    b.terminate();
    // The alert table: names and severities, in the order of ops/alerts.yml.
    let rules = read("ops/alerts.yml");
    let mut in_rules = Vec::new();
    for line in rules.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert:") {
            in_rules.push((name.trim().to_string(), String::new()));
        } else if let Some(sev) = line.strip_prefix("severity:") {
            in_rules.last_mut().expect("an alert").1 = sev.trim().trim_matches('"').to_string();
        }
    }
    let table = tables(&ops)
        .into_iter()
        .find(|t| t[0].first().is_some_and(|c| c == "alert"))
        .expect("the alert table");
    let in_docs: Vec<(String, String)> = table[1..]
        .iter()
        .map(|r| (r[0].trim_matches('`').to_string(), r[1].clone()))
        .collect();
    assert_eq!(
        in_docs, in_rules,
        "docs/operations.md's alerts against ops/alerts.yml"
    );
}

#[test]
fn the_input_caps_hold_at_the_cap_and_refuse_one_past_it() {
    let b = start();
    let api = read("docs/api.md");
    let table = tables(&api)
        .into_iter()
        .find(|t| t[0] == ["input", "at most", "past it"])
        .expect("the input caps table");
    assert_eq!(table.len(), 7, "six caps");
    for row in &table[1..] {
        let field = row[0].trim_matches('`');
        let cap: usize = row[1]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a number");
        let loc: Value = serde_json::from_str(
            row[2]
                .split("loc: ")
                .nth(1)
                .expect("a loc")
                .trim_matches('`'),
        )
        .expect("loc is JSON");
        let answer = |n: usize| {
            let r = if loc[0] == "query" {
                let value = if field == "q" {
                    "x".repeat(n)
                } else {
                    n.to_string()
                };
                request(
                    b.addr,
                    "GET",
                    &format!("/messages?{field}={value}"),
                    &[],
                    b"",
                )
            } else {
                let mut body = json!({"message_id": format!("cap-{field}-{n}"), "from": "+1", "to": "+2", "ts": "2025-01-15T10:00:00Z"});
                // Two-byte characters, so a cap counted in bytes would fail at the cap.
                body[field] = match field {
                    "from" | "to" => json!(format!("+{}", "1".repeat(n - 1))),
                    _ => json!("é".repeat(n)),
                };
                support::post_signed(b.addr, &body.to_string())
            };
            let loc = (r.status == 422).then(|| r.json()["detail"][0]["loc"].clone());
            (r.status, loc)
        };
        assert_eq!(answer(cap), (200, None), "{field} at {cap}");
        assert_eq!(
            answer(cap + 1),
            (422, Some(loc.clone())),
            "{field} at {}",
            cap + 1
        );
    }
}

/// The blocks of `text` marked `<!-- run -->` on the line before their fence.
fn runnable_blocks(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if *line == "<!-- run -->" {
            assert!(
                lines[i + 1].starts_with("```sh"),
                "a marked block is a sh block"
            );
            let body: Vec<&str> = lines[i + 2..]
                .iter()
                .take_while(|l| !l.starts_with("```"))
                .copied()
                .collect();
            blocks.push(body.join("\n"));
        }
    }
    blocks
}

#[test]
fn the_marked_shell_blocks_run_as_written_under_sh_bash_and_zsh() {
    let mut shells = vec!["sh", "bash"];
    if Command::new("zsh")
        .args(["-c", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        shells.push("zsh");
    } else {
        let line = "docs' shell blocks under zsh: skipped, zsh is not installed here\n";
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }
    let mut ran = 0;
    for (path, text) in pages() {
        let blocks = runnable_blocks(&text);
        if blocks.is_empty() {
            continue;
        }
        for shell in &shells {
            let mut b = start();
            let here = format!("127.0.0.1:{}", b.addr.port());
            // The blocks in order, as a reader pastes them into one terminal, each announced.
            let mut script = String::from("set -e\n");
            for (i, block) in blocks.iter().enumerate() {
                script += &format!(
                    "printf '\\n@@ block {i}\\n'\n{}\n",
                    block.replace("localhost:8000", &here)
                );
            }
            let out = Command::new(shell)
                .args(["-c", &script])
                // A fresh clone: the examples sign with .env.example's secret; their URL.
                .env("ENV_FILE", ".env.example")
                .env("URL", format!("http://{here}/webhook"))
                .env_remove("SECRET")
                .output()
                .expect("run the shell");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let said = |i: usize| {
                let start = format!("@@ block {i}\n");
                let from = stdout.find(&start).map(|p| p + start.len())?;
                let rest = &stdout[from..];
                Some(
                    rest[..rest.find("\n@@ block ").unwrap_or(rest.len())]
                        .trim_end()
                        .to_string(),
                )
            };
            for (i, block) in blocks.iter().enumerate() {
                let expected: Vec<&str> =
                    block.lines().filter_map(|l| l.strip_prefix("# ")).collect();
                let expected = expected.join("\n");
                assert_eq!(
                    said(i).as_deref(),
                    Some(expected.as_str()),
                    "{path}, block {i} under {shell}:\n{block}\nstderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                ran += 1;
            }
            assert!(out.status.success(), "{path} under {shell}");
            b.terminate();
        }
    }
    assert!(ran >= 3 * 2, "blocks run: {ran}");
}

/// Each source file's module path (`store::schema`; `lib` for lib.rs, `main` for main.rs).
fn module(file: &str) -> String {
    let path = file.trim_start_matches("src/").trim_end_matches(".rs");
    let path = path.strip_suffix("/mod").unwrap_or(path);
    path.replace('/', "::")
}

/// What each file of src/ names of the other files, before its tests and outside comments:
/// `crate::x`, `super::x`, a `use` list's items, and a sibling or child module named `x::`. A
/// module's ancestors (the files declaring it) do not count.
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("src").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p.display().to_string());
            }
        }
    }
    let mut files = Vec::new();
    walk(std::path::Path::new("src"), &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module(f)).collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let me = module(file);
        let text = read(file);
        let code: String = text
            .split("\n#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .map(|l| l.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let parent = match me.rsplit_once("::") {
            Some((p, _)) => p.to_string(),
            None => String::new(),
        };
        // `super` of store::schema is store; of store (mod.rs) or a top-level file, the crate.
        let sup = if file.ends_with("mod.rs") || !me.contains("::") {
            String::new()
        } else {
            parent.clone()
        };
        let join = |base: &str, name: &str| {
            if base.is_empty() {
                name.to_string()
            } else {
                format!("{base}::{name}")
            }
        };
        let mut used = BTreeSet::new();
        let mut resolve = |base: &str, name: &str| {
            let m = join(base, name);
            if modules.contains(&m) {
                used.insert(m);
            }
        };
        let chars: Vec<char> = code.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let boundary = i == 0
                || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_' || chars[i - 1] == ':');
            if !(boundary && (chars[i].is_alphabetic() || chars[i] == '_')) {
                i += 1;
                continue;
            }
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if chars.get(i..i + 2) != Some(&[':', ':']) {
                continue;
            }
            let rest: String = chars[i + 2..].iter().collect();
            let base = match word.as_str() {
                "crate" => String::new(),
                "super" => sup.clone(),
                "self" => me.clone(),
                _ => {
                    // A module named from here: a child, a sibling, or a top-level one.
                    for base in [me.as_str(), parent.as_str(), ""] {
                        resolve(base, &word);
                    }
                    continue;
                }
            };
            if let Some(list) = rest.strip_prefix('{') {
                for item in list[..list.find('}').unwrap_or(0)].split(',') {
                    resolve(&base, item.trim().split("::").next().unwrap_or_default());
                }
            } else {
                let next: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                resolve(&base, &next);
            }
        }
        used.remove(&me);
        used.retain(|m| m != "lib" && !me.starts_with(&format!("{m}::")));
        if me == "main" {
            // The binary sees the library only through its public API (`webhook_api::...`).
            used = BTreeSet::from(["lib".to_string()]);
        }
        graph.insert(me, used);
    }
    graph
}

#[test]
fn the_module_map_is_the_code_and_has_no_circle() {
    let graph = uses();
    // No circle: a depth-first walk never meets a module on its own path.
    fn visit(m: &str, g: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>) {
        assert!(
            !path.contains(&m.to_string()),
            "import circle: {path:?} -> {m}"
        );
        path.push(m.to_string());
        for next in g.get(m).into_iter().flatten() {
            visit(next, g, path);
        }
        path.pop();
    }
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new());
    }
    let design = read("docs/design.md");
    let map = design.split("## Module map").nth(1).expect("a module map");
    let tree = map
        .split("```text\n")
        .nth(1)
        .and_then(|t| t.split("```").next())
        .expect("the tree");
    // Each entry: a line `├── name`, then its description ending `(uses: a, b)`.
    let mut listed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let (mut dir, mut last) = (String::new(), String::new());
    for line in tree.lines() {
        let name = line.split("── ").nth(1);
        match name {
            Some(d) if d.ends_with('/') => dir = d.to_string(),
            Some(file) => {
                let top = !line.starts_with('│') && !line.starts_with(' ');
                if top {
                    dir.clear();
                }
                last = format!("src/{dir}{file}");
            }
            None => {
                let Some(uses) = line.split("(uses: ").nth(1) else {
                    continue;
                };
                let uses = uses.trim_end().trim_end_matches(')');
                let set = uses
                    .split(", ")
                    .filter(|u| *u != "nothing")
                    .map(String::from)
                    .collect();
                listed.insert(module(&last), set);
            }
        }
    }
    let expected: BTreeMap<String, BTreeSet<String>> = graph;
    for (m, uses) in &expected {
        let line = if uses.is_empty() {
            "nothing".to_string()
        } else {
            uses.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        assert_eq!(
            listed.get(m),
            Some(uses),
            "docs/design.md's module map: {m} (uses: {line})"
        );
    }
    assert_eq!(listed.len(), expected.len(), "listed: {:?}", listed.keys());
}
