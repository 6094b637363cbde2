//! `generate`, `save` of an unsaved generation, and `improve`.

use std::sync::Arc;

use appforge_shared::protocol::{
    CheckOptions, CheckStep, FileContent, FixRequest, GenerateRequest, Generated, ImproveRequest,
    Progress, Reply, SaveGenerationRequest, SavedAs, SessionToken,
};

use super::{follow, ProgressTx};
use crate::ai::generate::{Asking, GenerationError};
use crate::ai::{prompt, Message, Provider};
use crate::checks::repair::{self, Job};
use crate::db::{Conn, DbError};
use crate::error::ServiceError;
use crate::projects::versions::Release;
use crate::projects::{self, versions, NewVersion, Project, ProjectError};
use crate::services::history;
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
    call.run_and_store(
        daemon, app_prompt, messages, target, None, req.checks, progress,
    )
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
        .transaction(move |tx| {
            let Some(unsaved) = history::unsaved(tx, owner_id, req.generation_id)? else {
                return Ok(None);
            };
            let target = Target::NewProject { name: req.name };
            let saved = store(
                tx,
                owner_id,
                req.generation_id,
                &unsaved.prompt,
                unsaved.tokens_used,
                &unsaved.files,
                &unsaved.check_status,
                target,
            )?;
            Ok::<_, DbError>(Some((saved, unsaved)))
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
        mends: Vec::new(),
        checks: Vec::new(),
        repair_rounds: 0,
        check_status: unsaved.check_status,
        restarted: false,
        deleted: Vec::new(),
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
    let target = Target::NewVersion {
        project,
        base,
        kind: "improve",
    };
    call.run_and_store(
        daemon,
        app_prompt,
        messages,
        target,
        Some(current),
        req.checks,
        progress,
    )
    .await
}

/// Repairs a project from its app's last real failure (the traceback in
/// its log and how it ended, or its last failed check) and saves the
/// result as a new version.
pub async fn fix(
    daemon: &Daemon,
    token: Option<&SessionToken>,
    req: FixRequest,
    progress: &ProgressTx,
) -> Result<Reply, ServiceError> {
    let user = daemon.accounts.authenticate(token).await?;
    if let Some(extra) = &req.prompt {
        check_prompt(extra)?;
    }
    let (owner_id, reference) = (user.id, req.project.clone());
    let (project, base, current, last_check) = daemon
        .db
        .call(move |c| {
            let found = projects::resolve(c, owner_id, &reference).and_then(|p| {
                let base = versions::latest(c, p.id)?;
                let files = versions::files_at(c, &p, base)?;
                let last_check = history::last_failure(c, p.id)?;
                Ok((p, base, files, last_check))
            });
            Ok(found)
        })
        .await??;
    let failure = match daemon.supervisor.last_failure(project.id).await {
        Some(failure) => failure,
        None => match (last_check, &req.prompt) {
            (Some(check), _) => check,
            (None, Some(_)) => "(no failure was recorded; see the user's words)".to_string(),
            (None, None) => {
                return Err(ServiceError::InvalidInput(format!(
                    "`{}` has no failure to fix: its app has not failed and its last version \
                     passed its checks; say what is wrong (`appforge fix {} \"what is wrong\"`) \
                     or change it with `appforge improve`",
                    project.name, project.name
                )))
            }
        },
    };
    let _ = progress.send(Progress::Step(format!(
        "sending the app's last failure to the model: {}",
        failure
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    )));
    let call = Call::new(
        daemon,
        user.id,
        "fix",
        req.prompt
            .clone()
            .unwrap_or_else(|| "fix the app's last failure".into()),
        req.provider,
        req.model,
    )?;
    let app_prompt = project.prompt.clone();
    let messages = prompt::fix(&current, &failure, req.prompt.as_deref());
    let target = Target::NewVersion {
        project,
        base,
        kind: "fix",
    };
    call.run_and_store(
        daemon,
        app_prompt,
        messages,
        target,
        Some(current),
        req.checks,
        progress,
    )
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
        /// `improve` or `fix`.
        kind: &'static str,
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

    /// Runs the generation, then records each round and stores the files
    /// in one transaction, so a failure keeps the history rows and nothing
    /// else; a project whose app is wanted running then follows. `base` is
    /// the files a change starts from: the reply's files go over them.
    #[allow(clippy::too_many_arguments)]
    async fn run_and_store(
        self,
        daemon: &Daemon,
        app_prompt: String,
        messages: Vec<Message>,
        target: Target,
        base: Option<Vec<FileContent>>,
        options: CheckOptions,
        progress: &ProgressTx,
    ) -> Result<Reply, ServiceError> {
        let report = |p: Progress| {
            // The client may be gone; the connection notices and cancels us.
            let _ = progress.send(p);
        };
        let checker = daemon.checker.clone();
        let job = Job {
            asking: Asking {
                provider: &*self.provider,
                model: &self.model,
                app_prompt: &app_prompt,
                report: &report,
            },
            repair_rounds: options
                .repair_rounds
                .unwrap_or(daemon.settings.ai.repair_rounds),
            python: &daemon.settings.ai.python,
            checker: options.check.then_some(&checker),
            base: base.as_deref(),
        };
        let outcome = repair::run(job, messages).await;
        let (to_save, check_status) = match &outcome.files {
            Ok(files) if options.check => (Some(files.clone()), "passed"),
            Ok(files) => (Some(files.clone()), "skipped"),
            Err(GenerationError::Invalid { .. } | GenerationError::Stuck { .. })
                if options.keep_broken && outcome.broken.is_some() =>
            {
                (outcome.broken.clone(), "failed")
            }
            Err(_) => (None, ""),
        };
        let tokens_used = outcome.usage().total_tokens;
        let duration_ms = outcome.duration().as_millis() as u64;
        let provider = self.provider.name().to_string();
        let (owner_id, kind, prompt, model) = (self.owner_id, self.kind, self.prompt, self.model);
        let entry_provider = provider.clone();
        let entry_model = model.clone();
        let following = match &target {
            Target::NewVersion { project, .. } => Some(project.clone()),
            _ => None,
        };
        let (generation_id, stored, outcome, to_save) = daemon
            .db
            .transaction(move |tx| {
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
                let error = outcome.files.as_ref().err().map(|e| e.to_string());
                let mut id = 0;
                for (number, round) in outcome.rounds.iter().enumerate() {
                    let last = number + 1 == outcome.rounds.len();
                    let files = to_save.as_deref().filter(|_| last);
                    let error = error.as_deref().filter(|_| last);
                    id = history::record(tx, &entry, number, round, files, error)?;
                }
                let stored = match &to_save {
                    Some(files) => store(
                        tx,
                        owner_id,
                        id,
                        &prompt,
                        tokens_used,
                        files,
                        check_status,
                        target,
                    )?,
                    None => None,
                };
                Ok::<_, DbError>((id, stored, outcome, to_save))
            })
            .await?;
        let result = match (&outcome.files, check_status) {
            (Ok(_), _) => "ok",
            (Err(_), "failed") => "kept-broken",
            (Err(_), _) => "error",
        };
        daemon.metrics.generation(&provider, result, tokens_used);
        let Some(files) = to_save else {
            return Err(outcome
                .files
                .expect_err("nothing to save means a failure")
                .into());
        };
        if let Err(e) = &outcome.files {
            report(Progress::Step(format!(
                "saved although it failed its checks (--keep-broken): {e}"
            )));
        }
        for path in &outcome.deleted {
            report(Progress::Step(format!(
                "deleted {path}, as the model asked"
            )));
        }
        let project = stored.transpose()?;
        tracing::info!(
            generation_id,
            user_id = owner_id,
            kind,
            saved = project.is_some(),
            rounds = outcome.rounds.len(),
            check_status,
            "generated an app"
        );
        let restarted = match (&project, following) {
            (Some(saved), Some(project)) => {
                let release = Release {
                    version: saved.version,
                    check_status: Some(check_status.to_string()),
                    files: files.clone(),
                };
                follow(daemon, &project, &release, progress).await
            }
            _ => false,
        };
        let last = outcome.rounds.last();
        Ok(Reply::Generated(Generated {
            generation_id,
            project,
            files,
            tokens_used,
            provider,
            model,
            duration_ms,
            mends: outcome
                .rounds
                .iter()
                .flat_map(|r| r.mends.clone())
                .collect(),
            checks: last.map(|r| check_steps(&r.steps)).unwrap_or_default(),
            repair_rounds: outcome.rounds.len().saturating_sub(1) as u32,
            check_status: check_status.to_string(),
            restarted,
            deleted: outcome.deleted.clone(),
        }))
    }
}

/// The steps as the protocol carries them.
pub fn check_steps(steps: &[crate::checks::StepOutcome]) -> Vec<CheckStep> {
    steps
        .iter()
        .map(|s| CheckStep {
            step: s.step.as_str().to_string(),
            passed: s.passed,
            millis: s.millis,
        })
        .collect()
}

/// Stores checked files where the target says, inside the caller's transaction.
/// A project error (a name taken meanwhile) is returned, not raised, so the
/// history row is still committed.
#[allow(clippy::too_many_arguments)]
fn store(
    tx: &Conn<'_>,
    owner_id: i64,
    generation_id: i64,
    prompt: &str,
    tokens_used: u64,
    files: &[FileContent],
    checks: &str,
    target: Target,
) -> Result<Option<Result<SavedAs, ProjectError>>, DbError> {
    let version = NewVersion {
        kind: match &target {
            Target::NewVersion { kind, .. } => kind,
            _ => "generate",
        },
        prompt,
        generation_id: Some(generation_id),
        tokens_used,
        files,
        checks,
    };
    let saved = match target {
        Target::Nowhere => return Ok(None),
        Target::NewProject { name } => {
            projects::create(tx, owner_id, name.as_deref(), prompt, version)
        }
        Target::NewVersion { project, base, .. } => add_on_top(tx, project, base, version),
    };
    if let Ok(saved) = &saved {
        history::link(tx, generation_id, saved.project_id)?;
    }
    Ok(Some(saved))
}

/// Adds an improvement as the next version, unless the project moved on from
/// `base` while the model worked.
fn add_on_top(
    tx: &Conn<'_>,
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
