//! Claude CLI calls, job files and output lines for the claude-bg follower.

use drover_types::text::{excerpt, Limit};
use serde_json::{json, Map, Value};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// `--settings` for the dispatch: no worktree isolation (the drover sandbox isolates), and the
/// provider env, which a worker does not inherit from a supervisor started elsewhere. `var`
/// looks up the follower's environment (read at its entry, the binary's edge).
pub fn settings(var: impl Fn(&str) -> Option<String>) -> Value {
    let mut env = Map::new();
    if let Some(url) = var("ANTHROPIC_BASE_URL") {
        env.insert("ANTHROPIC_BASE_URL".into(), json!(url));
        // A background worker is interactive: an ANTHROPIC_API_KEY would wait for approval
        // ("login required"); a gateway takes the token as a bearer token instead.
        if let Some(token) = var("ANTHROPIC_AUTH_TOKEN").or_else(|| var("ANTHROPIC_API_KEY")) {
            env.insert("ANTHROPIC_AUTH_TOKEN".into(), json!(token));
        }
    }
    for k in [
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        "DISABLE_AUTOUPDATER",
    ] {
        if let Some(v) = var(k) {
            env.insert(k.into(), json!(v));
        }
    }
    json!({"worktree": {"bgIsolation": "none"}, "env": env})
}

/// The settings in a file only the user can read (`claude --settings` takes a path): the
/// provider token never appears on a command line, where any local user could read it.
pub fn settings_file(settings: &Value) -> std::io::Result<tempfile::NamedTempFile> {
    let mut file = tempfile::Builder::new()
        .prefix("drover-claude-bg-")
        .suffix(".json")
        .tempfile()?;
    file.write_all(settings.to_string().as_bytes())?;
    file.flush()?;
    Ok(file)
}

pub async fn run(program: &str, args: &[String]) -> std::result::Result<String, String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_remove("CLAUDECODE")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(CLI_TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("{program} {} timed out", args.join(" ")))?
        .map_err(|e| format!("{program}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "exit {}: {}",
            out.status,
            excerpt(err.trim(), Limit::Bytes(500))
        ))
    }
}

/// The short id from `backgrounded · 7c5dcf5d · name`.
pub fn parse_short(out: &str) -> std::result::Result<String, String> {
    out.lines()
        .find(|l| l.contains("backgrounded"))
        .and_then(|l| l.split('·').nth(1))
        .map(str::trim)
        .filter(|s| s.len() == 8 && s.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "no short id in its output: {}",
                excerpt(out.trim(), Limit::Bytes(500))
            )
        })
}

pub fn find_by_name(jobs: &Path, name: &str) -> Option<String> {
    std::fs::read_dir(jobs).ok()?.flatten().find_map(|d| {
        let raw = std::fs::read(d.path().join("state.json")).ok()?;
        let v: Value = serde_json::from_slice(&raw).ok()?;
        (str_of(&v, "name").as_deref() == Some(name))
            .then(|| d.file_name().to_string_lossy().into())
    })
}

pub async fn agent_pid(claude: &str, short: &str) -> Option<i64> {
    let out = run(claude, &["agents".into(), "--json".into(), "--all".into()])
        .await
        .ok()?;
    let list: Vec<Value> = serde_json::from_str(&out).ok()?;
    list.iter()
        .find(|a| a.get("id").and_then(Value::as_str) == Some(short))?
        .get("pid")?
        .as_i64()
}

pub fn stopped(state: &Value) -> bool {
    str_of(state, "state").as_deref() == Some("stopped")
}

/// Whether `pid` is a live process (not a zombie), read through `procfs`.
pub fn alive(pid: i64) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(|p| procfs::process::Process::new(p).ok()?.stat().ok())
        .is_some_and(|s| !matches!(s.state, 'Z' | 'X'))
}

pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Complete lines after `offset`; moves `offset` past them.
pub fn read_new_lines(path: &Path, offset: &mut u64) -> Vec<String> {
    let mut buf = Vec::new();
    let read = std::fs::File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(*offset))?;
        f.read_to_end(&mut buf)
    });
    if read.is_err() {
        return vec![];
    }
    let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
        return vec![];
    };
    *offset += end as u64 + 1;
    buf[..end]
        .split(|&b| b == b'\n')
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .filter(|l| !l.trim().is_empty())
        .collect()
}

pub fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

pub fn emit_raw(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

pub fn emit(v: &Value) {
    emit_raw(&v.to_string());
}

pub fn emit_error(message: &str) {
    emit(&json!({"type": "drover_bg", "event": "error", "message": message}));
}

/// The text blocks of a transcript `assistant` line, if it has any.
pub fn assistant_text(v: &Value) -> Option<String> {
    let texts: Vec<&str> = v
        .pointer("/message/content")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(|b| b.get("text")?.as_str()).collect())
        .unwrap_or_default();
    (!texts.is_empty()).then(|| texts.join("\n"))
}

/// An assistant transcript entry that ends the model's turn: it has text and asks for no tool
/// (nor, where the transcript records it, stopped to use one).
pub fn is_final(v: &Value) -> bool {
    let msg = v.get("message");
    if msg
        .and_then(|m| m.get("stop_reason"))
        .and_then(Value::as_str)
        == Some("tool_use")
    {
        return false;
    }
    let blocks = msg
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .map(|c| c.as_slice())
        .unwrap_or_default();
    let kind = |b: &Value| b.get("type").and_then(Value::as_str).map(str::to_string);
    blocks.iter().any(|b| kind(b).as_deref() == Some("text"))
        && !blocks
            .iter()
            .any(|b| kind(b).as_deref() == Some("tool_use"))
}

/// A transcript `cost-state` line: the session's cost so far and its tokens (input, output,
/// cache read, cache write), summed over models.
pub fn cost_state(v: &Value) -> (Option<f64>, [u64; 4]) {
    let mut totals = [0u64; 4];
    let keys = [
        "inputTokens",
        "outputTokens",
        "cacheReadInputTokens",
        "cacheCreationInputTokens",
    ];
    let models = v.get("modelUsage").and_then(Value::as_object);
    for m in models.into_iter().flat_map(Map::values) {
        for (i, k) in keys.iter().enumerate() {
            totals[i] += m.get(*k).and_then(Value::as_u64).unwrap_or(0);
        }
    }
    (v.get("totalCostUSD").and_then(Value::as_f64), totals)
}

/// A stream-json shaped `result` for a turn that ended with Claude's `state`.
pub fn result_line(
    state: &str,
    text: Option<String>,
    cost: Option<f64>,
    usage: &[u64],
    (session, short): (Option<String>, Option<String>),
) -> Value {
    let ok = state == "done";
    let errors: Vec<String> = if ok {
        vec![]
    } else {
        vec![format!("the background session ended {state}")]
    };
    let n = |i: usize| usage.get(i).copied().unwrap_or(0);
    json!({
        "type": "result", "subtype": if ok { "success" } else { "error_during_execution" },
        "is_error": !ok, "result": text, "total_cost_usd": cost, "errors": errors,
        "session_id": session, "stop_reason": null,
        "usage": {"input_tokens": n(0), "output_tokens": n(1),
                  "cache_read_input_tokens": n(2), "cache_creation_input_tokens": n(3)},
        "drover_bg": {"short": short, "state": state},
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_an_answer_without_a_tool_call_ends_a_turn() {
        let entry = |content: Value, stop: Value| json!({"type": "assistant", "message": {"content": content, "stop_reason": stop}});
        let text = json!([{"type": "text", "text": "done"}]);
        assert!(is_final(&entry(text.clone(), Value::Null)));
        assert!(is_final(&entry(text.clone(), json!("end_turn"))));
        assert!(!is_final(&entry(text, json!("tool_use"))));
        let tool =
            json!([{"type": "text", "text": "let me"}, {"type": "tool_use", "name": "Write"}]);
        assert!(!is_final(&entry(tool, Value::Null)));
        let thinking = json!([{"type": "thinking", "thinking": "hmm"}]);
        assert!(!is_final(&entry(thinking, Value::Null)));
        assert!(!is_final(&json!({"type": "assistant"})));
    }
}

#[cfg(test)]
mod settings_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_token_goes_to_a_file_only_the_user_reads_from_the_lookup_handed_in() {
        let s = settings(|k| match k {
            "ANTHROPIC_BASE_URL" => Some("http://127.0.0.1:9/".into()),
            "ANTHROPIC_AUTH_TOKEN" => Some("drv-secret".into()),
            _ => None,
        });
        assert_eq!(s["env"]["ANTHROPIC_AUTH_TOKEN"], "drv-secret");
        let file = settings_file(&s).unwrap();
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
        let back: Value =
            serde_json::from_str(&std::fs::read_to_string(file.path()).unwrap()).unwrap();
        assert_eq!(back, s);
        assert!(!file.path().to_string_lossy().contains("drv-secret"));
    }
}
