//! The PostgreSQL store: the conformance suite on a fresh database per test (the cluster of
//! `scripts/test.sh`; see `drover_store::conformance::pg`), and what only a shared store has.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use drover_store::conformance::pg;
use drover_store::prelude::*;
use drover_store::PgStore;
use std::sync::Arc;

async fn open() -> (Arc<dyn Store>, ()) {
    let url = pg::fresh_database().await;
    (Arc::new(PgStore::open(&url).await.unwrap()), ())
}

drover_store::conformance_tests!(open);
