// Audit queries, compiled once per database (see `per_dialect!`).

/// Chains and inserts `entries` after the current head, inside the caller's write
/// transaction. The head row is locked (PostgreSQL) or the database is (SQLite), so
/// concurrent appenders take turns and the chain never forks.
pub async fn append(tx: &mut sqlx::Transaction<'_, DB>, at: i64, entries: Vec<NewAuditEntry>) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let sql = format!("SELECT seq, hash FROM audit_head WHERE id = 1{LOCK}");
    let (mut seq, mut hash): (i64, String) = sqlx::query_as(trusted(sql)).fetch_one(&mut **tx).await?;
    for entry in entries {
        seq += 1;
        let e = entry.chain(seq, at, &hash);
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor, on_behalf_of, action, entity, before_state, after_state, reason, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(e.seq)
        .bind(e.at)
        .bind(&e.actor)
        .bind(&e.on_behalf_of)
        .bind(&e.action)
        .bind(&e.entity)
        .bind(&e.before)
        .bind(&e.after)
        .bind(&e.reason)
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .execute(&mut **tx)
        .await?;
        hash = e.hash;
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&hash)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn append_alone(p: &crate::Pools<DB>, at: i64, entries: Vec<NewAuditEntry>) -> Result<()> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    append(&mut tx, at, entries).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn head(p: &crate::Pools<DB>) -> Result<(i64, String)> {
    Ok(sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(&p.reader).await?)
}

pub async fn list(p: &crate::Pools<DB>, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log \
         WHERE ($1 IS NULL OR entity = $1) AND ($2 IS NULL OR actor = $2) AND ($3 IS NULL OR at >= $3) AND seq < $4 \
         ORDER BY seq DESC LIMIT $5"
    );
    let rows: Vec<AuditRow> = sqlx::query_as(trusted(sql))
        .bind(&f.entity)
        .bind(&f.actor)
        .bind(f.since)
        .bind(f.before_seq.unwrap_or(i64::MAX))
        .bind(f.limit)
        .fetch_all(&p.reader)
        .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

pub async fn page_after(p: &crate::Pools<DB>, after: i64, limit: i64) -> Result<Vec<AuditEntry>> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
    let rows: Vec<AuditRow> = sqlx::query_as(trusted(sql)).bind(after).bind(limit).fetch_all(&p.reader).await?;
    Ok(rows.into_iter().map(from_row).collect())
}
