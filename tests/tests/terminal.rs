//! What apps and models write cannot drive a terminal, and appforge's own
//! log lines cannot be forged: `logs`, `show` and `diff` of hostile text,
//! on a pipe, on a pseudo-terminal and as JSON. And what the client does
//! differently on a terminal: colour (as `NO_COLOR` and `CLICOLOR_FORCE`
//! say), short summaries, questions before deleting.

use std::io::{BufRead, BufReader, Write};
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
    let run = terminal_run(user, args, &[], "");
    assert_eq!(run.code, 0, "{args:?} failed on a terminal: {run:?}");
    run.stdout
}

/// Runs `appforge ARGS` on a pseudo-terminal (stdin, stdout and stderr),
/// with `envs` set and `input` typed; what the terminal showed is the
/// stdout of the result (the typed input echoed, lines ending in CR LF).
fn terminal_run(user: &User, args: &[&str], envs: &[(&str, &str)], input: &str) -> Run {
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
    cmd.env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE")
        .envs(envs.iter().copied());
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("type the input");
    let out = child.wait_with_output().expect("script's output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
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
    // Colour still works there: the highlighter's and the diff's own. Code
    // is painted in the terminal's basic colours (Python's keywords in
    // magenta), never in fixed RGB nor on a background, so that it reads
    // on light and dark terminals alike.
    assert!(terminal[1].contains("\x1b[35mimport"), "{:?}", terminal[1]);
    for fixed in ["\x1b[38;", "\x1b[48;", ";38;", ";48;", "\x1b[4"] {
        assert!(
            !terminal[1].contains(fixed),
            "{fixed:?} in {:?}",
            terminal[1]
        );
    }
    assert!(terminal[2].contains("\x1b[32m+"), "{:?}", terminal[2]);
}

/// The lines of every file of `project`'s newest version, all together.
fn file_lines(user: &User, project: &str) -> Vec<(String, usize)> {
    let shown = user.run(&["--json", "show", project]).ok().json();
    shown["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            let content = f["content"].as_str().expect("content");
            (
                f["path"].as_str().expect("a path").to_string(),
                content.lines().count(),
            )
        })
        .collect()
}

#[test]
fn generate_and_improve_print_a_short_summary_and_colour_only_where_it_is_shown() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    let template = ["--provider", "template", "--no-check"];

    // On a pipe: the steps on stderr; on stdout each file with its line
    // count, the checks, the tokens and where it is saved, in a few lines.
    let mut args = vec!["generate", TODO_PROMPT, "--save", "--name", "todo"];
    args.extend(template);
    let made = ada.run(&args).ok();
    let files = file_lines(&ada, "todo");
    let total: usize = files.iter().map(|(_, n)| n).sum();
    assert!(total > 300, "a real app to summarise: {files:?}");
    let lines: Vec<&str> = made.stdout.lines().collect();
    assert!(lines.len() <= files.len() + 5, "{}", made.stdout);
    assert!(
        lines[0].starts_with("understood: a list of todos"),
        "{}",
        made.stdout
    );
    for (path, count) in &files {
        assert!(
            lines
                .iter()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == [path.as_str(), &count.to_string(), "lines"]),
            "no line for {path} ({count} lines) in:\n{}",
            made.stdout
        );
    }
    assert!(
        lines[1].starts_with(&format!("{} files from template (", files.len()))
            && lines[1].contains(" tokens"),
        "{}",
        made.stdout
    );
    assert!(lines.iter().any(|l| l.starts_with("checks skipped")));
    assert!(
        made.stdout
            .contains("Saved as project `todo` (id 1, version 1): `appforge run todo` runs it"),
        "{}",
        made.stdout
    );
    assert!(made.stderr.contains("asking template"), "{made:?}");
    assert_eq!(drives_a_terminal(&made.stdout, false), None);

    // --files prints every file, as before.
    let mut args = vec!["generate", TODO_PROMPT, "--files"];
    args.extend(template);
    let every = ada.run(&args).ok().stdout;
    assert!(every.lines().count() > total, "{every}");
    assert!(every.contains("── app.py ("), "{every}");

    // improve: the diff stat and the diff (as `diff` prints it), then the summary.
    let mut args = vec!["improve", "todo", "add a priority field"];
    args.extend(template);
    let improved = ada.run(&args).ok().stdout;
    let diff = ada.run(&["diff", "todo"]).ok().stdout;
    assert!(diff.contains("+++ b/app.py"), "{diff}");
    assert!(improved.contains(&diff), "{improved}");
    let stat = improved.lines().next().unwrap_or("");
    assert!(
        stat.starts_with(" README.md ") && stat.contains(" | "),
        "{improved}"
    );
    assert!(
        improved.contains(" files changed, ") && improved.contains(" insertions(+), "),
        "{improved}"
    );
    assert!(improved.contains("Saved `todo` version 2"), "{improved}");
    assert!(
        improved.lines().count() < total / 3,
        "not short: {} lines of {total}:\n{improved}",
        improved.lines().count()
    );
    assert_eq!(drives_a_terminal(&improved, false), None);

    // On a pipe without NO_COLOR (which the harness sets): no colour either.
    let piped = ada
        .command(&["diff", "todo"])
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("run diff");
    assert!(!String::from_utf8_lossy(&piped.stdout).contains('\x1b'));

    // On a terminal: the stat's bar and the diff are coloured.
    let mut args = vec!["improve", "todo", "add a notes field"];
    args.extend(template);
    let shown = on_a_terminal(&ada, &args);
    // The spinner on stderr draws and clears its line; stdout comes after it.
    let (spinner, shown) = shown.rsplit_once("\x1b[2K").expect("a spinner");
    assert!(spinner.contains("asking template"), "{spinner:?}");
    assert_eq!(drives_a_terminal(shown, true), None, "{shown:?}");
    assert!(shown.contains("\x1b[32m+"), "{shown:?}");
    assert!(shown.contains("\x1b[32m++"), "the stat's bar: {shown:?}");

    // NO_COLOR on a terminal: none. CLICOLOR_FORCE on a pipe: colour;
    // NO_COLOR wins over it.
    // Nor with TERM=dumb or CLICOLOR=0.
    for env in [("NO_COLOR", "1"), ("TERM", "dumb"), ("CLICOLOR", "0")] {
        let plain = terminal_run(&ada, &["diff", "todo"], &[env], "");
        assert_eq!(plain.code, 0, "{plain:?}");
        assert!(
            plain.stdout.contains("+++ b/app.py") && !plain.stdout.contains('\x1b'),
            "{env:?}: {plain:?}"
        );
    }
    let forced = |no_color: Option<&str>| {
        let mut cmd = ada.command(&["show", "todo", "--file", "app.py"]);
        cmd.env("CLICOLOR_FORCE", "1").env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        String::from_utf8_lossy(&cmd.output().expect("run show").stdout).into_owned()
    };
    assert!(forced(None).contains("\x1b[35mimport"));
    assert!(!forced(Some("1")).contains('\x1b'));
}

#[test]
fn delete_asks_on_a_terminal_and_needs_yes_elsewhere() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    new_project(&ada, "todo");
    let exists = || {
        ada.run(&["--json", "list"])
            .ok()
            .json()
            .as_array()
            .map(Vec::len)
            == Some(1)
    };

    // Without a terminal nothing can ask: refused, and says to add --yes.
    let refused = ada.run(&["delete", "todo"]).fails_with(2);
    assert!(refused.stderr.contains("--yes"), "{refused:?}");
    assert!(refused.stdout.is_empty(), "{refused:?}");
    assert!(exists());

    // On a terminal it asks; `n` (or anything but yes) keeps the project.
    let kept = terminal_run(&ada, &["delete", "todo"], &[], "n\n");
    assert_eq!(kept.code, 0, "{kept:?}");
    assert!(
        kept.stdout.contains(
            "Delete project `todo` (id 1) and its 1 version? This cannot be undone. [y/N]"
        ),
        "{kept:?}"
    );
    assert!(kept.stdout.contains("nothing was deleted"), "{kept:?}");
    assert!(exists());
    let unanswered = terminal_run(&ada, &["delete", "todo"], &[], "");
    assert_eq!(unanswered.code, 0, "{unanswered:?}");
    assert!(exists());

    // `y` deletes.
    let deleted = terminal_run(&ada, &["delete", "todo"], &[], "y\n");
    assert_eq!(deleted.code, 0, "{deleted:?}");
    assert!(
        deleted.stdout.contains("Deleted project `todo`"),
        "{deleted:?}"
    );
    assert!(!exists());

    // --yes deletes without asking, terminal or not.
    new_project(&ada, "notes");
    let quiet = terminal_run(&ada, &["delete", "notes", "--yes"], &[], "");
    assert!(!quiet.stdout.contains("[y/N]"), "{quiet:?}");
    assert!(!exists());
    new_project(&ada, "more");
    ada.run(&["delete", "more", "--yes"]).ok();
    assert!(!exists());
}

#[test]
fn generate_on_a_terminal_shows_the_summary_then_asks_to_save() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon, "ada");
    let args = [
        "generate",
        TODO_PROMPT,
        "--provider",
        "template",
        "--no-check",
        "--name",
        "asked",
    ];
    let projects = || ada.run(&["--json", "list"]).ok().json();

    let declined = terminal_run(&ada, &args, &[], "n\n");
    assert_eq!(declined.code, 0, "{declined:?}");
    let (summary, rest) = declined
        .stdout
        .split_once("Save this app as a project? [y/N]")
        .unwrap_or_else(|| panic!("no question: {declined:?}"));
    assert!(
        summary.contains("app.py") && summary.contains(" lines"),
        "{summary:?}"
    );
    assert!(rest.contains("Not saved"), "{rest:?}");
    assert_eq!(projects(), Value::Array(vec![]));

    let accepted = terminal_run(&ada, &args, &[], "y\n");
    assert_eq!(accepted.code, 0, "{accepted:?}");
    assert!(
        accepted
            .stdout
            .contains("Saved as project `asked` (id 1, version 1)"),
        "{accepted:?}"
    );
    assert_eq!(projects()[0]["name"], "asked");
}
