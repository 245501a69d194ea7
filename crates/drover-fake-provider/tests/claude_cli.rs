//! Runs the real Claude Code CLI against the fake provider.
//!
//! Skipped (with a notice) unless `DROVER_CLAUDE_BIN` names the `claude` executable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::time::Duration;

use drover_test_support::agents;
use drover_test_support::git::git_env;

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

#[tokio::test]
async fn claude_code_writes_a_file_through_the_fake_provider() {
    let Some(claude) = agents::claude_bin_or_skip("claude_cli") else {
        return;
    };
    let provider = drover_test_support::provider::start(SCENARIOS).await;
    let home = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let author = [
        ("GIT_AUTHOR_NAME", OsStr::new("t")),
        ("GIT_AUTHOR_EMAIL", OsStr::new("t@example.com")),
        ("GIT_COMMITTER_NAME", OsStr::new("t")),
        ("GIT_COMMITTER_EMAIL", OsStr::new("t@example.com")),
    ];
    git_env(repo.path(), &["init", "-q"], &author);
    git_env(
        repo.path(),
        &["commit", "-q", "--allow-empty", "-m", "init"],
        &author,
    );
    let session = uuid::Uuid::new_v4().to_string();

    let mut child = agents::claude_stream_json(&claude, home.path(), repo.path())
        .args(["--permission-mode", "acceptEdits", "--session-id", &session])
        .args(["--model", "claude-sonnet-4-5"])
        .env("ANTHROPIC_BASE_URL", provider.base_url())
        .env("ANTHROPIC_API_KEY", "fake-key")
        .spawn()
        .unwrap();
    agents::send_user_message(&mut child, "Create HELLO-FILE please").await;
    drop(child.stdin.take());

    let done = agents::finish(child, Duration::from_secs(120)).await;
    let (stdout, stderr) = (&done.stdout, &done.stderr);
    assert!(
        done.status.success(),
        "claude failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        done.status
    );

    let lines = &done.lines;
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
