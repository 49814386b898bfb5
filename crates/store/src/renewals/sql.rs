// Renewal queries, compiled once per database (see `per_dialect!`).

use muster_domain::incidents::Severity;
use muster_domain::renewals::pipeline::{Level, Raised, Stage, alarms as decide, stall_text};
use muster_domain::renewals::artifacts::{Pin, artifact_id, pin_warning};
use muster_domain::renewals::probes::{Finding, Outcome, PROBE, observe};
use muster_domain::renewals::{IMPLICIT_TARGET, reminders};
use crate::notify::notices;
use std::collections::HashSet;

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

pub async fn smallest_offsets_sent(p: &crate::Pools<DB>) -> Result<Vec<(String, i64, i64)>> {
    Ok(sqlx::query_as("SELECT renewable_id, expires_at, MIN(offset_days) FROM renewal_reminders GROUP BY renewable_id, expires_at").fetch_all(&p.reader).await?)
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

/// Reminders recorded per group of statements.
const RECORD_CHUNK: usize = 200;

pub async fn record(p: &crate::Pools<DB>, reminders: &[Reminder], now: Timestamp) -> Result<usize> {
    let at = now.as_millisecond();
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let mut sent = 0;
    let mut messages: Vec<NewNotification> = Vec::new();
    let key = |r: &Reminder| (r.renewable.id.clone(), r.renewable.expires_at.as_millisecond());
    for chunk in reminders.chunks(RECORD_CHUNK) {
        let offsets: usize = chunk.iter().map(|r| r.covers.len()).sum();
        let sql = format!(
            "INSERT INTO renewal_reminders (renewable_id, expires_at, offset_days, sent_at) VALUES {} \
             ON CONFLICT (renewable_id, expires_at, offset_days) DO NOTHING RETURNING renewable_id, expires_at",
            value_rows(offsets, 4)
        );
        let mut q = sqlx::query_as::<_, (String, i64)>(trusted(sql));
        for reminder in chunk {
            for offset in &reminder.covers {
                q = q.bind(&reminder.renewable.id).bind(reminder.renewable.expires_at.as_millisecond()).bind(*offset).bind(at);
            }
        }
        // A reminder another server recorded first went out with that record.
        let recorded: HashSet<(String, i64)> = q.fetch_all(&mut *tx).await?.into_iter().collect();
        let fresh: Vec<&Reminder> = chunk.iter().filter(|r| recorded.contains(&key(r))).collect();
        if fresh.is_empty() {
            continue;
        }
        sent += fresh.len();
        messages.extend(fresh.iter().flat_map(|r| r.messages.iter().cloned()));
        // The first reminder starts the renewal; the stall engine looks at it at once.
        let sql = format!(
            "INSERT INTO renewals (renewable_id, expires_at, state, stage, updated_at, check_at) VALUES {} \
             ON CONFLICT (renewable_id, expires_at) DO NOTHING RETURNING renewable_id, expires_at",
            value_rows(fresh.len(), 6)
        );
        let mut q = sqlx::query_as::<_, (String, i64)>(trusted(sql));
        for reminder in &fresh {
            let renewable = &reminder.renewable;
            let state = serde_json::to_string(&Renewal::start(renewable, now)).expect("renewals serialise");
            q = q.bind(&renewable.id).bind(renewable.expires_at.as_millisecond()).bind(state).bind("due").bind(at).bind(at);
        }
        let started: HashSet<(String, i64)> = q.fetch_all(&mut *tx).await?.into_iter().collect();
        let due: Vec<(&Reminder, String)> = fresh
            .iter()
            .filter(|r| started.contains(&key(r)))
            .map(|r| {
                let offset = r.covers.iter().min().expect("a reminder covers an offset");
                (*r, format!("Due: the {offset}-day reminder went out"))
            })
            .collect();
        if !due.is_empty() {
            let sql = format!(
                "INSERT INTO renewal_history (renewable_id, expires_at, at, stage, target, actor, text) VALUES {}",
                value_rows(due.len(), 7)
            );
            let mut q = sqlx::query(trusted(sql));
            for (reminder, text) in &due {
                let renewable = &reminder.renewable;
                q = q.bind(&renewable.id).bind(renewable.expires_at.as_millisecond()).bind(at).bind("due").bind(None::<String>).bind("muster").bind(text);
            }
            q.execute(&mut *tx).await?;
        }
        for reminder in fresh {
            let Some(page) = &reminder.page else { continue };
            let renewable = &reminder.renewable;
            let expires_at = renewable.expires_at.as_millisecond();
            let group = format!("renewal:{}:{expires_at}:expiry", renewable.id);
            let (incident, _) = incidents_sql::raise(&mut tx, page_service(renewable), &group, Severity::Major, &page.title, &page.summary, &page.team, at).await?;
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
                    let (incident, _) = incidents_sql::raise(&mut tx, page_service(renewable), &group, Severity::Major, &title, &body, &stall.team, at).await?;
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
            // A later stall of these stages is raised afresh.
            let names: Vec<&str> = decided.cleared.iter().map(|s| s.as_str()).collect();
            let sql = format!(
                "DELETE FROM renewal_alarms WHERE renewable_id = {} AND expires_at = {} AND stage IN ({})",
                placeholders(1, 1),
                placeholders(2, 1),
                placeholders(3, names.len())
            );
            let mut q = sqlx::query(trusted(sql)).bind(id).bind(*expires_at);
            for name in names {
                q = q.bind(name);
            }
            q.execute(&mut *tx).await?;
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

/// The group key of the outage incident a probe raises when it sees an expired item.
fn expired_group(renewable: &str) -> String {
    format!("renewal:{renewable}:expired")
}

/// Finishes a renewal verified everywhere: the renewable's expiry in the catalog moves
/// to the new one (each target's own, when a probe saw it), and the incidents it
/// raised are resolved. Answers the history's words and the audit entry.
async fn finish(tx: &mut sqlx::Transaction<'_, DB>, actor: &Actor, renewable: &Renewable, renewal: &Renewal, at: i64) -> Result<Option<(String, muster_domain::audit::NewAuditEntry)>> {
    let Some(new_expiry) = renewal.new_expiry() else {
        return Ok(None);
    };
    // The catalog's lock first, as every catalog write takes it.
    let sql = format!("SELECT generation FROM catalog_meta WHERE id = 1{LOCK}");
    let (generation,): (i64,) = sqlx::query_as(trusted(sql)).fetch_one(&mut **tx).await?;
    let sql = format!("SELECT body FROM renewables WHERE id = $1{LOCK}");
    let Some((body,)): Option<(String,)> = sqlx::query_as(trusted(sql)).bind(&renewable.id).fetch_optional(&mut **tx).await? else {
        return Ok(None);
    };
    let mut value: serde_json::Value = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("renewable {}: {e}", renewable.id)))?;
    value["expires_at"] = serde_json::json!(new_expiry.to_string());
    // Every target is on the new item: its own expiry is the one a probe saw, else
    // the renewable's.
    if let Some(targets) = value.get_mut("targets").and_then(serde_json::Value::as_array_mut) {
        for target in targets.iter_mut().filter_map(serde_json::Value::as_object_mut) {
            let key = ["host", "name", "organisation"].iter().find_map(|k| target.get(*k).and_then(|v| v.as_str()).map(str::to_string));
            match key.and_then(|k| renewal.targets.get(&k)?.expires_at) {
                Some(own) if own != new_expiry => target.insert("expires_at".into(), serde_json::json!(own.to_string())),
                _ => target.remove("expires_at"),
            };
        }
    }
    sqlx::query("UPDATE renewables SET body = $2, updated_at = $3 WHERE id = $1").bind(&renewable.id).bind(value.to_string()).bind(at).execute(&mut **tx).await?;
    sqlx::query("UPDATE catalog_meta SET generation = $1 WHERE id = 1").bind(generation + 1).execute(&mut **tx).await?;
    let (all, _, _) = renewal.progress();
    let moved = format!("Done: verified on all {all} targets; the expiry moves to {}", new_expiry.strftime("%Y-%m-%d"));
    let entry = actor.entry("renewal.update", format!("renewable:{}", renewable.id), Some(body), Some(value.to_string()));
    settle_pages(tx, &renewable.id, renewable.expires_at.as_millisecond(), None, &moved, at).await?;
    if let Some(outage) = incidents_sql::open_for_group(tx, page_service(renewable), &expired_group(&renewable.id)).await? {
        incidents_sql::settle(tx, outage, &moved, at).await?;
    }
    Ok(Some((moved, entry)))
}

pub async fn move_renewal(p: &crate::Pools<DB>, actor: &Actor, catalog: &Catalog, renewable: &Renewable, request: &Move, now: Timestamp) -> Result<()> {
    let at = now.as_millisecond();
    let expires_at = renewable.expires_at.as_millisecond();
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    // The row exists before it is locked, so two first moves take turns.
    let mut renewal = locked_renewal(&mut tx, renewable, now).await?;
    let mut text = renewal.apply(request, now).map_err(|(field, why)| {
        let mut errors = muster_domain::FieldErrors::default();
        errors.push(field, why);
        StoreError::Invalid(errors)
    })?;
    let mut messages = Vec::new();
    if request.stage == Some(Stage::Received) {
        let pinned = pins_served(&mut tx, &renewable.id).await?;
        renewal.pin_warning = pin_warning(&pinned, renewal.identity.as_deref());
        if let Some(warning) = &renewal.pin_warning {
            text = format!("{text}. Warning: {warning}; applying needs an acknowledgement");
            messages = pin_notices(catalog, renewable, warning, at);
        }
    }
    let stage = request.stage.map(|s| s.as_str()).unwrap_or_default();
    let done = renewal.is_done();
    save(&mut tx, (&renewable.id, expires_at), &renewal, at).await?;
    let mut history = vec![(stage.to_string(), request.target.clone(), text.clone())];
    let mut audit = vec![actor.entry(&format!("renewal.{stage}"), format!("renewable:{}", renewable.id), None, Some(text))];
    if done && let Some((moved, entry)) = finish(&mut tx, actor, renewable, &renewal, at).await? {
        audit.push(entry);
        history.push(("done".to_string(), None, moved));
    }
    for (stage, target, text) in history {
        self::history(&mut tx, (&renewable.id, expires_at), at, &stage, target.as_deref(), &request.by, &text).await?;
    }
    notify_sql::insert(&mut tx, at, &messages).await?;
    audit_sql::append(&mut tx, at, audit).await?;
    tx.commit().await?;
    Ok(())
}

/// Saves a renewal's state; the stall engine looks at it again at once (a deadline
/// moved, or a stall cleared).
async fn save(tx: &mut sqlx::Transaction<'_, DB>, (renewable, expires_at): Key<'_>, renewal: &Renewal, at: i64) -> Result<()> {
    sqlx::query("UPDATE renewals SET state = $3, stage = $4, updated_at = $5, done_at = $6, check_at = $7 WHERE renewable_id = $1 AND expires_at = $2")
        .bind(renewable)
        .bind(expires_at)
        .bind(serde_json::to_string(renewal).expect("renewals serialise"))
        .bind(renewal.stage().as_str())
        .bind(at)
        .bind(renewal.is_done().then_some(at))
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The owner team told that builds in use pin another key than the one received.
fn pin_notices(catalog: &Catalog, renewable: &Renewable, warning: &str, at: i64) -> Vec<NewNotification> {
    let people = catalog.team(&renewable.owner).map(|t| t.members.clone()).unwrap_or_default();
    let title = format!("Pinned key: {} — clients will fail", renewable.name);
    let body = format!(
        "{} ({}) has a new key.\n{warning}.\nApplying it needs an acknowledgement (acknowledge_pins) unless it is live already.\n",
        renewable.name, renewable.id
    );
    let key = format!("renewal:{}:{}:pins", renewable.id, renewable.expires_at.as_millisecond());
    notices(catalog, &people, &key, &title, &body, at)
}

/// Locks the renewal of `renewable`'s current expiry, starting it when none was.
async fn locked_renewal(tx: &mut sqlx::Transaction<'_, DB>, renewable: &Renewable, now: Timestamp) -> Result<Renewal> {
    start(tx, renewable, now).await?;
    let sql = format!("SELECT state FROM renewals WHERE renewable_id = $1 AND expires_at = $2{LOCK}");
    let (state,): (String,) = sqlx::query_as(trusted(sql)).bind(&renewable.id).bind(renewable.expires_at.as_millisecond()).fetch_one(&mut **tx).await?;
    serde_json::from_str(&state).map_err(|e| StoreError::Corrupt(format!("renewal of {}: {e}", renewable.id)))
}

/// Records one finding and acts on it, in its own transaction: the renewal's row
/// first, then the catalog's lock (a renewal done), then the incidents' (a page), as
/// every renewal write takes them, so no two writers wait on each other in a circle.
pub async fn record_probe(p: &crate::Pools<DB>, catalog: &Catalog, renewable: &Renewable, finding: &Finding, now: Timestamp) -> Result<ProbeReport> {
    let at = now.as_millisecond();
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let mut messages: Vec<NewNotification> = Vec::new();
    let mut audit = Vec::new();
    let (seen, identity) = match &finding.outcome {
        Outcome::Seen { expires_at, identity, .. } => (Some(expires_at.as_millisecond()), identity.clone()),
        Outcome::Failed { .. } => (None, None),
    };
    sqlx::query("INSERT INTO probe_results (renewable_id, target, at, method, expires_at, identity, verdict, finding) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(&renewable.id)
        .bind(&finding.target)
        .bind(at)
        .bind(&finding.method)
        .bind(seen)
        .bind(&identity)
        .bind(finding.verdict())
        .bind(serde_json::to_string(finding).expect("findings serialise"))
        .execute(&mut *tx)
        .await?;
    let mut report = ProbeReport { finding: finding.clone(), steps: Vec::new(), mismatch: None, incident: None };
    if seen.is_none() {
        tx.commit().await?;
        return Ok(report);
    }
    let key = (renewable.id.as_str(), renewable.expires_at.as_millisecond());
    // A renewal starts with its first reminder or move, or with what a probe sees
    // renewed — not with every probe.
    let sql = format!("SELECT state FROM renewals WHERE renewable_id = $1 AND expires_at = $2{LOCK}");
    let stored: Option<(String,)> = sqlx::query_as(trusted(sql)).bind(key.0).bind(key.1).fetch_optional(&mut *tx).await?;
    let mut renewal = match &stored {
        Some((state,)) => serde_json::from_str(state).map_err(|e| StoreError::Corrupt(format!("renewal of {}: {e}", renewable.id)))?,
        None => Renewal::start(renewable, now),
    };
    let effect = observe(renewable, &mut renewal, finding, now);
    if !effect.steps.is_empty() {
        if stored.is_none() {
            start(&mut tx, renewable, now).await?;
        }
        if effect.steps.iter().any(|(stage, _)| stage == "received") {
            // The probe saw a new key: builds still in use that pin another break.
            let pinned = pins_served(&mut tx, &renewable.id).await?;
            renewal.pin_warning = pin_warning(&pinned, renewal.identity.as_deref());
            if let Some(warning) = &renewal.pin_warning {
                messages.extend(pin_notices(catalog, renewable, warning, at));
                history(&mut tx, key, at, "received", Some(&finding.target), PROBE, &format!("Warning: {warning}")).await?;
            }
        }
        let done = renewal.is_done();
        save(&mut tx, key, &renewal, at).await?;
        for (stage, text) in &effect.steps {
            history(&mut tx, key, at, stage, Some(&finding.target), PROBE, text).await?;
            report.steps.push(text.clone());
        }
        let actor = Actor::new(PROBE);
        if done && let Some((moved, entry)) = finish(&mut tx, &actor, renewable, &renewal, at).await? {
            audit.push(entry);
            history(&mut tx, key, at, "done", None, PROBE, &moved).await?;
            report.steps.push(moved);
        }
    }
    if let Some(mismatch) = &effect.mismatch {
        let stage = format!("mismatch:{}", finding.target);
        let identity = identity.clone().unwrap_or_default();
        // Told once per served key.
        let fresh: Option<(String,)> = sqlx::query_as(
            "INSERT INTO renewal_alarms (renewable_id, expires_at, stage, level, at, targets, incident_id) VALUES ($1, $2, $3, $4, $5, $6, NULL) \
             ON CONFLICT (renewable_id, expires_at, stage, level) DO NOTHING RETURNING stage",
        )
        .bind(key.0)
        .bind(key.1)
        .bind(&stage)
        .bind(&identity)
        .bind(at)
        .bind(serde_json::to_string(&[&finding.target]).expect("strings serialise"))
        .fetch_optional(&mut *tx)
        .await?;
        if fresh.is_some() {
            let title = format!("Key mismatch: {} on {}", renewable.name, finding.target);
            let body = format!("{} ({}): {mismatch}.\n", renewable.name, renewable.id);
            let people = catalog.team(&renewable.owner).map(|t| t.members.clone()).unwrap_or_default();
            messages.extend(notices(catalog, &people, &format!("renewal:{}:{}:{stage}:{identity}", key.0, key.1), &title, &body, at));
            history(&mut tx, key, at, "mismatch", Some(&finding.target), PROBE, mismatch).await?;
        }
        report.mismatch = Some(mismatch.clone());
    }
    if effect.expired {
        let service = page_service(renewable);
        let team = catalog.service(service).map(|s| s.owner.clone()).unwrap_or_else(|| renewable.owner.clone());
        let served = match &finding.outcome {
            Outcome::Seen { expires_at, .. } => *expires_at,
            Outcome::Failed { .. } => now,
        };
        let on = if finding.target == IMPLICIT_TARGET { String::new() } else { format!(" on {}", finding.target) };
        let title = format!("{} {}: still served{on}", renewable.name, reminders::when(served, now));
        let summary = format!("The {} probe of {} sees an expired item: {}.", finding.method, finding.target, finding.verdict());
        let (incident, opened) = incidents_sql::raise(&mut tx, service, &expired_group(&renewable.id), Severity::Critical, &title, &summary, &team, at).await?;
        if opened {
            let text = format!("The probe sees an expired item on {}; incident {} opened", finding.target, muster_domain::incidents::number(incident));
            history(&mut tx, key, at, "expired", Some(&finding.target), PROBE, &text).await?;
        }
        report.incident = Some(muster_domain::incidents::number(incident));
    }
    notify_sql::insert(&mut tx, at, &messages).await?;
    audit_sql::append(&mut tx, at, audit).await?;
    tx.commit().await?;
    Ok(report)
}

pub async fn probe_history(p: &crate::Pools<DB>, renewable: &str, limit: i64) -> Result<Vec<(String,)>> {
    Ok(sqlx::query_as("SELECT finding FROM probe_results WHERE renewable_id = $1 ORDER BY at DESC, id DESC LIMIT $2").bind(renewable).bind(limit).fetch_all(&p.reader).await?)
}

pub async fn last_probes(p: &crate::Pools<DB>) -> Result<Vec<(String, String, i64)>> {
    Ok(sqlx::query_as("SELECT renewable_id, target, MAX(at) FROM probe_results GROUP BY renewable_id, target").fetch_all(&p.reader).await?)
}

pub async fn register_artifact(p: &crate::Pools<DB>, actor: &Actor, name: &str, version: &str, owner: &str, pins: &[Pin], at: i64) -> Result<()> {
    let id = artifact_id(name, version);
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    // Registering a version again replaces what was found in it (and un-retires it).
    sqlx::query(
        "INSERT INTO artifacts (id, name, version, owner, registered_at, retired_at) VALUES ($1, $2, $3, $4, $5, NULL) \
         ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, registered_at = excluded.registered_at, retired_at = NULL",
    )
    .bind(&id)
    .bind(name)
    .bind(version)
    .bind(owner)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM artifact_pins WHERE artifact_id = $1").bind(&id).execute(&mut *tx).await?;
    for chunk in pins.chunks(200) {
        let sql = format!(
            "INSERT INTO artifact_pins (artifact_id, path, byte_offset, kind, spki_sha256, subject, not_after) VALUES {} \
             ON CONFLICT (artifact_id, path, byte_offset) DO NOTHING",
            value_rows(chunk.len(), 7)
        );
        let mut q = sqlx::query(trusted(sql));
        for pin in chunk {
            q = q.bind(&id).bind(&pin.path).bind(pin.offset).bind(&pin.kind).bind(&pin.spki_sha256).bind(&pin.subject).bind(pin.not_after.map(|t| t.as_millisecond()));
        }
        q.execute(&mut *tx).await?;
    }
    let text = format!("{} keys found", pins.len());
    audit_sql::append(&mut tx, at, vec![actor.entry("artifact.register", format!("artifact:{id}"), None, Some(text))]).await?;
    tx.commit().await?;
    Ok(())
}

type ArtifactRow = (String, String, String, String, i64, Option<i64>);
type PinRow = (String, String, i64, String, String, Option<String>, Option<i64>);

pub async fn artifacts(p: &crate::Pools<DB>, id: Option<&str>) -> Result<(Vec<ArtifactRow>, Vec<PinRow>)> {
    let mut tx = p.reader.begin_with(BEGIN_SNAPSHOT).await?;
    let rows = sqlx::query_as("SELECT id, name, version, owner, registered_at, retired_at FROM artifacts WHERE ($1 IS NULL OR id = $2) ORDER BY name, registered_at DESC")
        .bind(id)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    let pins = sqlx::query_as(
        "SELECT artifact_id, path, byte_offset, kind, spki_sha256, subject, not_after FROM artifact_pins WHERE ($1 IS NULL OR artifact_id = $2) ORDER BY artifact_id, path, byte_offset",
    )
    .bind(id)
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((rows, pins))
}

pub async fn retire_artifact(p: &crate::Pools<DB>, actor: &Actor, id: &str, at: i64) -> Result<()> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let sql = format!("SELECT retired_at FROM artifacts WHERE id = $1{LOCK}");
    let row: Option<(Option<i64>,)> = sqlx::query_as(trusted(sql)).bind(id).fetch_optional(&mut *tx).await?;
    match row {
        None => return Err(StoreError::NotFound(format!("no artifact {id:?}"))),
        Some((Some(_),)) => return Err(StoreError::Conflict(format!("artifact {id} is retired already"))),
        Some((None,)) => {}
    }
    sqlx::query("UPDATE artifacts SET retired_at = $2 WHERE id = $1").bind(id).bind(at).execute(&mut *tx).await?;
    audit_sql::append(&mut tx, at, vec![actor.entry("artifact.retire", format!("artifact:{id}"), None, None)]).await?;
    tx.commit().await?;
    Ok(())
}

/// The renewables whose probes saw each of `keys`.
pub async fn serving(p: &crate::Pools<DB>, keys: &[String]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for chunk in keys.chunks(500) {
        let sql = format!("SELECT DISTINCT identity, renewable_id FROM probe_results WHERE identity IN ({})", placeholders(1, chunk.len()));
        let mut q = sqlx::query_as(trusted(sql));
        for key in chunk {
            q = q.bind(key);
        }
        out.extend(q.fetch_all(&p.reader).await?);
    }
    Ok(out)
}

/// Keys pinned by artifacts still in use that `renewable`'s probes saw it serve:
/// (artifact id, key).
async fn pins_served(tx: &mut sqlx::Transaction<'_, DB>, renewable: &str) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT p.artifact_id, p.spki_sha256 FROM artifact_pins p JOIN artifacts a ON a.id = p.artifact_id \
         WHERE a.retired_at IS NULL AND p.spki_sha256 IN (SELECT identity FROM probe_results WHERE renewable_id = $1 AND identity IS NOT NULL) \
         ORDER BY p.artifact_id, p.spki_sha256",
    )
    .bind(renewable)
    .fetch_all(&mut **tx)
    .await?)
}
