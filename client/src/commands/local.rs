//! Commands that need no daemon: shell completions and the man page, both
//! generated from the same clap definitions as the parser.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::ClientError;

/// `appforge completions SHELL`
pub fn completions(shell: Shell) -> Result<(), ClientError> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "appforge", &mut std::io::stdout());
    Ok(())
}

/// `appforge manpage`: roff for `man 1 appforge`.
pub fn manpage() -> Result<(), ClientError> {
    match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(ClientError::Local(format!(
            "cannot write the man page: {e}"
        ))),
        _ => Ok(()),
    }
}
