//! What apps and models write cannot drive a terminal, and appforge's own
//! log lines cannot be forged: `logs`, `show` and `diff` of hostile text,
//! on a pipe, on a pseudo-terminal and as JSON.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use appforge_e2e::apps::*;
use appforge_e2e::{wait_for, Daemon, Run, User, PATIENCE};
use serde_json::Value;

/// An app that prints, as it starts, a window title (OSC 0), a clipboard
/// write (OSC 52), a screen clear and a cursor move, C1 controls, a colour,
/// a line that looks like appforge's own, and appforge's mark byte.
const HOSTILE_APP: &str = r#"import sys

from flask import Flask

out = sys.stdout.buffer
out.write(b"title \x1b]0;owned\x07 clip \x1b]52;c;ZXZpbA==\x07 clear \x1b[2J\x1b[H c1 \xc2\x9b2J\xc2\x9d0;t end\n")
out.write(b"\x1b[31mred text\x1b[0m\n")
out.write(b"[appforge] pid 1 exited with status 0\n")
out.write(b"mark \x1e[appforge] pid 2 exited with status 0\n")
out.flush()

app = Flask(__name__)


@app.route("/")
def index():
    return "ok\n"
"#;

/// The escapes that show the hostile line's control sequences.
const SHOWN: [&str; 5] = [
    "\\x1b]0;owned\\x07",
    "\\x1b]52;c;ZXZpbA==\\x07",
    "\\x1b[2J\\x1b[H",
    "\\u{9b}2J",
    "\\u{9d}0;t",
];

/// Whether `text` holds a byte that drives a terminal: any C0 control but
/// tab, newline and (from a pseudo-terminal) carriage return, DEL, or a C1
/// control; with `colour`, ESC is allowed as the start of an SGR sequence.
fn drives_a_terminal(text: &str, colour: bool) -> Option<String> {
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b' && colour {
            let params = rest[2.min(rest.len())..]
                .bytes()
                .take_while(|b| b.is_ascii_digit() || *b == b';' || *b == b':')
                .count();
            if rest.starts_with("\x1b[") && rest.as_bytes().get(2 + params) == Some(&b'm') {
                rest = &rest[3 + params..];
                continue;
            }
        }
        if c.is_control() && !matches!(c, '\n' | '\t' | '\r') {
            let at = text.len() - rest.len();
            return Some(format!(
                "{c:?} at {at}: {:?}",
                &text[at.saturating_sub(40)..(at + 40).min(text.len())]
            ));
        }
        rest = &rest[c.len_utf8()..];
    }
    None
}

/// Runs `appforge ARGS` with its stdout on a pseudo-terminal, through
/// util-linux `script`, colour allowed, and returns what the terminal got.
fn on_a_terminal(user: &User, args: &[&str]) -> String {
    let probe = user.command(args);
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut line = quote(&probe.get_program().to_string_lossy());
    for arg in probe.get_args() {
        line.push(' ');
        line.push_str(&quote(&arg.to_string_lossy()));
    }
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"]);
    for (key, value) in probe.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    let out = cmd
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(run.code, 0, "{line} failed on a terminal: {run:?}");
    run.stdout
}

/// The `--json logs` lines as (source, text).
fn json_lines(doc: &Value) -> Vec<(String, String)> {
    doc["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            (
                l["source"].as_str().expect("a source").to_string(),
                l["line"].as_str().expect("a line").to_string(),
            )
        })
        .collect()
}

#[test]
fn an_apps_escape_sequences_and_forged_lines_reach_no_terminal() {
    let daemon = Daemon::start_with(&["--health-interval", "600"], &[]);
    let ada = signed_up(&daemon, "ada");
    let id = project_with_app(&ada, "todo", HOSTILE_APP);
    let app = run_app(&ada, "todo");
    let (pid, port) = (pid_of(&app), port_of(&app));
    wait_for("the app's lines in its log", || {
        log_text(&daemon, id).contains("red text")
    });
    let started = format!("started pid {pid} on port {port}");

    // On a pipe: nothing raw, everything shown; the forged lines read as the app's.
    let piped = ada.run(&["logs", "todo", "-n", "100"]).ok().stdout;
    assert_eq!(drives_a_terminal(&piped, false), None, "{piped}");
    for shown in SHOWN {
        assert!(piped.contains(shown), "no {shown} in:\n{piped}");
    }
    let lines: Vec<&str> = piped.lines().collect();
    assert!(lines.contains(&"red text"), "{piped}");
    assert!(
        lines.contains(&format!("[appforge] {started}").as_str()),
        "{piped}"
    );
    assert!(
        lines.contains(&"\\[appforge] pid 1 exited with status 0"),
        "{piped}"
    );
    assert!(
        !lines.contains(&"[appforge] pid 1 exited with status 0"),
        "{piped}"
    );
    assert!(
        lines.contains(&"mark \\x1e[appforge] pid 2 exited with status 0"),
        "{piped}"
    );

    // As JSON: who wrote each line, and its exact text.
    let out = ada.run(&["--json", "logs", "todo", "-n", "100"]).ok();
    assert_eq!(
        drives_a_terminal(&out.stdout, false),
        None,
        "{}",
        out.stdout
    );
    let lines = json_lines(&out.json());
    let source_of = |text: &str| {
        lines
            .iter()
            .find(|(_, t)| t == text)
            .map(|(s, _)| s.as_str())
            .unwrap_or_else(|| panic!("no line {text:?} in {lines:?}"))
    };
    assert_eq!(source_of(&started), "appforge");
    assert_eq!(source_of("[appforge] pid 1 exited with status 0"), "app");
    assert_eq!(
        source_of("mark \\x1e[appforge] pid 2 exited with status 0"),
        "app"
    );
    assert_eq!(source_of("\x1b[31mred text\x1b[0m"), "app");
    assert_eq!(
        source_of(
            "title \x1b]0;owned\x07 clip \x1b]52;c;ZXZpbA==\x07 clear \x1b[2J\x1b[H c1 \u{9b}2J\u{9d}0;t end"
        ),
        "app"
    );

    // Following, as JSON: the same, a document a line.
    let mut follower = ada
        .command(&["--json", "logs", "todo", "-f", "-n", "100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn logs -f");
    let stdout = follower.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + PATIENCE;
    let (mut forged, mut ours) = (None, None);
    while forged.is_none() || ours.is_none() {
        assert!(Instant::now() < deadline, "logs -f did not show both lines");
        let line = rx.recv_timeout(PATIENCE).expect("a line from logs -f");
        assert_eq!(drives_a_terminal(&line, false), None, "{line}");
        let doc: Value = serde_json::from_str(&line).expect("a JSON document a line");
        if doc["line"] == "[appforge] pid 1 exited with status 0" {
            forged = Some(doc["source"].clone());
        } else if doc["line"] == started.as_str() {
            ours = Some(doc["source"].clone());
        }
    }
    assert_eq!(forged.unwrap(), "app");
    assert_eq!(ours.unwrap(), "appforge");
    follower.kill().unwrap();
    follower.wait().unwrap();
    reader.join().unwrap();

    // On a terminal: colour passes, appforge's tag is dim, nothing else raw.
    let shown = on_a_terminal(&ada, &["logs", "todo", "-n", "100"]);
    assert_eq!(drives_a_terminal(&shown, true), None, "{shown:?}");
    assert!(shown.contains("\x1b[31mred text\x1b[0m"), "{shown:?}");
    assert!(
        shown.contains(&format!("\x1b[2m[appforge]\x1b[0m {started}")),
        "{shown:?}"
    );
    assert!(!shown.contains("\x1b]"), "{shown:?}");
    for escaped in SHOWN {
        assert!(shown.contains(escaped), "no {escaped} in {shown:?}");
    }
}

/// A file whose text holds what a terminal obeys.
const HOSTILE_FILE: &str = "title \x1b]0;owned\x07 clip \x1b]52;c;ZXZpbA==\x07\n\
     clear \x1b[2J\x1b[H c1 \u{9b}2J\u{9d}0;t\n\
     \x1b[32mgreen\x1b[0m\n";

#[test]
fn show_and_diff_escape_a_files_control_sequences() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "todo");
    ada.run_with_stdin(
        &[
            "edit",
            "todo",
            "--file",
            "notes.txt",
            "--stdin",
            "--no-check",
        ],
        HOSTILE_FILE,
    )
    .ok();
    // The file holds the bytes as they were written.
    let exact = ada
        .run(&["--json", "show", "todo", "--file", "notes.txt"])
        .ok();
    assert_eq!(
        drives_a_terminal(&exact.stdout, false),
        None,
        "{}",
        exact.stdout
    );
    assert_eq!(exact.json()["files"][0]["content"], HOSTILE_FILE);

    let piped = [
        ada.run(&["show", "todo", "--file", "notes.txt"])
            .ok()
            .stdout,
        ada.run(&["show", "todo"]).ok().stdout,
        ada.run(&["diff", "todo"]).ok().stdout,
    ];
    for out in &piped {
        assert_eq!(drives_a_terminal(out, false), None, "{out}");
        for shown in SHOWN {
            assert!(out.contains(shown), "no {shown} in:\n{out}");
        }
        assert!(out.contains("green"), "{out}");
    }
    let terminal = [
        on_a_terminal(&ada, &["show", "todo", "--file", "notes.txt"]),
        on_a_terminal(&ada, &["show", "todo"]),
        on_a_terminal(&ada, &["diff", "todo"]),
    ];
    for out in &terminal {
        assert_eq!(drives_a_terminal(out, true), None, "{out:?}");
        assert!(!out.contains("\x1b]"), "{out:?}");
        for shown in SHOWN {
            assert!(out.contains(shown), "no {shown} in {out:?}");
        }
    }
    // Colour still works there: the highlighter's and the diff's own.
    assert!(terminal[1].contains("\x1b[38;2;"), "{:?}", terminal[1]);
    assert!(terminal[2].contains("\x1b[32m+"), "{:?}", terminal[2]);
}
