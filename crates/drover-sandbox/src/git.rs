//! Running the `git` binary with captured output and a clean environment (an allow-list of the
//! daemon's, [`PASSED_ENV`]: git runs commands from config an agent may have written).

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::error::{Result, SandboxError};

/// The only variables of the daemon's environment git gets (it starts with an empty one): git
/// runs filters, diff drivers and other commands from config files an agent may have edited
/// (`.git/config`, `.gitattributes`), so it must not hold the daemon's secrets — provider keys,
/// cloud credentials, any token. An allow-list, so a secret nobody thought of is never passed:
/// what git needs to find itself (`PATH`) and the user's configuration and identity (`HOME`,
/// `XDG_CONFIG_HOME`, `GIT_CONFIG_*`, `GIT_AUTHOR_*`/`GIT_COMMITTER_*`), the temp dir and
/// locale. Never the `GIT_DIR`-like ones that would point git at another repository.
const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "TMPDIR",
    "XDG_CONFIG_HOME",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
];

/// An HTTP transfer of the daemon's git (a mirror's clone or fetch, the end-of-task push, all
/// through drover's git proxy) slower than 1 byte/s for this many seconds is aborted: a forge
/// that accepts and never answers must not hang the mirror (and every task waiting on its
/// lock) or a finishing task forever. Forges send progress or keep-alives while they work.
pub const HTTP_STALL_SECS: u32 = 300;

/// A `git` command with an empty environment but for [`PASSED_ENV`], no terminal prompt and
/// the C locale (its output is parsed), HTTP transfers aborted after [`HTTP_STALL_SECS`]
/// without progress. Every git process the daemon starts is built here.
pub fn command() -> Command {
    let mut cmd = Command::new("git");
    cmd.env_clear();
    for var in PASSED_ENV {
        // The allow-listed part of the process's own environment, passed on as `Command` would
        // pass all of it; nothing is configured from it here.
        if let Some(value) = std::env::var_os(var) {
            cmd.env(var, value);
        }
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env("GIT_HTTP_LOW_SPEED_LIMIT", "1")
        .env("GIT_HTTP_LOW_SPEED_TIME", HTTP_STALL_SECS.to_string());
    cmd
}

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
    let out = command()
        .arg("-C")
        .arg(dir)
        .args(args)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A remote that accepts and never answers: the daemon's git gives up (here after 2 s
    /// instead of [`HTTP_STALL_SECS`]) instead of waiting forever.
    #[tokio::test]
    async fn a_remote_that_never_answers_does_not_hang_git() {
        let envs: Vec<_> = command()
            .as_std()
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
            .collect();
        let has = |k: &str, v: &str| {
            envs.iter()
                .any(|(ek, ev)| ek == k && ev.as_deref() == Some(std::ffi::OsStr::new(v)))
        };
        assert!(has("GIT_HTTP_LOW_SPEED_LIMIT", "1"), "{envs:?}");
        assert!(
            has("GIT_HTTP_LOW_SPEED_TIME", &HTTP_STALL_SECS.to_string()),
            "{envs:?}"
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut conns = vec![];
            while let Ok((c, _)) = listener.accept().await {
                conns.push(c);
            }
        });
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            command()
                .env("GIT_HTTP_LOW_SPEED_TIME", "2")
                .args([
                    "ls-remote",
                    &format!("http://127.0.0.1:{port}/acme/app.git"),
                ])
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("git waited on a silent remote for 60 s")
        .unwrap();
        assert!(!out.status.success());
        held.abort();
    }
}
