//! Build locks on PostgreSQL.

use super::PgStore;
use crate::locks::LockStore;

impl LockStore for PgStore {}
