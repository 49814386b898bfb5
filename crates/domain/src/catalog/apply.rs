//! Declarative application of catalog documents and single-entity edits: what would be
//! created, updated, deleted or left unchanged, checked as a whole before anything is
//! written. The store executes a [`Plan`] in one transaction.

use super::model::{Catalog, Contact, Entity, Kind, entity_id};
use super::secret::{REDACTED, Secret};
use super::validate::{Paths, validate};
use crate::problem::{FieldError, FieldErrors};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// Seals and opens secrets; the store holds the key.
pub trait Sealer {
    fn seal(&self, plain: &str) -> String;
    fn open(&self, sealed: &str) -> Option<String>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Create,
    Update,
    Delete,
}

/// One entity written by a plan, with its state before and after (for the audit).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: Kind,
    pub id: String,
    pub op: Op,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// What an import did to one kind of entity.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindSummary {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
    pub unchanged: Vec<String>,
    /// Stored but absent from the document, kept because the import did not prune.
    pub kept: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Per section (`teams`, `services`, …), in document order.
    #[serde(flatten, serialize_with = "by_section")]
    pub kinds: BTreeMap<Kind, KindSummary>,
    /// Parts of the document that were deliberately not applied, with why.
    pub notes: Vec<FieldError>,
}

fn by_section<S: serde::Serializer>(
    kinds: &BTreeMap<Kind, KindSummary>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(kinds.len()))?;
    for (kind, summary) in kinds {
        map.serialize_entry(kind.section(), summary)?;
    }
    map.end()
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// The catalog once the plan is applied.
    pub result: Catalog,
    pub summary: Summary,
}

/// Why a catalog change was not made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("the catalog is invalid")]
    Invalid(FieldErrors),
    #[error("no {} with id {id:?}", kind.singular().replace('_', " "))]
    NotFound { kind: Kind, id: String },
    #[error("{} {id:?} is still referenced", kind.singular().replace('_', " "))]
    Referenced {
        kind: Kind,
        id: String,
        by: FieldErrors,
    },
    #[error("{} {id:?} was changed since it was read (its ETag is now {etag})", kind.singular().replace('_', " "))]
    Stale {
        kind: Kind,
        id: String,
        etag: String,
    },
    #[error("{0} already exists")]
    Exists(String),
}

impl From<FieldErrors> for Refusal {
    fn from(errors: FieldErrors) -> Self {
        Refusal::Invalid(errors)
    }
}

/// Plans applying a whole document: creates and updates what it declares; entities
/// absent from it are kept unless `prune`. Never moves a renewable's expiry backwards.
pub fn plan_import(
    current: &Catalog,
    mut incoming: Catalog,
    prune: bool,
    sealer: &dyn Sealer,
) -> Result<Plan, FieldErrors> {
    if prune && incoming.entities().is_empty() {
        // Almost always a mistake (an empty file, the wrong file): it would delete
        // the whole catalog.
        return Err(FieldError::new(
            "",
            "the document declares nothing; pruning with it would delete the whole catalog",
        )
        .into());
    }
    let mut errors = FieldErrors::default();
    for (i, person) in incoming.people.iter_mut().enumerate() {
        let stored = current
            .person(&person.id)
            .map(|p| p.contacts.as_slice())
            .unwrap_or(&[]);
        seal_contacts(
            &format!("people[{i}]"),
            &mut person.contacts,
            stored,
            sealer,
            &mut errors,
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let notes = keep_later_expiries(current, &mut incoming);

    let lens: HashMap<Kind, usize> = Kind::ALL
        .iter()
        .map(|&k| (k, section_len(&incoming, k)))
        .collect();
    let mut result = incoming;
    let mut kept: BTreeMap<Kind, Vec<String>> = BTreeMap::new();
    if !prune {
        let declared: HashMap<(Kind, String), ()> = result
            .entities()
            .into_iter()
            .map(|e| ((e.kind, e.id), ()))
            .collect();
        let absent: Vec<Entity> = current
            .entities()
            .into_iter()
            .filter(|e| !declared.contains_key(&(e.kind, e.id.clone())))
            .collect();
        for e in &absent {
            kept.entry(e.kind).or_default().push(e.id.clone());
        }
        result = append(result, absent)?;
    }
    validate(&result, &Paths::document_then_stored(lens))?;
    let mut plan = diff(current, result);
    for (kind, ids) in kept {
        plan.summary.kinds.entry(kind).or_default().kept = ids;
        if let Some(summary) = plan.summary.kinds.get_mut(&kind) {
            summary.unchanged.retain(|id| !summary.kept.contains(id));
        }
    }
    plan.summary.notes = notes;
    Ok(plan)
}

/// Plans creating or replacing one entity given as JSON (already parsed into its kind
/// by the caller). Error paths are the entity's own fields.
pub fn plan_put(
    current: &Catalog,
    kind: Kind,
    body: Value,
    sealer: &dyn Sealer,
) -> Result<Plan, FieldErrors> {
    let id = entity_id(&body).unwrap_or_default().to_string();
    let body = match kind {
        Kind::Person => seal_person_body(current, body, sealer)?,
        Kind::Team => reshape::<super::model::Team>(body)?,
        Kind::Service => reshape::<super::model::Service>(body)?,
        Kind::Organisation => reshape::<super::model::Organisation>(body)?,
        _ => body,
    };
    let mut entities: Vec<Entity> = current
        .entities()
        .into_iter()
        .filter(|e| !(e.kind == kind && e.id == id))
        .collect();
    entities.push(Entity {
        kind,
        id: id.clone(),
        body,
    });
    let result =
        Catalog::from_entities(entities).map_err(|e| FieldErrors::from(FieldError::new("", e)))?;
    validate(&result, &Paths::single(kind, id))?;
    Ok(diff(current, result))
}

/// Plans deleting one entity, refused while anything still references it.
pub fn plan_delete(current: &Catalog, kind: Kind, id: &str) -> Result<Plan, Refusal> {
    let entities = current.entities();
    if !entities.iter().any(|e| e.kind == kind && e.id == id) {
        return Err(Refusal::NotFound {
            kind,
            id: id.to_string(),
        });
    }
    let rest = entities
        .into_iter()
        .filter(|e| !(e.kind == kind && e.id == id));
    let result = Catalog::from_entities(rest)
        .map_err(|e| Refusal::Invalid(FieldError::new("", e).into()))?;
    // The stored catalog was valid, so every problem left is a reference to `id`.
    let by_id = Paths {
        label: Box::new(|k: Kind, _, i: &str| format!("{}[id={i}]", k.section())),
    };
    validate(&result, &by_id).map_err(|mut by| {
        // Said from the referrer's side: the entity still exists.
        for e in &mut by.0 {
            e.message = e.message.replacen("unknown ", "refers to ", 1);
        }
        Refusal::Referenced {
            kind,
            id: id.to_string(),
            by,
        }
    })?;
    Ok(diff(current, result))
}

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let object = target.as_object_mut().expect("just made an object");
            for (key, value) in fields {
                if value.is_null() {
                    object.remove(key);
                } else {
                    merge_patch(object.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// A strong validator of an entity's stored state, for `ETag` and `If-Match`.
pub fn entity_etag(body: &Value) -> String {
    let digest = Sha256::digest(body.to_string().as_bytes());
    format!("\"{}\"", &hex::encode(digest)[..20])
}

/// Checks an entity's shape (naming the field that does not fit) and normalises it.
fn reshape<T: serde::de::DeserializeOwned + Serialize>(body: Value) -> Result<Value, FieldErrors> {
    let typed: T = crate::catalog::parse::from_value(body)?;
    Ok(serde_json::to_value(typed).unwrap_or(Value::Null))
}

fn seal_person_body(
    current: &Catalog,
    body: Value,
    sealer: &dyn Sealer,
) -> Result<Value, FieldErrors> {
    let mut person: super::model::Person = crate::catalog::parse::from_value(body)?;
    let stored = current
        .person(&person.id)
        .map(|p| p.contacts.as_slice())
        .unwrap_or(&[]);
    let mut errors = FieldErrors::default();
    seal_contacts("", &mut person.contacts, stored, sealer, &mut errors);
    errors.into_result(())?;
    Ok(serde_json::to_value(person).unwrap_or(Value::Null))
}

/// Turns every secret into its sealed form: clear text is sealed (reusing the stored
/// seal when the text is unchanged, so a re-import is not an update), and `<redacted>`
/// takes the stored secret of the contact at the same position and type.
fn seal_contacts(
    prefix: &str,
    contacts: &mut [Contact],
    stored: &[Contact],
    sealer: &dyn Sealer,
    errors: &mut FieldErrors,
) {
    for (c, contact) in contacts.iter_mut().enumerate() {
        let kind = contact.kind();
        let stored_secret = stored
            .get(c)
            .filter(|s| s.kind() == kind)
            .and_then(Contact::secret);
        let field = if matches!(contact, Contact::Webhook { .. }) {
            "secret"
        } else {
            "url"
        };
        let path = if prefix.is_empty() {
            format!("contacts[{c}].{field}")
        } else {
            format!("{prefix}.contacts[{c}].{field}")
        };
        // Chat webhook URLs are checked here, while still in clear: once sealed,
        // validation cannot see them.
        if let Contact::Slack {
            url: Secret::Plain(url),
        }
        | Contact::Teams {
            url: Secret::Plain(url),
        } = &*contact
            && let Some(problem) = super::validate::url_problem(url)
        {
            errors.push(path, problem);
            continue;
        }
        let Some(secret) = contact.secret_mut() else {
            continue;
        };
        match (secret.clone(), stored_secret) {
            (Secret::Plain(plain), Some(Secret::Sealed(sealed))) if sealer.open(sealed).as_deref() == Some(plain.as_str()) => {
                *secret = Secret::Sealed(sealed.clone());
            }
            (Secret::Plain(plain), _) => *secret = Secret::Sealed(sealer.seal(&plain)),
            (Secret::Redacted, Some(Secret::Sealed(sealed))) => *secret = Secret::Sealed(sealed.clone()),
            (Secret::Redacted, _) => errors.push(path, format!("{REDACTED:?} keeps a stored secret, but none is stored for this {kind} contact: give the value")),
            (Secret::Sealed(_), _) => errors.push(path, "sealed values cannot be imported: give the value in clear or \"<redacted>\""),
        }
    }
}

/// A renewable's expiry is run-time truth once stored: an import may move it later,
/// never earlier. An older date is kept out and reported.
fn keep_later_expiries(current: &Catalog, incoming: &mut Catalog) -> Vec<FieldError> {
    let stored: HashMap<&str, jiff::Timestamp> = current
        .renewables
        .iter()
        .filter_map(|r| Some((entity_id(r)?, r.get("expires_at")?.as_str()?.parse().ok()?)))
        .collect();
    let mut notes = Vec::new();
    for (i, renewable) in incoming.renewables.iter_mut().enumerate() {
        let Some(id) = entity_id(renewable) else {
            continue;
        };
        let Some(stored_at) = stored.get(id) else {
            continue;
        };
        let given = renewable
            .get("expires_at")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        if let Some(given) = given
            && given < *stored_at
        {
            notes.push(FieldError::new(
                    format!("renewables[{i}].expires_at"),
                    format!("{given} is older than the stored expiry {stored_at}: ignored, the stored expiry is kept"),
                ));
            renewable["expires_at"] = Value::String(stored_at.to_string());
        }
    }
    notes
}

fn section_len(catalog: &Catalog, kind: Kind) -> usize {
    match kind {
        Kind::Team => catalog.teams.len(),
        Kind::Person => catalog.people.len(),
        Kind::Service => catalog.services.len(),
        Kind::Organisation => catalog.organisations.len(),
        Kind::Schedule => catalog.schedules.len(),
        Kind::EscalationPolicy => catalog.escalation_policies.len(),
        Kind::Freeze => catalog.freezes.len(),
        Kind::Renewable => catalog.renewables.len(),
        Kind::ChangeTemplate => catalog.change_templates.len(),
    }
}

fn append(catalog: Catalog, more: Vec<Entity>) -> Result<Catalog, FieldErrors> {
    let mut entities = catalog.entities();
    entities.extend(more);
    Catalog::from_entities(entities).map_err(|e| FieldError::new("", e).into())
}

/// Compares stored and resulting catalogs entity by entity.
fn diff(current: &Catalog, result: Catalog) -> Plan {
    let before: HashMap<(Kind, String), Value> = current
        .entities()
        .into_iter()
        .map(|e| ((e.kind, e.id), e.body))
        .collect();
    let after_entities = result.entities();
    let mut summary = Summary::default();
    for kind in Kind::ALL {
        summary.kinds.insert(kind, KindSummary::default());
    }
    let mut changes = Vec::new();
    let mut present = HashMap::new();
    for e in after_entities {
        let slot = summary.kinds.entry(e.kind).or_default();
        match before.get(&(e.kind, e.id.clone())) {
            None => {
                slot.created.push(e.id.clone());
                changes.push(Change {
                    kind: e.kind,
                    id: e.id.clone(),
                    op: Op::Create,
                    before: None,
                    after: Some(e.body),
                });
            }
            Some(old) if *old != e.body => {
                slot.updated.push(e.id.clone());
                changes.push(Change {
                    kind: e.kind,
                    id: e.id.clone(),
                    op: Op::Update,
                    before: Some(old.clone()),
                    after: Some(e.body),
                });
            }
            Some(_) => slot.unchanged.push(e.id.clone()),
        }
        present.insert((e.kind, e.id), ());
    }
    for e in current.entities() {
        if !present.contains_key(&(e.kind, e.id.clone())) {
            summary
                .kinds
                .entry(e.kind)
                .or_default()
                .deleted
                .push(e.id.clone());
            changes.push(Change {
                kind: e.kind,
                id: e.id,
                op: Op::Delete,
                before: Some(e.body),
                after: None,
            });
        }
    }
    Plan {
        changes,
        result,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::parse::{Format, parse_catalog};

    /// Reversible stand-in for the store's cipher.
    struct Rot;
    impl Sealer for Rot {
        fn seal(&self, plain: &str) -> String {
            format!("sealed:v1:{}", plain.chars().rev().collect::<String>())
        }
        fn open(&self, sealed: &str) -> Option<String> {
            sealed
                .strip_prefix("sealed:v1:")
                .map(|s| s.chars().rev().collect())
        }
    }

    fn doc(yaml: &str) -> Catalog {
        parse_catalog(yaml, Format::Yaml).unwrap()
    }

    fn seed() -> Catalog {
        doc(include_str!("../../../../fixtures/seed-world.yaml"))
    }

    #[test]
    fn importing_the_seed_world_creates_everything_then_nothing() {
        let first = plan_import(&Catalog::default(), seed(), false, &Rot).unwrap();
        assert_eq!(first.summary.kinds[&Kind::Service].created.len(), 12);
        assert_eq!(first.changes.len(), 9 + 22 + 12 + 12 + 7 + 7 + 1 + 3);
        let again = plan_import(&first.result, seed(), false, &Rot).unwrap();
        assert!(again.changes.is_empty(), "{:?}", again.changes);
        assert_eq!(again.summary.kinds[&Kind::Service].unchanged.len(), 12);
    }

    #[test]
    fn absent_entities_are_kept_unless_pruned() {
        let stored = plan_import(&Catalog::default(), seed(), false, &Rot)
            .unwrap()
            .result;
        let small = doc(
            "teams: [{id: platform, name: Platform, members: [pia, pete], escalation_policy: platform}]",
        );
        let kept = plan_import(&stored, small.clone(), false, &Rot).unwrap();
        assert!(kept.changes.is_empty());
        assert_eq!(kept.summary.kinds[&Kind::Team].kept.len(), 8);
        assert_eq!(kept.summary.kinds[&Kind::Team].unchanged, vec!["platform"]);
        assert!(
            plan_import(&stored, Catalog::default(), true, &Rot).is_err(),
            "pruning with an empty document is refused"
        );
        let pruned = plan_import(&stored, small, true, &Rot);
        let err = pruned.unwrap_err();
        assert!(
            err.0.iter().any(|e| e.path == "teams[0].members[0]"),
            "pruning people the team needs is refused: {err}"
        );
    }

    #[test]
    fn references_to_stored_entities_resolve_and_are_named_by_id() {
        let stored = plan_import(&Catalog::default(), seed(), false, &Rot)
            .unwrap()
            .result;
        let more = doc(
            "services: [{id: fax, name: Fax, owner: platform, depends_on: [identity]}, {id: vendor-auth, name: V, owner: platform, depends_on: [fax]}]",
        );
        let err = plan_import(&stored, more, false, &Rot).unwrap_err();
        let messages: Vec<String> = err.0.iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("dependency cycle"), "{messages:?}");
    }

    #[test]
    fn renewable_expiry_never_moves_backwards() {
        let stored = plan_import(&Catalog::default(), seed(), false, &Rot)
            .unwrap()
            .result;
        let mut older = seed();
        older.renewables[0]["expires_at"] = "2026-01-01T00:00:00Z".into();
        let plan = plan_import(&stored, older, false, &Rot).unwrap();
        assert!(plan.changes.is_empty());
        assert_eq!(plan.summary.notes.len(), 1);
        assert_eq!(plan.summary.notes[0].path, "renewables[0].expires_at");
        let mut later = seed();
        later.renewables[0]["expires_at"] = "2028-01-01T00:00:00Z".into();
        assert_eq!(
            plan_import(&stored, later, false, &Rot)
                .unwrap()
                .summary
                .kinds[&Kind::Renewable]
                .updated,
            vec!["formprint-licence"]
        );
    }

    #[test]
    fn secrets_are_sealed_and_redacted_exports_round_trip() {
        let with_secret = doc(
            "people: [{id: p, name: P, timezone: UTC, contacts: [{type: slack, url: 'https://hooks.example.test/x'}, {type: webhook, url: 'https://h.example.test', secret: s3cret}]}]",
        );
        let stored = plan_import(&Catalog::default(), with_secret.clone(), false, &Rot)
            .unwrap()
            .result;
        let sealed = serde_json::to_string(&stored.people[0]).unwrap();
        assert!(
            !sealed.contains("hooks.example.test/x") && !sealed.contains("s3cret"),
            "{sealed}"
        );
        // Same clear text again: unchanged, not re-sealed.
        assert!(
            plan_import(&stored, with_secret, false, &Rot)
                .unwrap()
                .changes
                .is_empty()
        );
        // The redacted export re-imports to the same state.
        let exported = serde_json::to_string(&stored.redacted()).unwrap();
        assert!(exported.contains("<redacted>"));
        let back: Catalog = serde_json::from_str(&exported).unwrap();
        let plan = plan_import(&stored, back, false, &Rot).unwrap();
        assert!(plan.changes.is_empty(), "{:?}", plan.changes);
        // Chat webhook URLs are checked before they are sealed.
        let bad_url = doc(
            "people: [{id: r, name: R, timezone: UTC, contacts: [{type: slack, url: 'ftp://x'}]}]",
        );
        let err = plan_import(&stored, bad_url, false, &Rot).unwrap_err();
        assert_eq!(
            err.0[0].to_string(),
            "people[0].contacts[0].url: \"ftp://x\" is not an http(s) URL"
        );
        // Redacted with nothing stored is refused, naming the field.
        let fresh = doc(
            "people: [{id: q, name: Q, timezone: UTC, contacts: [{type: teams, url: '<redacted>'}]}]",
        );
        let err = plan_import(&stored, fresh, false, &Rot).unwrap_err();
        assert_eq!(err.0[0].path, "people[0].contacts[0].url");
    }

    #[test]
    fn deleting_a_referenced_entity_names_the_referrers() {
        let stored = plan_import(&Catalog::default(), seed(), false, &Rot)
            .unwrap()
            .result;
        let Refusal::Referenced { by: why, .. } =
            plan_delete(&stored, Kind::Team, "hosting").unwrap_err()
        else {
            panic!()
        };
        let paths: Vec<&str> = why.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "services[id=northwind-login].owner",
                "services[id=northwind-login-backup].owner",
                "escalation_policies[id=hosting].steps[1].targets[0]"
            ]
        );
        assert!(matches!(
            plan_delete(&stored, Kind::Team, "nope").unwrap_err(),
            Refusal::NotFound { .. }
        ));
        let plan = plan_delete(&stored, Kind::Person, "vic").unwrap();
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(plan.changes[0].op, Op::Delete);
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut target = serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(
            &mut target,
            &serde_json::json!({"a": null, "b": {"c": 9}, "e": [1]}),
        );
        assert_eq!(target, serde_json::json!({"b": {"c": 9, "d": 3}, "e": [1]}));
    }
}
