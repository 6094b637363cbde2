//! One reply from a provider: asked for, continued while it is cut off at
//! the token limit, and capped in size. The rounds around it (check,
//! repair) are `checks::repair`'s.

use std::time::{Duration, Instant};

use appforge_shared::protocol::Progress;

use super::{
    prompt, AppWords, ChatRequest, Finish, Message, Provider, ProviderError, Usage, MAX_REPLY_BYTES,
};

/// Continuations asked for when a reply hits the token limit.
const MAX_CONTINUATIONS: usize = 2;

/// Why a generation produced no files.
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The app still failed its checks after the repair rounds.
    #[error("the generated app still failed its checks after {rounds} repair round{}; nothing was saved (--keep-broken saves it unchecked). Last failure: {problem}", if *rounds == 1 { "" } else { "s" })]
    Invalid {
        /// Repair rounds tried.
        rounds: u32,
        /// The last problem found.
        problem: String,
    },
    /// The same failure came back: more rounds would burn tokens for nothing.
    #[error("the repair is stuck: round {round} failed exactly like the round before, so it stopped; nothing was saved (--keep-broken saves it unchecked). The failure: {problem}")]
    Stuck {
        /// The round that repeated its predecessor's failure.
        round: u32,
        /// The failure.
        problem: String,
    },
    /// The reply was still cut off after the continuations.
    #[error("the model's reply was cut off at the token limit even after {MAX_CONTINUATIONS} continuations; ask for a smaller app or raise --max-tokens")]
    CutOff,
    /// The checks could not run.
    #[error("{0}")]
    Checker(String),
}

/// What one reply is asked of.
pub struct Asking<'a> {
    /// Who answers.
    pub provider: &'a dyn Provider,
    /// Which model.
    pub model: &'a str,
    /// The app in the user's words (for the offline scaffolder).
    pub app: &'a AppWords,
    /// Where progress goes.
    pub report: &'a (dyn Fn(Progress) + Send + Sync),
}

/// One complete reply, continuations included.
#[derive(Debug, Default)]
pub struct Reply {
    /// The text, continuations joined.
    pub text: String,
    /// Every call's raw reply, as the history keeps it.
    pub response: String,
    /// Tokens used by its calls.
    pub usage: Usage,
    /// The provider's last request id.
    pub request_id: Option<String>,
    /// Wall time.
    pub duration: Duration,
}

/// Gets one complete reply, continuing it while it is cut off. `spent` is
/// what earlier rounds of the same generation stored: the size cap holds
/// for the whole generation, or repair rounds would store, and send back,
/// several capped replies.
pub async fn whole_reply(
    asking: &Asking<'_>,
    messages: &[Message],
    spent: usize,
) -> Result<Reply, (GenerationError, Reply)> {
    let started = Instant::now();
    let mut conversation = messages.to_vec();
    let mut reply = Reply::default();
    let on_text = |text: &str| (asking.report)(Progress::Text(text.to_string()));
    let on_retry = |why: &str| (asking.report)(Progress::Restart(why.to_string()));
    for continuation in 0..=MAX_CONTINUATIONS {
        let request = ChatRequest {
            model: asking.model.to_string(),
            messages: conversation.clone(),
            app: asking.app.clone(),
        };
        let completion = match asking
            .provider
            .complete(&request, &on_text, &on_retry)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                reply.duration = started.elapsed();
                return Err((e.into(), reply));
            }
        };
        if spent + reply.response.len() + completion.text.len() > MAX_REPLY_BYTES {
            reply.duration = started.elapsed();
            let e = ProviderError::TooLarge {
                provider: asking.provider.name().to_string(),
                limit: MAX_REPLY_BYTES,
            };
            return Err((e.into(), reply));
        }
        reply.usage += completion.usage;
        reply.request_id = completion.request_id.or(reply.request_id.take());
        if !reply.response.is_empty() {
            reply.response.push_str("\n\n-----\n\n");
        }
        reply.response.push_str(&completion.text);
        reply.text.push_str(&completion.text);
        if completion.finish != Finish::Length {
            reply.duration = started.elapsed();
            return Ok(reply);
        }
        if continuation < MAX_CONTINUATIONS {
            (asking.report)(Progress::Step(
                "the reply hit the token limit; asking the model to continue".into(),
            ));
            conversation.push(Message::new(super::Role::Assistant, completion.text));
            conversation.push(prompt::continue_reply());
        }
    }
    reply.duration = started.elapsed();
    Err((GenerationError::CutOff, reply))
}
