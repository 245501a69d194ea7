//! The contract shared by the daemon, the CLI and the adapters.
//!
//! Layout:
//! - [`task`]: a task, its states and its outcome (docs/design.md §3; field names are the public contract).
//! - [`event`]: the normalized, append-only per-task events.
//! - [`api`]: request and error bodies of the daemon's HTTP API.
//! - [`batch`]: batches (one task per repository, grouped): request, views, name rule.
//! - [`clock`]: task clocks (`--timeout`, `--stall-timeout`): parsing and printing durations.
//! - [`team`]: the team server's teams, API keys and scopes, audit records and accounting rows
//!   (docs/design.md §7).
//! - [`validate`]: input checks shared by the API and the CLI.
//! - [`text`]: cutting text to a byte or character budget ([`excerpt`]).
//! - [`vocab`]: the closed sets (permission policy, stop reason, pool state, …) as enums, each
//!   written as the same string on the wire, in the database and on the command line.

#[macro_use]
pub mod vocab;
pub mod api;
pub mod batch;
pub mod clock;
pub mod event;
pub mod forge;
pub mod secret;
pub mod task;
pub mod team;
pub mod text;
pub mod usage;
pub mod validate;
pub mod web;

pub use api::*;
pub use batch::{check_batch_name, BatchRepo, BatchRequest, BatchRetried, BatchState, BatchView};
pub use event::*;
pub use forge::{PrInfo, PrOptions, PrState, TaskRepo};
pub use secret::Secret;
pub use task::*;
pub use team::*;
pub use usage::{BadUsageBy, UsageBy};
pub use vocab::*;
pub use web::{
    DiffFileStat, DiffPatch, DiffStatus, FleetCard, FleetGroup, FleetSnapshot, TaskDiff, WebLogin,
    WebSession,
};
