//! The changes the offline scaffolder can make to an app it made, each a
//! rule over the words of the request: more fields, a field renamed, the
//! page title, the list's order, a required field, a theme colour. A
//! request no rule reads is refused, never half done in silence.

use super::tweaks::{colours, Sort, COLOURS};
use super::understand::Refusal;
use super::{
    has, label_from_words, read_fields, safe_name, singularize, tokenize, AppSpec, FieldKind, Tok,
    MAX_FIELDS, MAX_TITLE_CHARS,
};
use crate::texts::one_line;

/// Words that ask for an order.
const SORT_WORDS: &str = "sort sorts sorted sortable sorting order ordered ordering";
/// Words that turn an order round.
const DESCENDING_WORDS: &str = "desc descending reverse reversed newest latest highest largest \
    biggest recent";
/// Words that make a field required.
const REQUIRED_WORDS: &str = "required mandatory compulsory";
/// Words that say a colour is the page's.
const THEME_WORDS: &str = "background theme colour color accent bg page app look";
/// Words that say the page's title is meant.
const TITLE_WORDS: &str = "title heading header";
/// Words that say the app, not a field, is meant.
const APP_WORDS: &str = "app page site website application";

/// Applies a change request to `spec`; returns what was done, one phrase
/// per rule that applied.
pub(super) fn apply(change: &str, spec: &mut AppSpec) -> Result<Vec<String>, Refusal> {
    let tokens = tokenize(change);
    let mut words = words_of(&tokens);
    let shown = one_line(change, 60);
    if words.first().is_some_and(|w| w == "add" || w == "adding") {
        return add_fields(&tokens[1..], spec, &shown).map(|done| vec![done]);
    }
    let mut done = Vec::new();
    let renaming = words.iter().any(|w| w == "rename" || w == "renamed");
    let mut titled = false;
    if renaming && mentioned(before_to(&words), spec).is_some() {
        done.push(rename(&words, spec, &shown)?);
    } else if let Some(title) = title_rule(change, &words) {
        done.push(set_title(title, spec)?);
        titled = true;
        // The title's own words ask for nothing ("call it \"Sorted Recipes\"").
        words = words_of(&tokenize(&change.replacen(title, " ", 1)));
    }
    // A rule's word that is part of a field's name ("order number") is the field's.
    let field_words: Vec<&str> = spec.fields.iter().flat_map(|f| f.name.split('_')).collect();
    let asks = |list: &str| {
        words
            .iter()
            .any(|w| has(list, w) && !field_words.contains(&w.as_str()))
    };
    let (sorting, requiring) = (asks(SORT_WORDS), asks(REQUIRED_WORDS));
    if sorting {
        done.push(sort(&words, spec, &shown)?);
    }
    if requiring {
        done.push(require(&words, spec, &shown)?);
    }
    if let Some(theme) = theme(&words, titled, &shown)? {
        done.push(theme_of(theme, spec));
    }
    if done.is_empty() {
        return Err(Refusal::new(format!("it has no rule for \"{shown}\"")));
    }
    Ok(done)
}

/// The words of a request's tokens.
fn words_of(tokens: &[(Tok, usize)]) -> Vec<String> {
    tokens
        .iter()
        .filter_map(|(tok, _)| match tok {
            Tok::Word(w) => Some(w.clone()),
            _ => None,
        })
        .collect()
}

/// The field the words name, the longest match first ("due date" over
/// "date"); plurals count ("the dates").
fn mentioned(words: &[String], spec: &AppSpec) -> Option<usize> {
    let singular: Vec<String> = words.iter().map(|w| singularize(w)).collect();
    let mut best: Option<(usize, usize)> = None;
    for (index, field) in spec.fields.iter().enumerate() {
        let label = field.label.to_ascii_lowercase();
        for name in [field.name.replace('_', " "), label] {
            let parts: Vec<&str> = name.split_whitespace().collect();
            if parts.is_empty() {
                continue;
            }
            let found = singular
                .windows(parts.len())
                .chain(words.windows(parts.len()))
                .any(|window| window.iter().zip(&parts).all(|(w, p)| w == p));
            if found && best.is_none_or(|(_, len)| parts.len() > len) {
                best = Some((index, parts.len()));
            }
        }
    }
    best.map(|(index, _)| index)
}

/// The words before the last "to": what a rename renames.
fn before_to(words: &[String]) -> &[String] {
    match words.iter().rposition(|w| w == "to" || w == "as") {
        Some(to) => &words[..to],
        None => words,
    }
}

/// The field names, for a refusal to list.
fn field_names(spec: &AppSpec) -> String {
    let names: Vec<&str> = spec.fields.iter().map(|f| f.name.as_str()).collect();
    names.join(", ")
}

/// "add a priority field", "add tags and a due date".
fn add_fields(tokens: &[(Tok, usize)], spec: &mut AppSpec, shown: &str) -> Result<String, Refusal> {
    let mut rejected = Vec::new();
    let fields = read_fields(tokens, &spec.entity, &mut rejected);
    if !rejected.is_empty() {
        return Err(Refusal::new(format!(
            "it cannot place \"{}\" as a field",
            one_line(&rejected.join(", "), 60)
        )));
    }
    let new: Vec<_> = fields
        .into_iter()
        .filter(|f| !spec.fields.iter().any(|old| old.name == f.name))
        .collect();
    if fields_would_overflow(spec, new.len()) {
        return Err(Refusal::new(format!(
            "an app holds at most {MAX_FIELDS} fields"
        )));
    }
    if new.is_empty() {
        return match spec.fields.is_empty() {
            true => Err(Refusal::new(format!("it read no field in \"{shown}\""))),
            false => Ok(format!("fields already there ({})", field_names(spec))),
        };
    }
    let added: Vec<String> = new
        .iter()
        .map(|f| format!("{} ({})", f.name, f.kind.words()))
        .collect();
    spec.fields.extend(new);
    Ok(format!("added fields {}", added.join(", ")))
}

fn fields_would_overflow(spec: &AppSpec, more: usize) -> bool {
    spec.fields.len() + more > MAX_FIELDS
}

/// "rename notes to details", "rename the name field to title".
fn rename(words: &[String], spec: &mut AppSpec, shown: &str) -> Result<String, Refusal> {
    let to = words.iter().rposition(|w| w == "to" || w == "as");
    let (Some(to), Some(index)) = (to, mentioned(before_to(words), spec)) else {
        return Err(Refusal::new(format!(
            "it cannot tell which field \"{shown}\" renames to what; say \"rename notes to \
             details\" (the fields are {})",
            field_names(spec)
        )));
    };
    let new_words: Vec<&str> = words[to + 1..]
        .iter()
        .map(String::as_str)
        .filter(|w| !matches!(*w, "a" | "an" | "the" | "field" | "column"))
        .collect();
    let new_name = match new_words.len() {
        1..=4 => safe_name(&new_words.join("_")),
        _ => None,
    };
    let Some(new_name) = new_name else {
        return Err(Refusal::new(format!(
            "it cannot read a new field name in \"{shown}\""
        )));
    };
    let old = spec.fields[index].name.clone();
    if old == new_name {
        return Ok(format!("{old} is already called {old}"));
    }
    if spec.fields.iter().any(|f| f.name == new_name) {
        return Err(Refusal::new(format!(
            "there is a field called {new_name} already"
        )));
    }
    let field = &mut spec.fields[index];
    field.name = new_name.clone();
    field.label = label_from_words(&new_words);
    let tweaks = &mut spec.tweaks;
    tweaks.renamed.push((old.clone(), new_name.clone()));
    for name in tweaks.required.iter_mut().filter(|n| **n == old) {
        *name = new_name.clone();
    }
    if let Some(sort) = tweaks.sort.as_mut().filter(|s| s.field == old) {
        sort.field = new_name.clone();
    }
    Ok(format!(
        "field {old} renamed to {new_name} (stored values kept)"
    ))
}

/// The page title a request asks for: "call it Family Recipes", "set the
/// page title to \"Recipes\"", "change the heading to Our Recipes".
fn title_rule<'a>(change: &'a str, words: &[String]) -> Option<&'a str> {
    let asks = words.iter().any(|w| has(TITLE_WORDS, w))
        || words.windows(2).any(|pair| {
            matches!(pair[0].as_str(), "call" | "name" | "rename" | "title")
                && (pair[1] == "it" || has(APP_WORDS, &pair[1]))
        });
    if !asks {
        return None;
    }
    // Quoted text is the title as it is; else what follows the last "to",
    // "it" or "called".
    if let Some(quoted) = quoted(change) {
        return Some(quoted);
    }
    let lower = change.to_ascii_lowercase();
    [" to ", " it ", " called ", " named "]
        .iter()
        .filter_map(|marker| lower.rfind(marker).map(|at| at + marker.len()))
        .max()
        .map(|at| change[at..].trim_matches(|c: char| c.is_whitespace() || ".!,;:".contains(c)))
}

/// The text between the first pair of double quotes, straight or curly.
fn quoted(text: &str) -> Option<&str> {
    let start = text.find(['"', '\u{201c}'])?;
    let open = text[start..].chars().next()?.len_utf8();
    let rest = &text[start + open..];
    let end = rest.find(['"', '\u{201d}'])?;
    Some(rest[..end].trim())
}

fn set_title(title: &str, spec: &mut AppSpec) -> Result<String, Refusal> {
    let title = one_line(title, MAX_TITLE_CHARS);
    if !title.chars().any(char::is_alphanumeric) {
        return Err(Refusal::new(
            "it cannot read the new title; put it in quotes: call it \"Family Recipes\"",
        ));
    }
    spec.title = title.clone();
    Ok(format!("page title \"{title}\""))
}

/// "sort by rating, highest first", "the date column should be sortable".
fn sort(words: &[String], spec: &mut AppSpec, shown: &str) -> Result<String, Refusal> {
    let Some(index) = mentioned(words, spec) else {
        return Err(Refusal::new(format!(
            "it cannot tell which field \"{shown}\" sorts by (the fields are {})",
            field_names(spec)
        )));
    };
    let descending = words.iter().any(|w| has(DESCENDING_WORDS, w));
    let field = spec.fields[index].name.clone();
    spec.tweaks.sort = Some(Sort {
        field: field.clone(),
        descending,
    });
    let direction = if descending {
        "descending"
    } else {
        "ascending"
    };
    Ok(format!(
        "the list sorted by {field}, {direction} (the column's header turns it round)"
    ))
}

/// "make title required", "the amount must be required".
fn require(words: &[String], spec: &mut AppSpec, shown: &str) -> Result<String, Refusal> {
    // "not required", "optional", "don't require": the opposite, which no rule does.
    if words
        .iter()
        .any(|w| matches!(w.as_str(), "not" | "no" | "never" | "optional" | "t"))
    {
        return Err(Refusal::new(format!(
            "\"{shown}\" asks for a field to be optional, and it only makes fields required"
        )));
    }
    let Some(index) = mentioned(words, spec) else {
        return Err(Refusal::new(format!(
            "it cannot tell which field \"{shown}\" makes required (the fields are {})",
            field_names(spec)
        )));
    };
    let field = &spec.fields[index];
    if field.kind == FieldKind::Boolean {
        return Err(Refusal::new(format!(
            "{} is a checkbox, and an unticked box is an answer too",
            field.name
        )));
    }
    let name = field.name.clone();
    let already = super::required_fields(spec).contains(&name.as_str());
    if !already && !spec.tweaks.required.contains(&name) {
        spec.tweaks.required.push(name.clone());
    }
    Ok(format!("field {name} required"))
}

/// The colour a request gives the page, if it asks for one; a colour
/// asked for that the scaffolder does not know is refused. After a new
/// title ("call it Blue Recipes") only an explicit word for the page's
/// colour counts.
fn theme(words: &[String], titled: bool, shown: &str) -> Result<Option<&'static str>, Refusal> {
    let about_a_field = words
        .iter()
        .any(|w| matches!(w.as_str(), "field" | "fields" | "column" | "columns"));
    let explicit = words.iter().any(|w| {
        matches!(
            w.as_str(),
            "background" | "theme" | "colour" | "color" | "bg"
        )
    });
    let make_it = words
        .windows(2)
        .any(|pair| matches!(pair[0].as_str(), "make" | "paint" | "turn") && pair[1] == "it");
    let asks = explicit || (!titled && (make_it || words.iter().any(|w| has(THEME_WORDS, w))));
    if about_a_field || !asks {
        return Ok(None);
    }
    let colour = words.iter().find_map(|w| {
        let w = match w.as_str() {
            "grey" => "gray",
            "colour" | "color" => return None,
            other => other,
        };
        colours(w).map(|c| c.name)
    });
    match colour {
        Some(colour) => Ok(Some(colour)),
        None if explicit => {
            let known: Vec<&str> = COLOURS.iter().map(|c| c.name).collect();
            Err(Refusal::new(format!(
                "it cannot read a colour it knows in \"{shown}\" (it knows {})",
                known.join(", ")
            )))
        }
        None => Ok(None),
    }
}

fn theme_of(colour: &'static str, spec: &mut AppSpec) -> String {
    spec.tweaks.theme = Some(colour.to_string());
    format!("a {colour} theme (page background and accents)")
}
