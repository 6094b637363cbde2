//! The shape of a Flask project: which module is run (its target) and
//! where its dependencies are declared. The target is found as Flask's
//! own `flask` command would find it: `app.py` or `wsgi.py`; else the
//! package or module `pyproject.toml` names; else the one top-level
//! package that defines a `create_app` or an `app`.
//!
//! A pure function of a version's files: the daemon never reads the app's
//! folder, which the app can write, to decide how to run it.

use appforge_shared::protocol::FileContent;

/// Why a project's shape could not be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// `pyproject.toml` does not parse.
    #[error("pyproject.toml is not valid TOML ({0}); fix the file")]
    Toml(String),
    /// A field of `pyproject.toml` has the wrong type.
    #[error("pyproject.toml: {0}")]
    Field(&'static str),
    /// Nothing to run.
    #[error(
        "no Flask app to run: add `app.py` or `wsgi.py`, or a package with a `create_app` \
         or an `app` (named in pyproject.toml's [project].name when there are several)"
    )]
    NoTarget,
    /// Several packages could be the app.
    #[error(
        "more than one package could be the app ({}); name the one to run in \
         pyproject.toml's [project].name, or add a `wsgi.py` that imports it",
        .0.join(", ")
    )]
    Ambiguous(Vec<String>),
}

/// How a target was found, for people reading `ps`, checks and exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The project has `app.py`.
    AppPy,
    /// The project has `wsgi.py`.
    WsgiPy,
    /// `pyproject.toml` names it.
    Pyproject,
    /// It is the one top-level package with a `create_app` or an `app`.
    OnlyPackage,
}

impl Found {
    /// In words.
    pub fn as_str(self) -> &'static str {
        match self {
            Found::AppPy => "app.py",
            Found::WsgiPy => "wsgi.py",
            Found::Pyproject => "named in pyproject.toml",
            Found::OnlyPackage => "the one package with a create_app or an app",
        }
    }
}

/// The module an app runs, and how to reach its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The module Flask imports (`app`, `wsgi`, `flaskr`).
    pub module: String,
    /// Whether it lives in `src/` rather than the app's folder.
    pub in_src: bool,
    /// The application within it, as gunicorn names it: `app`,
    /// `application` or `create_app()`.
    pub object: String,
    /// How it was found.
    pub found: Found,
}

impl Target {
    /// The convention of generated apps: `app.py` defining `app`.
    pub fn convention() -> Target {
        Target {
            module: "app".into(),
            in_src: false,
            object: "app".into(),
            found: Found::AppPy,
        }
    }

    /// What `flask --app` is given: the module, or its path under `src/`
    /// (Flask then imports it from there).
    pub fn flask_app(&self) -> String {
        match self.in_src {
            true => format!("src/{}", self.module),
            false => self.module.clone(),
        }
    }

    /// gunicorn's `module:object` (run with `--chdir src` when `in_src`).
    pub fn wsgi(&self) -> String {
        format!("{}:{}", self.module, self.object)
    }

    /// The Python statement that imports it from the app's folder.
    pub fn import_statement(&self) -> String {
        match self.in_src {
            true => format!(
                "import sys; sys.path.insert(0, 'src'); import {}",
                self.module
            ),
            false => format!("import {}", self.module),
        }
    }

    /// The target and how it was found, in words: `flaskr:create_app()
    /// (named in pyproject.toml)`.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.wsgi(), self.found.as_str())
    }
}

/// The target `files` run, or why none can be told.
pub fn target(files: &[FileContent]) -> Result<Target, ShapeError> {
    for (file, module, found) in [
        ("app.py", "app", Found::AppPy),
        ("wsgi.py", "wsgi", Found::WsgiPy),
    ] {
        if let Some(f) = find(files, file) {
            return Ok(Target {
                module: module.into(),
                in_src: false,
                object: object_of(&f.content),
                found,
            });
        }
    }
    if let Some(project) = pyproject(files)? {
        for name in named_modules(&project)? {
            if let Some((in_src, source)) = module_source(files, &name) {
                return Ok(Target {
                    module: name,
                    in_src,
                    object: object_of(source),
                    found: Found::Pyproject,
                });
            }
        }
    }
    let mut candidates: Vec<(String, bool, &str)> = files
        .iter()
        .filter_map(|f| {
            let (in_src, rest) = match f.path.strip_prefix("src/") {
                Some(rest) => (true, rest),
                None => (false, f.path.as_str()),
            };
            let name = rest.strip_suffix("/__init__.py")?;
            (is_identifier(name) && name != "tests" && declares_app(&f.content))
                .then(|| (name.to_string(), in_src, f.content.as_str()))
        })
        .collect();
    match candidates.len() {
        0 => Err(ShapeError::NoTarget),
        1 => {
            let (module, in_src, source) = candidates.remove(0);
            Ok(Target {
                module,
                in_src,
                object: object_of(source),
                found: Found::OnlyPackage,
            })
        }
        _ => {
            let mut names: Vec<String> = candidates
                .into_iter()
                .map(|(name, in_src, _)| match in_src {
                    true => format!("src/{name}"),
                    false => name,
                })
                .collect();
            names.sort();
            Err(ShapeError::Ambiguous(names))
        }
    }
}

/// The requirement lines of `pyproject.toml`'s `[project].dependencies`,
/// if the project declares them there.
pub fn dependencies(files: &[FileContent]) -> Result<Option<String>, ShapeError> {
    let Some(project) = pyproject(files)? else {
        return Ok(None);
    };
    let Some(deps) = project.get("project").and_then(|p| p.get("dependencies")) else {
        return Ok(None);
    };
    let wrong = ShapeError::Field("[project].dependencies must be a list of requirement strings");
    let lines = deps
        .as_array()
        .ok_or_else(|| wrong.clone())?
        .iter()
        .map(|d| {
            d.as_str()
                .map(|s| format!("{s}\n"))
                .ok_or_else(|| wrong.clone())
        })
        .collect::<Result<String, _>>()?;
    Ok(Some(lines))
}

/// `pyproject.toml`, parsed, if the project has one.
fn pyproject(files: &[FileContent]) -> Result<Option<toml::Table>, ShapeError> {
    find(files, "pyproject.toml")
        .map(|f| {
            f.content
                .parse::<toml::Table>()
                .map_err(|e| ShapeError::Toml(e.message().to_string()))
        })
        .transpose()
}

/// The modules `pyproject.toml` names, most specific first: the build
/// backend's module settings, then `[project].name` as a module name.
fn named_modules(project: &toml::Table) -> Result<Vec<String>, ShapeError> {
    let at = |path: &[&str]| -> Option<&toml::Value> {
        let mut value = project.get(path[0])?;
        for key in &path[1..] {
            value = value.get(key)?;
        }
        Some(value)
    };
    let strings = |v: Option<&toml::Value>| -> Vec<String> {
        v.and_then(toml::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut names = Vec::new();
    // setuptools: `packages = ["flaskr"]`; hatch: `packages = ["src/flaskr"]`.
    names.extend(strings(at(&["tool", "setuptools", "packages"])));
    names.extend(strings(at(&[
        "tool", "hatch", "build", "targets", "wheel", "packages",
    ])));
    if let Some(flit) = at(&["tool", "flit", "module", "name"]).and_then(toml::Value::as_str) {
        names.push(flit.to_string());
    }
    // poetry: `packages = [{ include = "flaskr", from = "src" }]`.
    if let Some(poetry) = at(&["tool", "poetry", "packages"]).and_then(toml::Value::as_array) {
        names.extend(
            poetry
                .iter()
                .filter_map(|p| p.get("include")?.as_str().map(String::from)),
        );
    }
    if let Some(name) = at(&["project", "name"]) {
        let name = name
            .as_str()
            .ok_or(ShapeError::Field("[project].name must be a string"))?;
        names.push(name.to_ascii_lowercase().replace(['-', '.'], "_"));
    }
    Ok(names
        .into_iter()
        .map(|n| n.trim_start_matches("src/").to_string())
        .filter(|n| is_identifier(n))
        .collect())
}

/// Where module `name` is (in `src/` or not) and its source: a package's
/// `__init__.py` or a module's file.
fn module_source<'a>(files: &'a [FileContent], name: &str) -> Option<(bool, &'a str)> {
    [false, true].into_iter().find_map(|in_src| {
        let prefix = if in_src { "src/" } else { "" };
        [
            format!("{prefix}{name}/__init__.py"),
            format!("{prefix}{name}.py"),
        ]
        .iter()
        .find_map(|path| find(files, path))
        .map(|f| (in_src, f.content.as_str()))
    })
}

/// Whether a module's source gives Flask an application: a factory or an
/// `app` at module level.
fn declares_app(source: &str) -> bool {
    factory(source).is_some() || defines_module_variable(source, "app")
}

/// The application in a module's source, as gunicorn names it. Flask
/// looks for `app`, then `application`, then a `create_app` or `make_app`
/// factory; the default is the convention, `app`.
fn object_of(source: &str) -> String {
    if defines_module_variable(source, "app") {
        "app".into()
    } else if defines_module_variable(source, "application") {
        "application".into()
    } else if let Some(factory) = factory(source) {
        format!("{factory}()")
    } else {
        "app".into()
    }
}

/// The factory a module's source defines at module level, if any.
fn factory(source: &str) -> Option<&'static str> {
    ["create_app", "make_app"].into_iter().find(|name| {
        source.lines().any(|l| {
            l.strip_prefix("def ")
                .is_some_and(|r| r.starts_with(&format!("{name}(")))
        })
    })
}

/// Whether `source` assigns `name` at module level (`app = ...` or
/// `app: Flask = ...`).
pub fn defines_module_variable(source: &str, name: &str) -> bool {
    source.lines().any(|line| {
        let Some(rest) = line.strip_prefix(name) else {
            return false;
        };
        let rest = rest.trim_start_matches([' ', '\t']);
        if let Some(after) = rest.strip_prefix('=') {
            !after.starts_with('=')
        } else {
            // An annotated assignment; a bare annotation binds nothing.
            rest.starts_with(':') && rest.contains('=')
        }
    })
}

/// Whether `name` is a plain Python identifier (ASCII).
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn find<'a>(files: &'a [FileContent], path: &str) -> Option<&'a FileContent> {
    files.iter().find(|f| f.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<FileContent> {
        list.iter().map(|(p, c)| FileContent::new(*p, *c)).collect()
    }

    const FACTORY: &str =
        "from flask import Flask\n\ndef create_app():\n    return Flask(__name__)\n";

    #[test]
    fn app_py_comes_first_and_keeps_its_object() {
        let t = target(&files(&[
            ("app.py", "app = Flask(__name__)\n"),
            ("wsgi.py", "from app import app\n"),
        ]))
        .unwrap();
        assert_eq!((t.module.as_str(), t.found), ("app", Found::AppPy));
        assert_eq!(t.wsgi(), "app:app");
        assert_eq!(t.flask_app(), "app");
        assert_eq!(t.import_statement(), "import app");
    }

    #[test]
    fn wsgi_py_is_a_target() {
        let t = target(&files(&[
            (
                "wsgi.py",
                "from shop import create_app\napplication = create_app()\n",
            ),
            ("shop/__init__.py", FACTORY),
        ]))
        .unwrap();
        assert_eq!(t.wsgi(), "wsgi:application");
        assert_eq!(t.found, Found::WsgiPy);
    }

    #[test]
    fn pyproject_names_the_package() {
        let project =
            "[project]\nname = \"Flask-Shop\"\ndependencies = [\"flask>=3\", \"requests\"]\n";
        let list = files(&[
            ("pyproject.toml", project),
            ("flask_shop/__init__.py", FACTORY),
            ("other/__init__.py", "app = 1\n"),
        ]);
        let t = target(&list).unwrap();
        assert_eq!(t.wsgi(), "flask_shop:create_app()");
        assert_eq!(t.found, Found::Pyproject);
        assert_eq!(
            dependencies(&list).unwrap().as_deref(),
            Some("flask>=3\nrequests\n")
        );
    }

    #[test]
    fn the_build_backends_module_setting_names_it() {
        let project = "[project]\nname = \"shop-app\"\n[tool.hatch.build.targets.wheel]\npackages = [\"src/shop\"]\n";
        let t = target(&files(&[
            ("pyproject.toml", project),
            ("src/shop/__init__.py", FACTORY),
            ("other/__init__.py", "app = 1\n"),
        ]))
        .unwrap();
        assert_eq!((t.module.as_str(), t.in_src), ("shop", true));
        assert_eq!(t.flask_app(), "src/shop");
        let flit = "[tool.flit.module]\nname = \"single\"\n";
        let t = target(&files(&[
            ("pyproject.toml", flit),
            ("single.py", "app = Flask(__name__)\n"),
        ]))
        .unwrap();
        assert_eq!(t.wsgi(), "single:app");
    }

    #[test]
    fn the_one_package_with_an_app_is_the_target() {
        let t = target(&files(&[
            ("flaskr/__init__.py", FACTORY),
            ("flaskr/db.py", "def get_db(): ...\n"),
            ("helpers/__init__.py", "X = 1\n"),
            ("tests/__init__.py", "app = None\n"),
            ("tests/conftest.py", "from flaskr import create_app\n"),
        ]))
        .unwrap();
        assert_eq!(
            t.describe(),
            "flaskr:create_app() (the one package with a create_app or an app)"
        );
        // A pyproject.toml naming no package here falls through to it.
        let t = target(&files(&[
            ("pyproject.toml", "[project]\nname = \"flaskr-tutorial\"\n"),
            ("flaskr/__init__.py", FACTORY),
        ]))
        .unwrap();
        assert_eq!(t.found, Found::OnlyPackage);
    }

    #[test]
    fn two_candidates_are_an_error_naming_both() {
        let err = target(&files(&[
            ("shop/__init__.py", FACTORY),
            ("src/admin/__init__.py", "app = Flask(__name__)\n"),
        ]))
        .unwrap_err();
        assert_eq!(
            err,
            ShapeError::Ambiguous(vec!["shop".into(), "src/admin".into()])
        );
        let text = err.to_string();
        assert!(text.contains("shop, src/admin"), "{text}");
        assert!(text.contains("[project].name"), "{text}");
    }

    #[test]
    fn nothing_to_run_and_bad_pyprojects_are_errors() {
        assert_eq!(
            target(&files(&[("lib/__init__.py", "X = 1\n")])),
            Err(ShapeError::NoTarget)
        );
        let bad = files(&[("pyproject.toml", "[project\nname=")]);
        assert!(matches!(target(&bad), Err(ShapeError::Toml(_))));
        assert!(matches!(dependencies(&bad), Err(ShapeError::Toml(_))));
        let wrong = files(&[("pyproject.toml", "[project]\ndependencies = \"flask\"\n")]);
        assert!(matches!(dependencies(&wrong), Err(ShapeError::Field(_))));
        let none = files(&[("pyproject.toml", "[project]\nname = \"x\"\n")]);
        assert_eq!(dependencies(&none), Ok(None));
    }
}
