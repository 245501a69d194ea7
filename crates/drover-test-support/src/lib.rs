//! What every drover crate's tests share (dev-dependency only; never linked into `drover`).
//!
//! One module a job; each helper fails the test (panics) with a message saying what did not
//! happen, and every wait has a deadline.
// Test code: a failed set-up step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod agents;
pub mod git;
pub mod http;
pub mod mounts;
pub mod poll;
pub mod process;
pub mod provider;
pub mod sse;
