//! `drover`: the CLI, and (as hidden subcommands) the daemon and the per-task shim.
//!
//! Layout: [`cli`] declares the commands (clap), [`commands`] has one module per command,
//! [`client`] talks to the daemon (auto-starting it), [`error`] is the one classified error with
//! an exit code and a hint, [`format`] renders tasks and events for people.

mod cli;
mod client;
mod commands;
mod error;
mod format;

fn main() {
    use clap::Parser;
    let args = cli::Cli::parse();
    if !matches!(
        args.command,
        cli::Command::Shim { .. } | cli::Command::Daemon(_)
    ) {
        // A CLI whose reader went away (`drover ls | head`) ends quietly, like other tools.
        // SAFETY: setting a signal disposition at start, before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let code = match commands::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            e.print();
            e.exit_code()
        }
    };
    std::process::exit(code);
}
