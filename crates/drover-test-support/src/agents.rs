//! The pinned agent CLIs (Claude Code, Codex) that tests run for real.
//!
//! `scripts/test.sh` installs them and sets `DROVER_CLAUDE_BIN` / `DROVER_CODEX_BIN`. A test
//! that needs one fails when it is missing ([`claude_bin`], [`codex_bin`]); only a test that
//! says so skips, loudly ([`claude_bin_or_skip`]).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

pub const CLAUDE_BIN_ENV: &str = "DROVER_CLAUDE_BIN";
pub const CODEX_BIN_ENV: &str = "DROVER_CODEX_BIN";

/// The pinned Claude Code binary; a missing one is a failure, not a skip.
pub fn claude_bin() -> String {
    required(
        CLAUDE_BIN_ENV,
        "run the test suite through scripts/test.sh, which installs \
         @anthropic-ai/claude-code@2.1.328 and sets it",
    )
}

/// The pinned Codex binary; a missing one is a failure, not a skip.
pub fn codex_bin() -> String {
    required(
        CODEX_BIN_ENV,
        "run the test suite through scripts/test.sh, which installs @openai/codex and sets it",
    )
}

/// The pinned binary named by `var` (e.g. [`CLAUDE_BIN_ENV`]); fails the test without it.
pub fn required(var: &str, how: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("{var} is not set: {how}"))
}

/// The Claude Code binary, or `None` after printing a `SKIPPED:` line naming `test` — for the
/// few tests that may run where Claude Code is not installed.
pub fn claude_bin_or_skip(test: &str) -> Option<String> {
    let bin = std::env::var(CLAUDE_BIN_ENV).ok().filter(|s| !s.is_empty());
    if bin.is_none() {
        eprintln!("SKIPPED: {test}: set {CLAUDE_BIN_ENV} to the claude executable to run it");
    }
    bin
}

/// `claude -p` speaking stream-json on stdin and stdout, in `cwd`, with only `PATH`, `HOME` and
/// the variables that keep it offline (no updater, no telemetry) in its environment; stdio
/// piped, killed on drop. Add the provider's URL and key and any flags before spawning.
pub fn claude_stream_json(bin: &str, home: &Path, cwd: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args([
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
    ])
    .current_dir(cwd)
    .env_clear()
    .env("PATH", std::env::var_os("PATH").unwrap_or_default())
    .env("HOME", home)
    .env("DISABLE_AUTOUPDATER", "1")
    .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    cmd
}

/// Writes one stream-json user message to the agent's stdin.
pub async fn send_user_message(child: &mut tokio::process::Child, text: &str) {
    let prompt = json!({"type": "user", "message": {"role": "user", "content": text},
                        "parent_tool_use_id": null, "session_id": ""});
    let stdin = child.stdin.as_mut().unwrap();
    stdin
        .write_all(format!("{prompt}\n").as_bytes())
        .await
        .unwrap();
    stdin.flush().await.unwrap();
}

/// What a stream-json agent left when it ended.
pub struct Finished {
    pub status: std::process::ExitStatus,
    /// Its stdout lines that are JSON.
    pub lines: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
}

/// Waits (at most `limit`, else the test fails) for the agent to end.
pub async fn finish(child: tokio::process::Child, limit: Duration) -> Finished {
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the agent did not finish within {limit:?}"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Finished {
        status: out.status,
        lines,
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
