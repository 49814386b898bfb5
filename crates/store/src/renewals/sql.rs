// Renewal queries, compiled once per database (see `per_dialect!`).

use muster_domain::incidents::Severity;
use muster_domain::renewals::pipeline::{Level, Raised, Stage, alarms as decide, stall_text};
use crate::notify::notices;

pub async fn reminder_states(p: &crate::Pools<DB>, ids: &[&str]) -> Result<(Vec<SentRow>, Vec<StateRow>)> {
    let mut tx = p.reader.begin_with(BEGIN_SNAPSHOT).await?;
    let (mut sent, mut renewals) = (Vec::new(), Vec::new());
    for chunk in ids.chunks(500) {
        let sql = format!("SELECT renewable_id, expires_at, offset_days, sent_at FROM renewal_reminders WHERE renewable_id IN ({})", placeholders(1, chunk.len()));
        let mut q = sqlx::query_as(trusted(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        sent.extend(q.fetch_all(&mut *tx).await?);
        let sql = format!("SELECT renewable_id, expires_at, state FROM renewals WHERE done_at IS NULL AND renewable_id IN ({})", placeholders(1, chunk.len()));
        let mut q = sqlx::query_as(trusted(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        renewals.extend(q.fetch_all(&mut *tx).await?);
    }
    tx.commit().await?;
    Ok((sent, renewals))
}

pub async fn under_way(p: &crate::Pools<DB>) -> Result<Vec<StateRow>> {
    Ok(sqlx::query_as("SELECT renewable_id, expires_at, state FROM renewals WHERE done_at IS NULL").fetch_all(&p.reader).await?)
}

pub async fn alarms(p: &crate::Pools<DB>, renewable: &str, expires_at: i64) -> Result<Vec<(String, String, i64, String, Option<i64>)>> {
    Ok(sqlx::query_as("SELECT stage, level, at, targets, incident_id FROM renewal_alarms WHERE renewable_id = $1 AND expires_at = $2 ORDER BY at, stage, level")
        .bind(renewable)
        .bind(expires_at)
        .fetch_all(&p.reader)
        .await?)
}

/// Records a stall raised (or the page inside the last offset).
async fn raised(tx: &mut sqlx::Transaction<'_, DB>, (renewable, expires_at): Key<'_>, stage: &str, level: Level, at: i64, targets: &[String], incident: Option<i64>) -> Result<()> {
    sqlx::query(
        "INSERT INTO renewal_alarms (renewable_id, expires_at, stage, level, at, targets, incident_id) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (renewable_id, expires_at, stage, level) DO NOTHING",
    )
    .bind(renewable)
    .bind(expires_at)
    .bind(stage)
    .bind(level.as_str())
    .bind(at)
    .bind(serde_json::to_string(targets).expect("strings serialise"))
    .bind(incident)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn history(tx: &mut sqlx::Transaction<'_, DB>, (renewable, expires_at): Key<'_>, at: i64, stage: &str, target: Option<&str>, actor: &str, text: &str) -> Result<()> {
    sqlx::query("INSERT INTO renewal_history (renewable_id, expires_at, at, stage, target, actor, text) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(renewable)
        .bind(expires_at)
        .bind(at)
        .bind(stage)
        .bind(target)
        .bind(actor)
        .bind(text)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Settles the incidents raised for the stages of one renewal that are no longer
/// stalled (every paged one, once it is done).
async fn settle_pages(tx: &mut sqlx::Transaction<'_, DB>, renewable: &str, expires_at: i64, stages: Option<&[Stage]>, why: &str, at: i64) -> Result<()> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT stage, incident_id FROM renewal_alarms WHERE renewable_id = $1 AND expires_at = $2 AND level = 'paged' AND incident_id IS NOT NULL",
    )
    .bind(renewable)
    .bind(expires_at)
    .fetch_all(&mut **tx)
    .await?;
    for (stage, incident) in rows {
        if stages.is_none_or(|s| s.iter().any(|x| x.as_str() == stage)) {
            incidents_sql::settle(tx, incident, why, at).await?;
        }
    }
    Ok(())
}

/// Starts the renewal of `renewable`'s current expiry, due from `now`, unless it was
/// started (by its first reminder, or a first move); the stall engine looks at it at
/// once. Answers whether it started now.
async fn start(tx: &mut sqlx::Transaction<'_, DB>, renewable: &Renewable, now: Timestamp) -> Result<bool> {
    let at = now.as_millisecond();
    let started = sqlx::query(
        "INSERT INTO renewals (renewable_id, expires_at, state, stage, updated_at, check_at) VALUES ($1, $2, $3, 'due', $4, $5) \
         ON CONFLICT (renewable_id, expires_at) DO NOTHING",
    )
    .bind(&renewable.id)
    .bind(renewable.expires_at.as_millisecond())
    .bind(serde_json::to_string(&Renewal::start(renewable, now)).expect("renewals serialise"))
    .bind(at)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(started.rows_affected() == 1)
}

pub async fn record(p: &crate::Pools<DB>, reminders: &[Reminder], now: Timestamp) -> Result<usize> {
    let at = now.as_millisecond();
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let mut sent = 0;
    let mut messages: Vec<NewNotification> = Vec::new();
    for reminder in reminders {
        let renewable = &reminder.renewable;
        let expires_at = renewable.expires_at.as_millisecond();
        let sql = format!(
            "INSERT INTO renewal_reminders (renewable_id, expires_at, offset_days, sent_at) VALUES {} \
             ON CONFLICT (renewable_id, expires_at, offset_days) DO NOTHING RETURNING offset_days",
            value_rows(reminder.covers.len(), 4)
        );
        let mut q = sqlx::query_as::<_, (i64,)>(trusted(sql));
        for offset in &reminder.covers {
            q = q.bind(&renewable.id).bind(expires_at).bind(*offset).bind(at);
        }
        // Recorded by another server first: its messages went out with that record.
        if q.fetch_all(&mut *tx).await?.is_empty() {
            continue;
        }
        sent += 1;
        messages.extend(reminder.messages.iter().cloned());
        if start(&mut tx, renewable, now).await? {
            let offset = reminder.covers.iter().min().expect("a reminder covers an offset");
            let text = format!("Due: the {offset}-day reminder went out");
            history(&mut tx, (&renewable.id, expires_at), at, "due", None, "muster", &text).await?;
        }
        if let Some(page) = &reminder.page {
            let group = format!("renewal:{}:{expires_at}:expiry", renewable.id);
            let incident = incidents_sql::raise(&mut tx, page_service(renewable), &group, Severity::Major, &page.title, &page.summary, &page.team, at).await?;
            raised(&mut tx, (&renewable.id, expires_at), "expiry", Level::Paged, at, &page.targets, Some(incident)).await?;
            let text = format!("{}; team {} paged ({})", page.title, page.team, muster_domain::incidents::number(incident));
            history(&mut tx, (&renewable.id, expires_at), at, "expiry", None, "muster", &text).await?;
        }
    }
    notify_sql::insert(&mut tx, at, &messages).await?;
    tx.commit().await?;
    Ok(sent)
}

pub async fn check(p: &crate::Pools<DB>, catalog: &Catalog, renewables: &HashMap<&str, &Renewable>, now: Timestamp, limit: i64) -> Result<usize> {
    let at = now.as_millisecond();
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let sql = format!("SELECT renewable_id, expires_at, state FROM renewals WHERE done_at IS NULL AND check_at <= $1 ORDER BY check_at LIMIT $2{SKIP_LOCKED}");
    let due: Vec<(String, i64, String)> = sqlx::query_as(trusted(sql)).bind(at).bind(limit).fetch_all(&mut *tx).await?;
    let mut messages: Vec<NewNotification> = Vec::new();
    for (id, expires_at, state) in &due {
        let set_check = |next: Option<i64>| {
            sqlx::query("UPDATE renewals SET check_at = $3 WHERE renewable_id = $1 AND expires_at = $2").bind(id.clone()).bind(*expires_at).bind(next)
        };
        // Gone from the catalog, or its expiry moved by an import: nothing to chase.
        let Some(renewable) = renewables.get(id.as_str()).filter(|r| r.expires_at.as_millisecond() == *expires_at) else {
            set_check(None).execute(&mut *tx).await?;
            continue;
        };
        let renewal: Renewal = serde_json::from_str(state).map_err(|e| StoreError::Corrupt(format!("renewal of {id}: {e}")))?;
        let rows: Vec<(String, String, i64)> = sqlx::query_as("SELECT stage, level, at FROM renewal_alarms WHERE renewable_id = $1 AND expires_at = $2")
            .bind(id)
            .bind(*expires_at)
            .fetch_all(&mut *tx)
            .await?;
        let so_far: Vec<Raised> = rows
            .into_iter()
            .filter_map(|(stage, level, at)| {
                Some(Raised { stage: Stage::parse(&stage)?, level: Level::parse(&level)?, at: Timestamp::from_millisecond(at).ok()? })
            })
            .collect();
        let decided = decide(renewable, &renewal, &so_far, now);
        for (stall, level) in &decided.raise {
            let (title, body) = stall_text(renewable, &renewal, stall);
            let stage = stall.stage.as_str();
            let (incident, text) = match level {
                Level::Notified => {
                    let people = catalog.team(&stall.team).map(|t| t.members.clone()).unwrap_or_default();
                    messages.extend(notices(catalog, &people, &format!("renewal:{id}:{expires_at}:{stage}:notified"), &title, &body, at));
                    (None, format!("{title}; team {} notified", stall.team))
                }
                Level::Paged => {
                    let group = format!("renewal:{id}:{expires_at}:{stage}");
                    let incident = incidents_sql::raise(&mut tx, page_service(renewable), &group, Severity::Major, &title, &body, &stall.team, at).await?;
                    (Some(incident), format!("Still stalled; team {} paged ({})", stall.team, muster_domain::incidents::number(incident)))
                }
            };
            raised(&mut tx, (id, *expires_at), stage, *level, at, &stall.targets, incident).await?;
            history(&mut tx, (id, *expires_at), at, stage, None, "muster", &text).await?;
        }
        if !decided.cleared.is_empty() {
            let (all, applied, verified) = renewal.progress();
            let why = format!("The renewal moved on: applied {applied} of {all}; verified {verified} of {all}");
            settle_pages(&mut tx, id, *expires_at, Some(&decided.cleared), &why, at).await?;
        }
        set_check(decided.next.map(|t| t.as_millisecond())).execute(&mut *tx).await?;
    }
    notify_sql::insert(&mut tx, at, &messages).await?;
    tx.commit().await?;
    Ok(due.len())
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
    start(&mut tx, renewable, now).await?;
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
    // The stall engine looks again at once: a deadline moved, or a stall cleared.
    sqlx::query("UPDATE renewals SET state = $3, stage = $4, updated_at = $5, done_at = $6, check_at = $7 WHERE renewable_id = $1 AND expires_at = $2")
        .bind(&renewable.id)
        .bind(expires_at)
        .bind(serde_json::to_string(&renewal).expect("renewals serialise"))
        .bind(renewal.stage().as_str())
        .bind(at)
        .bind(done.then_some(at))
        .bind(at)
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
        // Every target is on the new item now: their own older expiries go.
        if let Some(targets) = value.get_mut("targets").and_then(serde_json::Value::as_array_mut) {
            for target in targets.iter_mut().filter_map(serde_json::Value::as_object_mut) {
                target.remove("expires_at");
            }
        }
        sqlx::query("UPDATE renewables SET body = $2, updated_at = $3 WHERE id = $1").bind(&renewable.id).bind(value.to_string()).bind(at).execute(&mut *tx).await?;
        sqlx::query("UPDATE catalog_meta SET generation = $1 WHERE id = 1").bind(generation + 1).execute(&mut *tx).await?;
        let (all, _, _) = renewal.progress();
        let moved = format!("Done: verified on all {all} targets; the expiry moves to {}", new_expiry.strftime("%Y-%m-%d"));
        audit.push(actor.entry("renewal.update", format!("renewable:{}", renewable.id), Some(body), Some(value.to_string())));
        settle_pages(&mut tx, &renewable.id, expires_at, None, &moved, at).await?;
        history.push(("done".to_string(), None, moved));
    }
    for (stage, target, text) in history {
        self::history(&mut tx, (&renewable.id, expires_at), at, &stage, target.as_deref(), &request.by, &text).await?;
    }
    audit_sql::append(&mut tx, at, audit).await?;
    tx.commit().await?;
    Ok(())
}
