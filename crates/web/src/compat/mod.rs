//! Compatibility endpoints: Alertmanager's API v2, PagerDuty's Events API v2 and the
//! Alertmanager and Grafana webhook receivers. Each answers as its peer does; what they
//! share lives here: who is calling (an integration key, or a user) and putting
//! received alerts into the store, routed to their service.

pub mod alertmanager;
pub mod pagerduty;
pub mod webhooks;

use crate::AppState;
use crate::auth::Caller;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use muster_domain::audit::Actor;
use muster_domain::auth::Permission;
use muster_domain::signals::ingest::AlertKey;
use muster_domain::signals::{Alert, KeyScope, LabelSet, Source, fingerprint};
use muster_store::signals::{IntegrationKey, Origin};
use muster_store::{Store, StoreError};

/// Who calls a compatibility endpoint.
#[derive(Debug, Clone)]
pub enum Intake {
    /// An integration key (`Authorization: Bearer KEY` or the `/i/{key}` prefix).
    Key(IntegrationKey),
    /// A user's API token or session: reads, and silences with the responder role.
    User(Caller),
}

/// Why a caller was refused, before the endpoint's own shape is applied.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
}

impl Refused {
    fn new(status: StatusCode, message: impl Into<String>) -> Refused {
        Refused {
            status,
            message: message.into(),
        }
    }
}

/// Whether a credential has the shape of an integration key (user tokens start `mst_`).
pub fn looks_like_key(text: &str) -> bool {
    text.len() == muster_domain::signals::pagerduty::KEY_LENGTH
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Looks up a live integration key whose service (or fallback) still exists.
pub async fn key(store: &Store, secret: &str) -> Result<Option<IntegrationKey>, Refused> {
    let key = store
        .authenticate_integration_key(secret)
        .await
        .map_err(internal)?;
    let Some(key) = key else { return Ok(None) };
    let catalog = store.catalog().await.map_err(internal)?;
    let service = match &key.scope {
        KeyScope::Service { service } => service,
        KeyScope::Global { fallback, .. } => fallback,
    };
    if catalog.catalog.service(service).is_none() {
        return Err(Refused::new(
            StatusCode::UNAUTHORIZED,
            format!(
                "integration key {} routes to service {service:?}, which is no longer in the catalog",
                key.id
            ),
        ));
    }
    Ok(Some(key))
}

fn internal(error: StoreError) -> Refused {
    tracing::error!(%error, "compatibility request failed");
    Refused::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; the server log has the details",
    )
}

impl FromRequestParts<AppState> for Intake {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refused> {
        let prefix_key = RawPathParams::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|params| {
                params
                    .iter()
                    .find(|(name, _)| *name == "key")
                    .map(|(_, v)| v.to_string())
            });
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|v| v.trim().to_string());
        let unknown = || {
            Refused::new(
                StatusCode::UNAUTHORIZED,
                "the integration key is unknown or revoked",
            )
        };
        if let Some(secret) = prefix_key {
            return key(&state.store, &secret)
                .await?
                .map(Intake::Key)
                .ok_or_else(unknown);
        }
        if let Some(secret) = bearer.as_deref().filter(|s| looks_like_key(s)) {
            return key(&state.store, secret)
                .await?
                .map(Intake::Key)
                .ok_or_else(unknown);
        }
        Caller::from_request_parts(parts, state)
            .await
            .map(Intake::User)
            .map_err(|e| Refused::new(e.status, e.detail))
    }
}

impl Intake {
    /// The one service this caller is limited to (a service's key).
    pub fn service(&self) -> Option<&str> {
        match self {
            Intake::Key(key) => key.scope.service(),
            Intake::User(_) => None,
        }
    }

    pub fn actor(&self) -> Actor {
        match self {
            Intake::Key(key) => Actor {
                label: format!("integration key {} ({})", key.name, key.id),
                person: None,
                on_behalf_of: None,
                reason: None,
            },
            Intake::User(caller) => caller.actor(),
        }
    }

    /// Alerts come in through integration keys only.
    pub fn key(&self) -> Result<&IntegrationKey, Refused> {
        match self {
            Intake::Key(key) => Ok(key),
            Intake::User(_) => Err(Refused::new(
                StatusCode::FORBIDDEN,
                "alerts are posted with an integration key (POST /api/v1/services/{id}/integration-keys), not a user's token",
            )),
        }
    }

    /// Silences: a key within its scope; a user with the responder role not limited to
    /// one team (a silence may mute any service's alerts).
    pub fn may_silence(&self) -> Result<(), Refused> {
        match self {
            Intake::Key(_) => Ok(()),
            Intake::User(caller) => caller
                .require(Permission::Respond, None)
                .map_err(|e| Refused::new(e.status, e.detail)),
        }
    }
}

/// Puts received alerts into the store, each routed to its service by the key.
pub async fn ingest(
    store: &Store,
    key: &IntegrationKey,
    source: Source,
    alerts: Vec<Alert>,
) -> Result<usize, StoreError> {
    // Only a global key routes by label, so only it needs the catalog.
    let catalog = match key.scope {
        KeyScope::Global { .. } => Some(store.catalog().await?),
        KeyScope::Service { .. } => None,
    };
    let known = |s: &str| {
        catalog
            .as_ref()
            .is_some_and(|c| c.catalog.service(s).is_some())
    };
    let incoming: Vec<(AlertKey, Alert)> = alerts
        .into_iter()
        .map(|alert| {
            let service = key.scope.service_for(&alert.labels, known);
            ((service, fingerprint(&alert.labels)), alert)
        })
        .collect();
    store
        .ingest_alerts(&origin(key, source), incoming, None)
        .await
}

pub fn origin(key: &IntegrationKey, source: Source) -> Origin {
    Origin {
        source,
        key_id: Some(key.id.clone()),
    }
}

/// The service a key sends a label-less event to (PagerDuty events): the key's
/// service, else the service named by the routing label among `fields`, else the
/// fallback. Only a global key needs the catalog for that.
pub async fn service_of(
    store: &Store,
    key: &IntegrationKey,
    fields: &LabelSet,
) -> Result<String, StoreError> {
    if let KeyScope::Service { service } = &key.scope {
        return Ok(service.clone());
    }
    let catalog = store.catalog().await?;
    Ok(key
        .scope
        .service_for(fields, |s| catalog.catalog.service(s).is_some()))
}
