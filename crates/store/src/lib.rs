//! Muster's persistence: one [`Store`] over SQLite (embedded default) or PostgreSQL,
//! chosen by URL. Each domain has a module whose queries are written once
//! (`<domain>/sql.rs`) and compiled for both databases; the same migration versions
//! live in `migrations/sqlite` and `migrations/postgres`.
//!
//! The store executes decisions the domain made; it never decides policy.

pub mod audit;
pub mod auth;
pub mod catalog;
pub mod changes;
mod connect;
pub mod incidents;
pub mod notify;
pub mod oncall;
pub mod renewals;
pub mod secrets;
pub mod signals;

pub use connect::{Backend, DatabaseUrl, Pools};
use muster_domain::catalog::apply::Refusal;
use muster_domain::clock::Clock;
use secrets::SecretBox;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(muster_domain::FieldErrors),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Config(String),
    /// Contention that outlasted the retries: transient, the caller may try again.
    #[error("{0}")]
    Busy(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The database, the secret key and the clock every write is stamped with.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    secrets: SecretBox,
    clock: Clock,
    catalog_cache: tokio::sync::RwLock<Option<Arc<catalog::CatalogSnapshot>>>,
    integration_keys: signals::KeyCache,
    ingest_queue: signals::IngestQueue,
    latest_alerts: signals::LatestIndex,
    grouping_progress: incidents::GroupingProgress,
}

impl Store {
    /// Opens (and creates, for SQLite) the database at `url` and brings its schema up
    /// to date.
    pub async fn open(url: &DatabaseUrl, secrets: SecretBox, clock: Clock) -> Result<Store> {
        let backend = connect::connect(url).await?;
        let store = Store {
            inner: Arc::new(Inner {
                backend,
                secrets,
                clock,
                catalog_cache: Default::default(),
                integration_keys: Default::default(),
                ingest_queue: Default::default(),
                latest_alerts: Default::default(),
                grouping_progress: Default::default(),
            }),
        };
        store.migrate().await?;
        store.check_secret_key().await?;
        Ok(store)
    }

    /// Records the secret key's fingerprint on first use and refuses another key after:
    /// secrets sealed with two keys could never all be opened again.
    async fn check_secret_key(&self) -> Result<()> {
        const RECORD: &str = "INSERT INTO secret_key_check (id, fingerprint) VALUES (1, $1) ON CONFLICT (id) DO NOTHING";
        const READ: &str = "SELECT fingerprint FROM secret_key_check WHERE id = 1";
        let fingerprint = self.inner.secrets.fingerprint();
        let recorded: String = match &self.inner.backend {
            Backend::Sqlite(p) => {
                sqlx::query(RECORD)
                    .bind(fingerprint)
                    .execute(&p.writer)
                    .await?;
                sqlx::query_scalar(READ).fetch_one(&p.writer).await?
            }
            Backend::Postgres(p) => {
                sqlx::query(RECORD)
                    .bind(fingerprint)
                    .execute(&p.writer)
                    .await?;
                sqlx::query_scalar(READ).fetch_one(&p.writer).await?
            }
        };
        if recorded != fingerprint {
            return Err(StoreError::Config(
                "the secret key file is not the one this database's secrets are sealed with; \
                 start Muster with the original key file (--secret-key-file)"
                    .into(),
            ));
        }
        Ok(())
    }

    pub async fn migrate(&self) -> Result<()> {
        match &self.inner.backend {
            Backend::Sqlite(p) => sqlx::migrate!("./migrations/sqlite").run(&p.writer).await?,
            Backend::Postgres(p) => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&p.writer)
                    .await?
            }
        }
        Ok(())
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Now, in Unix milliseconds, from the injectable clock.
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now().as_millisecond()
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        match &self.inner.backend {
            Backend::Sqlite(p) => _ = sqlx::query("SELECT 1").execute(&p.reader).await?,
            Backend::Postgres(p) => _ = sqlx::query("SELECT 1").execute(&p.reader).await?,
        }
        Ok(())
    }

    /// Connection pool figures for `/metrics`: (pool, size, idle).
    pub fn pool_stats(&self) -> Vec<(&'static str, u32, usize)> {
        match &self.inner.backend {
            Backend::Sqlite(p) => vec![
                ("writer", p.writer.size(), p.writer.num_idle()),
                ("reader", p.reader.size(), p.reader.num_idle()),
            ],
            Backend::Postgres(p) => vec![("main", p.writer.size(), p.writer.num_idle())],
        }
    }

    pub async fn close(&self) {
        match &self.inner.backend {
            Backend::Sqlite(p) => {
                // Readers first, then fold the WAL into the database file, so the file
                // alone is complete after a clean stop.
                p.reader.close().await;
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&p.writer)
                    .await
                {
                    tracing::warn!(error = %e, "could not checkpoint the WAL at shutdown");
                }
                p.writer.close().await;
            }
            Backend::Postgres(p) => p.writer.close().await,
        }
    }
}

/// Marks SQL text built with `format!` as safe. Only constants (table names from
/// [`muster_domain::catalog::Kind`], column lists, dialect suffixes) are ever formatted
/// in; every value is bound as a parameter.
pub(crate) fn trusted(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

/// `count` parameter placeholders numbered from `from`: `?` when `anonymous`, else `$N`.
/// `rows` parenthesised groups of `width` placeholders, numbered on from 1: the
/// `VALUES` of a multi-row statement.
pub(crate) fn value_row_list(anonymous: bool, rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholder_list(anonymous, r * width + 1, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn placeholder_list(anonymous: bool, from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| {
            if anonymous {
                "?".to_string()
            } else {
                format!("${i}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Calls the same-named query function compiled for the store's database.
macro_rules! dispatch {
    ($store:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match &$store.inner.backend {
            $crate::Backend::Sqlite(p) => sqlite::$f(p, $($arg),*).await,
            $crate::Backend::Postgres(p) => postgres::$f(p, $($arg),*).await,
        }
    };
}
pub(crate) use dispatch;

/// Compiles a domain's query file once per database. Inside it, `DB` is the database,
/// `LOCK` the row-lock suffix (` FOR UPDATE` on PostgreSQL; SQLite's write
/// transactions are exclusive already) and `BEGIN_WRITE` the statement that opens a
/// write transaction (`BEGIN IMMEDIATE` on SQLite, so a write never fails on lock
/// upgrade while another process holds the file) and `BEGIN_SNAPSHOT` a read
/// transaction that sees one consistent state, and `SKIP_LOCKED` the suffix that lets
/// several deliverers claim different rows at once on PostgreSQL. `ANONYMOUS_PARAMETERS`:
/// statements with hundreds of parameters use `?` on SQLite, whose lookup of numbered
/// ones (`$N`) is linear per parameter. `audit_sql` is the audit trail's
/// queries for the same database, for appending inside a write transaction.
macro_rules! per_dialect {
    ($file:literal) => {
        #[allow(dead_code)]
        pub(crate) mod sqlite {
            use super::*;
            #[allow(unused_imports)]
            use crate::trusted;
            type DB = sqlx::Sqlite;
            const LOCK: &str = "";
            const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
            const BEGIN_SNAPSHOT: &str = "BEGIN";
            const SKIP_LOCKED: &str = "";
            const ANONYMOUS_PARAMETERS: bool = true;
            #[allow(unused_imports)]
            use crate::audit::sqlite as audit_sql;
            #[allow(unused_imports)]
            use crate::incidents::sqlite as incidents_sql;
            #[allow(unused_imports)]
            use crate::notify::sqlite as notify_sql;
            /// `count` parameter placeholders numbered from `from`, comma-separated.
            #[allow(dead_code)]
            fn placeholders(from: usize, count: usize) -> String {
                crate::placeholder_list(ANONYMOUS_PARAMETERS, from, count)
            }
            #[allow(dead_code)]
            fn value_rows(rows: usize, width: usize) -> String {
                crate::value_row_list(ANONYMOUS_PARAMETERS, rows, width)
            }
            include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/", $file));
        }
        #[allow(dead_code)]
        pub(crate) mod postgres {
            use super::*;
            #[allow(unused_imports)]
            use crate::trusted;
            type DB = sqlx::Postgres;
            const LOCK: &str = " FOR UPDATE";
            const BEGIN_WRITE: &str = "BEGIN";
            const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
            const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
            const ANONYMOUS_PARAMETERS: bool = false;
            #[allow(unused_imports)]
            use crate::audit::postgres as audit_sql;
            #[allow(unused_imports)]
            use crate::incidents::postgres as incidents_sql;
            #[allow(unused_imports)]
            use crate::notify::postgres as notify_sql;
            /// `count` parameter placeholders numbered from `from`, comma-separated.
            #[allow(dead_code)]
            fn placeholders(from: usize, count: usize) -> String {
                crate::placeholder_list(ANONYMOUS_PARAMETERS, from, count)
            }
            #[allow(dead_code)]
            fn value_rows(rows: usize, width: usize) -> String {
                crate::value_row_list(ANONYMOUS_PARAMETERS, rows, width)
            }
            include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/", $file));
        }
    };
}
pub(crate) use per_dialect;
