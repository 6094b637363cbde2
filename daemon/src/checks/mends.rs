//! Known model mistakes, mended before anything is checked and without a
//! model round: templates and static files put where Flask does not look,
//! and third-party imports missing from `requirements.txt` (a project that
//! declares its dependencies in `pyproject.toml` is left as it is).

use std::collections::{BTreeSet, HashSet};
use std::sync::OnceLock;

use appforge_shared::protocol::FileContent;

use crate::process::requirements;
use crate::projects::path::SafePath;

/// Applies every mend to `files`; returns one line per change, for the
/// generation's report.
pub fn apply(files: &mut Vec<FileContent>) -> Vec<String> {
    let mut done = relocate(files, Folder::Templates);
    done.extend(relocate(files, Folder::Static));
    done.extend(add_missing_requirements(files));
    done
}

/// Where Flask looks for a kind of file.
#[derive(Clone, Copy)]
enum Folder {
    Templates,
    Static,
}

impl Folder {
    fn prefix(self) -> &'static str {
        match self {
            Folder::Templates => "templates/",
            Folder::Static => "static/",
        }
    }

    /// The names the code asks this folder for.
    fn referenced(self, files: &[FileContent]) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for f in files {
            match self {
                Folder::Templates if f.path.ends_with(".py") => {
                    names.extend(
                        string_arguments(&f.content, "render_template(")
                            .into_iter()
                            .map(String::from),
                    );
                }
                Folder::Static if f.path.ends_with(".py") || f.path.ends_with(".html") => {
                    names.extend(static_names(&f.content));
                }
                _ => {}
            }
        }
        names.retain(|n| SafePath::new(n).is_ok());
        names
    }
}

/// Moves each file the code asks `folder` for, but that lies elsewhere
/// (beside `app.py`, say), into that folder.
fn relocate(files: &mut [FileContent], folder: Folder) -> Vec<String> {
    let mut done = Vec::new();
    for name in folder.referenced(files) {
        let wanted = format!("{}{name}", folder.prefix());
        if files.iter().any(|f| f.path == wanted) {
            continue;
        }
        // The nearest file of that name: `index.html` before `x/index.html`.
        let found = files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.path == name || f.path.ends_with(&format!("/{name}")))
            .filter(|(_, f)| !f.path.starts_with("templates/") && !f.path.starts_with("static/"))
            .min_by_key(|(_, f)| f.path.len())
            .map(|(i, _)| i);
        if let Some(i) = found {
            done.push(format!(
                "moved {} to {wanted}, where Flask looks for it",
                files[i].path
            ));
            files[i].path = wanted;
        }
    }
    done
}

/// The string literals that open the argument lists after each `call`
/// (`render_template("index.html", …)` gives `index.html`).
fn string_arguments<'a>(code: &'a str, call: &str) -> Vec<&'a str> {
    code.match_indices(call)
        .filter_map(|(at, _)| leading_string(&code[at + call.len()..]))
        .collect()
}

/// The string literal at the start of `text`, after blanks.
fn leading_string(text: &str) -> Option<&str> {
    let text = text.trim_start();
    let quote = text.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let body = &text[1..];
    body.find(quote).map(|end| &body[..end])
}

/// Files asked of `static/`: `url_for('static', filename='x')` and
/// `"/static/x"` in code and pages.
fn static_names(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in code.match_indices("url_for(") {
        let args = &code[at + "url_for(".len()..];
        if leading_string(args) != Some("static") {
            continue;
        }
        let Some(close) = args.find(')') else {
            continue;
        };
        let args = &args[..close];
        if let Some(pos) = args.find("filename") {
            let value = args[pos + "filename".len()..].trim_start();
            if let Some(value) = value.strip_prefix('=') {
                if let Some(name) = leading_string(value) {
                    names.push(name.to_string());
                }
            }
        }
    }
    for (at, _) in code.match_indices("/static/") {
        let opened = code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| matches!(c, '"' | '\'' | '(' | '='));
        if !opened {
            continue;
        }
        let rest = &code[at + "/static/".len()..];
        let end = rest
            .find(|c: char| matches!(c, '"' | '\'' | ')' | '?' | '#') || c.is_whitespace())
            .unwrap_or(rest.len());
        names.push(rest[..end].to_string());
    }
    names
}

/// Distributions whose name differs from the module they install, and
/// other names that count as the same requirement.
const DISTRIBUTIONS: &[(&str, &str, &[&str])] = &[
    ("yaml", "PyYAML", &[]),
    ("PIL", "Pillow", &[]),
    ("flask_sqlalchemy", "Flask-SQLAlchemy", &[]),
    ("flask_cors", "Flask-Cors", &[]),
    ("flask_login", "Flask-Login", &[]),
    ("flask_wtf", "Flask-WTF", &[]),
    ("flask_migrate", "Flask-Migrate", &[]),
    ("flask_socketio", "Flask-SocketIO", &[]),
    ("flask_limiter", "Flask-Limiter", &[]),
    ("flask_caching", "Flask-Caching", &[]),
    ("flask_mail", "Flask-Mail", &[]),
    ("flask_bcrypt", "Flask-Bcrypt", &[]),
    ("flask_jwt_extended", "Flask-JWT-Extended", &[]),
    ("flask_restful", "Flask-RESTful", &[]),
    ("flask_session", "Flask-Session", &[]),
    ("flask_marshmallow", "flask-marshmallow", &[]),
    (
        "cv2",
        "opencv-python-headless",
        &["opencv-python", "opencv-contrib-python"],
    ),
    ("sklearn", "scikit-learn", &[]),
    ("bs4", "beautifulsoup4", &[]),
    ("dateutil", "python-dateutil", &[]),
    ("dotenv", "python-dotenv", &[]),
    ("jwt", "PyJWT", &[]),
    ("magic", "python-magic", &[]),
    ("OpenSSL", "pyOpenSSL", &[]),
    ("Crypto", "pycryptodome", &["pycrypto"]),
    ("serial", "pyserial", &[]),
    ("attr", "attrs", &[]),
    ("docx", "python-docx", &[]),
    ("pptx", "python-pptx", &[]),
    ("fitz", "PyMuPDF", &[]),
    ("MySQLdb", "mysqlclient", &[]),
    ("psycopg2", "psycopg2-binary", &["psycopg2"]),
    ("jose", "python-jose", &[]),
    ("slugify", "python-slugify", &[]),
    ("multipart", "python-multipart", &[]),
    ("google.protobuf", "protobuf", &[]),
    ("zmq", "pyzmq", &[]),
    ("usb", "pyusb", &[]),
    ("Levenshtein", "python-Levenshtein", &["levenshtein"]),
    ("websocket", "websocket-client", &[]),
    ("socketio", "python-socketio", &[]),
    ("engineio", "python-engineio", &[]),
];

/// Modules that come with Flask itself: listing them adds nothing.
const WITH_FLASK: &[&str] = &[
    "flask",
    "werkzeug",
    "jinja2",
    "markupsafe",
    "itsdangerous",
    "click",
    "blinker",
];

fn stdlib() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        include_str!("stdlib.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect()
    })
}

/// The checks' own tools, which they bring to the tests themselves: never
/// added to the app's requirements.
const CHECK_TOOLS: &[&str] = &["pytest", "_pytest"];

/// Adds what the code imports but `requirements.txt` lacks, under its
/// distribution's name.
fn add_missing_requirements(files: &mut Vec<FileContent>) -> Vec<String> {
    // Dependencies declared in pyproject.toml are the project's to keep: a
    // requirements.txt added beside them would replace them all.
    let declared = !files.iter().any(|f| f.path == "requirements.txt")
        && !matches!(crate::process::shape::dependencies(files), Ok(None));
    if declared {
        return Vec::new();
    }
    let own = own_modules(files);
    let mut imported = BTreeSet::new();
    for f in files.iter().filter(|f| f.path.ends_with(".py")) {
        imported.extend(imports(&f.content));
    }
    imported.retain(|m| !CHECK_TOOLS.contains(&m.split('.').next().unwrap_or(m)));
    let listed: HashSet<String> = files
        .iter()
        .find(|f| f.path == "requirements.txt")
        .map(|f| f.content.lines().filter_map(requirements::name).collect())
        .unwrap_or_default();
    let mut added = Vec::new();
    for module in imported {
        let top = module.split('.').next().unwrap_or(&module);
        if own.contains(top) || stdlib().contains(top) || WITH_FLASK.contains(&top) {
            continue;
        }
        let known = DISTRIBUTIONS
            .iter()
            .find(|(m, _, _)| *m == module || *m == top);
        let (distribution, also): (&str, &[&str]) = match known {
            Some((_, d, also)) => (d, also),
            None => (top, &[]),
        };
        let already = std::iter::once(distribution)
            .chain(also.iter().copied())
            .any(|d| listed.contains(&requirements::normalise(d)));
        if !already && !added.iter().any(|(d, _)| d == distribution) {
            added.push((distribution.to_string(), module.clone()));
        }
    }
    if added.is_empty() {
        return Vec::new();
    }
    let file = match files.iter().position(|f| f.path == "requirements.txt") {
        Some(i) => &mut files[i],
        None => {
            files.push(FileContent::new("requirements.txt", ""));
            files.last_mut().expect("just pushed")
        }
    };
    if !file.content.is_empty() && !file.content.ends_with('\n') {
        file.content.push('\n');
    }
    added
        .into_iter()
        .map(|(distribution, module)| {
            file.content.push_str(&distribution);
            file.content.push('\n');
            format!("added {distribution} to requirements.txt (the code imports {module})")
        })
        .collect()
}

/// Whether pytest would collect the file.
pub fn is_test_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.ends_with(".py") && (name.starts_with("test_") || name.ends_with("_test.py"))
}

/// The top-level modules the app itself provides: its `.py` files and its
/// package folders.
fn own_modules(files: &[FileContent]) -> HashSet<String> {
    let mut own = HashSet::new();
    for f in files {
        for (i, part) in f.path.split('/').enumerate() {
            let last = i == f.path.matches('/').count();
            match last {
                false => own.insert(part.to_string()),
                true => own.insert(part.trim_end_matches(".py").to_string()),
            };
        }
    }
    own
}

/// Absolute imports in Python code: `import a.b, c as d` gives `a.b` and
/// `c`; `from e.f import g` gives `e.f`; relative imports give nothing.
fn imports(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_string: Option<&str> = None;
    for line in code.lines() {
        // Skip the insides of triple-quoted strings (docstrings with
        // "import" in their prose).
        let text = line.trim();
        for quote in ["\"\"\"", "'''"] {
            if text.matches(quote).count() % 2 == 1 {
                in_string = match in_string {
                    Some(q) if q == quote => None,
                    None => Some(quote),
                    other => other,
                };
            }
        }
        if in_string.is_some() || text.contains("\"\"\"") || text.contains("'''") {
            continue;
        }
        let text = text.split('#').next().unwrap_or("").trim();
        if let Some(rest) = text.strip_prefix("import ") {
            for part in rest.split(',') {
                let name = part.split_whitespace().next().unwrap_or("");
                if is_module_name(name) {
                    found.push(name.to_string());
                }
            }
        } else if let Some(rest) = text.strip_prefix("from ") {
            let name = rest.split_whitespace().next().unwrap_or("");
            if rest.contains(" import") && is_module_name(name) {
                found.push(name.to_string());
            }
        }
    }
    found
}

fn is_module_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file<'a>(files: &'a [FileContent], path: &str) -> Option<&'a str> {
        files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.content.as_str())
    }

    #[test]
    fn templates_beside_the_app_move_into_templates() {
        let mut files = vec![
            FileContent::new(
                "app.py",
                "from flask import Flask, render_template\n\
                 @app.get('/')\ndef index():\n    return render_template( 'index.html', items=[])\n\
                 def about():\n    return render_template(\"pages/about.html\")\n",
            ),
            FileContent::new("index.html", "<h1>hi</h1>"),
            FileContent::new("app/pages/about.html", "<p>about</p>"),
            FileContent::new("requirements.txt", "flask\n"),
        ];
        let done = apply(&mut files);
        assert_eq!(file(&files, "templates/index.html"), Some("<h1>hi</h1>"));
        assert_eq!(
            file(&files, "templates/pages/about.html"),
            Some("<p>about</p>")
        );
        assert!(file(&files, "index.html").is_none());
        assert_eq!(done.len(), 2, "{done:?}");
        assert!(done[0].contains("index.html"), "{done:?}");
    }

    #[test]
    fn files_already_in_place_and_unknown_names_are_left_alone() {
        let original = vec![
            FileContent::new(
                "app.py",
                "render_template('index.html')\nrender_template(name)\nrender_template('../x')\n",
            ),
            FileContent::new("templates/index.html", "a"),
            FileContent::new("index.html", "b"),
            FileContent::new("requirements.txt", "flask\n"),
        ];
        let mut files = original.clone();
        assert!(apply(&mut files).is_empty());
        assert_eq!(files, original);
    }

    #[test]
    fn static_files_move_where_url_for_and_pages_point() {
        let mut files = vec![
            FileContent::new("app.py", "url_for('static', filename='style.css')\n"),
            FileContent::new(
                "templates/index.html",
                "<script src=\"/static/js/app.js?v=1\"></script>",
            ),
            FileContent::new("style.css", "body{}"),
            FileContent::new("js/app.js", "1"),
            FileContent::new("requirements.txt", "flask\n"),
        ];
        let done = apply(&mut files);
        assert_eq!(file(&files, "static/style.css"), Some("body{}"));
        assert_eq!(file(&files, "static/js/app.js"), Some("1"));
        assert_eq!(done.len(), 2, "{done:?}");
    }

    #[test]
    fn missing_third_party_imports_are_added_by_distribution_name() {
        let mut files = vec![
            FileContent::new(
                "app.py",
                "import os, json\nimport yaml\nfrom PIL import Image\n\
                 from flask_sqlalchemy import SQLAlchemy\nfrom flask import Flask\n\
                 from models import Item\nfrom . import x\nimport requests as r\n\
                 def f():\n    import numpy.linalg\n\"\"\"\nimport notamodule\n\"\"\"\n",
            ),
            FileContent::new("models.py", "import sqlalchemy\n"),
            FileContent::new("requirements.txt", "Flask>=3\nrequests==2.32.0"),
        ];
        let done = apply(&mut files);
        let requirements = file(&files, "requirements.txt").unwrap();
        assert_eq!(
            requirements,
            "Flask>=3\nrequests==2.32.0\nPillow\nFlask-SQLAlchemy\nnumpy\nsqlalchemy\nPyYAML\n"
        );
        assert_eq!(done.len(), 5, "{done:?}");
        assert!(done
            .iter()
            .any(|d| d.contains("PyYAML") && d.contains("yaml")));
    }

    #[test]
    fn listed_requirements_count_under_any_spelling() {
        let mut files = vec![
            FileContent::new(
                "app.py",
                "import yaml\nimport cv2\nimport flask_cors\nimport dateutil.parser\n",
            ),
            FileContent::new(
                "requirements.txt",
                "flask\npyyaml>=6\nopencv-python\nflask_cors\npython_dateutil\n",
            ),
        ];
        assert!(apply(&mut files).is_empty());
    }

    #[test]
    fn pytest_is_never_added_and_a_missing_file_is_made() {
        let mut files = vec![
            FileContent::new("app.py", "from flask import Flask\nimport requests\n"),
            FileContent::new(
                "tests/test_app.py",
                "import pytest\nfrom _pytest.monkeypatch import MonkeyPatch\nfrom app import app\n",
            ),
        ];
        let done = apply(&mut files);
        assert_eq!(file(&files, "requirements.txt"), Some("requests\n"));
        assert_eq!(done.len(), 1);
        assert!(is_test_file("tests/test_app.py") && is_test_file("x_test.py"));
        assert!(!is_test_file("testing.py") && !is_test_file("test_data.json"));
    }
}
