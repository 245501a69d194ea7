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
    if !t.protect.is_empty() {
        kv("protect", t.protect.join(" "));
    }
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
    kv("clocks", clocks(t));
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

/// `timeout 10m (at …) · stall 30m · stopping (TERM sent)`.
fn clocks(t: &Task) -> String {
    let fmt = |v: Option<u64>| v.map_or("none".into(), drover_types::clock::format_secs);
    let mut s = format!("timeout {}", fmt(t.timeout_secs));
    if let (Some(at), false) = (&t.timeout_at, t.state.is_terminal()) {
        s.push_str(&format!(" (at {at})"));
    }
    s.push_str(&format!(" · stall {}", fmt(t.stall_timeout_secs)));
    if let (Some(step), false) = (&t.stop_step, t.state.is_terminal()) {
        s.push_str(&format!(" · stopping ({step} sent)"));
    }
    s
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
            } else if d.get("stop").is_some() {
                format!("■ stop: {} (by {})", s("stop"), s("by"))
            } else {
                format!("> {}", s("message"))
            }
        }
        EventKind::Usage => return None,
        EventKind::Gate => format!(
            "⚑ gate {} → exit {}{}",
            s("command"),
            d.get("exit_code")
                .map(|v| v.to_string())
                .unwrap_or_default(),
            match d["protect"]["restored"].as_array() {
                Some(r) if !r.is_empty() => format!(" (saw {} protected paths at base)", r.len()),
                _ => String::new(),
            }
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
