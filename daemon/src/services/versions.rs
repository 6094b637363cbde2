//! Making a version: the one workflow behind `generate`, `improve`, `fix`,
//! `edit` and `rollback`. Files are mended, checked (and, when a model
//! wrote them, repaired by the model), saved, recorded in the generation
//! history, and the project's running app follows the new version.

use std::collections::BTreeSet;
use std::path::Path;

use appforge_shared::protocol::{
    CheckOptions, CheckStep, EditRequest, FileContent, FixRequest, GenerateRequest, Generated,
    ImportRequest, ImproveRequest, Progress, RollbackRequest, SaveGenerationRequest, SavedAs,
    SavedVersion,
};

use super::apps::{Apps, NewRelease};
use super::{history, settings};
use crate::ai::generate::{Asking, GenerationError};
use crate::ai::parse::{MAX_FILES, MAX_FILE_BYTES};
use crate::ai::validate::{self, CheckError as StaticError};
use crate::ai::{prompt, template, AppWords, Message, ProviderChoiceError, Providers};
use crate::checks::repair::{self, Job};
use crate::checks::{CheckError, RunCheck, StepOutcome};
use crate::db::{Conn, Db, DbError};
use crate::metrics::Metrics;
use crate::process::launch::Variables;
use crate::projects::change::Change;
use crate::projects::path::SafePath;
use crate::projects::versions::{CheckStatus, Kind};
use crate::projects::{self, versions, NewVersion, Project, ProjectError};

/// Longest prompt accepted, in bytes.
const MAX_PROMPT: usize = 32 * 1024;

/// Where progress goes; the client may be gone, which the caller notices.
pub type Report<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// Why a version was not made.
#[derive(Debug, thiserror::Error)]
pub enum MakeError {
    /// The request is wrong: an empty prompt, a bad path, nothing to fix.
    #[error("{0}")]
    InvalidInput(String),
    /// No unsaved generation of the caller's has that id.
    #[error("no unsaved generation {0}; it may be saved already")]
    NoUnsaved(i64),
    /// The files failed their checks, and `--keep-broken` was not given.
    #[error(
        "the {what} was not saved: {failure}\n(--keep-broken saves it anyway, marked as \
         failing; --no-check skips the checks)"
    )]
    FailedChecks {
        /// `edit`, `rollback` or `import`.
        what: Kind,
        /// What failed.
        failure: crate::checks::Failure,
    },
    /// The checks themselves could not run.
    #[error(transparent)]
    Checker(CheckError),
    /// The static checks could not run.
    #[error(transparent)]
    StaticChecker(StaticError),
    /// The provider asked for cannot be used.
    #[error(transparent)]
    Provider(#[from] ProviderChoiceError),
    /// The offline scaffolder cannot carry the request out.
    #[error(transparent)]
    Refused(#[from] template::Refusal),
    /// The model gave no usable app.
    #[error(transparent)]
    Generation(#[from] GenerationError),
    /// The project, a version, or a name.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// The store failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// An import failed its checks and the model could not repair it; the
    /// import itself is saved, marked as failing.
    #[error(
        "`{name}` is saved as version 1, the folder as it was, marked as failing its checks; \
         the repair failed: {error}"
    )]
    RepairFailed {
        /// The new project.
        name: String,
        /// Why the repair failed.
        error: Box<MakeError>,
    },
}

/// What making a version needs: the store, the models, the checks and the
/// running apps. The daemon hands its own; tests hand stand-ins.
pub struct Maker<'a> {
    /// The store.
    pub db: &'a Db,
    /// The AI providers.
    pub providers: &'a Providers,
    /// Runs the files.
    pub checker: &'a dyn RunCheck,
    /// The supervised apps.
    pub apps: &'a dyn Apps,
    /// Counts generations.
    pub metrics: &'a Metrics,
    /// Interpreter for the syntax check.
    pub python: &'a Path,
    /// Repair rounds when the request names none.
    pub repair_rounds: u32,
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
        kind: Kind,
    },
}

/// What became of a generation's files in the store.
enum Stored {
    /// They were not to be saved.
    Nowhere,
    /// They were saved, or found to equal the newest version.
    Saved(SavedAs, Placed),
    /// Saving them failed (a name taken meanwhile, a project that moved
    /// on); the history rows are kept all the same.
    NotSaved(ProjectError),
}

impl Stored {
    fn into_saved(self) -> Result<Option<(SavedAs, Placed)>, ProjectError> {
        match self {
            Stored::Nowhere => Ok(None),
            Stored::Saved(saved, placed) => Ok(Some((saved, placed))),
            Stored::NotSaved(e) => Err(e),
        }
    }
}

/// Whether files became a new version, or equal the newest one already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placed {
    /// A new version (or a new project).
    New,
    /// The newest version already has these files: nothing was saved.
    Same,
}

/// One generation call: who asks, what, and whom.
struct Call {
    owner_id: i64,
    kind: Kind,
    prompt: String,
    provider: std::sync::Arc<dyn crate::ai::Provider>,
    model: String,
}

impl Maker<'_> {
    /// Generates an app from a prompt, saving it as a project when asked.
    pub async fn generate(
        &self,
        owner_id: i64,
        req: GenerateRequest,
        report: Report<'_>,
    ) -> Result<Generated, MakeError> {
        check_prompt(&req.prompt)?;
        if let Some(name) = &req.name {
            projects::check_name(name)?;
        }
        let target = match req.save {
            true => Target::NewProject { name: req.name },
            false => Target::Nowhere,
        };
        let call = self.call(
            owner_id,
            Kind::Generate,
            req.prompt,
            req.provider,
            req.model,
        )?;
        let messages = prompt::generate(&call.prompt);
        let app = AppWords {
            prompt: call.prompt.clone(),
            change: None,
            current: Vec::new(),
        };
        let generation = Generation {
            app,
            messages,
            target,
            base: None,
            options: req.checks,
        };
        self.run_and_store(call, generation, report).await
    }

    /// Saves the files of an earlier generation as a new project.
    pub async fn save_generation(
        &self,
        owner_id: i64,
        req: SaveGenerationRequest,
    ) -> Result<Generated, MakeError> {
        if let Some(name) = &req.name {
            projects::check_name(name)?;
        }
        let id = req.generation_id;
        let (stored, unsaved) = self
            .db
            .transaction(move |tx| {
                let Some(unsaved) = history::unsaved(tx, owner_id, id)? else {
                    return Err(MakeError::NoUnsaved(id));
                };
                let target = Target::NewProject { name: req.name };
                let stored = store(
                    tx,
                    owner_id,
                    id,
                    &unsaved.prompt,
                    unsaved.tokens_used,
                    &unsaved.files,
                    unsaved.check_status,
                    target,
                )?;
                Ok((stored, unsaved))
            })
            .await?;
        let (project, unchanged) = match stored.into_saved()? {
            Some((saved, placed)) => (Some(saved), placed == Placed::Same),
            None => (None, false),
        };
        Ok(Generated {
            generation_id: id,
            project,
            files: unsaved.files,
            tokens_used: unsaved.tokens_used,
            provider: String::new(),
            model: String::new(),
            duration_ms: 0,
            mends: Vec::new(),
            checks: Vec::new(),
            repair_rounds: 0,
            check_status: unsaved.check_status.as_str().to_string(),
            restarted: false,
            deleted: Vec::new(),
            unchanged,
            understood: None,
            docs_only: false,
        })
    }

    /// Changes a project by a prompt and saves the result as a new version.
    pub async fn improve(
        &self,
        owner_id: i64,
        req: ImproveRequest,
        report: Report<'_>,
    ) -> Result<Generated, MakeError> {
        check_prompt(&req.prompt)?;
        let reference = req.project.clone();
        let (project, base, current) = self
            .db
            .transaction(move |c| {
                let p = projects::resolve(c, owner_id, &reference)?;
                let base = versions::latest(c, p.id)?;
                let files = versions::files_at(c, &p, base)?;
                Ok::<_, ProjectError>((p, base, files))
            })
            .await?;
        let call = self.call(owner_id, Kind::Improve, req.prompt, req.provider, req.model)?;
        let app = AppWords {
            prompt: project.prompt.clone(),
            change: Some(call.prompt.clone()),
            current: current.clone(),
        };
        let messages = prompt::improve(&current, &call.prompt);
        let generation = Generation::on_top(
            app,
            messages,
            project,
            base,
            current,
            Kind::Improve,
            req.checks,
        );
        self.run_and_store(call, generation, report).await
    }

    /// Repairs a project from its app's last real failure (the traceback in
    /// its log and how it ended, or its last failed check) and saves the
    /// result as a new version.
    pub async fn fix(
        &self,
        owner_id: i64,
        req: FixRequest,
        report: Report<'_>,
    ) -> Result<Generated, MakeError> {
        if let Some(extra) = &req.prompt {
            check_prompt(extra)?;
        }
        let reference = req.project.clone();
        let (project, base, current, last_check) = self
            .db
            .transaction(move |c| {
                let p = projects::resolve(c, owner_id, &reference)?;
                let base = versions::latest(c, p.id)?;
                let files = versions::files_at(c, &p, base)?;
                let last_check = history::last_failure(c, p.id)?;
                Ok::<_, ProjectError>((p, base, files, last_check))
            })
            .await?;
        let failure = match self.apps.last_failure(project.id).await {
            Some(failure) => failure,
            None => match (last_check, &req.prompt) {
                (Some(check), _) => check,
                (None, Some(_)) => "(no failure was recorded; see the user's words)".to_string(),
                (None, None) => {
                    return Err(MakeError::InvalidInput(format!(
                        "`{}` has no failure to fix: its app has not failed and its last version \
                         passed its checks; say what is wrong (`appforge fix {} \"what is wrong\"`) \
                         or change it with `appforge improve`",
                        project.name, project.name
                    )))
                }
            },
        };
        report(Progress::Step(format!(
            "sending the app's last failure to the model: {}",
            failure
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
        )));
        let words = req
            .prompt
            .clone()
            .unwrap_or_else(|| "fix the app's last failure".into());
        let call = self.call(owner_id, Kind::Fix, words, req.provider, req.model)?;
        let app = AppWords {
            prompt: project.prompt.clone(),
            change: req.prompt.clone(),
            current: current.clone(),
        };
        let messages = prompt::fix(&current, &failure, req.prompt.as_deref());
        let generation =
            Generation::on_top(app, messages, project, base, current, Kind::Fix, req.checks);
        self.run_and_store(call, generation, report).await
    }

    /// Saves an edited file set as a new version, if it changed anything
    /// and passes its checks.
    pub async fn edit(
        &self,
        owner_id: i64,
        req: EditRequest,
        report: Report<'_>,
    ) -> Result<SavedVersion, MakeError> {
        // Find the project first, so someone else's project is "not found"
        // no matter what the files hold.
        let reference = req.project;
        let project = self
            .db
            .transaction(move |c| projects::resolve(c, owner_id, &reference))
            .await?;
        let files = checked_paths(req.files, Kind::Edit)?;
        let made = Unwritten {
            project,
            base: req.base_version,
            files,
            kind: Kind::Edit,
            prompt: String::new(),
        };
        let saved = self.check_and_save(made, req.checks, report).await?;
        if saved.saved {
            tracing::info!(
                project_id = saved.project_id,
                version = saved.version,
                "saved an edit"
            );
        }
        Ok(saved)
    }

    /// Makes a new project of a folder's files (read by the client, which
    /// left out what does not belong in a project), once they pass their
    /// checks; nothing is saved when they fail, unless `--keep-broken`.
    pub async fn import(
        &self,
        owner_id: i64,
        req: ImportRequest,
        report: Report<'_>,
    ) -> Result<SavedVersion, MakeError> {
        let ImportRequest {
            name,
            folder,
            files,
            checks,
            repair,
            provider,
            model,
        } = req;
        // The provider is chosen first, so a wrong one is refused before
        // the checks run.
        let repairer = match repair {
            true => Some(self.call(
                owner_id,
                Kind::Fix,
                "repair the imported app so that it passes its checks".into(),
                provider,
                model,
            )?),
            false => None,
        };
        if let Some(name) = &name {
            projects::check_name(name)?;
        }
        let mut files = checked_paths(files, Kind::Import)?;
        if files.is_empty() {
            return Err(MakeError::InvalidInput(
                "the import was not saved: the folder has no files to import".into(),
            ));
        }
        // A taken name is refused before the checks, which take a while.
        if let Some(wanted) = name.clone() {
            self.db
                .transaction(
                    move |tx| match projects::name_taken(tx, owner_id, &wanted)? {
                        true => Err(ProjectError::NameTaken(wanted)),
                        false => Ok(()),
                    },
                )
                .await?;
        }
        // With a repair to come, a failing import is kept as version 1. A
        // new project has no settings yet to check with.
        let options = CheckOptions {
            keep_broken: checks.keep_broken || repairer.is_some(),
            ..checks
        };
        let (status, steps, failure) = self
            .check(
                &mut files,
                &Variables::default(),
                options,
                Kind::Import,
                report,
            )
            .await?;
        // The folder's name is the client's word: it only names things.
        let folder: String = folder
            .chars()
            .filter(|c| !c.is_control() && *c != '`')
            .take(100)
            .collect();
        let prompt = format!("imported from the folder `{folder}`");
        let paths = files.iter().map(|f| f.path.clone()).collect();
        let imported = files.clone();
        let saved = self
            .db
            .transaction(move |tx| {
                let name = match name {
                    Some(name) => name,
                    None => {
                        projects::unused_name(tx, owner_id, &projects::name_from_folder(&folder))?
                    }
                };
                let version = NewVersion {
                    kind: Kind::Import,
                    prompt: &prompt,
                    generation_id: None,
                    tokens_used: 0,
                    files: &files,
                    checks: status,
                };
                projects::create(tx, owner_id, Some(&name), &prompt, version)
            })
            .await?;
        tracing::info!(
            project_id = saved.project_id,
            check_status = status.as_str(),
            "imported a folder"
        );
        if let (Some(call), Some(failure)) = (repairer, failure) {
            return self
                .repair_import(call, saved, imported, failure, checks, report)
                .await;
        }
        Ok(SavedVersion {
            project_id: saved.project_id,
            name: saved.name,
            version: saved.version,
            saved: true,
            changed: paths,
            check_status: status.as_str().to_string(),
            checks: steps,
            restarted: false,
            docs_only: false,
        })
    }

    /// Has the model repair an import that failed its checks, saved as its
    /// version 1; the repair, once it passes, becomes version 2.
    async fn repair_import(
        &self,
        call: Call,
        saved: SavedAs,
        imported: Vec<FileContent>,
        failure: crate::checks::Failure,
        checks: CheckOptions,
        report: Report<'_>,
    ) -> Result<SavedVersion, MakeError> {
        report(Progress::Step(format!(
            "version 1 is saved as the folder was, marked as failing; asking {} to repair it",
            call.provider.name()
        )));
        let (owner_id, id) = (call.owner_id, saved.project_id.to_string());
        let project = self
            .db
            .transaction(move |c| projects::resolve(c, owner_id, &id))
            .await?;
        let app = AppWords {
            prompt: project.prompt.clone(),
            change: None,
            current: imported.clone(),
        };
        let messages = prompt::fix(&imported, &failure.to_string(), None);
        let generation = Generation::on_top(
            app,
            messages,
            project,
            saved.version,
            imported.clone(),
            Kind::Fix,
            checks,
        );
        let repaired = match self.run_and_store(call, generation, report).await {
            Ok(repaired) => repaired,
            Err(error) => {
                return Err(MakeError::RepairFailed {
                    name: saved.name,
                    error: Box::new(error),
                })
            }
        };
        let version = repaired
            .project
            .as_ref()
            .map_or(saved.version, |p| p.version);
        Ok(SavedVersion {
            project_id: saved.project_id,
            name: saved.name,
            version,
            saved: true,
            changed: versions::changed_paths(&imported, &repaired.files),
            check_status: repaired.check_status,
            checks: repaired.checks,
            restarted: false,
            docs_only: false,
        })
    }

    /// Makes a new version equal to an earlier one, once it passes its checks.
    pub async fn rollback(
        &self,
        owner_id: i64,
        req: RollbackRequest,
        report: Report<'_>,
    ) -> Result<SavedVersion, MakeError> {
        let (wanted, reference) = (req.version, req.project);
        let (project, base, files) = self
            .db
            .transaction(move |c| {
                let p = projects::resolve(c, owner_id, &reference)?;
                let base = versions::latest(c, p.id)?;
                let files = versions::files_at(c, &p, wanted)?;
                Ok::<_, ProjectError>((p, base, files))
            })
            .await?;
        let made = Unwritten {
            project,
            base,
            files,
            kind: Kind::Rollback,
            prompt: format!("rollback to version {wanted}"),
        };
        let saved = self.check_and_save(made, req.checks, report).await?;
        if saved.saved {
            tracing::info!(
                project_id = saved.project_id,
                version = saved.version,
                "rolled a project back"
            );
        }
        Ok(saved)
    }

    /// What the provider understood, said before it writes; its refusal
    /// ends the request before anything is recorded. For a new project
    /// the line also names the project it would become.
    fn understood(
        &self,
        call: &Call,
        app: &AppWords,
        target: &Target,
        report: Report<'_>,
    ) -> Result<Option<String>, MakeError> {
        let Some(mut said) = call.provider.understand(app)? else {
            return Ok(None);
        };
        if let Target::NewProject { name } = target {
            let name = name
                .clone()
                .unwrap_or_else(|| projects::name_from_prompt(&app.prompt));
            said.push_str(&format!("; project `{name}`"));
        }
        report(Progress::Step(format!("understood: {said}")));
        Ok(Some(said))
    }

    fn call(
        &self,
        owner_id: i64,
        kind: Kind,
        prompt: String,
        provider: Option<String>,
        model: Option<String>,
    ) -> Result<Call, MakeError> {
        let provider = self.providers.choose(provider.as_deref())?;
        let model = model.unwrap_or_else(|| provider.default_model().to_string());
        Ok(Call {
            owner_id,
            kind,
            prompt,
            provider,
            model,
        })
    }

    /// Runs a generation, then records each round and stores the files in
    /// one transaction, so a failure keeps the history rows and nothing
    /// else; a project whose app is wanted running then follows.
    async fn run_and_store(
        &self,
        call: Call,
        generation: Generation,
        report: Report<'_>,
    ) -> Result<Generated, MakeError> {
        let Generation {
            app,
            messages,
            target,
            base,
            options,
        } = generation;
        let understood = self.understood(&call, &app, &target, report)?;
        // A new version is checked with the project's settings (secrets as
        // placeholders); a new project has none yet.
        let settings = match &target {
            Target::NewVersion { project, .. } => settings::for_checks(self.db, project.id).await?,
            _ => Variables::default(),
        };
        let job = Job {
            asking: Asking {
                provider: &*call.provider,
                model: &call.model,
                app: &app,
                report,
            },
            repair_rounds: options.repair_rounds.unwrap_or(self.repair_rounds),
            python: self.python,
            checker: options.check.then_some(self.checker),
            settings: &settings,
            base: base.as_deref(),
        };
        let outcome = repair::run(job, messages).await;
        // A change that leaves the app's code as it was is not run again.
        let change = match (&base, &outcome.files) {
            (Some(base), Ok(files)) => Some(Change::of(base, files)),
            _ => None,
        };
        let ran = !matches!(change, Some(Change::Nothing | Change::DocsOnly(_)));
        let (to_save, check_status) = match &outcome.files {
            Ok(files) if options.check && ran => (Some(files.clone()), Some(CheckStatus::Passed)),
            Ok(files) => (Some(files.clone()), Some(CheckStatus::Skipped)),
            Err(GenerationError::Invalid { .. } | GenerationError::Stuck { .. })
                if options.keep_broken && outcome.broken.is_some() =>
            {
                (outcome.broken.clone(), Some(CheckStatus::Failed))
            }
            Err(_) => (None, None),
        };
        let tokens_used = outcome.usage().total_tokens;
        let duration_ms = outcome.duration().as_millis() as u64;
        let provider = call.provider.name().to_string();
        let Call {
            owner_id,
            kind,
            prompt,
            model,
            ..
        } = call;
        let (entry_provider, entry_model) = (provider.clone(), model.clone());
        let following = match &target {
            Target::NewVersion { project, .. } => Some(project.clone()),
            _ => None,
        };
        let (generation_id, stored, outcome, to_save) = self
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
                let stored = match (&to_save, check_status) {
                    (Some(files), Some(status)) => store(
                        tx,
                        owner_id,
                        id,
                        &prompt,
                        tokens_used,
                        files,
                        status,
                        target,
                    )?,
                    _ => Stored::Nowhere,
                };
                Ok::<_, DbError>((id, stored, outcome, to_save))
            })
            .await?;
        let result = match (&outcome.files, check_status) {
            (Ok(_), _) => "ok",
            (Err(_), Some(CheckStatus::Failed)) => "kept-broken",
            (Err(_), _) => "error",
        };
        self.metrics.generation(&provider, result, tokens_used);
        let (Some(files), Some(check_status)) = (to_save, check_status) else {
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
        let (project, unchanged) = match stored.into_saved()? {
            Some((saved, placed)) => (Some(saved), placed == Placed::Same),
            None => (None, false),
        };
        if let (true, Some(same)) = (unchanged, &project) {
            report(Progress::Step(format!(
                "no change: version {} of `{}` already has this; nothing was saved",
                same.version, same.name
            )));
        }
        let docs_only = !unchanged && matches!(change, Some(Change::DocsOnly(_)));
        tracing::info!(
            generation_id,
            user_id = owner_id,
            kind = kind.as_str(),
            saved = project.is_some() && !unchanged,
            docs_only,
            rounds = outcome.rounds.len(),
            check_status = check_status.as_str(),
            "generated an app"
        );
        let restarted = match (&project, following) {
            _ if unchanged => false,
            (Some(_), Some(_)) if docs_only => {
                report(Progress::Step(
                    "only documentation changed: the running app, if any, was left as it was"
                        .into(),
                ));
                false
            }
            (Some(saved), Some(project)) => {
                let release = NewRelease {
                    version: saved.version,
                    check_status,
                    files: &files,
                };
                self.follow(&project, release, report).await
            }
            _ => false,
        };
        let last = outcome.rounds.last();
        Ok(Generated {
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
            check_status: check_status.as_str().to_string(),
            restarted,
            deleted: outcome.deleted.clone(),
            unchanged,
            understood,
            docs_only,
        })
    }

    /// Checks a file set that no model wrote (an edit, a rollback), saves
    /// it unless it equals the newest version, and has the app follow.
    async fn check_and_save(
        &self,
        made: Unwritten,
        options: CheckOptions,
        report: Report<'_>,
    ) -> Result<SavedVersion, MakeError> {
        let Unwritten {
            project,
            base,
            mut files,
            kind,
            prompt,
        } = made;
        let settings = settings::for_checks(self.db, project.id).await?;
        let (owner_id, id) = (project.owner_id, project.id.to_string());
        let (reference, version) = (id.clone(), base);
        let old = self
            .db
            .transaction(move |c| {
                let project = projects::resolve(c, owner_id, &reference)?;
                versions::files_at(c, &project, version)
            })
            .await?;
        // Files the app runs that did not change are not run again; equal
        // files are not saved at all (below), so they are not checked either.
        let change = Change::of(&old, &files);
        let (status, steps, _) = match &change {
            Change::Nothing => (CheckStatus::Skipped, Vec::new(), None),
            Change::DocsOnly(paths) => {
                report(Progress::Step(format!(
                    "only documentation changed ({}): the app is not run again",
                    paths.join(", ")
                )));
                let options = CheckOptions {
                    check: false,
                    ..options
                };
                self.check(&mut files, &settings, options, kind, report)
                    .await?
            }
            Change::Code(_) => {
                self.check(&mut files, &settings, options, kind, report)
                    .await?
            }
        };
        let docs_only = matches!(change, Change::DocsOnly(_));
        let to_save = files.clone();
        let mut saved = self
            .db
            .transaction(move |tx| {
                // Resolved again inside the transaction: the project may
                // have been deleted while the checks ran.
                let project = projects::resolve(tx, owner_id, &id)?;
                let version = NewVersion {
                    kind,
                    prompt: &prompt,
                    generation_id: None,
                    tokens_used: 0,
                    files: &to_save,
                    checks: status,
                };
                versions::save_if_changed(tx, &project, Some(base), version)
            })
            .await?;
        saved.checks = steps;
        saved.docs_only = saved.saved && docs_only;
        if saved.saved && docs_only {
            report(Progress::Step(
                "only documentation changed: the running app, if any, was left as it was".into(),
            ));
        } else if saved.saved {
            let release = NewRelease {
                version: saved.version,
                check_status: status,
                files: &files,
            };
            saved.restarted = self.follow(&project, release, report).await;
        }
        Ok(saved)
    }

    /// The static checks, then (unless turned off) the checks by running.
    /// Returns how they went; refuses a failure unless `--keep-broken`
    /// says to save it.
    async fn check(
        &self,
        files: &mut Vec<FileContent>,
        settings: &Variables,
        options: CheckOptions,
        what: Kind,
        report: Report<'_>,
    ) -> Result<(CheckStatus, Vec<CheckStep>, Option<crate::checks::Failure>), MakeError> {
        validate::check(files, self.python)
            .await
            .map_err(|e| match e {
                StaticError::Invalid(why) => {
                    MakeError::InvalidInput(format!("the {what} was not saved: {why}"))
                }
                e @ StaticError::Checker(_) => MakeError::StaticChecker(e),
            })?;
        if !options.check {
            return Ok((CheckStatus::Skipped, Vec::new(), None));
        }
        let say = |line: String| report(Progress::Step(line));
        match self.checker.run_checks(files, settings, &say).await {
            Ok(steps) => Ok((CheckStatus::Passed, check_steps(&steps), None)),
            Err(CheckError::Failed { steps, failure }) if options.keep_broken => {
                say(format!("saving although it failed its checks: {failure}"));
                Ok((CheckStatus::Failed, check_steps(&steps), Some(failure)))
            }
            Err(CheckError::Failed { failure, .. }) => {
                Err(MakeError::FailedChecks { what, failure })
            }
            Err(e @ CheckError::Broken(_)) => Err(MakeError::Checker(e)),
        }
    }

    /// After a new version is saved: a project whose app is supervised is
    /// restarted on it (unless it failed its checks); returns whether it
    /// was. The version is saved whatever happens here, so a failed
    /// restart is reported, not returned.
    async fn follow(&self, project: &Project, release: NewRelease<'_>, report: Report<'_>) -> bool {
        let step = |s: String| report(Progress::Step(s));
        match self.apps.follow(project, release, &step).await {
            Ok(restarted) => restarted,
            Err(e) => {
                tracing::warn!(project_id = project.id, error = %e, "the app could not follow its new version");
                step(format!(
                    "the new version is saved, but the app did not restart on it: {e}"
                ));
                false
            }
        }
    }
}

/// A generation to run: the conversation, and where its files go.
struct Generation {
    /// The app in the user's words, for the offline scaffolder.
    app: AppWords,
    /// The conversation so far.
    messages: Vec<Message>,
    /// Where the files go.
    target: Target,
    /// The files a change starts from: the reply's files go over them.
    base: Option<Vec<FileContent>>,
    /// Checks, repair rounds, `--keep-broken`.
    options: CheckOptions,
}

impl Generation {
    /// A change of `project`'s version `base` (whose files are `current`),
    /// saved as its next version of `kind`.
    fn on_top(
        app: AppWords,
        messages: Vec<Message>,
        project: Project,
        base: i64,
        current: Vec<FileContent>,
        kind: Kind,
        options: CheckOptions,
    ) -> Generation {
        Generation {
            app,
            messages,
            target: Target::NewVersion {
                project,
                base,
                kind,
            },
            base: Some(current),
            options,
        }
    }
}

/// A file set no model wrote, to save as the next version.
struct Unwritten {
    project: Project,
    /// The version the change started from.
    base: i64,
    files: Vec<FileContent>,
    /// `edit` or `rollback`.
    kind: Kind,
    prompt: String,
}

/// The steps as the protocol carries them.
fn check_steps(steps: &[StepOutcome]) -> Vec<CheckStep> {
    steps
        .iter()
        .map(|s| CheckStep {
            step: s.step.as_str().to_string(),
            passed: s.passed,
            millis: s.millis,
        })
        .collect()
}

/// Stores checked files where the target says, inside the caller's
/// transaction. A project error (a name taken meanwhile) is returned as
/// such, not raised, so the history rows are still committed.
#[allow(clippy::too_many_arguments)]
fn store(
    tx: &Conn<'_>,
    owner_id: i64,
    generation_id: i64,
    prompt: &str,
    tokens_used: u64,
    files: &[FileContent],
    checks: CheckStatus,
    target: Target,
) -> Result<Stored, DbError> {
    let version = NewVersion {
        kind: match &target {
            Target::NewVersion { kind, .. } => *kind,
            _ => Kind::Generate,
        },
        prompt,
        generation_id: Some(generation_id),
        tokens_used,
        files,
        checks,
    };
    let saved = match target {
        Target::Nowhere => return Ok(Stored::Nowhere),
        Target::NewProject { name } => {
            match same_project(tx, owner_id, name.as_deref(), prompt, files) {
                Ok(Some(same)) => Ok((same, Placed::Same)),
                Ok(None) => projects::create(tx, owner_id, name.as_deref(), prompt, version)
                    .map(|saved| (saved, Placed::New)),
                Err(e) => Err(e),
            }
        }
        Target::NewVersion { project, base, .. } => add_on_top(tx, project, base, version),
    };
    match saved {
        Ok((saved, placed)) => {
            if placed == Placed::New {
                history::link(tx, generation_id, saved.project_id)?;
            }
            Ok(Stored::Saved(saved, placed))
        }
        Err(e) => Ok(Stored::NotSaved(e)),
    }
}

/// The caller's project that a new project would be (the one named, else
/// the one the prompt's name gives) when its newest version already has
/// exactly these files: generating the same app again saves nothing.
fn same_project(
    tx: &Conn<'_>,
    owner_id: i64,
    name: Option<&str>,
    prompt: &str,
    files: &[FileContent],
) -> Result<Option<SavedAs>, ProjectError> {
    let name = name.map_or_else(|| projects::name_from_prompt(prompt), str::to_string);
    let project = match projects::resolve(tx, owner_id, &name) {
        Ok(project) if project.name == name => project,
        Ok(_) | Err(ProjectError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let newest = versions::latest(tx, project.id)?;
    let current = versions::files_at(tx, &project, newest)?;
    let same = SavedAs {
        project_id: project.id,
        name: project.name,
        version: newest,
    };
    Ok((Change::of(&current, files) == Change::Nothing).then_some(same))
}

/// Adds an improvement as the next version, unless the project moved on from
/// `base` while the model worked, or the files equal `base`'s.
fn add_on_top(
    tx: &Conn<'_>,
    project: Project,
    base: i64,
    version: NewVersion<'_>,
) -> Result<(SavedAs, Placed), ProjectError> {
    let newest = versions::latest(tx, project.id)?;
    if newest != base {
        return Err(ProjectError::Moved {
            name: project.name,
            base,
            newest,
        });
    }
    let current = versions::files_at(tx, &project, base)?;
    if Change::of(&current, version.files) == Change::Nothing {
        let same = SavedAs {
            project_id: project.id,
            name: project.name,
            version: base,
        };
        return Ok((same, Placed::Same));
    }
    let version = versions::add_version(tx, project.id, version)?;
    let saved = SavedAs {
        project_id: project.id,
        name: project.name,
        version,
    };
    Ok((saved, Placed::New))
}

fn check_prompt(prompt: &str) -> Result<(), MakeError> {
    if prompt.trim().is_empty() {
        return Err(MakeError::InvalidInput(
            "the prompt is empty; describe the app you want".into(),
        ));
    }
    if prompt.len() > MAX_PROMPT {
        return Err(MakeError::InvalidInput(format!(
            "the prompt is {} bytes; keep it under {MAX_PROMPT}",
            prompt.len()
        )));
    }
    if prompt.contains('\0') {
        return Err(MakeError::InvalidInput(
            "the prompt holds a NUL byte".into(),
        ));
    }
    Ok(())
}

/// Checks the paths and sizes of a file set the user gave (an edit, an
/// import), as strictly as a model's.
fn checked_paths(files: Vec<FileContent>, what: Kind) -> Result<Vec<FileContent>, MakeError> {
    let refuse = |why: String| {
        Err(MakeError::InvalidInput(format!(
            "the {what} was not saved: {why}"
        )))
    };
    if files.len() > MAX_FILES {
        return refuse(format!(
            "it has {} files; at most {MAX_FILES} are allowed",
            files.len()
        ));
    }
    let mut seen = BTreeSet::new();
    let mut checked = Vec::with_capacity(files.len());
    for f in files {
        let path = match SafePath::new(&f.path) {
            Ok(path) => path.to_string(),
            Err(_) => {
                let shown: String = f
                    .path
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(255)
                    .collect();
                return refuse(format!(
                    "`{shown}` is not a safe relative path inside the project"
                ));
            }
        };
        if f.content.len() > MAX_FILE_BYTES {
            return refuse(format!(
                "`{path}` is {} bytes; a file may hold at most {MAX_FILE_BYTES}",
                f.content.len()
            ));
        }
        if f.content.contains('\0') {
            return refuse(format!(
                "`{path}` holds a NUL byte; only text files are kept"
            ));
        }
        if !seen.insert(path.clone()) {
            return refuse(format!("`{path}` is given twice"));
        }
        checked.push(FileContent {
            path,
            content: f.content,
        });
    }
    checked.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(checked)
}

#[cfg(test)]
mod tests {
    //! The workflow on a real SQLite store and the offline scaffolder, with
    //! stand-ins for the checks by running and for the supervised apps, so
    //! no app runs. The syntax check still asks `python3`.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::checks::{Failure, Step};
    use crate::params;
    use crate::supervisor::RunError;

    /// Passes or fails every check, counting them.
    struct FakeChecker {
        fail: bool,
        runs: AtomicUsize,
    }

    impl RunCheck for FakeChecker {
        fn run_checks<'a>(
            &'a self,
            _files: &'a [FileContent],
            _settings: &'a Variables,
            report: &'a (dyn Fn(String) + Send + Sync),
        ) -> BoxFuture<'a, Result<Vec<StepOutcome>, CheckError>> {
            Box::pin(async move {
                self.runs.fetch_add(1, Ordering::SeqCst);
                report("check: starting the app and asking for /".into());
                let step = StepOutcome {
                    step: Step::Start,
                    passed: !self.fail,
                    millis: 1,
                };
                match self.fail {
                    false => Ok(vec![step]),
                    true => Err(CheckError::Failed {
                        steps: vec![step],
                        failure: Failure {
                            step: Step::Start,
                            error: "GET / answered 500".into(),
                        },
                    }),
                }
            })
        }
    }

    /// A supervisor as the workflow sees it: whether the app runs (and so
    /// follows), whether following fails, and its last failure.
    #[derive(Default)]
    struct FakeApps {
        running: bool,
        refuse: bool,
        failure: Option<String>,
        followed: Mutex<Vec<(i64, i64, CheckStatus)>>,
    }

    impl Apps for FakeApps {
        fn follow<'a>(
            &'a self,
            project: &'a Project,
            release: NewRelease<'a>,
            _step: &'a (dyn Fn(String) + Send + Sync),
        ) -> BoxFuture<'a, Result<bool, RunError>> {
            Box::pin(async move {
                self.followed.lock().unwrap().push((
                    project.id,
                    release.version,
                    release.check_status,
                ));
                match self.refuse {
                    true => Err(RunError::NoPort(8000, 8001)),
                    false => Ok(self.running),
                }
            })
        }

        fn last_failure(&self, _project_id: i64) -> BoxFuture<'_, Option<String>> {
            Box::pin(async move { self.failure.clone() })
        }
    }

    struct World {
        _dir: tempfile::TempDir,
        db: Db,
        providers: Providers,
        metrics: Metrics,
        checker: FakeChecker,
        apps: FakeApps,
        owner: i64,
        steps: Mutex<Vec<String>>,
    }

    impl World {
        async fn new(fail: bool, apps: FakeApps) -> World {
            let dir = tempfile::tempdir().unwrap();
            let db = Db::open(&dir.path().join("appforge.db")).unwrap();
            let cli = <crate::config::Cli as clap::Parser>::parse_from([
                "appforged",
                "--provider",
                "template",
            ]);
            let settings = crate::config::Settings::from_cli(cli, Default::default()).unwrap();
            let providers = Providers::new(&settings.ai).unwrap();
            let owner = add_user(&db, "owner@example.com").await;
            World {
                _dir: dir,
                db,
                providers,
                metrics: Metrics::default(),
                checker: FakeChecker {
                    fail,
                    runs: AtomicUsize::new(0),
                },
                apps,
                owner,
                steps: Mutex::new(Vec::new()),
            }
        }

        fn maker(&self) -> Maker<'_> {
            Maker {
                db: &self.db,
                providers: &self.providers,
                checker: &self.checker,
                apps: &self.apps,
                metrics: &self.metrics,
                python: Path::new("python3"),
                repair_rounds: 2,
            }
        }

        fn report(&self) -> impl Fn(Progress) + Send + Sync + '_ {
            |p| {
                if let Progress::Step(s) = p {
                    self.steps.lock().unwrap().push(s);
                }
            }
        }

        fn said(&self, part: &str) -> bool {
            self.steps.lock().unwrap().iter().any(|s| s.contains(part))
        }

        async fn generate(&self, name: &str, checks: CheckOptions) -> Result<Generated, MakeError> {
            self.generate_from("a todo list", name, checks).await
        }

        async fn generate_from(
            &self,
            prompt: &str,
            name: &str,
            checks: CheckOptions,
        ) -> Result<Generated, MakeError> {
            let req = GenerateRequest {
                prompt: prompt.into(),
                save: true,
                name: Some(name.into()),
                provider: None,
                model: None,
                checks,
            };
            self.maker().generate(self.owner, req, &self.report()).await
        }

        /// Improves the project `todo` with `prompt`.
        async fn improve(&self, prompt: &str) -> Result<Generated, MakeError> {
            let req = ImproveRequest {
                project: "todo".into(),
                prompt: prompt.into(),
                provider: None,
                model: None,
                checks: CheckOptions::default(),
            };
            self.maker().improve(self.owner, req, &self.report()).await
        }

        /// (kind, outcome, project) of each history row, oldest first.
        async fn history(&self) -> Vec<(String, String, Option<i64>)> {
            self.db
                .call(|c| {
                    c.query(
                        "SELECT kind, outcome, project_id FROM generation_history ORDER BY id",
                        params![],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                })
                .await
                .unwrap()
        }

        /// (version, kind, checks, prompt) of each of a project's versions.
        async fn versions(&self, project_id: i64) -> Vec<(i64, String, String, String)> {
            self.db
                .call(move |c| {
                    c.query(
                        "SELECT version, kind, checks, prompt FROM project_versions \
                         WHERE project_id = $1 ORDER BY version",
                        params![project_id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                })
                .await
                .unwrap()
        }

        async fn files(&self, project_id: i64, version: i64) -> Vec<FileContent> {
            let owner = self.owner;
            self.db
                .transaction(move |c| {
                    let p = projects::resolve(c, owner, &project_id.to_string())?;
                    versions::files_at(c, &p, version)
                })
                .await
                .unwrap()
        }
    }

    async fn add_user(db: &Db, email: &'static str) -> i64 {
        db.call(move |c| {
            c.query_one(
                "INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id",
                params![email],
                |r| r.get(0),
            )
        })
        .await
        .unwrap()
    }

    fn edit(project: &str, base: i64, files: Vec<FileContent>) -> EditRequest {
        EditRequest {
            project: project.into(),
            base_version: base,
            files,
            checks: CheckOptions::default(),
        }
    }

    fn keep_broken() -> CheckOptions {
        CheckOptions {
            keep_broken: true,
            ..CheckOptions::default()
        }
    }

    /// The files with one more line at the end of `app.py`.
    fn changed(mut files: Vec<FileContent>) -> Vec<FileContent> {
        let app = files.iter_mut().find(|f| f.path == "app.py").unwrap();
        app.content.push_str("\n# changed\n");
        files
    }

    #[test]
    fn check_status_reads_back_what_it_writes() {
        for status in [
            CheckStatus::Passed,
            CheckStatus::Failed,
            CheckStatus::Skipped,
        ] {
            assert_eq!(CheckStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(CheckStatus::parse(""), None);
    }

    #[tokio::test]
    async fn generate_checks_saves_and_records_a_new_project() {
        let world = World::new(false, FakeApps::default()).await;
        let made = world
            .generate("todo", CheckOptions::default())
            .await
            .unwrap();
        let saved = made.project.expect("saved");
        assert_eq!((saved.name.as_str(), saved.version), ("todo", 1));
        assert_eq!(made.check_status, "passed");
        assert_eq!(made.checks.len(), 1);
        assert!(!made.restarted);
        assert_eq!(world.checker.runs.load(Ordering::SeqCst), 1);
        // A new project has no app to follow.
        assert!(world.apps.followed.lock().unwrap().is_empty());
        assert_eq!(
            world.history().await,
            [("generate".into(), "ok".into(), Some(saved.project_id))]
        );
        let versions = world.versions(saved.project_id).await;
        assert_eq!(
            (versions[0].1.as_str(), versions[0].2.as_str()),
            ("generate", "passed")
        );
        assert!(world.said("asking template"));
    }

    #[tokio::test]
    async fn an_unsaved_generation_is_saved_once() {
        let world = World::new(false, FakeApps::default()).await;
        let req = GenerateRequest {
            prompt: "a todo list".into(),
            save: false,
            name: None,
            provider: None,
            model: None,
            checks: CheckOptions {
                check: false,
                ..CheckOptions::default()
            },
        };
        let made = world
            .maker()
            .generate(world.owner, req, &world.report())
            .await
            .unwrap();
        assert!(made.project.is_none());
        assert_eq!(made.check_status, "skipped");
        assert_eq!(world.checker.runs.load(Ordering::SeqCst), 0);
        let save = SaveGenerationRequest {
            generation_id: made.generation_id,
            name: Some("later".into()),
        };
        let saved = world
            .maker()
            .save_generation(world.owner, save.clone())
            .await
            .unwrap();
        assert_eq!(saved.project.unwrap().name, "later");
        assert_eq!(saved.check_status, "skipped");
        assert_eq!(saved.files, made.files);
        let again = world.maker().save_generation(world.owner, save).await;
        let e = again.unwrap_err();
        assert!(matches!(e, MakeError::NoUnsaved(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "no unsaved generation {}; it may be saved already",
                made.generation_id
            )
        );
    }

    #[tokio::test]
    async fn a_name_taken_meanwhile_keeps_the_history_and_saves_nothing() {
        let world = World::new(false, FakeApps::default()).await;
        world
            .generate("todo", CheckOptions::default())
            .await
            .unwrap();
        let e = world
            .generate_from("a list of books", "todo", CheckOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(e, MakeError::Project(ProjectError::NameTaken(_))),
            "{e:?}"
        );
        let history = world.history().await;
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].2, None, "the refused round is not linked");
    }

    #[tokio::test]
    async fn a_failed_check_saves_nothing_unless_kept_broken() {
        let world = World::new(true, FakeApps::default()).await;
        let e = world
            .generate("todo", CheckOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(e, MakeError::Generation(GenerationError::Invalid { .. })),
            "{e:?}"
        );
        assert!(e.to_string().contains("GET / answered 500"), "{e}");
        assert_eq!(
            world.history().await,
            [("generate".into(), "failed".into(), None)]
        );
        let kept = world.generate("todo", keep_broken()).await.unwrap();
        assert_eq!(kept.check_status, "failed");
        let project_id = kept.project.unwrap().project_id;
        assert_eq!(world.versions(project_id).await[0].2, "failed");
        assert!(world.said("saved although it failed its checks (--keep-broken)"));
    }

    #[tokio::test]
    async fn improve_saves_the_next_version_and_the_running_app_follows() {
        let apps = FakeApps {
            running: true,
            ..FakeApps::default()
        };
        let world = World::new(false, apps).await;
        let first = world
            .generate("todo", CheckOptions::default())
            .await
            .unwrap();
        let project_id = first.project.unwrap().project_id;
        let made = world.improve("add a priority field").await.unwrap();
        assert_eq!(made.project.unwrap().version, 2);
        assert!(made.restarted);
        assert_eq!(
            *world.apps.followed.lock().unwrap(),
            [(project_id, 2, CheckStatus::Passed)]
        );
        let history = world.history().await;
        assert_eq!(
            history[1],
            ("improve".into(), "ok".into(), Some(project_id))
        );
    }

    #[tokio::test]
    async fn an_app_that_cannot_follow_is_reported_and_the_version_kept() {
        let apps = FakeApps {
            refuse: true,
            ..FakeApps::default()
        };
        let world = World::new(false, apps).await;
        let first = world
            .generate("todo", CheckOptions::default())
            .await
            .unwrap();
        let project_id = first.project.unwrap().project_id;
        let files = changed(first.files);
        let saved = world
            .maker()
            .edit(world.owner, edit("todo", 1, files), &world.report())
            .await
            .unwrap();
        assert!(saved.saved && !saved.restarted);
        assert_eq!(world.versions(project_id).await.len(), 2);
        assert!(
            world.said("the new version is saved, but the app did not restart on it: no free port")
        );
    }

    #[tokio::test]
    async fn edit_saves_changes_only_and_refuses_a_failing_or_stale_one() {
        let world = World::new(false, FakeApps::default()).await;
        let first = world
            .generate("todo", CheckOptions::default())
            .await
            .unwrap();
        let project_id = first.project.unwrap().project_id;
        let same = world
            .maker()
            .edit(
                world.owner,
                edit("todo", 1, first.files.clone()),
                &world.report(),
            )
            .await
            .unwrap();
        assert!(!same.saved && same.changed.is_empty());
        assert_eq!(same.version, 1);
        assert!(world.apps.followed.lock().unwrap().is_empty());

        let saved = world
            .maker()
            .edit(
                world.owner,
                edit("todo", 1, changed(first.files.clone())),
                &world.report(),
            )
            .await
            .unwrap();
        assert!(saved.saved);
        assert_eq!(
            (saved.version, saved.changed.as_slice()),
            (2, &["app.py".to_string()][..])
        );
        assert_eq!(saved.check_status, "passed");
        assert_eq!(
            *world.apps.followed.lock().unwrap(),
            [(project_id, 2, CheckStatus::Passed)]
        );

        // Started from version 1, which is no longer the newest.
        let stale = world
            .maker()
            .edit(
                world.owner,
                edit("todo", 1, first.files.clone()),
                &world.report(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(stale, MakeError::Project(ProjectError::Moved { .. })),
            "{stale:?}"
        );
    }

    #[tokio::test]
    async fn an_edit_failing_its_checks_is_refused_with_the_failure() {
        let world = World::new(false, FakeApps::default()).await;
        let first = world
            .generate("todo", CheckOptions::default())
            .await
            .unwrap();
        let project_id = first.project.unwrap().project_id;
        let failing = World {
            checker: FakeChecker {
                fail: true,
                runs: AtomicUsize::new(0),
            },
            ..world
        };
        let e = failing
            .maker()
            .edit(
                failing.owner,
                edit("todo", 1, changed(first.files.clone())),
                &failing.report(),
            )
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the edit was not saved: the start check failed: GET / answered 500\n\
             (--keep-broken saves it anyway, marked as failing; --no-check skips the checks)"
        );
        assert_eq!(failing.versions(project_id).await.len(), 1);
        let mut req = edit("todo", 1, changed(first.files));
        req.checks = keep_broken();
        let kept = failing
            .maker()
            .edit(failing.owner, req, &failing.report())
            .await
            .unwrap();
        assert_eq!(kept.check_status, "failed");
        assert_eq!(
            *failing.apps.followed.lock().unwrap(),
            [(project_id, 2, CheckStatus::Failed)]
        );
    }

    #[tokio::test]
    async fn an_edit_with_a_bad_path_or_of_another_users_project_is_refused() {
        let world = World::new(false, FakeApps::default()).await;
        world
            .generate("todo", CheckOptions::default())
            .await
            .unwrap();
        let bad = vec![FileContent::new("../escape.py", "x = 1\n")];
        let e = world
            .maker()
            .edit(world.owner, edit("todo", 1, bad.clone()), &world.report())
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the edit was not saved: `../escape.py` is not a safe relative path inside the project"
        );
        let other = add_user(&world.db, "other@example.com").await;
        let e = world
            .maker()
            .edit(other, edit("todo", 1, bad), &world.report())
            .await
            .unwrap_err();
        assert!(
            matches!(e, MakeError::Project(ProjectError::NotFound(_))),
            "{e:?}"
        );
        assert_eq!(world.checker.runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn rollback_saves_an_earlier_version_as_the_newest() {
        let world = World::new(false, FakeApps::default()).await;
        let first = world
            .generate("todo", CheckOptions::default())
            .await
            .unwrap();
        let project_id = first.project.unwrap().project_id;
        world
            .maker()
            .edit(
                world.owner,
                edit("todo", 1, changed(first.files.clone())),
                &world.report(),
            )
            .await
            .unwrap();
        let req = RollbackRequest {
            project: "todo".into(),
            version: 1,
            checks: CheckOptions::default(),
        };
        let saved = world
            .maker()
            .rollback(world.owner, req, &world.report())
            .await
            .unwrap();
        assert_eq!((saved.saved, saved.version), (true, 3));
        assert_eq!(
            world.files(project_id, 3).await,
            world.files(project_id, 1).await
        );
        let versions = world.versions(project_id).await;
        assert_eq!(
            (versions[2].1.as_str(), versions[2].3.as_str()),
            ("rollback", "rollback to version 1")
        );
    }

    #[tokio::test]
    async fn fix_needs_a_failure_or_the_users_words() {
        let world = World::new(false, FakeApps::default()).await;
        world
            .generate("todo", CheckOptions::default())
            .await
            .unwrap();
        let req = FixRequest {
            project: "todo".into(),
            prompt: None,
            provider: None,
            model: None,
            checks: CheckOptions::default(),
        };
        let e = world
            .maker()
            .fix(world.owner, req.clone(), &world.report())
            .await
            .unwrap_err();
        assert!(matches!(e, MakeError::InvalidInput(_)), "{e:?}");
        assert!(
            e.to_string().starts_with("`todo` has no failure to fix"),
            "{e}"
        );

        let failed = World {
            apps: FakeApps {
                failure: Some("Traceback\nNameError: name 'x' is not defined\n".into()),
                ..FakeApps::default()
            },
            ..world
        };
        // The scaffolder writes the app as it made it: the same files, so
        // nothing is saved.
        let made = failed
            .maker()
            .fix(failed.owner, req, &failed.report())
            .await
            .unwrap();
        assert!(made.unchanged);
        assert_eq!(made.project.unwrap().version, 1);
        assert!(failed.said("sending the app's last failure to the model: NameError"));
        assert!(failed.said("no change: version 1 of `todo` already has this"));
        assert_eq!(failed.history().await[1].0, "fix");
    }

    #[tokio::test]
    async fn a_change_that_changes_nothing_saves_and_restarts_nothing() {
        let apps = FakeApps {
            running: true,
            ..FakeApps::default()
        };
        let world = World::new(false, apps).await;
        let first = world
            .generate("todo", CheckOptions::default())
            .await
            .unwrap();
        let project_id = first.project.unwrap().project_id;
        // A todo list has a title already, and it is the required field.
        let runs = world.checker.runs.load(Ordering::SeqCst);
        let made = world.improve("make title required").await.unwrap();
        assert!(made.unchanged && !made.restarted, "{made:?}");
        assert_eq!(made.project.unwrap().version, 1);
        assert_eq!(
            world.checker.runs.load(Ordering::SeqCst),
            runs,
            "not run again"
        );
        assert!(world.apps.followed.lock().unwrap().is_empty());
        assert_eq!(world.versions(project_id).await.len(), 1);
        // The same app generated again under its name saves nothing either.
        let again = world
            .generate("todo", CheckOptions::default())
            .await
            .unwrap();
        assert!(again.unchanged);
        assert_eq!(world.versions(project_id).await.len(), 1);
    }

    #[tokio::test]
    async fn a_request_the_scaffolder_cannot_do_is_refused_before_any_record() {
        let world = World::new(false, FakeApps::default()).await;
        let e = world
            .generate_from("a weather dashboard", "weather", CheckOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(e, MakeError::Refused(_)), "{e:?}");
        assert!(e.to_string().contains("GROQ_API_KEY"), "{e}");
        world
            .generate("todo", CheckOptions::default())
            .await
            .unwrap();
        let e = world.improve("make the header bigger").await.unwrap_err();
        assert!(matches!(e, MakeError::Refused(_)), "{e:?}");
        assert_eq!(world.history().await.len(), 1, "only the first generation");
    }

    #[tokio::test]
    async fn an_edit_of_documentation_only_is_saved_unchecked_and_not_followed() {
        let apps = FakeApps {
            running: true,
            ..FakeApps::default()
        };
        let world = World::new(false, apps).await;
        let first = world
            .generate("todo", CheckOptions::default())
            .await
            .unwrap();
        let mut files = first.files.clone();
        let readme = files.iter_mut().find(|f| f.path == "README.md").unwrap();
        readme.content.push_str("\nMore words.\n");
        let runs = world.checker.runs.load(Ordering::SeqCst);
        let saved = world
            .maker()
            .edit(world.owner, edit("todo", 1, files), &world.report())
            .await
            .unwrap();
        assert!(
            saved.saved && saved.docs_only && !saved.restarted,
            "{saved:?}"
        );
        assert_eq!(saved.version, 2);
        assert_eq!(world.checker.runs.load(Ordering::SeqCst), runs);
        assert!(world.apps.followed.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_empty_prompt_is_refused_before_any_work() {
        let world = World::new(false, FakeApps::default()).await;
        let mut req = GenerateRequest {
            prompt: "  ".into(),
            save: true,
            name: None,
            provider: None,
            model: None,
            checks: CheckOptions::default(),
        };
        let e = world
            .maker()
            .generate(world.owner, req.clone(), &world.report())
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the prompt is empty; describe the app you want"
        );
        req.prompt = "a todo list".into();
        req.provider = Some("nobody".into());
        let e = world
            .maker()
            .generate(world.owner, req, &world.report())
            .await
            .unwrap_err();
        assert!(matches!(e, MakeError::Provider(_)), "{e:?}");
        assert!(world.history().await.is_empty());
    }

    fn import(files: Vec<FileContent>, checks: CheckOptions) -> ImportRequest {
        ImportRequest {
            name: None,
            folder: "My Shop".into(),
            files,
            checks,
            repair: false,
            provider: None,
            model: None,
        }
    }

    fn folder_files() -> Vec<FileContent> {
        vec![
            FileContent::new("app.py", "from flask import Flask\napp = Flask(__name__)\n"),
            FileContent::new("requirements.txt", "flask\n"),
        ]
    }

    #[tokio::test]
    async fn import_saves_version_one_of_kind_import_or_nothing_when_it_fails() {
        let failing = World::new(true, FakeApps::default()).await;
        let e = failing
            .maker()
            .import(
                failing.owner,
                import(folder_files(), CheckOptions::default()),
                &failing.report(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                MakeError::FailedChecks {
                    what: Kind::Import,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("GET / answered 500"), "{e}");
        let kept = CheckOptions {
            keep_broken: true,
            ..CheckOptions::default()
        };
        let saved = failing
            .maker()
            .import(
                failing.owner,
                import(folder_files(), kept),
                &failing.report(),
            )
            .await
            .unwrap();
        assert_eq!((saved.version, saved.check_status.as_str()), (1, "failed"));
        assert_eq!(saved.name, "my-shop");

        let world = World::new(false, FakeApps::default()).await;
        let saved = world
            .maker()
            .import(
                world.owner,
                import(folder_files(), CheckOptions::default()),
                &world.report(),
            )
            .await
            .unwrap();
        assert_eq!(saved.check_status, "passed");
        assert_eq!(saved.changed, ["app.py", "requirements.txt"]);
        let kinds = world
            .db
            .transaction(move |c| versions::history(c, saved.project_id))
            .await
            .unwrap();
        assert_eq!(kinds.len(), 1);
        assert_eq!(kinds[0].kind, "import");

        let unsafe_name = vec![FileContent::new("../app.py", "x = 1\n")];
        let e = world
            .maker()
            .import(
                world.owner,
                import(unsafe_name, CheckOptions::default()),
                &world.report(),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("`../app.py`"), "{e}");
    }
}
