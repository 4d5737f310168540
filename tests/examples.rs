//! The examples a reader copies, run as they are written against the real binary:
//! `examples/send.sh` under every POSIX shell here (dash as `sh`, bash, zsh when installed) and
//! `examples/send.py`. Each signs a body the shells' `echo` would mangle (backslashes, `%`), a
//! pretty-printed file whose newlines are part of the signed bytes, and standard input; the
//! stored rows are compared byte for byte, and a wrong key is refused with the exit status the
//! scripts document.

mod support;

use serde_json::{Value, json};
use std::process::{Command, Output};
use support::{Binary, request};

/// Runs `argv` with `env` (SECRET, URL, ENV_FILE) and `stdin`, from the crate's root.
fn run<S: AsRef<str>>(argv: &[S], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let argv: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
    use std::io::Write;
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .env_remove("SECRET")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {argv:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait")
}

/// The shells to run send.sh under: always `sh` and `bash`; zsh when it is installed.
fn shells() -> Vec<&'static str> {
    let mut shells = vec!["sh", "bash"];
    match Command::new("zsh").arg("-c").arg("true").status() {
        Ok(s) if s.success() => shells.push("zsh"),
        _ => {
            let line = "send.sh under zsh: skipped, zsh is not installed here\n";
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        }
    }
    shells
}

/// The stored message with this id, as /messages returns it.
fn stored(b: &Binary, id: &str) -> Value {
    let all = request(b.addr, "GET", "/messages?limit=100", &[], b"").json();
    let rows = all["data"].as_array().expect("data").clone();
    rows.into_iter()
        .find(|m| m["message_id"] == id)
        .unwrap_or_else(|| panic!("{id} is not stored: {all}"))
}

#[test]
fn send_sh_and_send_py_sign_strings_files_and_stdin_byte_for_byte() {
    let dir = support::temp_dir();
    let db = format!("sqlite:///{}", dir.join("app.db").display());
    let b = Binary::start(&[("DATABASE_URL", &db), ("WEBHOOK_SECRET", support::SECRET)]);
    let url = format!("http://{}/webhook", b.addr);
    // A text with a backslash before n, a double backslash and a %: echo in dash and zsh
    // turns `\n` into a newline and `\\` into one backslash, which changes the signed bytes.
    let text = r"line\nbreak \\ 100% done";
    let mut tools: Vec<Vec<&str>> = shells()
        .into_iter()
        .map(|sh| vec![sh, "examples/send.sh"])
        .collect();
    tools.push(vec!["python3", "examples/send.py"]);
    let mut expected = 0;
    for tool in &tools {
        let name = tool.join(" ");
        let env = [("SECRET", support::SECRET), ("URL", url.as_str())];
        let with = |arg: &str| {
            let mut argv: Vec<String> = tool.iter().map(|s| s.to_string()).collect();
            argv.push(arg.to_string());
            argv
        };
        // A string, byte for byte.
        let id = format!("{name}: string");
        let body = json!({"message_id": id, "from": "+1", "to": "+2", "ts": "2025-01-15T10:00:00Z", "text": text});
        let out = run(&with(&body.to_string()), &env, b"");
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).trim()
            ),
            (Some(0), r#"{"status":"ok"}"#),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stored(&b, &id)["text"], text, "{name}: the text as sent");
        // A pretty-printed file: its newlines and indentation are signed and sent as they are.
        let id = format!("{name}: file");
        let file = dir.join(format!("{expected}.json"));
        let pretty = serde_json::to_string_pretty(
            &json!({"message_id": id, "from": "+1", "to": "+2", "ts": "2025-01-15T10:00:01Z", "text": "ü"}),
        )
        .expect("json");
        std::fs::write(&file, format!("{pretty}\n")).expect("write body");
        let at_file = format!("@{}", file.display());
        let out = run(&with(&at_file), &env, b"");
        assert_eq!(out.status.code(), Some(0), "{name} @file");
        assert_eq!(stored(&b, &id)["text"], "ü");
        // Standard input.
        let id = format!("{name}: stdin");
        let body =
            json!({"message_id": id, "from": "+1", "to": "+2", "ts": "2025-01-15T10:00:02Z"});
        let out = run(&with("@-"), &env, body.to_string().as_bytes());
        assert_eq!(out.status.code(), Some(0), "{name} @-");
        assert_eq!(stored(&b, &id)["text"], Value::Null);
        expected += 3;
        // A wrong key: the service's answer printed, exit 1, nothing stored.
        let wrong = [("SECRET", "not-the-secret"), ("URL", url.as_str())];
        let out = run(&with(&at_file), &wrong, b"");
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).trim()
            ),
            (Some(1), r#"{"detail":"invalid signature"}"#),
            "{name} with a wrong key"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 401"));
    }
    let all = request(b.addr, "GET", "/messages?limit=1", &[], b"").json();
    assert_eq!(all["total"], expected, "each accepted body stored once");
}

/// With no SECRET, the scripts sign with WEBHOOK_SECRET from the env file `make run` reads.
#[test]
fn without_secret_the_scripts_use_the_env_file_of_make_run() {
    let dir = support::temp_dir();
    let db = format!("sqlite:///{}", dir.join("app.db").display());
    let example = std::fs::read_to_string(".env.example").expect(".env.example");
    let secret = example
        .lines()
        .find_map(|l| l.strip_prefix("WEBHOOK_SECRET="))
        .expect("WEBHOOK_SECRET in .env.example");
    let b = Binary::start(&[("DATABASE_URL", &db), ("WEBHOOK_SECRET", secret)]);
    let url = format!("http://{}/webhook", b.addr);
    let own = dir.join("own.env");
    std::fs::write(&own, "PORT=1\nWEBHOOK_SECRET=another\n").expect("env file");
    let own = own.to_str().expect("path");
    for (n, tool) in [["sh", "examples/send.sh"], ["python3", "examples/send.py"]]
        .iter()
        .enumerate()
    {
        let body = json!({"message_id": format!("env{n}"), "from": "+1", "to": "+2", "ts": "2025-01-15T10:00:00Z"});
        let argv = [tool[0], tool[1], &body.to_string()];
        // ENV_FILE names a file without .env in it: .env.example's secret is used.
        let example = run(&argv, &[("URL", &url), ("ENV_FILE", "/nonexistent")], b"");
        assert_eq!(example.status.code(), Some(0), "{tool:?} with .env.example");
        // ENV_FILE names a file: its secret is used (here the wrong one).
        let other = run(&argv, &[("URL", &url), ("ENV_FILE", own)], b"");
        assert_eq!(other.status.code(), Some(1), "{tool:?} with {own}");
    }
}
