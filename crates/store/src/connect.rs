//! Opening SQLite or PostgreSQL from a URL with the settings durability needs.

use crate::{Result, StoreError};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Database, Pool, Postgres, Sqlite};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A writer pool and a reader pool. SQLite has one writer connection (its writes are
/// serialised anyway) and several readers; PostgreSQL uses one pool for both.
pub struct Pools<DB: Database> {
    pub writer: Pool<DB>,
    pub reader: Pool<DB>,
}

pub enum Backend {
    Sqlite(Pools<Sqlite>),
    Postgres(Pools<Postgres>),
}

/// A validated `--database-url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite { url: String, path: PathBuf },
    Postgres(String),
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(url: &str) -> Result<Self, String> {
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or("");
            if path.is_empty() {
                return Err("a SQLite URL names a file, e.g. sqlite://muster.db".into());
            }
            return Ok(DatabaseUrl::Sqlite {
                url: url.to_string(),
                path: PathBuf::from(path),
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        Err(format!(
            "{:?} is not a database URL: use sqlite://FILE or postgres://USER:PASSWORD@HOST/DB",
            redact_url(url)
        ))
    }
}

impl DatabaseUrl {
    /// The URL with any password replaced, for messages and logs.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite { url, .. } => url.clone(),
            DatabaseUrl::Postgres(url) => redact_url(url),
        }
    }
}

fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub(crate) async fn connect(url: &DatabaseUrl) -> Result<Backend> {
    match url {
        DatabaseUrl::Sqlite { url, path } => {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("bad SQLite URL {url:?}: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // An acknowledged write survives power loss, not only a crash.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            // The writer walks the busiest indexes: 32 MiB of pages instead of SQLite's 2 MiB.
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone().pragma("cache_size", "-32768"))
                .await
                .map_err(|e| {
                    StoreError::Config(format!(
                        "cannot open SQLite database {}: {e}",
                        path.display()
                    ))
                })?;
            let reader = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options.read_only(true))
                .await?;
            Ok(Backend::Sqlite(Pools { writer, reader }))
        }
        DatabaseUrl::Postgres(raw) => {
            let options = PgConnectOptions::from_str(raw).map_err(|e| {
                StoreError::Config(format!("bad PostgreSQL URL {}: {e}", redact_url(raw)))
            })?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(|e| {
                    StoreError::Config(format!(
                        "cannot connect to PostgreSQL at {}: {e}",
                        redact_url(raw)
                    ))
                })?;
            Ok(Backend::Postgres(Pools {
                writer: pool.clone(),
                reader: pool,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts_urls() {
        assert!(matches!(
            "sqlite://muster.db".parse(),
            Ok(DatabaseUrl::Sqlite { .. })
        ));
        assert!(matches!(
            "postgres://u:p@h/db".parse(),
            Ok(DatabaseUrl::Postgres(_))
        ));
        let err = "mysql://root:hunter2@h/db"
            .parse::<DatabaseUrl>()
            .unwrap_err();
        assert!(
            err.contains("root:***@h") && !err.contains("hunter2"),
            "{err}"
        );
        let url: DatabaseUrl = "postgres://u:secret@h/db".parse().unwrap();
        assert_eq!(url.redacted(), "postgres://u:***@h/db");
    }
}
