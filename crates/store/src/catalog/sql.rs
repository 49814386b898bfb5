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
            }
        }
    }
    sqlx::query("UPDATE catalog_meta SET generation = $1 WHERE id = 1")
        .bind(generation + 1)
        .execute(&mut *tx)
        .await?;
    audit_sql::append(&mut tx, now, audit_entries(actor, action_prefix, &plan.changes)).await?;
    tx.commit().await?;
    Ok(plan)
}
