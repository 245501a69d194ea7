//! The store's typed errors.

use drover_types::TaskState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no task matches {0:?}")]
    NotFound(String),
    #[error("no pool named {0:?}")]
    PoolNotFound(String),
    #[error("no batch named {0:?}")]
    BatchNotFound(String),
    #[error("no team named {0:?}")]
    TeamNotFound(String),
    #[error("no API key with id {0:?}")]
    KeyNotFound(String),
    #[error("{0:?} is already in use")]
    Exists(String),
    #[error("{0:?} matches several tasks: {1}")]
    Ambiguous(String, String),
    #[error("the task id is empty")]
    EmptyId,
    #[error("task {id} is {actual}, expected one of {expected}")]
    WrongState {
        id: String,
        actual: TaskState,
        expected: String,
    },
    /// A write carrying a [`Fence`](crate::record::Fence) found the task held by another claim.
    #[error("task {id} is no longer held by worker {worker} attempt {attempt} (now {holder})")]
    Fenced {
        id: String,
        worker: String,
        attempt: i64,
        /// Who holds it now: `worker NAME attempt N`, or `nobody`.
        holder: String,
    },
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
    /// The PostgreSQL database cannot be reached (`at` is host:port: never the password).
    #[error("store: cannot connect to the database at {at}: {reason}")]
    Connect { at: String, reason: String },
    #[error("store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store holds bad data: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Now, as the store writes times: RFC 3339, milliseconds, UTC.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
