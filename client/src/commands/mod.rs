//! One function per command: build the request, send it, render the reply.

mod accounts;
mod daemon_info;
mod generate;

use crate::cli::{Cli, Command};
use crate::daemon::{socket_path, DaemonConn};
use crate::error::ClientError;

/// What every command needs: the connection and the output mode.
pub struct Ctx {
    /// The connected daemon.
    pub conn: DaemonConn,
    /// Whether `--json` was given.
    pub json: bool,
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), ClientError> {
    let socket = socket_path(cli.socket.as_deref());
    // Read passwords before connecting, so a slow typist does not hit the
    // daemon's idle time-out.
    let password = match &cli.command {
        Command::Signup(args) => Some(accounts::read_password(args, true)?),
        Command::Login(args) => Some(accounts::read_password(args, false)?),
        _ => None,
    };
    let mut ctx = Ctx {
        conn: DaemonConn::connect(&socket).await?,
        json: cli.json,
    };
    match cli.command {
        Command::Signup(args) => {
            accounts::signup(&mut ctx, args, password.unwrap_or_default()).await
        }
        Command::Login(args) => accounts::login(&mut ctx, args, password.unwrap_or_default()).await,
        Command::Logout => accounts::logout(&mut ctx).await,
        Command::Whoami => accounts::whoami(&mut ctx).await,
        Command::Status => daemon_info::status(&mut ctx).await,
        Command::Ping => daemon_info::ping(&mut ctx).await,
        Command::Generate(args) => generate::generate(&mut ctx, args).await,
        Command::Improve(args) => generate::improve(&mut ctx, args).await,
    }
}
