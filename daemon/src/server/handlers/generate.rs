//! `generate`, `save` of an unsaved generation, and `improve`.

use appforge_shared::protocol::{
    FileContent, GenerateRequest, Generated, ImproveRequest, Progress, Reply,
    SaveGenerationRequest, SessionToken,
};

use super::ProgressTx;
use crate::ai::generate::{self, Job, Outcome};
use crate::ai::{history, prompt, Provider};
use crate::error::ServiceError;
use crate::projects::{self, NewVersion};
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
    let provider = daemon.providers.choose(req.provider.as_deref())?;
    let model = req
        .model
        .clone()
        .unwrap_or_else(|| provider.default_model().to_string());
    let outcome = run(
        daemon,
        &*provider,
        &model,
        &req.prompt,
        prompt::generate(&req.prompt),
        progress,
    )
    .await;

    let (owner_id, save, name) = (user.id, req.save, req.name.clone());
    let (prompt_text, provider_name, model_name) = (
        req.prompt.clone(),
        provider.name().to_string(),
        model.clone(),
    );
    let files = outcome.files.as_ref().ok().map(|f| to_contents(f));
    let tokens = outcome.usage.total_tokens;
    let (generation_id, project) = daemon
        .db
        .call(move |c| {
            let tx = c.transaction()?;
            let entry = history::Entry {
                owner_id,
                project_id: None,
                kind: "generate",
                prompt: &prompt_text,
                provider: &provider_name,
                model: &model_name,
            };
            let id = history::record(&tx, &entry, &outcome)?;
            let project = match (&files, save) {
                (Some(files), true) => {
                    let version = NewVersion {
                        kind: "generate",
                        prompt: &prompt_text,
                        generation_id: Some(id),
                        tokens_used: tokens,
                        files,
                    };
                    let saved =
                        projects::create(&tx, owner_id, name.as_deref(), &prompt_text, version);
                    match saved {
                        Ok(saved) => {
                            history::link(&tx, id, saved.project_id)?;
                            Some(Ok(saved))
                        }
                        Err(e) => Some(Err(e)),
                    }
                }
                _ => None,
            };
            tx.commit()?;
            Ok((id, (project, outcome)))
        })
        .await?;
    let (project, outcome) = project;
    let files = outcome.files?;
    let project = project.transpose()?;
    tracing::info!(
        generation_id,
        user_id = user.id,
        saved = project.is_some(),
        "generated an app"
    );
    Ok(Reply::Generated(Generated {
        generation_id,
        project,
        files: to_contents(&files),
        tokens_used: tokens,
        provider: provider.name().to_string(),
        model,
        duration_ms: outcome.duration.as_millis() as u64,
    }))
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
            let version = NewVersion {
                kind: "generate",
                prompt: &unsaved.prompt,
                generation_id: Some(req.generation_id),
                tokens_used: unsaved.tokens_used,
                files: &unsaved.files,
            };
            let saved =
                projects::create(&tx, owner_id, req.name.as_deref(), &unsaved.prompt, version);
            if let Ok(saved) = &saved {
                history::link(&tx, req.generation_id, saved.project_id)?;
            }
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
        project: Some(saved?),
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
    let (project, current) = daemon
        .db
        .call(move |c| {
            let found = projects::resolve(c, owner_id, &reference)
                .and_then(|p| Ok((projects::current_files(c, p.id)?, p)));
            Ok(found)
        })
        .await?
        .map(|(files, p)| (p, files))?;
    let provider = daemon.providers.choose(req.provider.as_deref())?;
    let model = req
        .model
        .clone()
        .unwrap_or_else(|| provider.default_model().to_string());
    // The offline scaffolder reads the app from the prompts alone.
    let app_prompt = format!("{}, {}", project.prompt, req.prompt);
    let messages = prompt::improve(&current, &req.prompt);
    let outcome = run(daemon, &*provider, &model, &app_prompt, messages, progress).await;

    let (prompt_text, provider_name, model_name) = (
        req.prompt.clone(),
        provider.name().to_string(),
        model.clone(),
    );
    let files = outcome.files.as_ref().ok().map(|f| to_contents(f));
    let tokens = outcome.usage.total_tokens;
    let project_id = project.id;
    let (generation_id, version, outcome) = daemon
        .db
        .call(move |c| {
            let tx = c.transaction()?;
            let entry = history::Entry {
                owner_id,
                project_id: Some(project_id),
                kind: "improve",
                prompt: &prompt_text,
                provider: &provider_name,
                model: &model_name,
            };
            let id = history::record(&tx, &entry, &outcome)?;
            let version = files.as_ref().map(|files| {
                let version = NewVersion {
                    kind: "improve",
                    prompt: &prompt_text,
                    generation_id: Some(id),
                    tokens_used: tokens,
                    files,
                };
                projects::add_version(&tx, project_id, version)
            });
            tx.commit()?;
            Ok((id, version, outcome))
        })
        .await?;
    let files = outcome.files?;
    let version = version.transpose()?.unwrap_or_default();
    Ok(Reply::Generated(Generated {
        generation_id,
        project: Some(appforge_shared::protocol::SavedAs {
            project_id,
            name: project.name,
            version,
        }),
        files: to_contents(&files),
        tokens_used: tokens,
        provider: provider.name().to_string(),
        model,
        duration_ms: outcome.duration.as_millis() as u64,
    }))
}

async fn run(
    daemon: &Daemon,
    provider: &dyn Provider,
    model: &str,
    app_prompt: &str,
    messages: Vec<crate::ai::Message>,
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

fn to_contents(files: &[crate::ai::parse::ParsedFile]) -> Vec<FileContent> {
    files
        .iter()
        .map(|f| FileContent {
            path: f.path.clone(),
            content: f.content.clone(),
        })
        .collect()
}
