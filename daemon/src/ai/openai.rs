//! One client for every OpenAI-compatible chat API: Groq, OpenAI, Ollama,
//! vLLM, LM Studio. Streams with server-sent events, records usage wherever
//! the server puts it, retries what is worth retrying, and keeps to a
//! client-side rate limit.

use std::time::Duration;

use appforge_shared::protocol::Secret;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::ratelimit::RateLimiter;
use super::retry;
use super::sse;
use super::{
    scrub_secrets, BoxFuture, ChatRequest, Completion, Finish, Provider, ProviderError, TextSink,
    Usage, MAX_ERROR_BODY_BYTES, MAX_REPLY_BYTES,
};
use crate::config::{AiSettings, Endpoint};

/// An OpenAI-compatible provider.
pub struct OpenAiProvider {
    name: String,
    http: reqwest::Client,
    base_url: String,
    key: Option<Secret>,
    default_model: String,
    /// Groq wants `max_completion_tokens`; local servers know only `max_tokens`.
    groq_style: bool,
    max_tokens: u32,
    max_retries: u32,
    retry_base: Duration,
    first_byte_timeout: Duration,
    request_timeout: Duration,
    stream: bool,
    limiter: RateLimiter,
}

/// A failed attempt, with the wait the server asked for.
struct Failure {
    error: ProviderError,
    retry_after: Option<Duration>,
}

impl From<ProviderError> for Failure {
    fn from(error: ProviderError) -> Self {
        Failure {
            error,
            retry_after: None,
        }
    }
}

impl OpenAiProvider {
    /// A provider named `name` talking to `endpoint`.
    pub fn new(
        name: &str,
        endpoint: Endpoint,
        settings: &AiSettings,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .user_agent(concat!("appforge/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(OpenAiProvider {
            name: name.to_string(),
            http,
            base_url: endpoint.base_url.trim_end_matches('/').to_string(),
            key: endpoint.key,
            default_model: endpoint.default_model,
            groq_style: name == "groq",
            max_tokens: settings.max_tokens,
            max_retries: settings.max_retries,
            retry_base: settings.retry_base,
            first_byte_timeout: settings.first_byte_timeout,
            request_timeout: settings.request_timeout,
            stream: settings.stream,
            limiter: RateLimiter::new(endpoint.requests_per_minute, endpoint.tokens_per_minute),
        })
    }

    fn body(&self, request: &ChatRequest, budget: u32) -> Value {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let mut body = json!({
            "model": request.model,
            "messages": messages,
            "temperature": 0.2,
            "stream": self.stream,
        });
        let budget_key = if self.groq_style {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body[budget_key] = json!(budget);
        if self.stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }

    async fn attempt(
        &self,
        request: &ChatRequest,
        budget: u32,
        on_text: TextSink<'_>,
    ) -> Result<Completion, Failure> {
        let mut call = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .json(&self.body(request, budget));
        if let Some(key) = &self.key {
            call = call.bearer_auth(&key.0);
        }
        let response = tokio::time::timeout(self.first_byte_timeout, call.send())
            .await
            .map_err(|_| self.timeout(format!("no answer within {:?}", self.first_byte_timeout)))?
            .map_err(|e| self.network(&e))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = retry::retry_after(response.headers());
            let body = tokio::time::timeout(
                self.first_byte_timeout,
                read_capped(response, MAX_ERROR_BODY_BYTES),
            )
            .await
            .ok()
            .and_then(Result::ok)
            .map(|(bytes, _)| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
            return Err(Failure {
                error: self.http_error(status, &body),
                retry_after,
            });
        }
        let header_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let is_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        let mut completion = if is_stream {
            self.read_stream(response, on_text).await?
        } else {
            // Servers that ignore `stream: true` answer with one document.
            let (body, complete) = tokio::time::timeout(
                self.first_byte_timeout,
                read_capped(response, MAX_REPLY_BYTES),
            )
            .await
            .map_err(|_| self.timeout("the answer's body stalled".into()))?
            .map_err(|e| self.network(&e))?;
            if !complete {
                return Err(self.too_large());
            }
            let completion = self.parse_whole(&body)?;
            on_text(&completion.text);
            completion
        };
        completion.request_id = completion.request_id.or(header_id);
        Ok(completion)
    }

    async fn read_stream(
        &self,
        response: reqwest::Response,
        on_text: TextSink<'_>,
    ) -> Result<Completion, Failure> {
        let mut chunks = response.bytes_stream();
        let mut decoder = sse::Decoder::default();
        let mut state = StreamState::default();
        loop {
            let next = tokio::time::timeout(self.first_byte_timeout, chunks.next())
                .await
                .map_err(|_| {
                    self.timeout(format!(
                        "the stream stalled for {:?}",
                        self.first_byte_timeout
                    ))
                })?;
            let ended = next.is_none();
            let events = match next {
                Some(Ok(bytes)) => decoder.push(&bytes),
                Some(Err(e)) => return Err(self.network(&e).into()),
                None => decoder.finish().into_iter().collect(),
            };
            for event in events {
                if state
                    .apply(&event, on_text)
                    .map_err(|m| self.stream_error(m))?
                {
                    return Ok(state.into_completion());
                }
            }
            // Both the text and an event that never ends are bounded.
            if state.text.len() > MAX_REPLY_BYTES || decoder.pending() > MAX_REPLY_BYTES {
                return Err(self.too_large());
            }
            if ended {
                break;
            }
        }
        match state.finish {
            Some(_) => Ok(state.into_completion()),
            None => Err(ProviderError::Network {
                provider: self.name.clone(),
                message: "the connection dropped in the middle of the reply".into(),
            }
            .into()),
        }
    }

    fn parse_whole(&self, body: &[u8]) -> Result<Completion, ProviderError> {
        let malformed = |message: String| ProviderError::Malformed {
            provider: self.name.clone(),
            message,
        };
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| malformed(format!("the body is not JSON ({e})")))?;
        let choice = &v["choices"][0];
        let text = choice["message"]["content"]
            .as_str()
            .ok_or_else(|| malformed("no choices[0].message.content".into()))?;
        Ok(Completion {
            text: text.to_string(),
            finish: finish_reason(&choice["finish_reason"]),
            usage: usage(&v["x_groq"]["usage"])
                .or_else(|| usage(&v["usage"]))
                .unwrap_or_default(),
            request_id: v["x_groq"]["id"]
                .as_str()
                .or(v["id"].as_str())
                .map(str::to_string),
        })
    }

    fn too_large(&self) -> Failure {
        ProviderError::TooLarge {
            provider: self.name.clone(),
            limit: MAX_REPLY_BYTES,
        }
        .into()
    }

    /// `text` without the key or any bearer token in it.
    fn scrub(&self, text: &str) -> String {
        scrub_secrets(text, self.key.as_ref().map(|k| k.0.as_str()))
    }

    fn http_error(&self, status: StatusCode, body: &str) -> ProviderError {
        // Scrubbed before it is shortened: a cut through the key would
        // leave a piece of it that no longer matches.
        let message = shorten(&self.scrub(&error_message(body)));
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ProviderError::Unauthorized {
                provider: self.name.clone(),
                message,
            },
            _ => ProviderError::Http {
                provider: self.name.clone(),
                status: status.as_u16(),
                message,
            },
        }
    }

    fn stream_error(&self, e: StreamError) -> Failure {
        match e {
            // An error the server reports mid-stream is its failure, like a 500.
            StreamError::Reported(message) => ProviderError::Http {
                provider: self.name.clone(),
                status: 500,
                message: format!(
                    "the stream reported an error: {}",
                    shorten(&self.scrub(&message))
                ),
            },
            StreamError::Malformed(message) => ProviderError::BrokenStream {
                provider: self.name.clone(),
                message: shorten(&self.scrub(&message)),
            },
        }
        .into()
    }

    fn timeout(&self, what: String) -> Failure {
        ProviderError::Timeout {
            provider: self.name.clone(),
            what,
        }
        .into()
    }

    fn network(&self, e: &reqwest::Error) -> ProviderError {
        if e.is_timeout() {
            return ProviderError::Timeout {
                provider: self.name.clone(),
                what: "connecting".into(),
            };
        }
        // reqwest's Display omits the cause ("error sending request"); the
        // chain says what actually failed.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        ProviderError::Network {
            provider: self.name.clone(),
            message: shorten(&self.scrub(&message)),
        }
    }
}

/// Reads a body up to `limit` bytes; the flag says whether it all fit.
async fn read_capped(
    response: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut chunks = response.bytes_stream();
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn default_model(&self) -> &str {
        &self.default_model
    }

    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        on_text: TextSink<'a>,
        on_retry: TextSink<'a>,
    ) -> BoxFuture<'a, Result<Completion, ProviderError>> {
        Box::pin(async move {
            let mut budget = self.max_tokens;
            let mut shrunk = false;
            let mut attempt = 0;
            loop {
                // Groq counts the whole completion budget against the
                // per-minute tokens before it runs the request.
                let prompt_chars: usize = request.messages.iter().map(|m| m.content.len()).sum();
                self.limiter
                    .acquire(prompt_chars as u64 / 4 + u64::from(budget))
                    .await;
                let outcome = tokio::time::timeout(
                    self.request_timeout,
                    self.attempt(request, budget, on_text),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(self.timeout(format!(
                        "the reply took longer than {:?}",
                        self.request_timeout
                    )))
                });
                let failure = match outcome {
                    Ok(completion) => return Ok(completion),
                    Err(failure) => failure,
                };
                if let ProviderError::Http { status: 413, .. } = failure.error {
                    if !shrunk && budget > 1024 {
                        shrunk = true;
                        budget /= 2;
                        on_retry(&format!(
                            "{}; retrying with max tokens {budget}",
                            failure.error
                        ));
                        continue;
                    }
                }
                if !failure.error.is_transient() || attempt >= self.max_retries {
                    return Err(failure.error);
                }
                let wait = failure.retry_after.unwrap_or_else(|| {
                    retry::backoff(attempt, self.retry_base, rand::random::<f64>())
                });
                on_retry(&format!(
                    "{}; retrying in {:.1} s",
                    failure.error,
                    wait.as_secs_f64()
                ));
                tracing::info!(provider = %self.name, attempt, wait_ms = wait.as_millis() as u64, error = %failure.error, "retrying the provider");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        })
    }
}

/// Why a stream could not be read.
#[derive(Debug, PartialEq, Eq)]
enum StreamError {
    /// The server said it failed.
    Reported(String),
    /// The server sent something that is not the API.
    Malformed(String),
}

/// What a stream has said so far.
#[derive(Default)]
struct StreamState {
    text: String,
    finish: Option<Finish>,
    usage: Option<Usage>,
    request_id: Option<String>,
}

impl StreamState {
    /// Applies one event; `Ok(true)` when the stream is complete.
    fn apply(&mut self, event: &sse::Event, on_text: TextSink<'_>) -> Result<bool, StreamError> {
        if event.data.trim() == "[DONE]" {
            return Ok(true);
        }
        if event.data.trim().is_empty() {
            return Ok(false);
        }
        if event.event.as_deref() == Some("error") {
            return Err(StreamError::Reported(error_message(&event.data)));
        }
        let chunk: Value = serde_json::from_str(&event.data)
            .map_err(|e| StreamError::Malformed(format!("a streamed chunk is not JSON ({e})")))?;
        if chunk.get("error").is_some() {
            return Err(StreamError::Reported(error_message(&event.data)));
        }
        if let Some(e) = chunk["x_groq"]["error"].as_str() {
            return Err(StreamError::Reported(e.to_string()));
        }
        if let Some(id) = chunk["x_groq"]["id"].as_str() {
            self.request_id = Some(id.to_string());
        }
        // Groq puts usage in x_groq on the last chunk; OpenAI-style servers
        // send a final chunk with top-level usage when asked.
        if let Some(u) = usage(&chunk["x_groq"]["usage"]).or_else(|| usage(&chunk["usage"])) {
            self.usage = Some(u);
        }
        if let Some(choice) = chunk["choices"].get(0) {
            if let Some(text) = choice["delta"]["content"].as_str() {
                if !text.is_empty() {
                    self.text.push_str(text);
                    on_text(text);
                }
            }
            if !choice["finish_reason"].is_null() {
                self.finish = Some(finish_reason(&choice["finish_reason"]));
            }
        }
        Ok(false)
    }

    fn into_completion(self) -> Completion {
        Completion {
            text: self.text,
            finish: self.finish.unwrap_or(Finish::Stop),
            usage: self.usage.unwrap_or_default(),
            request_id: self.request_id,
        }
    }
}

fn finish_reason(v: &Value) -> Finish {
    match v.as_str() {
        Some("stop") | None => Finish::Stop,
        Some("length") => Finish::Length,
        Some(other) => Finish::Other(other.to_string()),
    }
}

fn usage(v: &Value) -> Option<Usage> {
    let prompt_tokens = v["prompt_tokens"].as_u64()?;
    let completion_tokens = v["completion_tokens"].as_u64().unwrap_or(0);
    Some(Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: v["total_tokens"]
            .as_u64()
            .unwrap_or(prompt_tokens + completion_tokens),
    })
}

/// The human part of an error body: `error.message`, `detail`, or the
/// text, whole: shorten it only after scrubbing it.
fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v["error"]["message"]
            .as_str()
            .or(v["error"].as_str())
            .or(v["detail"].as_str())
            .or(v["message"].as_str())
            .map(str::to_string)
    });
    message.unwrap_or_else(|| body.trim().to_string())
}

/// A message cut to a length fit for one line of an error.
fn shorten(message: &str) -> String {
    let short: String = message.chars().take(300).collect();
    if short.is_empty() {
        "no details given".into()
    } else {
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> sse::Event {
        sse::Event {
            event: None,
            data: data.into(),
        }
    }

    #[test]
    fn a_groq_stream_gives_text_finish_usage_and_id() {
        let mut s = StreamState::default();
        let seen = std::sync::Mutex::new(String::new());
        let sink = |t: &str| seen.lock().unwrap().push_str(t);
        let chunks = [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"x_groq":{"id":"req_1"}}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}],"x_groq":{"id":"req_1","usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}}"#,
        ];
        for c in chunks {
            assert!(!s.apply(&event(c), &sink).unwrap());
        }
        assert!(s.apply(&event("[DONE]"), &sink).unwrap());
        let c = s.into_completion();
        assert_eq!(c.text, "Hello");
        assert_eq!(*seen.lock().unwrap(), "Hello");
        assert_eq!(c.finish, Finish::Length);
        assert_eq!(c.usage.total_tokens, 7);
        assert_eq!(c.request_id.as_deref(), Some("req_1"));
    }

    #[test]
    fn openai_style_usage_chunk_and_errors_in_the_stream() {
        let mut s = StreamState::default();
        let sink = |_: &str| {};
        s.apply(
            &event(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#),
            &sink,
        )
        .unwrap();
        assert_eq!(s.usage.unwrap().total_tokens, 7);
        let err = s
            .apply(&event(r#"{"error":{"message":"overloaded"}}"#), &sink)
            .unwrap_err();
        assert_eq!(err, StreamError::Reported("overloaded".into()));
        assert!(matches!(
            s.apply(&event("{not json"), &sink),
            Err(StreamError::Malformed(_))
        ));
    }

    #[test]
    fn error_messages_come_from_any_shape() {
        assert_eq!(
            error_message(r#"{"error":{"message":"bad key"}}"#),
            "bad key"
        );
        assert_eq!(error_message(r#"{"detail":"nope"}"#), "nope");
        assert_eq!(error_message("plain text\n"), "plain text");
        assert_eq!(shorten(&error_message("")), "no details given");
    }
}
