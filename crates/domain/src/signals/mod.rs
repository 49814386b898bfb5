//! Signals: machine alerts (Alertmanager, PagerDuty and Grafana shapes) and the
//! silences that mute them. An alert is identified by its label fingerprint and keeps
//! one activity range per instance, merged by Alertmanager's rules.

pub mod ingest;
pub mod labels;
pub mod matchers;
pub mod merge;
pub mod pagerduty;
pub mod postable;
pub mod silences;
pub mod webhook;

use jiff::Timestamp;
pub use labels::{LabelSet, fingerprint};
use serde::{Deserialize, Serialize};

/// One alert as received and as stored: Alertmanager's model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub starts_at: Timestamp,
    /// When the alert stops firing; `None` for alerts that fire until resolved
    /// explicitly (PagerDuty events).
    pub ends_at: Option<Timestamp>,
    /// Whether `ends_at` was made up from the resolve timeout rather than sent.
    pub timeout: bool,
    pub updated_at: Timestamp,
    pub generator_url: String,
}

impl Alert {
    /// A 128-bit digest of what the alert says (labels, annotations, generator URL),
    /// not of its times: equal digests mean a re-post only moves the times. Keyed
    /// per process, so senders cannot craft collisions; never stored.
    pub fn content_digest(&self) -> u128 {
        use std::hash::{BuildHasher, RandomState};
        static KEYS: std::sync::OnceLock<[RandomState; 2]> = std::sync::OnceLock::new();
        let [high, low] = KEYS.get_or_init(|| [RandomState::new(), RandomState::new()]);
        let content = (&self.labels, &self.annotations, &self.generator_url);
        (u128::from(high.hash_one(content)) << 64) | u128::from(low.hash_one(content))
    }
}

/// Which door an alert came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `POST /api/v2/alerts` (Prometheus, amtool, anything Alertmanager-compatible).
    Alertmanager,
    /// `POST /v2/enqueue`.
    Pagerduty,
    /// `POST /integrations/alertmanager`: an Alertmanager's webhook receiver.
    AlertmanagerWebhook,
    /// `POST /integrations/grafana`: a Grafana webhook contact point.
    GrafanaWebhook,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::Pagerduty => "pagerduty",
            Source::AlertmanagerWebhook => "alertmanager_webhook",
            Source::GrafanaWebhook => "grafana_webhook",
        }
    }

    pub fn parse(text: &str) -> Option<Source> {
        [
            Source::Alertmanager,
            Source::Pagerduty,
            Source::AlertmanagerWebhook,
            Source::GrafanaWebhook,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// What happened to an alert, as the incidents engine reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new instance started firing, or a resolved one fires again.
    Fired,
    /// Annotations or the generator URL changed while the alert fires.
    Updated,
    /// The alert stopped firing: its end time passed or a sender resolved it.
    Resolved,
    /// A PagerDuty `acknowledge` event for it.
    Acknowledged,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Fired => "fired",
            EventKind::Updated => "updated",
            EventKind::Resolved => "resolved",
            EventKind::Acknowledged => "acknowledged",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        [
            EventKind::Fired,
            EventKind::Updated,
            EventKind::Resolved,
            EventKind::Acknowledged,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// Which service an integration key's alerts belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum KeyScope {
    /// A service's key: its alerts are that service's, whatever their labels say.
    Service { service: String },
    /// An admin's global key: the service named by `label`, else `fallback`.
    Global { label: String, fallback: String },
}

pub const DEFAULT_SERVICE_LABEL: &str = "service";

impl KeyScope {
    /// The service an alert with `labels` belongs to; `known` says whether a service
    /// exists in the catalog.
    pub fn service_for(&self, labels: &LabelSet, known: impl Fn(&str) -> bool) -> String {
        match self {
            KeyScope::Service { service } => service.clone(),
            KeyScope::Global { label, fallback } => labels
                .get(label)
                .filter(|s| known(s))
                .unwrap_or(fallback)
                .clone(),
        }
    }

    /// The one service this key is limited to, if any.
    pub fn service(&self) -> Option<&str> {
        match self {
            KeyScope::Service { service } => Some(service),
            KeyScope::Global { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_key_wins_over_the_label_and_global_keys_fall_back() {
        let labels = LabelSet::from([("service".into(), "billing".into())]);
        let known = |s: &str| s == "billing" || s == "checkout";
        let service_key = KeyScope::Service {
            service: "checkout".into(),
        };
        assert_eq!(service_key.service_for(&labels, known), "checkout");
        let global = KeyScope::Global {
            label: "service".into(),
            fallback: "unrouted".into(),
        };
        assert_eq!(global.service_for(&labels, known), "billing");
        let unknown = LabelSet::from([("service".into(), "nope".into())]);
        assert_eq!(global.service_for(&unknown, known), "unrouted");
        assert_eq!(global.service_for(&LabelSet::new(), known), "unrouted");
    }
}
