// Incident queries, compiled once per database (see `per_dialect!`).

use muster_domain::incidents::grouping::{Placement, alert_title, maintenance, muted_until, place, truncate};
use muster_domain::incidents::pages::{page_prefix, paged_text};
use muster_domain::incidents::reports::{Candidate, flood, resemble};
use muster_domain::counted;
use muster_domain::incidents::rules::OPENED_BY_ALERT;
use muster_domain::incidents::{Action, Rules, group_key, transition};
use std::collections::{HashMap, HashSet};

type Tx<'a> = sqlx::Transaction<'a, DB>;

/// Takes the `incidents` engine lock for the transaction: whatever may open an
/// incident runs one at a time.
pub(crate) async fn lock(tx: &mut Tx<'_>) -> Result<()> {
    let sql = format!("SELECT name FROM engine_locks WHERE name = 'incidents'{LOCK}");
    let _: Option<(String,)> = sqlx::query_as(trusted(sql)).fetch_optional(&mut **tx).await?;
    Ok(())
}

/// Appends a timeline entry.
pub async fn timeline(tx: &mut Tx<'_>, incident: i64, at: i64, kind: &str, actor: &str, text: &str) -> Result<()> {
    sqlx::query("INSERT INTO incident_timeline (incident_id, at, kind, actor, text) VALUES ($1, $2, $3, $4, $5)")
        .bind(incident)
        .bind(at)
        .bind(kind)
        .bind(actor)
        .bind(text)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Timeline entries and alert memberships a busy transaction writes together, in the
/// order they happened, with a few multi-row statements instead of one per row.
#[derive(Default)]
struct Pending {
    /// Incidents opened, written before everything that refers to them.
    incidents: Vec<IncidentRow>,
    /// The id the next incident opened in this transaction takes (read once, under
    /// the `incidents` lock every opener holds, so ids follow each other without gaps).
    next_id: Option<i64>,
    /// (incident, at, kind, actor, text)
    entries: Vec<(i64, i64, &'static str, String, String)>,
    /// New escalations from step one: (incident, team, due at).
    escalations: Vec<(i64, String, i64)>,
    /// (incident, alert, joined at)
    joins: Vec<(i64, i64, i64)>,
    /// Alerts no longer held.
    released: Vec<i64>,
    /// Page messages for the outbox.
    messages: Vec<NewNotification>,
}

impl Pending {
    fn note(&mut self, incident: i64, at: i64, kind: &'static str, text: String) {
        self.entries.push((incident, at, kind, "muster".into(), text));
    }

    /// An id for an incident opened in this transaction.
    async fn incident_id(&mut self, tx: &mut Tx<'_>) -> Result<i64> {
        let id = match self.next_id {
            Some(id) => id,
            None => sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(id), 0) FROM incidents").fetch_one(&mut **tx).await? + 1,
        };
        self.next_id = Some(id + 1);
        Ok(id)
    }

    /// Writes what is pending, leaving it empty; `now` stamps the queued messages.
    async fn write(&mut self, tx: &mut Tx<'_>, now: i64) -> Result<()> {
        for chunk in self.incidents.chunks(200) {
            let sql = format!(
                "INSERT INTO incidents (id, service_id, group_key, state, severity, title, summary, opened_by, opened_at, updated_at) VALUES {}",
                value_rows(chunk.len(), 10)
            );
            let mut q = sqlx::query(trusted(sql));
            for row in chunk {
                q = q
                    .bind(row.id)
                    .bind(&row.service_id)
                    .bind(&row.group_key)
                    .bind(&row.state)
                    .bind(&row.severity)
                    .bind(&row.title)
                    .bind(&row.summary)
                    .bind(&row.opened_by)
                    .bind(row.opened_at)
                    .bind(row.updated_at);
            }
            q.execute(&mut **tx).await?;
        }
        for chunk in self.joins.chunks(300) {
            let sql = format!(
                "INSERT INTO incident_alerts (incident_id, alert_id, joined_at) VALUES {} ON CONFLICT (incident_id, alert_id) DO NOTHING",
                value_rows(chunk.len(), 3)
            );
            let mut q = sqlx::query(trusted(sql));
            for (incident, alert, at) in chunk {
                q = q.bind(*incident).bind(*alert).bind(*at);
            }
            q.execute(&mut **tx).await?;
        }
        for chunk in self.released.chunks(500) {
            let sql = format!("DELETE FROM held_alerts WHERE alert_id IN ({})", placeholders(1, chunk.len()));
            let mut q = sqlx::query(trusted(sql));
            for alert in chunk {
                q = q.bind(*alert);
            }
            q.execute(&mut **tx).await?;
        }
        notify_sql::insert(tx, now, &self.messages).await?;
        for chunk in self.escalations.chunks(300) {
            let rows: Vec<String> = (0..chunk.len()).map(|r| format!("({}, 0, 0, {})", placeholders(r * 3 + 1, 2), placeholders(r * 3 + 3, 1))).collect();
            let sql = format!("INSERT INTO escalations (incident_id, team, pass, step, due_at) VALUES {}", rows.join(", "));
            let mut q = sqlx::query(trusted(sql));
            for (incident, team, due) in chunk {
                q = q.bind(*incident).bind(team).bind(*due);
            }
            q.execute(&mut **tx).await?;
        }
        for chunk in self.entries.chunks(200) {
            let sql = format!("INSERT INTO incident_timeline (incident_id, at, kind, actor, text) VALUES {}", value_rows(chunk.len(), 5));
            let mut q = sqlx::query(trusted(sql));
            for (incident, at, kind, actor, text) in chunk {
                q = q.bind(*incident).bind(*at).bind(*kind).bind(actor).bind(text);
            }
            q.execute(&mut **tx).await?;
        }
        *self = Pending { next_id: self.next_id, ..Pending::default() };
        Ok(())
    }
}

/// An incident, locked for the transaction's writes.
async fn fetch(tx: &mut Tx<'_>, id: i64) -> Result<Option<IncidentRow>> {
    select(tx, id, LOCK).await
}

/// An incident; `lock` is the row-lock suffix (empty in read-only transactions).
async fn select(tx: &mut Tx<'_>, id: i64, lock: &str) -> Result<Option<IncidentRow>> {
    let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1{lock}");
    Ok(sqlx::query_as(trusted(sql)).bind(id).fetch_optional(&mut **tx).await?)
}

async fn fetch_or_not_found(tx: &mut Tx<'_>, id: i64) -> Result<IncidentRow> {
    fetch(tx, id).await?.ok_or_else(|| StoreError::NotFound(format!("no incident {}", number(id))))
}

/// A new incident in `triggered`; it, its `opened` entry and its team's escalation
/// from step one, due at once, are left in `pending` for the caller to write.
#[allow(clippy::too_many_arguments)]
async fn open(
    tx: &mut Tx<'_>,
    pending: &mut Pending,
    service: &str,
    group_key: &str,
    severity: Severity,
    title: &str,
    summary: &str,
    opened_by: &str,
    team: Option<&str>,
    now: i64,
) -> Result<IncidentRow> {
    let row = IncidentRow {
        id: pending.incident_id(tx).await?,
        service_id: service.to_string(),
        group_key: group_key.to_string(),
        state: State::Triggered.as_str().to_string(),
        severity: severity.as_str().to_string(),
        title: title.to_string(),
        summary: summary.to_string(),
        opened_by: opened_by.to_string(),
        opened_at: now,
        acknowledged_at: None,
        acknowledged_by: None,
        mitigated_at: None,
        resolved_at: None,
        resolved_by: None,
        merged_into: None,
        updated_at: now,
    };
    pending.incidents.push(row.clone());
    let paging = match team {
        Some(team) => {
            pending.escalations.push((row.id, team.to_string(), now));
            format!("; paging team {team}")
        }
        None => format!("; nobody is paged: service {service:?} is not in the catalog"),
    };
    pending.entries.push((row.id, now, "opened", opened_by.to_string(), format!("Opened: {title}{paging}")));
    Ok(row)
}

/// Moves an incident to `to` as `by`: stamps the state's time, stops its escalation
/// unless it is triggered again, cancels page messages still waiting for a later time,
/// and records it on the timeline.
async fn set_state(tx: &mut Tx<'_>, id: i64, to: State, by: &str, now: i64, text: &str) -> Result<IncidentRow> {
    let column = match to {
        State::Triggered => None,
        State::Acknowledged => Some("acknowledged_at = $3, acknowledged_by = $4"),
        State::Mitigated => Some("mitigated_at = $3"),
        State::Resolved => Some("resolved_at = $3, resolved_by = $4"),
    };
    let sql = format!(
        "UPDATE incidents SET state = $2, updated_at = $3{} WHERE id = $1 RETURNING {INCIDENT_COLUMNS}",
        column.map(|c| format!(", {c}")).unwrap_or_default()
    );
    let updated: IncidentRow = sqlx::query_as(trusted(sql))
        .bind(id)
        .bind(to.as_str())
        .bind(now)
        .bind(by)
        .fetch_one(&mut **tx)
        .await?;
    if to != State::Triggered {
        sqlx::query("DELETE FROM escalations WHERE incident_id = $1").bind(id).execute(&mut **tx).await?;
        notify_sql::cancel_waiting(tx, &page_prefix(id), now).await?;
    }
    timeline(tx, id, now, to.as_str(), by, text).await?;
    Ok(updated)
}

fn audit_entry(actor: &Actor, action: &str, id: i64, before: Option<&str>, after: &str) -> muster_domain::audit::NewAuditEntry {
    actor.entry(action, format!("incident:{}", number(id)), before.map(str::to_owned), Some(after.to_owned()))
}

pub async fn list(p: &crate::Pools<DB>, states: &[State], service: Option<&str>, before: i64, limit: i64) -> Result<Vec<IncidentRow>> {
    // States are the domain's own constant names, never caller text.
    let state_filter = if states.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
        format!(" AND state IN ({})", names.join(", "))
    };
    let sql = format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id < $1 AND ($2 IS NULL OR service_id = $2){state_filter} ORDER BY id DESC LIMIT $3"
    );
    Ok(sqlx::query_as(trusted(sql)).bind(before).bind(service).bind(limit).fetch_all(&p.reader).await?)
}

pub async fn detail(p: &crate::Pools<DB>, id: i64) -> Result<Option<DetailRows>> {
    let mut tx = p.reader.begin_with(BEGIN_SNAPSHOT).await?;
    let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1");
    let Some(incident) = sqlx::query_as(trusted(sql)).bind(id).fetch_optional(&mut *tx).await? else {
        return Ok(None);
    };
    let alerts = sqlx::query_as(
        "SELECT a.id, a.fingerprint, a.labels, a.firing, a.starts_at, ia.joined_at FROM incident_alerts ia \
         JOIN alerts a ON a.id = ia.alert_id WHERE ia.incident_id = $1 ORDER BY ia.joined_at, a.id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let sql = format!("SELECT {REPORT_COLUMNS} FROM reports WHERE incident_id = $1 ORDER BY id");
    let reports = sqlx::query_as(trusted(sql)).bind(id).fetch_all(&mut *tx).await?;
    let timeline = sqlx::query_as("SELECT at, kind, actor, text FROM incident_timeline WHERE incident_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    let pages = sqlx::query_as("SELECT pass, step, due_at, fired_at, people FROM incident_pages WHERE incident_id = $1 ORDER BY due_at, pass, step")
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    let next_step = sqlx::query_as("SELECT pass, step, due_at FROM escalations WHERE incident_id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    let changes = sqlx::query_as(
        "SELECT c.id, c.title, c.state, 'caused' FROM change_incidents ci JOIN changes c ON c.id = ci.change_id WHERE ci.incident_id = $1 \
         UNION ALL SELECT c.id, c.title, c.state, 'fixes' FROM change_fixes cf JOIN changes c ON c.id = cf.change_id WHERE cf.incident_id = $1 \
         ORDER BY 1, 4",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(DetailRows { incident, alerts, reports, timeline, pages, next_step, changes }))
}

pub async fn homes(p: &crate::Pools<DB>, ids: &[i64]) -> Result<Vec<(i64, String, Option<i64>)>> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(500) {
        let sql = format!("SELECT id, service_id, merged_into FROM incidents WHERE id IN ({})", placeholders(1, chunk.len()));
        let mut q = sqlx::query_as::<_, (i64, String, Option<i64>)>(trusted(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        rows.extend(q.fetch_all(&p.reader).await?);
    }
    Ok(rows)
}

pub async fn declare(p: &crate::Pools<DB>, actor: &Actor, new: &NewIncident, now: i64) -> Result<IncidentRow> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    lock(&mut tx).await?;
    // Declared incidents hold no alert group: their key is their own.
    let key = format!("declared:{}", random_token(16));
    let mut pending = Pending::default();
    let row = open(&mut tx, &mut pending, &new.service, &key, new.severity, &new.title, &new.summary, &new.by, new.team.as_deref(), now).await?;
    pending.write(&mut tx, now).await?;
    audit_sql::append(&mut tx, now, vec![audit_entry(actor, "incident.declare", row.id, None, "triggered")]).await?;
    tx.commit().await?;
    Ok(row)
}

/// The open incident of `group_key` on `service`, if any.
pub(crate) async fn open_for_group(tx: &mut Tx<'_>, service: &str, group_key: &str) -> Result<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM incidents WHERE service_id = $1 AND group_key = $2 AND state <> 'resolved'")
        .bind(service)
        .bind(group_key)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|(id,)| id))
}

/// Opens an incident Muster raises by itself (a stalled renewal, an item about to
/// expire, an expired certificate) on `service` for `group_key`, paging `team`,
/// unless one is open for that group already; answers its id and whether it opened
/// now. Takes the `incidents` lock.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn raise(tx: &mut Tx<'_>, service: &str, group_key: &str, severity: Severity, title: &str, summary: &str, team: &str, now: i64) -> Result<(i64, bool)> {
    lock(tx).await?;
    if let Some(id) = open_for_group(tx, service, group_key).await? {
        return Ok((id, false));
    }
    let mut pending = Pending::default();
    let row = self::open(tx, &mut pending, service, group_key, severity, title, summary, "muster", Some(team), now).await?;
    pending.write(tx, now).await?;
    Ok((row.id, true))
}

/// Resolves an incident Muster raised once its reason is gone (unless someone
/// resolved it already), saying why on its timeline.
pub(crate) async fn settle(tx: &mut Tx<'_>, id: i64, why: &str, now: i64) -> Result<()> {
    // Whatever changes incidents takes their lock before any incident's row.
    lock(tx).await?;
    let Some(row) = select(tx, id, LOCK).await? else {
        return Ok(());
    };
    if state_of(&row.state)? != State::Resolved {
        set_state(tx, id, State::Resolved, "muster", now, why).await?;
    }
    Ok(())
}

pub async fn act(p: &crate::Pools<DB>, actor: &Actor, id: i64, by: &str, act: &Act, now: i64) -> Result<IncidentRow> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    if matches!(act, Act::Merge { .. }) {
        // Before the incident rows: a merge moves fixes, which change writers link
        // under this lock.
        lock(&mut tx).await?;
    }
    let row = fetch_or_not_found(&mut tx, id).await?;
    let state = state_of(&row.state)?;
    let action = match act {
        Act::Acknowledge => Action::Acknowledge,
        Act::Mitigate => Action::Mitigate,
        Act::Resolve { .. } => Action::Resolve,
        Act::Note(_) => Action::Note,
        Act::Severity(_) => Action::Severity,
        Act::Merge { .. } => Action::Merge,
    };
    let to = transition(state, action).map_err(StoreError::Conflict)?;
    let reason = actor.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
    let updated = match (act, to) {
        (Act::Note(text), _) => {
            timeline(&mut tx, id, now, "note", by, text).await?;
            row
        }
        (Act::Severity(severity), _) => {
            let sql = format!("UPDATE incidents SET severity = $2, updated_at = $3 WHERE id = $1 RETURNING {INCIDENT_COLUMNS}");
            let updated: IncidentRow = sqlx::query_as(trusted(sql)).bind(id).bind(severity.as_str()).bind(now).fetch_one(&mut *tx).await?;
            let text = format!("Severity {} → {}{reason}", row.severity, severity.as_str());
            timeline(&mut tx, id, now, "severity", by, &text).await?;
            updated
        }
        (Act::Merge { into }, Some(to)) => {
            if *into == id {
                return Err(StoreError::Conflict("cannot merge: an incident cannot be merged into itself".into()));
            }
            let target = fetch(&mut tx, *into)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("cannot merge: no incident {}", number(*into))))?;
            if !state_of(&target.state)?.is_open() {
                return Err(StoreError::Conflict(format!("cannot merge: {} is resolved", number(*into))));
            }
            let moved = sqlx::query("UPDATE incident_alerts SET incident_id = $2 WHERE incident_id = $1 AND alert_id NOT IN (SELECT alert_id FROM incident_alerts WHERE incident_id = $2)")
                .bind(id)
                .bind(into)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let reports = sqlx::query("UPDATE reports SET incident_id = $2 WHERE incident_id = $1").bind(id).bind(into).execute(&mut *tx).await?.rows_affected();
            // Its fixes fix what it became part of; each change's log says so.
            let moving: Vec<(i64,)> = sqlx::query_as("SELECT change_id FROM change_fixes WHERE incident_id = $1 ORDER BY change_id").bind(id).fetch_all(&mut *tx).await?;
            let fixes = sqlx::query("UPDATE change_fixes SET incident_id = $2 WHERE incident_id = $1 AND change_id NOT IN (SELECT change_id FROM change_fixes WHERE incident_id = $2)")
                .bind(id)
                .bind(into)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM change_fixes WHERE incident_id = $1").bind(id).execute(&mut *tx).await?;
            let text = format!("Fixes {} now: {} was merged into it (by {by})", number(*into), number(id));
            for (change,) in moving {
                sqlx::query("INSERT INTO change_log (change_id, at, kind, actor, text) VALUES ($1, $2, 'fix_merged', $3, $4)")
                    .bind(change)
                    .bind(now)
                    .bind(by)
                    .bind(&text)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE incidents SET merged_into = $2 WHERE id = $1").bind(id).bind(into).execute(&mut *tx).await?;
            let (moved, reports) = (counted(moved as usize, "alert"), counted(reports as usize, "report"));
            let fixes = match fixes {
                0 => String::new(),
                n => format!("; {} linked as its fix{} now {} this one", counted(n as usize, "change"), if n == 1 { "" } else { "es" }, if n == 1 { "fixes" } else { "fix" }),
            };
            let text = format!("{} merged in by {by}: {moved} and {reports} moved here{fixes}{reason}", number(id));
            timeline(&mut tx, *into, now, "merged", by, &text).await?;
            set_state(&mut tx, id, to, by, now, &format!("Merged into {}{reason}", number(*into))).await?
        }
        (Act::Resolve { refire_after }, Some(to)) => {
            // Alerts still firing are held: they open a new incident only if they
            // still fire after `refire_after`.
            let recheck = now + refire_after.as_millis() as i64;
            let held = sqlx::query(
                "INSERT INTO held_alerts (alert_id, reason, recheck_at) \
                 SELECT ia.alert_id, 'refire', $2 FROM incident_alerts ia JOIN alerts a ON a.id = ia.alert_id \
                 WHERE ia.incident_id = $1 AND a.firing = 1 \
                 ON CONFLICT (alert_id) DO UPDATE SET reason = excluded.reason, recheck_at = excluded.recheck_at",
            )
            .bind(id)
            .bind(recheck)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let still = if held > 0 { format!(" ({held} alerts still firing; a new incident opens if they still fire in {refire_after:#})") } else { String::new() };
            set_state(&mut tx, id, to, by, now, &format!("Resolved by {by}{reason}{still}")).await?
        }
        (_, Some(to)) => {
            let text = format!("{} by {by}{reason}", capitalised(to.as_str()));
            set_state(&mut tx, id, to, by, now, &text).await?
        }
        (_, None) => row,
    };
    audit_sql::append(&mut tx, now, vec![audit_entry(actor, &format!("incident.{}", action.as_str()), id, Some(state.as_str()), &updated.state)]).await?;
    tx.commit().await?;
    Ok(updated)
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[derive(sqlx::FromRow)]
struct AlertFacts {
    id: i64,
    service_id: String,
    labels: String,
    annotations: String,
    firing: i64,
    latest: i64,
}

/// The open incident of each group of the batch's services, read in one go and kept
/// current as the batch opens incidents and raises severities.
#[derive(Default)]
struct OpenGroups(HashMap<(String, String), (i64, Severity)>);

impl OpenGroups {
    async fn load(tx: &mut Tx<'_>, services: &[&str]) -> Result<OpenGroups> {
        let mut groups = OpenGroups::default();
        for chunk in services.chunks(500) {
            let sql = format!(
                "SELECT id, service_id, group_key, severity FROM incidents WHERE state <> 'resolved' AND service_id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (i64, String, String, String)>(trusted(sql));
            for service in chunk {
                q = q.bind(*service);
            }
            for (id, service, key, severity) in q.fetch_all(&mut **tx).await? {
                groups.0.insert((service, key), (id, severity_of(&severity)?));
            }
        }
        Ok(groups)
    }

    fn get(&self, service: &str, key: &str) -> Option<(i64, Severity)> {
        self.0.get(&(service.to_string(), key.to_string())).copied()
    }
}

async fn alert_facts(tx: &mut Tx<'_>, ids: &[i64]) -> Result<HashMap<i64, AlertFacts>> {
    let mut facts = HashMap::new();
    for chunk in ids.chunks(500) {
        let sql = format!("SELECT id, service_id, labels, annotations, firing, latest FROM alerts WHERE id IN ({})", placeholders(1, chunk.len()));
        let mut q = sqlx::query_as::<_, AlertFacts>(trusted(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&mut **tx).await? {
            facts.insert(row.id, row);
        }
    }
    Ok(facts)
}

/// The open incident each alert is in, if any.
async fn open_memberships(tx: &mut Tx<'_>, ids: &[i64]) -> Result<HashMap<i64, i64>> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT ia.alert_id, ia.incident_id FROM incident_alerts ia JOIN incidents i ON i.id = ia.incident_id \
             WHERE i.state <> 'resolved' AND ia.alert_id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query_as::<_, (i64, i64)>(trusted(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        found.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(found)
}

/// The in-progress changes that suppress alerts on each of `services`: (change,
/// planned end). Read under the `incidents` lock, which a change's end also takes.
async fn maintenance_windows(tx: &mut Tx<'_>, services: &[&str]) -> Result<HashMap<String, Vec<(i64, Timestamp)>>> {
    let mut windows: HashMap<String, Vec<(i64, Timestamp)>> = HashMap::new();
    for chunk in services.chunks(500) {
        let sql = format!(
            "SELECT s.service_id, c.id, c.end_at FROM change_services s JOIN changes c ON c.id = s.change_id \
             WHERE c.state = 'in_progress' AND c.suppress_alerts = 1 AND s.service_id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query_as::<_, (String, i64, i64)>(trusted(sql));
        for service in chunk {
            q = q.bind(*service);
        }
        for (service, change, end) in q.fetch_all(&mut **tx).await? {
            windows.entry(service).or_default().push((change, from_ms(end)?));
        }
    }
    Ok(windows)
}

/// Records a firing alert as "during maintenance" of `change` (once: a later look
/// leaves the change's log alone) and holds it until `until`.
async fn hold_for_maintenance(tx: &mut Tx<'_>, alert: i64, name: &str, service: &str, change: i64, until: Timestamp, at: i64) -> Result<()> {
    let recorded: Option<(i64,)> = sqlx::query_as("INSERT INTO change_alerts (change_id, alert_id, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING change_id")
        .bind(change)
        .bind(alert)
        .bind(at)
        .fetch_optional(&mut **tx)
        .await?;
    if recorded.is_some() {
        let text = format!("Alert #{alert} {name} on {service} during maintenance: recorded, not paged");
        sqlx::query("INSERT INTO change_log (change_id, at, kind, actor, text) VALUES ($1, $2, 'maintenance_alert', 'muster', $3)")
            .bind(change)
            .bind(at)
            .bind(text)
            .execute(&mut **tx)
            .await?;
    }
    hold(tx, alert, "maintenance", until).await
}

/// Holds a firing alert out of incidents until `until`, for `reason` (`silenced`,
/// `maintenance`, `refire`), replacing any earlier hold.
async fn hold(tx: &mut Tx<'_>, alert: i64, reason: &str, until: Timestamp) -> Result<()> {
    sqlx::query(
        "INSERT INTO held_alerts (alert_id, reason, recheck_at) VALUES ($1, $2, $3) \
         ON CONFLICT (alert_id) DO UPDATE SET reason = excluded.reason, recheck_at = excluded.recheck_at",
    )
    .bind(alert)
    .bind(reason)
    .bind(ms(until))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One thing grouping looks at, in order: an alert event, or a held alert due again.
enum Work {
    Event { kind: String, alert: i64 },
    Held { alert: i64, reason: String },
}

/// The services of the alerts grouping looks at next (empty: nothing to do), read
/// without taking the writer.
pub async fn grouping_due(p: &crate::Pools<DB>, now: i64, limit: i64) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT a.service_id FROM alerts a \
         JOIN (SELECT alert_id FROM alert_events WHERE handled_at IS NULL ORDER BY seq LIMIT $2) e ON e.alert_id = a.id \
         UNION SELECT a.service_id FROM alerts a \
         JOIN (SELECT alert_id FROM held_alerts WHERE recheck_at <= $1 ORDER BY recheck_at LIMIT $2) h ON h.alert_id = a.id",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&p.reader)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

pub async fn group(p: &crate::Pools<DB>, grouping: &Grouping<'_>, secrets: &SecretBox, now: Timestamp, limit: i64) -> Result<GroupingPass> {
    let at = ms(now);
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    lock(&mut tx).await?;
    let held: Vec<(i64, String)> = sqlx::query_as("SELECT alert_id, reason FROM held_alerts WHERE recheck_at <= $1 ORDER BY recheck_at LIMIT $2")
        .bind(at)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    let events: Vec<(i64, i64, String)> = sqlx::query_as("SELECT seq, alert_id, kind FROM alert_events WHERE handled_at IS NULL ORDER BY seq LIMIT $1")
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    let drained = (events.len() as i64) < limit;
    if held.is_empty() && events.is_empty() {
        return Ok(GroupingPass { looked_at: 0, drained });
    }
    let seqs: Vec<i64> = events.iter().map(|e| e.0).collect();
    let work: Vec<Work> = held
        .into_iter()
        .map(|(alert, reason)| Work::Held { alert, reason })
        .chain(events.into_iter().map(|(_, alert, kind)| Work::Event { kind, alert }))
        .collect();
    let ids: Vec<i64> = work.iter().map(|w| match w { Work::Event { alert, .. } | Work::Held { alert, .. } => *alert }).collect::<HashSet<_>>().into_iter().collect();
    let facts = alert_facts(&mut tx, &ids).await?;
    let mut member = open_memberships(&mut tx, &ids).await?;
    let services: Vec<&str> = facts.values().map(|f| f.service_id.as_str()).collect::<HashSet<_>>().into_iter().collect();
    let mut groups = OpenGroups::load(&mut tx, &services).await?;
    let windows = maintenance_windows(&mut tx, &services).await?;
    let mut pending = Pending::default();
    let mut opened: Vec<Due> = Vec::new();
    let mut resolved_in: Vec<i64> = Vec::new();
    let catalog = grouping.catalog;
    for item in &work {
        let (alert_id, firing_now) = match item {
            Work::Event { kind, alert } if kind == "fired" => (*alert, true),
            Work::Held { alert, .. } => (*alert, false),
            Work::Event { kind, alert } => {
                if let Some(incident) = member.get(alert).copied() {
                    match kind.as_str() {
                        "resolved" => resolved_in.push(incident),
                        "acknowledged" => {
                            // The incident may be one this batch opened and has not written yet.
                            pending.write(&mut tx, at).await?;
                            let row = fetch_or_not_found(&mut tx, incident).await?;
                            if row.state == "triggered" {
                                let text = format!("Acknowledged by a PagerDuty acknowledge event on alert #{alert}");
                                set_state(&mut tx, incident, State::Acknowledged, "pagerduty", at, &text).await?;
                            }
                        }
                        _ => {}
                    }
                }
                if kind == "resolved" {
                    sqlx::query("DELETE FROM held_alerts WHERE alert_id = $1").bind(alert).execute(&mut *tx).await?;
                }
                continue;
            }
        };
        let Some(alert) = facts.get(&alert_id) else { continue };
        // A held alert is looked at again only while it is the current, firing instance.
        if !firing_now && (alert.firing == 0 || alert.latest == 0) {
            sqlx::query("DELETE FROM held_alerts WHERE alert_id = $1").bind(alert_id).execute(&mut *tx).await?;
            continue;
        }
        let labels = crate::signals::labels(&alert.labels)?;
        let service = catalog.service(&alert.service_id);
        let rules = service.map(Rules::of).unwrap_or_default();
        let key = group_key(&labels, &rules.group_by);
        let muted = muted_until(grouping.silences, &alert.service_id, &labels, now);
        let during = windows.get(&alert.service_id).and_then(|w| maintenance(w, now));
        let open_in_group = groups.get(&alert.service_id, &key);
        let severity = Severity::of_labels(&labels);
        let name = labels.get("alertname").map(String::as_str).unwrap_or("alert");
        let why = match item {
            Work::Held { reason, .. } if reason == "silenced" => " (its silence ended)",
            Work::Held { reason, .. } if reason == "maintenance" => " (still firing after its maintenance ended)",
            Work::Held { .. } => " (still firing after its incident was resolved by hand)",
            Work::Event { .. } => "",
        };
        let incident = match place(member.contains_key(&alert_id), muted, during, open_in_group.map(|g| g.0)) {
            Placement::Stay => continue,
            Placement::Maintenance { change, until } => {
                hold_for_maintenance(&mut tx, alert_id, name, &alert.service_id, change, until, at).await?;
                continue;
            }
            Placement::Hold { until } => {
                hold(&mut tx, alert_id, "silenced", until).await?;
                continue;
            }
            Placement::Join(incident) => {
                let current = open_in_group.map(|g| g.1).unwrap_or(severity);
                if severity < current {
                    // The incident may be one this batch opened and has not written yet.
                    pending.write(&mut tx, at).await?;
                    sqlx::query("UPDATE incidents SET severity = $2, updated_at = $3 WHERE id = $1").bind(incident).bind(severity.as_str()).bind(at).execute(&mut *tx).await?;
                    let text = format!("Severity {} → {} (alert #{alert_id})", current.as_str(), severity.as_str());
                    pending.note(incident, at, "severity", text);
                    groups.0.insert((alert.service_id.clone(), key.clone()), (incident, severity));
                }
                incident
            }
            Placement::Open => {
                let annotations = crate::signals::labels(&alert.annotations)?;
                let name = service.map(|s| s.name.as_str()).unwrap_or(&alert.service_id);
                let title = alert_title(&labels, &annotations, name);
                let summary = truncate(annotations.get("description").map(String::as_str).unwrap_or(""), 2000);
                let team = service.map(|s| s.owner.as_str());
                let row = open(&mut tx, &mut pending, &alert.service_id, &key, severity, &title, &summary, OPENED_BY_ALERT, team, at).await?;
                opened.extend(team.map(|team| (row.id, team.to_string(), 0, 0, at)));
                groups.0.insert((alert.service_id.clone(), key.clone()), (row.id, severity));
                row.id
            }
        };
        pending.joins.push((incident, alert_id, at));
        pending.released.push(alert_id);
        member.insert(alert_id, incident);
        pending.note(incident, at, "alert_joined", format!("Alert #{alert_id} {name} joined{why}"));
        if alert.firing == 0 {
            resolved_in.push(incident);
        }
    }
    pending.write(&mut tx, at).await?;
    resolved_in.sort_unstable();
    resolved_in.dedup();
    for incident in resolved_in {
        auto_resolve(&mut tx, catalog, incident, at).await?;
    }
    // Step one fires with the opening: nobody waits for the escalation engine's turn.
    fire(&mut tx, grouping.escalator, secrets, opened, at).await?;
    for chunk in seqs.chunks(500) {
        let sql = format!("UPDATE alert_events SET handled_at = {} WHERE seq IN ({})", placeholders(1, 1), placeholders(2, chunk.len()));
        let mut q = sqlx::query(trusted(sql)).bind(at);
        for seq in chunk {
            q = q.bind(*seq);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(GroupingPass { looked_at: work.len(), drained })
}

/// Once every alert of an open incident has resolved: resolves it when its service's
/// rules say so, else says so on the timeline.
async fn auto_resolve(tx: &mut Tx<'_>, catalog: &Catalog, incident: i64, at: i64) -> Result<()> {
    let firing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incident_alerts ia JOIN alerts a ON a.id = ia.alert_id WHERE ia.incident_id = $1 AND a.firing = 1")
        .bind(incident)
        .fetch_one(&mut **tx)
        .await?;
    let Some(row) = fetch(tx, incident).await? else { return Ok(()) };
    if firing > 0 || row.state == "resolved" {
        return Ok(());
    }
    let rules = catalog.service(&row.service_id).map(Rules::of).unwrap_or_default();
    if rules.resolves_itself(&row.opened_by) {
        set_state(tx, incident, State::Resolved, "muster", at, "Resolved: every alert has resolved").await?;
    } else if rules.auto_resolve {
        timeline(tx, incident, at, "alerts_resolved", "muster", "Every alert has resolved; an incident opened by a person or by reports is resolved by hand").await?;
    } else {
        timeline(tx, incident, at, "alerts_resolved", "muster", "Every alert has resolved; this service's incidents are resolved by hand").await?;
    }
    Ok(())
}

pub async fn due_teams(p: &crate::Pools<DB>, now: i64, limit: i64) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT team FROM (SELECT team FROM escalations WHERE due_at <= $1 ORDER BY due_at LIMIT $2) due")
        .bind(now)
        .bind(limit)
        .fetch_all(&p.reader)
        .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

pub async fn next_due(p: &crate::Pools<DB>) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT MIN(due_at) FROM escalations").fetch_one(&p.reader).await?)
}

/// The most steps one escalation fires in one go (a long outage caught up after
/// downtime fires every missed step, each once).
const MAX_STEPS_AT_ONCE: usize = 1000;

/// What one due escalation does in this transaction, in order.
enum Fired {
    Skipped(String),
    Page(Page),
}

/// Incidents by id, locked for the transaction's writes.
async fn rows_by_id(tx: &mut Tx<'_>, ids: &[i64]) -> Result<HashMap<i64, IncidentRow>> {
    let mut rows = HashMap::new();
    for chunk in ids.chunks(500) {
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id IN ({}){LOCK}", placeholders(1, chunk.len()));
        let mut q = sqlx::query_as::<_, IncidentRow>(trusted(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        rows.extend(q.fetch_all(&mut **tx).await?.into_iter().map(|r| (r.id, r)));
    }
    Ok(rows)
}

/// Distinct organisations that reported into each incident (absent: none).
async fn reporting_organisations(tx: &mut Tx<'_>, ids: &[i64]) -> Result<HashMap<i64, i64>> {
    let mut counts = HashMap::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT incident_id, COUNT(DISTINCT organisation) FROM reports WHERE incident_id IN ({}) GROUP BY incident_id",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query_as::<_, (i64, i64)>(trusted(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        counts.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(counts)
}

/// Records pages; returns the (incident, pass, step) of those not recorded before.
async fn record_pages(tx: &mut Tx<'_>, pages: &[(i64, &Page)], now: i64) -> Result<HashSet<(i64, i64, i64)>> {
    let mut recorded = HashSet::new();
    for chunk in pages.chunks(200) {
        let sql = format!(
            "INSERT INTO incident_pages (incident_id, pass, step, due_at, fired_at, people) VALUES {} \
             ON CONFLICT (incident_id, pass, step) DO NOTHING RETURNING incident_id, pass, step",
            value_rows(chunk.len(), 6)
        );
        let mut q = sqlx::query_as::<_, (i64, i64, i64)>(trusted(sql));
        for (incident, page) in chunk {
            q = q
                .bind(*incident)
                .bind(page.pass as i64)
                .bind(page.step as i64)
                .bind(ms(page.at))
                .bind(now)
                .bind(serde_json::to_string(&page.people).expect("names serialise"));
        }
        recorded.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(recorded)
}

/// Fires the due steps of up to `limit` escalations in one transaction: the pages are
/// recorded first (a page already recorded, by another server, is not sent again),
/// then messages (with signed acknowledgement links) and one timeline entry per step for
/// those recorded, each kind in a few multi-row statements.
pub async fn escalate(p: &crate::Pools<DB>, escalator: &dyn Escalator, secrets: &SecretBox, now: i64, limit: i64) -> Result<usize> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let sql = format!("SELECT incident_id, team, pass, step, due_at FROM escalations WHERE due_at <= $1 ORDER BY due_at LIMIT $2{SKIP_LOCKED}");
    let due: Vec<Due> = sqlx::query_as(trusted(sql)).bind(now).bind(limit).fetch_all(&mut *tx).await?;
    let fired = fire(&mut tx, escalator, secrets, due, now).await?;
    tx.commit().await?;
    Ok(fired)
}

/// An escalation due: (incident, team, pass, step, due at).
type Due = (i64, String, i64, i64, i64);

/// Fires the steps of `due` escalations that are due at `now`, as `escalate` describes,
/// inside the caller's transaction; returns the steps recorded.
async fn fire(tx: &mut Tx<'_>, escalator: &dyn Escalator, secrets: &SecretBox, due: Vec<Due>, now: i64) -> Result<usize> {
    let ids: Vec<i64> = due.iter().map(|d| d.0).collect();
    let mut rows = rows_by_id(tx, &ids).await?;
    let reported = reporting_organisations(tx, &ids).await?;
    let (mut ended, mut moved, mut plans) = (Vec::new(), Vec::new(), Vec::new());
    for (incident_id, team, pass, step, due_at) in due {
        let row = rows.remove(&incident_id).ok_or_else(|| StoreError::NotFound(format!("no incident {}", number(incident_id))))?;
        if row.state != "triggered" {
            ended.push(incident_id);
            continue;
        }
        let mut cursor = Some(Cursor { pass: pass as u32, step: step as usize, due: from_ms(due_at)? });
        let mut fired = Vec::new();
        while let Some(at) = cursor.filter(|c| ms(c.due) <= now && fired.len() < MAX_STEPS_AT_ONCE) {
            let Some((page, next)) = escalator.fire(&team, at) else { break };
            cursor = next;
            fired.push(match page {
                Some(page) => Fired::Page(page),
                None => Fired::Skipped(format!("Step {} of pass {} reached nobody; skipped", at.step + 1, at.pass + 1)),
            });
        }
        let done = match cursor {
            Some(next) => {
                moved.push((incident_id, next));
                false
            }
            None if !fired.is_empty() => {
                ended.push(incident_id);
                true
            }
            None => false,
        };
        plans.push((row.read()?, fired, done));
    }
    let pages: Vec<(i64, &Page)> = plans
        .iter()
        .flat_map(|(incident, fired, _)| {
            fired.iter().filter_map(move |f| match f {
                Fired::Page(page) => Some((incident.id, page)),
                Fired::Skipped(_) => None,
            })
        })
        .collect();
    let recorded = record_pages(tx, &pages, now).await?;
    let mut pending = Pending::default();
    for (incident, fired, done) in &plans {
        let organisations = reported.get(&incident.id).copied().unwrap_or(0) as usize;
        for step in fired {
            let page = match step {
                Fired::Skipped(text) => {
                    pending.note(incident.id, now, "step_skipped", text.clone());
                    continue;
                }
                // Fired already: never twice.
                Fired::Page(page) if !recorded.contains(&(incident.id, page.pass as i64, page.step as i64)) => continue,
                Fired::Page(page) => page,
            };
            let mut reached = Vec::new();
            for person in &page.people {
                let token = ack_token(secrets, incident, person);
                let messages = escalator.messages(incident, organisations, page, person, &token);
                let channels: Vec<&str> = messages.iter().map(|m| m.channel.as_str()).collect();
                reached.push((person.as_str(), channels));
                pending.messages.extend(messages);
            }
            pending.note(incident.id, now, "paged", paged_text(page, &reached));
        }
        if *done {
            pending.note(incident.id, now, "escalation_done", "That was the policy's last step: nobody more will be paged for this incident".into());
        }
    }
    for chunk in ended.chunks(500) {
        let sql = format!("DELETE FROM escalations WHERE incident_id IN ({})", placeholders(1, chunk.len()));
        let mut q = sqlx::query(trusted(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut **tx).await?;
    }
    for chunk in moved.chunks(200) {
        let sql = format!(
            "UPDATE escalations SET pass = v.column2, step = v.column3, due_at = v.column4 FROM (VALUES {}) AS v WHERE escalations.incident_id = v.column1",
            value_rows(chunk.len(), 4)
        );
        let mut q = sqlx::query(trusted(sql));
        for (id, next) in chunk {
            q = q.bind(*id).bind(next.pass as i64).bind(next.step as i64).bind(ms(next.due));
        }
        q.execute(&mut **tx).await?;
    }
    pending.write(tx, now).await?;
    Ok(recorded.len())
}

/// The link `claim` names, when Muster signed it for that incident; `lock` is the
/// row-lock suffix for writers.
async fn link(tx: &mut Tx<'_>, secrets: &SecretBox, claim: &AckClaim, lock: &str) -> Result<Option<AckLink>> {
    let Some(row) = select(tx, claim.incident, lock).await? else { return Ok(None) };
    let incident = row.read()?;
    Ok(ack_signed(secrets, &incident, claim).then(|| AckLink { incident, person: claim.person.clone() }))
}

pub async fn ack_link(p: &crate::Pools<DB>, secrets: &SecretBox, claim: &AckClaim) -> Result<Option<AckLink>> {
    let mut tx = p.reader.begin_with(BEGIN_SNAPSHOT).await?;
    let link = link(&mut tx, secrets, claim, "").await?;
    tx.commit().await?;
    Ok(link)
}

pub async fn acknowledge_by_link(p: &crate::Pools<DB>, secrets: &SecretBox, claim: &AckClaim, now: i64) -> Result<LinkOutcome> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let Some(link) = link(&mut tx, secrets, claim, LOCK).await? else {
        return Ok(LinkOutcome::Unknown);
    };
    let (incident, person) = (claim.incident, claim.person.as_str());
    match link.incident.state {
        State::Resolved => return Ok(LinkOutcome::Expired(link)),
        State::Triggered => {}
        _ => return Ok(LinkOutcome::Unchanged(link)),
    }
    let text = format!("Acknowledged by {person} with the link in their page");
    let updated = set_state(&mut tx, incident, State::Acknowledged, person, now, &text).await?;
    let actor = Actor::new(format!("link:{person}"));
    audit_sql::append(&mut tx, now, vec![audit_entry(&actor, "incident.acknowledge", incident, Some("triggered"), "acknowledged")]).await?;
    tx.commit().await?;
    Ok(LinkOutcome::Acknowledged(updated.read()?))
}

async fn insert_report(tx: &mut Tx<'_>, actor: &Actor, r: &NewReport, now: i64) -> Result<ReportRow> {
    let sql = format!(
        "INSERT INTO reports (organisation, service_id, summary, details, reporter, channel, received_at, received_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {REPORT_COLUMNS}"
    );
    Ok(sqlx::query_as(trusted(sql))
        .bind(&r.organisation)
        .bind(&r.service)
        .bind(&r.summary)
        .bind(&r.details)
        .bind(&r.reporter)
        .bind(&r.channel)
        .bind(now)
        .bind(&actor.label)
        .fetch_one(&mut **tx)
        .await?)
}

/// Puts reports into an incident and says so on its timeline.
async fn join_reports(tx: &mut Tx<'_>, incident: i64, reports: &[(i64, String)], how: &str, now: i64) -> Result<()> {
    for (id, organisation) in reports {
        sqlx::query("UPDATE reports SET incident_id = $2 WHERE id = $1").bind(id).bind(incident).execute(&mut **tx).await?;
        timeline(tx, incident, now, "report_joined", "muster", &format!("Report #{id} from {organisation} joined{how}")).await?;
    }
    Ok(())
}

/// The newest open incident of `service`.
async fn newest_open(tx: &mut Tx<'_>, service: &str) -> Result<Option<i64>> {
    let found: Option<(i64,)> = sqlx::query_as("SELECT id FROM incidents WHERE service_id = $1 AND state <> 'resolved' ORDER BY id DESC LIMIT 1")
        .bind(service)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(found.map(|r| r.0))
}

/// Locks `incident` for the transaction and says whether it is still open (it may have
/// been resolved or merged since it was read). A closed one is let go at once (its lock
/// taken inside a savepoint that is rolled back), so a report that goes on to take the
/// `incidents` lock never holds a row grouping may wait for.
async fn still_open(tx: &mut Tx<'_>, incident: i64) -> Result<bool> {
    let mut savepoint = sqlx::Connection::begin(&mut **tx).await?;
    let open = fetch(&mut savepoint, incident).await?.is_some_and(|row| row.state != "resolved");
    if open {
        savepoint.commit().await?;
    } else {
        savepoint.rollback().await?;
    }
    Ok(open)
}

/// Places a report waiting in triage (see [`Store::add_report`]).
async fn place_report(tx: &mut Tx<'_>, catalog: &Catalog, report: &ReportRow, now: i64) -> Result<()> {
    let joined = [(report.id, report.organisation.clone())];
    let Some(service_id) = &report.service_id else {
        // Matched against the newest 500 open incidents.
        const NEWEST_OPEN: &str = "FROM incidents WHERE state <> 'resolved' ORDER BY id DESC LIMIT 500";
        let open_incidents: Vec<(i64, String, String, String)> = sqlx::query_as(trusted(format!("SELECT id, title, summary, service_id {NEWEST_OPEN}")))
            .fetch_all(&mut **tx)
            .await?;
        // The newest 20 report summaries of each of those incidents, in one read.
        let recent: Vec<(i64, String)> = sqlx::query_as(trusted(format!(
            "SELECT incident_id, summary FROM (SELECT incident_id, summary, ROW_NUMBER() OVER (PARTITION BY incident_id ORDER BY id DESC) AS n \
             FROM reports WHERE incident_id IN (SELECT id {NEWEST_OPEN})) recent WHERE n <= 20"
        )))
        .fetch_all(&mut **tx)
        .await?;
        let mut said: HashMap<i64, Vec<String>> = HashMap::new();
        for (incident, summary) in recent {
            said.entry(incident).or_default().push(summary);
        }
        let candidates: Vec<Candidate> = open_incidents
            .into_iter()
            .map(|(incident, title, summary, service)| {
                let reports = said.remove(&incident).unwrap_or_default();
                let text = [title, summary].into_iter().chain(reports).collect::<Vec<_>>().join(" ");
                Candidate { incident, text, services: vec![service] }
            })
            .collect();
        let uses = catalog.organisations.iter().find(|o| o.id == report.organisation).map(|o| o.uses.clone()).unwrap_or_default();
        if let Some(incident) = resemble(&format!("{} {}", report.summary, report.details), &uses, &candidates)
            && still_open(tx, incident).await?
        {
            join_reports(tx, incident, &joined, " (it resembles this incident)", now).await?;
        }
        return Ok(());
    };
    // Joining an open incident needs only that incident's row; a report that may open
    // one (the flood rule) takes the `incidents` lock and looks again.
    if let Some(incident) = newest_open(tx, service_id).await?
        && still_open(tx, incident).await?
    {
        return join_reports(tx, incident, &joined, "", now).await;
    }
    lock(tx).await?;
    if let Some(incident) = newest_open(tx, service_id).await? {
        return join_reports(tx, incident, &joined, "", now).await;
    }
    let service = catalog.service(service_id);
    let rules = service.map(Rules::of).unwrap_or_default();
    let since = now - rules.flood.window.as_millis() as i64;
    let waiting: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT id, organisation, received_at FROM reports WHERE incident_id IS NULL AND service_id = $1 AND received_at > $2 ORDER BY id",
    )
    .bind(service_id)
    .bind(since)
    .fetch_all(&mut **tx)
    .await?;
    let seen: Vec<(String, Timestamp)> = waiting.iter().map(|(_, o, at)| Ok((o.clone(), from_ms(*at)?))).collect::<Result<_>>()?;
    let Some(counted) = flood(&rules.flood, &seen, from_ms(now)?) else {
        return Ok(());
    };
    let organisations: HashSet<&str> = counted.iter().map(|&i| waiting[i].1.as_str()).collect();
    let name = service.map(|s| s.name.as_str()).unwrap_or(service_id);
    let title = format!("{} reports from {} organisations about {name}", counted.len(), organisations.len());
    let summary = truncate(&report.summary, 2000);
    let mut pending = Pending::default();
    let row = open(tx, &mut pending, service_id, "", Severity::Major, &title, &summary, "flood", service.map(|s| s.owner.as_str()), now).await?;
    pending.write(tx, now).await?;
    let rule = &rules.flood;
    let text = format!(
        "Flood rule: at least {} reports from at least {} organisations within {:#}",
        rule.reports, rule.organisations, rule.window
    );
    timeline(tx, row.id, now, "flood", "muster", &text).await?;
    let reports: Vec<(i64, String)> = counted.iter().map(|&i| (waiting[i].0, waiting[i].1.clone())).collect();
    join_reports(tx, row.id, &reports, "", now).await
}

pub async fn add_report(p: &crate::Pools<DB>, actor: &Actor, catalog: &Catalog, report: &NewReport, now: i64) -> Result<ReportRow> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let row = insert_report(&mut tx, actor, report, now).await?;
    place_report(&mut tx, catalog, &row, now).await?;
    let entry = actor.entry("report.create", format!("report:{}", row.id), None, Some(report.summary.clone()));
    audit_sql::append(&mut tx, now, vec![entry]).await?;
    let sql = format!("SELECT {REPORT_COLUMNS} FROM reports WHERE id = $1");
    let placed = sqlx::query_as(trusted(sql)).bind(row.id).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(placed)
}

pub async fn route_report(p: &crate::Pools<DB>, actor: &Actor, catalog: &Catalog, id: i64, route: &Route, now: i64) -> Result<ReportRow> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let sql = format!("SELECT {REPORT_COLUMNS} FROM reports WHERE id = $1");
    // Locked: two people routing one report take turns.
    let row: ReportRow = sqlx::query_as(trusted(format!("{sql}{LOCK}")))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no report {id}")))?;
    if let Some(incident) = row.incident_id {
        return Err(StoreError::Conflict(format!("report {id} is in {} already", number(incident))));
    }
    sqlx::query("UPDATE reports SET routed_by = $2, routed_at = $3 WHERE id = $1").bind(id).bind(&actor.label).bind(now).execute(&mut *tx).await?;
    let target = match route {
        Route::Incident(incident) => {
            let target = fetch_or_not_found(&mut tx, *incident).await?;
            if target.state == "resolved" {
                return Err(StoreError::Conflict(format!("{} is resolved", number(*incident))));
            }
            join_reports(&mut tx, *incident, &[(id, row.organisation.clone())], &format!(" (routed by {})", actor.label), now).await?;
            number(*incident)
        }
        Route::Service(service) => {
            sqlx::query("UPDATE reports SET service_id = $2 WHERE id = $1").bind(id).bind(service).execute(&mut *tx).await?;
            let routed: ReportRow = sqlx::query_as(trusted(sql.clone())).bind(id).fetch_one(&mut *tx).await?;
            place_report(&mut tx, catalog, &routed, now).await?;
            format!("service:{service}")
        }
    };
    let entry = actor.entry("report.route", format!("report:{id}"), None, Some(target));
    audit_sql::append(&mut tx, now, vec![entry]).await?;
    let placed = sqlx::query_as(trusted(sql)).bind(id).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(placed)
}

pub async fn reports(p: &crate::Pools<DB>, incident: Option<i64>, limit: i64) -> Result<Vec<ReportRow>> {
    let filter = if incident.is_some() { "incident_id = $1" } else { "incident_id IS NULL AND $1 IS NULL" };
    let sql = format!("SELECT {REPORT_COLUMNS} FROM reports WHERE {filter} ORDER BY id DESC LIMIT $2");
    Ok(sqlx::query_as(trusted(sql)).bind(incident).bind(limit).fetch_all(&p.reader).await?)
}
