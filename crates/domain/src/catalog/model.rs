//! Catalog entities as declared in a catalog document.

use super::secret::Secret;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const FORMAT_VERSION: u32 = 1;

/// A whole catalog document (`seed-world.yaml` is the format's contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(default = "format_version")]
    pub version: u32,
    #[serde(default)]
    pub teams: Vec<Team>,
    #[serde(default)]
    pub people: Vec<Person>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub organisations: Vec<Organisation>,
    /// Stored as given; the on-call domain gives them behaviour.
    #[serde(default)]
    pub schedules: Vec<Value>,
    #[serde(default)]
    pub escalation_policies: Vec<Value>,
    #[serde(default)]
    pub freezes: Vec<Value>,
    #[serde(default)]
    pub renewables: Vec<Value>,
    /// Standard changes' templates, each approved once by the owner teams.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub change_templates: Vec<Value>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            version: FORMAT_VERSION,
            teams: Vec::new(),
            people: Vec::new(),
            services: Vec::new(),
            organisations: Vec::new(),
            schedules: Vec::new(),
            escalation_policies: Vec::new(),
            freezes: Vec::new(),
            renewables: Vec::new(),
            change_templates: Vec::new(),
        }
    }
}

fn format_version() -> u32 {
    FORMAT_VERSION
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// IANA timezone, e.g. `Europe/London`.
    pub timezone: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<Contact>,
    /// Which kind of contact method a page uses after how long; every method at once
    /// when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notification_rules: Vec<NotificationRule>,
}

/// "Use `contact` methods `after` this long": `contact` is a kind of contact method
/// (`email` covers the person's `email` and email contacts; `webhook`, `slack`,
/// `teams`), `after` a duration from the page (at once when absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationRule {
    pub contact: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// How to reach a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Contact {
    Email {
        to: String,
    },
    Webhook {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<Secret>,
    },
    /// The URL of a Slack incoming webhook is itself the credential.
    Slack {
        url: Secret,
    },
    /// The URL of a Microsoft Teams incoming webhook is itself the credential.
    Teams {
        url: Secret,
    },
}

impl Contact {
    pub fn secret_mut(&mut self) -> Option<&mut Secret> {
        match self {
            Contact::Email { .. } => None,
            Contact::Webhook { secret, .. } => secret.as_mut(),
            Contact::Slack { url } | Contact::Teams { url } => Some(url),
        }
    }

    pub fn secret(&self) -> Option<&Secret> {
        match self {
            Contact::Email { .. } => None,
            Contact::Webhook { secret, .. } => secret.as_ref(),
            Contact::Slack { url } | Contact::Teams { url } => Some(url),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Contact::Email { .. } => "email",
            Contact::Webhook { .. } => "webhook",
            Contact::Slack { .. } => "slack",
            Contact::Teams { .. } => "teams",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: String,
    pub name: String,
    /// The owning team's id.
    pub owner: String,
    /// 1 is most critical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Shown on the public status page.
    #[serde(default, skip_serializing_if = "is_false")]
    pub public: bool,
    /// Run by a third party or a client, not by the operator.
    #[serde(default, skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How this service's signals fold into incidents; defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incidents: Option<IncidentSettings>,
}

/// A service's incident rules as written in the catalog (`incidents:` on a service).
/// The incidents domain reads them into [`crate::incidents::Rules`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentSettings {
    /// Labels whose values split the service's alerts into separate incidents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    /// Resolve the incident when every alert in it has resolved (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_resolve: Option<bool>,
    /// After a resolution by hand, how long alerts still firing wait before they open
    /// a new incident (default 4h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refire_after: Option<String>,
    /// How many reports open an incident without an alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flood: Option<FloodSettings>,
}

/// The flood rule: `reports` reports from `organisations` distinct organisations within
/// `window` open an incident.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloodSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reports: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisations: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// A customer of the operator, and the services it uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organisation {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uses: Vec<String>,
}

/// The kinds of entity a catalog holds, in document order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Team,
    Person,
    Service,
    Organisation,
    Schedule,
    EscalationPolicy,
    Freeze,
    Renewable,
    ChangeTemplate,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Team,
        Kind::Person,
        Kind::Service,
        Kind::Organisation,
        Kind::Schedule,
        Kind::EscalationPolicy,
        Kind::Freeze,
        Kind::Renewable,
        Kind::ChangeTemplate,
    ];

    /// The document section, also the table and the API collection name.
    pub fn section(self) -> &'static str {
        match self {
            Kind::Team => "teams",
            Kind::Person => "people",
            Kind::Service => "services",
            Kind::Organisation => "organisations",
            Kind::Schedule => "schedules",
            Kind::EscalationPolicy => "escalation_policies",
            Kind::Freeze => "freezes",
            Kind::Renewable => "renewables",
            Kind::ChangeTemplate => "change_templates",
        }
    }

    /// The singular used in messages and audit entity names (`service:forms-printing`).
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Team => "team",
            Kind::Person => "person",
            Kind::Service => "service",
            Kind::Organisation => "organisation",
            Kind::Schedule => "schedule",
            Kind::EscalationPolicy => "escalation_policy",
            Kind::Freeze => "freeze",
            Kind::Renewable => "renewable",
            Kind::ChangeTemplate => "change_template",
        }
    }

    pub fn from_singular(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.singular() == name)
    }
}

/// One entity of any kind, as JSON: the unit the store persists and the import diffs.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub kind: Kind,
    pub id: String,
    pub body: Value,
}

impl Catalog {
    /// Every entity, kind by kind in document order.
    pub fn entities(&self) -> Vec<Entity> {
        let mut out = Vec::new();
        let mut add = |kind: Kind, values: Vec<Value>| {
            for body in values {
                let id = entity_id(&body).unwrap_or_default().to_string();
                out.push(Entity { kind, id, body });
            }
        };
        add(Kind::Team, to_values(&self.teams));
        add(Kind::Person, to_values(&self.people));
        add(Kind::Service, to_values(&self.services));
        add(Kind::Organisation, to_values(&self.organisations));
        add(Kind::Schedule, self.schedules.clone());
        add(Kind::EscalationPolicy, self.escalation_policies.clone());
        add(Kind::Freeze, self.freezes.clone());
        add(Kind::Renewable, self.renewables.clone());
        add(Kind::ChangeTemplate, self.change_templates.clone());
        out
    }

    /// Rebuilds a catalog from stored entities (trusted: they were validated on write).
    pub fn from_entities(entities: impl IntoIterator<Item = Entity>) -> Result<Catalog, String> {
        let mut catalog = Catalog::default();
        for Entity { kind, id, body } in entities {
            let bad = |e: serde_json::Error| {
                format!("stored {} {id:?} is unreadable: {e}", kind.singular())
            };
            match kind {
                Kind::Team => catalog
                    .teams
                    .push(serde_json::from_value(body).map_err(bad)?),
                Kind::Person => catalog
                    .people
                    .push(serde_json::from_value(body).map_err(bad)?),
                Kind::Service => catalog
                    .services
                    .push(serde_json::from_value(body).map_err(bad)?),
                Kind::Organisation => catalog
                    .organisations
                    .push(serde_json::from_value(body).map_err(bad)?),
                Kind::Schedule => catalog.schedules.push(body),
                Kind::EscalationPolicy => catalog.escalation_policies.push(body),
                Kind::Freeze => catalog.freezes.push(body),
                Kind::Renewable => catalog.renewables.push(body),
                Kind::ChangeTemplate => catalog.change_templates.push(body),
            }
        }
        Ok(catalog)
    }

    /// The same catalog with every secret shown as `"<redacted>"`: what leaves Muster.
    pub fn redacted(&self) -> Catalog {
        let mut copy = self.clone();
        for person in &mut copy.people {
            person.redact();
        }
        copy
    }

    pub fn team(&self, id: &str) -> Option<&Team> {
        self.teams.iter().find(|t| t.id == id)
    }

    pub fn person(&self, id: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.id == id)
    }

    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.id == id)
    }

    pub fn organisation(&self, id: &str) -> Option<&Organisation> {
        self.organisations.iter().find(|o| o.id == id)
    }

    /// The entity of `kind` with `id` as stored (secrets sealed), as JSON.
    pub fn stored_entity(&self, kind: Kind, id: &str) -> Option<Value> {
        match kind {
            Kind::Person => self.person(id).map(to_value),
            _ => self.entity(kind, id),
        }
    }

    /// The entity of `kind` with `id` as shown outside (secrets redacted), as JSON.
    pub fn entity(&self, kind: Kind, id: &str) -> Option<Value> {
        let find = |values: &[Value]| values.iter().find(|v| entity_id(v) == Some(id)).cloned();
        match kind {
            Kind::Team => self.team(id).map(to_value),
            Kind::Person => self.person(id).map(|p| to_value(&p.clone().redact_owned())),
            Kind::Service => self.service(id).map(to_value),
            Kind::Organisation => self.organisation(id).map(to_value),
            Kind::Schedule => find(&self.schedules),
            Kind::EscalationPolicy => find(&self.escalation_policies),
            Kind::Freeze => find(&self.freezes),
            Kind::Renewable => find(&self.renewables),
            Kind::ChangeTemplate => find(&self.change_templates),
        }
    }

    /// Sorts every section by id, so listings and exports are stable.
    pub fn sorted(mut self) -> Catalog {
        self.teams.sort_by(|a, b| a.id.cmp(&b.id));
        self.people.sort_by(|a, b| a.id.cmp(&b.id));
        self.services.sort_by(|a, b| a.id.cmp(&b.id));
        self.organisations.sort_by(|a, b| a.id.cmp(&b.id));
        for values in [
            &mut self.schedules,
            &mut self.escalation_policies,
            &mut self.freezes,
            &mut self.renewables,
            &mut self.change_templates,
        ] {
            values.sort_by(|a, b| entity_id(a).cmp(&entity_id(b)));
        }
        self
    }
}

impl Person {
    pub fn redact(&mut self) {
        for contact in &mut self.contacts {
            if let Some(secret) = contact.secret_mut() {
                *secret = Secret::Redacted;
            }
        }
    }

    fn redact_owned(mut self) -> Person {
        self.redact();
        self
    }
}

/// The `id` field of an entity given as JSON.
pub fn entity_id(body: &Value) -> Option<&str> {
    body.get("id").and_then(Value::as_str)
}

fn to_value<T: Serialize>(item: &T) -> Value {
    serde_json::to_value(item).unwrap_or(Value::Null)
}

fn to_values<T: Serialize>(items: &[T]) -> Vec<Value> {
    items.iter().map(to_value).collect()
}
