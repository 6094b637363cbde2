//! Generation end to end: the offline scaffolder's apps run for real and pass
//! their own tests; an OpenAI-compatible provider (a real HTTP server on
//! 127.0.0.1) streams, misbehaves in every scripted way, and is survived.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use appforge_e2e::apps::{pid_of, ps_of, run_app};
use appforge_e2e::mock_provider::{Answer, MockProvider, UsageStyle};
use appforge_e2e::{free_port, handshake, python, read_frame, send_frame, wait_for, Daemon, User};
use appforge_shared::protocol::{
    ClientFrame, Envelope, Reply, Request, SaveGenerationRequest, ServerFrame, SessionToken,
};
use appforge_shared::ErrorCode;

/// A small valid app in the canonical format.
fn good_reply() -> String {
    "Here is your app.\n\n### app.py\n```python\nfrom flask import Flask, render_template\n\napp = Flask(__name__)\n\n\n@app.get(\"/\")\ndef index():\n    return render_template(\"index.html\")\n```\n\n### templates/index.html\n```html\n<!doctype html><title>hi</title><p>hello</p>\n```\n\n### requirements.txt\n```\nflask\n```\n".to_string()
}

fn mock_daemon(mock: &MockProvider, extra: &[&str]) -> Daemon {
    mock.daemon(extra, &[])
}

fn signed_up(daemon: &Daemon) -> User {
    let user = daemon.user("ada");
    user.signup().ok();
    user
}

fn history(daemon: &Daemon) -> Vec<(String, Option<i64>, i64, String)> {
    daemon
        .sql(
            "SELECT outcome, project_id, tokens_used, response FROM generation_history ORDER BY id",
        )
        .into_iter()
        .map(|r| {
            (
                r[0].clone().unwrap(),
                r[1].as_deref().map(|n| n.parse().unwrap()),
                r[2].as_deref().unwrap().parse().unwrap(),
                r[3].clone().unwrap(),
            )
        })
        .collect()
}

fn project_count(daemon: &Daemon) -> i64 {
    daemon.sql("SELECT count(*) FROM projects")[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

/// Writes a project's current files into `dir`.
fn checkout(daemon: &Daemon, project_id: i64, dir: &Path) -> Vec<String> {
    let files: Vec<(String, String)> = daemon
        .sql(&format!(
            "SELECT f.path, f.content FROM project_files f JOIN project_versions v ON v.id = f.version_id \
             WHERE v.project_id = {project_id} AND v.version = \
             (SELECT max(version) FROM project_versions WHERE project_id = {project_id})",
        ))
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    for (path, content) in &files {
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, content).unwrap();
    }
    files.into_iter().map(|(p, _)| p).collect()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn template_apps_run_for_real_and_pass_their_own_tests() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon);
    let prompts = [
        "a todo app with title, due date and done flag",
        "a bookmark manager with url, title and tags",
        "a notes app",
        "track my books: title, author, pages, rating",
        "expense tracker with amount, category, date and description",
        "a contact list with name, email, phone",
        "recipe app with name, ingredients, instructions, prep time in minutes",
        "inventory of products with sku, name, price, quantity, in stock",
        "habit tracker with habit name, streak and last done date",
        "movie watchlist with title, year, watched and rating",
        "a \"quoted\" notes app with 'x', \"\"\" and </script>",
    ];
    for prompt in prompts {
        let out = user
            .run(&["--json", "generate", prompt, "--save"])
            .ok()
            .json();
        let project_id = out["project_id"].as_i64().expect("saved");
        assert_eq!(out["version"], 1);
        assert_eq!(out["provider"], "template");
        let dir = tempfile::tempdir().unwrap();
        let files = checkout(&daemon, project_id, dir.path());
        for wanted in [
            "app.py",
            "requirements.txt",
            "templates/index.html",
            "test_app.py",
        ] {
            assert!(
                files.iter().any(|f| f == wanted),
                "{prompt}: no {wanted} in {files:?}"
            );
        }
        let tests = Command::new(python())
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            tests.status.success(),
            "{prompt}: pytest failed:\n{}{}",
            String::from_utf8_lossy(&tests.stdout),
            String::from_utf8_lossy(&tests.stderr)
        );

        let port = free_port();
        let mut app = Command::new(python())
            .args([
                "-m",
                "flask",
                "--app",
                "app",
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut page = None;
        wait_for("the generated app to answer", || {
            assert!(
                app.try_wait().unwrap().is_none(),
                "{prompt}: the app exited"
            );
            page = http_get(port, "/");
            page.is_some()
        });
        let _ = app.kill();
        let _ = app.wait();
        let page = page.unwrap();
        assert!(
            page.starts_with("HTTP/1.1 200") || page.starts_with("HTTP/1.0 200"),
            "{prompt}: {page}"
        );
        assert!(
            !page.contains("</script> and"),
            "the prompt must be escaped in the page"
        );
    }
    // The same prompt gives the same files.
    let a = user.run(&["--json", "generate", prompts[0]]).ok().json();
    let b = user.run(&["--json", "generate", prompts[0]]).ok().json();
    assert_eq!(a["files"], b["files"]);
    assert_eq!(a["project_id"], serde_json::Value::Null);
}

#[test]
fn a_streamed_reply_is_saved_with_its_usage_and_history() {
    let mock = MockProvider::start();
    mock.set_default(Answer::Reply(good_reply()));
    let daemon = mock_daemon(&mock, &[]);
    let user = signed_up(&daemon);
    let out = user
        .run(&[
            "--json",
            "generate",
            "a greeting page",
            "--save",
            "--name",
            "hello",
            "--model",
            "test-model",
        ])
        .ok()
        .json();
    assert_eq!(out["name"], "hello");
    assert_eq!(out["model"], "test-model");
    assert!(out["tokens_used"].as_u64().unwrap() > 0, "{out}");
    let paths: Vec<&str> = out["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["app.py", "templates/index.html", "requirements.txt"]
    );

    let request = &mock.requests()[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.body["stream"], true);
    assert_eq!(request.body["stream_options"]["include_usage"], true);
    assert_eq!(request.body["model"], "test-model");
    assert!(request.body["max_tokens"].as_u64().is_some());
    assert_eq!(request.body["messages"][0]["role"], "system");
    assert!(request.body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .contains("a greeting page"));

    let rows = history(&daemon);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "ok");
    assert_eq!(rows[0].1, out["project_id"].as_i64());
    assert_eq!(rows[0].2 as u64, out["tokens_used"].as_u64().unwrap());
    assert!(rows[0].3.contains("### app.py"));
}

#[test]
fn openai_style_usage_and_non_streaming_answers_are_read() {
    let mock = MockProvider::start();
    mock.set_usage_style(UsageStyle::OpenAi);
    mock.set_default(Answer::Reply(good_reply()));
    let daemon = mock_daemon(&mock, &[]);
    let user = signed_up(&daemon);
    let out = user.run(&["--json", "generate", "x"]).ok().json();
    assert!(out["tokens_used"].as_u64().unwrap() > 0);

    let plain = mock_daemon(&mock, &["--no-stream"]);
    let user = signed_up(&plain);
    let out = user.run(&["--json", "generate", "x"]).ok().json();
    assert!(out["tokens_used"].as_u64().unwrap() > 0);
    assert_eq!(mock.requests().last().unwrap().body["stream"], false);
}

#[test]
fn groq_gets_the_key_and_the_key_goes_nowhere_else() {
    let mock = MockProvider::start();
    mock.set_default(Answer::Reply(good_reply()));
    let key = "gsk_test_secret_key_123";
    let base = mock.base_url();
    let daemon = Daemon::start_with(&["--base-url", &base], &[("GROQ_API_KEY", key)]);
    let user = signed_up(&daemon);
    let out = user.run(&["--json", "generate", "x", "--save"]).ok().json();
    assert_eq!(
        out["provider"], "groq",
        "groq is the default when its key is set"
    );
    let request = &mock.requests()[0];
    assert_eq!(
        request.header("authorization"),
        Some(&*format!("Bearer {key}"))
    );
    assert!(request.body["max_completion_tokens"].as_u64().is_some());

    let status = user.run(&["--json", "status"]).ok().stdout;
    assert!(!status.contains(key));
    assert!(!daemon.log().contains(key), "the key reached the log");
    assert!(!String::from_utf8_lossy(&daemon.store_bytes()).contains(key));
}

#[test]
fn transient_faults_are_retried_until_success() {
    let mock = MockProvider::start();
    mock.set_default(Answer::Reply(good_reply()));
    mock.push(Answer::RateLimited {
        retry_after_secs: 1,
    });
    mock.push(Answer::Status(500));
    mock.push(Answer::SlowFirstByte(Duration::from_secs(20), good_reply()));
    mock.push(Answer::DropMidStream(good_reply()));
    mock.push(Answer::Status(503));
    let daemon = mock_daemon(&mock, &["--max-retries", "5"]);
    let user = signed_up(&daemon);
    user.run(&["--json", "generate", "x", "--save"]).ok();
    assert_eq!(mock.requests().len(), 6);
    assert_eq!(project_count(&daemon), 1);
    assert!(daemon.log().contains("retrying the provider"));
}

#[test]
fn permanent_faults_fail_at_once_with_a_clear_error_and_keep_nothing() {
    // A whole (not streamed) body that is not the API is permanent; a
    // malformed chunk of a stream is retried (see below).
    let cases: [(Answer, &str, &[&str]); 4] = [
        (Answer::Unauthorized, "refused the API key", &[]),
        (Answer::Status(400), "HTTP 400", &[]),
        (Answer::Status(404), "HTTP 404", &[]),
        (Answer::MalformedJson, "malformed", &["--no-stream"]),
    ];
    for (answer, needle, extra) in cases {
        let mock = MockProvider::start();
        mock.set_default(Answer::Reply(good_reply()));
        mock.push(answer.clone());
        let daemon = mock_daemon(&mock, extra);
        let user = signed_up(&daemon);
        let out = user.run(&["generate", "x", "--save"]).fails_with(1);
        assert!(out.stderr.contains(needle), "{answer:?}: {out:?}");
        // One error line, after the steps that were taken.
        let errors: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| !l.starts_with("  "))
            .collect();
        assert_eq!(errors.len(), 1, "{out:?}");
        assert!(errors[0].starts_with("appforge: "), "{out:?}");
        assert_eq!(mock.requests().len(), 1, "{answer:?} must not be retried");
        assert_eq!(project_count(&daemon), 0);
        let rows = history(&daemon);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, "failed");
    }
}

#[test]
fn a_malformed_stream_chunk_is_retried_like_a_dropped_stream() {
    let mock = MockProvider::start();
    mock.set_default(Answer::Reply(good_reply()));
    mock.push(Answer::MalformedJson);
    let daemon = mock_daemon(&mock, &[]);
    let user = signed_up(&daemon);
    let out = user.run(&["--json", "generate", "x", "--save"]).ok();
    assert!(out.json()["project_id"].as_i64().is_some(), "{out:?}");
    assert_eq!(mock.requests().len(), 2, "one malformed stream, one retry");
    // And a stream that stays malformed gives up at the attempt limit.
    let mock = MockProvider::start();
    mock.set_default(Answer::MalformedJson);
    let daemon = mock_daemon(&mock, &["--max-retries", "2"]);
    let user = signed_up(&daemon);
    let out = user.run(&["generate", "x", "--save"]).fails_with(1);
    assert!(out.stderr.contains("malformed"), "{out:?}");
    assert_eq!(mock.requests().len(), 3);
    assert_eq!(project_count(&daemon), 0);
}

#[test]
fn retries_give_up_after_the_limit() {
    let mock = MockProvider::start();
    mock.set_default(Answer::Status(502));
    let daemon = mock_daemon(&mock, &["--max-retries", "2"]);
    let user = signed_up(&daemon);
    let out = user.run(&["generate", "x", "--save"]).fails_with(1);
    assert!(out.stderr.contains("HTTP 502"), "{out:?}");
    assert_eq!(mock.requests().len(), 3);
}

#[test]
fn a_broken_reply_gets_one_repair_round() {
    let mock = MockProvider::start();
    mock.push(Answer::Reply(
        "### app.py\n```python\ndef broken(:\n```\n".into(),
    ));
    mock.push(Answer::Reply(good_reply()));
    let daemon = mock_daemon(&mock, &[]);
    let user = signed_up(&daemon);
    user.run(&["--json", "generate", "x", "--save"]).ok();
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    let messages = requests[1].body["messages"].as_array().unwrap();
    let last = messages.last().unwrap()["content"].as_str().unwrap();
    assert!(
        last.contains("could not be used") && last.contains("line 1"),
        "{last}"
    );
    assert_eq!(messages[messages.len() - 2]["role"], "assistant");
}

#[test]
fn a_reply_that_stays_broken_keeps_nothing_and_is_recorded() {
    for bad in [
        "### app.py\n```python\ndef broken(:\n```\n",
        "### ../../etc/passwd\n```\nroot::0:0\n```\n",
        "### /etc/cron.d/x\n```\n* * * * * root sh\n```\n",
        "Sorry, I cannot help with that.",
        "### main.py\n```python\nprint('no app.py')\n```\n",
    ] {
        let mock = MockProvider::start();
        mock.set_default(Answer::Reply(bad.into()));
        let daemon = mock_daemon(&mock, &[]);
        let user = signed_up(&daemon);
        let out = user.run(&["generate", "x", "--save"]).fails_with(1);
        // The same failure twice: stuck, so no third round is paid for.
        assert!(out.stderr.contains("the repair is stuck"), "{bad}: {out:?}");
        assert_eq!(mock.requests().len(), 2);
        assert_eq!(project_count(&daemon), 0);
        let rows = history(&daemon);
        let outcomes: Vec<(&str, Option<i64>)> = rows.iter().map(|r| (r.0.as_str(), r.1)).collect();
        assert_eq!(outcomes, [("failed", None), ("failed", None)], "{bad}");
        assert!(!daemon.data_dir.join("projects").exists());
    }
}

#[test]
fn a_cut_off_reply_is_continued() {
    let reply = good_reply();
    let (head, tail) = reply.split_at(reply.len() / 2);
    let mock = MockProvider::start();
    mock.push(Answer::CutOff(head.into()));
    mock.push(Answer::Reply(tail.into()));
    let daemon = mock_daemon(&mock, &[]);
    let user = signed_up(&daemon);
    let out = user.run(&["--json", "generate", "x", "--save"]).ok().json();
    assert_eq!(out["files"].as_array().unwrap().len(), 3);
    let second = &mock.requests()[1];
    let last = second.body["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(last.contains("cut off"), "{last}");

    // Always cut off: refused, never saved cut off.
    let mock = MockProvider::start();
    mock.set_default(Answer::CutOff(head.into()));
    let daemon = mock_daemon(&mock, &["--repair-rounds", "0"]);
    let user = signed_up(&daemon);
    let out = user.run(&["generate", "x", "--save"]).fails_with(1);
    assert!(out.stderr.contains("cut off at the token limit"), "{out:?}");
    assert_eq!(mock.requests().len(), 3);
    assert_eq!(project_count(&daemon), 0);
}

#[test]
fn other_reply_formats_are_accepted() {
    let json_files = serde_json::json!({"files": [
        {"path": "app.py", "content": "from flask import Flask\napp = Flask(__name__)\n"},
        {"path": "templates/index.html", "content": "<p>hi</p>\n"}
    ]})
    .to_string();
    let replies = [
        json_files,
        "**app.py**\n```python\nfrom flask import Flask\napp = Flask(__name__)\n```\n".to_string(),
        "```python title=\"app.py\"\nfrom flask import Flask\napp = Flask(__name__)\n```\n".to_string(),
        "## The backend: `app.py`\n\nIt serves the page.\n\n```python\nfrom flask import Flask\napp = Flask(__name__)\n```\n".to_string(),
        "app.py\r\n```python\r\nfrom flask import Flask\r\napp = Flask(__name__)\r\n```\r\n".to_string(),
    ];
    for reply in replies {
        let mock = MockProvider::start();
        mock.set_default(Answer::Reply(reply.clone()));
        let daemon = mock_daemon(&mock, &["--repair-rounds", "0"]);
        let user = signed_up(&daemon);
        let out = user.run(&["--json", "generate", "x", "--save"]).ok().json();
        let paths: Vec<&str> = out["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert!(
            paths.contains(&"app.py") && paths.contains(&"requirements.txt"),
            "{reply}: {paths:?}"
        );
    }
}

#[test]
fn a_client_that_leaves_cancels_the_provider_request() {
    let mock = MockProvider::start();
    mock.set_default(Answer::SlowFirstByte(Duration::from_secs(50), good_reply()));
    let daemon = mock_daemon(&mock, &["--first-byte-timeout", "60"]);
    let user = signed_up(&daemon);
    let mut client = user
        .command(&["generate", "x", "--save"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    mock.wait_for_requests(1);
    client.kill().unwrap();
    client.wait().unwrap();
    wait_for("the provider request to be cancelled", || {
        mock.aborted() == 1
    });
    assert_eq!(project_count(&daemon), 0);
}

#[test]
fn improve_sends_the_current_files_and_saves_a_new_version() {
    let mock = MockProvider::start();
    mock.set_default(Answer::Reply(good_reply()));
    let daemon = mock_daemon(&mock, &[]);
    let user = signed_up(&daemon);
    let first = user
        .run(&["--json", "generate", "x", "--save", "--name", "site"])
        .ok()
        .json();
    mock.push(Answer::Reply(
        good_reply().replace("<p>hello</p>", "<p><b>hello</b></p>"),
    ));
    let out = user
        .run(&["--json", "improve", "site", "make the greeting bold"])
        .ok()
        .json();
    assert_eq!(out["project_id"], first["project_id"]);
    assert_eq!(out["version"], 2);
    let request = &mock.requests()[1];
    let content = request.body["messages"][1]["content"].as_str().unwrap();
    assert!(
        content.contains("### app.py") && content.contains("make the greeting bold"),
        "{content}"
    );
    // Someone else's project is not found, exactly like a missing one.
    let bob = daemon.user("bob");
    bob.signup().ok();
    let theirs = bob.run(&["improve", "site", "x"]).fails_with(3);
    let missing = bob.run(&["improve", "nothing-here", "x"]).fails_with(3);
    assert_eq!(
        theirs.stderr.replace("site", "?"),
        missing.stderr.replace("nothing-here", "?")
    );
    bob.run(&["improve", &first["project_id"].to_string(), "x"])
        .fails_with(3);
}

#[test]
fn bad_generation_requests_are_refused() {
    let daemon = Daemon::start();
    let anon = daemon.user("anon");
    anon.run(&["generate", "x"]).fails_with(4);
    let user = signed_up(&daemon);
    user.run(&["generate", "   "]).fails_with(2);
    // The offline scaffolder cannot tell what "x" keeps a list of.
    user.run(&["generate", "x", "--save"]).fails_with(2);
    user.run(&["generate", "x", "--provider", "nonsense"])
        .fails_with(2);
    let out = user
        .run(&["generate", "x", "--provider", "groq"])
        .fails_with(1);
    assert!(out.stderr.contains("GROQ_API_KEY"), "{out:?}");
    user.run(&["generate", "notes", "--save", "--name", "123"])
        .fails_with(2);
    user.run(&["--json", "generate", "notes", "--save", "--name", "taken"])
        .ok();
    // Another app under a taken name is a conflict; the same app is no change.
    user.run(&["generate", "books", "--save", "--name", "taken"])
        .fails_with(6);
    user.run(&["generate", &"x".repeat(40_000)]).fails_with(2);
    assert_eq!(project_count(&daemon), 1);
}

/// Sends one request over a raw connection with the user's saved token.
fn raw_request(daemon: &Daemon, user: &User, request: Request) -> ServerFrame {
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(user.config_home.join("appforge/session.json")).unwrap(),
    )
    .unwrap();
    let token = SessionToken(saved["token"].as_str().unwrap().to_string());
    let mut stream = handshake(&daemon.socket).unwrap();
    let envelope = ClientFrame::Request(Envelope {
        token: Some(token),
        request,
    });
    send_frame(&mut stream, &envelope).unwrap();
    read_frame(&mut stream).unwrap().expect("an answer")
}

#[test]
fn an_unsaved_generation_is_saved_once_and_only_by_its_owner() {
    let daemon = Daemon::start();
    let ada = signed_up(&daemon);
    let bob = daemon.user("bob");
    bob.signup().ok();
    let out = ada.run(&["--json", "generate", "a notes app"]).ok().json();
    assert_eq!(out["project_id"], serde_json::Value::Null);
    let generation_id = out["generation_id"].as_i64().unwrap();
    let save = |name: &str| {
        Request::SaveGeneration(SaveGenerationRequest {
            generation_id,
            name: Some(name.into()),
        })
    };
    let not_found = |frame: ServerFrame| match frame {
        ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::NotFound, "{e:?}"),
        other => panic!("expected not-found, got {other:?}"),
    };
    not_found(raw_request(&daemon, &bob, save("stolen")));
    match raw_request(&daemon, &ada, save("notes")) {
        ServerFrame::Reply(Reply::Generated(g)) => {
            let project = g.project.expect("saved");
            assert_eq!((project.name.as_str(), project.version), ("notes", 1));
            assert_eq!(g.files.len(), out["files"].as_array().unwrap().len());
        }
        other => panic!("expected a saved project, got {other:?}"),
    }
    not_found(raw_request(&daemon, &ada, save("again")));
    assert_eq!(project_count(&daemon), 1);
    let rows = history(&daemon);
    assert_eq!(
        rows[0].1,
        Some(1),
        "the history row is linked to the project"
    );
}

/// A model's change that writes the files as they are saves nothing and
/// restarts nothing (improve, fix, and the same app generated again under
/// its name); a change of README.md alone is saved without running the
/// app, which keeps running.
#[test]
fn a_models_change_equal_to_the_newest_version_saves_nothing() {
    let mock = MockProvider::start();
    mock.set_default(Answer::Reply(good_reply()));
    let daemon = mock_daemon(&mock, &[]);
    let user = signed_up(&daemon);
    user.run(&["--json", "generate", "x", "--save", "--name", "site"])
        .ok();
    let pid = pid_of(&run_app(&user, "site"));
    let same: [&[&str]; 3] = [
        &["--json", "improve", "site", "make it better"],
        &["--json", "fix", "site", "it is broken"],
        &["--json", "generate", "x", "--save", "--name", "site"],
    ];
    for args in same {
        let out = user.run(args).ok().json();
        assert_eq!(
            (
                out["unchanged"].as_bool(),
                out["version"].as_i64(),
                out["restarted"].as_bool()
            ),
            (Some(true), Some(1), Some(false)),
            "{args:?}: {out}"
        );
    }
    let said = user.run(&["improve", "site", "make it better"]).ok();
    assert!(
        said.stdout
            .contains("No change: version 1 of `site` already has this"),
        "{said:?}"
    );
    assert_eq!(
        user.run(&["--json", "history", "site"])
            .ok()
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    mock.push(Answer::Reply(
        "### README.md\n```markdown\n# Site\n\nSays hello.\n```\n".into(),
    ));
    let out = user
        .run(&["--json", "improve", "site", "document it"])
        .ok()
        .json();
    assert_eq!(
        (
            out["version"].as_i64(),
            out["docs_only"].as_bool(),
            out["restarted"].as_bool()
        ),
        (Some(2), Some(true), Some(false)),
        "{out}"
    );
    assert_eq!(
        out["checks"],
        serde_json::json!([]),
        "the app was not run: {out}"
    );
    let app = ps_of(&user, 1).expect("the app is listed");
    assert_eq!(pid_of(&app), pid, "not restarted: {app}");
}
