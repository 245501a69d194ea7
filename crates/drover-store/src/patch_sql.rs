//! A [`TaskPatch`](crate::TaskPatch)'s fields as the `SET` list of one `UPDATE tasks`, for
//! both SQL stores (the column names and types are the same on SQLite and PostgreSQL).

use crate::error::Result;
use crate::record::PatchFields;
use crate::rows::to_json;
use sqlx::{Database, Encode, QueryBuilder, Type};

/// Pushes `, col = <bind>` for each field the patch sets, once per column (PostgreSQL refuses
/// two assignments of one column in an `UPDATE`).
pub(crate) fn push_fields<'a, DB: Database>(
    qb: &mut QueryBuilder<'a, DB>,
    f: PatchFields,
) -> Result<()>
where
    String: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
    f64: Encode<'a, DB> + Type<DB>,
    Option<String>: Encode<'a, DB> + Type<DB>,
    Option<&'a str>: Encode<'a, DB> + Type<DB>,
    Option<i64>: Encode<'a, DB> + Type<DB>,
    Option<f64>: Encode<'a, DB> + Type<DB>,
{
    macro_rules! set {
        ($col:literal, $v:expr) => {
            if let Some(v) = $v {
                qb.push(concat!(", ", $col, " = ")).push_bind(v);
            }
        };
    }
    if let Some(o) = f.outcome {
        let o = o.as_ref();
        qb.push(", verdict = ")
            .push_bind(o.map(|o| o.verdict.as_str().to_string()));
        qb.push(", reason = ")
            .push_bind(o.map(|o| o.reason.clone()));
        qb.push(", error_kind = ")
            .push_bind(o.and_then(|o| o.error_kind).map(|k| k.as_str().to_string()));
    }
    if let Some(u) = f.usage {
        qb.push(", input_tokens = ")
            .push_bind(u.input_tokens as i64);
        qb.push(", output_tokens = ")
            .push_bind(u.output_tokens as i64);
        qb.push(", cache_read_tokens = ")
            .push_bind(u.cache_read_tokens as i64);
        qb.push(", cache_write_tokens = ")
            .push_bind(u.cache_write_tokens as i64);
    }
    if let Some(p) = f.pending_input {
        let (input, since) = p.map(|(v, since)| (v.to_string(), since)).unzip();
        qb.push(", pending_input = ").push_bind(input);
        qb.push(", pending_since = ").push_bind(since);
    }
    set!("stop_requested", f.stop_requested.map(i64::from));
    set!("started_at", f.started_at);
    set!("finished_at", f.finished_at);
    set!("result", f.result);
    set!("cost_usd", f.cost_usd);
    set!("session_id", f.session_id);
    set!("commit_sha", f.commit);
    set!("repo_dir", f.repo_dir);
    set!("base_commit", f.base_commit);
    set!("sandbox", f.sandbox);
    set!(
        "sandbox_kind",
        f.sandbox_kind.map(|k| k.map(|k| k.as_str()))
    );
    set!("shim_pid", f.shim_pid);
    set!("shim_start", f.shim_start);
    set!("pid", f.pid);
    set!("pgid", f.pgid);
    set!("agent_start", f.agent_start);
    set!("stdout_offset", f.stdout_offset);
    set!("stderr_offset", f.stderr_offset);
    set!("turns_done", f.turns_done);
    set!("turns_sent", f.turns_sent);
    set!("gate_status", f.gate_status.map(|g| g.map(|g| g.as_str())));
    set!("stop_reason", f.stop_reason.map(|r| r.map(|r| r.as_str())));
    set!("metered_by", f.metered_by.map(|m| m.map(|m| m.as_str())));
    set!("agent_cost_usd", f.agent_cost_usd);
    set!("activity_at", f.activity_at);
    set!("stop_requested_at", f.stop_requested_at);
    set!("stop_step_at", f.stop_step_at);
    // Stored as the step's number (1–4).
    set!("stop_step", f.stop_step.map(|s| s.index()));
    set!("isolation", f.isolation.map(|i| i.map(|i| i.as_str())));
    set!("peak_memory_bytes", f.peak_memory_bytes);
    set!("cpu_seconds", f.cpu_seconds);
    set!("worker", f.worker);
    set!("lease_until", f.lease_until);
    set!("repos", f.repos.map(|r| to_json(&r)).transpose()?);
    set!("prs", f.prs.map(|p| to_json(&p)).transpose()?);
    set!(
        "agent_usage",
        f.agent_usage.map(|u| to_json(&u)).transpose()?
    );
    Ok(())
}
