//! One function per command: build the request, send it, render the reply.

mod accounts;
mod apps;
mod daemon_info;
mod dashboard;
mod edit;
mod env;
mod generate;
mod import;
mod local;
mod projects;
mod saved;

use std::io::IsTerminal;
use std::path::PathBuf;

use appforge_shared::protocol::{Progress, Reply, Request, SessionToken};

use crate::cli::{Cli, Command};
use crate::daemon::{socket_path, DaemonConn};
use crate::error::ClientError;
use crate::escape::{sanitize, Sgr};
use crate::session;

/// What every command needs: the connection and the output mode.
pub struct Ctx {
    /// The connected daemon.
    pub conn: DaemonConn,
    /// The socket it was reached on, to connect again after a long pause.
    pub socket: PathBuf,
    /// Whether `--json` was given.
    pub json: bool,
}

impl Ctx {
    /// Sends a request with the saved session and returns the final reply.
    pub async fn call(&mut self, request: Request) -> Result<Reply, ClientError> {
        self.conn.request(session::load(), request, |_| {}).await
    }

    /// Like [`Ctx::call`], showing the daemon's steps on stderr as they
    /// come when it is a terminal (and not for `--json`).
    pub async fn call_showing_steps(&mut self, request: Request) -> Result<Reply, ClientError> {
        let shown = !self.json && std::io::stderr().is_terminal();
        self.conn
            .request(session::load(), request, |p| {
                if let (true, Progress::Step(step)) = (shown, p) {
                    eprintln!("  {}", sanitize(&step, Sgr::Drop));
                }
            })
            .await
    }
}

/// The session to present to the connection itself: every command but
/// signing up or in. A connection that shows a session gets the signed-in
/// limits (frames over the daemon's 8 KiB limit for connections without
/// one, waits on the user between two requests) and one of the slots kept
/// for signed-in clients, so that silent connections of other processes
/// cannot shut out `ping`, `ps` or `stop`.
fn connection_session(command: &Command) -> Option<SessionToken> {
    match command {
        Command::Signup(_) | Command::Login(_) => None,
        _ => session::load(),
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), ClientError> {
    // These need no daemon.
    match &cli.command {
        Command::Completions { shell } => return local::completions(*shell),
        Command::Manpage => return local::manpage(),
        _ => {}
    }
    let socket = socket_path(cli.socket.as_deref());
    // Read passwords before connecting, so a slow typist does not hit the
    // daemon's idle time-out.
    let password = match &cli.command {
        Command::Signup(args) => Some(accounts::read_password(args, true)?),
        Command::Login(args) => Some(accounts::read_password(args, false)?),
        _ => None,
    };
    let mut ctx = Ctx {
        conn: DaemonConn::connect(&socket, connection_session(&cli.command)).await?,
        socket,
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
        Command::Fix(args) => generate::fix(&mut ctx, args).await,
        Command::List => projects::list(&mut ctx).await,
        Command::Show(args) => projects::show(&mut ctx, args).await,
        Command::Delete(args) => projects::delete(&mut ctx, args).await,
        Command::History(args) => projects::history(&mut ctx, args).await,
        Command::Diff(args) => projects::diff(&mut ctx, args).await,
        Command::Rollback(args) => projects::rollback(&mut ctx, args).await,
        Command::Export(args) => projects::export(&mut ctx, args).await,
        Command::Edit(args) => edit::edit(&mut ctx, args).await,
        Command::Import(args) => import::import(&mut ctx, args).await,
        Command::Run(args) => apps::run(&mut ctx, args).await,
        Command::Stop(args) => apps::stop(&mut ctx, args).await,
        Command::Restart(args) => apps::restart(&mut ctx, args).await,
        Command::Ps => apps::ps(&mut ctx).await,
        Command::Logs(args) => apps::logs(&mut ctx, args).await,
        Command::Env(args) => env::env(&mut ctx, args).await,
        Command::Metrics => daemon_info::metrics(&mut ctx).await,
        Command::Dashboard(args) => dashboard::dashboard(&mut ctx, args).await,
        Command::Completions { .. } | Command::Manpage => unreachable!("handled above"),
    }
}
