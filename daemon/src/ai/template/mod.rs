//! Offline "template" provider: reads an entity and its fields from a prompt and
//! scaffolds a complete CRUD Flask app, with no model and no network.
//!
//! Everything here is deterministic: the same prompt always gives the same bytes.
//! Prompt text only ever reaches the generated files through escaping (HTML,
//! Markdown); Python and JavaScript see nothing but sanitized identifiers.
//!
//! The files' text is in `daemon/templates/scaffold/`; this module reads the
//! prompt and fills them in. What it understood, and what it refuses, is
//! decided in `understand`; the changes it can make to an app it made are
//! the rules in `rules`, and what they set is kept in `tweaks`.

use serde::{Deserialize, Serialize};

use crate::process::launch;
use crate::projects::slug;
use crate::texts::{self, one_line};

/// What the scaffolder read from a prompt, and the changes made since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSpec {
    /// Human title taken from the prompt; raw text, escape before use.
    pub title: String,
    /// Singular snake_case entity name, e.g. "todo".
    pub entity: String,
    /// Plural of the entity, e.g. "todos"; names the table and the API path.
    pub plural: String,
    /// The entity's fields, in prompt order.
    pub fields: Vec<Field>,
    /// What changes asked for since: colour, order, required fields, renames.
    #[serde(default)]
    pub tweaks: Tweaks,
}

/// One field of the entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// snake_case Python identifier; never a keyword, never "id".
    pub name: String,
    /// Human label shown in the page.
    pub label: String,
    /// What kind of value the field holds.
    pub kind: FieldKind,
}

/// The kind of value a field holds; decides storage, validation and input type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// One line of text.
    Text,
    /// Multi-line text.
    LongText,
    /// Whole number.
    Integer,
    /// Decimal number.
    Number,
    /// true / false.
    Boolean,
    /// Calendar date, stored as YYYY-MM-DD.
    Date,
    /// http(s) URL.
    Url,
    /// Email address.
    Email,
    /// List of short strings, stored as JSON text.
    Tags,
}

impl FieldKind {
    /// The name the generated Python and JavaScript use for this kind.
    fn slug(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::LongText => "longtext",
            FieldKind::Integer => "integer",
            FieldKind::Number => "number",
            FieldKind::Boolean => "boolean",
            FieldKind::Date => "date",
            FieldKind::Url => "url",
            FieldKind::Email => "email",
            FieldKind::Tags => "tags",
        }
    }

    /// The kind in words, for what the scaffolder says it understood.
    fn words(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::LongText => "long text",
            FieldKind::Integer => "whole number",
            FieldKind::Number => "number",
            FieldKind::Boolean => "yes/no",
            FieldKind::Date => "date",
            FieldKind::Url => "link",
            FieldKind::Email => "email",
            FieldKind::Tags => "tags",
        }
    }

    fn sql_type(self) -> &'static str {
        match self {
            FieldKind::Integer | FieldKind::Boolean => "INTEGER",
            FieldKind::Number => "REAL",
            _ => "TEXT",
        }
    }
}

/// Whether a space-separated word list holds `word`.
fn has(list: &str, word: &str) -> bool {
    list.split_ascii_whitespace().any(|w| w == word)
}

mod rules;
mod tweaks;
mod understand;
/// Only the start of a prompt is read, so a huge prompt costs no more than a long one.
mod words;

pub use self::tweaks::{Sort, Tweaks};
pub use self::understand::{answer, understand, Plan, Refusal};
use self::words::*;

const MAX_PROMPT_CHARS: usize = 4000;
const MAX_FIELDS: usize = 12;
const MAX_NAME_LEN: usize = 40;
const MAX_TITLE_CHARS: usize = 60;
const MAX_LABEL_CHARS: usize = 40;
/// A field phrase longer than this is prose, not a field name.
const MAX_FIELD_WORDS: usize = 4;

/// Reads the entity and fields from a prompt; anything it cannot read falls back to a generic "item" with name and notes.
pub fn read_spec(prompt: &str) -> AppSpec {
    read(prompt).spec
}

/// A prompt as read, with what could not be read, so the strict reading
/// in `understand` can refuse what `read_spec` papers over.
struct Reading {
    spec: AppSpec,
    /// Whether the entity was found, not a fallback.
    found_entity: bool,
    /// The words before the field list, lower-case.
    head: Vec<String>,
    /// Phrases of the field list that name no field the app can hold.
    rejected: Vec<String>,
}

fn read(prompt: &str) -> Reading {
    let prompt = clip_chars(prompt, MAX_PROMPT_CHARS);
    let tokens = tokenize(prompt);
    let marker = tokens
        .iter()
        .enumerate()
        .position(|(index, (tok, _))| match tok {
            Tok::Colon => true,
            Tok::Word(word) => has(MARKERS, word) || starts_an_addition(&tokens, index),
            _ => false,
        });
    let (head, mut region) = match marker {
        Some(index) => (&tokens[..index], &tokens[index + 1..]),
        None => (&tokens[..], &tokens[tokens.len()..]),
    };
    let head_words: Vec<&str> = head
        .iter()
        .filter_map(|(tok, _)| match tok {
            Tok::Word(word) => Some(word.as_str()),
            _ => None,
        })
        .collect();
    let found = find_entity(&head_words)
        .or_else(|| match marker {
            // "a recipe box with …": before a field list, the first noun names the thing.
            Some(_) => head_words
                .iter()
                .find(|w| is_noun(w))
                .map(|w| entity_from(w)),
            None => None,
        })
        .or_else(|| {
            // "an app: tasks (title, done)": the thing, and its fields in brackets.
            let (noun, fields) = noun_with_fields(region)?;
            region = fields;
            Some(entity_from(noun))
        })
        .or_else(|| {
            // "a journal with …": a list named by itself keeps entries, events, items.
            head_words.iter().find_map(|w| {
                LIST_ENTITIES
                    .iter()
                    .find(|(list, _)| list == w)
                    .map(|(_, entity)| entity.to_string())
            })
        });
    let found_entity = found.is_some();
    let entity = found.unwrap_or_else(|| "item".to_string());
    let mut rejected = Vec::new();
    let mut fields = read_fields(region, &entity, &mut rejected);
    if marker.is_some_and(|index| starts_an_addition(&tokens, index)) {
        // "a notes app, add a priority field": the fields a notes app has, and a priority.
        let added = std::mem::replace(&mut fields, default_fields(&entity));
        for field in added {
            if fields.len() < MAX_FIELDS && !fields.iter().any(|f| f.name == field.name) {
                fields.push(field);
            }
        }
    }
    if fields.is_empty() {
        fields = default_fields(&entity);
    }
    let plural = pluralize(&entity);
    let head_end = marker.map_or(prompt.len(), |index| tokens[index].1);
    let title = make_title(&prompt[..head_end], &plural);
    let spec = normalize(&AppSpec {
        title,
        entity,
        plural,
        fields,
        tweaks: Tweaks::default(),
    });
    Reading {
        spec,
        found_entity,
        head: head_words.iter().map(|w| w.to_string()).collect(),
        rejected,
    }
}

/// "tasks (title, done)" at the start of a field list: the noun, and the
/// tokens inside its brackets.
fn noun_with_fields(region: &[(Tok, usize)]) -> Option<(&str, &[(Tok, usize)])> {
    let [(Tok::Word(noun), _), (Tok::Open, _), inside @ ..] = region else {
        return None;
    };
    if !is_noun(noun) {
        return None;
    }
    let mut depth = 1usize;
    let end = inside.iter().position(|(tok, _)| {
        match tok {
            Tok::Open => depth += 1,
            Tok::Close => depth -= 1,
            _ => {}
        }
        depth == 0
    })?;
    Some((noun, &inside[..end]))
}

/// Whether the word at `index` is "add" starting a clause: "…, add a
/// priority field", as `improve` asks, but not "an app to add notes".
fn starts_an_addition(tokens: &[(Tok, usize)], index: usize) -> bool {
    let clause_start = index == 0 || tokens[index - 1].0 == Tok::Sep;
    clause_start && matches!(&tokens[index].0, Tok::Word(word) if has(ADD_WORDS, word))
}

/// A prompt token; words are lower-case ASCII, everything else is a break.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    /// Separates list items: `,` `;` newline `&` `+` `/` `|`.
    Sep,
    /// Ends a sentence: `.` `!` `?`.
    End,
    Colon,
    Open,
    Close,
}

/// Splits text into tokens with their byte offsets. Non-ASCII characters only
/// break words, so names stay ASCII and offsets stay valid for slicing.
fn tokenize(text: &str) -> Vec<(Tok, usize)> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut word_start = 0;
    let mut before_word = None;
    let mut previous = None;
    for (index, c) in text.char_indices() {
        if c.is_ascii_alphanumeric() {
            if word.is_empty() {
                word_start = index;
                before_word = previous;
            }
            word.push(c.to_ascii_lowercase());
        } else {
            push_word(&mut tokens, &mut word, word_start, before_word);
            let tok = match c {
                ',' | ';' | '\n' | '&' | '+' | '/' | '|' | '\u{2022}' => Some(Tok::Sep),
                '.' | '!' | '?' => Some(Tok::End),
                ':' => Some(Tok::Colon),
                '(' | '[' | '{' => Some(Tok::Open),
                ')' | ']' | '}' => Some(Tok::Close),
                _ => None,
            };
            if let Some(tok) = tok {
                tokens.push((tok, index));
            }
        }
        previous = Some(c);
    }
    push_word(&mut tokens, &mut word, word_start, before_word);
    tokens
}

fn push_word(
    tokens: &mut Vec<(Tok, usize)>,
    word: &mut String,
    start: usize,
    before: Option<char>,
) {
    if word.is_empty() {
        return;
    }
    let word = std::mem::take(word);
    // The "s" of a possessive ("user's") is not a word of its own.
    if word == "s" && matches!(before, Some('\'' | '\u{2019}')) {
        return;
    }
    // Hyphenated or spaced spellings ("to-do", "e-mail") read as one word.
    if let Some((Tok::Word(last), _)) = tokens.last_mut() {
        let joined = match (last.as_str(), word.as_str()) {
            ("to", "do") => Some("todo"),
            ("to", "dos") => Some("todos"),
            ("e", "mail") => Some("email"),
            ("e", "mails") => Some("emails"),
            _ => None,
        };
        if let Some(joined) = joined {
            *last = joined.to_string();
            return;
        }
    }
    tokens.push((Tok::Word(word), start));
}

/// The longest prefix of `text` with at most `max` characters.
fn clip_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((index, _)) => &text[..index],
        None => text,
    }
}

fn is_noun(word: &str) -> bool {
    // Long "-ed" words are adjectives ("a quoted app"), not things to store.
    let adjective = word.len() >= 6 && word.ends_with("ed");
    !adjective
        && (2..=30).contains(&word.len())
        && word.bytes().all(|b| b.is_ascii_lowercase())
        && !has(FILLERS, word)
        && !has(CONTAINERS, word)
        && !has(TRIGGERS, word)
        && !has(NOT_FIELD_WORDS, word)
}

fn entity_from(word: &str) -> String {
    match ENTITY_ALIASES.iter().find(|(alias, _)| *alias == word) {
        Some((_, entity)) => (*entity).to_string(),
        None => singularize(word),
    }
}

/// Finds the stored thing in the part of the prompt before the field list.
fn find_entity(words: &[&str]) -> Option<String> {
    // "a todo app", "expense tracker": the noun shortly before a container word.
    for (index, word) in words.iter().enumerate() {
        if !has(CONTAINERS, word) {
            continue;
        }
        let start = index.saturating_sub(3);
        if let Some(noun) = words[start..index].iter().rev().find(|w| is_noun(w)) {
            return Some(entity_from(noun));
        }
    }
    // "track my books", "inventory of products": the noun shortly after a verb or "of".
    for (index, word) in words.iter().enumerate() {
        if !has(TRIGGERS, word) {
            continue;
        }
        if let Some(noun) = words[index + 1..].iter().take(3).find(|w| is_noun(w)) {
            return Some(entity_from(noun));
        }
    }
    // A bare "books" or "my recipes"; longer text without the patterns above is unreadable.
    let nouns: Vec<&&str> = words.iter().filter(|w| is_noun(w)).collect();
    match nouns.as_slice() {
        [noun] if words.len() <= 2 => Some(entity_from(noun)),
        _ => None,
    }
}

/// Simple English singular: "books" → "book", "categories" → "category", "boxes" → "box".
fn singularize(word: &str) -> String {
    if let Some((_, singular)) = IRREGULAR.iter().find(|(plural, _)| *plural == word) {
        return (*singular).to_string();
    }
    if has(UNCOUNTABLE, word) || word.len() <= 3 {
        return word.to_string();
    }
    if let Some(stem) = word.strip_suffix("ies") {
        // "pies", "ties": the stem is too short to be a "-y" word.
        if stem.len() <= 1 {
            return format!("{stem}ie");
        }
        return format!("{stem}y");
    }
    for suffix in ["sses", "shes", "ches", "xes", "zzes"] {
        if word.ends_with(suffix) {
            return word[..word.len() - 2].to_string();
        }
    }
    if word.ends_with("ss") || word.ends_with("us") || word.ends_with("is") {
        return word.to_string();
    }
    match word.strip_suffix('s') {
        Some(stem) => stem.to_string(),
        None => word.to_string(),
    }
}

/// Simple English plural: "todo" → "todos", "category" → "categories", "box" → "boxes".
fn pluralize(word: &str) -> String {
    if has(UNCOUNTABLE, word) {
        return word.to_string();
    }
    if let Some((plural, _)) = IRREGULAR.iter().find(|(_, singular)| *singular == word) {
        return (*plural).to_string();
    }
    let bytes = word.as_bytes();
    if let [.., before, b'y'] = bytes {
        if !b"aeiou".contains(before) {
            return format!("{}ies", &word[..word.len() - 1]);
        }
    }
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|suffix| word.ends_with(suffix))
    {
        return format!("{word}es");
    }
    format!("{word}s")
}

/// Reads fields from the part of the prompt after "with" / ":"; phrases
/// that name no field go to `rejected`.
fn read_fields(region: &[(Tok, usize)], entity: &str, rejected: &mut Vec<String>) -> Vec<Field> {
    let mut fields: Vec<Field> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut hints: Vec<String> = Vec::new();
    let mut depth = 0usize;
    // After a second "with" the rest of the phrase describes the field ("notes with markdown").
    let mut skipping = false;
    let mut finish = |words: &mut Vec<String>, hints: &mut Vec<String>, fields: &mut Vec<Field>| {
        match make_field(words, hints, entity) {
            Some(field) if !fields.iter().any(|f| f.name == field.name) => fields.push(field),
            Some(_) => {}
            None if names_something(words) => rejected.push(words.join(" ")),
            None => {}
        }
        words.clear();
        hints.clear();
    };
    for (tok, _) in region {
        if fields.len() >= MAX_FIELDS {
            break;
        }
        // Parenthesised words only hint at the kind: "rating (1-5)", "done (yes/no)".
        if depth > 0 {
            match tok {
                Tok::Open => depth += 1,
                Tok::Close => depth -= 1,
                Tok::Word(word) if hints.len() < 16 => hints.push(word.clone()),
                _ => {}
            }
            continue;
        }
        match tok {
            Tok::Open => depth = 1,
            Tok::Close => {}
            Tok::End => break,
            Tok::Sep | Tok::Colon => {
                finish(&mut words, &mut hints, &mut fields);
                skipping = false;
            }
            Tok::Word(word) if matches!(word.as_str(), "and" | "plus") => {
                finish(&mut words, &mut hints, &mut fields);
                skipping = false;
            }
            Tok::Word(word) if word == "with" => skipping = true,
            Tok::Word(word) => {
                // Long runs without separators are prose; a few spare words let make_field notice.
                if !skipping && words.len() <= MAX_FIELD_WORDS + 4 {
                    words.push(word.clone());
                }
            }
        }
    }
    if fields.len() < MAX_FIELDS {
        finish(&mut words, &mut hints, &mut fields);
    }
    fields
}

/// Whether a phrase that made no field still asked for something: not
/// empty, not only filler ("the following fields").
fn names_something(words: &[String]) -> bool {
    words
        .iter()
        .any(|w| !has(STOP_WORDS, w) && !has(NOISE_WORDS, w) && !has(FILLERS, w))
}

/// Turns one phrase of the field list into a field, or None if it names no field.
fn make_field(words: &[String], hints: &[String], entity: &str) -> Option<Field> {
    let mut words: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| !has(STOP_WORDS, w))
        .collect();
    if words.is_empty()
        || words.iter().all(|w| has(NOISE_WORDS, w))
        || words
            .iter()
            .any(|w| has(PROSE_WORDS, w) || has(NOT_FIELD_WORDS, w))
    {
        return None;
    }
    let mut kind = None;
    // "whether it's done" is a yes/no question about "done".
    if words.len() > 1 && words[0] == "whether" {
        words.remove(0);
        kind = Some(FieldKind::Boolean);
    }
    // "number of pages" stores the count under the counted word.
    if words.len() > 2 && matches!(words[0], "number" | "count" | "num" | "no") && words[1] == "of"
    {
        words.drain(..2);
        kind = Some(FieldKind::Integer);
    }
    // "prep time in minutes" → "prep_time_minutes"; "in stock" keeps its "in".
    let mut index = 0;
    words.retain(|w| {
        index += 1;
        index == 1 || *w != "in"
    });
    let kind = kind.unwrap_or_else(|| infer_kind(&words, hints));
    while words.len() > 1 && words.last().is_some_and(|w| has(KIND_SUFFIXES, w)) {
        words.pop();
    }
    // "add fields priority and …": the word for a field is not its name.
    while words.len() > 1 && has(KIND_SUFFIXES, words[0]) {
        words.remove(0);
    }
    while words.len() > 1 && (words[0] == entity || singularize(words[0]) == entity) {
        words.remove(0);
    }
    if words.len() > MAX_FIELD_WORDS {
        return None;
    }
    let name = safe_name(&words.join("_"))?;
    Some(Field {
        label: label_from_words(&words),
        name,
        kind,
    })
}

/// Infers a field's kind from its words: phrase rules first, then hints, then the
/// last word that means something ("last done *date*" is a date).
fn infer_kind(words: &[&str], hints: &[String]) -> FieldKind {
    if words.windows(2).any(|pair| pair == ["in", "stock"]) {
        return FieldKind::Boolean;
    }
    if words.len() > 1 && matches!(words[0], "is" | "has" | "was" | "are" | "can") {
        return FieldKind::Boolean;
    }
    if let Some(kind) = hints.iter().find_map(|hint| word_kind(hint)) {
        return kind;
    }
    if words.iter().any(|w| has(TEXT_WORDS, w)) {
        return FieldKind::Text;
    }
    words
        .iter()
        .rev()
        .find_map(|w| word_kind(w))
        .unwrap_or(FieldKind::Text)
}

fn word_kind(word: &str) -> Option<FieldKind> {
    let tables: [(&str, FieldKind); 8] = [
        (DATE_WORDS, FieldKind::Date),
        (BOOLEAN_WORDS, FieldKind::Boolean),
        (INTEGER_WORDS, FieldKind::Integer),
        (NUMBER_WORDS, FieldKind::Number),
        (URL_WORDS, FieldKind::Url),
        (EMAIL_WORDS, FieldKind::Email),
        (TAGS_WORDS, FieldKind::Tags),
        (LONG_TEXT_WORDS, FieldKind::LongText),
    ];
    tables
        .iter()
        .find(|(words, _)| has(words, word))
        .map(|(_, kind)| *kind)
}

/// Fields for a prompt that names an entity but lists none.
fn default_fields(entity: &str) -> Vec<Field> {
    use FieldKind::*;
    let fields: &[(&str, FieldKind)] = match entity {
        "note" => &[("title", Text), ("body", LongText)],
        "todo" | "task" | "chore" => &[("title", Text), ("done", Boolean), ("due_date", Date)],
        "bookmark" | "link" => &[("title", Text), ("url", Url), ("tags", Tags)],
        "contact" | "person" | "friend" => &[("name", Text), ("email", Email), ("phone", Text)],
        "book" => &[("title", Text), ("author", Text), ("pages", Integer)],
        "recipe" => &[
            ("name", Text),
            ("ingredients", LongText),
            ("instructions", LongText),
        ],
        "expense" => &[("description", Text), ("amount", Number), ("date", Date)],
        "movie" | "film" | "show" => &[("title", Text), ("year", Integer), ("watched", Boolean)],
        "habit" => &[("name", Text), ("streak", Integer), ("last_done", Date)],
        "product" => &[("name", Text), ("price", Number), ("quantity", Integer)],
        "event" => &[("title", Text), ("date", Date), ("location", Text)],
        _ => &[("name", Text), ("notes", LongText)],
    };
    fields
        .iter()
        .map(|(name, kind)| Field {
            name: (*name).to_string(),
            label: label_from_words(&name.split('_').collect::<Vec<_>>()),
            kind: *kind,
        })
        .collect()
}

/// "due date" → "Due date"; short acronyms are upper-cased ("sku" → "SKU").
fn label_from_words(words: &[&str]) -> String {
    let mut label = String::new();
    for (index, word) in words.iter().filter(|w| !w.is_empty()).enumerate() {
        if index > 0 {
            label.push(' ');
        }
        if matches!(
            *word,
            "id" | "sku" | "url" | "isbn" | "api" | "dob" | "vin" | "ip"
        ) {
            label.push_str(&word.to_ascii_uppercase());
        } else if index == 0 {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                label.extend(first.to_uppercase());
                label.push_str(chars.as_str());
            }
        } else {
            label.push_str(word);
        }
    }
    label
}

/// Lower-case ASCII words of `text` joined by "_", at most MAX_NAME_LEN bytes.
fn identifier(text: &str) -> String {
    slug::join(&slug::words(text), '_', MAX_NAME_LEN)
}

/// A field name that is a valid, non-reserved Python and SQL identifier, or None.
fn safe_name(text: &str) -> Option<String> {
    let mut name = identifier(text);
    if name.is_empty() {
        return None;
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name = format!("field_{name}");
    }
    if has(PYTHON_KEYWORDS, name.as_str()) || has(SQL_KEYWORDS, name.as_str()) {
        name.push_str("_value");
    }
    Some(name)
}

/// "Todo app" from "a todo app with ...": the first sentence before the field list.
fn make_title(head: &str, plural: &str) -> String {
    let sentence = head
        .split(['\n', '.', '!', '?'])
        .find(|s| s.chars().any(char::is_alphanumeric))
        .unwrap_or("");
    let mut words: Vec<&str> = sentence.split_whitespace().collect();
    const SKIP: &str = "please build make create write generate me i want need a an the simple \
    small basic little quick";
    while words.len() > 1 && has(SKIP, &words[0].to_ascii_lowercase()) {
        words.remove(0);
    }
    let title = one_line(&words.join(" "), MAX_TITLE_CHARS);
    let title = title.trim_end_matches([':', ',', ';', '-', ' ']);
    if !title.chars().any(char::is_alphanumeric) {
        return label_from_words(&plural.split('_').collect::<Vec<_>>());
    }
    let mut chars = title.chars();
    match chars.next() {
        Some(first) if first.is_ascii_lowercase() => {
            format!("{}{}", first.to_ascii_uppercase(), chars.as_str())
        }
        _ => title.to_string(),
    }
}

/// Makes any spec safe to render: identifiers sanitized, names unique and not
/// reserved, at most MAX_FIELDS fields, fallbacks for anything empty.
fn normalize(spec: &AppSpec) -> AppSpec {
    let mut entity = identifier(&spec.entity);
    if entity.is_empty() {
        entity = "item".to_string();
    } else if entity.starts_with(|c: char| c.is_ascii_digit()) {
        entity = format!("item_{entity}");
    }
    let mut plural = identifier(&spec.plural);
    if plural.is_empty() {
        plural = pluralize(&entity);
    } else if plural.starts_with(|c: char| c.is_ascii_digit()) {
        plural = format!("items_{plural}");
    }
    // SQLite reserves table names starting with "sqlite_".
    if plural.starts_with("sqlite") {
        plural = format!("app_{plural}");
    }
    let mut fields: Vec<Field> = Vec::new();
    for field in &spec.fields {
        if fields.len() >= MAX_FIELDS {
            break;
        }
        let Some(name) = safe_name(&field.name) else {
            continue;
        };
        if fields.iter().any(|f| f.name == name) {
            continue;
        }
        let mut label = one_line(&field.label, MAX_LABEL_CHARS);
        if label.is_empty() {
            label = label_from_words(&name.split('_').collect::<Vec<_>>());
        }
        fields.push(Field {
            name,
            label,
            kind: field.kind,
        });
    }
    if fields.is_empty() {
        fields = default_fields(&entity);
    }
    let tweaks = spec.tweaks.normalized(&fields);
    let mut title = one_line(&spec.title, MAX_TITLE_CHARS);
    if !title.chars().any(char::is_alphanumeric) {
        title = label_from_words(&plural.split('_').collect::<Vec<_>>());
    }
    AppSpec {
        title,
        entity,
        plural,
        fields,
        tweaks,
    }
}

/// Renders the app's files (path, content), sorted by path.
pub fn render_files(spec: &AppSpec, prompt: &str) -> Vec<(String, String)> {
    // Callers may build a spec by hand, so sanitize it again; a no-op for read_spec's output.
    let spec = normalize(spec);
    let view = ScaffoldView::of(&spec, prompt);
    let mut files = vec![
        ("README.md", texts::render("scaffold/README.md", &view)),
        ("app.py", texts::render("scaffold/app.py", &view)),
        ("requirements.txt", "flask>=3.0\npytest>=8\n".to_string()),
        (
            "templates/index.html",
            texts::render("scaffold/index.html", &view),
        ),
        ("test_app.py", texts::render("scaffold/test_app.py", &view)),
        (understand::SPEC_FILE, understand::spec_file(&spec)),
    ];
    files.sort_by(|a, b| a.0.cmp(b.0));
    files
        .into_iter()
        .map(|(path, content)| (path.to_string(), content))
        .collect()
}

/// The whole reply as a model would write it: for each file a `### path` line followed by a fenced code block.
pub fn render_reply(prompt: &str) -> String {
    reply_of(&read_spec(prompt), prompt)
}

/// `spec`'s files as a model's reply.
fn reply_of(spec: &AppSpec, prompt: &str) -> String {
    let mut reply = String::new();
    for (path, content) in render_files(spec, prompt) {
        let language = match path.rsplit('.').next() {
            Some("py") => "python",
            Some("html") => "html",
            Some("md") => "markdown",
            _ => "text",
        };
        reply.push_str(&format!("### {path}\n````{language}\n{content}"));
        if !content.ends_with('\n') {
            reply.push('\n');
        }
        reply.push_str("````\n\n");
    }
    reply
}

/// What the templates under `daemon/templates/scaffold/` are rendered with.
/// Identifiers are safe as they are; `title`, labels and `prompt` are raw
/// text that the templates escape for their file type.
#[derive(Serialize)]
struct ScaffoldView<'a> {
    title: &'a str,
    /// "Todos", the heading of app.py's docstring.
    heading: String,
    plural: &'a str,
    /// The plural and the entity as words: "due dates", "due date".
    plural_words: String,
    entity_words: String,
    /// How the app is started, as people type it.
    run_command: String,
    /// The fields the API insists on.
    required: Vec<&'a str>,
    fields: Vec<FieldView<'a>>,
    /// app.py's SQL constants, each a whole Python assignment.
    sql_constants: Vec<String>,
    /// The list's order, when a change asked for one.
    sort: Option<SortView<'a>>,
    /// The page's colours, when a change asked for them.
    theme: Option<tweaks::Colours>,
    /// Columns renamed by changes, (old, new) in order, for databases made
    /// before.
    renamed: Vec<(&'a str, &'a str)>,
    prompt: &'a str,
}

/// The list's order as the templates see it.
#[derive(Serialize)]
struct SortView<'a> {
    field: &'a str,
    label: &'a str,
    /// "asc" or "desc": the default; the other is asked with `?order=`.
    order: &'static str,
    other: &'static str,
}

/// One field as the templates see it.
#[derive(Serialize)]
struct FieldView<'a> {
    name: &'a str,
    label: &'a str,
    kind: &'static str,
    sql_type: &'static str,
    required: bool,
    /// Python literals for the tests: a first value, an updated one, and
    /// one of the wrong type.
    sample: String,
    updated: String,
    bad: String,
}

impl<'a> ScaffoldView<'a> {
    fn of(spec: &'a AppSpec, prompt: &'a str) -> Self {
        let required = required_fields(spec);
        let fields = spec
            .fields
            .iter()
            .map(|field| {
                let (sample, updated, bad) = sample_values(field);
                FieldView {
                    name: &field.name,
                    label: &field.label,
                    kind: field.kind.slug(),
                    sql_type: field.kind.sql_type(),
                    required: required.contains(&field.name.as_str()),
                    sample,
                    updated,
                    bad,
                }
            })
            .collect();
        ScaffoldView {
            title: &spec.title,
            heading: label_from_words(&[&words_of(&spec.plural)]),
            plural: &spec.plural,
            plural_words: words_of(&spec.plural),
            entity_words: words_of(&spec.entity),
            run_command: launch::shell_line(&crate::process::shape::Target::convention(), "5000"),
            required,
            fields,
            sql_constants: sql_constants(spec),
            sort: spec.tweaks.sort.as_ref().and_then(|sort| {
                let field = spec.fields.iter().find(|f| f.name == sort.field)?;
                let (order, other) = match sort.descending {
                    true => ("desc", "asc"),
                    false => ("asc", "desc"),
                };
                Some(SortView {
                    field: &field.name,
                    label: &field.label,
                    order,
                    other,
                })
            }),
            theme: spec.tweaks.theme.as_deref().and_then(tweaks::colours),
            renamed: spec
                .tweaks
                .renamed
                .iter()
                .map(|(old, new)| (old.as_str(), new.as_str()))
                .collect(),
            prompt,
        }
    }
}

/// The fields the API insists on: the first one that is not a checkbox (an
/// unchecked box is a valid answer), and those a change made required.
fn required_fields(spec: &AppSpec) -> Vec<&str> {
    spec.fields
        .iter()
        .enumerate()
        .filter(|(index, f)| {
            let first = spec
                .fields
                .iter()
                .position(|f| f.kind != FieldKind::Boolean)
                == Some(*index);
            first || spec.tweaks.required.contains(&f.name)
        })
        .map(|(_, f)| f.name.as_str())
        .collect()
}

/// "due_date" → "due date": identifiers as words for messages and buttons.
fn words_of(name: &str) -> String {
    name.replace('_', " ")
}

/// app.py's SQL statements as Python constants. Columns are fixed
/// identifiers, so every statement is a constant and values always travel as
/// parameters.
fn sql_constants(spec: &AppSpec) -> Vec<String> {
    let table = &spec.plural;
    let quoted = |f: &Field| format!("\"{}\"", f.name);
    let columns: Vec<String> = spec.fields.iter().map(quoted).collect();
    let columns = columns.join(", ");
    let definitions: Vec<String> = spec
        .fields
        .iter()
        .map(|f| format!("\"{}\" {}", f.name, f.kind.sql_type()))
        .collect();
    let placeholders = vec!["?"; spec.fields.len()].join(", ");
    let assignments: Vec<String> = spec
        .fields
        .iter()
        .map(|f| format!("\"{}\" = ?", f.name))
        .collect();
    [
        (
            "CREATE_SQL",
            format!(
                "CREATE TABLE IF NOT EXISTS \"{table}\" (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, {})",
                definitions.join(", ")
            ),
        ),
        ("TABLE_INFO_SQL", format!("PRAGMA table_info(\"{table}\")")),
        (
            "SELECT_ALL_SQL",
            format!(
                "SELECT \"id\", {columns} FROM \"{table}\" ORDER BY {}",
                order_by(spec, false)
            ),
        ),
        (
            "SELECT_ALL_REVERSED_SQL",
            format!(
                "SELECT \"id\", {columns} FROM \"{table}\" ORDER BY {}",
                order_by(spec, true)
            ),
        ),
        (
            "SELECT_ONE_SQL",
            format!("SELECT \"id\", {columns} FROM \"{table}\" WHERE \"id\" = ?"),
        ),
        (
            "INSERT_SQL",
            format!("INSERT INTO \"{table}\" ({columns}) VALUES ({placeholders})"),
        ),
        (
            "UPDATE_SQL",
            format!(
                "UPDATE \"{table}\" SET {} WHERE \"id\" = ?",
                assignments.join(", ")
            ),
        ),
        (
            "DELETE_SQL",
            format!("DELETE FROM \"{table}\" WHERE \"id\" = ?"),
        ),
    ]
    .iter()
    // Without a sort field, both orders are by id: one constant is enough.
    .filter(|(target, _)| *target != "SELECT_ALL_REVERSED_SQL" || spec.tweaks.sort.is_some())
    .map(|(target, sql)| py_sql(target, sql))
    .collect()
}

/// The list's ORDER BY: by the sort field, empty values last and ties by
/// id, or by id alone; `reversed` turns the sort field's direction.
fn order_by(spec: &AppSpec, reversed: bool) -> String {
    let Some(sort) = &spec.tweaks.sort else {
        return "\"id\"".to_string();
    };
    let direction = match sort.descending != reversed {
        true => "DESC",
        false => "ASC",
    };
    let field = &sort.field;
    format!("\"{field}\" IS NULL, \"{field}\" {direction}, \"id\"")
}

/// A Python assignment of a constant SQL string, wrapped when long. SQL built here
/// only holds identifiers and punctuation, never quotes of the Python kind.
fn py_sql(target: &str, sql: &str) -> String {
    if target.len() + sql.len() + 5 <= 88 {
        return format!("{target} = '{sql}'");
    }
    let mut out = format!("{target} = (\n");
    let mut line = String::new();
    for piece in sql.split_inclusive(", ") {
        if !line.is_empty() && line.len() + piece.len() > 72 {
            out.push_str(&format!("    '{line}'\n"));
            line.clear();
        }
        line.push_str(piece);
    }
    out.push_str(&format!("    '{line}'\n)"));
    out
}

/// Python literals for tests: a first value, an updated value and a value of the wrong type.
fn sample_values(field: &Field) -> (String, String, String) {
    let words = words_of(&field.name);
    let (first, second, bad) = match field.kind {
        FieldKind::Text => (
            format!("\"first {words}\""),
            format!("\"second {words}\""),
            "123",
        ),
        FieldKind::LongText => (
            format!("\"first {words}\\nsecond line\""),
            format!("\"updated {words}\""),
            "[\"not\", \"text\"]",
        ),
        FieldKind::Integer => ("3".to_string(), "7".to_string(), "\"three\""),
        FieldKind::Number => ("2.5".to_string(), "4.75".to_string(), "\"lots\""),
        FieldKind::Boolean => ("True".to_string(), "False".to_string(), "\"maybe\""),
        FieldKind::Date => (
            "\"2024-01-31\"".to_string(),
            "\"2024-02-29\"".to_string(),
            "\"not a date\"",
        ),
        FieldKind::Url => (
            "\"https://example.com/first\"".to_string(),
            "\"https://example.org/second\"".to_string(),
            "\"javascript:alert(1)\"",
        ),
        FieldKind::Email => (
            "\"first@example.com\"".to_string(),
            "\"second@example.org\"".to_string(),
            "\"nobody\"",
        ),
        FieldKind::Tags => (
            "[\"red\", \"blue\"]".to_string(),
            "[\"green\"]".to_string(),
            "42",
        ),
    };
    (first, second, bad.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::texts::escape_html;
    use FieldKind::*;

    const EXAMPLES: &[&str] = &[
        "a todo app with title, due date and done flag",
        "a bookmark manager with url, title and tags",
        "a notes app",
        "track my books: title, author, pages, rating",
        "expense tracker with amount, category, date and description",
        "a contact list with name, email, phone",
        "recipe app with name, ingredients, instructions, prep time in minutes",
        "inventory of products with sku, name, price, quantity, in stock",
        "habit tracker with habit name, streak and last done date",
        "workout log with exercise, sets, reps, weight",
        "movie watchlist with title, year, watched and rating",
        "something completely unreadable ☃☃☃",
        "",
    ];

    const HOSTILE: &[&str] = &[
        "a \"quoted\" app with 'x', \"\"\" and </script>",
        "app with class, def, import, id, select, from fields",
        "a <script>alert(1)</script> tracker with <b>name</b>, \"notes\"",
        "a back\\slash app with path\\to\\file, c:\\temp",
        "a {{ config }} app with {% raw %}, {# x #}",
        "```` fence ```` app with ````, `code`",
        "@@TITLE@@ app with @@PLURAL@@",
        "a ☃ app with ☃, ünïcödé, 名前, emoji 🎉 count",
        "'''\"\"\"\\n\\r\\0 app",
        "a todo app\nwith\ttitle\r\nand due date",
        "1234 app with 99 problems, 2fa enabled",
        "with",
        ":",
        ",,,,",
        "(((((",
        ")))))",
        "a app with ((((title, body",
        "DROP TABLE todos; -- app with name'); DROP TABLE x;--",
        "a sqlite_master app with rowid, oid, order, group, values",
        "a true app with none, true, false, null, lambda, yield",
    ];

    fn shape(spec: &AppSpec) -> Vec<(&str, FieldKind)> {
        spec.fields
            .iter()
            .map(|f| (f.name.as_str(), f.kind))
            .collect()
    }

    fn assert_spec(prompt: &str, entity: &str, plural: &str, fields: &[(&str, FieldKind)]) {
        let spec = read_spec(prompt);
        assert_eq!(spec.entity, entity, "entity of {prompt:?}");
        assert_eq!(spec.plural, plural, "plural of {prompt:?}");
        assert_eq!(shape(&spec), fields, "fields of {prompt:?}");
    }

    fn is_identifier(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= MAX_NAME_LEN + 6
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !name.contains("__")
            && !name.ends_with('_')
    }

    /// Checks every invariant a rendered spec relies on.
    fn assert_safe_spec(spec: &AppSpec) {
        assert!(is_identifier(&spec.entity), "entity {:?}", spec.entity);
        assert!(is_identifier(&spec.plural), "plural {:?}", spec.plural);
        assert!(!spec.fields.is_empty() && spec.fields.len() <= MAX_FIELDS);
        for field in &spec.fields {
            assert!(is_identifier(&field.name), "name {:?}", field.name);
            assert!(!has(PYTHON_KEYWORDS, field.name.as_str()));
            assert!(!has(SQL_KEYWORDS, field.name.as_str()));
            assert_ne!(field.name, "id");
            assert!(!field.label.is_empty());
        }
        let mut names: Vec<&str> = spec.fields.iter().map(|f| f.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), spec.fields.len(), "duplicate names");
        assert!(!spec.title.is_empty() && spec.title.chars().count() <= MAX_TITLE_CHARS);
        assert!(!spec.title.contains(['\n', '\r']));
    }

    fn file<'a>(files: &'a [(String, String)], path: &str) -> &'a str {
        &files.iter().find(|(p, _)| p == path).expect(path).1
    }

    /// Splits a reply back into files the way the consuming parser does.
    fn parse_reply(reply: &str) -> Vec<(String, String)> {
        let mut files = Vec::new();
        let mut lines = reply.lines();
        while let Some(line) = lines.next() {
            if line.is_empty() {
                continue;
            }
            let path = line.strip_prefix("### ").expect("path line").to_string();
            let fence = lines.next().expect("fence");
            assert!(fence.starts_with("````") && fence.len() > 4, "{fence}");
            let mut content = String::new();
            for line in lines.by_ref() {
                if line == "````" {
                    break;
                }
                assert!(!line.starts_with("````"), "fence inside {path}");
                content.push_str(line);
                content.push('\n');
            }
            files.push((path, content));
        }
        files
    }

    #[test]
    fn reads_todo_app() {
        assert_spec(
            EXAMPLES[0],
            "todo",
            "todos",
            &[("title", Text), ("due_date", Date), ("done", Boolean)],
        );
        assert_eq!(read_spec(EXAMPLES[0]).title, "Todo app");
        assert_eq!(
            read_spec("Please build me a simple todo app. It has a title").title,
            "Todo app"
        );
        // Word lists match whole words only.
        assert!(has(FILLERS, "a") && !has(FILLERS, "ab") && !has(FILLERS, "an the"));
    }

    #[test]
    fn reads_bookmark_manager() {
        assert_spec(
            EXAMPLES[1],
            "bookmark",
            "bookmarks",
            &[("url", Url), ("title", Text), ("tags", Tags)],
        );
    }

    #[test]
    fn notes_app_gets_default_fields() {
        assert_spec(
            EXAMPLES[2],
            "note",
            "notes",
            &[("title", Text), ("body", LongText)],
        );
    }

    #[test]
    fn reads_books_after_colon() {
        assert_spec(
            EXAMPLES[3],
            "book",
            "books",
            &[
                ("title", Text),
                ("author", Text),
                ("pages", Integer),
                ("rating", Number),
            ],
        );
        assert_eq!(read_spec(EXAMPLES[3]).title, "Track my books");
    }

    #[test]
    fn reads_expense_tracker() {
        assert_spec(
            EXAMPLES[4],
            "expense",
            "expenses",
            &[
                ("amount", Number),
                ("category", Text),
                ("date", Date),
                ("description", LongText),
            ],
        );
    }

    #[test]
    fn reads_contact_list() {
        assert_spec(
            EXAMPLES[5],
            "contact",
            "contacts",
            &[("name", Text), ("email", Email), ("phone", Text)],
        );
    }

    #[test]
    fn reads_recipe_app() {
        assert_spec(
            EXAMPLES[6],
            "recipe",
            "recipes",
            &[
                ("name", Text),
                ("ingredients", LongText),
                ("instructions", LongText),
                ("prep_time_minutes", Integer),
            ],
        );
    }

    #[test]
    fn reads_inventory_of_products() {
        assert_spec(
            EXAMPLES[7],
            "product",
            "products",
            &[
                ("sku", Text),
                ("name", Text),
                ("price", Number),
                ("quantity", Integer),
                ("in_stock", Boolean),
            ],
        );
    }

    #[test]
    fn reads_habit_tracker_and_drops_entity_prefix() {
        assert_spec(
            EXAMPLES[8],
            "habit",
            "habits",
            &[
                ("name", Text),
                ("streak", Integer),
                ("last_done_date", Date),
            ],
        );
    }

    #[test]
    fn reads_workout_log() {
        assert_spec(
            EXAMPLES[9],
            "workout",
            "workouts",
            &[
                ("exercise", Text),
                ("sets", Integer),
                ("reps", Integer),
                ("weight", Number),
            ],
        );
    }

    #[test]
    fn reads_movie_watchlist() {
        assert_spec(
            EXAMPLES[10],
            "movie",
            "movies",
            &[
                ("title", Text),
                ("year", Integer),
                ("watched", Boolean),
                ("rating", Number),
            ],
        );
    }

    #[test]
    fn unreadable_and_empty_prompts_fall_back_to_items() {
        for prompt in [
            EXAMPLES[11],
            EXAMPLES[12],
            "   ",
            "☃☃☃",
            "hello there friend",
        ] {
            assert_spec(
                prompt,
                "item",
                "items",
                &[("name", Text), ("notes", LongText)],
            );
        }
        assert_eq!(read_spec("").title, "Items");
        assert_eq!(read_spec("☃☃☃").title, "Items");
    }

    #[test]
    fn reads_other_phrasings() {
        let cases: &[(&str, &str)] = &[
            ("an app to track my workouts", "workout"),
            ("a simple to-do list", "todo"),
            (
                "keep track of my plants with name and last watered date",
                "plant",
            ),
            ("a list of boxes", "box"),
            ("categories manager", "category"),
            ("Build me a Flask app for managing recipes", "recipe"),
            ("books", "book"),
            ("my expenses", "expense"),
            ("a shopping list with quantity", "item"),
            ("a people directory", "person"),
            ("a \"quoted\" app", "item"),
        ];
        for (prompt, entity) in cases {
            assert_eq!(read_spec(prompt).entity, *entity, "{prompt}");
        }
    }

    #[test]
    fn infers_kinds_from_words() {
        let spec = read_spec(
            "a gadget app with birthday, is active, website link, email address, labels, \
             phone number, number of pages, summary, cost, whether it's paid, rating (1-5), \
             finished (yes/no)",
        );
        assert_eq!(
            shape(&spec),
            [
                ("birthday", Date),
                ("is_active", Boolean),
                ("website_link", Url),
                ("email_address", Email),
                ("labels", Tags),
                ("phone_number", Text),
                ("pages", Integer),
                ("summary", LongText),
                ("cost", Number),
                ("paid", Boolean),
                ("rating", Number),
                ("finished", Boolean),
            ]
        );
        assert_eq!(spec.entity, "gadget");
        assert_eq!(
            shape(&read_spec("a todo app with a dark theme")),
            [("title", Text), ("done", Boolean), ("due_date", Date)]
        );
    }

    #[test]
    fn keywords_and_id_are_renamed() {
        let spec = read_spec("app with class, def, import, id, select, from fields");
        assert_eq!(spec.entity, "item");
        let names: Vec<&str> = spec.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "class_value",
                "def_value",
                "import_value",
                "id_value",
                "select_value",
                "from_value"
            ]
        );
        assert_eq!(spec.fields[3].label, "ID");
        assert_eq!(safe_name("rowid").as_deref(), Some("rowid_value"));
        assert_eq!(safe_name("2fa").as_deref(), Some("field_2fa"));
        assert_eq!(safe_name("☃"), None);
    }

    #[test]
    fn fields_are_deduped_and_capped() {
        let spec = read_spec("a todo app with title, title, Title, due date, due-date");
        assert_eq!(shape(&spec), [("title", Text), ("due_date", Date)]);
        let many: Vec<String> = (0..40).map(|i| format!("field{i}")).collect();
        let spec = read_spec(&format!("a thing app with {}", many.join(", ")));
        assert_eq!(spec.fields.len(), MAX_FIELDS);
        assert_eq!(spec.fields[11].name, "field11");
    }

    #[test]
    fn singular_and_plural() {
        for (plural, singular) in [
            ("books", "book"),
            ("categories", "category"),
            ("boxes", "box"),
            ("notes", "note"),
            ("todos", "todo"),
            ("movies", "movie"),
            ("glasses", "glass"),
            ("series", "series"),
            ("people", "person"),
            ("status", "status"),
        ] {
            assert_eq!(singularize(plural), singular, "{plural}");
        }
        for (singular, plural) in [
            ("todo", "todos"),
            ("category", "categories"),
            ("box", "boxes"),
            ("day", "days"),
            ("match", "matches"),
            ("person", "people"),
            ("movie", "movies"),
            ("series", "series"),
        ] {
            assert_eq!(pluralize(singular), plural, "{singular}");
        }
    }

    #[test]
    fn an_added_field_joins_the_fields_the_app_had() {
        // `improve` asks the scaffolder with the project's prompt, a comma and the change.
        assert_spec(
            "a todo app with title, due date and done flag, add a priority field",
            "todo",
            "todos",
            &[
                ("title", Text),
                ("due_date", Date),
                ("done", Boolean),
                ("priority", Integer),
            ],
        );
        assert_spec(
            "a notes app, add a priority field",
            "note",
            "notes",
            &[("title", Text), ("body", LongText), ("priority", Integer)],
        );
        assert_spec(
            "a todo app with title, add fields priority and owner email",
            "todo",
            "todos",
            &[
                ("title", Text),
                ("priority", Integer),
                ("owner_email", Email),
            ],
        );
        // "add" inside a sentence is a verb of the app, not an addition.
        assert_eq!(
            read_spec("a notes app to add notes quickly").fields,
            read_spec("a notes app").fields
        );
    }

    #[test]
    fn same_prompt_gives_same_bytes() {
        for prompt in EXAMPLES.iter().chain(HOSTILE) {
            assert_eq!(read_spec(prompt), read_spec(prompt));
            assert_eq!(render_reply(prompt), render_reply(prompt));
        }
    }

    #[test]
    fn specs_are_always_safe_and_normalized() {
        for prompt in EXAMPLES.iter().chain(HOSTILE) {
            let spec = read_spec(prompt);
            assert_safe_spec(&spec);
            assert_eq!(normalize(&spec), spec, "{prompt:?}");
        }
    }

    #[test]
    fn hostile_prompts_never_panic() {
        let huge = "with title, ".repeat(200_000);
        let mixed: String = (0..20_000u32)
            .filter_map(char::from_u32)
            .chain("\"'\\`{}<>".chars())
            .collect();
        let long_word = "a".repeat(10_000);
        let mut prompts: Vec<String> = HOSTILE.iter().map(|p| p.to_string()).collect();
        prompts.extend([
            huge,
            mixed,
            format!("{long_word} app with {long_word}"),
            "\u{0}\u{1}\u{7f}".to_string(),
            "é".repeat(MAX_PROMPT_CHARS + 3),
        ]);
        for prompt in &prompts {
            let spec = read_spec(prompt);
            assert_safe_spec(&spec);
            let reply = render_reply(prompt);
            assert_eq!(parse_reply(&reply), render_files(&spec, prompt));
        }
    }

    #[test]
    fn renders_the_six_files_sorted() {
        let files = render_files(&read_spec(EXAMPLES[0]), EXAMPLES[0]);
        let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "README.md",
                "app.py",
                "requirements.txt",
                "scaffold.json",
                "templates/index.html",
                "test_app.py"
            ]
        );
        assert_eq!(file(&files, "requirements.txt"), "flask>=3.0\npytest>=8\n");
        let app = file(&files, "app.py");
        assert!(app.contains("app = create_app()\n"));
        assert!(app.contains("@bp.get(\"/api/todos\")"));
        assert!(app.contains("@bp.delete(\"/api/todos/<int:record_id>\")"));
        assert!(app.contains("    (\"title\", \"text\", True),\n"));
        assert!(app.contains("    (\"done\", \"boolean\", False),\n"));
        assert!(app.contains(
            "INSERT INTO \"todos\" (\"title\", \"due_date\", \"done\") VALUES (?, ?, ?)"
        ));
        assert!(app.contains("APP_DATABASE"));
        // It works without it: `ps` names no missing setting.
        let contents: Vec<appforge_shared::protocol::FileContent> = files
            .iter()
            .map(|(path, content)| {
                appforge_shared::protocol::FileContent::new(path.as_str(), content.as_str())
            })
            .collect();
        assert!(crate::process::reads::needed(&contents).is_empty());
        let html = file(&files, "templates/index.html");
        assert!(html.contains("<title>Todo app</title>"));
        assert!(html.contains("type=\"date\""));
        assert!(html.contains("type=\"checkbox\""));
        assert!(html.contains("const API = \"/api/todos\";"));
        assert!(!html.contains("innerHTML"));
        assert!(file(&files, "test_app.py").contains("API = \"/api/todos\""));
        assert!(file(&files, "README.md").starts_with("# Todo app\n"));
    }

    #[test]
    fn inputs_are_typed_by_kind() {
        let spec =
            read_spec("a thing app with name, notes, count, price, done, date, url, email, tags");
        let files = render_files(&spec, "");
        let html = file(&files, "templates/index.html");
        for needle in [
            "id=\"field-name\" name=\"name\" type=\"text\" required>",
            "<textarea id=\"field-notes\"",
            "type=\"number\" step=\"1\"",
            "type=\"number\" step=\"any\"",
            "id=\"field-done\" name=\"done\" type=\"checkbox\">",
            "type=\"date\"",
            "type=\"url\"",
            "type=\"email\"",
            "placeholder=\"comma, separated, tags\"",
        ] {
            assert!(html.contains(needle), "{needle}");
        }
    }

    #[test]
    fn prompt_text_is_escaped_and_kept_out_of_code() {
        for prompt in HOSTILE {
            let spec = read_spec(prompt);
            let files = render_files(&spec, prompt);
            let html = file(&files, "templates/index.html");
            let title = escape_html(&spec.title);
            assert!(
                html.contains(&format!("<title>{title}</title>")),
                "{prompt}"
            );
            assert!(html.contains(&format!("<h1>{title}</h1>")));
            // Jinja renders the page: no template syntax may survive.
            for delimiter in ["{{", "{%", "{#"] {
                assert!(
                    !html.contains(delimiter),
                    "{delimiter} in page for {prompt}"
                );
            }
            assert_eq!(html.matches("<script").count(), 1, "{prompt}");
            assert_eq!(html.matches("</script").count(), 1, "{prompt}");
            // Python only ever sees the spec's identifiers, never prompt text.
            let app = file(&files, "app.py");
            let tests = file(&files, "test_app.py");
            let generic = render_files(
                &AppSpec {
                    title: "X".to_string(),
                    ..spec.clone()
                },
                "",
            );
            assert_eq!(app, file(&generic, "app.py"), "{prompt}");
            assert_eq!(tests, file(&generic, "test_app.py"), "{prompt}");
            for (path, content) in &files {
                assert!(!content.contains("````"), "fence in {path}");
                if !prompt.contains("@@") {
                    assert!(!content.contains("@@"), "marker left in {path}");
                }
            }
        }
        let spec = read_spec("a {{ config }} <b>&</b> 'app' with name");
        assert_eq!(spec.title, "{{ config }} <b>&</b> 'app'");
        assert_eq!(
            escape_html(&spec.title),
            "&#123;&#123; config &#125;&#125; &lt;b&gt;&amp;&lt;/b&gt; &#39;app&#39;"
        );
    }

    #[test]
    fn hand_built_specs_are_sanitized_before_rendering() {
        let spec = AppSpec {
            title: "\n\n".to_string(),
            entity: "Bad Entity\"".to_string(),
            plural: String::new(),
            fields: vec![
                Field {
                    name: "x\"); import os #".to_string(),
                    label: "<img src=x onerror=alert(1)>".to_string(),
                    kind: Text,
                },
                Field {
                    name: "class".to_string(),
                    label: String::new(),
                    kind: Integer,
                },
                Field {
                    name: "☃".to_string(),
                    label: "snowman".to_string(),
                    kind: Text,
                },
            ],
            tweaks: Tweaks::default(),
        };
        let safe = normalize(&spec);
        assert_safe_spec(&safe);
        assert_eq!(safe.entity, "bad_entity");
        assert_eq!(safe.plural, "bad_entities");
        assert_eq!(
            shape(&safe),
            [("x_import_os", Text), ("class_value", Integer)]
        );
        let files = render_files(&spec, "");
        let html = file(&files, "templates/index.html");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(!html.contains("<img"));
        let empty = AppSpec {
            title: String::new(),
            entity: String::new(),
            plural: "sqlite_master".to_string(),
            fields: Vec::new(),
            tweaks: Tweaks::default(),
        };
        let safe = normalize(&empty);
        assert_eq!(safe.entity, "item");
        assert_eq!(safe.plural, "app_sqlite_master");
        assert_eq!(safe.title, "App sqlite master");
        assert_eq!(shape(&safe), [("name", Text), ("notes", LongText)]);
    }

    #[test]
    fn reply_has_one_fenced_block_per_file() {
        for prompt in EXAMPLES.iter().chain(HOSTILE) {
            let reply = render_reply(prompt);
            let files = render_files(&read_spec(prompt), prompt);
            assert_eq!(parse_reply(&reply), files, "{prompt:?}");
            assert!(reply.starts_with("### README.md\n````markdown\n"));
            assert!(reply.contains("### app.py\n````python\n"));
            assert!(
                reply.contains("### requirements.txt\n````text\nflask>=3.0\npytest>=8\n````\n\n")
            );
            assert!(reply.contains("### templates/index.html\n````html\n<!doctype html>"));
            assert!(reply.ends_with("````\n\n"));
        }
    }
}
