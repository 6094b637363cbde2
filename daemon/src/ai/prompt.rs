//! The words sent to models: the system prompt that fixes the output format
//! and the run convention, and the follow-up messages of a conversation.

use appforge_shared::protocol::FileContent;

use super::parse::{CHANGE_INSTRUCTIONS, FORMAT_INSTRUCTIONS};
use super::{Message, Role};

/// How an app gets its settings and secrets: the user sets them with
/// `appforge env`, the app reads them from its environment, and the names
/// are listed where the user looks for them. They are read where they are
/// used, as the checks start the app and run its tests without them.
pub const SETTINGS_RULE: &str = "Settings and secrets (API keys, tokens, passwords, URLs of \
     other services) are read from the environment with `os.environ[\"NAME\"]`, or \
     `os.environ.get(\"NAME\", default)` when the app works without them; never write a key, \
     token or password into the code or its files. Read a setting where it is used (in the \
     request handler), not when the module is imported, so that the app starts and its tests \
     pass without it; tests set what they need with `monkeypatch.setenv`. Names are upper case \
     letters, digits and `_`; \
     `PORT` and `HOST` are set for the app, and names starting with `APPFORGE_`, `PYTHON` or \
     `LD_` are not available. List every name the app reads in `README.md` under a `## Settings` \
     heading, one a line with what it is for.";

fn system_prompt() -> String {
    // The run convention every app follows; the supervisor starts apps this way.
    let run_convention =
        crate::process::launch::shell_line(&crate::process::shape::Target::convention(), "$PORT");
    format!(
        "You write small, complete, working web apps: a Python Flask backend and an HTML/JS \
         frontend.\n\
         Rules:\n\
         - `app.py` defines the Flask application object named `app`. The app is started from \
         its folder with `{run_convention}`, so do not call `app.run()` unconditionally and do not \
         pick a port.\n\
         - The main page is `templates/index.html`, served at `/`; put other static assets in \
         `static/`.\n\
         - Persist data with Python's built-in `sqlite3` in a file next to `app.py` when the app \
         needs storage. Prefer no external services and no network calls.\n\
         - {SETTINGS_RULE}\n\
         - `requirements.txt` lists every package, starting with `flask`.\n\
         - Add `test_app.py` with pytest tests of the API using `app.test_client()`.\n\
         - Relative paths only, no `..`.\n\n\
         {FORMAT_INSTRUCTIONS}"
    )
}

/// The conversation for a new app.
pub fn generate(prompt: &str) -> Vec<Message> {
    vec![
        Message::new(Role::System, system_prompt()),
        Message::new(Role::User, format!("Build this app: {prompt}")),
    ]
}

/// The conversation for changing an app: its current files, then the request.
pub fn improve(files: &[FileContent], prompt: &str) -> Vec<Message> {
    let mut current = app_as_it_is(files);
    current.push_str(&format!(
        "Change it as follows: {prompt}\n\n{CHANGE_INSTRUCTIONS}"
    ));
    vec![
        Message::new(Role::System, system_prompt()),
        Message::new(Role::User, current),
    ]
}

/// The app's files, in the format the model answers in.
fn app_as_it_is(files: &[FileContent]) -> String {
    let mut text = String::from("Here is the app as it is now.\n\n");
    for f in files {
        text.push_str(&format!("### {}\n````\n{}````\n\n", f.path, f.content));
    }
    text
}

/// Asks the model to fix a reply that failed the checks. A change
/// (`changing`: improve, fix) is answered like the first reply: only the
/// files that change, the rest kept.
pub fn repair(problem: &str, changing: bool) -> Message {
    let how = match changing {
        true => {
            "Write the files you change in full, in the same format; a file you do not write \
             stays as it is after your last answer, and `### DELETE: path` deletes one."
        }
        false => "Write the complete, corrected app again: every file in full, in the same format.",
    };
    Message::new(
        Role::User,
        format!(
            "Your answer could not be used: {problem}\nFind the cause of this error and fix it. \
             {how} {SETTINGS_REMINDER}"
        ),
    )
}

/// What a repair keeps to: a missing setting is read from the environment,
/// never made up in the code.
const SETTINGS_REMINDER: &str = "If the error is a setting that is not set (a `KeyError` of \
     `os.environ`), keep reading it from the environment, where it is used rather than at \
     import, and list it in `README.md` under `## Settings`; never write a value for it into \
     the code.";

/// The conversation for repairing an app from its real failure: its files,
/// what went wrong, and what the user adds.
pub fn fix(files: &[FileContent], failure: &str, extra: Option<&str>) -> Vec<Message> {
    let mut current = app_as_it_is(files);
    current.push_str(&format!(
        "It fails. What happened when it ran:\n\n````\n{failure}\n````\n\n"
    ));
    if let Some(extra) = extra {
        current.push_str(&format!("The user adds: {extra}\n\n"));
    }
    current.push_str(&format!(
        "Find the cause and fix it. {SETTINGS_REMINDER}\n\n{CHANGE_INSTRUCTIONS}"
    ));
    vec![
        Message::new(Role::System, system_prompt()),
        Message::new(Role::User, current),
    ]
}

/// Asks the model to go on after it hit the token limit.
pub fn continue_reply() -> Message {
    Message::new(
        Role::User,
        "Your answer was cut off. Continue exactly where it stopped, without repeating anything.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(messages: &[Message]) -> String {
        messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn every_conversation_says_settings_come_from_the_environment_and_are_listed() {
        let files = [FileContent::new("app.py", "import os\n")];
        for messages in [
            generate("a todo list"),
            improve(&files, "add a due date"),
            fix(&files, "KeyError: 'API_TOKEN'", None),
        ] {
            let all = text(&messages);
            assert!(all.contains("os.environ[\"NAME\"]"), "{all}");
            assert!(all.contains("never write a key"), "{all}");
            assert!(all.contains("## Settings"), "{all}");
            assert!(all.contains("not when the module is imported"), "{all}");
            assert!(!all.contains("no API keys"), "{all}");
        }
        let fixing = text(&fix(&files, "KeyError: 'API_TOKEN'", None));
        assert!(fixing.contains("never write a value for it into the code"));
    }

    #[test]
    fn a_repair_keeps_settings_in_the_environment() {
        for changing in [true, false] {
            let message = repair("GET / answered 500", changing);
            assert!(message.content.contains("from the environment"));
            assert!(message.content.contains("## Settings"));
        }
    }
}
