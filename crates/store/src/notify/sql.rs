// Outbox queries, compiled once per database (see `per_dialect!`).

pub async fn enqueue(p: &crate::Pools<DB>, now: i64, messages: Vec<NewNotification>) -> Result<usize> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let created = insert(&mut tx, now, &messages).await?;
    tx.commit().await?;
    Ok(created)
}

/// Queues messages inside the caller's write transaction (so a page and its record
/// commit together); returns how many were new.
pub async fn insert(tx: &mut sqlx::Transaction<'_, DB>, now: i64, messages: &[NewNotification]) -> Result<usize> {
    let mut created = 0;
    // 12 parameters a row: well inside both databases' limits.
    for chunk in messages.chunks(200) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|r| format!("({}, 'queued', 0, {})", placeholders(r * 12 + 1, 8), placeholders(r * 12 + 9, 4)))
            .collect();
        let sql = format!(
            "INSERT INTO notifications (delivery_id, dedup_key, recipient, channel, destination, secret, subject, body, status, attempts, not_before, next_attempt_at, give_up_at, created_at) \
             VALUES {} ON CONFLICT (dedup_key) DO NOTHING",
            rows.join(", ")
        );
        let mut query = sqlx::query(trusted(sql));
        for m in chunk {
            query = query
                .bind(random_token(24))
                .bind(&m.dedup_key)
                .bind(&m.recipient)
                .bind(m.channel.as_str())
                .bind(&m.destination)
                .bind(&m.secret)
                .bind(&m.subject)
                .bind(&m.body)
                .bind(m.not_before.max(0))
                .bind(m.not_before.max(0))
                .bind(m.give_up_at)
                .bind(now);
        }
        created += query.execute(&mut **tx).await?.rows_affected() as usize;
    }
    Ok(created)
}

/// Cancels messages not yet tried whose dedup key starts with `prefix` and that wait
/// for a later time (a page's delayed contact methods once someone acknowledged).
pub async fn cancel_waiting(tx: &mut sqlx::Transaction<'_, DB>, prefix: &str, now: i64) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE notifications SET status = 'cancelled', claimed_by = NULL, claimed_until = NULL \
         WHERE status = 'queued' AND attempts = 0 AND not_before > $2 AND substr(dedup_key, 1, length($1)) = $1",
    )
    .bind(prefix)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

pub async fn claim(p: &crate::Pools<DB>, worker: &str, now: i64, until: i64, limit: i64) -> Result<Vec<Notification>> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let sql = format!(
        "UPDATE notifications SET claimed_by = $1, claimed_until = $2 WHERE id IN (\
           SELECT id FROM notifications WHERE status = 'queued' AND next_attempt_at <= $3 \
           AND (claimed_until IS NULL OR claimed_until < $3) ORDER BY next_attempt_at, id LIMIT $4{SKIP_LOCKED}) \
         RETURNING {COLUMNS}"
    );
    let rows: Vec<Row> = sqlx::query_as(trusted(sql)).bind(worker).bind(until).bind(now).bind(limit).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Records attempts on messages this worker holds, in one transaction (one commit for
/// a bundle and all it carried). Returns how many were recorded: a message whose claim
/// expired and went to another worker is left alone.
pub async fn complete(p: &crate::Pools<DB>, worker: &str, attempts: &[Attempt], now: i64, detail: Option<&str>, bundle_id: Option<&str>) -> Result<usize> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let mut recorded = 0;
    for a in attempts {
        // Only the holder of a live claim completes a message.
        let sql = format!("SELECT give_up_at, dedup_key, recipient, channel FROM notifications WHERE id = $1 AND claimed_by = $2 AND status = 'queued'{LOCK}");
        let held: Option<(i64, String, String, String)> = sqlx::query_as(trusted(sql)).bind(a.id).bind(worker).fetch_optional(&mut *tx).await?;
        let Some((give_up_at, dedup_key, recipient, channel)) = held else {
            continue;
        };
        sqlx::query("INSERT INTO notification_attempts (notification_id, attempt, at, outcome, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind(a.id)
            .bind(a.attempt)
            .bind(now)
            .bind(a.status)
            .bind(detail)
            .execute(&mut *tx)
            .await?;
        let (final_status, delivered_at) = match a.status {
            "delivered" => ("delivered", Some(now)),
            "retry" if a.next > give_up_at => ("failed", None),
            "retry" => ("queued", None),
            _ => ("failed", None),
        };
        sqlx::query(
            "UPDATE notifications SET status = $2, attempts = $3, next_attempt_at = $4, last_error = $5, delivered_at = $6, bundle_id = $7, claimed_by = NULL, claimed_until = NULL WHERE id = $1",
        )
        .bind(a.id)
        .bind(final_status)
        .bind(a.attempt)
        .bind(a.next)
        .bind(detail)
        .bind(delivered_at)
        .bind(bundle_id)
        .execute(&mut *tx)
        .await?;
        if final_status == "failed"
            && let Some(incident) = muster_domain::incidents::paged_incident(&dedup_key)
        {
            let text = format!("Could not reach {recipient} by {channel}: {}", detail.unwrap_or("gave up"));
            incidents_sql::timeline(&mut tx, incident, now, "delivery_failed", "muster", &text).await?;
        }
        recorded += 1;
    }
    tx.commit().await?;
    Ok(recorded)
}

pub async fn list(p: &crate::Pools<DB>, recipient: Option<&str>, before_id: i64, limit: i64) -> Result<Vec<Notification>> {
    let sql = format!("SELECT {COLUMNS} FROM notifications WHERE ($1 IS NULL OR recipient = $1) AND id < $2 ORDER BY id DESC LIMIT $3");
    let rows: Vec<Row> = sqlx::query_as(trusted(sql)).bind(recipient).bind(before_id).bind(limit).fetch_all(&p.reader).await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// For each contact method (recipient, channel, destination), when messages were
/// delivered to it after `since`, oldest first; one query for them all.
pub async fn delivered_since(p: &crate::Pools<DB>, contacts: &[(&str, &str, &str)], since: i64) -> Result<Vec<(String, String, String, i64)>> {
    let mut found = Vec::new();
    for chunk in contacts.chunks(300) {
        // A bundle is one delivery, however many messages it carried.
        let sql = format!(
            "SELECT n.recipient, n.channel, n.destination, MIN(n.delivered_at) FROM notifications n \
             JOIN (VALUES {}) AS v ON n.recipient = v.column1 AND n.channel = v.column2 AND n.destination = v.column3 \
             WHERE n.status = 'delivered' AND n.delivered_at > {} \
             GROUP BY n.recipient, n.channel, n.destination, COALESCE(n.bundle_id, n.delivery_id) ORDER BY 4",
            value_rows(chunk.len(), 3),
            placeholders(chunk.len() * 3 + 1, 1)
        );
        let mut q = sqlx::query_as::<_, (String, String, String, i64)>(trusted(sql));
        for (recipient, channel, destination) in chunk {
            q = q.bind(*recipient).bind(*channel).bind(*destination);
        }
        found.extend(q.bind(since).fetch_all(&p.writer).await?);
    }
    Ok(found)
}

/// Puts claimed messages back, each until its time (its throttle's room), in one
/// statement per 500.
pub async fn defer(p: &crate::Pools<DB>, worker: &str, waits: &[(i64, i64)]) -> Result<u64> {
    let mut deferred = 0;
    for chunk in waits.chunks(500) {
        let sql = format!(
            "UPDATE notifications SET next_attempt_at = v.column2, claimed_by = NULL, claimed_until = NULL \
             FROM (VALUES {}) AS v WHERE notifications.id = v.column1 AND notifications.claimed_by = {} AND notifications.status = 'queued'",
            value_rows(chunk.len(), 2),
            placeholders(chunk.len() * 2 + 1, 1)
        );
        let mut query = sqlx::query(trusted(sql));
        for (id, until) in chunk {
            query = query.bind(*id).bind(*until);
        }
        deferred += query.bind(worker).execute(&p.writer).await?.rows_affected();
    }
    Ok(deferred)
}
