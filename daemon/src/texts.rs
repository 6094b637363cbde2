//! The text files appforge writes for people to read and run: the offline
//! scaffolder's app and the export's deployment files. Their text lives in
//! template files under `daemon/templates/`, so generated Python is edited as
//! Python and a README as Markdown; this module renders them.
//!
//! The templates are compiled into the binary. Rendering is deterministic:
//! the same context always gives the same bytes.

use std::sync::LazyLock;

use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// Every template: its name and its source, embedded at build time.
const SOURCES: &[(&str, &str)] = &[
    (
        "scaffold/app.py",
        include_str!("../templates/scaffold/app.py.j2"),
    ),
    (
        "scaffold/index.html",
        include_str!("../templates/scaffold/index.html.j2"),
    ),
    (
        "scaffold/test_app.py",
        include_str!("../templates/scaffold/test_app.py.j2"),
    ),
    (
        "scaffold/README.md",
        include_str!("../templates/scaffold/README.md.j2"),
    ),
    // The export's deployment files.
    (
        "export/Dockerfile",
        include_str!("../templates/export/Dockerfile.j2"),
    ),
    (
        "export/dockerignore",
        include_str!("../templates/export/dockerignore.j2"),
    ),
    (
        "export/README.md",
        include_str!("../templates/export/README.md.j2"),
    ),
    (
        "export/test_smoke.py",
        include_str!("../templates/export/test_smoke.py.j2"),
    ),
    (
        "export/ci.yml",
        include_str!("../templates/export/ci.yml.j2"),
    ),
    (
        "export/requirements.txt",
        include_str!("../templates/export/requirements.txt.j2"),
    ),
    // The export's files for `--target k8s` and `--target compose`.
    (
        "export/k8s/deployment.yaml",
        include_str!("../templates/export/k8s/deployment.yaml.j2"),
    ),
    (
        "export/k8s/service.yaml",
        include_str!("../templates/export/k8s/service.yaml.j2"),
    ),
    (
        "export/k8s/pvc.yaml",
        include_str!("../templates/export/k8s/pvc.yaml.j2"),
    ),
    (
        "export/compose.yaml",
        include_str!("../templates/export/compose.yaml.j2"),
    ),
];

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            // Block tags on their own lines leave no blank lines behind.
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    // A misspelt variable is an error in the tests, never an empty string in an app.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Escaping is explicit, with the filters below: each file type needs its own.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_filter("html", |text: &str| escape_html(text));
    env.add_filter("markdown", |text: &str, max_chars: Option<usize>| {
        escape_markdown(text, max_chars.unwrap_or(usize::MAX))
    });
    for (name, source) in SOURCES {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("template {name} does not compile: {e:#}"));
    }
    env
});

/// Renders template `name` with `context`.
///
/// The templates are part of the binary and every one is rendered by the
/// unit tests, so a failure here is a bug in a template, not bad input.
pub fn render(name: &str, context: &impl Serialize) -> String {
    ENVIRONMENT
        .get_template(name)
        .and_then(|template| template.render(Serde(context)))
        .unwrap_or_else(|e| panic!("template {name} failed to render: {e:#}"))
}

/// Escapes text for HTML element content and attributes. Braces are escaped
/// too, since a generated page may itself be a Jinja template, and backticks,
/// so that a reply's code fence can never close early.
pub fn escape_html(text: &str) -> String {
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

/// Prompt text for Markdown: one line of at most `max_chars`, no HTML, no
/// backticks (they could close a fence).
pub fn escape_markdown(text: &str, max_chars: usize) -> String {
    one_line(text, max_chars)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('`', "'")
}

/// Collapses whitespace and control characters and caps the length (with "...").
pub fn one_line(text: &str, max_chars: usize) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        for (name, _) in SOURCES {
            assert!(ENVIRONMENT.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn a_missing_variable_is_an_error_not_an_empty_string() {
        let template = ENVIRONMENT.template_from_str("{{ nobody }}").unwrap();
        assert!(template.render(minijinja::context! {}).is_err());
    }

    #[test]
    fn prompt_text_is_escaped_for_its_file_type() {
        assert_eq!(
            escape_html("{{ x }}<b>`"),
            "&#123;&#123; x &#125;&#125;&lt;b&gt;&#96;"
        );
        assert_eq!(escape_markdown("a\n`b` <i>", 100), "a 'b' &lt;i&gt;");
        assert_eq!(escape_markdown("abcdefgh", 6), "abc...");
    }
}
