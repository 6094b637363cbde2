//! `dashboard`: a one-time link that signs a browser in, opened or printed.

use std::io::IsTerminal;
use std::process::{Command, Stdio};

use appforge_shared::protocol::{Reply, Request};
use serde_json::json;

use super::accounts::unexpected;
use super::Ctx;
use crate::cli::DashboardArgs;
use crate::error::ClientError;
use crate::output::emit;

/// `appforge dashboard [--no-open]`
pub async fn dashboard(ctx: &mut Ctx, args: DashboardArgs) -> Result<(), ClientError> {
    let reply = ctx.call(Request::DashboardLink).await?;
    let Reply::DashboardLink(link) = reply else {
        return Err(unexpected(&reply));
    };
    // Scripts (`--json`, a pipe) get the link; people at a terminal get a browser.
    let opened = !args.no_open && !ctx.json && std::io::stdout().is_terminal() && open(&link.url);
    emit(
        ctx.json,
        json!({"url": link.url, "expires_in_s": link.expires_in_s}),
        || {
            if opened {
                format!(
                    "Opened the dashboard in your browser. If it did not appear, run \
                     `appforge dashboard --no-open` and open the link it prints within {} s.",
                    link.expires_in_s
                )
            } else {
                format!(
                    "{}\nOpen this link within {} s; it signs one browser in, once.",
                    link.url, link.expires_in_s
                )
            }
        },
    );
    Ok(())
}

/// Starts `$BROWSER` (its first entry; `%s` stands for the URL) or
/// `xdg-open` on `url`; whether one started.
fn open(url: &str) -> bool {
    let from_env = std::env::var("BROWSER").ok().and_then(|list| {
        let first = list.split(':').next()?.trim().to_string();
        (!first.is_empty()).then_some(first)
    });
    let (program, args): (String, Vec<String>) = match from_env {
        Some(command) => {
            let mut words = command.split_whitespace().map(str::to_string);
            let Some(program) = words.next() else {
                return false;
            };
            let mut args: Vec<String> = words.collect();
            if args.iter().any(|a| a.contains("%s")) {
                for a in &mut args {
                    *a = a.replace("%s", url);
                }
            } else {
                args.push(url.to_string());
            }
            (program, args)
        }
        None => ("xdg-open".to_string(), vec![url.to_string()]),
    };
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .is_ok()
}
