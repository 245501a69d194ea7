//! Reading server-sent events from a whole response body.

use serde_json::Value;

/// SSE text as `(event name or "", data)` pairs, one per event.
pub fn frames(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter(|c| !c.trim().is_empty())
        .map(|chunk| {
            let field = |name: &str| {
                chunk
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or("")
                    .to_string()
            };
            (field("event: "), field("data: "))
        })
        .collect()
}

/// [`frames`] whose every event has a name and JSON data (fails the test otherwise).
pub fn json_frames(text: &str) -> Vec<(String, Value)> {
    frames(text)
        .into_iter()
        .map(|(event, data)| {
            assert!(!event.is_empty(), "an SSE event without a name: {data}");
            let data = serde_json::from_str(&data)
                .unwrap_or_else(|e| panic!("SSE data of {event} is not JSON ({e}): {data}"));
            (event, data)
        })
        .collect()
}
