//! `generate`, `improve` and `fix`: the daemon's steps while the model
//! works, then a short summary. `generate` lists the files it made with
//! their sizes; `improve` and `fix` show what changed, as a diff stat and
//! the diff. `--files` prints every file too; `--json` is one document.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use appforge_shared::protocol::{
    CheckStep, DiffRequest, FixRequest, GenerateRequest, Generated, ImproveRequest, Progress,
    Reply, Request, SaveGenerationRequest,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use unicode_width::UnicodeWidthStr;

use super::accounts::unexpected;
use super::Ctx;
use crate::ask;
use crate::cli::{FixArgs, GenerateArgs, ImproveArgs};
use crate::diffstat;
use crate::error::ClientError;
use crate::escape::{sanitize, Sgr};
use crate::output;
use crate::render;
use crate::session;

/// `appforge generate PROMPT`
pub async fn generate(ctx: &mut Ctx, args: GenerateArgs) -> Result<(), ClientError> {
    let request = Request::Generate(GenerateRequest {
        prompt: args.prompt,
        save: args.save,
        name: args.name.clone(),
        provider: args.ai.provider,
        model: args.ai.model,
        checks: args.checks.options(),
    });
    let mut generated = run(ctx, request).await?;
    if ctx.json {
        show_json(&generated);
        return Ok(());
    }
    if args.files {
        print_files(&generated);
    }
    let interactive = ask::possible() && std::io::stdout().is_terminal();
    if generated.project.is_none() && interactive {
        print_text(&made(&generated, Made::Files));
        if ask::yes("Save this app as a project?") {
            let reply = ctx
                .conn
                .request(
                    session::load(),
                    Request::SaveGeneration(SaveGenerationRequest {
                        generation_id: generated.generation_id,
                        name: args.name,
                    }),
                    |_| {},
                )
                .await?;
            let Reply::Generated(saved) = reply else {
                return Err(unexpected(&reply));
            };
            generated.project = saved.project;
        }
        print_text(&saved_line(&generated, Made::Files));
        return Ok(());
    }
    print_text(&format!(
        "{}\n{}",
        made(&generated, Made::Files),
        saved_line(&generated, Made::Files)
    ));
    Ok(())
}

/// `appforge improve PROJECT PROMPT`
pub async fn improve(ctx: &mut Ctx, args: ImproveArgs) -> Result<(), ClientError> {
    let request = Request::Improve(ImproveRequest {
        project: args.project,
        prompt: args.prompt,
        provider: args.ai.provider,
        model: args.ai.model,
        checks: args.checks.options(),
    });
    let generated = run(ctx, request).await?;
    changed(ctx, &generated, args.files).await
}

/// `appforge fix PROJECT [PROMPT]`
pub async fn fix(ctx: &mut Ctx, args: FixArgs) -> Result<(), ClientError> {
    let request = Request::Fix(FixRequest {
        project: args.project,
        prompt: args.prompt,
        provider: args.ai.provider,
        model: args.ai.model,
        checks: args.checks.options(),
    });
    let generated = run(ctx, request).await?;
    changed(ctx, &generated, args.files).await
}

/// Shows a new version made by `improve` or `fix`: what changed from the
/// version before it (the diff stat, then the diff or, with `--files`,
/// every file), then the summary.
async fn changed(ctx: &mut Ctx, g: &Generated, files: bool) -> Result<(), ClientError> {
    if ctx.json {
        show_json(g);
        return Ok(());
    }
    // An unchanged result has no diff of its own: the newest version's
    // would be shown as if it were this one.
    if let Some(project) = g.project.as_ref().filter(|_| !g.unchanged) {
        let reply = ctx
            .call(Request::Diff(DiffRequest {
                project: project.project_id.to_string(),
                from: None,
                to: Some(project.version),
            }))
            .await;
        match reply {
            Ok(Reply::Diff(d)) => print_diff(&d.unified, !files),
            // The version is saved either way: the diff is only a view of it.
            Ok(other) => eprintln!("appforge: could not show the diff: {}", unexpected(&other)),
            Err(e) => eprintln!("appforge: could not show the diff: {e}"),
        }
    }
    if files {
        print_files(g);
    }
    print_text(&format!(
        "{}\n{}",
        made(g, Made::Changes),
        saved_line(g, Made::Changes)
    ));
    Ok(())
}

/// The diff stat and, when `whole`, the diff; coloured where stdout shows colour.
fn print_diff(unified: &str, whole: bool) {
    let colour = output::colour();
    let stat = diffstat::parse(unified);
    if stat.is_empty() {
        print_text("No file changed.");
        return;
    }
    let paint = |added: bool, marks: &str| match (colour, marks.is_empty()) {
        (true, false) => render::paint_change(added, marks),
        _ => marks.to_string(),
    };
    // Paths come from the model: sanitised like the rest of its text.
    let stat = sanitize(&diffstat::render(&stat, paint), output::stdout_sgr()).into_owned();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{stat}");
    if whole {
        let diff = match colour {
            true => render::colour_diff(unified),
            false => sanitize(unified, Sgr::Drop).into_owned(),
        };
        let _ = writeln!(out);
        let _ = write!(out, "{diff}");
        if !diff.ends_with('\n') {
            let _ = writeln!(out);
        }
        let _ = writeln!(out);
    }
}

/// Prints text for people, sanitised, on stdout; a closed pipe ends quietly.
fn print_text(text: &str) {
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        sanitize(text, output::stdout_sgr())
    );
}

/// Sends the request and returns the result. The daemon's steps are
/// printed on stderr as they come (with a spinner on a terminal), so that
/// stdout holds only the result.
async fn run(ctx: &mut Ctx, request: Request) -> Result<Generated, ClientError> {
    let quiet = ctx.json;
    let spinner = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    let say = |line: String| match &spinner {
        Some(bar) => bar.println(line),
        None if !quiet => eprintln!("{line}"),
        None => {}
    };
    let mut step = String::from("working");
    let mut received = 0usize;
    let reply = ctx
        .conn
        .request(session::load(), request, |p| {
            match p {
                Progress::Step(s) => {
                    step = sanitize(&s, Sgr::Drop).into_owned();
                    say(format!("  {step}"));
                    received = 0;
                }
                Progress::Text(t) => received += t.len(),
                Progress::Restart(why) => {
                    say(format!("  ↻ {}", sanitize(&why, Sgr::Drop)));
                    received = 0;
                }
                Progress::Log(_) | Progress::LogLines(_) => {}
            }
            if let Some(bar) = &spinner {
                match received {
                    0 => bar.set_message(step.clone()),
                    n => bar.set_message(format!("{step}: {n} bytes received")),
                }
            }
        })
        .await;
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    match reply? {
        Reply::Generated(g) => Ok(g),
        other => Err(unexpected(&other)),
    }
}

/// The `--json` document of a generation.
fn show_json(g: &Generated) {
    let files: Vec<_> = g
        .files
        .iter()
        .map(|f| json!({"path": f.path, "bytes": f.content.len()}))
        .collect();
    let project = g.project.as_ref();
    let doc = json!({
        "project_id": project.map(|p| p.project_id),
        "name": project.map(|p| p.name.clone()),
        "version": project.map(|p| p.version),
        "generation_id": g.generation_id,
        "files": files,
        "tokens_used": g.tokens_used,
        "provider": g.provider,
        "model": g.model,
        "duration_ms": g.duration_ms,
        "check_status": g.check_status,
        "checks": g.checks.iter().map(|c| json!({"step": c.step, "passed": c.passed, "ms": c.millis})).collect::<Vec<_>>(),
        "mends": g.mends,
        "repair_rounds": g.repair_rounds,
        "restarted": g.restarted,
        "deleted": g.deleted,
        "unchanged": g.unchanged,
        "understood": g.understood,
        "docs_only": g.docs_only,
    });
    println!("{}", output::json_line(&doc));
}

fn print_files(g: &Generated) {
    // A model wrote these: shown sanitised, like `show`.
    let sgr = crate::output::stdout_sgr();
    let mut out = std::io::stdout().lock();
    for f in &g.files {
        let path = sanitize(&f.path, Sgr::Drop);
        let _ = writeln!(out, "── {path} ({} bytes) ──", f.content.len());
        let _ = write!(out, "{}", sanitize(&f.content, sgr));
        if !f.content.ends_with('\n') {
            let _ = writeln!(out);
        }
    }
}

/// What [`made`] lists first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    /// Every file with its size: a new app.
    Files,
    /// Only the counts: the diff has shown the changes.
    Changes,
}

/// What was made and how: the files (or their count), the model and the
/// cost, what was mended or deleted, and the checks.
fn made(g: &Generated, what: Made) -> String {
    let mut how = format!(
        "{} from {} ({}) in {:.1} s, {} tokens",
        match (what, g.files.len()) {
            (_, 1) => "1 file".to_string(),
            (Made::Files, n) => format!("{n} files"),
            (Made::Changes, n) => format!("{n} files in all"),
        },
        g.provider,
        g.model,
        g.duration_ms as f64 / 1000.0,
        g.tokens_used
    );
    if g.repair_rounds > 0 {
        how.push_str(&format!(
            ", {}",
            render::count(g.repair_rounds, "repair round", "repair rounds")
        ));
    }
    let mut lines: Vec<String> = g
        .understood
        .iter()
        .map(|u| format!("understood: {u}"))
        .collect();
    lines.push(how);
    if what == Made::Files {
        if let Some(last) = lines.last_mut() {
            last.push(':');
        }
        lines.push(file_sizes(g));
    }
    lines.extend(g.mends.iter().map(|m| format!("mended: {m}")));
    lines.extend(g.deleted.iter().map(|p| format!("deleted: {p}")));
    // Code that did not change was not run again: the saved line says so.
    if !g.docs_only && !g.unchanged {
        lines.push(checks_line(&g.check_status, &g.checks));
    }
    lines.join("\n")
}

/// One line per file: its path and its line count, aligned.
fn file_sizes(g: &Generated) -> String {
    let width = g.files.iter().map(|f| f.path.width()).max().unwrap_or(0);
    let rows: Vec<String> = g
        .files
        .iter()
        .map(|f| {
            let lines = f.content.lines().count();
            format!(
                "  {}{}  {lines:>5} {}",
                f.path,
                " ".repeat(width - f.path.width()),
                if lines == 1 { "line" } else { "lines" }
            )
        })
        .collect();
    rows.join("\n")
}

/// Where the files were saved, and what to do next.
fn saved_line(g: &Generated, what: Made) -> String {
    let mut line = match &g.project {
        Some(p) if g.unchanged => format!(
            "No change: version {} of `{}` already has this, so nothing was saved or restarted.",
            p.version, p.name
        ),
        Some(p) if what == Made::Changes => format!(
            "Saved `{}` version {} (project id {}).",
            p.name, p.version, p.project_id
        ),
        Some(p) => format!(
            "Saved as project `{name}` (id {}, version {}): `appforge run {name}` runs it, \
             `appforge show {name}` prints its files.",
            p.project_id,
            p.version,
            name = p.name,
        ),
        None => "Not saved (run again with --save to keep it).".to_string(),
    };
    if g.restarted {
        line.push_str("\nThe running app was restarted on the new version.");
    }
    if g.docs_only {
        line.push_str("\nOnly documentation changed: the app was not run again or restarted.");
    }
    line
}

/// One line on how the checks went.
pub fn checks_line(status: &str, steps: &[CheckStep]) -> String {
    let ran: Vec<String> = steps
        .iter()
        .map(|s| {
            let mark = if s.passed { "ok" } else { "FAILED" };
            format!("{} {mark} ({} ms)", s.step, s.millis)
        })
        .collect();
    match status {
        "passed" => format!("checks passed: {}", ran.join(", ")),
        "skipped" => "checks skipped (--no-check): the app has not been run".into(),
        _ => format!(
            "checks FAILED, saved anyway (--keep-broken): {}",
            ran.join(", ")
        ),
    }
}
