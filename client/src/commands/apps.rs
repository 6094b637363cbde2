//! `run`, `stop`, `restart`, `ps` and `logs`.

use std::borrow::Cow;

use appforge_shared::protocol::{
    LogsRequest, ProcessInfo, ProjectRef, Reply, Request, RunRequest, StopRequest,
};
use serde_json::json;

use super::accounts::unexpected;
use super::Ctx;
use crate::cli::{LogsArgs, ProjectArg, RunArgs, StopArgs};
use crate::error::ClientError;
use crate::escape::{sanitize, Sgr};
use crate::logview::{LogView, Mode};
use crate::output::{self, emit};
use crate::render;
use crate::session;
use crate::when::Clock;

/// `appforge run P [--port N]`
pub async fn run(ctx: &mut Ctx, args: RunArgs) -> Result<(), ClientError> {
    let request = Request::Run(RunRequest {
        project: args.project,
        port: args.port,
    });
    started(ctx, request).await
}

/// `appforge restart P`
pub async fn restart(ctx: &mut Ctx, args: ProjectArg) -> Result<(), ClientError> {
    let request = Request::Restart(ProjectRef {
        project: args.project,
    });
    started(ctx, request).await
}

/// Sends `run` or `restart`, showing each step on a terminal, and prints the URL.
async fn started(ctx: &mut Ctx, request: Request) -> Result<(), ClientError> {
    let reply = ctx.call_showing_steps(request).await?;
    let Reply::Running(app) = reply else {
        return Err(unexpected(&reply));
    };
    emit(ctx.json, process_json(&app), || {
        let runs = app.target.as_deref().map_or(String::new(), |t| {
            format!("\n  it runs {}", sanitize(t, Sgr::Drop))
        });
        format!(
            "`{}` is running (pid {}): {}{runs}",
            app.name,
            app.pid.map_or("-".into(), |p| p.to_string()),
            app.url.clone().unwrap_or_default()
        )
    });
    Ok(())
}

/// `appforge stop P` or `appforge stop --all`
pub async fn stop(ctx: &mut Ctx, args: StopArgs) -> Result<(), ClientError> {
    let reply = ctx
        .call(Request::Stop(StopRequest {
            project: args.project,
            all: args.all,
        }))
        .await?;
    let Reply::Stopped(apps) = reply else {
        return Err(unexpected(&reply));
    };
    let doc = json!(apps.iter().map(process_json).collect::<Vec<_>>());
    emit(ctx.json, doc, || match apps.is_empty() {
        true => "Nothing was running.".into(),
        false => apps
            .iter()
            .map(|a| format!("Stopped `{}`.", a.name))
            .collect::<Vec<_>>()
            .join("\n"),
    });
    Ok(())
}

/// `appforge ps`
pub async fn ps(ctx: &mut Ctx) -> Result<(), ClientError> {
    let reply = ctx.call(Request::Ps).await?;
    let Reply::Processes(apps) = reply else {
        return Err(unexpected(&reply));
    };
    let out = match ctx.json {
        // Straight from the reply, whose fields are the document's: a
        // `serde_json::Value` per app first would cost more than all the
        // rest of a `ps` of many apps.
        true => serde_json::to_string(&apps)
            .map_err(|e| ClientError::Local(format!("cannot write the apps as JSON: {e}")))?,
        false => sanitize(&ps_text(&apps), Sgr::Drop).into_owned(),
    };
    println!("{out}");
    Ok(())
}

/// `ps` for people: a table of the apps, then what to do about failed ones.
fn ps_text<'a>(apps: &'a [ProcessInfo]) -> String {
    if apps.is_empty() {
        return "No apps are supervised; start one with `appforge run PROJECT`.".into();
    }
    // Text the reply already holds is borrowed, not copied: one row an app.
    let text = |s: &'a Option<String>| Cow::Borrowed(s.as_deref().unwrap_or(""));
    let clock = Clock::system();
    let rows: Vec<Vec<Cow<'a, str>>> = apps
        .iter()
        .map(|a| {
            vec![
                a.project_id.to_string().into(),
                a.name.as_str().into(),
                version_cell(a).into(),
                a.status.as_str().into(),
                a.host.as_str().into(),
                a.pid.map_or("-".into(), |p| p.to_string().into()),
                text(&a.url),
                a.restarts.to_string().into(),
                a.uptime_s
                    .map_or("-".into(), |s| clock.seconds_ago(s).into()),
                a.cpu_percent
                    .map_or("-".into(), |c| format!("{c:.1}%").into()),
                a.rss_bytes.map_or("-".into(), |b| {
                    format!("{:.1} MiB", b as f64 / 1048576.0).into()
                }),
                text(&a.last_exit),
            ]
        })
        .collect();
    let hints: Vec<String> = apps
        .iter()
        .filter_map(|a| a.hint.as_ref().map(|h| format!("{}: {h}", a.name)))
        .chain(apps.iter().filter_map(missing_note))
        .collect();
    let table = render::table(
        &[
            "ID",
            "NAME",
            "VERSION",
            "STATUS",
            "HOST",
            "PID",
            "URL",
            "RESTARTS",
            "STARTED",
            "CPU",
            "MEM",
            "LAST EXIT",
        ],
        rows,
    );
    match hints.is_empty() {
        true => table,
        false => format!("{table}\n\n{}", hints.join("\n")),
    }
}

/// `appforge logs P [-f] [-n N]`
pub async fn logs(ctx: &mut Ctx, args: LogsArgs) -> Result<(), ClientError> {
    let request = Request::Logs(LogsRequest {
        project: args.project,
        lines: args.lines,
        follow: args.follow,
    });
    let mode = match (ctx.json, args.follow) {
        (false, _) => Mode::Text(output::stdout_sgr()),
        (true, true) => Mode::JsonLines,
        (true, false) => Mode::Json,
    };
    let mut view = LogView::new(std::io::stdout().lock(), mode);
    // A closed pipe (`| head`) is not an error worth a message: the rest
    // is not printed.
    let mut closed = false;
    let reply = ctx
        .conn
        .request(session::load(), request, |p| {
            if !closed && view.take(p).is_err() {
                closed = true;
            }
        })
        .await?;
    if !matches!(reply, Reply::LogsEnd) {
        return Err(unexpected(&reply));
    }
    if !closed {
        let _ = view.finish();
    }
    Ok(())
}

/// The version an app runs, with a mark when it failed its checks and
/// the newer version it does not follow.
fn version_cell(a: &ProcessInfo) -> String {
    let mut cell = a.version.map_or("-".into(), |v| v.to_string());
    if a.check_status.as_deref() == Some("failed") {
        cell.push_str(" (checks failed)");
    }
    if let Some(newer) = a.newer_version {
        cell.push_str(&format!(" (v{newer} newer)"));
    }
    cell
}

/// What to say of the settings an app reads that were not set, if any.
fn missing_note(a: &ProcessInfo) -> Option<String> {
    let (first, names) = (a.missing_settings.first()?, &a.missing_settings);
    let word = match names.len() {
        1 => "setting",
        _ => "settings",
    };
    Some(format!(
        "{}: missing {word}: {}; `appforge env {} set {first}=…` sets it",
        a.name,
        names.join(", "),
        a.name
    ))
}

/// The JSON form of a supervised app.
fn process_json(a: &ProcessInfo) -> serde_json::Value {
    json!({
        "project_id": a.project_id, "name": a.name, "pid": a.pid, "port": a.port,
        "url": a.url, "status": a.status, "restarts": a.restarts, "uptime_s": a.uptime_s,
        "cpu_percent": a.cpu_percent, "rss_bytes": a.rss_bytes, "last_exit": a.last_exit,
        "version": a.version, "newer_version": a.newer_version, "check_status": a.check_status,
        "hint": a.hint, "host": a.host, "missing_settings": a.missing_settings,
        "hint": a.hint, "host": a.host, "target": a.target,
    })
}
