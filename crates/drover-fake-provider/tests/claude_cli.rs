//! Runs the real Claude Code CLI against the fake provider.
//!
//! Skipped (with a notice) unless `DROVER_CLAUDE_BIN` names the `claude` executable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use drover_fake_provider::{FakeProvider, ScenarioSet};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

const SCENARIOS: &str = r#"{"scenarios": [
  {"name": "hello", "match": "HELLO-FILE", "turns": [
    {"content": [
      {"type": "text", "text": "I will create the file."},
      {"type": "tool_use", "name": "Write",
       "input": {"file_path": "HELLO.txt", "content": "hello from the fake provider\n"}}]},
    {"content": [{"type": "text", "text": "SUCCESS: wrote HELLO.txt"}],
     "usage": {"input": 1500, "output": 12, "cache_read": 1000, "cache_creation": 0}}
  ]},
  {"name": "default", "turns": [{"content": [{"type": "text", "text": "unexpected prompt"}]}]}
]}"#;

fn git(dir: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?} failed");
}

#[tokio::test]
async fn claude_code_writes_a_file_through_the_fake_provider() {
    let Some(claude) = std::env::var_os("DROVER_CLAUDE_BIN") else {
        eprintln!("SKIPPED claude_cli: set DROVER_CLAUDE_BIN to the claude executable to run it");
        return;
    };
    let set = ScenarioSet::from_json(SCENARIOS).unwrap();
    let provider = FakeProvider::start(set, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    git(
        repo.path(),
        &["commit", "-q", "--allow-empty", "-m", "init"],
    );
    let session = uuid::Uuid::new_v4().to_string();

    let mut child = tokio::process::Command::new(&claude)
        .args([
            "-p",
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
        ])
        .args([
            "--verbose",
            "--permission-mode",
            "acceptEdits",
            "--session-id",
            &session,
        ])
        .args(["--model", "claude-sonnet-4-5"])
        .current_dir(repo.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("ANTHROPIC_BASE_URL", provider.base_url())
        .env("ANTHROPIC_API_KEY", "fake-key")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let prompt = json!({"type": "user",
        "message": {"role": "user", "content": "Create HELLO-FILE please"},
        "parent_tool_use_id": null, "session_id": ""});
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{prompt}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);

    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("claude did not finish within 120 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "claude failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );

    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let init = lines
        .iter()
        .find(|l| l["type"] == "system" && l["subtype"] == "init");
    assert_eq!(init.unwrap()["session_id"], session.as_str());
    let result = lines
        .iter()
        .rev()
        .find(|l| l["type"] == "result")
        .unwrap_or_else(|| panic!("no result line:\n{stdout}"));
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["result"], "SUCCESS: wrote HELLO.txt");
    let written = std::fs::read_to_string(repo.path().join("HELLO.txt")).unwrap();
    assert_eq!(written, "hello from the fake provider\n");

    let log = provider.log();
    let main: Vec<_> = log.iter().filter(|r| !r.side).collect();
    assert_eq!(main.len(), 2, "{log:#?}");
    assert_eq!(main[0].turn, Some(0));
    assert_eq!(main[1].turn, Some(1));
    assert!(main
        .iter()
        .all(|r| r.scenario.as_deref() == Some("hello") && r.status == 200));
    assert_eq!(main[0].model.as_deref(), Some("claude-sonnet-4-5"));
    provider.stop().await;
}
