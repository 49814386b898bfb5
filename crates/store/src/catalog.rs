//! Catalog persistence: one table per entity kind holding the entity as JSON, a
//! generation number bumped by every change, and an in-memory snapshot per generation
//! (a hint: every read checks the generation, so several servers stay consistent).

use crate::{Result, Store, StoreError, dispatch, per_dialect};
use jiff::Timestamp;
use muster_domain::audit::Actor;
use muster_domain::catalog::apply::{Change, Op, Plan, Refusal};
use muster_domain::catalog::graph::ServiceGraph;
use muster_domain::catalog::{Catalog, Entity, Kind, Person};
use muster_domain::oncall::revisions;
use serde_json::Value;
use std::sync::Arc;

/// The catalog as of one generation, with its dependency graph.
pub struct CatalogSnapshot {
    pub generation: i64,
    /// Every section sorted by id; secrets sealed (use [`Catalog::redacted`] to show).
    pub catalog: Catalog,
    pub graph: ServiceGraph,
}

impl CatalogSnapshot {
    fn new(generation: i64, entities: Vec<Entity>) -> Result<CatalogSnapshot> {
        let catalog = Catalog::from_entities(entities)
            .map_err(StoreError::Corrupt)?
            .sorted();
        let graph = ServiceGraph::new(&catalog);
        Ok(CatalogSnapshot {
            generation,
            catalog,
            graph,
        })
    }
}

impl Store {
    /// The current catalog. Cheap when nothing changed since the last call.
    pub async fn catalog(&self) -> Result<Arc<CatalogSnapshot>> {
        let generation: i64 = dispatch!(self, generation())?;
        if let Some(snapshot) = self.inner.catalog_cache.read().await.as_ref()
            && snapshot.generation == generation
        {
            return Ok(snapshot.clone());
        }
        let (generation, entities) = dispatch!(self, load())?;
        let snapshot = Arc::new(CatalogSnapshot::new(generation, entities)?);
        let mut cache = self.inner.catalog_cache.write().await;
        if cache.as_ref().is_none_or(|c| c.generation < generation) {
            *cache = Some(snapshot.clone());
        }
        Ok(snapshot)
    }

    /// Plans a change against the current catalog and applies it atomically, with one
    /// audit entry per entity changed. `decide` sees the catalog as locked for writing.
    pub async fn change_catalog<F>(
        &self,
        actor: &Actor,
        action_prefix: &str,
        decide: F,
    ) -> Result<Plan>
    where
        F: FnOnce(&Catalog) -> Result<Plan, Refusal> + Send,
    {
        let cached = self.inner.catalog_cache.read().await.clone();
        let now = self.now_ms();
        let plan = dispatch!(self, change(now, actor, action_prefix, cached, decide))?;
        Ok(plan)
    }

    /// `schedule`'s recorded definitions, oldest first: when each took effect (`None`:
    /// from the beginning) and the schedule document. Empty until the schedule's
    /// definition is first changed.
    pub async fn schedule_revisions(
        &self,
        schedule: &str,
    ) -> Result<Vec<(Option<Timestamp>, Value)>> {
        let rows = dispatch!(self, revisions(schedule))?;
        rows.into_iter()
            .map(|(effective_from, body)| {
                let corrupt = |e: String| {
                    StoreError::Corrupt(format!("revision of schedule {schedule:?}: {e}"))
                };
                let effective_from = effective_from
                    .map(Timestamp::from_millisecond)
                    .transpose()
                    .map_err(|e| corrupt(e.to_string()))?;
                let body = serde_json::from_str(&body).map_err(|e| corrupt(e.to_string()))?;
                Ok((effective_from, body))
            })
            .collect()
    }

    /// Seals secrets for storage.
    pub fn sealer(&self) -> &crate::secrets::SecretBox {
        &self.inner.secrets
    }
}

/// What the audit shows of an entity: its JSON with secrets redacted.
fn audit_body(kind: Kind, body: &Option<Value>) -> Option<String> {
    let body = body.as_ref()?;
    if kind == Kind::Person
        && let Ok(mut person) = serde_json::from_value::<Person>(body.clone())
    {
        person.redact();
        return serde_json::to_string(&person).ok();
    }
    Some(body.to_string())
}

fn audit_entries(
    actor: &Actor,
    action_prefix: &str,
    changes: &[Change],
) -> Vec<muster_domain::audit::NewAuditEntry> {
    changes
        .iter()
        .map(|c| {
            let op = match c.op {
                Op::Create => "create",
                Op::Update => "update",
                Op::Delete => "delete",
            };
            let action = if action_prefix.is_empty() {
                op.to_string()
            } else {
                format!("{action_prefix}.{op}")
            };
            actor.entry(
                &action,
                format!("{}:{}", c.kind.singular(), c.id),
                audit_body(c.kind, &c.before),
                audit_body(c.kind, &c.after),
            )
        })
        .collect()
}

per_dialect!("catalog/sql.rs");
