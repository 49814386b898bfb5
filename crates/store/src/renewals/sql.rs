// Renewal queries, compiled once per database (see `per_dialect!`).

pub async fn sent(p: &crate::Pools<DB>) -> Result<Vec<(String, i64, i64, i64)>> {
    Ok(sqlx::query_as("SELECT renewable_id, expires_at, offset_days, sent_at FROM renewal_reminders").fetch_all(&p.reader).await?)
}

pub async fn record(p: &crate::Pools<DB>, reminders: &[Reminder], now: i64) -> Result<usize> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let mut sent = 0;
    let mut messages: Vec<NewNotification> = Vec::new();
    for reminder in reminders {
        let sql = format!(
            "INSERT INTO renewal_reminders (renewable_id, expires_at, offset_days, sent_at) VALUES {} \
             ON CONFLICT (renewable_id, expires_at, offset_days) DO NOTHING RETURNING offset_days",
            value_rows(reminder.covers.len(), 4)
        );
        let mut q = sqlx::query_as::<_, (i64,)>(trusted(sql));
        for offset in &reminder.covers {
            q = q.bind(&reminder.renewable).bind(reminder.expires_at.as_millisecond()).bind(*offset).bind(now);
        }
        // Recorded by another server first: its messages went out with that record.
        if !q.fetch_all(&mut *tx).await?.is_empty() {
            sent += 1;
            messages.extend(reminder.messages.iter().cloned());
        }
    }
    notify_sql::insert(&mut tx, now, &messages).await?;
    tx.commit().await?;
    Ok(sent)
}

pub async fn renewal(p: &crate::Pools<DB>, renewable: &str, expires_at: i64) -> Result<Option<RenewalRecord>> {
    let mut tx = p.reader.begin_with(BEGIN_SNAPSHOT).await?;
    let row: Option<(String, Option<i64>)> = sqlx::query_as("SELECT state, done_at FROM renewals WHERE renewable_id = $1 AND expires_at = $2")
        .bind(renewable)
        .bind(expires_at)
        .fetch_optional(&mut *tx)
        .await?;
    let Some((state, done_at)) = row else {
        return Ok(None);
    };
    let rows: Vec<(i64, String, Option<String>, String, String)> = sqlx::query_as(
        "SELECT at, stage, target, actor, text FROM renewal_history WHERE renewable_id = $1 AND expires_at = $2 ORDER BY id",
    )
    .bind(renewable)
    .bind(expires_at)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let renewal: Renewal = serde_json::from_str(&state).map_err(|e| StoreError::Corrupt(format!("renewal of {renewable}: {e}")))?;
    let history = rows
        .into_iter()
        .map(|(at, stage, target, actor, text)| Ok(HistoryEntry { at: from_ms(at)?, stage, target, actor, text }))
        .collect::<Result<_>>()?;
    Ok(Some(RenewalRecord { renewal, done_at: done_at.map(from_ms).transpose()?, history }))
}

pub async fn move_renewal(p: &crate::Pools<DB>, actor: &Actor, renewable: &Renewable, request: &Move, now: Timestamp) -> Result<()> {
    let at = now.as_millisecond();
    let expires_at = renewable.expires_at.as_millisecond();
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    // The row exists before it is locked, so two first moves take turns.
    let fresh = Renewal::start(renewable, now);
    sqlx::query(
        "INSERT INTO renewals (renewable_id, expires_at, state, stage, updated_at) VALUES ($1, $2, $3, 'due', $4) \
         ON CONFLICT (renewable_id, expires_at) DO NOTHING",
    )
    .bind(&renewable.id)
    .bind(expires_at)
    .bind(serde_json::to_string(&fresh).expect("renewals serialise"))
    .bind(at)
    .execute(&mut *tx)
    .await?;
    let sql = format!("SELECT state FROM renewals WHERE renewable_id = $1 AND expires_at = $2{LOCK}");
    let (state,): (String,) = sqlx::query_as(trusted(sql)).bind(&renewable.id).bind(expires_at).fetch_one(&mut *tx).await?;
    let mut renewal: Renewal = serde_json::from_str(&state).map_err(|e| StoreError::Corrupt(format!("renewal of {}: {e}", renewable.id)))?;
    let text = renewal.apply(request, now).map_err(|(field, why)| {
        let mut errors = muster_domain::FieldErrors::default();
        errors.push(field, why);
        StoreError::Invalid(errors)
    })?;
    let stage = request.stage.map(|s| s.as_str()).unwrap_or_default();
    let done = renewal.is_done();
    sqlx::query("UPDATE renewals SET state = $3, stage = $4, updated_at = $5, done_at = $6 WHERE renewable_id = $1 AND expires_at = $2")
        .bind(&renewable.id)
        .bind(expires_at)
        .bind(serde_json::to_string(&renewal).expect("renewals serialise"))
        .bind(renewal.stage().as_str())
        .bind(at)
        .bind(done.then_some(at))
        .execute(&mut *tx)
        .await?;
    let mut history = vec![(stage.to_string(), request.target.clone(), text.clone())];
    let mut audit = vec![actor.entry(&format!("renewal.{stage}"), format!("renewable:{}", renewable.id), None, Some(text))];
    if done && let Some(new_expiry) = renewal.new_expires_at {
        // The catalog's lock first, as every catalog write takes it.
        let sql = format!("SELECT generation FROM catalog_meta WHERE id = 1{LOCK}");
        let (generation,): (i64,) = sqlx::query_as(trusted(sql)).fetch_one(&mut *tx).await?;
        let sql = format!("SELECT body FROM renewables WHERE id = $1{LOCK}");
        let (body,): (String,) = sqlx::query_as(trusted(sql)).bind(&renewable.id).fetch_one(&mut *tx).await?;
        let mut value: serde_json::Value = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("renewable {}: {e}", renewable.id)))?;
        value["expires_at"] = serde_json::json!(new_expiry.to_string());
        sqlx::query("UPDATE renewables SET body = $2, updated_at = $3 WHERE id = $1").bind(&renewable.id).bind(value.to_string()).bind(at).execute(&mut *tx).await?;
        sqlx::query("UPDATE catalog_meta SET generation = $1 WHERE id = 1").bind(generation + 1).execute(&mut *tx).await?;
        let (all, _, _) = renewal.progress();
        let moved = format!("Done: verified on all {all} targets; the expiry moves to {}", new_expiry.strftime("%Y-%m-%d"));
        audit.push(actor.entry("renewal.update", format!("renewable:{}", renewable.id), Some(body), Some(value.to_string())));
        history.push(("done".to_string(), None, moved));
    }
    for (stage, target, text) in history {
        sqlx::query("INSERT INTO renewal_history (renewable_id, expires_at, at, stage, target, actor, text) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&renewable.id)
            .bind(expires_at)
            .bind(at)
            .bind(stage)
            .bind(target)
            .bind(&request.by)
            .bind(text)
            .execute(&mut *tx)
            .await?;
    }
    audit_sql::append(&mut tx, at, audit).await?;
    tx.commit().await?;
    Ok(())
}
