//! The AI side: providers behind one trait, the prompts, parsing a reply into
//! files, checking them, and the generation pipeline that ties these together.

pub mod generate;
mod openai;
pub mod parse;
pub mod prompt;
mod ratelimit;
mod retry;
mod sse;
pub mod template;
pub mod validate;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use appforge_shared::protocol::FileContent;

use crate::config::AiSettings;

pub use openai::OpenAiProvider;

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The instructions.
    System,
    /// The user (or appforge on the user's behalf).
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The role's name in the OpenAI API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// What it says.
    pub content: String,
}

impl Message {
    /// A message from `role`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
        }
    }
}

/// What is sent to a provider.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The model to ask.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// The app the user asked for, in their words: all the offline
    /// scaffolder reads.
    pub app: AppWords,
}

/// The app in the user's words, and the change asked of it: all the
/// offline scaffolder reads (a model reads the messages instead).
#[derive(Debug, Clone, Default)]
pub struct AppWords {
    /// The prompt the app was (or is to be) made from.
    pub prompt: String,
    /// The change asked for (`improve`, `fix`), in the user's words.
    pub change: Option<String>,
    /// The files of the version a change starts from; empty for a new app.
    pub current: Vec<FileContent>,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// It was done.
    Stop,
    /// It hit the token limit: the reply is cut off.
    Length,
    /// Anything else the provider said.
    Other(String),
}

/// Tokens a call used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens of the prompt.
    pub prompt_tokens: u64,
    /// Tokens of the reply.
    pub completion_tokens: u64,
    /// Both.
    pub total_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
    }
}

/// A provider's answer.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The reply's text.
    pub text: String,
    /// Why it ended.
    pub finish: Finish,
    /// Tokens used, when the provider said.
    pub usage: Usage,
    /// The provider's request id, for support.
    pub request_id: Option<String>,
}

/// Why a provider call failed. Messages say what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused the key.
    #[error("{provider} refused the API key ({message}); check the key given to appforged")]
    Unauthorized {
        /// The provider's name.
        provider: String,
        /// What it said.
        message: String,
    },
    /// An HTTP error that retrying will not fix (or that retries did not fix).
    #[error("{provider} answered HTTP {status}: {message}")]
    Http {
        /// The provider's name.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// What it said.
        message: String,
    },
    /// The provider did not answer in time.
    #[error("{provider} did not answer in time ({what}); try again, or raise the time-out")]
    Timeout {
        /// The provider's name.
        provider: String,
        /// Which time-out expired.
        what: String,
    },
    /// The connection failed or broke.
    #[error("could not reach {provider}: {message}")]
    Network {
        /// The provider's name.
        provider: String,
        /// What failed.
        message: String,
    },
    /// The provider answered something that is not the API.
    #[error("{provider} sent a malformed answer: {message}")]
    Malformed {
        /// The provider's name.
        provider: String,
        /// What was wrong.
        message: String,
    },
    /// A stream broke off with something that is not the API in it: tried
    /// again like a dropped stream.
    #[error("{provider} sent a malformed stream: {message}")]
    BrokenStream {
        /// The provider's name.
        provider: String,
        /// What was wrong.
        message: String,
    },
    /// The reply grew past [`MAX_REPLY_BYTES`]; it was dropped unread.
    #[error(
        "{provider}'s reply grew past {limit} bytes and was dropped; ask for a smaller app \
         (or lower --max-tokens)"
    )]
    TooLarge {
        /// The provider's name.
        provider: String,
        /// The cap.
        limit: usize,
    },
}

/// The largest model reply accepted, across all the attempts, continuations
/// and repair rounds of one generation. An app of a few files is tens of
/// KiB; a reply past this is a runaway model or a hostile server, and is
/// neither stored nor sent back to the model.
pub const MAX_REPLY_BYTES: usize = 2 * 1024 * 1024;

/// The largest error body read from a provider.
pub const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// `text` with the API key and any bearer token replaced, for error
/// messages that are logged, stored and shown: a provider may echo the
/// request's `Authorization` header back in its error.
pub fn scrub_secrets(text: &str, key: Option<&str>) -> String {
    let mut out = match key.filter(|k| k.len() >= 4) {
        Some(key) => text.replace(key, "[redacted]"),
        None => text.to_string(),
    };
    // Whatever follows "Bearer " up to a delimiter is a credential. Built
    // anew in one pass: linear in the text, however many tokens it holds.
    const REDACTED: &str = "[redacted]";
    const BEARER: &str = "bearer ";
    let lower = out.to_ascii_lowercase();
    let mut scrubbed = String::with_capacity(out.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find(BEARER) {
        let start = at + found + BEARER.len();
        scrubbed.push_str(&out[at..start]);
        let end = out[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '}'))
            .map_or(out.len(), |n| start + n);
        if end > start {
            scrubbed.push_str(REDACTED);
        }
        at = end;
    }
    scrubbed.push_str(&out[at..]);
    out = scrubbed;
    out
}

impl ProviderError {
    /// Whether trying again may help.
    pub fn is_transient(&self) -> bool {
        match self {
            ProviderError::Timeout { .. }
            | ProviderError::Network { .. }
            | ProviderError::BrokenStream { .. } => true,
            ProviderError::Http { status, .. } => retry::is_retryable_status(*status),
            ProviderError::Unauthorized { .. }
            | ProviderError::Malformed { .. }
            | ProviderError::TooLarge { .. } => false,
        }
    }
}

/// Receives the reply's text as it streams in.
pub type TextSink<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// A boxed future, so providers can live behind `dyn Provider`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that answers chat requests.
pub trait Provider: Send + Sync {
    /// The provider's name (`template`, `groq`, `openai`).
    fn name(&self) -> &str;
    /// The model used when the caller names none.
    fn default_model(&self) -> &str;
    /// What the provider understood the request as, said before anything
    /// is written; a request it cannot carry out is refused here, before
    /// anything is recorded. A model says nothing in advance.
    fn understand(&self, _app: &AppWords) -> Result<Option<String>, template::Refusal> {
        Ok(None)
    }
    /// Sends one request, retrying transient failures, and streams the text
    /// to `on_text`. `on_retry` is told when an attempt is abandoned.
    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        on_text: TextSink<'a>,
        on_retry: TextSink<'a>,
    ) -> BoxFuture<'a, Result<Completion, ProviderError>>;
}

/// The offline scaffolder as a provider: it reads only the app prompt.
pub struct TemplateProvider;

impl Provider for TemplateProvider {
    fn name(&self) -> &str {
        "template"
    }

    fn default_model(&self) -> &str {
        "scaffold-v1"
    }

    fn understand(&self, app: &AppWords) -> Result<Option<String>, template::Refusal> {
        template::understand(app).map(|plan| Some(plan.said))
    }

    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        on_text: TextSink<'a>,
        _on_retry: TextSink<'a>,
    ) -> BoxFuture<'a, Result<Completion, ProviderError>> {
        Box::pin(async move {
            // Refusals are made in `understand`, before the call; one here
            // (the request changed in between) is a malformed answer.
            let text = template::answer(&request.app).map_err(|e| ProviderError::Malformed {
                provider: self.name().to_string(),
                message: e.to_string(),
            })?;
            on_text(&text);
            Ok(Completion {
                text,
                finish: Finish::Stop,
                usage: Usage::default(),
                request_id: None,
            })
        })
    }
}

/// Why a provider cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProviderChoiceError {
    /// No such provider.
    #[error("unknown provider `{0}`; choose one of: template, groq, openai")]
    Unknown(String),
    /// The provider needs a key the daemon was not given.
    #[error("the {provider} provider needs an API key: set {variable} for appforged (or APPFORGE_API_KEY) and restart it")]
    MissingKey {
        /// The provider.
        provider: String,
        /// The variable to set.
        variable: &'static str,
    },
}

/// The providers this daemon is configured for.
pub struct Providers {
    available: BTreeMap<String, Arc<dyn Provider>>,
    missing_keys: BTreeMap<String, &'static str>,
    default: String,
}

impl Providers {
    /// Builds the providers from the settings; keys come from the settings only.
    pub fn new(settings: &AiSettings) -> Result<Providers, reqwest::Error> {
        let mut available: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
        let mut missing_keys = BTreeMap::new();
        available.insert("template".into(), Arc::new(TemplateProvider));
        for kind in ["groq", "openai"] {
            let endpoint = settings.endpoint(kind);
            match endpoint.key.is_some() || !endpoint.needs_key {
                true => {
                    let provider = OpenAiProvider::new(kind, endpoint, settings)?;
                    available.insert(kind.into(), Arc::new(provider));
                }
                false => {
                    missing_keys.insert(kind.to_string(), endpoint.key_variable);
                }
            }
        }
        Ok(Providers {
            available,
            missing_keys,
            default: settings.default_provider.clone(),
        })
    }

    /// The named provider, or the default one.
    pub fn choose(&self, name: Option<&str>) -> Result<Arc<dyn Provider>, ProviderChoiceError> {
        let name = name.unwrap_or(&self.default);
        if let Some(p) = self.available.get(name) {
            return Ok(Arc::clone(p));
        }
        match self.missing_keys.get(name) {
            Some(variable) => Err(ProviderChoiceError::MissingKey {
                provider: name.to_string(),
                variable,
            }),
            None => Err(ProviderChoiceError::Unknown(name.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scrub_secrets;

    #[test]
    fn keys_and_bearer_tokens_are_scrubbed_once() {
        let key = "sk-live-0123456789";
        let text = format!(
            r#"{{"error":"Invalid key {key}; got header 'Bearer {key}', and BEARER other-token end"}}"#
        );
        let clean = scrub_secrets(&text, Some(key));
        assert!(!clean.contains(key), "{clean}");
        assert!(!clean.contains("other-token"), "{clean}");
        assert!(!clean.contains("]]"), "{clean}");
        assert_eq!(clean.matches("[redacted]").count(), 3, "{clean}");
        assert_eq!(
            scrub_secrets("Bearer [redacted]", None),
            "Bearer [redacted]"
        );
        assert_eq!(
            scrub_secrets("no secrets here", Some(key)),
            "no secrets here"
        );
    }
}
