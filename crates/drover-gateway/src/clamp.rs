//! Lowering a request's output cap in its body, when a budget affords less than it asked for.

use bytes::Bytes;
use serde_json::Value;

use crate::budget::MIN_OUTPUT;
use crate::errors::GatewayError;

/// The output-cap fields of the three APIs: Anthropic / Chat (old), Chat, Responses.
const CAP_FIELDS: &[&str] = &["max_tokens", "max_completion_tokens", "max_output_tokens"];

/// `body` with every output-cap field set to `cap`. An Anthropic `thinking.budget_tokens` at or
/// above the new cap is lowered to half of it, or `thinking` is dropped when that half would be
/// under the API's minimum ([`MIN_OUTPUT`], 1,024 tokens).
pub fn lower_output_cap(body: &[u8], cap: u64) -> Result<Bytes, GatewayError> {
    let mut v: Value = serde_json::from_slice(body)?;
    let Some(o) = v.as_object_mut() else {
        return Ok(Bytes::copy_from_slice(body));
    };
    for f in CAP_FIELDS {
        if o.get(*f).is_some_and(Value::is_u64) {
            o.insert((*f).to_string(), Value::from(cap));
        }
    }
    let thinking = o
        .get("thinking")
        .and_then(|t| t.get("budget_tokens"))
        .and_then(Value::as_u64);
    if let Some(budget) = thinking.filter(|&b| b >= cap) {
        let lowered = (cap / 2).min(budget);
        if lowered >= MIN_OUTPUT {
            if let Some(t) = o.get_mut("thinking").and_then(Value::as_object_mut) {
                t.insert("budget_tokens".into(), Value::from(lowered));
            }
        } else {
            o.remove("thinking");
        }
    }
    Ok(Bytes::from(serde_json::to_vec(&v)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lower(v: Value, cap: u64) -> Value {
        let b = lower_output_cap(&serde_json::to_vec(&v).unwrap(), cap).unwrap();
        serde_json::from_slice(&b).unwrap()
    }

    #[test]
    fn thinking_is_halved_or_dropped_below_the_minimum() {
        let body =
            json!({"max_tokens": 128000, "thinking": {"type": "enabled", "budget_tokens": 31999}});
        let v = lower(body.clone(), 20000);
        assert_eq!(v["max_tokens"], 20000);
        assert_eq!(v["thinking"]["budget_tokens"], 10000);
        let v = lower(body, 2047);
        assert_eq!(v["max_tokens"], 2047);
        assert!(v.get("thinking").is_none());
        // A thinking budget already under the new cap stays.
        let v = lower(
            json!({"max_tokens": 9000, "thinking": {"type": "enabled", "budget_tokens": 2000}}),
            5000,
        );
        assert_eq!(v["thinking"]["budget_tokens"], 2000);
    }

    #[test]
    fn openai_fields_are_lowered_and_absent_ones_not_added() {
        let v = lower(json!({"max_completion_tokens": 64000}), 3000);
        assert_eq!(v["max_completion_tokens"], 3000);
        assert!(v.get("max_tokens").is_none());
        let v = lower(json!({"max_output_tokens": 64000}), 3000);
        assert_eq!(v["max_output_tokens"], 3000);
    }
}
