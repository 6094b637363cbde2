//! `generate`, `save` of an unsaved generation, and `improve`.

use std::sync::Arc;

use appforge_shared::protocol::{
    FileContent, GenerateRequest, Generated, ImproveRequest, Progress, Reply,
    SaveGenerationRequest, SavedAs, SessionToken,
};
use rusqlite::Transaction;

use super::ProgressTx;
use crate::ai::generate::{self, Job, Outcome};
use crate::ai::{history, prompt, Message, Provider};
use crate::db::DbError;
use crate::error::ServiceError;
use crate::projects::{self, versions, NewVersion, Project, ProjectError};
use crate::state::Daemon;

/// Longest prompt accepted, in bytes.
const MAX_PROMPT: usize = 32 * 1024;

/// Generates an app from a prompt, saving it as a project when asked.
pub async fn generate(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: GenerateRequest,
    progress: &ProgressTx,
) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    check_prompt(&req.prompt)?;
    if let Some(name) = &req.name {
        projects::check_name(name)?;
    }
    let target = match req.save {
        true => Target::NewProject { name: req.name },
        false => Target::Nowhere,
    };
    let call = Call::new(
        daemon,
        user.id,
        "generate",
        req.prompt,
        req.provider,
        req.model,
    )?;
    let messages = prompt::generate(&call.prompt);
    let app_prompt = call.prompt.clone();
    call.run_and_store(daemon, app_prompt, messages, target, progress)
        .await
}

/// Saves the files of an earlier generation as a new project.
pub async fn save(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: SaveGenerationRequest,
) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    if let Some(name) = &req.name {
        projects::check_name(name)?;
    }
    let owner_id = user.id;
    let result = daemon
        .db
        .call(move |c| {
            let tx = c.transaction()?;
            let Some(unsaved) = history::unsaved(&tx, owner_id, req.generation_id)? else {
                return Ok(None);
            };
            let target = Target::NewProject { name: req.name };
            let saved = store(
                &tx,
                owner_id,
                req.generation_id,
                &unsaved.prompt,
                unsaved.tokens_used,
                &unsaved.files,
                target,
            )?;
            tx.commit()?;
            Ok(Some((saved, unsaved)))
        })
        .await?;
    let Some((saved, unsaved)) = result else {
        return Err(ServiceError::NotFound(format!(
            "no unsaved generation {}; it may be saved already",
            req.generation_id
        )));
    };
    Ok(Reply::Generated(Generated {
        generation_id: req.generation_id,
        project: saved.transpose()?,
        files: unsaved.files,
        tokens_used: unsaved.tokens_used,
        provider: String::new(),
        model: String::new(),
        duration_ms: 0,
    }))
}

/// Changes a project by a prompt and saves the result as a new version.
pub async fn improve(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: ImproveRequest,
    progress: &ProgressTx,
) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    check_prompt(&req.prompt)?;
    let (owner_id, reference) = (user.id, req.project.clone());
    let (project, base, current) = daemon
        .db
        .call(move |c| {
            let found = projects::resolve(c, owner_id, &reference).and_then(|p| {
                let base = versions::latest(c, p.id)?;
                Ok((versions::files_at(c, &p, base)?, base, p))
            });
            Ok(found)
        })
        .await?
        .map(|(files, base, p)| (p, base, files))?;
    let call = Call::new(
        daemon,
        user.id,
        "improve",
        req.prompt,
        req.provider,
        req.model,
    )?;
    // The offline scaffolder reads the app from the prompts alone.
    let app_prompt = format!("{}, {}", project.prompt, call.prompt);
    let messages = prompt::improve(&current, &call.prompt);
    let target = Target::NewVersion { project, base };
    call.run_and_store(daemon, app_prompt, messages, target, progress)
        .await
}

/// Where the files of a successful generation go.
enum Target {
    /// Nowhere: they are shown, and can be saved later.
    Nowhere,
    /// A new project, named or with a name from the prompt.
    NewProject {
        /// The name asked for.
        name: Option<String>,
    },
    /// The next version of an existing project.
    NewVersion {
        /// The project.
        project: Project,
        /// The version the generation started from; if the project moved
        /// on meanwhile, the result is not saved over the newer version.
        base: i64,
    },
}

/// One generation call: who asks, what, and whom.
struct Call {
    owner_id: i64,
    kind: &'static str,
    prompt: String,
    provider: Arc<dyn Provider>,
    model: String,
}

impl Call {
    fn new(
        daemon: &Daemon,
        owner_id: i64,
        kind: &'static str,
        prompt: String,
        provider: Option<String>,
        model: Option<String>,
    ) -> Result<Call, ServiceError> {
        let provider = daemon.providers.choose(provider.as_deref())?;
        let model = model.unwrap_or_else(|| provider.default_model().to_string());
        Ok(Call {
            owner_id,
            kind,
            prompt,
            provider,
            model,
        })
    }

    /// Runs the generation, then records it and stores its files in one
    /// transaction, so a failure keeps the history row and nothing else.
    async fn run_and_store(
        self,
        daemon: &Daemon,
        app_prompt: String,
        messages: Vec<Message>,
        target: Target,
        progress: &ProgressTx,
    ) -> Result<Reply, ServiceError> {
        let outcome = run(
            daemon,
            &*self.provider,
            &self.model,
            &app_prompt,
            messages,
            progress,
        )
        .await;
        let files = outcome.files.as_ref().ok().cloned();
        let tokens_used = outcome.usage.total_tokens;
        let duration_ms = outcome.duration.as_millis() as u64;
        let provider = self.provider.name().to_string();
        let (owner_id, kind, prompt, model) = (self.owner_id, self.kind, self.prompt, self.model);
        let entry_provider = provider.clone();
        let entry_model = model.clone();
        let (generation_id, stored, outcome, files) = daemon
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                let project_id = match &target {
                    Target::NewVersion { project, .. } => Some(project.id),
                    _ => None,
                };
                let entry = history::Entry {
                    owner_id,
                    project_id,
                    kind,
                    prompt: &prompt,
                    provider: &entry_provider,
                    model: &entry_model,
                };
                let id = history::record(&tx, &entry, &outcome)?;
                let stored = match &files {
                    Some(files) => store(&tx, owner_id, id, &prompt, tokens_used, files, target)?,
                    None => None,
                };
                tx.commit()?;
                Ok((id, stored, outcome, files))
            })
            .await?;
        let result = match &outcome.files {
            Ok(_) => "ok",
            Err(_) => "error",
        };
        daemon.metrics.generation(&provider, result, tokens_used);
        outcome.files?;
        let project = stored.transpose()?;
        tracing::info!(
            generation_id,
            user_id = owner_id,
            kind,
            saved = project.is_some(),
            "generated an app"
        );
        Ok(Reply::Generated(Generated {
            generation_id,
            project,
            files: files.unwrap_or_default(),
            tokens_used,
            provider,
            model,
            duration_ms,
        }))
    }
}

/// Stores checked files where the target says, inside the caller's transaction.
/// A project error (a name taken meanwhile) is returned, not raised, so the
/// history row is still committed.
fn store(
    tx: &Transaction<'_>,
    owner_id: i64,
    generation_id: i64,
    prompt: &str,
    tokens_used: u64,
    files: &[FileContent],
    target: Target,
) -> Result<Option<Result<SavedAs, ProjectError>>, DbError> {
    let version = NewVersion {
        kind: if matches!(target, Target::NewVersion { .. }) {
            "improve"
        } else {
            "generate"
        },
        prompt,
        generation_id: Some(generation_id),
        tokens_used,
        files,
    };
    let saved = match target {
        Target::Nowhere => return Ok(None),
        Target::NewProject { name } => {
            projects::create(tx, owner_id, name.as_deref(), prompt, version)
        }
        Target::NewVersion { project, base } => add_on_top(tx, project, base, version),
    };
    if let Ok(saved) = &saved {
        history::link(tx, generation_id, saved.project_id)?;
    }
    Ok(Some(saved))
}

/// Adds an improvement as the next version, unless the project moved on from
/// `base` while the model worked.
fn add_on_top(
    tx: &Transaction<'_>,
    project: Project,
    base: i64,
    version: NewVersion<'_>,
) -> Result<SavedAs, ProjectError> {
    let newest = versions::latest(tx, project.id)?;
    if newest != base {
        return Err(ProjectError::Moved {
            name: project.name,
            base,
            newest,
        });
    }
    let version = versions::add_version(tx, project.id, version)?;
    Ok(SavedAs {
        project_id: project.id,
        name: project.name,
        version,
    })
}

async fn run(
    daemon: &Daemon,
    provider: &dyn Provider,
    model: &str,
    app_prompt: &str,
    messages: Vec<Message>,
    progress: &ProgressTx,
) -> Outcome {
    let report = |p: Progress| {
        // The client may be gone; the connection notices and cancels us.
        let _ = progress.send(p);
    };
    let job = Job {
        provider,
        model: model.to_string(),
        app_prompt: app_prompt.to_string(),
        repair_rounds: daemon.settings.ai.repair_rounds,
        python: &daemon.settings.ai.python,
        report: &report,
    };
    generate::run(job, messages).await
}

fn check_prompt(prompt: &str) -> Result<(), ServiceError> {
    if prompt.trim().is_empty() {
        return Err(ServiceError::InvalidInput(
            "the prompt is empty; describe the app you want".into(),
        ));
    }
    if prompt.len() > MAX_PROMPT {
        return Err(ServiceError::InvalidInput(format!(
            "the prompt is {} bytes; keep it under {MAX_PROMPT}",
            prompt.len()
        )));
    }
    if prompt.contains('\0') {
        return Err(ServiceError::InvalidInput(
            "the prompt holds a NUL byte".into(),
        ));
    }
    Ok(())
}
