//! The text tables of `ls`, `pool ls`, `usage` and `workers`, through `comfy-table`: no borders, columns
//! two spaces apart, widths in terminal columns (a CJK character or an emoji counts two), no
//! trailing spaces. Every cell is [`clean`](super::clean) text.

use super::{clean, clean_task, excerpt, state_label};
use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use drover_types::{Task, WorkerInfo};
use serde_json::Value;

/// `header` over `rows`; the columns from `right_from` on are right-aligned (numbers).
pub(super) fn plain<const N: usize>(
    header: [&str; N],
    rows: Vec<[String; N]>,
    right_from: usize,
) -> String {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    for r in rows {
        table.add_row(r);
    }
    for (i, c) in table.column_iter_mut().enumerate() {
        c.set_padding((0, 2));
        if i >= right_from {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
        .lines()
        .map(|l| l.trim_end().to_string() + "\n")
        .collect()
}

fn money(v: Option<f64>, none: &str) -> String {
    v.map(|c| format!("${c:.4}"))
        .unwrap_or_else(|| none.to_string())
}

/// `drover ls`.
pub fn table(tasks: &[Task]) -> String {
    let rows = tasks
        .iter()
        .map(|t| {
            let t = &clean_task(t.clone());
            [
                t.id.clone(),
                state_label(t),
                t.agent.clone(),
                excerpt(t.name.as_deref().unwrap_or(&t.prompt), 32),
                money(t.cost_usd, "-"),
                t.commit
                    .as_deref()
                    .map(|c| c.chars().take(10).collect())
                    .unwrap_or_else(|| "-".into()),
                t.created_at
                    .get(..19)
                    .unwrap_or(&t.created_at)
                    .replace('T', " "),
            ]
        })
        .collect();
    let header = ["ID", "STATE", "AGENT", "NAME", "COST", "COMMIT", "CREATED"];
    plain(header, rows, header.len())
}

/// `drover pool ls`: name and state, then numbers right-aligned under their headers.
pub fn pools_table(pools: &[Value]) -> String {
    let rows = pools
        .iter()
        .map(|p| {
            let text = |k: &str| clean(p[k].as_str().unwrap_or(""));
            [
                text("name"),
                text("state"),
                p["slots"].to_string(),
                p["running"].to_string(),
                p["finished"].to_string(),
                p["successes"].to_string(),
                p["failures"].to_string(),
                p["streak"].to_string(),
                money(Some(p["total_cost_usd"].as_f64().unwrap_or(0.0)), ""),
            ]
        })
        .collect();
    let header = [
        "NAME", "STATE", "SLOTS", "RUNNING", "FINISHED", "OK", "FAILED", "STREAK", "COST",
    ];
    plain(header, rows, 2)
}

/// `drover usage`: one line per group; numbers right-aligned under their headers.
pub fn usage_table(by: &str, lines: &[Value]) -> String {
    let num = |v: &Value| v.as_i64().map_or_else(|| "-".into(), |n| n.to_string());
    let rows = lines
        .iter()
        .map(|l| {
            [
                excerpt(l["key"].as_str().unwrap_or(""), 48),
                num(&l["requests"]),
                num(&l["input_tokens"]),
                num(&l["output_tokens"]),
                num(&l["cache_read_tokens"]),
                num(&l["cache_write_tokens"]),
                money(l["cost_usd"].as_f64(), "unknown"),
            ]
        })
        .collect();
    let by = by.to_uppercase();
    let header = [
        by.as_str(),
        "REQUESTS",
        "INPUT",
        "OUTPUT",
        "CACHE READ",
        "CACHE WRITE",
        "COST",
    ];
    let mut out = plain(header, rows, 1);
    if lines.is_empty() {
        out.push_str("(no metered usage yet)\n");
    }
    out
}
/// `drover audit`: one line per record, oldest first.
pub fn audit_table(records: &[drover_types::AuditRecord]) -> String {
    let opt = |v: &Option<String>| clean(v.as_deref().unwrap_or("-"));
    let rows = records
        .iter()
        .map(|r| {
            [
                r.seq.to_string(),
                clean(&r.at),
                clean(r.actor.key_id.as_deref().unwrap_or(match r.actor.team {
                    // A record with a team and no key: the daemon acting for the team (a
                    // webhook delivery).
                    Some(_) => "-",
                    None => "owner",
                })),
                opt(&r.actor.team),
                clean(&r.action),
                opt(&r.target),
                opt(&r.remote_addr),
                r.status.to_string(),
            ]
        })
        .collect();
    let header = [
        "SEQ", "AT", "WHO", "TEAM", "ACTION", "TARGET", "FROM", "STATUS",
    ];
    let mut out = plain(header, rows, 8);
    if records.is_empty() {
        out.push_str("(no audit records)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    #[test]
    fn usage_columns_line_up_whatever_the_widths() {
        let lines = [
            json!({"key": "claude-haiku-4-5-20251001", "requests": 1234567, "input_tokens": 5,
                   "output_tokens": 123456789, "cache_read_tokens": 0, "cache_write_tokens": 42,
                   "cost_usd": 1234.5}),
            json!({"key": "m", "requests": 2, "input_tokens": 1000000, "output_tokens": 7,
                   "cache_read_tokens": 99999, "cache_write_tokens": 0, "cost_usd": null}),
        ];
        let out = super::usage_table("model", &lines);
        let rows: Vec<&str> = out.lines().collect();
        assert_eq!(rows.len(), 3, "{out}");
        // Every column ends where its header ends (numbers right-aligned under it).
        for header in [
            "REQUESTS",
            "INPUT",
            "OUTPUT",
            "CACHE READ",
            "CACHE WRITE",
            "COST",
        ] {
            let end = rows[0].find(header).unwrap() + header.len();
            for r in &rows[1..] {
                let cell_end = r[..end].trim_end().len();
                assert!(
                    r.as_bytes().get(end).is_none_or(|b| *b == b' ') && cell_end == end,
                    "column {header} misaligned:\n{out}"
                );
            }
        }
        assert!(rows[2].trim_end().ends_with("unknown"));
        assert!(rows[1].starts_with("claude-haiku-4-5-20251001"));
    }
}

#[cfg(test)]
mod snapshots {
    #![allow(clippy::unwrap_used)]
    use crate::fixtures::fleet;
    use serde_json::json;

    #[test]
    fn ls_of_a_fleet() {
        insta::assert_snapshot!(super::table(&fleet()));
    }

    #[test]
    fn ls_of_nothing_is_its_header() {
        assert_eq!(
            super::table(&[]),
            "ID  STATE  AGENT  NAME  COST  COMMIT  CREATED\n"
        );
    }

    #[test]
    fn pool_ls_with_a_wide_name() {
        let pools = [
            json!({"name": "nightly", "state": "running", "slots": 4, "running": 3,
                   "finished": 120, "successes": 117, "failures": 3, "streak": 0,
                   "total_cost_usd": 12.5}),
            json!({"name": "夜間テスト🌙", "state": "stopped", "slots": 1, "running": 0,
                   "finished": 3, "successes": 0, "failures": 3, "streak": 3,
                   "total_cost_usd": 0.0042}),
        ];
        insta::assert_snapshot!(super::pools_table(&pools));
    }

    #[test]
    fn usage_by_task_with_wide_and_emoji_keys() {
        let lines = [
            json!({"key": "修复登录页面 🦀", "requests": 12, "input_tokens": 120000,
                   "output_tokens": 3400, "cache_read_tokens": 50000, "cache_write_tokens": 2100,
                   "cost_usd": 1.2345}),
            json!({"key": "q1a2b3c4", "requests": 1, "input_tokens": 5, "output_tokens": 7,
                   "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": null}),
        ];
        insta::assert_snapshot!(super::usage_table("task", &lines));
        insta::assert_snapshot!("usage_empty", super::usage_table("model", &[]));
    }
}

/// `drover workers`: one line per worker of the store, times to the second (UTC).
pub fn workers_table(workers: &[WorkerInfo]) -> String {
    let time = |t: &str| clean(t.get(..19).unwrap_or(t)).replace('T', " ");
    let rows = workers
        .iter()
        .map(|w| {
            [
                clean(&w.name),
                clean(w.addr.as_deref().unwrap_or("-")),
                time(&w.started_at),
                time(&w.last_heartbeat),
                w.slots.to_string(),
                w.running.to_string(),
                w.state.to_string(),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "ADDR",
        "STARTED",
        "LAST HEARTBEAT",
        "SLOTS",
        "RUNNING",
        "STATE",
    ];
    plain(header, rows, header.len())
}
