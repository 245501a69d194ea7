//! The ledger's writer: one task that stores usage rows and events in the order they were
//! queued, committing the usage rows queued behind each other in one transaction (group
//! commit), so a response never waits for SQLite.

use std::sync::Arc;

use drover_store::{Store, TaskPatch, UsageRow};
use drover_types::NewEvent;
use tokio::sync::{mpsc, oneshot};

use super::Note;

/// At most this many writes are taken off the queue at once.
const MAX_BATCH: usize = 1024;

/// One queued write.
pub enum Write {
    Usage(UsageRow),
    Event {
        task: String,
        event: NewEvent,
        /// A budget refused the task's request: tell the engine once the event is stored.
        budget_exceeded: bool,
    },
    /// Answered once everything queued before it is stored.
    Flush(oneshot::Sender<()>),
    /// Stores everything queued before it, then ends the writer (daemon shutdown).
    Close,
}

/// Runs until every sender of `rx` is gone, or a [`Write::Close`].
pub async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Write>,
    notes: mpsc::UnboundedSender<Note>,
) {
    let mut taken = Vec::with_capacity(MAX_BATCH);
    let mut rows = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut taken, MAX_BATCH).await > 0 {
        for w in taken.drain(..) {
            match w {
                Write::Usage(row) => rows.push(row),
                Write::Event {
                    task,
                    event,
                    budget_exceeded,
                } => {
                    commit(&*store, &mut rows).await;
                    if let Err(e) = store
                        .update(&task, None, TaskPatch::new(), vec![event])
                        .await
                    {
                        tracing::error!(task = task.as_str(), "ledger event: {e}");
                    }
                    if budget_exceeded {
                        let _ = notes.send(Note::BudgetExceeded(task));
                    }
                }
                Write::Flush(done) => {
                    commit(&*store, &mut rows).await;
                    let _ = done.send(());
                }
                Write::Close => {
                    commit(&*store, &mut rows).await;
                    return;
                }
            }
        }
        commit(&*store, &mut rows).await;
    }
}

/// Stores `rows` in one transaction; if that fails (e.g. one row's task was removed), each on
/// its own, so one bad row does not cost the others.
async fn commit(store: &dyn Store, rows: &mut Vec<UsageRow>) {
    if rows.is_empty() {
        return;
    }
    if let Err(e) = store.record_usage(rows).await {
        if rows.len() == 1 {
            tracing::error!(task = rows[0].task_id.as_str(), "ledger record: {e}");
        } else {
            for row in rows.iter() {
                if let Err(e) = store.record_usage(std::slice::from_ref(row)).await {
                    tracing::error!(task = row.task_id.as_str(), "ledger record: {e}");
                }
            }
        }
    }
    rows.clear();
}
