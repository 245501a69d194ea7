//! The locks area: build locks (`drover lock NAME [--slots N]`) held across every worker of
//! one database — a lock held on one host is held for all (docs/design.md §8).

use async_trait::async_trait;

#[async_trait]
pub trait LockStore: Send + Sync {}
