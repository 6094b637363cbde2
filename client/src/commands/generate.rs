//! `generate` and `improve`: a spinner while the model works, then the files.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use appforge_shared::protocol::{
    CheckStep, FixRequest, GenerateRequest, Generated, ImproveRequest, Progress, Reply, Request,
    SaveGenerationRequest,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::accounts::unexpected;
use super::Ctx;
use crate::cli::{FixArgs, GenerateArgs, ImproveArgs};
use crate::error::ClientError;
use crate::escape::{sanitize, Sgr};
use crate::output::emit;
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
    let interactive =
        !ctx.json && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if generated.project.is_none() && interactive {
        print_files(&generated);
        if ask("Save this app as a project? [y/N] ") {
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
        println!("{}", sanitize(&summary(&generated), Sgr::Drop));
        return Ok(());
    }
    show(ctx.json, &generated);
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
    show(ctx.json, &generated);
    Ok(())
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
    show(ctx.json, &generated);
    Ok(())
}

/// Sends the request with a spinner on a terminal, and returns the result.
async fn run(ctx: &mut Ctx, request: Request) -> Result<Generated, ClientError> {
    let spinner = (!ctx.json && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    let mut step = String::from("working");
    let mut received = 0usize;
    let reply = ctx
        .conn
        .request(session::load(), request, |p| {
            let Some(bar) = &spinner else { return };
            match p {
                Progress::Step(s) => {
                    step = s;
                    received = 0;
                }
                Progress::Text(t) => received += t.len(),
                Progress::Restart(why) => {
                    bar.println(format!("  ↻ {}", sanitize(&why, Sgr::Drop)));
                    received = 0;
                }
                Progress::Log(_) | Progress::LogLines(_) => {}
            }
            match received {
                0 => bar.set_message(step.clone()),
                n => bar.set_message(format!("{step}: {n} bytes received")),
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

fn show(json: bool, g: &Generated) {
    let files: Vec<_> = g
        .files
        .iter()
        .map(|f| json!({"path": f.path, "bytes": f.content.len()}))
        .collect();
    let project = g.project.as_ref();
    emit(
        json,
        json!({
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
        }),
        || {
            print_files(g);
            summary(g)
        },
    );
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

fn summary(g: &Generated) -> String {
    let mut made = format!(
        "{} files from {} ({}) in {:.1} s, {} tokens",
        g.files.len(),
        g.provider,
        g.model,
        g.duration_ms as f64 / 1000.0,
        g.tokens_used
    );
    if g.repair_rounds > 0 {
        made.push_str(&format!(", {} repair round(s)", g.repair_rounds));
    }
    let mut lines: Vec<String> = g
        .understood
        .iter()
        .map(|u| format!("understood: {u}"))
        .collect();
    lines.extend(g.mends.iter().map(|m| format!("mended: {m}")));
    lines.extend(g.deleted.iter().map(|p| format!("deleted: {p}")));
    // Code that did not change was not run again: the line below says so.
    if !g.docs_only && !g.unchanged {
        lines.push(checks_line(&g.check_status, &g.checks));
    }
    lines.push(match &g.project {
        Some(p) if g.unchanged => format!(
            "{made}; no change: version {} of `{}` already has this, so nothing was saved or \
             restarted",
            p.version, p.name
        ),
        Some(p) => format!(
            "{made}; saved as project `{}` (id {}, version {})",
            p.name, p.project_id, p.version
        ),
        None => format!("{made}; not saved (run again with --save to keep it)"),
    });
    if g.restarted {
        lines.push("the running app was restarted on the new version".into());
    }
    if g.docs_only {
        lines.push("only documentation changed: the app was not run again or restarted".into());
    }
    lines.join("\n")
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

fn ask(question: &str) -> bool {
    eprint!("{question}");
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
}
