//! `drover batch start | ls | show | stop | retry` (docs/design.md §9): one prompt, one task per
//! repository, grouped under a name.
//!
//! `start` prints the batch's task ids, one per line (what a script pipes into `drover wait`),
//! and `drover: batch NAME: N tasks` on stderr. `retry` prints the new task ids the same way.

use super::tasks::{check_protect, clocks, read_prompt};
use crate::cli::{BatchAction, BatchStartArgs};
use crate::client::{segment, Client};
use crate::error::{CliError, Context, Result};
use crate::format;
use drover_types::{validate, BatchRequest, BatchRetried, BatchView, RequestBudget};
use std::path::Path;

pub async fn batch(action: BatchAction) -> Result<i32> {
    match action {
        BatchAction::Start(a) => start(*a).await,
        BatchAction::Ls { json } => {
            let client = Client::connect().await?;
            let batches: Vec<BatchView> = client.get("/v1/batches").await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&batches).unwrap_or_default()
                );
            } else {
                print!("{}", format::batches_table(&batches));
            }
            Ok(0)
        }
        BatchAction::Show { name, json } => {
            let client = Client::connect().await?;
            let b: BatchView = client.get(&path(&name)?).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&b).unwrap_or_default());
                return Ok(0);
            }
            println!(
                "{}",
                format::clean(&format!(
                    "batch {}: {} · {} tasks · {} running · {} succeeded · {} failed · ${:.4}",
                    b.name, b.state, b.tasks, b.running, b.succeeded, b.failed, b.cost_usd
                ))
            );
            print!("{}", format::batch_repos_table(&b.repos));
            Ok(0)
        }
        BatchAction::Stop { name } => {
            let client = Client::connect().await?;
            let b: BatchView = client
                .post(&format!("{}/stop", path(&name)?), &serde_json::json!({}))
                .await?;
            println!("{}", format::clean(&format!("{} {}", b.name, b.state)));
            Ok(0)
        }
        BatchAction::Retry { name } => {
            let client = Client::connect().await?;
            let r: BatchRetried = client
                .post(&format!("{}/retry", path(&name)?), &serde_json::json!({}))
                .await?;
            for id in &r.tasks {
                println!("{id}");
            }
            eprintln!(
                "drover: batch {}: {} task(s) retried",
                format::clean(&r.batch.name),
                r.tasks.len()
            );
            Ok(0)
        }
    }
}

/// `/v1/batches/NAME`; a name that breaks the rule is refused here (exit 2), as the daemon
/// would.
fn path(name: &str) -> Result<String> {
    drover_types::check_batch_name(name)
        .map_err(|e| CliError::input(e).hint("`drover batch ls` lists batches"))?;
    Ok(format!("/v1/batches/{}", segment(name)))
}

async fn start(a: BatchStartArgs) -> Result<i32> {
    drover_types::check_batch_name(&a.name).map_err(|e| {
        CliError::input(e).hint("e.g. deps-2026-12 (lower case, digits, '_', '.', '-')")
    })?;
    if a.slots == Some(0) {
        return Err(CliError::input(
            "--slots must be at least 1 (or leave it out)",
        ));
    }
    let stdin = |p: &Option<std::path::PathBuf>| p.as_deref() == Some(Path::new("-"));
    if stdin(&a.repos_file) && (stdin(&a.prompt_file) || a.prompt.as_deref() == Some("-")) {
        return Err(
            CliError::input("--repos-file - and the prompt cannot both come from stdin")
                .hint("put one of them in a file"),
        );
    }
    check_protect(&a.protect)?;
    validate::max_usd(a.max_usd).map_err(CliError::input)?;
    validate::max_tokens(a.max_tokens).map_err(CliError::input)?;
    let (timeout_secs, stall_timeout_secs) = clocks(&a.timeout, &a.stall_timeout)?;
    let listed = match &a.repos_file {
        Some(f) => read_repos_file(f)?,
        None => a.repo.clone(),
    };
    if listed.is_empty() {
        return Err(CliError::input("no repository given")
            .hint("give --repo R (repeatable) or --repos-file F with one repository per line"));
    }
    let mut repos = Vec::with_capacity(listed.len());
    for r in listed {
        repos.push(super::remote::repo_for(Some(r))?);
    }
    let prompt = read_prompt(a.prompt, a.prompt_file.as_deref())?;
    let client = Client::connect().await?;
    let req = BatchRequest {
        name: a.name,
        repos,
        prompt,
        slots: a.slots,
        pr: a.pr.options(),
        base_ref: a.git_ref,
        agent: Some(a.agent),
        cmd: a.cmd,
        model: a.model,
        verify: a.verify,
        verify_rounds: Some(a.verify_rounds),
        judge_model: a.judge_model,
        budget: (a.max_usd.is_some() || a.max_tokens.is_some()).then_some(RequestBudget {
            max_usd: a.max_usd,
            max_tokens: a.max_tokens,
        }),
        permissions: a.permissions,
        timeout_secs,
        stall_timeout_secs,
        protect: a.protect,
        created_by: std::env::var("USER").ok(),
        team: a.team,
    };
    let b: BatchView = client.post("/v1/batches", &req).await?;
    for w in &b.warnings {
        eprintln!("drover: warning: {}", format::clean(w));
    }
    for r in &b.repos {
        println!("{}", r.task);
    }
    eprintln!(
        "drover: batch {}: {} tasks",
        format::clean(&b.name),
        b.repos.len()
    );
    Ok(0)
}

/// One repository per line; `#` comments and blank lines skipped; `-` reads stdin.
fn read_repos_file(f: &Path) -> Result<Vec<String>> {
    let text = if f == Path::new("-") {
        use std::io::Read;
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .context("reading the repositories from stdin")?;
        buf
    } else {
        std::fs::read_to_string(f).map_err(|e| {
            CliError::on_user_path(&e, format!("--repos-file {}: {e}", f.display()))
                .hint("give a readable text file with one repository per line, or `-` for stdin")
        })?
    };
    Ok(parse_repos(&text))
}

fn parse_repos(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repos_file_skips_comments_and_blank_lines() {
        let text = "# the upgrade\nacme/api\n\n  acme/web  \n# acme/old\n/srv/repo\n";
        assert_eq!(parse_repos(text), vec!["acme/api", "acme/web", "/srv/repo"]);
    }
}
