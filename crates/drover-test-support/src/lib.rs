//! What every drover crate's tests share (dev-dependency only; never linked into `drover`).
//!
//! - [`daemon`]: an in-process daemon ([`daemon::InProcessDaemon`]).
//!
//! Test code: a broken expectation panics (fails the test) with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod daemon;
