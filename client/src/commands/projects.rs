//! `list`, `show`, `delete`, `history`, `diff`, `rollback` and `export`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use appforge_shared::protocol::{
    ArchiveFormat, DiffRequest, ExportRequest, ProjectRef, ProjectSummary, Reply, Request,
    RollbackRequest, ShowRequest,
};
use serde_json::json;

use super::accounts::unexpected;
use super::saved;
use super::Ctx;
use crate::ask;
use crate::cli::{DeleteArgs, DiffArgs, ExportArgs, ProjectArg, RollbackArgs, ShowArgs, TargetArg};
use crate::error::ClientError;
use crate::escape::{sanitize, Sgr};
use crate::output::{self, emit, json_line};
use crate::render;
use crate::when::Clock;

/// `appforge list`
pub async fn list(ctx: &mut Ctx) -> Result<(), ClientError> {
    let reply = ctx.call(Request::ListProjects).await?;
    let Reply::Projects(projects) = reply else {
        return Err(unexpected(&reply));
    };
    let doc = serde_json::Value::Array(projects.iter().map(summary_json).collect());
    emit(ctx.json, doc, || {
        let clock = Clock::system();
        if projects.is_empty() {
            return "No projects yet; make one with `appforge generate \"...\" --save`.".into();
        }
        let rows = projects
            .iter()
            .map(|p| {
                vec![
                    p.id.to_string(),
                    p.name.clone(),
                    match p.check_status.as_deref() {
                        Some("failed") => format!("{} (checks failed)", p.version),
                        Some("skipped") => format!("{} (unchecked)", p.version),
                        _ => p.version.to_string(),
                    },
                    p.status.clone(),
                    p.port.map_or("-".into(), |p| p.to_string()),
                    clock.ago(&p.last_modified),
                ]
            })
            .collect();
        render::table(
            &["ID", "NAME", "VERSION", "STATUS", "PORT", "LAST MODIFIED"],
            rows,
        )
    });
    Ok(())
}

/// `appforge show P [--file PATH] [--version V]`
pub async fn show(ctx: &mut Ctx, args: ShowArgs) -> Result<(), ClientError> {
    let only_one = args.file.is_some();
    let reply = ctx
        .call(Request::ShowProject(ShowRequest {
            project: args.project,
            version: args.version,
            file: args.file,
        }))
        .await?;
    let Reply::Project(detail) = reply else {
        return Err(unexpected(&reply));
    };
    if ctx.json {
        // The files' exact text: JSON escapes their control characters.
        let mut doc = summary_json(&detail.summary);
        doc["prompt"] = json!(detail.prompt);
        doc["version"] = json!(detail.version);
        doc["files"] = json!(detail.files);
        println!("{}", json_line(&doc));
        return Ok(());
    }
    // A model wrote these files: their control characters are shown
    // escaped, never sent to the terminal (`--json` has the exact text).
    let colour = output::colour();
    let terminal = std::io::stdout().is_terminal();
    let mut out = std::io::stdout().lock();
    for f in &detail.files {
        let text = match colour {
            true => render::highlight(&f.path, &f.content),
            false => sanitize(&f.content, Sgr::Drop).into_owned(),
        };
        // One file alone is printed as it is (sanitised), so it can be piped.
        if only_one && !terminal {
            write_out(&mut out, &text)?;
            continue;
        }
        write_out(
            &mut out,
            &format!("==> {} <==\n", sanitize(&f.path, Sgr::Drop)),
        )?;
        write_out(&mut out, &text)?;
        if !f.content.ends_with('\n') {
            write_out(&mut out, "\n")?;
        }
    }
    if !only_one && terminal {
        write_out(
            &mut out,
            &format!(
                "`{}` version {} of {}, {} files\n",
                sanitize(&detail.summary.name, Sgr::Drop),
                detail.version,
                detail.summary.version,
                detail.files.len()
            ),
        )?;
    }
    Ok(())
}

/// `appforge delete P [--yes]`: asks first on a terminal; elsewhere only
/// `--yes` deletes, as no one could have seen a question.
pub async fn delete(ctx: &mut Ctx, args: DeleteArgs) -> Result<(), ClientError> {
    if !args.yes {
        if !ask::possible() {
            return Err(ClientError::Usage(format!(
                "not deleting `{}`: standard input is not a terminal, so nothing can ask first; \
                 add --yes to delete it and all its versions",
                args.project
            )));
        }
        // Named as the daemon knows it (the argument may be an id), which
        // also fails early on a project that is not there.
        let reply = ctx
            .call(Request::ShowProject(ShowRequest {
                project: args.project.clone(),
                version: None,
                file: None,
            }))
            .await?;
        let Reply::Project(detail) = reply else {
            return Err(unexpected(&reply));
        };
        let question = format!(
            "Delete project `{}` (id {}) and its {}? This cannot be undone.",
            sanitize(&detail.summary.name, Sgr::Drop),
            detail.summary.id,
            crate::render::count(detail.summary.version, "version", "versions")
        );
        if !ask::yes(&question) {
            emit(
                ctx.json,
                json!({"project": args.project, "deleted": false}),
                || format!("Kept `{}`; nothing was deleted.", args.project),
            );
            return Ok(());
        }
    }
    let reply = ctx
        .call(Request::DeleteProject(ProjectRef {
            project: args.project,
        }))
        .await?;
    let Reply::Deleted(p) = reply else {
        return Err(unexpected(&reply));
    };
    let mut doc = summary_json(&p);
    doc["deleted"] = json!(true);
    emit(ctx.json, doc, || {
        format!(
            "Deleted project `{}` (id {}) and its {}.",
            p.name,
            p.id,
            crate::render::count(p.version, "version", "versions")
        )
    });
    Ok(())
}

/// `appforge history P`
pub async fn history(ctx: &mut Ctx, args: ProjectArg) -> Result<(), ClientError> {
    let reply = ctx
        .call(Request::History(ProjectRef {
            project: args.project,
        }))
        .await?;
    let Reply::History(versions) = reply else {
        return Err(unexpected(&reply));
    };
    emit(ctx.json, json!(versions), || {
        let clock = Clock::system();
        let rows = versions
            .iter()
            .map(|v| {
                vec![
                    v.version.to_string(),
                    v.kind.clone(),
                    clock.ago(&v.created_at),
                    v.tokens_used.to_string(),
                    v.files.to_string(),
                    one_line(&v.prompt, 60),
                ]
            })
            .collect();
        render::table(
            &["VERSION", "KIND", "CREATED", "TOKENS", "FILES", "PROMPT"],
            rows,
        )
    });
    Ok(())
}

/// `appforge diff P [A] [B]`
pub async fn diff(ctx: &mut Ctx, args: DiffArgs) -> Result<(), ClientError> {
    let reply = ctx
        .call(Request::Diff(DiffRequest {
            project: args.project,
            from: args.a,
            to: args.b,
        }))
        .await?;
    let Reply::Diff(d) = reply else {
        return Err(unexpected(&reply));
    };
    if ctx.json {
        let doc = json!({
            "project_id": d.project_id, "from": d.from, "to": d.to,
            "changed": d.changed, "diff": d.unified,
        });
        println!("{}", json_line(&doc));
        return Ok(());
    }
    let text = match output::colour() {
        true => render::colour_diff(&d.unified),
        false => sanitize(&d.unified, Sgr::Drop).into_owned(),
    };
    write_out(&mut std::io::stdout().lock(), &text)
}

/// `appforge rollback P V`
pub async fn rollback(ctx: &mut Ctx, args: RollbackArgs) -> Result<(), ClientError> {
    let target = args.version;
    let reply = ctx
        .call(Request::Rollback(RollbackRequest {
            project: args.project,
            version: target,
            checks: args.checks.options(),
        }))
        .await?;
    let Reply::Saved(saved) = reply else {
        return Err(unexpected(&reply));
    };
    let mut doc = saved::saved_json(&saved);
    doc["rolled_back_to"] = json!(target);
    emit(ctx.json, doc, || match saved.saved {
        true => format!(
            "{}\n`{}` is now version {}, equal to version {target} ({} files changed).{}",
            super::generate::checks_line(&saved.check_status, &saved.checks),
            saved.name,
            saved.version,
            saved.changed.len(),
            saved::restarted_note(&saved)
        ),
        false => format!(
            "`{}` version {} already equals version {target}; nothing saved.",
            saved.name, saved.version
        ),
    });
    Ok(())
}

/// `appforge export P [-o FILE] [--target k8s|compose]...`
pub async fn export(ctx: &mut Ctx, args: ExportArgs) -> Result<(), ClientError> {
    let requested = args.output.clone();
    let format = match &requested {
        Some(path) => format_of(path)?,
        None => ArchiveFormat::Zip,
    };
    // Make sure the archive can be written before asking for it; a temporary
    // file beside the target is renamed over it at the end, so a failure
    // never leaves a half-written archive.
    let dir = match requested.as_deref().and_then(Path::parent) {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let shown = requested.clone().unwrap_or_else(|| dir.clone());
    if let Some(path) = requested.as_deref().filter(|p| p.exists() && !args.force) {
        return Err(exists(path));
    }
    if !dir.is_dir() {
        return Err(ClientError::Usage(format!(
            "cannot write the archive to {}: there is no folder {}; choose another place with -o",
            shown.display(),
            dir.display()
        )));
    }
    let mut staging = tempfile::Builder::new()
        .prefix(".appforge-export-")
        .tempfile_in(&dir)
        .map_err(|e| cannot_write(&shown, &e))?;
    let reply = ctx
        .call(Request::Export(ExportRequest {
            project: args.project,
            format,
            targets: args.targets.iter().map(|&t| t.into()).collect(),
        }))
        .await?;
    let Reply::Export(info) = reply else {
        return Err(unexpected(&reply));
    };
    let path =
        requested.unwrap_or_else(|| dir.join(format!("{}.{}", info.root, format.extension())));
    staging
        .write_all(&info.archive)
        .and_then(|()| staging.as_file().sync_all())
        .map_err(|e| cannot_write(&path, &e))?;
    set_readable(staging.path()).map_err(|e| cannot_write(&path, &e))?;
    // Without --force an archive that appeared meanwhile is not replaced
    // either: the rename itself refuses.
    let persisted = match args.force {
        true => staging.persist(&path),
        false => staging.persist_noclobber(&path),
    };
    persisted.map_err(|e| match e.error.kind() {
        std::io::ErrorKind::AlreadyExists => exists(&path),
        _ => cannot_write(&path, &e.error),
    })?;
    let k8s = args.targets.contains(&TargetArg::K8s);
    let compose = args.targets.contains(&TargetArg::Compose);
    let mut targets = Vec::new();
    if k8s {
        targets.push("k8s");
    }
    if compose {
        targets.push("compose");
    }
    emit(
        ctx.json,
        json!({
            "path": path, "bytes": info.archive.len(), "files": info.files,
            "project_id": info.project_id, "format": format.extension(),
            "targets": targets,
        }),
        || {
            let mut text = format!(
                "Wrote {} ({} bytes, {} files). Inside: `docker build -t {root} {root}` builds \
                 the image",
                path.display(),
                info.archive.len(),
                info.files.len(),
                root = info.root
            );
            if k8s {
                text.push_str(&format!(
                    ", `kubectl apply -f {}/deploy/k8s/` deploys it",
                    info.root
                ));
            }
            if compose {
                text.push_str(", `docker compose up --build` in it runs it");
            }
            text.push_str("; its README says more.");
            text
        },
    );
    Ok(())
}

/// The archive format a file name asks for.
fn format_of(path: &Path) -> Result<ArchiveFormat, ClientError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    ArchiveFormat::from_file_name(name).ok_or_else(|| {
        ClientError::Usage(format!(
            "cannot tell the archive kind from `{}`; end the name with .zip, .tar.gz or .tgz",
            path.display()
        ))
    })
}

fn cannot_write(path: &Path, e: &std::io::Error) -> ClientError {
    // The kind, not the message: that would name the temporary file.
    ClientError::Usage(format!(
        "cannot write the archive to {}: {}; choose another place with -o",
        path.display(),
        e.kind()
    ))
}

/// Refusing to replace an existing archive without --force.
fn exists(path: &Path) -> ClientError {
    ClientError::Usage(format!(
        "{} already exists; nothing was written. Add --force to replace it, or choose another \
         name with -o",
        path.display()
    ))
}

/// Temporary files are private (0600); an exported archive is an ordinary file.
fn set_readable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

/// The JSON form of a project's row.
pub fn summary_json(p: &ProjectSummary) -> serde_json::Value {
    json!({
        "id": p.id, "name": p.name, "status": p.status, "port": p.port,
        "version": p.version, "created_at": p.created_at, "last_modified": p.last_modified,
        "check_status": p.check_status,
    })
}

/// Writes to stdout; a closed pipe (`| head`) ends quietly.
fn write_out(out: &mut impl Write, text: &str) -> Result<(), ClientError> {
    match out.write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| ClientError::Local(format!("cannot write to stdout: {e}"))),
    }
}

/// The first line of `text`, cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}
