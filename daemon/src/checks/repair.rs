//! The rounds of a generation: ask the model, parse and mend its files,
//! check them, and on a failure send the real error back, at most
//! `repair_rounds` times, stopping early when the same failure comes back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use appforge_shared::protocol::{FileContent, Progress};

use super::{mends, CheckError, RunCheck, StepOutcome};
use crate::ai::generate::{self, Asking, GenerationError, Reply};
use crate::ai::validate::{self, CheckError as StaticError};
use crate::ai::{parse, prompt, Message, Role, Usage};
use crate::process::launch::Variables;
use crate::projects::change::Change;

/// What a generation needs besides the conversation.
pub struct Job<'a> {
    /// Who is asked, and where progress goes.
    pub asking: Asking<'a>,
    /// Repair rounds allowed after the first.
    pub repair_rounds: u32,
    /// Interpreter for the syntax check.
    pub python: &'a Path,
    /// Runs the files; `None` skips that (`--no-check`).
    pub checker: Option<&'a dyn RunCheck>,
    /// The app's settings the checks run with, secrets as placeholders.
    pub settings: &'a Variables,
    /// The files a change starts from (`improve`, `fix`): a reply writes
    /// some of them or new ones and deletes some by name, and every file
    /// it does not mention is kept. `None` for a new app, which a reply
    /// writes whole.
    pub base: Option<&'a [FileContent]>,
}

/// One round: a reply and what became of it.
pub struct Round {
    /// The reply, continuations included.
    pub reply: Reply,
    /// What was mended in its files.
    pub mends: Vec<String>,
    /// The check steps that ran.
    pub steps: Vec<StepOutcome>,
    /// Why the round's files could not be used, if they could not.
    pub problem: Option<String>,
}

/// What a generation did, success or not: everything the history records.
pub struct Outcome {
    /// The checked files, or why there are none.
    pub files: Result<Vec<FileContent>, GenerationError>,
    /// Every round, in order.
    pub rounds: Vec<Round>,
    /// When it failed: the last files that were well-formed but failed a
    /// check, which `--keep-broken` saves unchecked.
    pub broken: Option<Vec<FileContent>>,
    /// For a change: the files of the base that the replies deleted and
    /// that are gone from the result, sorted.
    pub deleted: Vec<String>,
}

impl Outcome {
    /// Tokens used by every round.
    pub fn usage(&self) -> Usage {
        let mut sum = Usage::default();
        for round in &self.rounds {
            sum += round.reply.usage;
        }
        sum
    }

    /// Wall time of every round.
    pub fn duration(&self) -> std::time::Duration {
        self.rounds.iter().map(|r| r.reply.duration).sum()
    }
}

/// Why one round's files cannot be used.
enum Problem {
    /// The reply is malformed or fails the static checks.
    Malformed(String),
    /// The files are well-formed but failed a check by running.
    Failed {
        text: String,
        /// The same failure, however it is worded: step and last line.
        signature: String,
        files: Vec<FileContent>,
    },
}

/// How one round's files fared.
enum Examined {
    /// They passed: the mended, checked files.
    Good(Vec<FileContent>),
    /// They cannot be used; the model may be asked again.
    Problem(Problem),
    /// The checks themselves could not run: no round can pass.
    CheckerBroken(String),
}

/// Runs a generation from `messages` to checked files.
pub async fn run(job: Job<'_>, mut messages: Vec<Message>) -> Outcome {
    let report = job.asking.report;
    // The offline scaffolder reads only the app prompt: another round
    // would write the same files.
    let allowed = match job.asking.provider.name() {
        "template" => 0,
        _ => job.repair_rounds,
    };
    let mut outcome = Outcome {
        files: Err(GenerationError::CutOff),
        rounds: Vec::new(),
        broken: None,
        deleted: Vec::new(),
    };
    // A change builds on the base, then on each round's answer: a repair
    // round writes only what it changes, like the first.
    let mut current: Option<Vec<FileContent>> = job.base.map(<[FileContent]>::to_vec);
    let mut deletions: BTreeSet<String> = BTreeSet::new();
    let mut last_signature: Option<String> = None;
    for round in 0..=allowed {
        report(Progress::Step(match round {
            0 => format!(
                "asking {} ({})",
                job.asking.provider.name(),
                job.asking.model
            ),
            n => format!("repair round {n} of {allowed}: sending the error back to the model"),
        }));
        let spent = outcome.rounds.iter().map(|r| r.reply.response.len()).sum();
        let reply = match generate::whole_reply(&job.asking, &messages, spent).await {
            Ok(reply) => reply,
            Err((e, reply)) => {
                outcome.rounds.push(Round {
                    reply,
                    mends: Vec::new(),
                    steps: Vec::new(),
                    problem: Some(e.to_string()),
                });
                outcome.files = Err(e);
                return outcome;
            }
        };
        let mut mended = Vec::new();
        let mut steps = Vec::new();
        let files = read_reply(&reply.text, &mut current, &mut deletions);
        let examined = match files {
            Ok(files) => examine(&job, files, &mut mended, &mut steps).await,
            Err(e) => Examined::Problem(Problem::Malformed(e.to_string())),
        };
        let text = reply.text.clone();
        let problem = match examined {
            Examined::Good(files) => {
                outcome.rounds.push(Round {
                    reply,
                    mends: mended,
                    steps,
                    problem: None,
                });
                outcome.deleted = deleted(job.base, &deletions, &files);
                outcome.files = Ok(files);
                return outcome;
            }
            Examined::CheckerBroken(broken) => {
                outcome.rounds.push(Round {
                    reply,
                    mends: mended,
                    steps,
                    problem: Some(broken.clone()),
                });
                outcome.files = Err(GenerationError::Checker(broken));
                return outcome;
            }
            Examined::Problem(problem) => problem,
        };
        let (text_of_problem, signature) = match problem {
            Problem::Malformed(p) => (p.clone(), format!("malformed: {p}")),
            Problem::Failed {
                text,
                signature,
                files,
            } => {
                outcome.deleted = deleted(job.base, &deletions, &files);
                outcome.broken = Some(files);
                (text, signature)
            }
        };
        tracing::info!(round, problem = %text_of_problem, "the generated app failed its checks");
        outcome.rounds.push(Round {
            reply,
            mends: mended,
            steps,
            problem: Some(text_of_problem.clone()),
        });
        if last_signature.as_deref() == Some(signature.as_str()) {
            outcome.files = Err(GenerationError::Stuck {
                round,
                problem: text_of_problem,
            });
            return outcome;
        }
        last_signature = Some(signature);
        outcome.files = Err(GenerationError::Invalid {
            rounds: allowed,
            problem: text_of_problem.clone(),
        });
        if round < allowed {
            report(Progress::Restart(format!(
                "the app failed its checks: {text_of_problem}"
            )));
            messages.push(Message::new(Role::Assistant, text));
            messages.push(prompt::repair(&text_of_problem, job.base.is_some()));
        }
    }
    outcome
}

/// The files of one reply: for a new app, what it writes; for a change,
/// `current` with the reply's files written over it and its deletions
/// taken out. `current` becomes that result, for the next round to build
/// on, and `deletions` gathers every path deleted.
fn read_reply(
    reply: &str,
    current: &mut Option<Vec<FileContent>>,
    deletions: &mut BTreeSet<String>,
) -> Result<Vec<FileContent>, parse::ParseError> {
    let Some(base) = current else {
        return parse::parse_reply(reply);
    };
    let change = parse::parse_change(reply)?;
    let mut merged: BTreeMap<String, String> = base
        .iter()
        .map(|f| (f.path.clone(), f.content.clone()))
        .collect();
    for path in &change.deleted {
        merged.remove(path);
        deletions.insert(path.clone());
    }
    // A file both deleted and written is written: the content is explicit.
    for f in change.files {
        merged.insert(f.path, f.content);
    }
    if merged.len() > parse::MAX_FILES {
        return Err(parse::ParseError::TooManyFiles {
            count: merged.len(),
            limit: parse::MAX_FILES,
        });
    }
    let files: Vec<FileContent> = merged
        .into_iter()
        .map(|(path, content)| FileContent { path, content })
        .collect();
    *base = files.clone();
    Ok(files)
}

/// The base's files that were deleted and are not in `files`.
fn deleted(
    base: Option<&[FileContent]>,
    deletions: &BTreeSet<String>,
    files: &[FileContent],
) -> Vec<String> {
    let Some(base) = base else {
        return Vec::new();
    };
    deletions
        .iter()
        .filter(|d| base.iter().any(|f| &f.path == *d) && !files.iter().any(|f| &f.path == *d))
        .cloned()
        .collect()
}

/// Mends and checks one reply's files.
async fn examine(
    job: &Job<'_>,
    mut files: Vec<FileContent>,
    mended: &mut Vec<String>,
    steps: &mut Vec<StepOutcome>,
) -> Examined {
    let report = job.asking.report;
    *mended = mends::apply(&mut files);
    for mend in mended.iter() {
        report(Progress::Step(format!("mended: {mend}")));
    }
    report(Progress::Step("checking the files".into()));
    match validate::check(&mut files, job.python).await {
        Ok(()) => {}
        Err(StaticError::Invalid(p)) => return Examined::Problem(Problem::Malformed(p)),
        Err(StaticError::Checker(e)) => return Examined::CheckerBroken(e),
    }
    let Some(checker) = job.checker else {
        return Examined::Good(files);
    };
    // What the app runs did not change, so running it again proves nothing.
    match job.base.map(|base| Change::of(base, &files)) {
        Some(Change::Nothing) => {
            report(Progress::Step(
                "the files equal the version they started from: nothing to check".into(),
            ));
            return Examined::Good(files);
        }
        Some(Change::DocsOnly(paths)) => {
            report(Progress::Step(format!(
                "only documentation changed ({}): the app is not run again",
                paths.join(", ")
            )));
            return Examined::Good(files);
        }
        Some(Change::Code(_)) | None => {}
    }
    let say = |line: String| report(Progress::Step(line));
    match checker.run_checks(&files, job.settings, &say).await {
        Ok(ran) => {
            *steps = ran;
            Examined::Good(files)
        }
        Err(CheckError::Failed {
            steps: ran,
            failure,
        }) => {
            *steps = ran;
            Examined::Problem(Problem::Failed {
                text: failure.to_string(),
                signature: signature(failure.step.as_str(), &failure.error),
                files,
            })
        }
        Err(CheckError::Broken(e)) => Examined::CheckerBroken(e),
    }
}

/// What makes two failures the same: the step and the exception that ended
/// the last traceback (else the last line that is not an access log line),
/// with numbers blanked (times, ports, addresses differ from run to run).
fn signature(step: &str, error: &str) -> String {
    let lines: Vec<&str> = error.lines().collect();
    let exception = lines
        .iter()
        .rposition(|l| l.starts_with("Traceback (most recent call last)"))
        .and_then(|at| {
            lines[at + 1..]
                .iter()
                .find(|l| !l.is_empty() && !l.starts_with(char::is_whitespace))
        });
    let line = exception.or_else(|| {
        lines.iter().rev().find(|l| {
            !l.trim().is_empty() && !l.starts_with("[appforge]") && !l.contains("\" HTTP/1.")
        })
    });
    let line = line.copied().unwrap_or("");
    format!(
        "{step}: {}",
        line.replace(|c: char| c.is_ascii_digit(), "#")
    )
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn a_failure_is_known_by_its_exception_whatever_comes_after() {
        let first = "GET / answered 500\nTraceback (most recent call last):\n  File \"app.py\", line 8\n    return 1 / 0\nZeroDivisionError: division by zero\n127.0.0.1 - - [26/Nov/2026 12:40:01] \"GET / HTTP/1.0\" 500 -";
        let second = "GET / answered 500\nTraceback (most recent call last):\n  File \"app.py\", line 9\n    return 1 / 0\nZeroDivisionError: division by zero";
        assert_eq!(signature("start", first), signature("start", second));
        assert_eq!(
            signature("start", first),
            "start: ZeroDivisionError: division by zero"
        );
        assert_ne!(signature("import", first), signature("start", first));
        let no_traceback = "it ended with exit status: 3\n[appforge] exited 3";
        assert_eq!(
            signature("import", no_traceback),
            "import: it ended with exit status: #"
        );
    }
}
