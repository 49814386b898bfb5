// Change queries, compiled once per database (see `per_dialect!`).

use muster_domain::audit::NewAuditEntry;
use muster_domain::incidents::number as incident_number;

type Tx<'a> = sqlx::Transaction<'a, DB>;

/// Takes the `changes` engine lock for the transaction: writers of changes take turns,
/// so each sees the others' work when it checks for conflicts.
async fn lock(tx: &mut Tx<'_>) -> Result<()> {
    let sql = format!("SELECT name FROM engine_locks WHERE name = 'changes'{LOCK}");
    let _: Option<(String,)> = sqlx::query_as(trusted(sql)).fetch_optional(&mut **tx).await?;
    Ok(())
}

/// The services of each change in `ids`, sorted.
async fn services_of(tx: &mut Tx<'_>, ids: &[i64]) -> Result<HashMap<i64, Vec<String>>> {
    let mut services: HashMap<i64, Vec<String>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT change_id, service_id FROM change_services WHERE change_id IN ({}) ORDER BY change_id, service_id",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query_as::<_, (i64, String)>(trusted(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        for (id, service) in q.fetch_all(&mut **tx).await? {
            services.entry(id).or_default().push(service);
        }
    }
    Ok(services)
}

/// Changes by id, in id order; `lock` is the row-lock suffix for writers.
async fn fetch_many(tx: &mut Tx<'_>, ids: &[i64], lock: &str) -> Result<Vec<Change>> {
    let mut rows: Vec<ChangeRow> = Vec::new();
    for chunk in ids.chunks(500) {
        let sql = format!("SELECT {CHANGE_COLUMNS} FROM changes WHERE id IN ({}) ORDER BY id{lock}", placeholders(1, chunk.len()));
        let mut q = sqlx::query_as::<_, ChangeRow>(trusted(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        rows.extend(q.fetch_all(&mut **tx).await?);
    }
    let mut services = services_of(tx, ids).await?;
    rows.into_iter().map(|row| {
        let own = services.remove(&row.id).unwrap_or_default();
        row.read(own)
    }).collect()
}

async fn fetch(tx: &mut Tx<'_>, id: i64, lock: &str) -> Result<Change> {
    fetch_many(tx, &[id], lock).await?.pop().ok_or_else(|| StoreError::NotFound(format!("no change {}", number(id))))
}

/// The change's services, each with the change's window (what the window index reads).
async fn write_services(tx: &mut Tx<'_>, id: i64, services: &[String], window: Window) -> Result<()> {
    sqlx::query("DELETE FROM change_services WHERE change_id = $1").bind(id).execute(&mut **tx).await?;
    for chunk in services.chunks(200) {
        let sql = format!("INSERT INTO change_services (change_id, service_id, start_at, end_at) VALUES {}", value_rows(chunk.len(), 4));
        let mut q = sqlx::query(trusted(sql));
        for service in chunk {
            q = q.bind(id).bind(service).bind(ms(window.start)).bind(ms(window.end));
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn log(tx: &mut Tx<'_>, id: i64, at: i64, kind: &str, actor: &str, text: &str) -> Result<()> {
    sqlx::query("INSERT INTO change_log (change_id, at, kind, actor, text) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(at)
        .bind(kind)
        .bind(actor)
        .bind(text)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Links `change` to the incidents it ships a fix for (`None`: leaves the links as they
/// are), refused when its links are no longer `seen` (what the caller's rights were
/// checked against). Answers what moved, for the change's log ("" when nothing did),
/// and the audit entries, which the caller appends last: audit appends come after
/// every incident row a transaction touches, as in incident actions.
async fn write_fixes(tx: &mut Tx<'_>, actor: &Actor, change: &Change, fixes: Option<&[i64]>, seen: &[i64], now: i64) -> Result<(String, Vec<NewAuditEntry>)> {
    let Some(fixes) = fixes else {
        return Ok((String::new(), Vec::new()));
    };
    let linked: Vec<(i64,)> = sqlx::query_as("SELECT incident_id FROM change_fixes WHERE change_id = $1").bind(change.id).fetch_all(&mut **tx).await?;
    let before: BTreeSet<i64> = linked.into_iter().map(|(id,)| id).collect();
    if before != seen.iter().copied().collect() {
        return Err(StoreError::Conflict(format!("{}'s links to incidents changed meanwhile: reload it and edit again", change.number)));
    }
    let after: BTreeSet<i64> = fixes.iter().copied().collect();
    let by = actor.person.as_deref().unwrap_or(&actor.label);
    let (mut moved, mut entries) = (String::new(), Vec::new());
    for &incident in after.difference(&before) {
        entries.push(link_fix_in(tx, actor, change, incident, by, now).await?);
        moved.push_str(&format!("; fixes {}", incident_number(incident)));
    }
    for &incident in before.difference(&after) {
        sqlx::query("DELETE FROM change_fixes WHERE change_id = $1 AND incident_id = $2").bind(change.id).bind(incident).execute(&mut **tx).await?;
        let text = format!("{} is no longer a fix for this incident (by {by})", named(change));
        incidents_sql::timeline(tx, incident, now, "fix_unlinked", by, &text).await?;
        entries.push(actor.entry("change.fix_unlinked", format!("change:{}", change.number), Some(incident_number(incident)), None));
        moved.push_str(&format!("; no longer fixes {}", incident_number(incident)));
    }
    Ok((moved, entries))
}

/// Links `change` to `incident` as a fix for it, on the incident's timeline; refused
/// for an incident merged into another (the fix is that one's), for a link already
/// made, and past the most incidents one change may fix. Answers the audit entry.
async fn link_fix_in(tx: &mut Tx<'_>, actor: &Actor, change: &Change, incident: i64, by: &str, now: i64) -> Result<NewAuditEntry> {
    let found: Option<(Option<i64>,)> = sqlx::query_as("SELECT merged_into FROM incidents WHERE id = $1").bind(incident).fetch_optional(&mut **tx).await?;
    match found {
        None => return Err(StoreError::NotFound(format!("no incident {}", incident_number(incident)))),
        Some((Some(into),)) => {
            return Err(StoreError::Conflict(format!(
                "{} was merged into {}: link the fix to that one",
                incident_number(incident),
                incident_number(into)
            )));
        }
        Some((None,)) => {}
    }
    let (linked,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM change_fixes WHERE change_id = $1").bind(change.id).fetch_one(&mut **tx).await?;
    if linked >= MAX_FIXES as i64 {
        return Err(StoreError::Conflict(format!("{} already fixes {MAX_FIXES} incidents, the most one change may", change.number)));
    }
    let added = sqlx::query("INSERT INTO change_fixes (change_id, incident_id) VALUES ($1, $2) ON CONFLICT (change_id, incident_id) DO NOTHING")
        .bind(change.id)
        .bind(incident)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if added == 0 {
        return Err(StoreError::Conflict(format!("{} is already a fix for {}", change.number, incident_number(incident))));
    }
    let because = actor.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
    let text = format!("Fix {} linked ({}; by {by}{because})", named(change), change.state.as_str().replace('_', " "));
    incidents_sql::timeline(tx, incident, now, "fix_linked", by, &text).await?;
    Ok(actor.entry("change.fix_linked", format!("change:{}", change.number), None, Some(incident_number(incident))))
}

/// Links an existing change, in any state, as a fix for `incident`.
pub async fn link_fix(p: &crate::Pools<DB>, actor: &Actor, incident: i64, change: i64, by: &str, now: i64) -> Result<()> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    lock(&mut tx).await?;
    // Before the change's row, as `act` takes it: grouping holds this lock while it
    // records alerts against a change in progress (which needs that row).
    incidents_sql::lock(&mut tx).await?;
    let record = fetch(&mut tx, change, LOCK).await?;
    let entry = link_fix_in(&mut tx, actor, &record, incident, by, now).await?;
    log(&mut tx, change, now, "fix_linked", by, &format!("Fixes {} (linked by {by})", incident_number(incident))).await?;
    audit_sql::append(&mut tx, now, vec![entry]).await?;
    tx.commit().await?;
    Ok(())
}

/// Takes the `incidents` lock when `input` sets links to incidents, before any change
/// or incident row, as `link_fix` does: a merge moves links under it.
async fn lock_for_fixes(tx: &mut Tx<'_>, input: &ChangeInput) -> Result<()> {
    if input.fixes.is_some() {
        incidents_sql::lock(tx).await?;
    }
    Ok(())
}

/// A change as incidents' timelines name it: `CHG-9 "Roll back"`.
fn named(change: &Change) -> String {
    format!("{} \"{}\"", change.number, change.title)
}

/// Tells the timeline of every incident `change` fixes what just happened to it.
async fn tell_fixed_incidents(tx: &mut Tx<'_>, change: &Change, kind: &str, by: &str, text: &str, now: i64) -> Result<()> {
    let linked: Vec<(i64,)> = sqlx::query_as("SELECT incident_id FROM change_fixes WHERE change_id = $1 ORDER BY incident_id").bind(change.id).fetch_all(&mut **tx).await?;
    let text = format!("Fix {}: {text}", named(change));
    for (incident,) in linked {
        incidents_sql::timeline(tx, incident, now, kind, by, &text).await?;
    }
    Ok(())
}

fn audit_entry(actor: &Actor, action: &str, change: &Change, before: Option<&Change>) -> NewAuditEntry {
    let json = |c: &Change| serde_json::to_string(c).expect("changes serialise");
    actor.entry(action, format!("change:{}", change.number), before.map(json), Some(json(change)))
}

/// Every change that could collide with `change`: on its services or within the
/// policy's hops of them at the same time, its implementer's work at the same time,
/// and (for a launch) launches within the launch window of its start. Ended ones are
/// read too (the domain decides what counts).
async fn candidates(tx: &mut Tx<'_>, policy: &Policy<'_>, change: &Planned) -> Result<Vec<Planned>> {
    let (start, end) = (ms(change.window.start), ms(change.window.end));
    let mut near: BTreeSet<String> = change.services.iter().cloned().collect();
    for service in &change.services {
        near.extend(policy.graph.neighbourhood(service, policy.settings.hops).into_iter().map(|r| r.service));
    }
    let near: Vec<String> = near.into_iter().collect();
    let mut ids: BTreeSet<i64> = BTreeSet::new();
    for chunk in near.chunks(500) {
        let sql = format!(
            "SELECT DISTINCT change_id FROM change_services WHERE service_id IN ({}) AND end_at > {} AND start_at < {}",
            placeholders(1, chunk.len()),
            placeholders(chunk.len() + 1, 1),
            placeholders(chunk.len() + 2, 1)
        );
        let mut q = sqlx::query_as::<_, (i64,)>(trusted(sql));
        for service in chunk {
            q = q.bind(service);
        }
        ids.extend(q.bind(start).bind(end).fetch_all(&mut **tx).await?.into_iter().map(|r| r.0));
    }
    if let Some(implementer) = &change.implementer {
        let busy: Vec<(i64,)> = sqlx::query_as("SELECT id FROM changes WHERE implementer = $1 AND end_at > $2 AND start_at < $3")
            .bind(implementer)
            .bind(start)
            .bind(end)
            .fetch_all(&mut **tx)
            .await?;
        ids.extend(busy.into_iter().map(|r| r.0));
    }
    if change.launch {
        // Launch density counts per owner team: of the launches around that time
        // (few, by the launch index), only those on the same teams' services count.
        let teams: BTreeSet<&str> = change.services.iter().filter_map(|s| policy.graph.owner(s)).collect();
        let width = policy.settings.launch_window.as_millis() as i64;
        let launches: Vec<(i64, String)> = sqlx::query_as(
            "SELECT c.id, s.service_id FROM changes c JOIN change_services s ON s.change_id = c.id \
             WHERE c.launch = 1 AND c.start_at > $1 AND c.start_at < $2",
        )
        .bind(start - width)
        .bind(start + width)
        .fetch_all(&mut **tx)
        .await?;
        ids.extend(launches.into_iter().filter(|(_, service)| policy.graph.owner(service).is_some_and(|t| teams.contains(t))).map(|(id, _)| id));
    }
    if let Some(own) = change.id {
        ids.remove(&own);
    }
    let ids: Vec<i64> = ids.into_iter().collect();
    Ok(fetch_many(tx, &ids, "").await?.iter().map(Change::planned).collect())
}

async fn conflicts_of(tx: &mut Tx<'_>, policy: &Policy<'_>, change: &Planned) -> Result<Vec<Conflict>> {
    let others = candidates(tx, policy, change).await?;
    Ok(conflicts(change, &others, policy.freezes, policy.graph, policy.settings))
}

/// The conflicts of each change, in one snapshot.
pub async fn check(p: &crate::Pools<DB>, policy: &Policy<'_>, changes: &[Planned]) -> Result<Vec<Vec<Conflict>>> {
    let mut tx = p.reader.begin_with(BEGIN_SNAPSHOT).await?;
    let mut found = Vec::with_capacity(changes.len());
    for change in changes {
        found.push(conflicts_of(&mut tx, policy, change).await?);
    }
    tx.commit().await?;
    Ok(found)
}

/// Approved or in-progress work that `change` now collides with learns of it: the
/// conflict lands in its log and both implementers are told.
async fn announce_conflicts(tx: &mut Tx<'_>, policy: &Policy<'_>, change: &Change, found: &[Conflict], now: i64) -> Result<()> {
    let mut messages = Vec::new();
    for conflict in found {
        let Some(other) = &conflict.change else { continue };
        if !matches!(other.state, State::Approved | State::InProgress) {
            continue;
        }
        let text = format!("New conflict with {} {:?}: {}", change.number, change.title, conflict.message);
        log(tx, other.id, now, "conflict", "muster", &text).await?;
        let people: Vec<String> = [other.implementer.clone(), change.implementer.clone()].into_iter().flatten().collect();
        let subject = format!("[{}] conflicts with approved {}", change.number, other.number);
        let body = format!(
            "{} {:?} ({} – {}) now collides with {} {:?}, which is {}:\n{}\n",
            change.number,
            change.title,
            change.start,
            change.end,
            other.number,
            other.title,
            other.state.as_str().replace('_', " "),
            conflict.message
        );
        let key = format!("change:{}:conflict:{}:{now}", other.id, change.id);
        messages.extend(notices(policy.catalog, &people, &key, &subject, &body, now));
    }
    notify_sql::insert(tx, now, &messages).await?;
    Ok(())
}

/// Tells the change's parties what just happened to it.
async fn tell_parties(tx: &mut Tx<'_>, policy: &Policy<'_>, change: &Change, found: &[Conflict], kind: &str, text: &str, now: i64) -> Result<()> {
    let people = parties(change, policy, found);
    let subject = format!("[{}] {}: {}", change.number, kind.replace('_', " "), change.title);
    let body = format!(
        "{text}\n\n{} {:?} on {}, {} – {}; now {}.\n",
        change.number,
        change.title,
        change.services.join(", "),
        change.start,
        change.end,
        change.state.as_str().replace('_', " ")
    );
    let key = format!("change:{}:{kind}:{now}", change.id);
    notify_sql::insert(tx, now, &notices(policy.catalog, &people, &key, &subject, &body, now)).await?;
    Ok(())
}

fn evidence_json(evidence: &Option<TestEvidence>) -> Option<String> {
    evidence.as_ref().map(|e| serde_json::to_string(e).expect("evidence serialises"))
}

pub async fn create(p: &crate::Pools<DB>, actor: &Actor, policy: &Policy<'_>, input: &ChangeInput, now: i64) -> Result<(i64, Vec<Conflict>)> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    lock(&mut tx).await?;
    lock_for_fixes(&mut tx, input).await?;
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO changes (title, description, change_type, declared_risk, state, start_at, end_at, requested_by, implementer, \
         test_evidence, rollback_plan, public, launch, suppress_alerts, template, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'draft', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) RETURNING id",
    )
    .bind(&input.title)
    .bind(&input.description)
    .bind(input.change_type.as_str())
    .bind(input.risk.as_str())
    .bind(ms(input.window.start))
    .bind(ms(input.window.end))
    .bind(&input.requested_by)
    .bind(&input.implementer)
    .bind(evidence_json(&input.test_evidence))
    .bind(&input.rollback_plan)
    .bind(input.public as i64)
    .bind(input.launch as i64)
    .bind(input.suppress_alerts as i64)
    .bind(&input.template)
    .bind(&actor.label)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    write_services(&mut tx, id, &input.services, input.window).await?;
    let change = fetch(&mut tx, id, LOCK).await?;
    let found = conflicts_of(&mut tx, policy, &change.planned()).await?;
    let mut text = match found.len() {
        0 => "Created as a draft; no conflicts".to_string(),
        n => format!("Created as a draft with {n} conflict{}", if n == 1 { "" } else { "s" }),
    };
    let (moved, links) = write_fixes(&mut tx, actor, &change, input.fixes.as_deref(), &[], now).await?;
    text.push_str(&moved);
    log(&mut tx, id, now, "created", &actor.label, &text).await?;
    announce_conflicts(&mut tx, policy, &change, &found, now).await?;
    let entries = std::iter::once(audit_entry(actor, "change.create", &change, None)).chain(links).collect();
    audit_sql::append(&mut tx, now, entries).await?;
    tx.commit().await?;
    Ok((id, found))
}

/// Why a submitted change needs no approval, if it does not: a standard change that
/// follows its template and collides with nothing is pre-approved by the template.
fn pre_approval(policy: &Policy<'_>, change: &Change, found: &[Conflict]) -> Option<String> {
    let facts = change.facts();
    let risk = policy::assess(&facts, policy.catalog, found).risk;
    if change.change_type != ChangeType::Standard || !policy::requirements(&facts, risk, found, policy.catalog, policy.graph).is_empty() {
        return None;
    }
    let template = ChangeTemplate::find(policy.catalog, change.template.as_deref()?)?;
    let when = template.approved_at.map(|at| format!(" on {}", at.strftime("%Y-%m-%d"))).unwrap_or_default();
    Some(format!("pre-approved by template {} ({}, approved by {}{when})", template.id, template.title, template.approved_by))
}

pub async fn update(p: &crate::Pools<DB>, actor: &Actor, policy: &Policy<'_>, id: i64, input: &ChangeInput, seen_fixes: &[i64], now: i64) -> Result<Vec<Conflict>> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    lock(&mut tx).await?;
    lock_for_fixes(&mut tx, input).await?;
    let before = fetch(&mut tx, id, LOCK).await?;
    if !before.state.editable() {
        return Err(StoreError::Conflict(format!(
            "cannot edit: the change is {} (only drafts, submitted and approved changes are edited)",
            before.state.as_str().replace('_', " ")
        )));
    }
    if before.same_record(input) {
        // Only its links to incidents moved: the work is as approved.
        let (moved, links) = write_fixes(&mut tx, actor, &before, input.fixes.as_deref(), seen_fixes, now).await?;
        if !moved.is_empty() {
            // Not "edited": risk accepted before still covers the same work.
            log(&mut tx, id, now, "fixes_edited", &actor.label, &format!("Links edited{moved}")).await?;
            audit_sql::append(&mut tx, now, links).await?;
        }
        let found = conflicts_of(&mut tx, policy, &before.planned()).await?;
        tx.commit().await?;
        return Ok(found);
    }
    // Evidence vouches for the change as it was tested: a new scope makes it stale.
    let mut evidence = input.test_evidence.clone();
    let sorted = |services: &[String]| -> BTreeSet<String> { services.iter().cloned().collect() };
    let rescoped = sorted(&before.services) != sorted(&input.services) || before.description != input.description;
    if let Some(e) = evidence.as_mut()
        && let Some(old) = before.test_evidence.as_ref().filter(|old| old.tested_at == e.tested_at && old.environment == e.environment)
    {
        // The same evidence stays stale once it is; new evidence starts fresh.
        e.stale = rescoped || old.stale;
    }
    let state = match before.state {
        State::Draft => State::Draft,
        _ => State::Submitted,
    };
    sqlx::query(
        "UPDATE changes SET title = $2, description = $3, change_type = $4, declared_risk = $5, state = $6, start_at = $7, end_at = $8, \
         requested_by = $9, implementer = $10, test_evidence = $11, rollback_plan = $12, public = $13, launch = $14, suppress_alerts = $15, template = $16, updated_at = $17 WHERE id = $1",
    )
    .bind(id)
    .bind(&input.title)
    .bind(&input.description)
    .bind(input.change_type.as_str())
    .bind(input.risk.as_str())
    .bind(state.as_str())
    .bind(ms(input.window.start))
    .bind(ms(input.window.end))
    .bind(&input.requested_by)
    .bind(&input.implementer)
    .bind(evidence_json(&evidence))
    .bind(&input.rollback_plan)
    .bind(input.public as i64)
    .bind(input.launch as i64)
    .bind(input.suppress_alerts as i64)
    .bind(&input.template)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    write_services(&mut tx, id, &input.services, input.window).await?;
    let cleared = sqlx::query("DELETE FROM change_approvals WHERE change_id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
    let mut change = fetch(&mut tx, id, "").await?;
    let found = conflicts_of(&mut tx, policy, &change.planned()).await?;
    let mut text = "Edited".to_string();
    if before.state != State::Draft {
        match pre_approval(policy, &change, &found) {
            Some(why) => {
                sqlx::query("UPDATE changes SET state = 'approved' WHERE id = $1").bind(id).execute(&mut *tx).await?;
                change.state = State::Approved;
                text.push_str(&format!("; still {why}"));
            }
            None => text.push_str(&format!("; back to submitted, {cleared} approval{} cleared", if cleared == 1 { "" } else { "s" })),
        }
    }
    if change.test_evidence.as_ref().is_some_and(|e| e.stale) && !before.test_evidence.as_ref().is_some_and(|e| e.stale) {
        text.push_str("; its test evidence is stale (services or description changed)");
    }
    let (moved, links) = write_fixes(&mut tx, actor, &change, input.fixes.as_deref(), seen_fixes, now).await?;
    text.push_str(&moved);
    log(&mut tx, id, now, "edited", &actor.label, &text).await?;
    tell_fixed_incidents(&mut tx, &change, "fix_progress", actor.person.as_deref().unwrap_or(&actor.label), &text, now).await?;
    announce_conflicts(&mut tx, policy, &change, &found, now).await?;
    if before.state != State::Draft {
        tell_parties(&mut tx, policy, &change, &found, "edited", &text, now).await?;
    }
    let entries = std::iter::once(audit_entry(actor, "change.update", &change, Some(&before))).chain(links).collect();
    audit_sql::append(&mut tx, now, entries).await?;
    tx.commit().await?;
    Ok(found)
}

async fn approvals(tx: &mut Tx<'_>, id: i64) -> Result<Vec<Approval>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as("SELECT person, teams, at FROM change_approvals WHERE change_id = $1 ORDER BY at, person")
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
    rows.into_iter()
        .map(|(person, teams, at)| {
            Ok(Approval {
                teams: serde_json::from_str(&teams).map_err(|e| StoreError::Corrupt(format!("approval teams: {e}")))?,
                person,
                at: from_ms(at)?,
            })
        })
        .collect()
}

async fn acceptances(tx: &mut Tx<'_>, id: i64) -> Result<Vec<RiskAcceptance>> {
    let rows: Vec<(i64, String, String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, accepted_by, on_behalf_of, reason, declined_recommendation, missing, at FROM change_risk_acceptances WHERE change_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(|(id, accepted_by, on_behalf_of, reason, declined_recommendation, missing, at)| {
            Ok(RiskAcceptance {
                id,
                accepted_by,
                on_behalf_of,
                reason,
                declined_recommendation,
                missing: serde_json::from_str(&missing).map_err(|e| StoreError::Corrupt(format!("risk acceptance {id}: {e}")))?,
                at: from_ms(at)?,
            })
        })
        .collect()
}

/// Whether a risk acceptance recorded since the change's last edit or rejection covers
/// every safeguard it lacks now (an older one vouched for a different change).
async fn acceptance_covers(tx: &mut Tx<'_>, id: i64, missing: &[String]) -> Result<bool> {
    let since: Option<i64> = sqlx::query_scalar("SELECT MAX(at) FROM change_log WHERE change_id = $1 AND kind IN ('edited', 'reject')")
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    let since = since.unwrap_or(i64::MIN);
    Ok(acceptances(tx, id).await?.iter().any(|a| ms(a.at) >= since && missing.iter().all(|m| a.missing.contains(m))))
}

pub async fn act(p: &crate::Pools<DB>, actor: &Actor, policy: &Policy<'_>, id: i64, request: &Transition, now: i64) -> Result<Vec<Conflict>> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    lock(&mut tx).await?;
    let ends_work = matches!(request.action, Action::Complete | Action::Rollback | Action::Fail);
    if ends_work {
        // Before the change's row: grouping holds this lock while it records alerts
        // against the change (which needs that row), so the other order deadlocks.
        incidents_sql::lock(&mut tx).await?;
    }
    let before = fetch(&mut tx, id, LOCK).await?;
    let to = transition(before.change_type, before.state, request.action).map_err(StoreError::Conflict)?;
    let found = conflicts_of(&mut tx, policy, &before.planned()).await?;
    let reason = request.reason.as_deref().filter(|r| !r.trim().is_empty());
    let because = reason.map(|r| format!(": {r}")).unwrap_or_default();
    let by = request.by.as_str();
    let (state, text) = match request.action {
        Action::Approve => {
            let given = approvals(&mut tx, id).await?;
            let facts = before.facts();
            let risk = policy::assess(&facts, policy.catalog, &found).risk;
            let required = policy::requirements(&facts, risk, &found, policy.catalog, policy.graph);
            let missing = policy::missing_safeguards(&facts, policy.catalog);
            let risk_accepted = acceptance_covers(&mut tx, id, &missing).await?;
            let approver_teams: Vec<String> = policy.catalog.teams.iter().filter(|t| t.members.iter().any(|m| m == by)).map(|t| t.id.clone()).collect();
            let approval = policy::approve(
                &policy::ApprovalRequest {
                    facts: &facts,
                    state: before.state,
                    started_at: before.started_at,
                    now: from_ms(now)?,
                    approver: by,
                    approver_teams: &approver_teams,
                    requirements: &required,
                    approvals: &given,
                    conflicts: &found,
                    acknowledge_conflicts: request.acknowledge_conflicts,
                    missing_safeguards: &missing,
                    risk_accepted,
                },
                policy.settings,
            )
            .map_err(|why| StoreError::Conflict(format!("cannot approve: {why}")))?;
            sqlx::query("INSERT INTO change_approvals (change_id, person, teams, at) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(by)
                .bind(serde_json::to_string(&approval.teams).expect("names serialise"))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let all: Vec<Approval> = given.into_iter().chain([approval.clone()]).collect();
            let waiting = policy::outstanding(&required, &all);
            let acknowledged = if found.is_empty() { String::new() } else { format!(", acknowledging {} conflict(s)", found.len()) };
            if waiting.is_empty() {
                (to, format!("Approved by {by} for {}{acknowledged}{because}; every required approval is in", approval.teams.join(", ")))
            } else {
                let still: Vec<String> = waiting.iter().map(|w| w.teams.join(" or ")).collect();
                (before.state, format!("Approved by {by} for {}{acknowledged}{because}; still needed: {}", approval.teams.join(", "), still.join(", ")))
            }
        }
        Action::Reject => {
            let Some(reason) = reason else {
                let mut errors = muster_domain::FieldErrors::default();
                errors.push("reason", "is required to reject a change");
                return Err(StoreError::Invalid(errors));
            };
            sqlx::query("DELETE FROM change_approvals WHERE change_id = $1").bind(id).execute(&mut *tx).await?;
            (to, format!("Rejected by {by}: {reason}; back to draft, approvals cleared"))
        }
        Action::Submit => match pre_approval(policy, &before, &found) {
            Some(why) => (State::Approved, format!("Submitted by {by}{because}; {why}")),
            None => (to, format!("Submitted by {by}{because}")),
        },
        Action::Start => {
            // Approved earlier, but the world may have moved: a freeze since, or new
            // conflicts that raised the risk and the approvals it needs.
            if before.change_type != ChangeType::Emergency {
                if let Some(freeze) = found.iter().find(|c| c.blocking) {
                    return Err(StoreError::Conflict(format!("cannot start: freeze: {}", freeze.message)));
                }
                let facts = before.facts();
                let risk = policy::assess(&facts, policy.catalog, &found).risk;
                let required = policy::requirements(&facts, risk, &found, policy.catalog, policy.graph);
                let given = approvals(&mut tx, id).await?;
                let waiting: Vec<String> = policy::outstanding(&required, &given).iter().map(|w| format!("{} ({})", w.teams.join(" or "), w.why)).collect();
                if !waiting.is_empty() {
                    return Err(StoreError::Conflict(format!(
                        "cannot start: approvals still needed since the change was approved (its risk or conflicts changed): {}",
                        waiting.join("; ")
                    )));
                }
            }
            (to, format!("Started by {by}{because}"))
        }
        Action::Complete => (to, format!("Completed by {by}{because}")),
        Action::Rollback => (to, format!("Rolled back by {by}{because}")),
        Action::Fail => (to, format!("Failed, reported by {by}{because}")),
        Action::Cancel => (to, format!("Cancelled by {by}{because}")),
    };
    let stamp = match state {
        State::InProgress if before.state != State::InProgress => ", started_at = $4",
        s if s.has_ended() && s != State::Cancelled => ", ended_at = $4",
        _ => "",
    };
    let sql = format!("UPDATE changes SET state = $2, updated_at = $3{stamp} WHERE id = $1");
    let mut q = sqlx::query(trusted(sql)).bind(id).bind(state.as_str()).bind(now);
    if !stamp.is_empty() {
        q = q.bind(now);
    }
    q.execute(&mut *tx).await?;
    let mut text = text;
    if ends_work {
        let woken = end_maintenance(&mut tx, id, now).await?;
        if woken > 0 {
            text.push_str(&format!(
                "; {woken} alert{} still firing from the maintenance {} looked at again as newly firing",
                if woken == 1 { "" } else { "s" },
                if woken == 1 { "is" } else { "are" }
            ));
        }
    }
    let change = fetch(&mut tx, id, "").await?;
    log(&mut tx, id, now, request.action.as_str(), by, &text).await?;
    tell_parties(&mut tx, policy, &change, &found, request.action.as_str(), &text, now).await?;
    tell_fixed_incidents(&mut tx, &change, "fix_progress", by, &text, now).await?;
    audit_sql::append(&mut tx, now, vec![audit_entry(actor, &format!("change.{}", request.action.as_str()), &change, Some(&before))]).await?;
    tx.commit().await?;
    Ok(found)
}

/// Ends a change's maintenance: its alerts still firing (held for it) are looked at
/// again now, as newly firing (joining or opening an incident, unless another change
/// in progress on their service holds them again). The caller holds the `incidents`
/// lock, under which grouping reads in-progress changes, so grouping never holds an
/// alert for a change that has just ended. Answers how many were woken.
async fn end_maintenance(tx: &mut Tx<'_>, id: i64, now: i64) -> Result<u64> {
    let woken = sqlx::query(
        "UPDATE held_alerts SET recheck_at = $1 WHERE reason = 'maintenance' \
         AND alert_id IN (SELECT alert_id FROM change_alerts WHERE change_id = $2)",
    )
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(woken.rows_affected())
}

pub async fn accept_risk(p: &crate::Pools<DB>, actor: &Actor, policy: &Policy<'_>, id: i64, acceptance: &NewRiskAcceptance, now: i64) -> Result<Vec<Conflict>> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    lock(&mut tx).await?;
    // As in `link_fix`: the change may be in progress and fix incidents.
    incidents_sql::lock(&mut tx).await?;
    let change = fetch(&mut tx, id, LOCK).await?;
    if change.state.has_ended() {
        return Err(StoreError::Conflict(format!(
            "cannot accept risk: the change is {}",
            change.state.as_str().replace('_', " ")
        )));
    }
    let missing = policy::missing_safeguards(&change.facts(), policy.catalog);
    sqlx::query(
        "INSERT INTO change_risk_acceptances (change_id, accepted_by, on_behalf_of, reason, declined_recommendation, missing, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(&acceptance.accepted_by)
    .bind(&acceptance.on_behalf_of)
    .bind(&acceptance.reason)
    .bind(&acceptance.declined_recommendation)
    .bind(serde_json::to_string(&missing).expect("names serialise"))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let text = format!(
        "Risk accepted by {} on behalf of {}: {}. Declined: {}{}",
        acceptance.accepted_by,
        acceptance.on_behalf_of,
        acceptance.reason,
        acceptance.declined_recommendation,
        if missing.is_empty() { String::new() } else { format!(". Missing: {}", missing.join("; ")) }
    );
    log(&mut tx, id, now, "risk_accepted", &acceptance.accepted_by, &text).await?;
    tell_fixed_incidents(&mut tx, &change, "fix_progress", &acceptance.accepted_by, &text, now).await?;
    let found = conflicts_of(&mut tx, policy, &change.planned()).await?;
    tell_parties(&mut tx, policy, &change, &found, "risk_accepted", &text, now).await?;
    let entry = actor.entry("change.risk_acceptance", format!("change:{}", change.number), None, Some(text.clone()));
    audit_sql::append(&mut tx, now, vec![entry]).await?;
    tx.commit().await?;
    Ok(found)
}

pub async fn detail(p: &crate::Pools<DB>, id: i64) -> Result<Option<ChangeDetail>> {
    let mut tx = p.reader.begin_with(BEGIN_SNAPSHOT).await?;
    let Some(change) = fetch_many(&mut tx, &[id], "").await?.pop() else {
        return Ok(None);
    };
    let approvals = approvals(&mut tx, id).await?;
    let risk_acceptances = acceptances(&mut tx, id).await?;
    let rows: Vec<(i64, String, String, String)> = sqlx::query_as("SELECT at, kind, actor, text FROM change_log WHERE change_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    let caused: Vec<(i64,)> = sqlx::query_as("SELECT incident_id FROM change_incidents WHERE change_id = $1 ORDER BY incident_id")
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    let fixed: Vec<(i64,)> = sqlx::query_as("SELECT incident_id FROM change_fixes WHERE change_id = $1 ORDER BY incident_id")
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    let during: Vec<(i64, String, String, i64, i64)> = sqlx::query_as(
        "SELECT a.id, a.service_id, a.labels, ca.at, a.firing FROM change_alerts ca JOIN alerts a ON a.id = ca.alert_id \
         WHERE ca.change_id = $1 ORDER BY ca.at, a.id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let maintenance_alerts = during
        .into_iter()
        .map(|(alert, service, labels, at, firing)| {
            let name = crate::signals::labels(&labels)?.get("alertname").cloned().unwrap_or_else(|| "alert".to_string());
            Ok(MaintenanceAlert { alert, service, name, at: from_ms(at)?, firing: firing != 0 })
        })
        .collect::<Result<_>>()?;
    let log = rows
        .into_iter()
        .map(|(at, kind, actor, text)| Ok(LogEntry { at: from_ms(at)?, kind, actor, text }))
        .collect::<Result<_>>()?;
    let numbers = |rows: Vec<(i64,)>| rows.into_iter().map(|(id,)| incident_number(id)).collect();
    let caused_incidents = numbers(caused);
    let fixes = numbers(fixed);
    Ok(Some(ChangeDetail { change, approvals, risk_acceptances, log, caused_incidents, fixes, maintenance_alerts }))
}

pub async fn list(p: &crate::Pools<DB>, query: &ChangeQuery) -> Result<Vec<Change>> {
    let mut tx = p.reader.begin_with(BEGIN_SNAPSHOT).await?;
    let mut filters = vec!["c.end_at > $1".to_string(), "c.start_at < $2".to_string()];
    if !query.states.is_empty() {
        // States are the domain's own names, never caller text.
        let names: Vec<String> = query.states.iter().map(|s| format!("'{}'", s.as_str())).collect();
        filters.push(format!("c.state IN ({})", names.join(", ")));
    }
    if let Some(services) = &query.services {
        if services.is_empty() {
            return Ok(Vec::new());
        }
        // Numbered like the rest of the statement (never mixed with anonymous ones).
        let list = crate::placeholder_list(false, 4, services.len());
        filters.push(format!("EXISTS (SELECT 1 FROM change_services s WHERE s.change_id = c.id AND s.service_id IN ({list}))"));
    }
    let sql = format!("SELECT c.id FROM changes c WHERE {} ORDER BY c.start_at DESC, c.id DESC LIMIT $3", filters.join(" AND "));
    let mut q = sqlx::query_as::<_, (i64,)>(trusted(sql))
        .bind(query.from.map(ms).unwrap_or(i64::MIN))
        .bind(query.to.map(ms).unwrap_or(i64::MAX))
        .bind(query.limit as i64);
    for service in query.services.iter().flatten() {
        q = q.bind(service);
    }
    let ids = q.fetch_all(&mut *tx).await?;
    let ids: Vec<i64> = ids.into_iter().map(|r| r.0).collect();
    let mut changes = fetch_many(&mut tx, &ids, "").await?;
    tx.commit().await?;
    changes.sort_by(|a, b| b.start.cmp(&a.start).then(b.id.cmp(&a.id)));
    Ok(changes)
}

/// The changes on `services` that were in progress at `at` (started, and not ended
/// then): an event sent late is judged by the work under way when it happened.
async fn in_progress_on(tx: &mut Tx<'_>, services: &[String], at: i64) -> Result<Vec<Planned>> {
    let mut ids: BTreeSet<i64> = BTreeSet::new();
    for chunk in services.chunks(500) {
        let sql = format!(
            "SELECT DISTINCT c.id FROM changes c JOIN change_services s ON s.change_id = c.id \
             WHERE s.service_id IN ({}) AND c.started_at <= {} AND (c.ended_at IS NULL OR c.ended_at > {}) AND c.state <> 'cancelled'",
            placeholders(1, chunk.len()),
            placeholders(chunk.len() + 1, 1),
            placeholders(chunk.len() + 2, 1)
        );
        let mut q = sqlx::query_as::<_, (i64,)>(trusted(sql));
        for service in chunk {
            q = q.bind(service);
        }
        ids.extend(q.bind(at).bind(at).fetch_all(&mut **tx).await?.into_iter().map(|r| r.0));
    }
    let ids: Vec<i64> = ids.into_iter().collect();
    Ok(fetch_many(tx, &ids, "").await?.iter().map(Change::planned).collect())
}

pub async fn record_event(
    p: &crate::Pools<DB>,
    key_id: Option<&str>,
    policy: &Policy<'_>,
    event: &NewChangeEvent,
    oncall: &HashMap<String, Vec<String>>,
    now: i64,
) -> Result<RecordedEvent> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    lock(&mut tx).await?;
    let catalog = policy.catalog;
    let mut near: Vec<String> = vec![event.service.clone()];
    near.extend(policy.graph.neighbourhood(&event.service, policy.settings.hops).into_iter().map(|r| r.service));
    let in_progress = in_progress_on(&mut tx, &near, ms(event.at)).await?;
    let covered = covering(&event.service, &in_progress).and_then(|c| c.id);
    let nearby = match covered {
        Some(_) => Vec::new(),
        None => nearby(&event.service, &in_progress, policy.graph, policy.settings.hops),
    };
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO change_events (service_id, summary, source, happened_at, custom_details, links, key_id, received_at, actor, covered_by, unscheduled, nearby) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(&event.service)
    .bind(&event.summary)
    .bind(&event.source)
    .bind(ms(event.at))
    .bind(event.custom_details.as_ref().map(|d| d.to_string()))
    .bind(serde_json::to_string(&event.links).expect("links serialise"))
    .bind(key_id.unwrap_or(""))
    .bind(now)
    .bind(&event.actor)
    .bind(covered)
    .bind(covered.is_none() as i64)
    .bind(serde_json::to_string(&nearby).expect("nearby serialises"))
    .fetch_one(&mut *tx)
    .await?;
    let service_name = catalog.service(&event.service).map(|s| s.name.as_str()).unwrap_or(&event.service);
    let owner = catalog.service(&event.service).map(|s| s.owner.clone()).unwrap_or_default();
    let owner_oncall: Vec<String> = oncall.get(&owner).cloned().unwrap_or_default();
    let who = event.actor.as_deref().or(event.source.as_deref()).unwrap_or("someone");
    let mut told: BTreeSet<String> = BTreeSet::new();
    let mut messages = Vec::new();
    for work in &nearby {
        let change_team = catalog.service(&work.service).map(|s| s.owner.clone()).unwrap_or_default();
        let their_people: Vec<String> = work.implementer.iter().cloned().chain(oncall.get(&change_team).cloned().unwrap_or_default()).collect();
        let contacts = |people: &[String]| people.iter().map(|p| contact(catalog, p)).collect::<Vec<_>>().join(", ");
        let path = work.path.join(" – ");
        let hops = format!("{} hop{} away ({path})", work.distance, if work.distance == 1 { "" } else { "s" });
        // To the change's side: who is working on the event's service, and how to reach its on-call.
        let subject = format!("Unscheduled work on {} during your change {}", event.service, work.number);
        let body = format!(
            "Unscheduled work on {service_name} ({}) during {} {:?} on {}, {hops}:\n{:?} by {who}.\n{} on-call ({owner}): {}\n",
            event.service,
            work.number,
            work.title,
            work.service,
            event.summary,
            service_name,
            if owner_oncall.is_empty() { "nobody found".to_string() } else { contacts(&owner_oncall) }
        );
        let key = format!("change-event:{id}:{}:theirs", work.change);
        messages.extend(notices(catalog, &their_people, &key, &subject, &body, now));
        // To the event's side: whose change is in progress nearby, and how to reach them.
        let subject = format!("Unscheduled work on {} while {} is in progress nearby", event.service, work.number);
        let body = format!(
            "{:?} on {} ({who}) is not covered by any change, and {} {:?} is in progress on {}, {hops}.\nImplementer and {change_team} on-call: {}\n",
            event.summary,
            event.service,
            work.number,
            work.title,
            work.service,
            contacts(&their_people)
        );
        let key = format!("change-event:{id}:{}:ours", work.change);
        messages.extend(notices(catalog, &owner_oncall, &key, &subject, &body, now));
        told.extend(their_people);
        told.extend(owner_oncall.iter().cloned());
        let text = format!("Unscheduled work on {} ({hops}): {:?} by {who}", event.service, event.summary);
        log(&mut tx, work.change, now, "unscheduled_nearby", "muster", &text).await?;
    }
    if let Some(change) = covered {
        let text = format!("Change event on {}: {:?} by {who}", event.service, event.summary);
        log(&mut tx, change, now, "change_event", "muster", &text).await?;
    }
    notify_sql::insert(&mut tx, now, &messages).await?;
    tx.commit().await?;
    Ok(RecordedEvent { id, unscheduled: covered.is_none(), covered_by: covered.map(number), nearby, told: told.into_iter().collect() })
}

pub async fn events(p: &crate::Pools<DB>, service: &str, limit: i64) -> Result<Vec<EventRow>> {
    Ok(sqlx::query_as(
        "SELECT id, service_id, summary, source, happened_at, custom_details, links, received_at, actor, covered_by, unscheduled, nearby \
         FROM change_events WHERE service_id = $1 ORDER BY happened_at DESC, id DESC LIMIT $2",
    )
    .bind(service)
    .bind(limit)
    .fetch_all(&p.reader)
    .await?)
}

pub async fn on_services(p: &crate::Pools<DB>, services: &[String], from: i64, to: i64) -> Result<Vec<Change>> {
    let mut tx = p.reader.begin_with(BEGIN_SNAPSHOT).await?;
    let mut ids: BTreeSet<i64> = BTreeSet::new();
    for chunk in services.chunks(500) {
        let sql = format!(
            "SELECT DISTINCT s.change_id FROM change_services s JOIN changes c ON c.id = s.change_id \
             WHERE s.service_id IN ({}) AND s.end_at > {} AND s.start_at < {} AND c.state <> 'cancelled'",
            placeholders(1, chunk.len()),
            placeholders(chunk.len() + 1, 1),
            placeholders(chunk.len() + 2, 1)
        );
        let mut q = sqlx::query_as::<_, (i64,)>(trusted(sql));
        for service in chunk {
            q = q.bind(service);
        }
        ids.extend(q.bind(from).bind(to).fetch_all(&mut *tx).await?.into_iter().map(|r| r.0));
    }
    let ids: Vec<i64> = ids.into_iter().collect();
    let changes = fetch_many(&mut tx, &ids, "").await?;
    tx.commit().await?;
    Ok(changes)
}

pub async fn events_on(p: &crate::Pools<DB>, services: &[String], from: i64, to: i64, limit: i64) -> Result<Vec<EventRow>> {
    let mut rows: Vec<EventRow> = Vec::new();
    for chunk in services.chunks(500) {
        let sql = format!(
            "SELECT id, service_id, summary, source, happened_at, custom_details, links, received_at, actor, covered_by, unscheduled, nearby \
             FROM change_events WHERE service_id IN ({}) AND happened_at >= {} AND happened_at < {} ORDER BY happened_at DESC, id DESC LIMIT {}",
            placeholders(1, chunk.len()),
            placeholders(chunk.len() + 1, 1),
            placeholders(chunk.len() + 2, 1),
            placeholders(chunk.len() + 3, 1)
        );
        let mut q = sqlx::query_as::<_, EventRow>(trusted(sql));
        for service in chunk {
            q = q.bind(service);
        }
        rows.extend(q.bind(from).bind(to).bind(limit).fetch_all(&p.reader).await?);
    }
    rows.sort_by(|a, b| b.4.cmp(&a.4).then(b.0.cmp(&a.0)));
    rows.truncate(limit as usize);
    Ok(rows)
}

pub async fn mark_caused(p: &crate::Pools<DB>, actor: &Actor, incident: i64, change: i64, by: &str, now: i64) -> Result<()> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    lock(&mut tx).await?;
    // As in `link_fix`: the change may be in progress.
    incidents_sql::lock(&mut tx).await?;
    let record = fetch(&mut tx, change, LOCK).await?;
    let incident_number = incident_number(incident);
    let found: Option<(i64,)> = sqlx::query_as("SELECT id FROM incidents WHERE id = $1").bind(incident).fetch_optional(&mut *tx).await?;
    if found.is_none() {
        return Err(StoreError::NotFound(format!("no incident {incident_number}")));
    }
    let added = sqlx::query("INSERT INTO change_incidents (change_id, incident_id, marked_by, at) VALUES ($1, $2, $3, $4) ON CONFLICT (change_id, incident_id) DO NOTHING")
        .bind(change)
        .bind(incident)
        .bind(by)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if added == 0 {
        return Err(StoreError::Conflict(format!("{incident_number} is already marked as caused by {}", record.number)));
    }
    let text = format!("Caused {incident_number} (marked by {by})");
    log(&mut tx, change, now, "caused_incident", by, &text).await?;
    let text = format!("Caused by {} ({}; marked by {by})", named(&record), record.state.as_str().replace('_', " "));
    incidents_sql::timeline(&mut tx, incident, now, "caused_by", by, &text).await?;
    let entry = actor.entry("change.caused_incident", format!("change:{}", record.number), None, Some(incident_number));
    audit_sql::append(&mut tx, now, vec![entry]).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn ended_between(p: &crate::Pools<DB>, from: i64, to: i64) -> Result<Vec<(i64, String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT c.id, c.state, (SELECT COUNT(*) FROM change_incidents ci WHERE ci.change_id = c.id) FROM changes c \
         WHERE c.ended_at >= $1 AND c.ended_at < $2 AND c.state IN ('completed', 'rolled_back', 'failed') ORDER BY c.id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&p.reader)
    .await?)
}

pub async fn services_by_change(p: &crate::Pools<DB>, ids: &[i64]) -> Result<HashMap<i64, Vec<String>>> {
    let mut tx = p.reader.begin_with(BEGIN_SNAPSHOT).await?;
    let services = services_of(&mut tx, ids).await?;
    tx.commit().await?;
    Ok(services)
}

pub async fn put_change_feed(p: &crate::Pools<DB>, actor: &Actor, hash: &str, name: &str, team: Option<&str>, service: Option<&str>, now: i64) -> Result<i64> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let (id,): (i64,) = sqlx::query_as("INSERT INTO change_feeds (token_hash, name, team, service, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
        .bind(hash)
        .bind(name)
        .bind(team)
        .bind(service)
        .bind(now)
        .bind(&actor.label)
        .fetch_one(&mut *tx)
        .await?;
    let scope = serde_json::json!({"name": name, "team": team, "service": service}).to_string();
    audit_sql::append(&mut tx, now, vec![actor.entry("change_feed.create", format!("change_feed:{id}"), None, Some(scope))]).await?;
    tx.commit().await?;
    Ok(id)
}

const FEED_COLUMNS: &str = "id, name, team, service, created_at, created_by";

pub async fn change_feeds(p: &crate::Pools<DB>) -> Result<Vec<FeedRow>> {
    let sql = format!("SELECT {FEED_COLUMNS} FROM change_feeds ORDER BY id");
    Ok(sqlx::query_as(trusted(sql)).fetch_all(&p.reader).await?)
}

pub async fn change_feed(p: &crate::Pools<DB>, hash: &str) -> Result<Option<FeedRow>> {
    let sql = format!("SELECT {FEED_COLUMNS} FROM change_feeds WHERE token_hash = $1");
    Ok(sqlx::query_as(trusted(sql)).bind(hash).fetch_optional(&p.reader).await?)
}

pub async fn delete_change_feed(p: &crate::Pools<DB>, actor: &Actor, id: i64, now: i64) -> Result<bool> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let done = sqlx::query("DELETE FROM change_feeds WHERE id = $1").bind(id).execute(&mut *tx).await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    audit_sql::append(&mut tx, now, vec![actor.entry("change_feed.revoke", format!("change_feed:{id}"), None, None)]).await?;
    tx.commit().await?;
    Ok(true)
}
