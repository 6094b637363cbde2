//! `import`: read a folder the user already has and make it a new project.

use appforge_shared::protocol::{
    CheckOptions, FileContent, ImportRequest, Progress, Reply, Request, SavedVersion,
};
use serde_json::json;

use super::accounts::unexpected;
use super::saved::saved_json;
use super::Ctx;
use crate::cli::ImportArgs;
use crate::error::ClientError;
use crate::escape::{sanitize, Sgr};
use crate::folder::{self, Folder, LeftOut};
use crate::output::emit;
use crate::session;

/// Files listed one per line in the summary; more are counted.
const LISTED: usize = 30;

/// `appforge import DIR [--name N] [--no-check] [--keep-broken] [--repair]`
pub async fn import(ctx: &mut Ctx, args: ImportArgs) -> Result<(), ClientError> {
    let read = folder::read(&args.dir).map_err(|e| ClientError::Usage(e.to_string()))?;
    if read.files.is_empty() {
        return Err(ClientError::Usage(format!(
            "{} has no text files to import; nothing was imported",
            args.dir.display()
        )));
    }
    let folder_name = std::fs::canonicalize(&args.dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "app".into());
    let request = Request::Import(ImportRequest {
        name: args.name,
        folder: folder_name,
        files: read.files.clone(),
        checks: CheckOptions {
            check: !args.no_check,
            keep_broken: args.keep_broken,
            repair_rounds: None,
        },
        repair: args.repair,
        provider: args.ai.provider,
        model: args.ai.model,
    });
    let quiet = ctx.json;
    if !quiet {
        eprintln!(
            "Importing {} ({}) from {}",
            plural(read.files.len(), "file"),
            plural(total_lines(&read.files), "line"),
            args.dir.display()
        );
    }
    let reply = ctx
        .conn
        .request(session::load(), request, |p| {
            if let (Progress::Step(step), false) = (p, quiet) {
                eprintln!("  {}", sanitize(&step, Sgr::Drop));
            }
        })
        .await?;
    let Reply::Saved(saved) = reply else {
        return Err(unexpected(&reply));
    };
    emit(ctx.json, json_doc(&saved, &read), || summary(&saved, &read));
    Ok(())
}

fn json_doc(saved: &SavedVersion, read: &Folder) -> serde_json::Value {
    let mut doc = saved_json(saved);
    doc["kind"] = json!(if saved.version > 1 { "fix" } else { "import" });
    doc["repaired"] = json!(saved.version > 1);
    doc["files"] = read
        .files
        .iter()
        .map(|f| json!({"path": f.path, "lines": lines(f)}))
        .collect();
    doc["left_out"] = read
        .left_out
        .iter()
        .map(|l| json!({"path": l.path, "why": l.why}))
        .collect();
    doc
}

fn summary(saved: &SavedVersion, read: &Folder) -> String {
    let mut out = format!(
        "{} ({}):\n",
        plural(read.files.len(), "file"),
        plural(total_lines(&read.files), "line")
    );
    let width = read
        .files
        .iter()
        .take(LISTED)
        .map(|f| f.path.chars().count())
        .max()
        .unwrap_or(0);
    for f in read.files.iter().take(LISTED) {
        out.push_str(&format!("  {:width$}  {:>6}\n", f.path, lines(f)));
    }
    if read.files.len() > LISTED {
        out.push_str(&format!("  … and {} more\n", read.files.len() - LISTED));
    }
    if !read.left_out.is_empty() {
        out.push_str(&format!("Left out: {}\n", left_out_line(&read.left_out)));
    }
    out.push_str(&super::generate::checks_line(
        &saved.check_status,
        &saved.checks,
    ));
    let what = match saved.version {
        1 => "(import)".to_string(),
        // Version 1 is the folder as it was; the repair came after it.
        _ => format!(
            "(the model's repair of version 1, the folder as it was; {} changed: {})",
            saved.changed.len(),
            saved.changed.join(", ")
        ),
    };
    out.push_str(&format!(
        "\nSaved as `{}` version {} {what}. Start it with `appforge run {}`.",
        saved.name, saved.version, saved.name
    ));
    out
}

/// What was left out, grouped by why: binary files first, as they may be
/// missed.
fn left_out_line(left: &[LeftOut]) -> String {
    let mut whys: Vec<&str> = Vec::new();
    for l in left {
        if !whys.contains(&l.why) {
            whys.push(l.why);
        }
    }
    whys.sort_by_key(|why| !why.starts_with("binary"));
    whys.iter()
        .map(|why| {
            let paths: Vec<&str> = left
                .iter()
                .filter(|l| l.why == *why)
                .map(|l| l.path.as_str())
                .collect();
            format!("{} ({why})", paths.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn lines(f: &FileContent) -> usize {
    f.content.lines().count()
}

fn total_lines(files: &[FileContent]) -> usize {
    files.iter().map(lines).sum()
}

fn plural(n: usize, word: &str) -> String {
    match n {
        1 => format!("1 {word}"),
        n => format!("{n} {word}s"),
    }
}
