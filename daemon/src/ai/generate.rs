//! The generation pipeline: ask the provider, continue a cut-off reply, parse
//! the files, check them, and give the model one repair round (by default)
//! when the checks fail.

use std::path::Path;
use std::time::{Duration, Instant};

use appforge_shared::protocol::{FileContent, Progress};

use super::parse;
use super::validate::{self, CheckError};
use super::{
    prompt, ChatRequest, Finish, Message, Provider, ProviderError, Role, Usage, MAX_REPLY_BYTES,
};

/// Continuations asked for when a reply hits the token limit.
const MAX_CONTINUATIONS: usize = 2;

/// What one generation did, success or not: everything the history records.
pub struct Outcome {
    /// The files, or why there are none.
    pub files: Result<Vec<FileContent>, GenerationError>,
    /// Every raw reply of every round, in order.
    pub response: String,
    /// Tokens used, all calls included.
    pub usage: Usage,
    /// Wall time.
    pub duration: Duration,
    /// The provider's last request id.
    pub request_id: Option<String>,
}

/// Why a generation produced no files.
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The reply still failed the checks after the repair rounds.
    #[error("the model's reply could not be used after {rounds} repair round(s): {problem}")]
    Invalid {
        /// Repair rounds tried.
        rounds: u32,
        /// The last problem found.
        problem: String,
    },
    /// The reply was still cut off after the continuations.
    #[error("the model's reply was cut off at the token limit even after {MAX_CONTINUATIONS} continuations; ask for a smaller app or raise --max-tokens")]
    CutOff,
    /// The checks could not run.
    #[error(transparent)]
    Checker(CheckError),
}

/// What a generation needs besides the conversation.
pub struct Job<'a> {
    /// Who answers.
    pub provider: &'a dyn Provider,
    /// Which model.
    pub model: String,
    /// The app in the user's words (for the offline scaffolder).
    pub app_prompt: String,
    /// Repair rounds allowed.
    pub repair_rounds: u32,
    /// Interpreter for the syntax check.
    pub python: &'a Path,
    /// Where progress goes.
    pub report: &'a (dyn Fn(Progress) + Send + Sync),
}

/// Runs a generation from `messages` to checked files.
pub async fn run(job: Job<'_>, messages: Vec<Message>) -> Outcome {
    let started = Instant::now();
    let mut state = State {
        response: String::new(),
        usage: Usage::default(),
        request_id: None,
    };
    let files = converse(&job, messages, &mut state).await;
    Outcome {
        files,
        response: state.response,
        usage: state.usage,
        duration: started.elapsed(),
        request_id: state.request_id,
    }
}

struct State {
    response: String,
    usage: Usage,
    request_id: Option<String>,
}

async fn converse(
    job: &Job<'_>,
    mut messages: Vec<Message>,
    state: &mut State,
) -> Result<Vec<FileContent>, GenerationError> {
    let mut problem = String::new();
    for round in 0..=job.repair_rounds {
        (job.report)(Progress::Step(match round {
            0 => format!("asking {} ({})", job.provider.name(), job.model),
            n => format!("repair round {n}: asking the model to fix its reply"),
        }));
        let reply = whole_reply(job, &messages, state).await?;
        (job.report)(Progress::Step("checking the files".into()));
        match files_of(&reply, job.python).await {
            Ok(files) => return Ok(files),
            Err(CheckError::Checker(e)) => {
                return Err(GenerationError::Checker(CheckError::Checker(e)))
            }
            Err(CheckError::Invalid(p)) => {
                tracing::info!(round, problem = %p, "reply failed the checks");
                problem = p;
                if round < job.repair_rounds {
                    (job.report)(Progress::Restart(format!(
                        "the reply failed the checks: {problem}"
                    )));
                }
                messages.push(Message::new(Role::Assistant, reply));
                messages.push(prompt::repair(&problem));
            }
        }
    }
    Err(GenerationError::Invalid {
        rounds: job.repair_rounds,
        problem,
    })
}

/// Gets one complete reply, continuing it while it is cut off.
async fn whole_reply(
    job: &Job<'_>,
    messages: &[Message],
    state: &mut State,
) -> Result<String, GenerationError> {
    let mut conversation = messages.to_vec();
    let mut reply = String::new();
    let on_text = |text: &str| (job.report)(Progress::Text(text.to_string()));
    let on_retry = |why: &str| (job.report)(Progress::Restart(why.to_string()));
    for continuation in 0..=MAX_CONTINUATIONS {
        let request = ChatRequest {
            model: job.model.clone(),
            messages: conversation.clone(),
            app_prompt: job.app_prompt.clone(),
        };
        let completion = job.provider.complete(&request, &on_text, &on_retry).await?;
        // The cap holds for the whole generation: continuations and repair
        // rounds would otherwise store, and send back, several capped replies.
        if state.response.len() + completion.text.len() > MAX_REPLY_BYTES {
            return Err(ProviderError::TooLarge {
                provider: job.provider.name().to_string(),
                limit: MAX_REPLY_BYTES,
            }
            .into());
        }
        state.usage += completion.usage;
        state.request_id = completion.request_id.or(state.request_id.take());
        if !state.response.is_empty() {
            state.response.push_str("\n\n-----\n\n");
        }
        state.response.push_str(&completion.text);
        reply.push_str(&completion.text);
        if completion.finish != Finish::Length {
            return Ok(reply);
        }
        if continuation < MAX_CONTINUATIONS {
            (job.report)(Progress::Step(
                "the reply hit the token limit; asking the model to continue".into(),
            ));
            conversation.push(Message::new(Role::Assistant, completion.text));
            conversation.push(prompt::continue_reply());
        }
    }
    Err(GenerationError::CutOff)
}

async fn files_of(reply: &str, python: &Path) -> Result<Vec<FileContent>, CheckError> {
    let mut files = parse::parse_reply(reply).map_err(|e| CheckError::Invalid(e.to_string()))?;
    validate::check(&mut files, python).await?;
    Ok(files)
}
