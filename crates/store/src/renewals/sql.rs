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
