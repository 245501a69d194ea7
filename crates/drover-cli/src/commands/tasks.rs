//! run, ls, show, wait, send, stop, rm.

use crate::cli::RunArgs;
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::format;
use drover_types::{RunRequest, SendRequest, Task, TaskState};

fn path_id(id: &str) -> String {
    // Ids are hex; anything else is refused by the daemon with a clear not-found.
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .collect()
}

/// A local directory becomes an absolute path (must exist); URLs pass through.
pub fn resolve_repo(repo: Option<String>) -> Result<String> {
    let raw = repo.unwrap_or_else(|| ".".into());
    let looks_remote = raw.contains("://") || (raw.contains('@') && raw.contains(':'));
    if looks_remote {
        return Ok(raw);
    }
    let path = std::path::Path::new(&raw);
    let abs = std::fs::canonicalize(path).map_err(|e| {
        CliError::input(format!("--repo {raw}: {e}"))
            .hint("pass a git checkout's directory, or run drover inside one")
    })?;
    Ok(abs.display().to_string())
}

/// `--timeout` and `--stall-timeout` in seconds; a bad one is an input error (exit 2).
pub fn clocks(
    timeout: &Option<String>,
    stall: &Option<String>,
) -> Result<(Option<u64>, Option<u64>)> {
    let parse = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| {
                drover_types::clock::parse_secs(s).map_err(|e| {
                    CliError::input(format!("{flag} {e}")).hint(
                        "give a positive duration in whole seconds, such as 30s, 10m or 1h30m",
                    )
                })
            })
            .transpose()
    };
    Ok((
        parse("--timeout", timeout)?,
        parse("--stall-timeout", stall)?,
    ))
}

/// Refuses a bad `--protect` glob before anything starts (the daemon checks again).
pub fn check_protect(globs: &[String]) -> Result<()> {
    drover_sandbox::Protect::new(globs)
        .map(|_| ())
        .map_err(|e| CliError::input(e.to_string()).hint(drover_sandbox::InvalidGlob::HINT))
}

pub async fn run(args: RunArgs) -> Result<i32> {
    check_protect(&args.protect)?;
    let repo = resolve_repo(args.repo)?;
    let api_key = match &args.api_key_env {
        Some(var) => Some(drover_types::Redacted(std::env::var(var).map_err(
            |_| {
                CliError::input(format!("--api-key-env {var}: the variable is not set"))
                    .hint(format!("export {var}=<your provider key> first"))
            },
        )?)),
        None => None,
    };
    let (timeout_secs, stall_timeout_secs) = clocks(&args.timeout, &args.stall_timeout)?;
    let client = Client::connect().await?;
    let req = RunRequest {
        repo,
        base_ref: args.git_ref,
        agent: Some(args.agent),
        cmd: args.cmd,
        model: args.model,
        name: args.name,
        verify: args.verify,
        verify_rounds: Some(args.verify_rounds),
        judge_model: args.judge_model,
        max_usd: args.max_usd,
        max_tokens: args.max_tokens,
        prompt: args.prompt,
        created_by: std::env::var("USER").ok(),
        permissions: args.permissions,
        api_key,
        team: args.team,
        timeout_secs,
        stall_timeout_secs,
        protect: args.protect,
    };
    let task: Task = client.post("/v1/tasks", &req).await?;
    for w in &task.warnings {
        eprintln!("drover: warning: {w}");
    }
    if !args.wait {
        println!("{}", task.id);
        return Ok(0);
    }
    eprintln!("drover: task {} queued; waiting", task.id);
    let t = wait_one(&client, &task.id).await?;
    if let Some(r) = &t.result {
        println!("{r}");
    }
    if t.state != TaskState::Succeeded {
        let reason = t
            .outcome
            .as_ref()
            .map(|o| o.reason.clone())
            .unwrap_or_default();
        eprintln!("drover: task {} {}: {reason}", t.id, t.state);
        return Ok(1);
    }
    Ok(0)
}

pub async fn wait_one(client: &Client, id: &str) -> Result<Task> {
    loop {
        let t: Task = client
            .get(&format!("/v1/tasks/{}/wait?timeout=60", path_id(id)))
            .await?;
        if t.state.is_terminal() {
            return Ok(t);
        }
    }
}

pub async fn ls(all: bool, json: bool) -> Result<i32> {
    let client = Client::connect().await?;
    let tasks = client.list_tasks(all).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&tasks).unwrap_or_default()
        );
    } else if tasks.is_empty() {
        eprintln!(
            "no tasks{}",
            if all {
                ""
            } else {
                " (active or finished in the last hour; --all for every task)"
            }
        );
    } else {
        print!("{}", format::table(&tasks));
    }
    Ok(0)
}

pub async fn show(id: &str, json: bool) -> Result<i32> {
    let client = Client::connect().await?;
    let t: Task = client.get(&format!("/v1/tasks/{}", path_id(id))).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&t).unwrap_or_default());
    } else {
        print!("{}", format::task(&t));
    }
    Ok(0)
}

pub async fn wait(ids: &[String], json: bool) -> Result<i32> {
    let client = Client::connect().await?;
    let mut done = vec![];
    for id in ids {
        done.push(wait_one(&client, id).await?);
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&done).unwrap_or_default()
        );
    } else {
        for t in &done {
            let reason = t.outcome.as_ref().map(|o| o.reason.as_str()).unwrap_or("");
            println!("{} {} {}", t.id, t.state, reason);
        }
    }
    Ok(if done.iter().all(|t| t.state == TaskState::Succeeded) {
        0
    } else {
        1
    })
}

pub async fn send(id: &str, message: Option<String>, allow: bool, deny: bool) -> Result<i32> {
    if message.is_none() && !allow && !deny {
        return Err(CliError::input("nothing to send")
            .hint("drover send ID MESSAGE, or drover send ID --allow|--deny"));
    }
    let client = Client::connect().await?;
    let req = SendRequest {
        message,
        allow,
        deny,
    };
    let t: Task = client
        .post(&format!("/v1/tasks/{}/send", path_id(id)), &req)
        .await?;
    eprintln!("drover: sent to {} ({})", t.id, t.state);
    Ok(0)
}

pub async fn stop(id: &str) -> Result<i32> {
    let client = Client::connect().await?;
    let t: Task = client
        .post(
            &format!("/v1/tasks/{}/stop", path_id(id)),
            &serde_json::json!({}),
        )
        .await?;
    println!("{} {}", t.id, t.state);
    Ok(0)
}

pub async fn rm(id: &str) -> Result<i32> {
    let client = Client::connect().await?;
    let v: serde_json::Value = client.delete(&format!("/v1/tasks/{}", path_id(id))).await?;
    println!(
        "{}",
        v.get("removed").and_then(|v| v.as_str()).unwrap_or(id)
    );
    Ok(0)
}
