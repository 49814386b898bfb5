// Catalog queries, compiled once per database (see `per_dialect!`).

pub async fn generation(p: &crate::Pools<DB>) -> Result<i64> {
    let (generation,): (i64,) = sqlx::query_as("SELECT generation FROM catalog_meta WHERE id = 1")
        .fetch_one(&p.reader)
        .await?;
    Ok(generation)
}

/// Every entity and the generation they belong to, read in one snapshot.
pub async fn load(p: &crate::Pools<DB>) -> Result<(i64, Vec<Entity>)> {
    let mut tx = p.reader.begin_with(BEGIN_SNAPSHOT).await?;
    let (generation,): (i64,) = sqlx::query_as("SELECT generation FROM catalog_meta WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?;
    let entities = load_entities(&mut tx).await?;
    tx.commit().await?;
    Ok((generation, entities))
}

async fn load_entities(tx: &mut sqlx::Transaction<'_, DB>) -> Result<Vec<Entity>> {
    let mut entities = Vec::new();
    for kind in Kind::ALL {
        let sql = format!("SELECT id, body FROM {} ORDER BY id", kind.section());
        let rows: Vec<(String, String)> = sqlx::query_as(trusted(sql)).fetch_all(&mut **tx).await?;
        for (id, body) in rows {
            let body: Value = serde_json::from_str(&body)
                .map_err(|e| StoreError::Corrupt(format!("{} {id:?}: {e}", kind.singular())))?;
            entities.push(Entity { kind, id, body });
        }
    }
    Ok(entities)
}

pub async fn change<F>(
    p: &crate::Pools<DB>,
    now: i64,
    actor: &Actor,
    action_prefix: &str,
    cached: Option<Arc<CatalogSnapshot>>,
    decide: F,
) -> Result<Plan>
where
    F: FnOnce(&Catalog) -> Result<Plan, Refusal> + Send,
{
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let sql = format!("SELECT generation FROM catalog_meta WHERE id = 1{LOCK}");
    let (generation,): (i64,) = sqlx::query_as(trusted(sql)).fetch_one(&mut *tx).await?;
    let loaded;
    let current = match &cached {
        Some(snapshot) if snapshot.generation == generation => &snapshot.catalog,
        _ => {
            loaded = Catalog::from_entities(load_entities(&mut tx).await?).map_err(StoreError::Corrupt)?;
            &loaded
        }
    };
    let plan = decide(current)?;
    if plan.changes.is_empty() {
        tx.rollback().await?;
        return Ok(plan);
    }
    let instant = Timestamp::from_millisecond(now).map_err(|e| StoreError::Corrupt(format!("clock: {e}")))?;
    let revisions = revisions::planned(&plan.changes, instant).map_err(Refusal::Invalid)?;
    for change in &plan.changes {
        let table = change.kind.section();
        match change.op {
            Op::Create => {
                let sql = format!("INSERT INTO {table} (id, body, created_at, updated_at) VALUES ($1, $2, $3, $3)");
                let body = change.after.as_ref().map(Value::to_string).unwrap_or_default();
                sqlx::query(trusted(sql)).bind(&change.id).bind(body).bind(now).execute(&mut *tx).await?;
            }
            Op::Update => {
                let sql = format!("UPDATE {table} SET body = $2, updated_at = $3 WHERE id = $1");
                let body = change.after.as_ref().map(Value::to_string).unwrap_or_default();
                sqlx::query(trusted(sql)).bind(&change.id).bind(body).bind(now).execute(&mut *tx).await?;
            }
            Op::Delete => {
                let sql = format!("DELETE FROM {table} WHERE id = $1");
                sqlx::query(trusted(sql)).bind(&change.id).execute(&mut *tx).await?;
                if change.kind == Kind::Schedule {
                    sqlx::query("DELETE FROM schedule_revisions WHERE schedule_id = $1").bind(&change.id).execute(&mut *tx).await?;
                }
            }
        }
    }
    for revision in &revisions {
        record_revision(&mut tx, now, revision).await?;
    }
    sqlx::query("UPDATE catalog_meta SET generation = $1 WHERE id = 1")
        .bind(generation + 1)
        .execute(&mut *tx)
        .await?;
    audit_sql::append(&mut tx, now, audit_entries(actor, action_prefix, &plan.changes)).await?;
    tx.commit().await?;
    Ok(plan)
}

/// Records a schedule's new definition. The first change of a schedule records its
/// old definition too, in force from the beginning; definitions not yet in force are
/// plans the new one replaces.
async fn record_revision(tx: &mut sqlx::Transaction<'_, DB>, now: i64, revision: &revisions::NewRevision) -> Result<()> {
    let (recorded,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM schedule_revisions WHERE schedule_id = $1")
        .bind(&revision.schedule)
        .fetch_one(&mut **tx)
        .await?;
    let insert = "INSERT INTO schedule_revisions (schedule_id, effective_from, body, recorded_at) VALUES ($1, $2, $3, $4)";
    if recorded == 0 {
        sqlx::query(insert)
            .bind(&revision.schedule)
            .bind(None::<i64>)
            .bind(revision.previous.to_string())
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    // Plans not yet in force, and one made at the very instant the new one starts.
    sqlx::query("DELETE FROM schedule_revisions WHERE schedule_id = $1 AND (effective_from > $2 OR effective_from >= $3)")
        .bind(&revision.schedule)
        .bind(now)
        .bind(revision.effective_from.as_millisecond())
        .execute(&mut **tx)
        .await?;
    sqlx::query(insert)
        .bind(&revision.schedule)
        .bind(revision.effective_from.as_millisecond())
        .bind(revision.body.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A schedule's recorded definitions, oldest first: when each took effect (`None`:
/// from the beginning) and the schedule document.
pub async fn revisions(p: &crate::Pools<DB>, schedule: &str) -> Result<Vec<(Option<i64>, String)>> {
    Ok(sqlx::query_as("SELECT effective_from, body FROM schedule_revisions WHERE schedule_id = $1 ORDER BY seq")
        .bind(schedule)
        .fetch_all(&p.reader)
        .await?)
}
