//! `drover pool start | ls | show | stop | resume`.

use super::tasks::read_prompt;
use crate::cli::PoolAction;
use crate::client::{segment, Client};
use crate::error::{CliError, Result};
use crate::format;
use drover_types::{PoolRequest, PoolStopRequest, UsageBy};
use serde_json::Value;

pub async fn pool(action: PoolAction) -> Result<i32> {
    match action {
        PoolAction::Start(a) => {
            let a = *a;
            if a.slots == 0 {
                return Err(CliError::input("--slots must be at least 1"));
            }
            let (timeout_secs, stall_timeout_secs) =
                super::tasks::clocks(&a.task.timeout, &a.task.stall_timeout)?;
            super::tasks::check_protect(&a.task.protect)?;
            let limits = super::tasks::limits(&a.task)?;
            drover_types::validate::max_usd(a.max_usd).map_err(CliError::input)?;
            let prompt = read_prompt(a.prompt, a.prompt_file.as_deref())?;
            if a.task.repo.len() > 1 {
                return Err(CliError::input("pool start takes one --repo")
                    .hint("a pool's tasks share one repository; run a multi-repo task with `drover run --repo A --repo B`"));
            }
            let repo = super::remote::repo_for(a.task.repo.into_iter().next())?;
            let client = Client::connect().await?;
            let req = PoolRequest {
                name: a.name,
                slots: a.slots,
                prompt,
                repo,
                base_ref: a.task.git_ref,
                agent: Some(a.task.agent),
                cmd: a.task.cmd,
                model: a.task.model,
                judge_model: a.task.judge_model,
                count: a.count,
                max_failures: Some(a.max_failures),
                notify: a.notify,
                verify: a.task.verify,
                verify_rounds: Some(a.task.verify_rounds),
                max_usd: a.max_usd,
                permissions: a.task.permissions,
                allowed_models: a.allowed_models,
                on_failures: Some(a.on_failures),
                timeout_secs,
                stall_timeout_secs,
                protect: a.task.protect,
                memory_bytes: limits.memory_bytes,
                cpus: limits.cpus,
                pids: limits.pids,
                pr: a.task.pr.options(),
            };
            let v: Value = client.post("/v1/pools", &req).await?;
            for w in v["warnings"].as_array().into_iter().flatten() {
                eprintln!("drover: warning: {}", w.as_str().unwrap_or_default());
            }
            println!("{}", v["name"].as_str().unwrap_or_default());
            Ok(0)
        }
        PoolAction::Ls { json } => {
            let client = Client::connect().await?;
            let pools: Vec<Value> = client.get("/v1/pools").await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&pools).unwrap_or_default()
                );
                return Ok(0);
            }
            print!("{}", format::pools_table(&pools));
            Ok(0)
        }
        PoolAction::Show { name, json } => {
            let client = Client::connect().await?;
            let p: Value = client.get(&format!("/v1/pools/{}", segment(&name))).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default());
                return Ok(0);
            }
            for k in [
                "name",
                "state",
                "stop_reason",
                "slots",
                "running",
                "finished",
                "successes",
                "failures",
                "soft_fails",
                "streak",
                "max_failures",
                "launched",
                "count_total",
                "total_cost_usd",
                "agent",
                "model",
                "repo",
                "prompt",
            ] {
                if !p[k].is_null() {
                    let v = match &p[k] {
                        Value::String(s) => s.clone(),
                        v => v.to_string(),
                    };
                    println!("{k:<14} {}", format::clean(&v));
                }
            }
            if let Some(evs) = p["events"].as_array() {
                println!("events:");
                for e in evs {
                    let line = format!(
                        "  {} {} {}",
                        e["ts"].as_str().unwrap_or(""),
                        e["kind"].as_str().unwrap_or(""),
                        e["data"]
                    );
                    println!("{}", format::clean(&line));
                }
            }
            Ok(0)
        }
        PoolAction::Stop { name, hard } => {
            let client = Client::connect().await?;
            let p: Value = client
                .post(
                    &format!("/v1/pools/{}/stop", segment(&name)),
                    &PoolStopRequest { hard },
                )
                .await?;
            println!(
                "{} {}",
                p["name"].as_str().unwrap_or(""),
                p["state"].as_str().unwrap_or("")
            );
            Ok(0)
        }
        PoolAction::Resume { name } => {
            let client = Client::connect().await?;
            let p: Value = client
                .post(
                    &format!("/v1/pools/{}/resume", segment(&name)),
                    &serde_json::json!({}),
                )
                .await?;
            println!(
                "{} {}",
                p["name"].as_str().unwrap_or(""),
                p["state"].as_str().unwrap_or("")
            );
            Ok(0)
        }
    }
}

/// `drover usage [--by task|pool|model|day|team|tag:NAME] [--json]`.
pub async fn usage(by: UsageBy, json: bool) -> Result<i32> {
    let client = Client::connect().await?;
    let by_text = by.to_string();
    let lines: Vec<Value> = client
        .get(&format!("/v1/usage?by={}", segment(&by_text)))
        .await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&lines).unwrap_or_default()
        );
        return Ok(0);
    }
    print!("{}", crate::format::usage_table(&by_text, &lines));
    Ok(0)
}
