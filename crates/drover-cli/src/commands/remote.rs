//! The CLI against a team server (`DROVER_URL`, docs/design.md §7): the commands that need this
//! machine's daemon (its shims, its status, its locks, its configuration) refuse in one line.

use crate::cli::Command;
use crate::client::remote_url;
use crate::error::{CliError, Result};

/// Exit 2 for a command that only works against the local daemon while `DROVER_URL` is set.
pub fn refuse_local_only(cmd: &Command) -> Result<()> {
    let Some(url) = remote_url() else {
        return Ok(());
    };
    let name = match cmd {
        Command::Attach { .. } => "attach",
        Command::Agents => "agents",
        Command::Lock { .. } => "lock",
        Command::Daemon(_) => "daemon",
        Command::Doctor { .. } => "doctor",
        _ => return Ok(()),
    };
    Err(CliError::input(format!(
        "`drover {name}` does not work against a remote server (DROVER_URL={url}): it needs this machine's daemon"
    ))
    .hint("unset DROVER_URL to use the local daemon, or run it on the server"))
}

/// `--repo` of `run` and `pool start`: resolved to a local path for the local daemon; sent as
/// given to a remote server (a path on the server or a git URL), where it is required.
pub fn repo_for(repo: Option<String>) -> Result<String> {
    if remote_url().is_none() {
        return resolve_repo(repo);
    }
    repo.filter(|r| !r.trim().is_empty()).ok_or_else(|| {
        CliError::input("give --repo: a path on the server or a git URL").hint(
            "against a remote server (DROVER_URL) the checkout is the server's, not this directory",
        )
    })
}

/// A local directory becomes an absolute path (must exist); URLs pass through, and so does
/// `owner/name` that is not a directory here (the daemon resolves it through its default forge).
fn resolve_repo(repo: Option<String>) -> Result<String> {
    let raw = repo.unwrap_or_else(|| ".".into());
    let looks_remote = raw.contains("://") || (raw.contains('@') && raw.contains(':'));
    if looks_remote {
        return Ok(raw);
    }
    let path = std::path::Path::new(&raw);
    if !path.exists() && looks_like_forge_path(&raw) {
        return Ok(raw);
    }
    let abs = std::fs::canonicalize(path).map_err(|e| {
        CliError::on_user_path(&e, format!("--repo {raw}: {e}"))
            .hint("pass a git checkout's directory, or run drover inside one")
    })?;
    Ok(abs.display().to_string())
}

/// `owner/name` (or `group/sub/name`): relative, at least two segments of letters, digits,
/// `.`, `_` and `-`, none starting with `.`.
fn looks_like_forge_path(s: &str) -> bool {
    let segments: Vec<&str> = s.split('/').collect();
    segments.len() >= 2
        && segments.iter().all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
}
