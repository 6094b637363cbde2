//! What the offline scaffolder understood a request as, said before it
//! writes, and what it refuses: an app that is not a list of records, a
//! prompt whose things or fields it cannot tell, a change it has no rule
//! for, an app it did not make.

use appforge_shared::protocol::FileContent;
use serde::{Deserialize, Serialize};

use super::{has, normalize, read, reply_of, rules, words_of, AppSpec};
use crate::ai::AppWords;
use crate::texts::one_line;

/// Where a scaffolded app keeps what it was made from, for a later change
/// to read back. A data file of its own: prompt text never reaches code.
pub(super) const SPEC_FILE: &str = "scaffold.json";

/// What [`SPEC_FILE`] holds.
#[derive(Serialize, Deserialize)]
struct SpecFile {
    about: String,
    spec: AppSpec,
}

const ABOUT: &str = "What appforge's offline scaffolder made this app from, and the changes \
    since: appforge improve reads it back to change the app. The app itself never reads it.";

/// The text of [`SPEC_FILE`] for `spec`.
pub(super) fn spec_file(spec: &AppSpec) -> String {
    let file = SpecFile {
        about: ABOUT.to_string(),
        spec: spec.clone(),
    };
    let text = serde_json::to_string_pretty(&file).expect("a spec serializes");
    // Backticks only occur inside JSON strings, where an escape reads the
    // same: so no run of them can end the reply's fence around this file.
    let mut text = text.replace('`', "\\u0060");
    text.push('\n');
    text
}

/// Apps the scaffolder cannot make, by a word of the prompt's name for the
/// app: they are not lists of records.
const NOT_LISTS: &str = "weather forecast chat chatroom chatbot messenger messaging game \
    calculator timer stopwatch clock countdown converter translator quiz drawing paint \
    whiteboard player streaming videocall map";

/// What the scaffolder can do, for a refusal to say.
const CAN: &str = "make an app that keeps a list of records (\"a recipe box with title, \
    ingredients and rating\"), and change one it made: a theme colour (\"make the background \
    blue\"), the page title (\"call it Family Recipes\"), the order (\"sort by rating, highest \
    first\"), a required field (\"make title required\"), a field's name (\"rename notes to \
    details\"), more fields (\"add a priority field\")";

/// A request the offline scaffolder cannot carry out; nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the offline scaffolder cannot do this: {why}.\nIt can {CAN}.\nA model provider can do the \
     rest: set GROQ_API_KEY for appforged, or use --provider openai with a local \
     OpenAI-compatible server."
)]
pub struct Refusal {
    why: String,
}

impl Refusal {
    pub(super) fn new(why: impl Into<String>) -> Refusal {
        Refusal { why: why.into() }
    }
}

/// What the scaffolder will write, and what it says it understood.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The app it will write.
    pub spec: AppSpec,
    /// What it understood, in one line.
    pub said: String,
}

/// Reads a request: a new app from its prompt, or a change of an app the
/// scaffolder made, read back from its files.
pub fn understand(app: &AppWords) -> Result<Plan, Refusal> {
    if app.current.is_empty() {
        let spec = understand_prompt(&app.prompt)?;
        let said = describe(&spec);
        return Ok(Plan { spec, said });
    }
    let mut spec = read_back(&app.current, &app.prompt)?;
    let said = match app.change.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(change) => {
            let done = rules::apply(change, &mut spec)?;
            spec = normalize(&spec);
            format!(
                "a change of the {} app: {}",
                words_of(&spec.plural),
                done.join("; ")
            )
        }
        // `fix` with no words: the app as the scaffolder made it.
        None => format!("the app rewritten as it was made: {}", describe(&spec)),
    };
    Ok(Plan { spec, said })
}

/// The scaffolder's reply to a request: its files as a model writes them.
pub fn answer(app: &AppWords) -> Result<String, Refusal> {
    let plan = understand(app)?;
    Ok(reply_of(&plan.spec, &app.prompt))
}

/// A new app's spec, or why the prompt cannot be one.
fn understand_prompt(prompt: &str) -> Result<AppSpec, Refusal> {
    let reading = read(prompt);
    let shown = one_line(prompt, 60);
    if let Some(word) = reading.head.iter().find(|w| has(NOT_LISTS, w)) {
        return Err(Refusal::new(format!(
            "\"{shown}\" asks for a {word} app, which is not a list of records"
        )));
    }
    if !reading.found_entity {
        return Err(Refusal::new(format!(
            "it could not tell what \"{shown}\" keeps a list of; name the things and their \
             fields, like \"a recipe box with title, ingredients and rating\""
        )));
    }
    if !reading.rejected.is_empty() {
        let quoted: Vec<String> = reading
            .rejected
            .iter()
            .map(|r| format!("\"{}\"", one_line(r, 40)))
            .collect();
        return Err(Refusal::new(format!(
            "it cannot place {} as a field of {}",
            quoted.join(", "),
            words_of(&reading.spec.plural)
        )));
    }
    Ok(reading.spec)
}

/// "a list of recipes (entity `recipe`, API /api/recipes) with fields title (text), …"
pub(super) fn describe(spec: &AppSpec) -> String {
    let fields: Vec<String> = spec
        .fields
        .iter()
        .map(|f| format!("{} ({})", f.name, f.kind.words()))
        .collect();
    format!(
        "a list of {} (entity `{}`, API /api/{}) with fields {}",
        words_of(&spec.plural),
        spec.entity,
        spec.plural,
        fields.join(", ")
    )
}

/// What the scaffolder's `app.py` says of itself, in apps made before
/// they kept a [`SPEC_FILE`].
const OLDER_APP: &str = "a small Flask + SQLite CRUD app generated by appforge";

/// The spec an app was made from, from its [`SPEC_FILE`]; an app the
/// scaffolder made before it kept one is read from its prompt again, as it
/// was made.
fn read_back(files: &[FileContent], prompt: &str) -> Result<AppSpec, Refusal> {
    let Some(file) = files.iter().find(|f| f.path == SPEC_FILE) else {
        let older = files
            .iter()
            .any(|f| f.path == "app.py" && f.content.contains(OLDER_APP));
        if older {
            return Ok(read(prompt).spec);
        }
        return Err(Refusal::new(format!(
            "it only changes apps it made, and this app has no {SPEC_FILE} saying how it was made"
        )));
    };
    let file: SpecFile = serde_json::from_str(&file.content)
        .map_err(|e| Refusal::new(format!("{SPEC_FILE} was edited and cannot be read ({e})")))?;
    Ok(normalize(&file.spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::template::{render_files, FieldKind};

    fn new_app(prompt: &str) -> Result<Plan, Refusal> {
        understand(&AppWords {
            prompt: prompt.into(),
            change: None,
            current: Vec::new(),
        })
    }

    /// The files of `prompt`'s app, changed by each of `changes` in turn.
    fn changed(prompt: &str, changes: &[&str]) -> Result<Plan, Refusal> {
        let mut plan = new_app(prompt)?;
        for change in changes {
            let current = render_files(&plan.spec, prompt)
                .into_iter()
                .map(|(path, content)| FileContent { path, content })
                .collect();
            plan = understand(&AppWords {
                prompt: prompt.into(),
                change: Some(change.to_string()),
                current,
            })?;
        }
        Ok(plan)
    }

    #[test]
    fn the_entity_comes_from_the_prompts_noun() {
        let plan = new_app("a recipe box with title, ingredients and rating").unwrap();
        assert_eq!(plan.spec.plural, "recipes");
        let names: Vec<&str> = plan.spec.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["title", "ingredients", "rating"]);
        assert!(plan.said.contains("API /api/recipes"), "{}", plan.said);
        assert!(plan.said.contains("rating (number)"), "{}", plan.said);
    }

    #[test]
    fn apps_that_are_not_lists_and_unplaceable_fields_are_refused() {
        for prompt in [
            "a weather dashboard for my city",
            "a chat app where friends send messages",
            "something completely unreadable",
            "a todo app with title, dark mode and a chart of progress",
        ] {
            let e = new_app(prompt).unwrap_err().to_string();
            assert!(
                e.contains("GROQ_API_KEY") && e.contains("--provider openai"),
                "{e}"
            );
        }
    }

    #[test]
    fn every_prompt_the_scaffold_suite_uses_is_understood() {
        for prompt in [
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
        ] {
            assert!(new_app(prompt).is_ok(), "{prompt}: {:?}", new_app(prompt));
        }
    }

    #[test]
    fn the_rules_change_what_they_say() {
        let base = "expense tracker with description, amount and date";
        let plan = changed(base, &["make the background blue"]).unwrap();
        assert_eq!(plan.spec.tweaks.theme.as_deref(), Some("blue"));
        let plan = changed(base, &["the date column should be sortable"]).unwrap();
        let sort = plan.spec.tweaks.sort.unwrap();
        assert_eq!((sort.field.as_str(), sort.descending), ("date", false));
        let plan = changed(base, &["sort by amount, highest first"]).unwrap();
        assert!(plan.spec.tweaks.sort.unwrap().descending);
        let plan = changed(base, &["call it \"Family Budget\""]).unwrap();
        assert_eq!(plan.spec.title, "Family Budget");
        let plan = changed(base, &["call it \"Sorted Blue Money\""]).unwrap();
        assert_eq!(plan.spec.title, "Sorted Blue Money");
        assert_eq!(plan.spec.tweaks, Default::default());
        let plan = changed(base, &["change the page title to Our Money"]).unwrap();
        assert_eq!(plan.spec.title, "Our Money");
        let plan = changed(base, &["make amount required"]).unwrap();
        assert_eq!(plan.spec.tweaks.required, ["amount"]);
        let plan = changed(base, &["rename description to note", "sort by note"]).unwrap();
        assert_eq!(plan.spec.fields[0].name, "note");
        assert_eq!(
            plan.spec.tweaks.renamed,
            [("description".into(), "note".into())]
        );
        let plan = changed(base, &["add a paid flag"]).unwrap();
        assert_eq!(plan.spec.fields[3].kind, FieldKind::Boolean);
    }

    #[test]
    fn changes_without_a_rule_are_refused() {
        let base = "expense tracker with description, amount and date";
        for change in [
            "make the header bigger",
            "make the background cerulean",
            "sort it nicely",
            "rename the whole thing",
            "add a chart of spending by month",
            "description should not be required",
        ] {
            let e = changed(base, &[change]).unwrap_err().to_string();
            assert!(e.contains("cannot do this"), "{change}: {e}");
        }
        let e = understand(&AppWords {
            prompt: base.into(),
            change: Some("make the background blue".into()),
            current: vec![FileContent {
                path: "app.py".into(),
                content: "print(1)\n".into(),
            }],
        })
        .unwrap_err();
        assert!(e.to_string().contains("only changes apps it made"), "{e}");
    }

    #[test]
    fn an_app_made_before_the_spec_file_is_read_from_its_prompt() {
        let base = "expense tracker with description, amount and date";
        let current = render_files(&new_app(base).unwrap().spec, base)
            .into_iter()
            .filter(|(path, _)| path != SPEC_FILE)
            .map(|(path, content)| FileContent { path, content })
            .collect();
        let plan = understand(&AppWords {
            prompt: base.into(),
            change: Some("sort by amount".into()),
            current,
        })
        .unwrap();
        assert_eq!(plan.spec.tweaks.sort.unwrap().field, "amount");
    }
}
