//! Running the `git` binary with captured output and a clean environment.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::error::{Result, SandboxError};

/// Environment variables that would make git act on another repository than the one asked for.
const SCRUBBED_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    // Provider keys: git runs filters and other commands from config an agent may have edited,
    // and none of them may see a key.
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "OPENAI_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CODEX_API_KEY",
];

/// Raw result of one git invocation.
#[derive(Debug)]
pub(crate) struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `git -C dir args…` and returns its output whatever the exit status.
pub(crate) async fn run(dir: &Path, args: &[&str]) -> Result<Output> {
    let (code, stdout, stderr) = run_raw(dir, args).await?;
    Ok(Output {
        code,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr,
    })
}

/// [`run`] with stdout as bytes (file contents, NUL-separated listings).
pub(crate) async fn run_raw(dir: &Path, args: &[&str]) -> Result<(Option<i32>, Vec<u8>, String)> {
    let mut cmd = Command::new("git");
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    let out = cmd
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(SandboxError::GitMissing)?;
    Ok((
        out.status.code(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Runs git and fails with [`SandboxError::Git`] on a non-zero exit; returns trimmed stdout.
pub(crate) async fn git(dir: &Path, op: &str, args: &[&str]) -> Result<String> {
    let out = run(dir, args).await?;
    if out.ok() {
        Ok(out.stdout.trim().to_string())
    } else {
        Err(git_error(dir, op, &out))
    }
}

/// Builds the typed error for a failed git command.
pub(crate) fn git_error(dir: &Path, op: &str, out: &Output) -> SandboxError {
    let mut stderr = out.stderr.trim().to_string();
    if stderr.is_empty() {
        stderr = format!("exit status {:?}", out.code);
    }
    SandboxError::Git {
        op: op.to_string(),
        dir: dir.display().to_string(),
        stderr,
    }
}

/// `true` when `git config --get key` has a value in `dir` (any scope).
pub(crate) async fn config_is_set(dir: &Path, key: &str) -> Result<bool> {
    let out = run(dir, &["config", "--get", key]).await?;
    Ok(out.ok() && !out.stdout.trim().is_empty())
}

/// A path as `&str`, since git arguments and overlay options are passed as text.
pub(crate) fn path_str(p: &Path) -> Result<&str> {
    p.to_str().ok_or_else(|| SandboxError::BadPath {
        path: p.display().to_string(),
        reason: "not valid UTF-8".to_string(),
    })
}
