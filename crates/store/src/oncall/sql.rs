// Override queries, compiled once per database (see `per_dialect!`).

pub async fn insert(p: &crate::Pools<DB>, o: &StoredOverride, entry: muster_domain::audit::NewAuditEntry) -> Result<()> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    sqlx::query(
        "INSERT INTO schedule_overrides (id, schedule_id, person, replaces, starts_at, ends_at, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&o.id)
    .bind(&o.schedule)
    .bind(&o.person)
    .bind(&o.replaces)
    .bind(ms(o.from))
    .bind(ms(o.to))
    .bind(ms(o.created_at))
    .bind(&o.created_by)
    .execute(&mut *tx)
    .await?;
    audit_sql::append(&mut tx, ms(o.created_at), vec![entry]).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn list(p: &crate::Pools<DB>, schedule: &str, since: i64) -> Result<Vec<Row>> {
    let sql = format!("SELECT {COLUMNS} FROM schedule_overrides WHERE schedule_id = $1 AND ends_at > $2 ORDER BY seq");
    Ok(sqlx::query_as(trusted(sql)).bind(schedule).bind(since).fetch_all(&p.reader).await?)
}

pub async fn end(p: &crate::Pools<DB>, actor: &Actor, schedule: &str, id: &str, now: Timestamp) -> Result<Ended> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let sql = format!("SELECT {COLUMNS} FROM schedule_overrides WHERE schedule_id = $1 AND id = $2{LOCK}");
    let row: Option<Row> = sqlx::query_as(trusted(sql)).bind(schedule).bind(id).fetch_optional(&mut *tx).await?;
    let Some(row) = row else {
        return Err(StoreError::NotFound(format!("schedule {schedule:?} has no run-time override {id:?}")));
    };
    let stored = from_row(row)?;
    let (ended, after) = match ending(&stored.as_override(), now) {
        Ending::AlreadyOver => {
            return Err(StoreError::Conflict(format!(
                "override {id:?} ended at {}: past overrides stay on record",
                stored.to
            )));
        }
        Ending::Remove => {
            sqlx::query("DELETE FROM schedule_overrides WHERE id = $1").bind(id).execute(&mut *tx).await?;
            (Ended::Removed, None)
        }
        Ending::CutShort(at) => {
            sqlx::query("UPDATE schedule_overrides SET ends_at = $2 WHERE id = $1").bind(id).bind(ms(at)).execute(&mut *tx).await?;
            let cut = StoredOverride { to: at, ..stored.clone() };
            let body = cut.audit_body();
            (Ended::CutShort(cut), body)
        }
    };
    let entry = actor.entry("override.end", format!("override:{id}"), stored.audit_body(), after);
    audit_sql::append(&mut tx, ms(now), vec![entry]).await?;
    tx.commit().await?;
    Ok(ended)
}

pub async fn put_feed(p: &crate::Pools<DB>, person: &str, hash: &str, now: i64, by: &str, entry: muster_domain::audit::NewAuditEntry) -> Result<()> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    sqlx::query(
        "INSERT INTO calendar_feeds (person, token_hash, created_at, created_by) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (person) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at, created_by = excluded.created_by",
    )
    .bind(person)
    .bind(hash)
    .bind(now)
    .bind(by)
    .execute(&mut *tx)
    .await?;
    audit_sql::append(&mut tx, now, vec![entry]).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn delete_feed(p: &crate::Pools<DB>, person: &str, now: i64, entry: muster_domain::audit::NewAuditEntry) -> Result<bool> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let done = sqlx::query("DELETE FROM calendar_feeds WHERE person = $1").bind(person).execute(&mut *tx).await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    audit_sql::append(&mut tx, now, vec![entry]).await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn feed_person(p: &crate::Pools<DB>, hash: &str) -> Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT person FROM calendar_feeds WHERE token_hash = $1").bind(hash).fetch_optional(&p.reader).await?;
    Ok(row.map(|r| r.0))
}
