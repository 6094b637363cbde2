//! Checks generated files before anything is saved: there is a module to
//! run (see `process::shape`), the requirements list Flask, and every
//! Python file compiles.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use appforge_shared::protocol::FileContent;

use crate::process::{requirements, shape};

/// Why generated files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The files are wrong; a model can be asked to fix them.
    #[error("{0}")]
    Invalid(String),
    /// The check itself could not run.
    #[error("could not check the generated code: {0}")]
    Checker(String),
}

const SYNTAX_CHECK: &str = r#"
import json, sys
errors = []
for path, source in json.load(sys.stdin):
    try:
        compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as e:
        errors.append(f"{path}, line {e.lineno or 0}: {e.msg}")
    except ValueError as e:
        errors.append(f"{path}: {e}")
json.dump(errors, sys.stdout)
"#;

/// Checks the files, adding Flask to `requirements.txt` when it is
/// missing (unless `pyproject.toml` declares the dependencies).
pub async fn check(files: &mut Vec<FileContent>, python: &Path) -> Result<(), CheckError> {
    let invalid = |e: &dyn std::fmt::Display| CheckError::Invalid(e.to_string());
    shape::target(files).map_err(|e| invalid(&e))?;
    let declared = shape::dependencies(files).map_err(|e| invalid(&e))?;
    if declared.is_none() || files.iter().any(|f| f.path == "requirements.txt") {
        ensure_flask(files);
    }
    let requirements = requirements::of(files).map_err(|e| invalid(&e))?;
    requirements::check(&requirements).map_err(|e| invalid(&e))?;
    let errors = syntax_errors(files, python).await?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CheckError::Invalid(format!(
            "Python syntax errors: {}",
            errors.join("; ")
        )))
    }
}

/// Makes sure `requirements.txt` exists and names Flask.
fn ensure_flask(files: &mut Vec<FileContent>) {
    let names_flask = |text: &str| {
        text.lines()
            .any(|line| requirements::name(line).as_deref() == Some("flask"))
    };
    match files.iter_mut().find(|f| f.path == "requirements.txt") {
        Some(f) if names_flask(&f.content) => {}
        Some(f) => f.content = format!("flask>=3.0\n{}", f.content),
        None => files.push(FileContent {
            path: "requirements.txt".into(),
            content: "flask>=3.0\n".into(),
        }),
    }
}

async fn syntax_errors(files: &[FileContent], python: &Path) -> Result<Vec<String>, CheckError> {
    let sources: Vec<(&str, &str)> = files
        .iter()
        .filter(|f| f.path.ends_with(".py"))
        .map(|f| (f.path.as_str(), f.content.as_str()))
        .collect();
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let input = serde_json::to_vec(&sources).map_err(|e| CheckError::Checker(e.to_string()))?;
    // -I: isolated, so nothing in the environment or the folder can change
    // what the check does.
    let mut child = tokio::process::Command::new(python)
        .args(["-I", "-c", SYNTAX_CHECK])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            CheckError::Checker(format!(
                "could not run `{}` ({e}); install Python 3 or point --python at it",
                python.display()
            ))
        })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = async move {
        let _ = stdin.write_all(&input).await;
    };
    let (_, output) = tokio::join!(writer, child.wait_with_output());
    let output = output.map_err(|e| CheckError::Checker(e.to_string()))?;
    if !output.status.success() {
        return Err(CheckError::Checker(format!(
            "`{}` failed: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| CheckError::Checker(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flask_is_added_when_missing() {
        let mut files = vec![FileContent::new("app.py", "")];
        ensure_flask(&mut files);
        assert_eq!(files[1].content, "flask>=3.0\n");
        let mut files = vec![FileContent::new("requirements.txt", "requests\n")];
        ensure_flask(&mut files);
        assert_eq!(files[0].content, "flask>=3.0\nrequests\n");
        let mut files = vec![FileContent::new("requirements.txt", "Flask==3.1.0\n")];
        ensure_flask(&mut files);
        assert_eq!(files[0].content, "Flask==3.1.0\n");
        let mut files = vec![FileContent::new("requirements.txt", "flask-cors\n")];
        ensure_flask(&mut files);
        assert!(files[0].content.starts_with("flask>=3.0\n"));
    }

    #[tokio::test]
    async fn syntax_errors_are_found_with_their_line() {
        let python = Path::new("python3");
        let mut good = vec![FileContent::new(
            "app.py",
            "from flask import Flask\napp = Flask(__name__)\n",
        )];
        check(&mut good, python).await.unwrap();
        let mut bad = vec![FileContent::new("app.py", "x = 1\ndef broken(:\n")];
        let err = check(&mut bad, python).await.unwrap_err().to_string();
        assert!(err.contains("app.py, line 2"), "{err}");
        let mut none = vec![FileContent::new("main.py", "")];
        assert!(matches!(
            check(&mut none, python).await,
            Err(CheckError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn a_package_declaring_its_dependencies_in_pyproject_gets_no_requirements_txt() {
        let python = Path::new("python3");
        let mut files = vec![
            FileContent::new(
                "pyproject.toml",
                "[project]\nname = \"shop\"\ndependencies = [\"flask\"]\n",
            ),
            FileContent::new("shop/__init__.py", "def create_app():\n    pass\n"),
        ];
        check(&mut files, python).await.unwrap();
        assert_eq!(files.len(), 2);
        // Options are refused there as in requirements.txt.
        files[0].content = "[project]\nname = \"shop\"\ndependencies = [\"-e ../x\"]\n".into();
        let err = check(&mut files, python).await.unwrap_err().to_string();
        assert!(err.contains("-e ../x"), "{err}");
        // Two packages that could be the app: the error names both.
        files[0].content = "[project]\nname = \"other\"\n".into();
        files.push(FileContent::new("admin/__init__.py", "app = None\n"));
        let err = check(&mut files, python).await.unwrap_err().to_string();
        assert!(err.contains("(admin, shop)"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_interpreter_is_a_checker_error() {
        let mut files = vec![FileContent::new("app.py", "")];
        let err = check(&mut files, Path::new("/nonexistent/python"))
            .await
            .unwrap_err();
        assert!(matches!(err, CheckError::Checker(_)), "{err}");
    }
}
