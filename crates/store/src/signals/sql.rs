// Signals queries, compiled once per database (see `per_dialect!`).

type Tx<'a> = sqlx::Transaction<'a, DB>;

/// `count` parameters numbered from `from`, bound in the order they appear (`?` on
/// SQLite: see `ANONYMOUS_PARAMETERS`). A statement uses these for all its parameters.
pub async fn insert_key(p: &crate::Pools<DB>, k: &IntegrationKey, hash: &str, entry: muster_domain::audit::NewAuditEntry) -> Result<()> {
    let (service, label, fallback) = match &k.scope {
        KeyScope::Service { service } => (Some(service.as_str()), None, None),
        KeyScope::Global { label, fallback } => (None, Some(label.as_str()), Some(fallback.as_str())),
    };
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    sqlx::query(
        "INSERT INTO integration_keys (id, name, service_id, service_label, fallback_service, key_hash, hint, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&k.id)
    .bind(&k.name)
    .bind(service)
    .bind(label)
    .bind(fallback)
    .bind(hash)
    .bind(&k.hint)
    .bind(ms(k.created_at))
    .bind(&k.created_by)
    .execute(&mut *tx)
    .await?;
    audit_sql::append(&mut tx, ms(k.created_at), vec![entry]).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn list_keys(p: &crate::Pools<DB>, service: Option<&str>) -> Result<Vec<KeyRow>> {
    let rows = match service {
        Some(service) => {
            let sql = format!("SELECT {KEY_COLUMNS} FROM integration_keys WHERE service_id = $1 ORDER BY created_at, id");
            sqlx::query_as(trusted(sql)).bind(service).fetch_all(&p.reader).await?
        }
        None => {
            let sql = format!("SELECT {KEY_COLUMNS} FROM integration_keys WHERE service_id IS NULL ORDER BY created_at, id");
            sqlx::query_as(trusted(sql)).fetch_all(&p.reader).await?
        }
    };
    Ok(rows)
}

pub async fn revoke_key(p: &crate::Pools<DB>, actor: &Actor, service: Option<&str>, id: &str, now: i64) -> Result<KeyRow> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let sql = format!("SELECT {KEY_COLUMNS} FROM integration_keys WHERE id = $1{LOCK}");
    let row: Option<KeyRow> = sqlx::query_as(trusted(sql)).bind(id).fetch_optional(&mut *tx).await?;
    let Some(row) = row.filter(|r| r.2.as_deref() == service) else {
        let whose = service.map_or("global".to_string(), |s| format!("service {s:?}"));
        return Err(StoreError::NotFound(format!("there is no {whose} integration key {id:?}")));
    };
    if row.8.is_some() {
        return Err(StoreError::Conflict(format!("integration key {id:?} is already revoked")));
    }
    sqlx::query("UPDATE integration_keys SET revoked_at = $2, revoked_by = $3 WHERE id = $1")
        .bind(id)
        .bind(now)
        .bind(&actor.label)
        .execute(&mut *tx)
        .await?;
    let before = key_from_row(row.clone())?;
    let entry = actor.entry("integration_key.revoke", format!("integration_key:{id}"), Some(json(&before)), None);
    audit_sql::append(&mut tx, now, vec![entry]).await?;
    tx.commit().await?;
    let mut revoked = row;
    revoked.8 = Some(now);
    Ok(revoked)
}

pub async fn key_by_hash(p: &crate::Pools<DB>, hash: &str) -> Result<Option<KeyRow>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM integration_keys WHERE key_hash = $1 AND revoked_at IS NULL");
    Ok(sqlx::query_as(trusted(sql)).bind(hash).fetch_optional(&p.reader).await?)
}

/// The latest instance of a key as read: id, firing, the alert, its revision.
type ReadBack = (i64, bool, Alert, i64);

/// id, service, fingerprint, labels, annotations, generator URL, starts, ends,
/// timeout, updated, firing, revision.
type LatestRow = (i64, String, String, String, String, String, i64, Option<i64>, i64, i64, i64, i64);

/// The latest instances of `keys`, locked for the transaction.
async fn latest_of(tx: &mut Tx<'_>, keys: &[&AlertKey]) -> Result<HashMap<AlertKey, ReadBack>> {
    let wanted: std::collections::HashSet<&AlertKey> = keys.iter().copied().collect();
    let mut fingerprints: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    fingerprints.sort_unstable();
    fingerprints.dedup();
    let mut latest = HashMap::new();
    for chunk in fingerprints.chunks(500) {
        let sql = format!(
            "SELECT id, service_id, fingerprint, labels, annotations, generator_url, starts_at, ends_at, timeout, updated_at, \
             firing, revision FROM alerts WHERE latest = 1 AND fingerprint IN ({}) ORDER BY id{LOCK}",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query_as::<_, LatestRow>(trusted(sql));
        for fingerprint in chunk {
            query = query.bind(*fingerprint);
        }
        for r in query.fetch_all(&mut **tx).await? {
            let key = (r.1, r.2);
            if !wanted.contains(&key) {
                continue;
            }
            let alert = alert_of((r.3, r.4, r.5, r.6, r.7, r.8, r.9))?;
            latest.insert(key, (r.0, r.10 != 0, alert, r.11));
        }
    }
    Ok(latest)
}

/// When a stored instance counts as resolved: its end, or now for one with none.
fn resolved_at(activity: &Activity, firing: bool, now: i64) -> Option<i64> {
    (!firing).then(|| activity.ends_at.map_or(now, ms).min(now))
}

/// `(a, b, …), (…)` with `rows` groups of `width` numbered placeholders.
async fn insert_events(tx: &mut Tx<'_>, events: &[(i64, EventKind, &str)], at: i64) -> Result<()> {
    for chunk in events.chunks(500) {
        let sql = format!("INSERT INTO alert_events (alert_id, kind, at, source) VALUES {}", value_rows(chunk.len(), 4));
        let mut query = sqlx::query(trusted(sql));
        for (id, kind, source) in chunk {
            query = query.bind(*id).bind(kind.as_str()).bind(at).bind(*source);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Rows changed per statement: SQLite allows 32,766 parameters, PostgreSQL 65,535.
const ROWS_PER_STATEMENT: usize = 200;

/// Runs a multi-row write and tells whether it changed every row it names: a row
/// missing means it moved past the revision the write was planned against.
async fn wrote_all(tx: &mut Tx<'_>, query: sqlx::query::Query<'_, DB, <DB as sqlx::Database>::Arguments>, rows: usize) -> Result<bool> {
    Ok(query.execute(&mut **tx).await?.rows_affected() == rows as u64)
}

/// Writes a group of received alerts, round by round, in one transaction: the latest
/// instance of each comes from the index when it remembers it saying the same, else
/// is read (and locked); the domain plans; the plan is written with a few multi-row
/// statements, each naming the revisions it was planned against. Returns what was
/// written, for the index, or `None` (nothing written) when a row had changed.
pub async fn ingest(
    p: &crate::Pools<DB>,
    rounds: Vec<Vec<(&AlertKey, (&Alert, Meta<'_>))>>,
    index: &LatestIndex,
    now: Timestamp,
) -> Result<Option<(Vec<(AlertKey, (Known, i64))>, bool)>> {
    let now_ms = ms(now);
    let mut recorded_events = false;
    // What this transaction wrote so far, ahead of the index for later rounds.
    let mut written: HashMap<AlertKey, (Known, i64)> = HashMap::new();
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    for round in rounds {
        let remembered = index.recall(round.iter().map(|(key, _)| *key));
        let recalled: Vec<Option<(Known, i64)>> = round
            .iter()
            .zip(remembered)
            .map(|((key, _), recalled)| written.get(*key).copied().or(recalled))
            .collect();
        let unknown: Vec<&AlertKey> = round
            .iter()
            .zip(&recalled)
            .filter(|((_, (_, meta)), known)| known.and_then(|(k, _)| k.prior(meta.digest)).is_none())
            .map(|((key, _), _)| *key)
            .collect();
        let read_back = latest_of(&mut tx, &unknown).await?;
        let mut events: Vec<(i64, EventKind, &str)> = Vec::new();
        let mut updates = Vec::new();
        let mut inserts = Vec::new();
        let mut retired = Vec::new();
        let mut moved = Vec::new();
        for ((key, (alert, meta)), recalled) in round.iter().zip(recalled) {
            let (prior, revision) = match read_back.get(*key) {
                Some((id, firing, stored, revision)) => {
                    let prior = Prior { id: *id, firing: *firing, activity: stored.activity(), content: Some(stored) };
                    (Some(prior), *revision)
                }
                None => match recalled.and_then(|(known, revision)| Some((known.prior(meta.digest)?, revision))) {
                    Some((prior, revision)) => (Some(prior), revision),
                    None => (None, 0),
                },
            };
            match ingest::plan(alert, prior, now) {
                Write::Move { id, activity, firing, events: kinds } => {
                    events.extend(kinds.into_iter().map(|k| (id, k, meta.source)));
                    // What the instance says is unchanged: the stored content's digest.
                    let content = match read_back.get(*key) {
                        Some((_, _, stored, _)) => stored.content_digest(),
                        None => meta.digest,
                    };
                    written.insert((*key).clone(), (Known { id, firing, activity, content }, revision + 1));
                    moved.push((id, revision, activity, firing, meta));
                }
                Write::Update { id, alert, firing, events: kinds } => {
                    events.extend(kinds.into_iter().map(|k| (id, k, meta.source)));
                    let known = Known { id, firing, activity: alert.activity(), content: meta.digest };
                    written.insert((*key).clone(), (known, revision + 1));
                    updates.push((id, revision, alert, firing, meta));
                }
                Write::Insert { alert, firing, events: kinds, retire } => {
                    if let Some((old, was_firing)) = retire {
                        retired.push((old, revision));
                        if was_firing {
                            events.push((old, EventKind::Resolved, meta.source));
                        }
                    }
                    inserts.push((*key, alert, firing, meta, kinds));
                }
            }
        }
        // Rows in id order, the order reads lock them in, so concurrent servers on
        // PostgreSQL do not lock each other's rows crosswise.
        retired.sort_unstable_by_key(|(id, _)| *id);
        updates.sort_unstable_by_key(|u| u.0);
        moved.sort_unstable_by_key(|m| m.0);
        for chunk in retired.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE alerts SET latest = 0, firing = 0, resolved_at = COALESCE(alerts.resolved_at, v.column3), \
                 revision = alerts.revision + 1 FROM (VALUES {}) AS v WHERE alerts.id = v.column1 AND alerts.revision = v.column2",
                value_rows(chunk.len(), 3)
            );
            let mut query = sqlx::query(trusted(sql));
            for (id, revision) in chunk {
                query = query.bind(*id).bind(*revision).bind(now_ms);
            }
            if !wrote_all(&mut tx, query, chunk.len()).await? {
                return Ok(None);
            }
        }
        for chunk in updates.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE alerts SET labels = v.column3, annotations = v.column4, generator_url = v.column5, starts_at = v.column6, \
                 ends_at = v.column7, timeout = v.column8, updated_at = v.column9, firing = v.column10, resolved_at = v.column11, \
                 received_at = v.column12, source = v.column13, key_id = v.column14, revision = alerts.revision + 1 \
                 FROM (VALUES {}) AS v WHERE alerts.id = v.column1 AND alerts.revision = v.column2",
                value_rows(chunk.len(), 14)
            );
            let mut query = sqlx::query(trusted(sql));
            for (id, revision, alert, firing, meta) in chunk {
                query = query
                    .bind(*id)
                    .bind(*revision)
                    .bind(json(&alert.labels))
                    .bind(json(&alert.annotations))
                    .bind(&alert.generator_url)
                    .bind(ms(alert.starts_at))
                    .bind(alert.ends_at.map(ms))
                    .bind(i64::from(alert.timeout))
                    .bind(ms(alert.updated_at))
                    .bind(i64::from(*firing))
                    .bind(resolved_at(&alert.activity(), *firing, now_ms))
                    .bind(meta.received_at)
                    .bind(meta.source)
                    .bind(meta.key_id);
            }
            if !wrote_all(&mut tx, query, chunk.len()).await? {
                return Ok(None);
            }
        }
        for chunk in moved.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE alerts SET starts_at = v.column3, ends_at = v.column4, timeout = v.column5, updated_at = v.column6, \
                 firing = v.column7, resolved_at = v.column8, received_at = v.column9, source = v.column10, key_id = v.column11, \
                 revision = alerts.revision + 1 FROM (VALUES {}) AS v WHERE alerts.id = v.column1 AND alerts.revision = v.column2",
                value_rows(chunk.len(), 11)
            );
            let mut query = sqlx::query(trusted(sql));
            for (id, revision, activity, firing, meta) in chunk {
                query = query
                    .bind(*id)
                    .bind(*revision)
                    .bind(ms(activity.starts_at))
                    .bind(activity.ends_at.map(ms))
                    .bind(i64::from(activity.timeout))
                    .bind(ms(activity.updated_at))
                    .bind(i64::from(*firing))
                    .bind(resolved_at(activity, *firing, now_ms))
                    .bind(meta.received_at)
                    .bind(meta.source)
                    .bind(meta.key_id);
            }
            if !wrote_all(&mut tx, query, chunk.len()).await? {
                return Ok(None);
            }
        }
        for chunk in inserts.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO alerts (service_id, fingerprint, latest, labels, annotations, generator_url, starts_at, ends_at, \
                 timeout, updated_at, firing, source, key_id, dedup_key, resolved_at, received_at) VALUES {} \
                 RETURNING id, service_id, fingerprint",
                value_rows(chunk.len(), 16)
            );
            let mut query = sqlx::query_as::<_, (i64, String, String)>(trusted(sql));
            for (key, alert, firing, meta, _) in chunk {
                query = query
                    .bind(&key.0)
                    .bind(&key.1)
                    .bind(1_i64)
                    .bind(json(&alert.labels))
                    .bind(json(&alert.annotations))
                    .bind(&alert.generator_url)
                    .bind(ms(alert.starts_at))
                    .bind(alert.ends_at.map(ms))
                    .bind(i64::from(alert.timeout))
                    .bind(ms(alert.updated_at))
                    .bind(i64::from(*firing))
                    .bind(meta.source)
                    .bind(meta.key_id)
                    .bind(meta.dedup_key)
                    .bind(resolved_at(&alert.activity(), *firing, now_ms))
                    .bind(meta.received_at);
            }
            // Keys are unique within a round, so each returned row names its alert.
            let ids: HashMap<AlertKey, i64> = query
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|(id, service, fingerprint)| ((service, fingerprint), id))
                .collect();
            for (key, alert, firing, meta, kinds) in chunk {
                let id = *ids.get(*key).ok_or_else(|| StoreError::Corrupt(format!("no id returned for alert {key:?}")))?;
                events.extend(kinds.iter().map(|k| (id, *k, meta.source)));
                let known = Known { id, firing: *firing, activity: alert.activity(), content: meta.digest };
                written.insert((*key).clone(), (known, 0));
            }
        }
        recorded_events |= !events.is_empty();
        insert_events(&mut tx, &events, now_ms).await?;
    }
    tx.commit().await?;
    Ok(Some((written.into_iter().collect(), recorded_events)))
}

/// Acts on the firing alert; returns its key, or `None` when there is none.
pub async fn pagerduty_action(p: &crate::Pools<DB>, origin: &Origin, service: Option<&str>, fingerprint: &str, kind: EventKind, now: i64) -> Result<Option<AlertKey>> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let (column, value) = match service {
        Some(service) => ("service_id", service),
        None => ("key_id", origin.key_id.as_deref().unwrap_or("")),
    };
    let sql = format!("SELECT id, acknowledged_at, service_id FROM alerts WHERE latest = 1 AND firing = 1 AND fingerprint = $1 AND {column} = $2{LOCK}");
    let row: Option<(i64, Option<i64>, String)> = sqlx::query_as(trusted(sql)).bind(fingerprint).bind(value).fetch_optional(&mut *tx).await?;
    let Some((id, acknowledged, service_id)) = row else {
        return Ok(None);
    };
    let sql = match kind {
        EventKind::Resolved => {
            "UPDATE alerts SET ends_at = $2, firing = 0, resolved_at = $2, updated_at = $2, received_at = $2, revision = revision + 1 WHERE id = $1"
        }
        _ => "UPDATE alerts SET acknowledged_at = COALESCE(acknowledged_at, $2), received_at = $2, revision = revision + 1 WHERE id = $1",
    };
    sqlx::query(sql).bind(id).bind(now).execute(&mut *tx).await?;
    if kind == EventKind::Resolved || acknowledged.is_none() {
        insert_events(&mut tx, &[(id, kind, origin.source.as_str())], now).await?;
    }
    tx.commit().await?;
    Ok(Some((service_id, fingerprint.to_string())))
}

pub async fn alerts(p: &crate::Pools<DB>, query: &AlertQuery, now: i64) -> Result<Vec<AlertRow>> {
    let by_service = if query.service.is_some() { " AND service_id = $2" } else { "" };
    let limit = query.limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
    let sql = if query.include_resolved {
        format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE $1 = $1{by_service} ORDER BY id DESC{limit}")
    } else {
        format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE latest = 1 AND (ends_at IS NULL OR ends_at > $1){by_service} ORDER BY fingerprint, service_id{limit}")
    };
    let mut q = sqlx::query_as::<_, AlertRow>(trusted(sql)).bind(now);
    if let Some(service) = &query.service {
        q = q.bind(service);
    }
    Ok(q.fetch_all(&p.reader).await?)
}

/// An alert and its history, read from one snapshot so the two agree.
pub async fn alert(p: &crate::Pools<DB>, id: i64) -> Result<Option<(AlertRow, Vec<EventRow>)>> {
    let mut tx = p.reader.begin_with(BEGIN_SNAPSHOT).await?;
    let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1");
    let row: Option<AlertRow> = sqlx::query_as(trusted(sql)).bind(id).fetch_optional(&mut *tx).await?;
    let Some(row) = row else { return Ok(None) };
    let events = sqlx::query_as("SELECT seq, alert_id, kind, at, source FROM alert_events WHERE alert_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some((row, events)))
}

pub async fn unhandled_events(p: &crate::Pools<DB>, limit: i64) -> Result<Vec<EventRow>> {
    Ok(sqlx::query_as("SELECT seq, alert_id, kind, at, source FROM alert_events WHERE handled_at IS NULL ORDER BY seq LIMIT $1")
        .bind(limit)
        .fetch_all(&p.reader)
        .await?)
}

pub async fn mark_handled(p: &crate::Pools<DB>, seqs: &[i64], now: i64) -> Result<()> {
    for chunk in seqs.chunks(500) {
        let sql = format!("UPDATE alert_events SET handled_at = {} WHERE seq IN ({})", placeholders(1, 1), placeholders(2, chunk.len()));
        let mut q = sqlx::query(trusted(sql)).bind(now);
        for seq in chunk {
            q = q.bind(*seq);
        }
        q.execute(&p.writer).await?;
    }
    Ok(())
}

/// Resolves alerts whose end has passed; returns their keys.
pub async fn resolve_expired(p: &crate::Pools<DB>, now: i64, limit: i64) -> Result<Vec<AlertKey>> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let sql = format!(
        "SELECT id, ends_at, service_id, fingerprint FROM alerts WHERE firing = 1 AND ends_at <= $1 ORDER BY ends_at LIMIT $2{SKIP_LOCKED}"
    );
    let due: Vec<(i64, i64, String, String)> = sqlx::query_as(trusted(sql)).bind(now).bind(limit).fetch_all(&mut *tx).await?;
    for (id, ends_at, ..) in &due {
        sqlx::query("UPDATE alerts SET firing = 0, resolved_at = $2, revision = revision + 1 WHERE id = $1")
            .bind(id)
            .bind(ends_at)
            .execute(&mut *tx)
            .await?;
    }
    let events: Vec<(i64, EventKind, &str)> = due.iter().map(|(id, ..)| (*id, EventKind::Resolved, "expiry")).collect();
    insert_events(&mut tx, &events, now).await?;
    tx.commit().await?;
    Ok(due.into_iter().map(|(_, _, service, fingerprint)| (service, fingerprint)).collect())
}

pub async fn purge(p: &crate::Pools<DB>, before: i64, silences_before: i64) -> Result<u64> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let alerts = sqlx::query("DELETE FROM alerts WHERE firing = 0 AND resolved_at < $1").bind(before).execute(&mut *tx).await?;
    let silences = sqlx::query("DELETE FROM silences WHERE ends_at < $1").bind(silences_before).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(alerts.rows_affected() + silences.rows_affected())
}

pub async fn silences(p: &crate::Pools<DB>, service: Option<&str>) -> Result<Vec<SilenceRow>> {
    let rows = match service {
        Some(service) => {
            let sql = format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE service_id = $1 OR service_id IS NULL ORDER BY id");
            sqlx::query_as(trusted(sql)).bind(service).fetch_all(&p.reader).await?
        }
        None => {
            let sql = format!("SELECT {SILENCE_COLUMNS} FROM silences ORDER BY id");
            sqlx::query_as(trusted(sql)).fetch_all(&p.reader).await?
        }
    };
    Ok(rows)
}

pub async fn silence(p: &crate::Pools<DB>, id: &str) -> Result<Option<SilenceRow>> {
    let sql = format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE id = $1");
    Ok(sqlx::query_as(trusted(sql)).bind(id).fetch_optional(&p.reader).await?)
}

pub async fn save_silences(p: &crate::Pools<DB>, silences: &[Option<&Silence>], entries: Vec<muster_domain::audit::NewAuditEntry>, now: i64) -> Result<()> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    for s in silences.iter().flatten() {
        sqlx::query(
            "INSERT INTO silences (id, service_id, matchers, starts_at, ends_at, created_by, comment, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET matchers = excluded.matchers, \
             starts_at = excluded.starts_at, ends_at = excluded.ends_at, created_by = excluded.created_by, \
             comment = excluded.comment, updated_at = excluded.updated_at",
        )
        .bind(&s.id)
        .bind(&s.service)
        .bind(matchers_json(s))
        .bind(ms(s.starts_at))
        .bind(ms(s.ends_at))
        .bind(&s.created_by)
        .bind(&s.comment)
        .bind(ms(s.updated_at))
        .execute(&mut *tx)
        .await?;
    }
    // Alerts held by silences are looked at again at once: one may have ended early.
    sqlx::query("UPDATE held_alerts SET recheck_at = $1 WHERE reason = 'silenced' AND recheck_at > $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    audit_sql::append(&mut tx, now, entries).await?;
    tx.commit().await?;
    Ok(())
}

