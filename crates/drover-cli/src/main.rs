//! `drover`: the CLI, and (as hidden subcommands) the daemon and the per-task shim.
//!
//! Layout: [`cli`] declares the commands (clap), [`commands`] has one module per command,
//! [`client`] talks to the daemon (auto-starting it), [`error`] is the one classified error with
//! an exit code and a hint, [`format`] renders tasks and events for people.

mod cli;
mod client;
mod commands;
mod error;
#[cfg(test)]
mod fixtures;
mod format;

fn main() {
    use clap::Parser;
    // The shim's fast path: no argument parser, no runtime — it runs once per task and stays
    // resident, so every page it does not touch is memory saved.
    let mut raw = std::env::args_os();
    let first = raw.nth(1);
    // The jail (docs/design.md §11) must stay single-threaded until it has made its
    // namespaces: no runtime, no parser.
    if first.as_ref().is_some_and(|a| a == "jail") {
        let rest: Vec<_> = raw.collect();
        std::process::exit(drover_shim::jail::main_args(&rest));
    }
    if first.is_some_and(|a| a == "shim") {
        if let (Some(dir), None) = (raw.next(), raw.next()) {
            std::process::exit(drover_shim::run::run(std::path::Path::new(&dir)));
        }
    }
    let args = cli::Cli::parse();
    if !matches!(
        args.command,
        cli::Command::Shim { .. } | cli::Command::Jail { .. } | cli::Command::Daemon(_)
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
