//! The words the offline scaffolder reads a prompt with: what marks a
//! list of fields, which words are kinds of field, which are not fields,
//! and the names no generated identifier may take.

/// Words that end the entity part of a prompt and start the field list.
pub(super) const MARKERS: &str =
    "with including include includes containing contains has have having \
    fields";

/// Nouns that name the app rather than what it stores ("todo *app*").
pub(super) const CONTAINERS: &str =
    "app apps application webapp manager tracker list lists log logger \
    logbook organizer organiser planner catalog catalogue journal diary database db inventory \
    watchlist wishlist checklist registry keeper board system tool site website service crud \
    api backend dashboard collection counter directory calendar";

/// Words after which the stored thing is named ("track my *books*", "inventory of *products*").
pub(super) const TRIGGERS: &str =
    "track tracking tracks log logging manage managing organize organizing \
    organise organising store storing save saving record recording catalog cataloging collect \
    collecting list listing monitor monitoring plan planning of for about";

/// Words that can never be the entity.
pub(super) const FILLERS: &str =
    "a an the my our your their his her its me us i we you it to in on at \
    by and or that this these those some all every each simple small basic little tiny quick \
    minimal nice cool modern clean beautiful pretty good great new personal private shared \
    online offline local web flask python rest json sqlite single page full complete fully \
    working functional build make create write generate code please want need like would \
    could can should help just something anything stuff thing things whatever keep where \
    which so is are be";

/// Words that, starting a clause, add fields to those the app has ("…, add a
/// priority field"): how `improve` asks for a field.
pub(super) const ADD_WORDS: &str = "add adding";

/// Dropped from field phrases ("a due date" → "due date", "add a priority" → "priority").
pub(super) const STOP_WORDS: &str =
    "a an the my your our their its his her it some each any optional \
    required also just maybe s add adding another";

/// A field phrase with one of these is a sentence, not a field.
pub(super) const PROSE_WORDS: &str =
    "that which should can could would will lets let allow allows so \
    where when who want need please using use make build must able";

/// Features people ask for after "with" that are not stored fields.
pub(super) const NOT_FIELD_WORDS: &str = "theme dark light mode ui ux design style styling css \
    responsive login logins auth authentication signup bootstrap tailwind animation \
    animations search filter filtering filters sorting sort pagination csv button buttons \
    feature features support ability stats statistics chart charts graph graphs dashboard \
    notification notifications sqlite flask python javascript js html api rest json frontend \
    backend interface layout tests";

/// Phrases made only of these name no field ("the following fields").
pub(super) const NOISE_WORDS: &str = "field fields column columns property properties attribute \
    attributes following like etc other others";

/// Trailing words that say what kind a field is, not what it is called ("done *flag*").
pub(super) const KIND_SUFFIXES: &str =
    "flag checkbox boolean bool field fields column columns property \
    properties attribute attributes";

/// Words that make a field plain text even next to "number" ("phone number").
pub(super) const TEXT_WORDS: &str =
    "phone tel telephone mobile fax zip postal postcode isbn sku code \
    serial ssn iban pin vin id";

pub(super) const DATE_WORDS: &str = "date dates due day birthday birthdate deadline dob birth \
    anniversary";
pub(super) const BOOLEAN_WORDS: &str =
    "done completed complete finished flag watched active archived \
    published paid favorite favourite starred enabled visible checked visited bool boolean \
    checkbox read attended approved verified public available resolved pinned owned yes true \
    false whether";
pub(super) const INTEGER_WORDS: &str =
    "count quantity qty pages page year years reps rep sets minutes \
    mins minute hours hour seconds streak age servings calories stock laps days integer int \
    level priority rank votes likes views number episode episodes season chapter chapters \
    times";
pub(super) const NUMBER_WORDS: &str =
    "price amount cost rating weight total balance score distance \
    height width length salary budget fee rate percent percentage temperature duration \
    latitude longitude lat lng lon kg km miles lbs tax tip money dollars usd eur euros speed \
    pace decimal float";
pub(super) const URL_WORDS: &str = "url urls link links website homepage site href uri";
pub(super) const EMAIL_WORDS: &str = "email emails";
pub(super) const TAGS_WORDS: &str = "tags tag labels categories keywords topics genres";
pub(super) const LONG_TEXT_WORDS: &str =
    "description notes note body content contents instructions \
    ingredients summary details comments comment text bio review steps memo remarks thoughts \
    message directions synopsis abstract explanation";

/// Python keywords; field names must never be one.
pub(super) const PYTHON_KEYWORDS: &str =
    "false none true and as assert async await break class continue \
    def del elif else except finally for from global if import in is lambda nonlocal not or \
    pass raise return try while with yield";

/// SQLite's keywords and special column names; columns are quoted anyway, this keeps them plain.
pub(super) const SQL_KEYWORDS: &str =
    "abort action add after all alter always analyze and as asc attach \
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
pub(super) const IRREGULAR: &[(&str, &str)] = &[
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
pub(super) const UNCOUNTABLE: &str = "series species news sheep fish deer data info information \
    equipment software hardware media music furniture feedback money luggage homework \
    clothing aircraft staff gear advice research";

/// Activity words that name a list rather than its items ("shopping list").
pub(super) const ENTITY_ALIASES: &[(&str, &str)] = &[
    ("shopping", "item"),
    ("packing", "item"),
    ("reading", "book"),
    ("wish", "item"),
];

/// Lists named by themselves, and what they keep ("a journal" keeps entries).
pub(super) const LIST_ENTITIES: &[(&str, &str)] = &[
    ("journal", "entry"),
    ("diary", "entry"),
    ("log", "entry"),
    ("logbook", "entry"),
    ("calendar", "event"),
    ("planner", "event"),
    ("directory", "contact"),
    ("inventory", "item"),
    ("catalog", "item"),
    ("catalogue", "item"),
    ("collection", "item"),
    ("checklist", "item"),
    ("wishlist", "item"),
    ("list", "item"),
    ("registry", "item"),
    ("database", "record"),
];
