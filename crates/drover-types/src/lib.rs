//! The contract shared by the daemon, the CLI and the adapters.
//!
//! Layout:
//! - [`task`]: a task, its states and its outcome (docs/design.md §3; field names are the public contract).
//! - [`event`]: the normalized, append-only per-task events.
//! - [`api`]: request and error bodies of the daemon's HTTP API.
//! - [`clock`]: task clocks (`--timeout`, `--stall-timeout`): parsing and printing durations.
//! - [`validate`]: input checks shared by the API and the CLI.
//! - [`text`]: cutting text to a byte or character budget ([`excerpt`]).

pub mod api;
pub mod clock;
pub mod event;
pub mod task;
pub mod text;
pub mod validate;

pub use api::*;
pub use event::*;
pub use task::*;
