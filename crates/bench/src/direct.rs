//! Direct access to a benchmark's database.

use crate::progress;
use anyhow::{Context, bail};
use sqlx::sqlite::SqliteConnectOptions;
use std::path::Path;
use std::time::{Duration, Instant};

/// Longest `wait_for` waits (for the joins, and for the escalations) before giving up.
const WAIT_LIMIT: Duration = Duration::from_secs(600);

/// A connection to a benchmark's database beside Muster: to read figures, or to load
/// fixtures faster than the API would.
pub enum Direct {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Direct {
    pub async fn open(
        database_url: &str,
        sqlite_file: &Path,
        read_only: bool,
    ) -> anyhow::Result<Direct> {
        Ok(if database_url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::new()
                .filename(sqlite_file)
                .read_only(read_only)
                .busy_timeout(Duration::from_secs(30));
            Direct::Sqlite(sqlx::SqlitePool::connect_with(options).await?)
        } else {
            Direct::Postgres(sqlx::PgPool::connect(database_url).await?)
        })
    }

    /// The first column of every row.
    pub async fn numbers(&self, sql: &'static str) -> anyhow::Result<Vec<i64>> {
        Ok(match self {
            Direct::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await?,
            Direct::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await?,
        })
    }

    pub async fn count(&self, sql: &'static str) -> anyhow::Result<i64> {
        self.numbers(sql)
            .await?
            .first()
            .copied()
            .context("a count has a row")
    }

    /// Waits until `sql` counts `goal` (or more), showing progress.
    pub async fn wait_for(&self, label: &str, sql: &'static str, goal: i64) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let done = self.count(sql).await?.min(goal);
            progress(label, done as usize, goal as usize);
            if done >= goal {
                return Ok(());
            }
            if started.elapsed() > WAIT_LIMIT {
                eprintln!();
                bail!("{label}: {done} of {goal} after {} s", WAIT_LIMIT.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Runs a statement Muster's own code never would (fixtures), composed by the
    /// benchmark from its own numbers.
    pub async fn execute(&self, sql: String) -> anyhow::Result<()> {
        let sql = sqlx::AssertSqlSafe(sql);
        match self {
            Direct::Sqlite(pool) => {
                sqlx::query(sql).execute(pool).await?;
            }
            Direct::Postgres(pool) => {
                sqlx::query(sql).execute(pool).await?;
            }
        }
        Ok(())
    }
}
