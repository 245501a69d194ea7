//! # drover-fake-provider
//!
//! A scriptable fake of the Anthropic Messages API, used by drover's tests and offline demo in
//! place of `api.anthropic.com`. Point a real agent at it with
//! `ANTHROPIC_BASE_URL=http://127.0.0.1:PORT ANTHROPIC_API_KEY=anything`.
//!
//! ## Endpoints
//!
//! - `POST /v1/messages` — streaming (`"stream": true`, SSE: `message_start`, `ping`,
//!   `content_block_start`/`content_block_delta` (`text_delta`, `input_json_delta`)/
//!   `content_block_stop`, `message_delta` with `stop_reason` and usage, `message_stop`) or a
//!   non-streaming `Message` JSON. A query string (Claude Code sends `?beta=true`) is ignored.
//! - `POST /v1/messages/count_tokens` — `{"input_tokens": N}` (about one token per 4 bytes).
//! - `POST /v1/chat/completions`, `POST /v1/responses` — the same scenarios in OpenAI's formats
//!   (text → assistant text, tool_use → function call; see the README and `openai.rs`).
//! - `GET /_fake/log` — the [`RequestRecord`]s served so far (JSON array); `DELETE` clears it.
//! - `GET /_fake/health` — `{"ok":true}`.
//! - `GET /_fake/holds`, `POST /_fake/release/{name}` — held turns (see [`hold`]).
//!
//! Any non-empty key is accepted (`x-api-key`, or `Authorization: Bearer`); a request without one
//! gets 401 `authentication_error`. Errors use Anthropic's shape
//! `{"type":"error","error":{"type":…,"message":…},"request_id":…}`.
//!
//! ## Scenario file
//!
//! ```json
//! {
//!   "scenarios": [
//!     { "name": "hello", "match": "HELLO",
//!       "turns": [
//!         { "content": [ {"type": "text", "text": "Writing it."},
//!                        {"type": "tool_use", "name": "Write",
//!                         "input": {"file_path": "HELLO.txt", "content": "hi\n"}} ],
//!           "usage": {"input": 1200, "output": 40, "cache_read": 0, "cache_creation": 900},
//!           "fail_first": [ {"status": 429, "retry_after": 1}, {"drop": "mid_stream"} ] },
//!         { "content": [ {"type": "text", "text": "SUCCESS"} ], "delay_ms": 200 }
//!       ] },
//!     { "name": "loop", "match": "FOREVER",
//!       "turns": [ { "content": [ {"type": "tool_use", "name": "Bash",
//!                                   "input": {"command": "sleep 1"}} ],
//!                    "repeat": true } ] },
//!     { "name": "default", "turns": [ { "content": [ {"type": "text", "text": "hello"} ] } ] }
//!   ],
//!   "side_text": "ok"
//! }
//! ```
//!
//! - **Selection**: a request belongs to the first scenario whose `match` substring occurs in the
//!   text of the request's *first* `user` message, else to the scenario named `default`.
//! - **Turn index** (stateless): the number of `assistant` messages already in `messages`. So
//!   concurrent sessions, retries and resumed sessions all get the right turn. The placeholder
//!   assistant message `"No response requested."` that Claude Code inserts when it resumes an
//!   interrupted turn is not counted, so the interrupted turn is played again. Claude Code also
//!   turns a `stop_reason: "max_tokens"` answer into a recovery request that carries the cut
//!   answer, so that request asks for the next turn.
//! - **Turn** fields: `content` (blocks `{"type":"text","text"}` and
//!   `{"type":"tool_use","name","input","id"?}`; ids are generated when absent); `stop_reason`
//!   (default `tool_use` if a tool_use block is present, else `end_turn`; e.g. `"max_tokens"`);
//!   `usage` (`input`=100, `output`=20, `cache_read`=0, `cache_creation`=0 by default; the API
//!   names `input_tokens`, … are accepted too); `delay_ms` (before the response headers);
//!   `chunk_delay_ms` (between SSE events); `fail_first`; `repeat` (last turn only: play it
//!   forever); `hold` (a name: the answer waits until the test releases it, see [`hold`]) and
//!   `hold_timeout_ms`.
//! - **Past the last turn**: the scenario's `after_last` turn if given, else text `"done"`,
//!   `end_turn`.
//! - **Failures**: `fail_first[N-1]` answers the N-th attempt at a (scenario, turn index, hash of
//!   the first user message); later attempts succeed. Entries: `{"status":429,"retry_after":1}`
//!   (`rate_limit_error` with a `retry-after` header), `{"status":529}` (`overloaded_error`),
//!   `{"status":500}` (`api_error`), any other status (`error_type`/`message` optional),
//!   `{"drop":"before_headers"}` (connection closed with no answer), `{"drop":"mid_stream"}`
//!   (200, `message_start` and the first delta of the first block, then the connection is cut),
//!   `{"stream_error":"overloaded_error"}` (200 stream ending in `event: error`).
//! - **Side requests**: a request with no (or an empty) `tools` array — Claude Code's title and
//!   summary calls — never consumes the script or an attempt: it gets `side_text` (default
//!   `"ok"`) and is logged with `side: true`.
//!
//! Set `DROVER_FAKE_PROVIDER_DUMP_DIR` to dump each request (headers without keys, body) as JSON.

mod handlers;
pub mod hold;
mod openai;
mod record;
mod request;
mod response;
mod scenario;
mod server;

#[cfg(test)]
mod tests;

pub use hold::{HoldEnd, HoldState, Holds};
pub use record::{AnswerKind, RequestRecord};
pub use request::RequestInfo;
pub use scenario::{
    Block, DropKind, FailSpec, Failure, Scenario, ScenarioSet, Turn, Usage, UsageSpec,
    DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS, DEFAULT_SCENARIO,
};
pub use server::{run_cli, serve, FakeProvider, RunningProvider, DUMP_DIR_ENV};

/// Errors of loading scenarios and serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read scenario file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid scenario JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid scenario: {0}")]
    Invalid(String),
    #[error("cannot bind: {0}")]
    Bind(std::io::Error),
    #[error("i/o error: {0}")]
    Io(std::io::Error),
}
