//! [`AuditStore`] on SQLite.

use super::SqliteStore;
use crate::audit::AuditStore;

impl AuditStore for SqliteStore {}
