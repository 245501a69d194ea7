//! Rendering for people. Scripts use `--json`.

use drover_types::{Event, EventKind, Task, TaskState};

fn excerpt(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', " ⏎ ");
    if one_line.chars().count() <= n {
        return one_line;
    }
    let cut: String = one_line.chars().take(n).collect();
    format!("{cut}…")
}

/// `drover usage`: one line per group; numbers right-aligned under their headers.
pub fn usage_table(by: &str, lines: &[serde_json::Value]) -> String {
    use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header([
            by.to_uppercase().as_str(),
            "REQUESTS",
            "INPUT",
            "OUTPUT",
            "CACHE READ",
            "CACHE WRITE",
            "COST",
        ]);
    let num = |v: &serde_json::Value| v.as_i64().map_or_else(|| "-".into(), |n| n.to_string());
    for l in lines {
        let cost = l["cost_usd"]
            .as_f64()
            .map(|c| format!("${c:.4}"))
            .unwrap_or_else(|| "unknown".into());
        table.add_row([
            excerpt(l["key"].as_str().unwrap_or(""), 48),
            num(&l["requests"]),
            num(&l["input_tokens"]),
            num(&l["output_tokens"]),
            num(&l["cache_read_tokens"]),
            num(&l["cache_write_tokens"]),
            cost,
        ]);
    }
    for (i, c) in table.column_iter_mut().enumerate() {
        c.set_padding((0, 2));
        if i > 0 {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out: String = table
        .lines()
        .map(|l| l.trim_end().to_string() + "\n")
        .collect();
    if lines.is_empty() {
        out.push_str("(no metered usage yet)\n");
    }
    out
}

pub fn state_label(t: &Task) -> String {
    match (t.state, t.queue_position) {
        (TaskState::Queued, Some(p)) => format!("queued #{p}"),
        (s, _) => s.to_string(),
    }
}

pub fn table(tasks: &[Task]) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "STATE".into(),
        "AGENT".into(),
        "NAME".into(),
        "COST".into(),
        "COMMIT".into(),
        "CREATED".into(),
    ]];
    for t in tasks {
        rows.push([
            t.id.clone(),
            state_label(t),
            t.agent.clone(),
            excerpt(t.name.as_deref().unwrap_or(&t.prompt), 32),
            t.cost_usd
                .map(|c| format!("${c:.4}"))
                .unwrap_or_else(|| "-".into()),
            t.commit
                .as_deref()
                .map(|c| c.chars().take(10).collect())
                .unwrap_or_else(|| "-".into()),
            t.created_at
                .get(..19)
                .unwrap_or(&t.created_at)
                .replace('T', " "),
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub fn task(t: &Task) -> String {
    let mut out = String::new();
    let mut kv = |k: &str, v: String| out.push_str(&format!("{k:<12} {v}\n"));
    kv("id", t.id.clone());
    if let Some(n) = &t.name {
        kv("name", n.clone());
    }
    kv("state", state_label(t));
    if let Some(o) = &t.outcome {
        let kind = o
            .error_kind
            .map(|k| format!(" [{}]", k.as_str()))
            .unwrap_or_default();
        kv(
            "outcome",
            format!("{}{kind}: {}", o.verdict.as_str(), o.reason),
        );
    }
    kv(
        "agent",
        format!(
            "{}{}",
            t.agent,
            t.model
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ),
    );
    kv("repo", format!("{} @ {}", t.repo, t.base_ref));
    kv("branch", t.branch.clone());
    if let Some(c) = &t.commit {
        kv("commit", c.clone());
    }
    if let Some(s) = &t.sandbox {
        kv(
            "sandbox",
            format!("{} ({})", s, t.sandbox_kind.as_deref().unwrap_or("?")),
        );
    }
    if let Some(s) = &t.session_id {
        kv("session", s.clone());
    }
    let u = &t.usage;
    kv(
        "usage",
        format!(
            "in {} out {} cache read {} write {}",
            u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens
        ),
    );
    kv(
        "cost",
        t.cost_usd
            .map(|c| format!("${c:.4}"))
            .unwrap_or_else(|| "-".into()),
    );
    kv("created", t.created_at.clone());
    if let Some(s) = &t.started_at {
        kv("started", s.clone());
    }
    if let Some(s) = &t.finished_at {
        kv("finished", s.clone());
    }
    if let Some(p) = &t.pending_input {
        kv(
            "waiting for",
            format!(
                "{} (answer: drover send {} --allow|--deny)",
                excerpt(&p.to_string(), 120),
                t.id
            ),
        );
    }
    if let Some(l) = &t.locks {
        let list = |k: &str| {
            l[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        kv(
            "locks",
            format!(
                "holding [{}] waiting [{}]",
                list("holding"),
                list("waiting")
            ),
        );
    }
    if let Some(p) = &t.pool {
        kv("pool", p.clone());
    }
    kv("prompt", excerpt(&t.prompt, 200));
    if let Some(r) = &t.result {
        kv("result", r.clone());
    }
    out
}

/// One event as a line (or a few) of transcript.
pub fn event(e: &Event) -> Option<String> {
    let d = &e.data;
    let s = |k: &str| {
        d.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let line = match e.kind {
        EventKind::State => {
            let reason = s("reason");
            if reason.is_empty() {
                format!("● {}", s("state"))
            } else {
                format!("● {} ({})", s("state"), excerpt(&reason, 160))
            }
        }
        EventKind::Text => s("text"),
        EventKind::ToolCall => {
            format!(
                "→ {} {}",
                s("name"),
                excerpt(
                    &d.get("input").map(|v| v.to_string()).unwrap_or_default(),
                    160
                )
            )
        }
        EventKind::ToolResult => {
            let c = match d.get("content") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            let err = if d.get("is_error").and_then(|v| v.as_bool()) == Some(true) {
                " (error)"
            } else {
                ""
            };
            format!("← {}{err}", excerpt(&c, 160))
        }
        EventKind::NeedsInput => format!(
            "? permission for {} {} — answer with `drover send {} --allow` or `--deny`",
            s("tool"),
            excerpt(
                &d.get("input").map(|v| v.to_string()).unwrap_or_default(),
                160
            ),
            e.task_id
        ),
        EventKind::Input => {
            if d.get("behavior").is_some() {
                format!("> {} (by {})", s("behavior"), s("by"))
            } else if d.get("cancelled").is_some() {
                "> request withdrawn".to_string()
            } else {
                format!("> {}", s("message"))
            }
        }
        EventKind::Usage => return None,
        EventKind::Gate => format!(
            "⚑ gate {} → exit {}",
            s("command"),
            d.get("exit_code")
                .map(|v| v.to_string())
                .unwrap_or_default()
        ),
        EventKind::Commit => format!(
            "⎇ committed {} on {}",
            s("commit").chars().take(12).collect::<String>(),
            s("branch")
        ),
        EventKind::Error => format!("! {}", s("message")),
        EventKind::Stderr => format!("stderr: {}", s("line")),
        EventKind::Result => {
            let cost = d
                .get("cost_usd")
                .and_then(|v| v.as_f64())
                .map(|c| format!(" (${c:.4})"))
                .unwrap_or_default();
            format!("✓ result{cost}: {}", excerpt(&s("result"), 300))
        }
    };
    Some(line)
}

#[cfg(test)]
mod usage_tests {
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
