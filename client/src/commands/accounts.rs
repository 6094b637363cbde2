//! `signup`, `login`, `logout` and `whoami`.

use std::io::{BufRead, IsTerminal};

use appforge_shared::protocol::{Credentials, Reply, Request, Secret};
use appforge_shared::ErrorCode;
use serde_json::json;

use super::Ctx;
use crate::cli::PasswordArgs;
use crate::error::ClientError;
use crate::output::emit;
use crate::session;

/// Reads the password from stdin (`--password-stdin`) or a hidden prompt.
pub fn read_password(args: &PasswordArgs, confirm: bool) -> Result<String, ClientError> {
    if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| {
            ClientError::Usage(format!("could not read the password from stdin: {e}"))
        })?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        let password = password.strip_suffix('\r').unwrap_or(password);
        return Ok(password.to_string());
    }
    if !std::io::stdin().is_terminal() {
        return Err(ClientError::Usage(
            "no terminal to ask for the password on; pipe it in with --password-stdin".into(),
        ));
    }
    let prompt = |text: &str| {
        rpassword::prompt_password(text)
            .map_err(|e| ClientError::Usage(format!("could not read the password: {e}")))
    };
    let password = prompt("Password: ")?;
    if confirm && prompt("Repeat password: ")? != password {
        return Err(ClientError::Usage(
            "the passwords differ; nothing was changed".into(),
        ));
    }
    Ok(password)
}

fn credentials(args: PasswordArgs, password: String) -> Credentials {
    Credentials {
        email: args.email,
        password: Secret(password),
    }
}

/// `appforge signup EMAIL`
pub async fn signup(
    ctx: &mut Ctx,
    args: PasswordArgs,
    password: String,
) -> Result<(), ClientError> {
    let request = Request::Signup(credentials(args, password));
    sign_in(ctx, request, "signed up and signed in").await
}

/// `appforge login EMAIL`
pub async fn login(ctx: &mut Ctx, args: PasswordArgs, password: String) -> Result<(), ClientError> {
    let request = Request::Login(credentials(args, password));
    sign_in(ctx, request, "signed in").await
}

async fn sign_in(ctx: &mut Ctx, request: Request, verb: &str) -> Result<(), ClientError> {
    let reply = ctx.conn.request(None, request, |_| {}).await?;
    let Reply::Session(info) = reply else {
        return Err(unexpected(&reply));
    };
    session::save(&info)?;
    emit(
        ctx.json,
        json!({"email": info.email, "user_id": info.user_id, "expires_at": info.expires_at}),
        || format!("{verb} as {} (user {})", info.email, info.user_id),
    );
    Ok(())
}

/// `appforge logout`
pub async fn logout(ctx: &mut Ctx) -> Result<(), ClientError> {
    let Some(token) = session::load() else {
        return Err(ClientError::Daemon(appforge_shared::WireError::new(
            ErrorCode::Unauthenticated,
            "you are not signed in",
        )));
    };
    match ctx.conn.request(Some(token), Request::Logout, |_| {}).await {
        Ok(_) => {}
        // The daemon already forgot it; forgetting it here too is the point.
        Err(ClientError::Daemon(e)) if e.code == ErrorCode::Unauthenticated => {}
        Err(e) => return Err(e),
    }
    session::forget()?;
    emit(ctx.json, json!({"signed_out": true}), || {
        "signed out".into()
    });
    Ok(())
}

/// `appforge whoami`
pub async fn whoami(ctx: &mut Ctx) -> Result<(), ClientError> {
    let reply = ctx
        .conn
        .request(session::load(), Request::Whoami, |_| {})
        .await?;
    let Reply::User(user) = reply else {
        return Err(unexpected(&reply));
    };
    emit(
        ctx.json,
        json!({"email": user.email, "user_id": user.user_id, "created_at": user.created_at}),
        || format!("{} (user {})", user.email, user.user_id),
    );
    Ok(())
}

/// The error for a reply of the wrong kind.
pub fn unexpected(reply: &Reply) -> ClientError {
    ClientError::Protocol(format!("unexpected reply from the daemon: {reply:?}"))
}
