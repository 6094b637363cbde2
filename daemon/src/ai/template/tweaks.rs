//! What changes to a scaffolded app set, beyond its entity and fields: the
//! page's colour, the list's order, fields made required, fields renamed.
//! Read back from an app's own files, so every value is checked again
//! before it reaches a template.

use serde::{Deserialize, Serialize};

use super::{safe_name, Field, FieldKind};

/// The changes kept with a scaffolded app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tweaks {
    /// The page's colour, by name (a key of [`COLOURS`]).
    #[serde(default)]
    pub theme: Option<String>,
    /// The list's order.
    #[serde(default)]
    pub sort: Option<Sort>,
    /// Fields made required, besides the first one that is not a checkbox.
    #[serde(default)]
    pub required: Vec<String>,
    /// Fields renamed, (old, new) in the order it was asked, so an older
    /// database's columns follow.
    #[serde(default)]
    pub renamed: Vec<(String, String)>,
}

/// How the list is ordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    /// The field it is ordered by.
    pub field: String,
    /// Highest, newest, last first.
    pub descending: bool,
}

/// The colours of a theme: the page's background, and the accent of its
/// heading, header row and buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Colours {
    /// The colour's name.
    pub name: &'static str,
    /// The page's background: light enough for dark text.
    pub background: &'static str,
    /// The heading's and buttons' colour.
    pub accent: &'static str,
}

/// The colours a theme can have, by name (British spellings in `words`).
pub const COLOURS: &[Colours] = &[
    colours_of("blue", "#dbeafe", "#1d4ed8"),
    colours_of("red", "#fee2e2", "#b91c1c"),
    colours_of("green", "#dcfce7", "#15803d"),
    colours_of("yellow", "#fef9c3", "#a16207"),
    colours_of("orange", "#ffedd5", "#c2410c"),
    colours_of("purple", "#f3e8ff", "#7e22ce"),
    colours_of("pink", "#fce7f3", "#be185d"),
    colours_of("teal", "#ccfbf1", "#0f766e"),
    colours_of("gray", "#f3f4f6", "#374151"),
    colours_of("brown", "#f5ebe0", "#7c4a1e"),
    colours_of("navy", "#e0e7ff", "#1e3a8a"),
    colours_of("black", "#1f2937", "#f9fafb"),
    colours_of("white", "#ffffff", "#111827"),
];

const fn colours_of(name: &'static str, background: &'static str, accent: &'static str) -> Colours {
    Colours {
        name,
        background,
        accent,
    }
}

/// The theme of a colour name, if it is one.
pub fn colours(name: &str) -> Option<Colours> {
    COLOURS.iter().find(|c| c.name == name).copied()
}

impl Tweaks {
    /// The tweaks with everything that does not fit `fields` dropped: an
    /// unknown colour, a sort or required field that is not there, a
    /// rename to a name that is not an identifier.
    pub(super) fn normalized(&self, fields: &[Field]) -> Tweaks {
        let exists = |name: &str| fields.iter().any(|f| f.name == name);
        let mut required: Vec<String> = Vec::new();
        for name in &self.required {
            let field = fields.iter().find(|f| &f.name == name);
            if field.is_some_and(|f| f.kind != FieldKind::Boolean) && !required.contains(name) {
                required.push(name.clone());
            }
        }
        Tweaks {
            theme: self
                .theme
                .as_deref()
                .and_then(colours)
                .map(|c| c.name.to_string()),
            sort: self.sort.clone().filter(|sort| exists(&sort.field)),
            required,
            renamed: self
                .renamed
                .iter()
                .filter_map(|(old, new)| {
                    let (old_safe, new_safe) = (safe_name(old)?, safe_name(new)?);
                    (old_safe == *old && new_safe == *new && old != new)
                        .then(|| (old.clone(), new.clone()))
                })
                .take(32)
                .collect(),
        }
    }
}
