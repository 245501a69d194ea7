//! Build locks on SQLite.

use super::SqliteStore;
use crate::locks::LockStore;

impl LockStore for SqliteStore {}
