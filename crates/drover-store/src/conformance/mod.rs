//! Conformance tests, written once against the traits: every implementation runs all of them
//! (SQLite in `tests/sqlite.rs`; a PostgreSQL store the same way) through
//! [`conformance_tests!`](crate::conformance_tests), which turns each into a `#[tokio::test]`
//! given a function that opens a fresh, empty store.
//!
//! Each test takes a fresh store and panics (asserts) when the store breaks a promise of the
//! traits' docs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit;
mod batches;
mod changes;
mod fleet;
mod hosts;
mod locks;
mod metrics;
pub mod pg;
mod pools;
mod tasks;
mod teams;
mod usage;
mod webhooks;

pub use audit::*;
pub use batches::*;
pub use changes::*;
pub use fleet::*;
pub use hosts::*;
pub use locks::*;
pub use metrics::*;
pub use pools::*;
pub use tasks::*;
pub use teams::*;
pub use usage::*;
pub use webhooks::*;

use crate::{NewPool, NewTask, Store, TaskPatch, UsageRow};
use drover_types::{Outcome, TaskState, Verdict};
use serde_json::json;

/// Generates one `#[tokio::test]` per conformance test. `$open` is an async fn returning
/// `(Arc<dyn Store>, guard)`: a fresh, empty store and whatever must live as long as it (a temp
/// dir, a database handle).
#[macro_export]
macro_rules! conformance_tests {
    ($open:path) => {
        $crate::conformance_tests!(@each $open;
            seq_contiguous_under_concurrent_updates,
            state_change_and_event_are_atomic,
            find_by_id_prefix_and_name,
            queue_order_requeue_and_delete,
            list_pages_hold_summaries,
            list_page_filters,
            idempotent_create_makes_one_task,
            events_page_stops_at_a_byte_bound,
            pool_events_are_the_latest,
            patch_fields_round_trip,
            pool_create_get_list,
            pool_launch_never_exceeds_slots_under_concurrency,
            pool_launch_respects_count_and_state,
            pool_stats_come_from_tasks,
            usage_record_is_all_or_none_and_spent_sums,
            usage_report_groups,
            metrics_totals_and_counts,
            teams_and_keys_round_trip,
            audit_log_appends_in_order_and_filters,
            accounting_rows_sum_usage_of_finished_tasks,
            usage_report_by_team_and_tag,
            writes_notify_and_reads_do_not,
            webhook_outbox_fills_once_per_state_event,
            webhook_claims_hold_deliveries,
            lock_is_exclusive_under_concurrency,
            lock_slots_are_first_come_first_served,
            lock_slot_mismatch_is_refused,
            lock_release_worker_frees_its_tickets,
            lock_retries_in_vain_do_not_notify,
            claims_are_exclusive_under_concurrency,
            fenced_writes_of_a_stale_claim_change_nothing,
            heartbeat_renews_only_its_own_tasks,
            workers_are_listed_with_running_and_lapse,
            batch_create_is_all_or_nothing,
            batch_retry_takes_only_the_failed,
            batch_slots_bound_claims,
            fleet_rows_hold_active_and_recent_finished_per_team,
            latest_events_of_many_tasks,
            events_before_pages_backwards,
        );
    };
    (@each $open:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $open().await;
                $crate::conformance::$name(store).await;
            }
        )*
    };
}

/// A minimal queued task.
pub fn new_task(id: &str) -> NewTask {
    NewTask {
        id: id.into(),
        agent: "command".into(),
        repo: "/r".into(),
        base_ref: "HEAD".into(),
        prompt: "p".into(),
        permissions: drover_types::PermissionPolicy::Ask,
        ..Default::default()
    }
}

/// A pool of `slots`, at most `count` tasks.
pub fn new_pool(name: &str, slots: i64, count: Option<i64>) -> NewPool {
    NewPool {
        name: name.into(),
        slots,
        prompt: "do {n}".into(),
        repo: "/r".into(),
        base_ref: "HEAD".into(),
        agent: "command".into(),
        cmd: Some("true".into()),
        permissions: drover_types::PermissionPolicy::Ask,
        count_total: count,
        max_failures: 3,
        verify_rounds: 2,
        failure_policy: drover_types::FailurePolicy::Finish,
        ..Default::default()
    }
}

pub(crate) fn pool_task(pool: &str, id: &str) -> NewTask {
    NewTask {
        pool: Some(pool.into()),
        ..new_task(id)
    }
}

pub(crate) fn usage_row(task: &str, tokens: i64, cost: Option<f64>, at: &str) -> UsageRow {
    UsageRow {
        task_id: task.into(),
        pool: None,
        team: None,
        api: "anthropic".into(),
        model: "m1".into(),
        input_tokens: tokens,
        output_tokens: 2 * tokens,
        cache_read_tokens: 0,
        cache_write_tokens: 1,
        cost_usd: cost,
        stop_reason: Some("end_turn".into()),
        outcome: "ok".into(),
        at: at.into(),
    }
}

/// Ends a task (terminal state, finish time) with an outcome.
pub(crate) async fn finish(
    store: &dyn Store,
    id: &str,
    state: TaskState,
    verdict: Option<Verdict>,
) {
    let outcome = verdict.map(|v| Outcome {
        verdict: v,
        reason: format!("{id} {}", v.as_str()),
        error_kind: None,
    });
    store
        .update(
            id,
            None,
            TaskPatch::new()
                .state(state, json!({}))
                .outcome(outcome.as_ref())
                .finished_at(Some(crate::now())),
            vec![],
        )
        .await
        .unwrap();
}
