//! The offline template provider across many prompts: every app it scaffolds
//! passes every check (install, import, start and its own tests) on the first
//! round, with no repair. One daemon, prompts in turn (they share the warm
//! Python environment); every failure is collected so one run shows them all.

use std::time::{Duration, Instant};

use appforge_e2e::apps::{
    http_get, http_send, json_body, page, pid_of, port_of, ps_of, run_app, signed_up,
};
use appforge_e2e::{Daemon, User};
use serde_json::{json, Value};

/// Varied, realistic prompts, plus a few odd phrasings.
const PROMPTS: &[&str] = &[
    "a todo app with title, due date and done flag",
    "a bookmark manager with url, title and tags",
    "track my books: title, author, pages, rating",
    "recipe app with name, ingredients, instructions, prep time in minutes",
    "expense tracker with amount, category, date and description",
    "a contact list with name, email, phone and birthday",
    "inventory of products with sku, name, price, quantity, in stock",
    "habit tracker with habit name, streak and last done date",
    "workout log with exercise, sets, reps, weight and date",
    "movie watchlist with title, year, watched and rating",
    "flashcards with front, back and deck",
    "events calendar with name, location, start date, end date and notes",
    "a reading list with title, url, rating and read flag",
    "a plant watering schedule with plant name, room, last watered date and interval in days",
    "a gym membership list with member name, email, join date and active flag",
    "I want to keep track of my vinyl records with artist, album, year and condition",
    "notes",
    "TODO LIST WITH TITLE AND PRIORITY",
    "a \"quick\" app: tasks (title, owner's name, done?) -- with 'quotes' & <angle> brackets!",
    "Can you build me something to log my coffee tastings? Bean, origin, roast level, score out of 10.",
    "a customer list with company, contact name, email, phone and notes",
    "a job application tracker with company, position, applied date, status and salary",
    "a library of board games with name, min players, max players and playing time",
    "a journal with date, mood and entry text",
    "a car maintenance log with date, mileage, service type and cost",
    "a birthday reminder with name, birthday and gift ideas",
    "a wine cellar inventory with name, vintage, region, bottles and price",
    "a podcast episode tracker with show, episode title, duration, listened and link",
    "a pet vaccination record with pet name, vaccine, date given and next due date",
    "a student grade book with student, subject, score and passed",
    "a travel bucket list with country, city, visited and visit date",
    "shopping list: item, quantity, bought",
    "a meeting notes app with title, attendees, meeting date, time and action items",
    "a password hint list with site, username and hint",
    "a sleep tracker with date, hours slept, quality 1-5 and notes",
    "recipes",
];

/// The check steps every scaffolded app must run and pass.
const STEPS: [&str; 4] = ["install", "import", "start", "tests"];

/// Why a generation's JSON does not show a clean first-round pass, if it does not.
fn problems(out: &serde_json::Value) -> Vec<String> {
    let mut problems = Vec::new();
    if out["provider"] != "template" {
        problems.push(format!("provider is {}, not template", out["provider"]));
    }
    if out["check_status"] != "passed" {
        problems.push(format!("check_status is {}", out["check_status"]));
    }
    if out["repair_rounds"] != 0 {
        problems.push(format!("repair_rounds is {}", out["repair_rounds"]));
    }
    let checks = out["checks"].as_array().cloned().unwrap_or_default();
    for step in STEPS {
        match checks.iter().find(|c| c["step"] == step) {
            None => problems.push(format!("no {step} check")),
            Some(c) if c["passed"] != true => problems.push(format!("the {step} check failed")),
            Some(_) => {}
        }
    }
    for c in &checks {
        if c["passed"] != true && !STEPS.iter().any(|s| c["step"] == *s) {
            problems.push(format!("the {} check failed", c["step"]));
        }
    }
    problems
}

#[test]
fn the_template_providers_apps_pass_every_check_for_many_prompts() {
    assert!(PROMPTS.len() >= 30, "at least 30 prompts");
    let started = Instant::now();
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    let mut failures = Vec::new();
    for prompt in PROMPTS {
        let one = Instant::now();
        // Asked for by name, so a provider key in the environment cannot
        // send these prompts elsewhere.
        let run = user.run(&["--json", "generate", prompt, "--provider", "template"]);
        let error = if run.code != 0 {
            Some(format!(
                "exit status {}: {}{}",
                run.code,
                run.stderr.trim(),
                run.stdout.trim()
            ))
        } else {
            match serde_json::from_str::<serde_json::Value>(&run.stdout) {
                Err(e) => Some(format!("stdout is not JSON ({e}): {}", run.stdout)),
                Ok(out) => {
                    let found = problems(&out);
                    (!found.is_empty()).then(|| format!("{}: {out}", found.join("; ")))
                }
            }
        };
        eprintln!(
            "{} {prompt:?} ({:.1} s)",
            if error.is_none() { "ok    " } else { "FAILED" },
            one.elapsed().as_secs_f64()
        );
        if let Some(error) = error {
            failures.push(format!("{prompt:?}\n    {error}"));
        }
    }
    eprintln!(
        "{} prompts in {:.1} s, {} failed",
        PROMPTS.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} prompts did not pass every check:\n{}",
        failures.len(),
        PROMPTS.len(),
        failures.join("\n")
    );
}

/// `improve "add a priority field"` on a running scaffolded app: the new
/// version has a `priority` field, passes its checks, and the running app
/// moves to it, keeping the records it had (an older database gains the
/// column).
#[test]
fn improve_adds_the_field_it_names_and_the_running_app_follows() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    let prompt = "a todo app with title and done flag";
    user.run(&[
        "generate",
        prompt,
        "--provider",
        "template",
        "--save",
        "--name",
        "todo",
    ])
    .ok();
    let port = port_of(&run_app(&user, "todo"));
    let timeout = Duration::from_secs(10);
    let first = json!({"title": "water the plants", "done": false});
    let created = http_send(port, "POST", "/api/todos", Some(&first), timeout).unwrap_or_default();
    assert!(created.contains(" 201 "), "{created}");

    let out = user
        .run(&[
            "--json",
            "improve",
            "todo",
            "add a priority field",
            "--provider",
            "template",
        ])
        .ok()
        .json();
    assert_eq!(
        (out["check_status"].as_str(), out["restarted"].as_bool()),
        (Some("passed"), Some(true)),
        "{out}"
    );
    let app_py = user.run(&["show", "todo", "--file", "app.py"]).ok().stdout;
    assert!(
        app_py.contains(r#"("priority", "integer", False)"#),
        "no priority field in app.py:\n{app_py}"
    );

    let app = ps_of(&user, 1).expect("the app is listed");
    assert_eq!(
        (app["version"].as_i64(), port_of(&app)),
        (Some(2), port),
        "{app}"
    );
    let second = json!({"title": "file taxes", "done": false, "priority": 1});
    let created = http_send(port, "POST", "/api/todos", Some(&second), timeout).unwrap_or_default();
    assert!(created.contains(" 201 "), "{created}");
    let list = json_body(&http_get(port, "/api/todos", timeout).unwrap_or_default());
    let priorities: Vec<(&str, &Value)> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| (r["title"].as_str().unwrap_or(""), &r["priority"]))
        .collect();
    assert_eq!(
        priorities,
        [
            ("water the plants", &Value::Null),
            ("file taxes", &json!(1))
        ]
    );
}

/// The versions `history` lists for a project.
fn versions(user: &User, project: &str) -> Vec<Value> {
    user.run(&["--json", "history", project])
        .ok()
        .json()
        .as_array()
        .expect("history prints an array")
        .clone()
}

/// `appforge --json ARGS… --provider template`, which must succeed.
fn offline(user: &User, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--provider", "template"]);
    user.run(&all).ok().json()
}

/// The records the app on `port` lists at `path`, each as the value of `key`.
fn listed(port: u16, path: &str, key: &str) -> Vec<Value> {
    let body = json_body(&http_get(port, path, Duration::from_secs(10)).unwrap_or_default());
    body.as_array()
        .unwrap_or_else(|| panic!("{path} answered {body}"))
        .iter()
        .map(|r| r[key].clone())
        .collect()
}

/// Requests the scaffolder has no rule for end with exit 2, a message that
/// says what it can do and that a model can do the rest, and nothing saved:
/// no project, no version, no history row.
#[test]
fn requests_the_scaffolder_cannot_carry_out_are_refused_and_save_nothing() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    for (prompt, why) in [
        ("a weather dashboard for my city", "not a list of records"),
        (
            "a chat app where friends send messages",
            "not a list of records",
        ),
        (
            "a todo app with title, done and a chart of progress",
            "cannot place",
        ),
    ] {
        let run = user
            .run(&["generate", prompt, "--provider", "template", "--save"])
            .fails_with(2);
        for part in [why, "GROQ_API_KEY", "--provider openai", "list of records"] {
            assert!(
                run.stderr.contains(part),
                "{part:?} not said for {prompt:?}: {run:?}"
            );
        }
    }
    let count = |table: &str| daemon.sql(&format!("SELECT count(*) FROM {table}"))[0][0].clone();
    assert_eq!(count("projects").as_deref(), Some("0"));
    assert_eq!(count("generation_history").as_deref(), Some("0"));

    offline(
        &user,
        &[
            "generate",
            "expense tracker with description, amount and date",
            "--save",
            "--name",
            "expenses",
        ],
    );
    let before = versions(&user, "expenses");
    for (command, words) in [
        ("improve", "make the header bigger"),
        ("improve", "make the background cerulean"),
        ("fix", "the page should load faster"),
        ("improve", "sort it nicely"),
    ] {
        let run = user
            .run(&[command, "expenses", words, "--provider", "template"])
            .fails_with(2);
        assert!(
            run.stderr.contains("cannot do this") && run.stderr.contains("GROQ_API_KEY"),
            "{command} {words:?}: {run:?}"
        );
    }
    assert_eq!(versions(&user, "expenses"), before, "history unchanged");
    assert_eq!(count("generation_history").as_deref(), Some("1"));
}

/// The changes a rule carries out, each seen in the running app: a theme
/// colour, a page title, an order, a required field, a renamed field that
/// keeps its values. Names come from the prompt's noun.
#[test]
fn the_changes_the_scaffolder_knows_work_in_the_running_app() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    let made = offline(
        &user,
        &[
            "generate",
            "a recipe box with title, ingredients and rating",
            "--save",
        ],
    );
    assert_eq!(made["name"], "recipe-box", "{made}");
    let understood = made["understood"].as_str().unwrap_or_default();
    for part in [
        "/api/recipes",
        "title (text)",
        "ingredients (long text)",
        "rating (number)",
        "recipe-box",
    ] {
        assert!(understood.contains(part), "{part:?} not in {understood:?}");
    }
    let port = port_of(&run_app(&user, "recipe-box"));
    let timeout = Duration::from_secs(10);
    for (title, ingredients, rating) in [("Soup", "water", 3), ("Cake", "flour", 5)] {
        let record = json!({"title": title, "ingredients": ingredients, "rating": rating});
        let created =
            http_send(port, "POST", "/api/recipes", Some(&record), timeout).unwrap_or_default();
        assert!(created.contains(" 201 "), "{created}");
    }

    let change = |words: &str| {
        let out = offline(&user, &["improve", "recipe-box", words]);
        assert_eq!(
            (
                out["check_status"].as_str(),
                out["restarted"].as_bool(),
                out["unchanged"].as_bool()
            ),
            (Some("passed"), Some(true), Some(false)),
            "{words}: {out}"
        );
        out
    };
    let out = change("make the background blue");
    assert!(
        out["understood"]
            .as_str()
            .unwrap_or_default()
            .contains("blue theme"),
        "{out}"
    );
    assert!(page(port).contains("background: #dbeafe"), "{}", page(port));

    change("call it \"Family Recipes\"");
    assert!(
        page(port).contains("<title>Family Recipes</title>"),
        "{}",
        page(port)
    );

    change("sort by rating, highest first");
    assert_eq!(
        listed(port, "/api/recipes", "title"),
        [json!("Cake"), json!("Soup")]
    );
    assert_eq!(
        listed(port, "/api/recipes?order=asc", "title"),
        [json!("Soup"), json!("Cake")]
    );

    change("make ingredients required");
    let missing = json!({"title": "Air", "rating": 1});
    let refused =
        http_send(port, "POST", "/api/recipes", Some(&missing), timeout).unwrap_or_default();
    assert!(
        refused.contains(" 400 ") && refused.contains("ingredients is required"),
        "{refused}"
    );

    change("rename title to dish");
    assert_eq!(
        listed(port, "/api/recipes", "dish"),
        [json!("Cake"), json!("Soup")]
    );
    assert_eq!(versions(&user, "recipe-box").len(), 6);
}

/// A generate, improve, fix or edit whose files equal the newest version's
/// saves nothing, restarts nothing, and says so, with exit 0.
#[test]
fn a_result_equal_to_the_newest_version_saves_and_restarts_nothing() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    let prompt = "a todo app with title and done flag";
    offline(&user, &["generate", prompt, "--save", "--name", "todo"]);
    let pid = pid_of(&run_app(&user, "todo"));

    let again = offline(&user, &["generate", prompt, "--save", "--name", "todo"]);
    // A todo's title is its required field already.
    let improved = offline(&user, &["improve", "todo", "make title required"]);
    let fixed = offline(&user, &["fix", "todo", "the title should be required"]);
    for out in [&again, &improved, &fixed] {
        assert_eq!(
            (
                out["unchanged"].as_bool(),
                out["version"].as_i64(),
                out["restarted"].as_bool()
            ),
            (Some(true), Some(1), Some(false)),
            "{out}"
        );
    }
    let said = user
        .run(&[
            "improve",
            "todo",
            "make title required",
            "--provider",
            "template",
        ])
        .ok();
    assert!(
        said.stdout
            .contains("No change: version 1 of `todo` already has this"),
        "{said:?}"
    );
    let readme = user
        .run(&["show", "todo", "--file", "README.md"])
        .ok()
        .stdout;
    let edited = user
        .run_with_stdin(
            &["--json", "edit", "todo", "--file", "README.md", "--stdin"],
            &readme,
        )
        .ok()
        .json();
    assert_eq!(
        (edited["saved"].as_bool(), edited["version"].as_i64()),
        (Some(false), Some(1))
    );

    assert_eq!(versions(&user, "todo").len(), 1);
    let app = ps_of(&user, 1).expect("the app is listed");
    assert_eq!(
        (pid_of(&app), app["version"].as_i64()),
        (pid, Some(1)),
        "{app}"
    );
}

/// An edit of README.md alone is saved as a version without running the
/// app's checks, and the running app is left as it was.
#[test]
fn a_documentation_only_edit_is_saved_unchecked_and_the_app_keeps_running() {
    let daemon = Daemon::start();
    let user = signed_up(&daemon, "ada");
    offline(
        &user,
        &[
            "generate",
            "a book list with title and author",
            "--save",
            "--name",
            "books",
        ],
    );
    let pid = pid_of(&run_app(&user, "books"));
    let readme = user
        .run(&["show", "books", "--file", "README.md"])
        .ok()
        .stdout;
    let edited = user
        .run_with_stdin(
            &["--json", "edit", "books", "--file", "README.md", "--stdin"],
            &format!("{readme}\nBorrowed books go back by Friday.\n"),
        )
        .ok()
        .json();
    assert_eq!(
        (
            edited["saved"].as_bool(),
            edited["version"].as_i64(),
            edited["docs_only"].as_bool(),
            edited["restarted"].as_bool(),
        ),
        (Some(true), Some(2), Some(true), Some(false)),
        "{edited}"
    );
    assert_eq!(edited["checks"], json!([]), "the app was not run: {edited}");
    assert_eq!(versions(&user, "books").len(), 2);
    let app = ps_of(&user, 1).expect("the app is listed");
    assert_eq!(pid_of(&app), pid, "not restarted: {app}");
    assert!(user
        .run(&["show", "books", "--file", "README.md"])
        .ok()
        .stdout
        .contains("Borrowed books go back by Friday."),);
}
