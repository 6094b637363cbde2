//! Offline "template" provider: reads an entity and its fields from a prompt and
//! scaffolds a complete CRUD Flask app, with no model and no network.
//!
//! Everything here is deterministic: the same prompt always gives the same bytes.
//! Prompt text only ever reaches the generated files through escaping (HTML,
//! Markdown); Python and JavaScript see nothing but sanitized identifiers.

/// What the scaffolder read from a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    /// Human title taken from the prompt; raw text, escape before use.
    pub title: String,
    /// Singular snake_case entity name, e.g. "todo".
    pub entity: String,
    /// Plural of the entity, e.g. "todos"; names the table and the API path.
    pub plural: String,
    /// The entity's fields, in prompt order.
    pub fields: Vec<Field>,
}

/// One field of the entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// snake_case Python identifier; never a keyword, never "id".
    pub name: String,
    /// Human label shown in the page.
    pub label: String,
    /// What kind of value the field holds.
    pub kind: FieldKind,
}

/// The kind of value a field holds; decides storage, validation and input type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Only the start of a prompt is read, so a huge prompt costs no more than a long one.
const MAX_PROMPT_CHARS: usize = 4000;
const MAX_FIELDS: usize = 12;
const MAX_NAME_LEN: usize = 40;
const MAX_TITLE_CHARS: usize = 60;
const MAX_LABEL_CHARS: usize = 40;
/// A field phrase longer than this is prose, not a field name.
const MAX_FIELD_WORDS: usize = 4;

/// Words that end the entity part of a prompt and start the field list.
const MARKERS: &str = "with including include includes containing contains has have having \
    fields";

/// Nouns that name the app rather than what it stores ("todo *app*").
const CONTAINERS: &str = "app apps application webapp manager tracker list lists log logger \
    logbook organizer organiser planner catalog catalogue journal diary database db inventory \
    watchlist wishlist checklist registry keeper board system tool site website service crud \
    api backend dashboard collection counter directory calendar";

/// Words after which the stored thing is named ("track my *books*", "inventory of *products*").
const TRIGGERS: &str = "track tracking tracks log logging manage managing organize organizing \
    organise organising store storing save saving record recording catalog cataloging collect \
    collecting list listing monitor monitoring plan planning of for about";

/// Words that can never be the entity.
const FILLERS: &str = "a an the my our your their his her its me us i we you it to in on at \
    by and or that this these those some all every each simple small basic little tiny quick \
    minimal nice cool modern clean beautiful pretty good great new personal private shared \
    online offline local web flask python rest json sqlite single page full complete fully \
    working functional build make create write generate code please want need like would \
    could can should help just something anything stuff thing things whatever keep where \
    which so is are be";

/// Dropped from field phrases ("a due date" → "due date").
const STOP_WORDS: &str = "a an the my your our their its his her it some each any optional \
    required also just maybe s";

/// A field phrase with one of these is a sentence, not a field.
const PROSE_WORDS: &str = "that which should can could would will lets let allow allows so \
    where when who want need please using use make build must able";

/// Features people ask for after "with" that are not stored fields.
const NOT_FIELD_WORDS: &str = "theme dark light mode ui ux design style styling css \
    responsive login logins auth authentication signup bootstrap tailwind animation \
    animations search filter filtering filters sorting sort pagination csv button buttons \
    feature features support ability stats statistics chart charts graph graphs dashboard \
    notification notifications sqlite flask python javascript js html api rest json frontend \
    backend interface layout tests";

/// Phrases made only of these name no field ("the following fields").
const NOISE_WORDS: &str = "field fields column columns property properties attribute \
    attributes following like etc other others";

/// Trailing words that say what kind a field is, not what it is called ("done *flag*").
const KIND_SUFFIXES: &str = "flag checkbox boolean bool field fields column columns property \
    properties attribute attributes";

/// Words that make a field plain text even next to "number" ("phone number").
const TEXT_WORDS: &str = "phone tel telephone mobile fax zip postal postcode isbn sku code \
    serial ssn iban pin vin id";

const DATE_WORDS: &str = "date dates due day birthday birthdate deadline dob birth \
    anniversary";
const BOOLEAN_WORDS: &str = "done completed complete finished flag watched active archived \
    published paid favorite favourite starred enabled visible checked visited bool boolean \
    checkbox read attended approved verified public available resolved pinned owned yes true \
    false whether";
const INTEGER_WORDS: &str = "count quantity qty pages page year years reps rep sets minutes \
    mins minute hours hour seconds streak age servings calories stock laps days integer int \
    level priority rank votes likes views number episode episodes season chapter chapters \
    times";
const NUMBER_WORDS: &str = "price amount cost rating weight total balance score distance \
    height width length salary budget fee rate percent percentage temperature duration \
    latitude longitude lat lng lon kg km miles lbs tax tip money dollars usd eur euros speed \
    pace decimal float";
const URL_WORDS: &str = "url urls link links website homepage site href uri";
const EMAIL_WORDS: &str = "email emails";
const TAGS_WORDS: &str = "tags tag labels categories keywords topics genres";
const LONG_TEXT_WORDS: &str = "description notes note body content contents instructions \
    ingredients summary details comments comment text bio review steps memo remarks thoughts \
    message directions synopsis abstract explanation";

/// Python keywords; field names must never be one.
const PYTHON_KEYWORDS: &str = "false none true and as assert async await break class continue \
    def del elif else except finally for from global if import in is lambda nonlocal not or \
    pass raise return try while with yield";

/// SQLite's keywords and special column names; columns are quoted anyway, this keeps them plain.
const SQL_KEYWORDS: &str = "abort action add after all alter always analyze and as asc attach \
    autoincrement before begin between by cascade case cast check collate column commit \
    conflict constraint create cross current current_date current_time current_timestamp \
    database default deferrable deferred delete desc detach distinct do drop each else end \
    escape except exclude exclusive exists explain fail filter first following for foreign \
    from full generated glob group groups having if ignore immediate in index indexed \
    initially inner insert instead intersect into is isnull join key last left like limit \
    match materialized natural no not nothing notnull null nulls of offset on or order others \
    outer over partition plan pragma preceding primary query raise range recursive references \
    regexp reindex release rename replace restrict returning right rollback row rows \
    savepoint select set table temp temporary then ties to transaction trigger unbounded \
    union unique update using vacuum values view virtual when where window with without id \
    rowid oid";

/// Plurals that the suffix rules get wrong, as (plural, singular).
const IRREGULAR: &[(&str, &str)] = &[
    ("people", "person"),
    ("persons", "person"),
    ("children", "child"),
    ("men", "man"),
    ("women", "woman"),
    ("mice", "mouse"),
    ("geese", "goose"),
    ("feet", "foot"),
    ("teeth", "tooth"),
    ("movies", "movie"),
    ("cookies", "cookie"),
    ("zombies", "zombie"),
    ("selfies", "selfie"),
    ("smoothies", "smoothie"),
    ("brownies", "brownie"),
    ("rookies", "rookie"),
    ("hoodies", "hoodie"),
    ("calories", "calorie"),
    ("goodies", "goodie"),
    ("veggies", "veggie"),
    ("statuses", "status"),
    ("buses", "bus"),
    ("viruses", "virus"),
    ("bonuses", "bonus"),
    ("campuses", "campus"),
    ("heroes", "hero"),
    ("potatoes", "potato"),
    ("tomatoes", "tomato"),
    ("echoes", "echo"),
    ("leaves", "leaf"),
    ("knives", "knife"),
    ("lives", "life"),
    ("shelves", "shelf"),
    ("wolves", "wolf"),
    ("halves", "half"),
    ("criteria", "criterion"),
    ("analyses", "analysis"),
];

/// Nouns whose plural is the same word.
const UNCOUNTABLE: &str = "series species news sheep fish deer data info information \
    equipment software hardware media music furniture feedback money luggage homework \
    clothing aircraft staff gear advice research";

/// Activity words that name a list rather than its items ("shopping list").
const ENTITY_ALIASES: &[(&str, &str)] = &[
    ("shopping", "item"),
    ("packing", "item"),
    ("reading", "book"),
    ("wish", "item"),
];

/// Reads the entity and fields from a prompt; anything it cannot read falls back to a generic "item" with name and notes.
pub fn read_spec(prompt: &str) -> AppSpec {
    let prompt = clip_chars(prompt, MAX_PROMPT_CHARS);
    let tokens = tokenize(prompt);
    let marker = tokens.iter().position(|(tok, _)| match tok {
        Tok::Colon => true,
        Tok::Word(word) => has(MARKERS, word.as_str()),
        _ => false,
    });
    let (head, region) = match marker {
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
    let entity = find_entity(&head_words).unwrap_or_else(|| "item".to_string());
    let mut fields = read_fields(region, &entity);
    if fields.is_empty() {
        fields = default_fields(&entity);
    }
    let plural = pluralize(&entity);
    let head_end = marker.map_or(prompt.len(), |index| tokens[index].1);
    let title = make_title(&prompt[..head_end], &plural);
    normalize(&AppSpec {
        title,
        entity,
        plural,
        fields,
    })
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

/// Reads fields from the part of the prompt after "with" / ":".
fn read_fields(region: &[(Tok, usize)], entity: &str) -> Vec<Field> {
    let mut fields: Vec<Field> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut hints: Vec<String> = Vec::new();
    let mut depth = 0usize;
    // After a second "with" the rest of the phrase describes the field ("notes with markdown").
    let mut skipping = false;
    let finish = |words: &mut Vec<String>, hints: &mut Vec<String>, fields: &mut Vec<Field>| {
        if let Some(field) = make_field(words, hints, entity) {
            if !fields.iter().any(|f| f.name == field.name) {
                fields.push(field);
            }
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
    let mut out = String::new();
    for word in text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if out.len() + word.len() + 1 > MAX_NAME_LEN {
            if out.is_empty() {
                out.push_str(&word[..MAX_NAME_LEN].to_ascii_lowercase());
            }
            break;
        }
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(&word.to_ascii_lowercase());
    }
    out
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

/// Collapses whitespace and control characters and caps the length (with "...").
fn one_line(text: &str, max_chars: usize) -> String {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let line = words.join(" ");
    if line.chars().count() <= max_chars {
        return line;
    }
    let mut clipped: String = line.chars().take(max_chars.saturating_sub(3)).collect();
    clipped.truncate(clipped.trim_end().len());
    clipped.push_str("...");
    clipped
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
    let mut title = one_line(&spec.title, MAX_TITLE_CHARS);
    if !title.chars().any(char::is_alphanumeric) {
        title = label_from_words(&plural.split('_').collect::<Vec<_>>());
    }
    AppSpec {
        title,
        entity,
        plural,
        fields,
    }
}

/// Renders the app's files (path, content), sorted by path.
pub fn render_files(spec: &AppSpec, prompt: &str) -> Vec<(String, String)> {
    // Callers may build a spec by hand, so sanitize it again; a no-op for read_spec's output.
    let spec = normalize(spec);
    let mut files = vec![
        ("README.md".to_string(), render_readme(&spec, prompt)),
        ("app.py".to_string(), render_app_py(&spec)),
        (
            "requirements.txt".to_string(),
            "flask>=3.0\npytest>=8\n".to_string(),
        ),
        ("templates/index.html".to_string(), render_index_html(&spec)),
        ("test_app.py".to_string(), render_test_py(&spec)),
    ];
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

/// The whole reply as a model would write it: for each file a `### path` line followed by a fenced code block.
pub fn render_reply(prompt: &str) -> String {
    let spec = read_spec(prompt);
    let mut reply = String::new();
    for (path, content) in render_files(&spec, prompt) {
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

/// Replaces each `@@KEY@@` in one pass, so inserted text is never scanned again.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find("@@") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let found = after.find("@@").and_then(|end| {
            let key = &after[..end];
            values
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, value)| (end, *value))
        });
        match found {
            Some((end, value)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("@@");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The field the API insists on: the first one that is not a checkbox, since an
/// unchecked box is a valid answer.
fn required_field(spec: &AppSpec) -> Option<&Field> {
    spec.fields.iter().find(|f| f.kind != FieldKind::Boolean)
}

/// Escapes text for HTML element content and attributes. Braces are escaped too
/// because Jinja renders the page, and backticks so a reply fence can never close early.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '`' => out.push_str("&#96;"),
            '{' => out.push_str("&#123;"),
            '}' => out.push_str("&#125;"),
            _ => out.push(c),
        }
    }
    out
}

/// Prompt text for Markdown: one line, no HTML, no backticks (they could close a fence).
fn escape_markdown(text: &str, max_chars: usize) -> String {
    one_line(text, max_chars)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('`', "'")
}

/// "due_date" → "due date": identifiers as words for messages and buttons.
fn words_of(name: &str) -> String {
    name.replace('_', " ")
}

/// A Python assignment of a constant SQL string, wrapped when long. SQL built here
/// only holds identifiers and punctuation, never quotes of the Python kind.
fn py_sql(target: &str, sql: &str) -> String {
    if target.len() + sql.len() + 5 <= 88 {
        return format!("{target} = '{sql}'\n");
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
    out.push_str(&format!("    '{line}'\n)\n"));
    out
}

fn render_app_py(spec: &AppSpec) -> String {
    let table = &spec.plural;
    let columns: Vec<String> = spec
        .fields
        .iter()
        .map(|f| format!("\"{}\"", f.name))
        .collect();
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
    let required = required_field(spec).map(|f| f.name.as_str());
    let mut fields = String::new();
    for field in &spec.fields {
        let is_required = if Some(field.name.as_str()) == required {
            "True"
        } else {
            "False"
        };
        fields.push_str(&format!(
            "    (\"{}\", \"{}\", {is_required}),\n",
            field.name,
            field.kind.slug()
        ));
    }
    let mut add_columns = String::new();
    for field in &spec.fields {
        add_columns.push_str(&format!(
            "    \"{name}\": 'ALTER TABLE \"{table}\" ADD COLUMN \"{name}\" {kind}',\n",
            name = field.name,
            kind = field.kind.sql_type()
        ));
    }
    let mut sql = String::new();
    sql.push_str(&py_sql(
        "CREATE_SQL",
        &format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, {})",
            definitions.join(", ")
        ),
    ));
    sql.push_str(&py_sql(
        "TABLE_INFO_SQL",
        &format!("PRAGMA table_info(\"{table}\")"),
    ));
    sql.push_str(&py_sql(
        "SELECT_ALL_SQL",
        &format!("SELECT \"id\", {columns} FROM \"{table}\" ORDER BY \"id\""),
    ));
    sql.push_str(&py_sql(
        "SELECT_ONE_SQL",
        &format!("SELECT \"id\", {columns} FROM \"{table}\" WHERE \"id\" = ?"),
    ));
    sql.push_str(&py_sql(
        "INSERT_SQL",
        &format!("INSERT INTO \"{table}\" ({columns}) VALUES ({placeholders})"),
    ));
    sql.push_str(&py_sql(
        "UPDATE_SQL",
        &format!(
            "UPDATE \"{table}\" SET {} WHERE \"id\" = ?",
            assignments.join(", ")
        ),
    ));
    sql.push_str(&py_sql(
        "DELETE_SQL",
        &format!("DELETE FROM \"{table}\" WHERE \"id\" = ?"),
    ));
    fill(
        APP_PY,
        &[
            ("HEADING", &label_from_words(&[&words_of(&spec.plural)])),
            ("FIELDS", &fields),
            ("ADD_COLUMNS", &add_columns),
            ("SQL", &sql),
            ("PLURAL", &spec.plural),
            ("ENTITY_WORDS", &words_of(&spec.entity)),
        ],
    )
}

const APP_PY: &str = r##""""@@HEADING@@: a small Flask + SQLite CRUD app generated by appforge.

Run it from this folder with:
    python -m flask --app app run --host 127.0.0.1 --port 5000
"""

import json
import math
import os
import sqlite3
from contextlib import closing
from datetime import date

from flask import Blueprint, Flask, current_app, g, jsonify, render_template, request

BASE_DIR = os.path.dirname(os.path.abspath(__file__))

# Each field is (column, kind, required). Columns are fixed identifiers, so every
# statement below is a constant and values always travel as SQL parameters.
FIELDS = [
@@FIELDS@@]

@@SQL@@
# Columns missing from a database made by an earlier version of this app.
ADD_COLUMN_SQL = {
@@ADD_COLUMNS@@}

MAX_INTEGER = 2**63 - 1  # SQLite's INTEGER range
TRUE_WORDS = {"true", "yes", "on", "1"}
FALSE_WORDS = {"false", "no", "off", "0", ""}

bp = Blueprint("main", __name__)


class ValidationError(ValueError):
    """A request value that does not fit its field."""


def get_db():
    """Returns this request's SQLite connection, opening it on first use."""
    if "db" not in g:
        g.db = sqlite3.connect(current_app.config["DATABASE"])
        g.db.row_factory = sqlite3.Row
    return g.db


def close_db(_error=None):
    """Closes the request's connection, if one was opened."""
    db = g.pop("db", None)
    if db is not None:
        db.close()


def init_db(path):
    """Creates the table, and any missing columns, if needed."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with closing(sqlite3.connect(path)) as db:
        db.execute(CREATE_SQL)
        existing = {row[1] for row in db.execute(TABLE_INFO_SQL)}
        for name, statement in ADD_COLUMN_SQL.items():
            if name not in existing:
                db.execute(statement)
        db.commit()


def to_text(value):
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("must be a string")
    return value


def to_integer(value):
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValidationError("must be a whole number") from None
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_INTEGER:
        raise ValidationError("must be a whole number")
    return value


def to_number(value):
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValidationError("must be a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        raise ValidationError("must be a number") from None
    if not math.isfinite(number):
        raise ValidationError("must be a number")
    return number


def to_boolean(value):
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ValidationError("must be true or false")


def to_date(value):
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise ValidationError("must be a date like 2024-01-31")


def to_url(value):
    if value is None or value == "":
        return None
    if isinstance(value, str):
        url = value.strip()
        scheme, _, rest = url.partition("://")
        # Only http(s): the page turns URLs into links, so no javascript: URLs.
        if scheme.lower() in ("http", "https") and rest and not any(c.isspace() for c in url):
            return url
    raise ValidationError("must be an http:// or https:// URL")


def to_email(value):
    if value is None or value == "":
        return None
    if isinstance(value, str):
        email = value.strip()
        local, at, domain = email.rpartition("@")
        if at and local and "." in domain.strip(".") and not any(c.isspace() for c in email):
            return email
    raise ValidationError("must be an email address")


def to_tags(value):
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise ValidationError("must be a list of strings")
    tags = []
    for tag in value:
        tag = tag.strip()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


CONVERTERS = {
    "text": to_text,
    "longtext": to_text,
    "integer": to_integer,
    "number": to_number,
    "boolean": to_boolean,
    "date": to_date,
    "url": to_url,
    "email": to_email,
    "tags": to_tags,
}


def is_blank(value):
    """True for values that do not count as given for a required field."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or value == []


def validate(data):
    """Checks a JSON object against FIELDS and returns the values to store."""
    if not isinstance(data, dict):
        raise ValidationError("expected a JSON object")
    values = {}
    for name, kind, required in FIELDS:
        try:
            value = CONVERTERS[kind](data.get(name))
        except ValidationError as error:
            raise ValidationError(f"{name} {error}") from None
        if required and is_blank(value):
            raise ValidationError(f"{name} is required")
        values[name] = value
    return values


def to_params(values):
    """Values in column order, as INSERT_SQL and UPDATE_SQL expect; tags as JSON text."""
    params = []
    for name, kind, _required in FIELDS:
        value = values[name]
        params.append(json.dumps(value) if kind == "tags" else value)
    return params


def load_tags(text):
    try:
        tags = json.loads(text) if text else []
    except ValueError:
        return []
    return [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else []


def to_record(row):
    """Turns a database row into the API's JSON shape."""
    record = {"id": row["id"]}
    for name, kind, _required in FIELDS:
        value = row[name]
        if kind == "boolean":
            value = bool(value)
        elif kind == "tags":
            value = load_tags(value)
        record[name] = value
    return record


def find(record_id):
    if record_id > MAX_INTEGER:
        return None
    row = get_db().execute(SELECT_ONE_SQL, (record_id,)).fetchone()
    return None if row is None else to_record(row)


def error_response(message, status):
    return jsonify(error=message), status


def not_found():
    return error_response("@@ENTITY_WORDS@@ not found", 404)


@bp.get("/")
def index():
    return render_template("index.html")


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/api/@@PLURAL@@")
def list_records():
    rows = get_db().execute(SELECT_ALL_SQL).fetchall()
    return jsonify([to_record(row) for row in rows])


@bp.post("/api/@@PLURAL@@")
def create_record():
    try:
        values = validate(request.get_json(silent=True))
    except ValidationError as error:
        return error_response(str(error), 400)
    db = get_db()
    cursor = db.execute(INSERT_SQL, to_params(values))
    db.commit()
    return jsonify(find(cursor.lastrowid)), 201


@bp.get("/api/@@PLURAL@@/<int:record_id>")
def get_record(record_id):
    record = find(record_id)
    if record is None:
        return not_found()
    return jsonify(record)


@bp.put("/api/@@PLURAL@@/<int:record_id>")
def update_record(record_id):
    record = find(record_id)
    if record is None:
        return not_found()
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return error_response("expected a JSON object", 400)
    try:
        # Fields left out of the body keep their current values.
        values = validate({**record, **data})
    except ValidationError as error:
        return error_response(str(error), 400)
    db = get_db()
    db.execute(UPDATE_SQL, [*to_params(values), record_id])
    db.commit()
    return jsonify(find(record_id))


@bp.delete("/api/@@PLURAL@@/<int:record_id>")
def delete_record(record_id):
    if find(record_id) is None:
        return not_found()
    db = get_db()
    db.execute(DELETE_SQL, (record_id,))
    db.commit()
    return "", 204


def create_app(database=None):
    """Builds the app; the database path is `database`, else $APP_DATABASE, else data.db here."""
    app = Flask(__name__)
    app.config["DATABASE"] = (
        database or os.environ.get("APP_DATABASE") or os.path.join(BASE_DIR, "data.db")
    )
    app.json.sort_keys = False
    init_db(app.config["DATABASE"])
    app.teardown_appcontext(close_db)
    app.register_blueprint(bp)
    return app


app = create_app()
"##;

/// One labelled input for a field, typed by its kind.
fn form_control(field: &Field, required: bool) -> String {
    let name = &field.name;
    let label = escape_html(&field.label);
    let required = if required { " required" } else { "" };
    let input = |attributes: &str| {
        format!("<input id=\"field-{name}\" name=\"{name}\" {attributes}{required}>")
    };
    let control = match field.kind {
        FieldKind::Boolean => {
            return format!(
                "        <label class=\"field checkbox\" for=\"field-{name}\">\n          <input id=\"field-{name}\" name=\"{name}\" type=\"checkbox\">\n          <span>{label}</span>\n        </label>\n"
            );
        }
        FieldKind::Text => input("type=\"text\""),
        FieldKind::LongText => {
            format!(
                "<textarea id=\"field-{name}\" name=\"{name}\" rows=\"3\"{required}></textarea>"
            )
        }
        FieldKind::Integer => input("type=\"number\" step=\"1\""),
        FieldKind::Number => input("type=\"number\" step=\"any\""),
        FieldKind::Date => input("type=\"date\""),
        FieldKind::Url => input("type=\"url\" placeholder=\"https://\""),
        FieldKind::Email => input("type=\"email\" placeholder=\"name@example.com\""),
        FieldKind::Tags => input("type=\"text\" placeholder=\"comma, separated, tags\""),
    };
    format!(
        "        <label class=\"field\" for=\"field-{name}\">\n          <span>{label}</span>\n          {control}\n        </label>\n"
    )
}

fn render_index_html(spec: &AppSpec) -> String {
    let required = required_field(spec).map(|f| f.name.as_str());
    let mut controls = String::new();
    let mut headers = String::new();
    let mut js_fields = String::new();
    for field in &spec.fields {
        controls.push_str(&form_control(field, Some(field.name.as_str()) == required));
        headers.push_str(&format!(
            "            <th scope=\"col\">{}</th>\n",
            escape_html(&field.label)
        ));
        js_fields.push_str(&format!(
            "        {{ name: \"{}\", kind: \"{}\" }},\n",
            field.name,
            field.kind.slug()
        ));
    }
    fill(
        INDEX_HTML,
        &[
            ("TITLE", &escape_html(&spec.title)),
            ("CONTROLS", &controls),
            ("HEADERS", &headers),
            ("JS_FIELDS", &js_fields),
            ("PLURAL", &spec.plural),
            ("PLURAL_WORDS", &words_of(&spec.plural)),
            ("ENTITY_WORDS", &words_of(&spec.entity)),
        ],
    )
}

// The page is a Jinja template: it must never contain "{{", "{%" or "{#".
const INDEX_HTML: &str = r##"<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>@@TITLE@@</title>
    <style>
      :root { color-scheme: light dark; font-family: system-ui, sans-serif; }
      body { margin: 0; padding: 2rem 1rem; }
      main { max-width: 64rem; margin: 0 auto; }
      form { display: grid; gap: 0.75rem; grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr)); align-items: end; margin-bottom: 1rem; }
      .field { display: flex; flex-direction: column; gap: 0.25rem; }
      .field.checkbox { flex-direction: row; align-items: center; }
      input, textarea, button { font: inherit; padding: 0.4rem; }
      .actions { display: flex; gap: 0.5rem; }
      table { width: 100%; border-collapse: collapse; }
      th, td { text-align: left; padding: 0.4rem; border-bottom: 1px solid #8884; vertical-align: top; white-space: pre-wrap; }
      .tag { display: inline-block; padding: 0 0.5rem; margin: 0 0.25rem 0.25rem 0; border-radius: 0.75rem; background: #8883; }
      .error { color: #c33; }
    </style>
  </head>
  <body>
    <main>
      <h1>@@TITLE@@</h1>
      <form id="record-form">
        <input type="hidden" id="record-id">
@@CONTROLS@@        <div class="actions">
          <button type="submit" id="save-button">Add @@ENTITY_WORDS@@</button>
          <button type="button" id="cancel-button" hidden>Cancel</button>
        </div>
      </form>
      <p id="message" role="status"></p>
      <table>
        <thead>
          <tr>
@@HEADERS@@            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody id="records"></tbody>
      </table>
      <p id="empty" hidden>No @@PLURAL_WORDS@@ yet.</p>
    </main>
    <script>
      "use strict";
      const API = "/api/@@PLURAL@@";
      const FIELDS = [
@@JS_FIELDS@@      ];
      const form = document.getElementById("record-form");
      const idInput = document.getElementById("record-id");
      const saveButton = document.getElementById("save-button");
      const cancelButton = document.getElementById("cancel-button");
      const rows = document.getElementById("records");
      const message = document.getElementById("message");
      const emptyNote = document.getElementById("empty");

      function control(field) {
        return document.getElementById("field-" + field.name);
      }

      function showMessage(text, isError) {
        message.textContent = text;
        message.className = isError ? "error" : "";
      }

      // Builds the JSON body from the form, typed by field kind.
      function readForm() {
        const data = {};
        for (const field of FIELDS) {
          const input = control(field);
          const value = input.value;
          if (field.kind === "boolean") {
            data[field.name] = input.checked;
          } else if (field.kind === "integer" || field.kind === "number") {
            data[field.name] = value === "" ? null : Number(value);
          } else if (field.kind === "tags") {
            data[field.name] = value.split(",").map((tag) => tag.trim()).filter((tag) => tag !== "");
          } else if (field.kind === "text" || field.kind === "longtext") {
            data[field.name] = value;
          } else {
            data[field.name] = value === "" ? null : value;
          }
        }
        return data;
      }

      function resetForm() {
        form.reset();
        idInput.value = "";
        saveButton.textContent = "Add @@ENTITY_WORDS@@";
        cancelButton.hidden = true;
      }

      function editRecord(record) {
        idInput.value = String(record.id);
        for (const field of FIELDS) {
          const input = control(field);
          const value = record[field.name];
          if (field.kind === "boolean") {
            input.checked = Boolean(value);
          } else if (field.kind === "tags") {
            input.value = Array.isArray(value) ? value.join(", ") : "";
          } else {
            input.value = value === null || value === undefined ? "" : String(value);
          }
        }
        saveButton.textContent = "Save changes";
        cancelButton.hidden = false;
        control(FIELDS[0]).focus();
      }

      // Every value goes in through textContent or a checked href, never as HTML.
      function cell(field, value) {
        const td = document.createElement("td");
        if (value === null || value === undefined) {
          return td;
        }
        if (field.kind === "boolean") {
          td.textContent = value ? "Yes" : "No";
        } else if (field.kind === "tags" && Array.isArray(value)) {
          for (const tag of value) {
            const span = document.createElement("span");
            span.className = "tag";
            span.textContent = String(tag);
            td.appendChild(span);
          }
        } else if (field.kind === "url" && /^https?:\/\//i.test(String(value))) {
          const link = document.createElement("a");
          link.href = String(value);
          link.textContent = String(value);
          link.rel = "noopener noreferrer";
          link.target = "_blank";
          td.appendChild(link);
        } else {
          td.textContent = String(value);
        }
        return td;
      }

      function button(text, onClick) {
        const element = document.createElement("button");
        element.type = "button";
        element.textContent = text;
        element.addEventListener("click", onClick);
        return element;
      }

      async function send(method, url, body) {
        const options = { method: method, headers: { Accept: "application/json" } };
        if (body !== undefined) {
          options.headers["Content-Type"] = "application/json";
          options.body = JSON.stringify(body);
        }
        const response = await fetch(url, options);
        const data = response.status === 204 ? null : await response.json().catch(() => null);
        if (!response.ok) {
          throw new Error(data && data.error ? data.error : "Request failed (" + response.status + ")");
        }
        return data;
      }

      async function removeRecord(record) {
        if (!window.confirm("Delete this @@ENTITY_WORDS@@?")) {
          return;
        }
        try {
          await send("DELETE", API + "/" + record.id);
          if (idInput.value === String(record.id)) {
            resetForm();
          }
          showMessage("Deleted.", false);
          await load();
        } catch (error) {
          showMessage(error.message, true);
        }
      }

      function render(records) {
        rows.replaceChildren();
        for (const record of records) {
          const tr = document.createElement("tr");
          for (const field of FIELDS) {
            tr.appendChild(cell(field, record[field.name]));
          }
          const actions = document.createElement("td");
          actions.className = "actions";
          actions.appendChild(button("Edit", () => editRecord(record)));
          actions.appendChild(button("Delete", () => removeRecord(record)));
          tr.appendChild(actions);
          rows.appendChild(tr);
        }
        emptyNote.hidden = records.length > 0;
      }

      async function load() {
        try {
          render(await send("GET", API));
        } catch (error) {
          showMessage(error.message, true);
        }
      }

      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const id = idInput.value;
        try {
          if (id) {
            await send("PUT", API + "/" + id, readForm());
          } else {
            await send("POST", API, readForm());
          }
          resetForm();
          showMessage(id ? "Saved." : "Added.", false);
          await load();
        } catch (error) {
          showMessage(error.message, true);
        }
      });
      cancelButton.addEventListener("click", resetForm);
      load();
    </script>
  </body>
</html>
"##;

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

fn render_test_py(spec: &AppSpec) -> String {
    let mut sample = String::new();
    let mut updated = String::new();
    let mut bad = String::new();
    for field in &spec.fields {
        let (first, second, wrong) = sample_values(field);
        let name = &field.name;
        sample.push_str(&format!("    \"{name}\": {first},\n"));
        updated.push_str(&format!("    \"{name}\": {second},\n"));
        bad.push_str(&format!("    \"{name}\": {wrong},\n"));
    }
    let required = match required_field(spec) {
        Some(field) => format!("\"{}\"", field.name),
        None => "None".to_string(),
    };
    fill(
        TEST_PY,
        &[
            ("PLURAL", &spec.plural),
            ("REQUIRED", &required),
            ("SAMPLE", &sample),
            ("UPDATED", &updated),
            ("BAD", &bad),
        ],
    )
}

const TEST_PY: &str = r##""""API tests for the generated app; run `python -m pytest -q` in this folder."""

import pytest

API = "/api/@@PLURAL@@"
REQUIRED = @@REQUIRED@@
SAMPLE = {
@@SAMPLE@@}
UPDATED = {
@@UPDATED@@}
BAD_VALUES = {
@@BAD@@}


@pytest.fixture()
def client(tmp_path, monkeypatch):
    # Point the app at a throwaway database before it is imported, so tests never touch data.db.
    monkeypatch.setenv("APP_DATABASE", str(tmp_path / "test.db"))
    from app import create_app

    application = create_app()
    application.config["TESTING"] = True
    with application.test_client() as test_client:
        yield test_client


def create(client, payload=None):
    response = client.post(API, json=SAMPLE if payload is None else payload)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_index_page(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"<table>" in response.data
    assert API.encode() in response.data


def test_create_and_get(client):
    record = create(client)
    assert isinstance(record["id"], int)
    for name, value in SAMPLE.items():
        assert record[name] == value, name
    response = client.get(f"{API}/{record['id']}")
    assert response.status_code == 200
    assert response.get_json() == record


def test_list(client):
    assert client.get(API).get_json() == []
    first = create(client)
    second = create(client)
    response = client.get(API)
    assert response.status_code == 200
    assert response.get_json() == [first, second]


def test_update(client):
    record = create(client)
    response = client.put(f"{API}/{record['id']}", json=UPDATED)
    assert response.status_code == 200, response.get_json()
    updated = response.get_json()
    assert updated["id"] == record["id"]
    for name, value in UPDATED.items():
        assert updated[name] == value, name
    assert client.get(f"{API}/{record['id']}").get_json() == updated


def test_partial_update_keeps_other_fields(client):
    record = create(client)
    name, value = next(iter(UPDATED.items()))
    response = client.put(f"{API}/{record['id']}", json={name: value})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {**record, name: value}


def test_delete(client):
    record = create(client)
    assert client.delete(f"{API}/{record['id']}").status_code == 204
    assert client.get(f"{API}/{record['id']}").status_code == 404
    assert client.delete(f"{API}/{record['id']}").status_code == 404
    assert client.get(API).get_json() == []


def test_missing_record_is_404(client):
    for response in (
        client.get(f"{API}/9999"),
        client.put(f"{API}/9999", json=UPDATED),
        client.delete(f"{API}/9999"),
        client.get(f"{API}/99999999999999999999999"),
    ):
        assert response.status_code == 404
        assert "error" in response.get_json()


@pytest.mark.skipif(REQUIRED is None, reason="no required field")
def test_missing_required_field_is_400(client):
    payload = {name: value for name, value in SAMPLE.items() if name != REQUIRED}
    response = client.post(API, json=payload)
    assert response.status_code == 400
    assert REQUIRED in response.get_json()["error"]


@pytest.mark.parametrize("name", list(BAD_VALUES))
def test_bad_value_is_400(client, name):
    response = client.post(API, json={**SAMPLE, name: BAD_VALUES[name]})
    assert response.status_code == 400
    assert "error" in response.get_json()
    record = create(client)
    response = client.put(f"{API}/{record['id']}", json={name: BAD_VALUES[name]})
    assert response.status_code == 400
    assert client.get(f"{API}/{record['id']}").get_json() == record


def test_body_must_be_a_json_object(client):
    assert client.post(API, json=[SAMPLE]).status_code == 400
    assert client.post(API, data="not json", content_type="text/plain").status_code == 400
    record = create(client)
    assert client.put(f"{API}/{record['id']}", json="text").status_code == 400
"##;

fn render_readme(spec: &AppSpec, prompt: &str) -> String {
    let mut fields = String::new();
    let required = required_field(spec).map(|f| f.name.as_str());
    for field in &spec.fields {
        let note = if Some(field.name.as_str()) == required {
            ", required"
        } else {
            ""
        };
        fields.push_str(&format!(
            "- `{}` ({}{note}): {}\n",
            field.name,
            field.kind.slug(),
            escape_markdown(&field.label, MAX_LABEL_CHARS)
        ));
    }
    let mut prompt_line = escape_markdown(prompt, 300);
    if prompt_line.is_empty() {
        prompt_line = "(empty)".to_string();
    }
    fill(
        README_MD,
        &[
            ("TITLE", &escape_markdown(&spec.title, MAX_TITLE_CHARS)),
            ("FIELDS", &fields),
            ("PROMPT", &prompt_line),
            ("PLURAL", &spec.plural),
            ("PLURAL_WORDS", &words_of(&spec.plural)),
        ],
    )
}

const README_MD: &str = r##"# @@TITLE@@

A small Flask + SQLite app for @@PLURAL_WORDS@@, generated offline by appforge's template provider.

## Run

    python -m pip install -r requirements.txt
    python -m flask --app app run --host 127.0.0.1 --port 5000

Then open http://127.0.0.1:5000/. Data is kept in `data.db` next to `app.py`;
set `APP_DATABASE` to use another file.

## Fields

@@FIELDS@@
## API

- `GET /api/@@PLURAL@@`: list all
- `POST /api/@@PLURAL@@`: create (201), JSON body with the fields above
- `GET /api/@@PLURAL@@/<id>`: fetch one (404 if missing)
- `PUT /api/@@PLURAL@@/<id>`: update; fields left out keep their values
- `DELETE /api/@@PLURAL@@/<id>`: delete (204)
- `GET /healthz`: `{"status": "ok"}`

Invalid input gets a 400 with `{"error": "..."}`.

## Test

    python -m pip install pytest
    python -m pytest -q

## Prompt

> @@PROMPT@@
"##;

#[cfg(test)]
mod tests {
    use super::*;
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
    fn renders_the_five_files_sorted() {
        let files = render_files(&read_spec(EXAMPLES[0]), EXAMPLES[0]);
        let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "README.md",
                "app.py",
                "requirements.txt",
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

    #[test]
    fn fill_does_not_rescan_inserted_text() {
        assert_eq!(
            fill("@@A@@-@@B@@-@@C@@", &[("A", "@@B@@"), ("B", "b")]),
            "@@B@@-b-@@C@@"
        );
        assert_eq!(fill("a@@b", &[]), "a@@b");
    }
}
