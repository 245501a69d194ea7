//! The judge: where structured signals say the agent finished cleanly, a model reads the prompt,
//! the final message, the gate results and the diff summary and returns `{verdict, reason}`
//! through a forced tool call (structured output, never a regex over prose). It can only confirm
//! or lower a success; a failed gate or a failed run never becomes a success here.

use drover_types::{Outcome, Verdict};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

pub struct JudgeInput<'a> {
    pub model: &'a str,
    pub prompt: &'a str,
    pub final_message: &'a str,
    pub gates: &'a [Value],
    pub diff_summary: &'a str,
    /// Base URL and key: the gateway and the task's token when the gateway is on, else the
    /// daemon's configured Anthropic endpoint and key (`Config::direct_judge_endpoint`); `None`:
    /// no key, no judge.
    pub endpoint: Option<(String, String)>,
}

const SYSTEM: &str =
    "You are drover's judge. A coding agent was given a task and has finished. Decide \
whether it achieved the task, from its final message, the quality gates that ran, and the diff it \
left. success: the task is done. soft_fail: the agent finished but the task is not (fully) done, \
or it reports a problem. fail: it clearly failed. Call record_verdict exactly once.";

/// The input of the `record_verdict` tool: what the judge answers. The tool's `input_schema`
/// is generated from this type ([`verdict_schema`]), so the two cannot drift apart.
#[derive(Debug, Deserialize, JsonSchema)]
struct RecordVerdict {
    verdict: Verdict,
    /// One sentence: why.
    // A call without one still counts (as it always has); the schema asks for it.
    #[serde(default)]
    #[schemars(required, transform = no_default)]
    reason: String,
}

/// The schema asks for a value, it offers none.
fn no_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

/// [`RecordVerdict`]'s JSON schema, inline (no `$ref`s, no meta-schema or title).
fn verdict_schema() -> Value {
    // The model writes this input: the schema of what is to be produced (a field with a
    // serde default is still asked for).
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<RecordVerdict>().to_value();
    if let Some(o) = schema.as_object_mut() {
        o.remove("title");
        o.remove("description");
    }
    schema
}

fn request(input: &JudgeInput) -> Value {
    let gates = if input.gates.is_empty() {
        "none".to_string()
    } else {
        input
            .gates
            .iter()
            .map(|g| {
                format!(
                    "- `{}` exit {}",
                    g["command"].as_str().unwrap_or(""),
                    g["exit_code"]
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let user = format!(
        "Task prompt:\n{}\n\nAgent's final message:\n{}\n\nQuality gates:\n{}\n\nDiff summary:\n{}\n",
        input.prompt, input.final_message, gates, input.diff_summary
    );
    json!({
        "model": input.model,
        "max_tokens": 1024,
        "system": SYSTEM,
        "tools": [{
            "name": "record_verdict",
            "description": "Record the verdict on the agent's work.",
            "input_schema": verdict_schema(),
        }],
        "tool_choice": { "type": "tool", "name": "record_verdict" },
        "messages": [{ "role": "user", "content": user }]
    })
}

/// Asks the judge. `Err` carries a message for an `error` event; the caller keeps the structured
/// outcome then.
pub async fn judge(input: &JudgeInput<'_>) -> Result<Outcome, String> {
    let (base, key) = input
        .endpoint
        .clone()
        .ok_or_else(|| "no ANTHROPIC_API_KEY for the judge".to_string())?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| format!("judge client: {e}"))?;
    let url = format!("{}/v1/messages", base.trim_end_matches('/'));
    let resp = client
        .post(&url)
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&request(input))
        .send()
        .await
        .map_err(|e| format!("judge request to {url}: {e}"))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .map_err(|e| format!("judge answer: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "judge answered {status}: {}",
            body["error"]["message"].as_str().unwrap_or("")
        ));
    }
    parse(&body)
}

/// The verdict from a Messages API answer: the `record_verdict` tool call's input.
pub fn parse(body: &Value) -> Result<Outcome, String> {
    let call = body["content"]
        .as_array()
        .and_then(|c| {
            c.iter()
                .find(|b| b["type"] == "tool_use" && b["name"] == "record_verdict")
        })
        .ok_or("the judge did not call record_verdict")?;
    let RecordVerdict { verdict, reason } = RecordVerdict::deserialize(&call["input"])
        .map_err(|e| format!("judge: record_verdict: {e}"))?;
    Ok(Outcome {
        verdict,
        reason: format!("judge: {reason}"),
        error_kind: None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_the_forced_tool_call_and_nothing_else() {
        let body = json!({"content": [
            {"type": "text", "text": "verdict: success"},
            {"type": "tool_use", "name": "record_verdict", "input": {"verdict": "soft_fail", "reason": "build failed"}}
        ]});
        let o = parse(&body).unwrap();
        assert_eq!(o.verdict, Verdict::SoftFail);
        assert!(o.reason.contains("build failed"));
        // Prose alone decides nothing.
        assert!(parse(&json!({"content": [{"type": "text", "text": "success"}]})).is_err());
        let bad = json!({"content": [{"type": "tool_use", "name": "record_verdict", "input": {"verdict": "great"}}]});
        assert!(parse(&bad).is_err());
        // A verdict without a reason still counts.
        let bare = json!({"content": [{"type": "tool_use", "name": "record_verdict", "input": {"verdict": "fail"}}]});
        assert_eq!(parse(&bare).unwrap().verdict, Verdict::Fail);
    }

    /// The schema generated from `RecordVerdict` is the one the judge has always been given.
    #[test]
    fn the_tool_schema_comes_from_the_type() {
        assert_eq!(
            verdict_schema(),
            json!({
                "type": "object",
                "properties": {
                    "verdict": { "type": "string", "enum": ["success", "soft_fail", "fail"] },
                    "reason": { "type": "string", "description": "One sentence: why." }
                },
                "required": ["verdict", "reason"]
            })
        );
        let r = request(&JudgeInput {
            model: "m",
            prompt: "p",
            final_message: "f",
            gates: &[],
            diff_summary: "d",
            endpoint: None,
        });
        assert_eq!(r["tools"][0]["input_schema"], verdict_schema());
    }

    #[test]
    fn the_request_forces_the_tool_and_carries_the_evidence() {
        let gates = [json!({"command": "cargo test", "exit_code": 0})];
        let r = request(&JudgeInput {
            model: "m",
            prompt: "deploy it",
            final_message: "deployed to https://x",
            gates: &gates,
            diff_summary: "1 file changed",
            endpoint: None,
        });
        assert_eq!(r["tool_choice"]["name"], "record_verdict");
        let text = r["messages"][0]["content"].as_str().unwrap();
        for needle in [
            "deploy it",
            "deployed to https://x",
            "cargo test",
            "1 file changed",
        ] {
            assert!(text.contains(needle), "{needle}");
        }
    }
}
