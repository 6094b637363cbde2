//! `env`: an app's own settings.

use std::io::{BufRead, IsTerminal};

use appforge_shared::protocol::{EnvChange, EnvInfo, EnvRequest, Reply, Request, Secret};
use serde_json::json;

use super::accounts::unexpected;
use super::Ctx;
use crate::cli::{EnvArgs, EnvCommand};
use crate::error::ClientError;
use crate::output::emit;

/// `appforge env P [set KEY=VALUE… [--secret] | unset KEY…]`
pub async fn env(ctx: &mut Ctx, args: EnvArgs) -> Result<(), ClientError> {
    let change = match args.change {
        None => EnvChange::List,
        Some(EnvCommand::Set { settings, secret }) => EnvChange::Set {
            settings: pairs(settings, secret)?,
            secret,
        },
        Some(EnvCommand::Unset { names }) => EnvChange::Unset { names },
    };
    let listing = matches!(change, EnvChange::List);
    let request = Request::Env(EnvRequest {
        project: args.project,
        change,
    });
    let reply = ctx.call_showing_steps(request).await?;
    let Reply::Env(info) = reply else {
        return Err(unexpected(&reply));
    };
    emit(ctx.json, env_json(&info), || text(&info, listing));
    Ok(())
}

/// `KEY=VALUE` arguments as names and values; one `KEY` alone takes its
/// value from stdin (its first line), which keeps a secret out of the
/// shell's history and the process list.
fn pairs(args: Vec<String>, secret: bool) -> Result<Vec<(String, Secret)>, ClientError> {
    let from_stdin = args.iter().filter(|a| !a.contains('=')).count();
    if from_stdin > 1 {
        return Err(ClientError::Usage(
            "only one KEY without =VALUE may read its value from stdin".into(),
        ));
    }
    args.into_iter()
        .map(|arg| match arg.split_once('=') {
            Some((name, value)) => Ok((name.to_string(), Secret(value.to_string()))),
            None => Ok((arg.clone(), Secret(read_value(&arg, secret)?))),
        })
        .collect()
}

/// The value of `name`, read from stdin: without echo on a terminal.
fn read_value(name: &str, secret: bool) -> Result<String, ClientError> {
    if std::io::stdin().is_terminal() {
        let prompt = format!("Value of {name}: ");
        return match secret {
            true => rpassword::prompt_password(prompt),
            false => {
                eprint!("{prompt}");
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).map(|_| line)
            }
        }
        .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| ClientError::Usage(format!("could not read the value of {name}: {e}")));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
        ClientError::Usage(format!(
            "could not read the value of {name} from stdin: {e}"
        ))
    })?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// The settings as people read them: one `NAME=value` a line, a secret's
/// value masked.
fn text(info: &EnvInfo, listing: bool) -> String {
    let mut lines: Vec<String> = info
        .settings
        .iter()
        .map(|s| match s.secret {
            true => format!("{}={}  (secret)", s.name, s.value),
            false => format!("{}={}", s.name, s.value),
        })
        .collect();
    if lines.is_empty() {
        lines.push(format!(
            "`{}` has no settings; `appforge env {} set KEY=VALUE` adds one.",
            info.project, info.project
        ));
    }
    if !info.missing_settings.is_empty() {
        lines.push(format!(
            "Missing: its code reads {} without a default; `appforge env {} set NAME=VALUE` sets one.",
            info.missing_settings.join(", "),
            info.project
        ));
    }
    if !listing {
        lines.push(match info.restarted {
            true => format!("`{}` was restarted with them.", info.project),
            false => format!("`{}` gets them when it next starts.", info.project),
        });
    }
    lines.join("\n")
}

fn env_json(info: &EnvInfo) -> serde_json::Value {
    json!({
        "project_id": info.project_id,
        "project": info.project,
        "settings": info.settings.iter().map(|s| json!({
            "name": s.name,
            "value": s.value,
            "secret": s.secret,
        })).collect::<Vec<_>>(),
        "restarted": info.restarted,
        "missing_settings": info.missing_settings,
    })
}
