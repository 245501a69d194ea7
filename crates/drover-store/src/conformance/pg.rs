//! A fresh PostgreSQL database per test, on the throwaway cluster `scripts/test.sh` starts
//! (`start_postgres` in `scripts/lib.sh`), named by `DROVER_TEST_DATABASE_URL`. Without that
//! variable the test fails saying how to get one: a PostgreSQL test never passes silently.

use sqlx::Connection;

/// The variable naming the test cluster's admin database.
pub const ENV: &str = "DROVER_TEST_DATABASE_URL";

/// The admin URL, or a panic saying how to get one.
pub fn admin_url() -> String {
    match std::env::var(ENV) {
        Ok(u) if !u.is_empty() => u,
        _ => panic!(
            "{ENV} is not set: this test needs PostgreSQL. Run scripts/test.sh (it starts a \
             throwaway cluster), or `source scripts/lib.sh && start_postgres` in your shell first"
        ),
    }
}

/// Creates an empty database with a fresh name and returns its URL.
pub async fn fresh_database() -> String {
    let admin = admin_url();
    let name = format!("drover_t_{:016x}", rand_u64());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("{ENV}: cannot connect: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let _ = conn.close().await;
    match admin.rfind('/') {
        Some(i) => format!("{}/{name}", &admin[..i]),
        None => panic!("{ENV} = {admin:?}: expected postgres://…/DATABASE"),
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    h.finish()
}
