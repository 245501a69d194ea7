//! run, ls, show, wait, send, stop, rm.

use crate::cli::RunArgs;
use crate::client::{self, Client};
use crate::error::{CliError, Context, Kind, Result};
use crate::format;
use drover_types::{validate, RunRequest, SendRequest, Task, TaskState};
use std::path::Path;

/// `/v1/tasks/ID` for an id as the user typed it: an empty one is refused here (it would
/// otherwise be a prefix of every id); anything else is percent-encoded and left to the daemon
/// (not found, or ambiguous with a few candidates).
pub fn task_path(id: &str) -> Result<String> {
    if id.trim().is_empty() {
        return Err(CliError::input("the task id is empty")
            .hint("give a task id (or a unique prefix); `drover ls` lists them"));
    }
    Ok(format!("/v1/tasks/{}", client::segment(id)))
}

/// The prompt from PROMPT, `-` (stdin) or `--prompt-file F` (`-` for stdin too), checked by the
/// one rule every agent shares: not empty or blank.
pub fn read_prompt(prompt: Option<String>, file: Option<&Path>) -> Result<String> {
    let from_stdin = || -> Result<String> {
        use std::io::{IsTerminal, Read};
        let mut stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprintln!("drover: reading the prompt from stdin (end it with Ctrl-D)");
        }
        let mut buf = Vec::new();
        stdin
            .read_to_end(&mut buf)
            .context("reading the prompt from stdin")?;
        String::from_utf8(buf).map_err(|_| {
            CliError::input("the prompt on stdin is not UTF-8 text").hint("convert it to UTF-8")
        })
    };
    let text = match (prompt, file) {
        (Some(p), None) if p == "-" => from_stdin()?,
        (Some(p), None) => p,
        (None, Some(f)) if f == Path::new("-") => from_stdin()?,
        (None, Some(f)) => {
            let bytes = std::fs::read(f).map_err(|e| {
                CliError::on_user_path(&e, format!("--prompt-file {}: {e}", f.display()))
                    .hint("give a readable file, or `-` to read the prompt from stdin")
            })?;
            String::from_utf8(bytes).map_err(|_| {
                CliError::input(format!("--prompt-file {}: not UTF-8 text", f.display()))
                    .hint("convert it to UTF-8")
            })?
        }
        (Some(_), Some(_)) => {
            return Err(
                CliError::input("give the prompt once: PROMPT or --prompt-file")
                    .hint("drop one of them"),
            )
        }
        (None, None) => {
            return Err(CliError::input("no prompt")
                .hint("give PROMPT, --prompt-file FILE, or `-` to read it from stdin"))
        }
    };
    validate::prompt(&text).map_err(CliError::input)?;
    Ok(text)
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

/// `--memory`, `--cpus`, `--pids`; a bad one is an input error (exit 2) naming the flag.
pub fn limits(task: &crate::cli::TaskArgs) -> Result<drover_types::Limits> {
    use drover_types::validate;
    let parse = |v: &Option<String>, f: fn(&str) -> std::result::Result<u64, String>| {
        v.as_deref().map(f).transpose().map_err(CliError::input)
    };
    Ok(drover_types::Limits {
        memory_bytes: parse(&task.memory, validate::parse_memory)?,
        cpus: task
            .cpus
            .as_deref()
            .map(validate::parse_cpus)
            .transpose()
            .map_err(CliError::input)?,
        pids: parse(&task.pids, validate::parse_pids)?,
    })
}

/// Refuses a bad `--protect` glob before anything starts (the daemon checks again).
pub fn check_protect(globs: &[String]) -> Result<()> {
    drover_sandbox::Protect::new(globs)?;
    Ok(())
}

/// `--tag KEY=VALUE` (repeatable) as the request's tags; a bad form is exit 2.
pub fn parse_tags(tags: &[String]) -> Result<drover_types::Tags> {
    let mut out = drover_types::Tags::new();
    for t in tags {
        match t.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            _ => {
                return Err(CliError::input(format!("--tag {t:?}: write KEY=VALUE"))
                    .hint("e.g. --tag customer=acme"))
            }
        }
    }
    Ok(out)
}

pub async fn run(args: RunArgs) -> Result<i32> {
    check_protect(&args.task.protect)?;
    parse_tags(&args.tags)?;
    // Checked before anything is sent: the daemon checks the same (for every client).
    validate::max_usd(args.max_usd).map_err(CliError::input)?;
    validate::max_tokens(args.max_tokens).map_err(CliError::input)?;
    let limits = limits(&args.task)?;
    let prompt = read_prompt(args.prompt, args.prompt_file.as_deref())?;
    let api_key = match &args.api_key_env {
        Some(var) => Some(drover_types::Redacted(std::env::var(var).map_err(
            |_| {
                CliError::input(format!("--api-key-env {var}: the variable is not set"))
                    .hint(format!("export {var}=<your provider key> first"))
            },
        )?)),
        None => None,
    };
    let (timeout_secs, stall_timeout_secs) = clocks(&args.task.timeout, &args.task.stall_timeout)?;
    let (repo, repos) = super::multi_repo::repos_for(args.task.repo, &args.task.protect)?;
    let client = Client::connect().await?;
    let req = RunRequest {
        tags: parse_tags(&args.tags)?,
        repo,
        repos,
        base_ref: args.task.git_ref,
        agent: Some(args.task.agent),
        cmd: args.task.cmd,
        model: args.task.model,
        name: args.name,
        verify: args.task.verify,
        verify_rounds: Some(args.task.verify_rounds),
        judge_model: args.task.judge_model,
        budget: (args.max_usd.is_some() || args.max_tokens.is_some()).then_some(
            drover_types::RequestBudget {
                max_usd: args.max_usd,
                max_tokens: args.max_tokens,
            },
        ),
        max_usd: None,
        max_tokens: None,
        prompt,
        created_by: std::env::var("USER").ok(),
        permissions: args.task.permissions,
        api_key,
        team: args.team,
        timeout_secs,
        stall_timeout_secs,
        protect: args.task.protect,
        memory_bytes: limits.memory_bytes,
        cpus: limits.cpus,
        pids: limits.pids,
        pr: args.task.pr.options(),
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
        println!("{}", format::clean(r));
    }
    // After the final message, one line per pull request (docs/design.md §9).
    for p in &t.prs {
        println!("pr: {}", format::pr_line(p));
    }
    if t.state != TaskState::Succeeded {
        let reason = t
            .outcome
            .as_ref()
            .map(|o| o.reason.clone())
            .unwrap_or_default();
        return Err(CliError::new(
            Kind::TaskFailed,
            format!("task {} {}: {reason}", t.id, t.state),
        ));
    }
    Ok(0)
}

pub async fn wait_one(client: &Client, id: &str) -> Result<Task> {
    let path = format!("{}/wait?timeout=60", task_path(id)?);
    loop {
        let t: Task = client.get(&path).await?;
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
    task_path(id)?;
    let client = Client::connect().await?;
    let t: Task = client.get(&task_path(id)?).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&t).unwrap_or_default());
    } else {
        print!("{}", format::task(&t));
    }
    Ok(0)
}

pub async fn wait(ids: &[String], json: bool) -> Result<i32> {
    for id in ids {
        task_path(id)?;
    }
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
            println!("{} {} {}", t.id, t.state, format::clean(reason));
        }
    }
    Ok(if done.iter().all(|t| t.state == TaskState::Succeeded) {
        0
    } else {
        1
    })
}

pub async fn send(id: &str, message: Option<String>, allow: bool, deny: bool) -> Result<i32> {
    if message.as_deref().is_some_and(|m| m.trim().is_empty()) {
        return Err(CliError::input("the message is empty")
            .hint("drover send ID MESSAGE, or drover send ID --allow|--deny"));
    }
    if message.is_none() && !allow && !deny {
        return Err(CliError::input("nothing to send")
            .hint("drover send ID MESSAGE, or drover send ID --allow|--deny"));
    }
    let path = format!("{}/send", task_path(id)?);
    let client = Client::connect().await?;
    let req = SendRequest {
        message,
        allow,
        deny,
    };
    let t: Task = client.post(&path, &req).await?;
    eprintln!("drover: sent to {} ({})", t.id, t.state);
    Ok(0)
}

pub async fn stop(id: &str) -> Result<i32> {
    let path = format!("{}/stop", task_path(id)?);
    let client = Client::connect().await?;
    let t: Task = client.post(&path, &serde_json::json!({})).await?;
    println!("{} {}", t.id, t.state);
    Ok(0)
}

pub async fn rm(id: &str) -> Result<i32> {
    let path = task_path(id)?;
    let client = Client::connect().await?;
    let v: serde_json::Value = client.delete(&path).await?;
    println!(
        "{}",
        v.get("removed").and_then(|v| v.as_str()).unwrap_or(id)
    );
    Ok(0)
}
