//! What every drover crate's tests share (dev-dependency only; never linked into `drover`).
//!
//! - [`daemon`]: an in-process daemon ([`daemon::InProcessDaemon`]).
//! - [`fleet`]: worker processes on one PostgreSQL database, each in its own PID (and network)
//!   namespace ([`fleet::Fleet`]).
//!
//! The other modules, one a job: each helper fails the test (panics) with a message saying what
//! did not happen, and every wait has a deadline.
// Test code: a broken expectation panics (fails the test) with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod agents;
pub mod browser;
pub mod daemon;
pub mod fake_forge;
pub mod fleet;
pub mod forge_tokens;
pub mod git;
pub mod git_server;
pub mod http;
pub mod keys;
pub mod mounts;
pub mod net;
pub mod poll;
pub mod process;
pub mod provider;
pub mod sse;
