//! Renewals: everything that expires — licences, certificates, subscriptions, domains,
//! API keys, contracts — with the targets each must be applied to, when to remind whom,
//! and how a renewal is verified live. This module holds the registry's words and the
//! reading of the catalog's `renewables` section; `reminders` decides which reminder is
//! due, by state rather than by "days left equals N".

pub mod artifacts;
pub mod pipeline;
pub mod probes;
pub mod reminders;

use crate::catalog::Catalog;
use crate::clock::parse_duration;
use jiff::{SignedDuration, Timestamp};
use pipeline::Deadlines;
use serde::{Deserialize, Serialize};
use serde_json::Value;

crate::named!(
    /// What expires.
    Kind {
        Licence => "licence",
        Certificate => "certificate",
        Subscription => "subscription",
        Domain => "domain",
        ApiKey => "api_key",
        Contract => "contract",
        Other => "other",
    }
);

impl Kind {
    /// Days before expiry each reminder fires, unless the renewable says otherwise:
    /// bought things (licences, subscriptions, contracts) need a purchase first and
    /// start three months out; technical ones a month out.
    pub fn default_reminders(self) -> &'static [i64] {
        match self {
            Kind::Licence | Kind::Subscription | Kind::Contract => &[90, 60, 30, 14, 7, 3, 1],
            Kind::Certificate | Kind::Domain | Kind::ApiKey => &[30, 14, 7, 3, 1],
            Kind::Other => &[30, 7, 1],
        }
    }
}

/// How a target's renewal is verified live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Verify {
    /// The certificate served at `host` (`name:port`), with an optional SNI name.
    Tls { host: String, sni: Option<String> },
    /// An expiry date at a JSON pointer of a URL's answer.
    HttpJson { url: String, pointer: String },
    /// A person attests, with evidence.
    Manual,
}

/// Where a renewal must be applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Unique within the renewable: the organisation id, the host, the name, or
    /// `default` for the one implicit target.
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// This target's own verification, else the renewable's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
    /// When the item on this target expires: its own expiry, else the renewable's.
    pub expires_at: Timestamp,
}

/// The key of the one target a renewable without targets has.
pub const IMPLICIT_TARGET: &str = "default";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Renewable {
    pub id: String,
    pub name: String,
    pub kind: Kind,
    pub vendor: Option<String>,
    /// The team that applies it.
    pub owner: String,
    /// The team that buys it (reminded too until it is ordered).
    pub buyer: Option<String>,
    pub services: Vec<String>,
    /// When the current item expires: the earliest of its targets'.
    pub expires_at: Timestamp,
    pub targets: Vec<Target>,
    /// Days before expiry each reminder fires, latest first (90, 60, …, 1).
    pub reminders: Vec<i64>,
    pub verify: Verify,
    /// How long each stage of a renewal may take before it is stalled.
    pub deadlines: Deadlines,
}

impl Renewable {
    /// The catalog's renewables (validated on import; an entry that does not read is
    /// skipped rather than hiding every other).
    pub fn of_catalog(catalog: &Catalog) -> Vec<Renewable> {
        catalog
            .renewables
            .iter()
            .filter_map(|value| Renewable::read(value).ok())
            .collect()
    }

    /// A renewable from its catalog entry, or why it does not read (naming the field).
    pub fn read(value: &Value) -> Result<Renewable, (String, String)> {
        #[derive(Deserialize)]
        struct Stored {
            id: String,
            name: String,
            #[serde(default)]
            kind: Option<String>,
            #[serde(default)]
            vendor: Option<String>,
            owner: String,
            #[serde(default)]
            buyer: Option<String>,
            #[serde(default)]
            services: Vec<String>,
            #[serde(default)]
            expires_at: Option<Timestamp>,
            #[serde(default)]
            targets: Vec<Value>,
            #[serde(default)]
            reminders: Option<Vec<Value>>,
            #[serde(default)]
            verify: Option<Value>,
            #[serde(default)]
            deadlines: Option<Value>,
        }
        let bad = |field: &str, why: String| (field.to_string(), why);
        let stored: Stored = Stored::deserialize(value).map_err(|e| bad("", e.to_string()))?;
        let kind = match stored.kind.as_deref() {
            None => Kind::Other,
            Some(text) => Kind::parse(text).ok_or_else(|| {
                bad(
                    "kind",
                    format!("{text:?} is not a kind: use {}", Kind::names()),
                )
            })?,
        };
        let reminders = match stored.reminders {
            None => kind.default_reminders().to_vec(),
            Some(list) => {
                let mut days = Vec::with_capacity(list.len());
                for (i, item) in list.iter().enumerate() {
                    days.push(
                        reminder_days(item).map_err(|why| bad(&format!("reminders[{i}]"), why))?,
                    );
                }
                days.sort_unstable_by(|a, b| b.cmp(a));
                days.dedup();
                days
            }
        };
        let verify = match &stored.verify {
            None => Verify::Manual,
            Some(v) => read_verify(v).map_err(|why| bad("verify", why))?,
        };
        let deadlines = match &stored.deadlines {
            None => Deadlines::default(),
            Some(v) => Deadlines::read(v).map_err(|(field, why)| bad(&field, why))?,
        };
        let mut targets = Vec::with_capacity(stored.targets.len().max(1));
        for (i, item) in stored.targets.iter().enumerate() {
            let target = read_target(item, stored.expires_at)
                .map_err(|(field, why)| bad(&format!("targets[{i}]{field}"), why))?;
            if targets.iter().any(|t: &Target| t.key == target.key) {
                return Err(bad(
                    &format!("targets[{i}]"),
                    format!("{:?} is listed twice", target.key),
                ));
            }
            targets.push(target);
        }
        if targets.is_empty() {
            let expires_at = stored.expires_at.ok_or_else(|| {
                bad(
                    "expires_at",
                    "is required: when the item expires (RFC 3339)".into(),
                )
            })?;
            targets.push(Target {
                key: IMPLICIT_TARGET.to_string(),
                organisation: None,
                host: None,
                sni: None,
                name: None,
                verify: None,
                expires_at,
            });
        }
        let expires_at = targets
            .iter()
            .map(|t| t.expires_at)
            .min()
            .expect("at least one target");
        Ok(Renewable {
            id: stored.id,
            name: stored.name,
            kind,
            vendor: stored.vendor,
            owner: stored.owner,
            buyer: stored.buyer,
            services: stored.services,
            expires_at,
            targets,
            reminders,
            verify,
            deadlines,
        })
    }

    /// How a target is verified: its own method, else the renewable's.
    pub fn verification(&self, target: &Target) -> Verify {
        target.verify.clone().unwrap_or_else(|| self.verify.clone())
    }

    /// Target keys in the order the renewable lists its targets (keys it no longer
    /// lists last), as people read them.
    pub fn in_order(&self, mut keys: Vec<String>) -> Vec<String> {
        let position = |key: &str| self.targets.iter().position(|t| t.key == key);
        keys.sort_by_key(|k| position(k).unwrap_or(usize::MAX));
        keys
    }

    pub fn target(&self, key: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.key == key)
    }
}

/// A reminder offset: a whole number of days (`30`) or a duration of whole days
/// (`"30d"`), more than 0 and at most ten years.
fn reminder_days(item: &Value) -> Result<i64, String> {
    let days = match item {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("{n} is not a whole number of days"))?,
        Value::String(text) => {
            let duration = parse_duration(text)?;
            if duration.as_secs() % 86_400 != 0 {
                return Err(format!("{text:?} is not a whole number of days"));
            }
            duration.as_hours() / 24
        }
        other => {
            return Err(format!(
                "{other} is not a number of days such as 30 or \"30d\""
            ));
        }
    };
    if !(1..=3650).contains(&days) {
        return Err(format!("{days} days: use 1 to 3650"));
    }
    Ok(days)
}

/// `{tls: "host:port"}` (or `{tls: {host, sni}}`), `{http_json: {url, pointer}}`, or
/// `manual`.
fn read_verify(value: &Value) -> Result<Verify, String> {
    let host_port = |host: &str| -> Result<String, String> {
        match host.rsplit_once(':') {
            Some((name, port)) if !name.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                Ok(host.to_string())
            }
            _ => Err(format!(
                "tls: {host:?} is not host:port (e.g. api.example.test:443)"
            )),
        }
    };
    match value {
        Value::String(text) if text == "manual" => Ok(Verify::Manual),
        Value::Object(fields) if fields.len() == 1 => {
            let (method, spec) = fields.iter().next().expect("one field");
            match (method.as_str(), spec) {
                ("tls", Value::String(host)) => Ok(Verify::Tls {
                    host: host_port(host)?,
                    sni: None,
                }),
                ("tls", Value::Object(o)) => {
                    let host = o
                        .get("host")
                        .and_then(Value::as_str)
                        .ok_or("tls.host: is required")?;
                    Ok(Verify::Tls {
                        host: host_port(host)?,
                        sni: o.get("sni").and_then(Value::as_str).map(str::to_string),
                    })
                }
                ("http_json", Value::Object(o)) => {
                    let url = o
                        .get("url")
                        .and_then(Value::as_str)
                        .ok_or("http_json.url: is required")?;
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(format!("http_json.url: {url:?} is not an http(s) URL"));
                    }
                    let pointer = o
                        .get("pointer")
                        .and_then(Value::as_str)
                        .ok_or("http_json.pointer: is required")?;
                    if !pointer.starts_with('/') {
                        return Err(format!(
                            "http_json.pointer: {pointer:?} is not a JSON pointer (e.g. /license/expires)"
                        ));
                    }
                    Ok(Verify::HttpJson {
                        url: url.to_string(),
                        pointer: pointer.to_string(),
                    })
                }
                (other, _) => Err(format!(
                    "{other:?} is not a verification: use {{tls: \"host:port\"}}, {{http_json: {{url, pointer}}}} or manual"
                )),
            }
        }
        _ => Err("use {tls: \"host:port\"}, {http_json: {url, pointer}} or manual".to_string()),
    }
}

/// An organisation id, `{host: "h:port", sni}` or `{name}`; each mapping may carry
/// `verify` and its own `expires_at`, else it expires with the renewable (`default`).
fn read_target(value: &Value, default: Option<Timestamp>) -> Result<Target, (String, String)> {
    let no_expiry = || {
        (
            String::new(),
            "has no expires_at, and neither has the renewable".to_string(),
        )
    };
    match value {
        Value::String(organisation) => Ok(Target {
            key: organisation.clone(),
            organisation: Some(organisation.clone()),
            host: None,
            sni: None,
            name: None,
            verify: None,
            expires_at: default.ok_or_else(no_expiry)?,
        }),
        Value::Object(o) => {
            let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
            let verify = o
                .get("verify")
                .map(read_verify)
                .transpose()
                .map_err(|why| (".verify".to_string(), why))?;
            let expires_at = match o.get("expires_at") {
                None => default.ok_or_else(no_expiry)?,
                Some(v) => v.as_str().and_then(|t| t.parse().ok()).ok_or_else(|| {
                    (
                        ".expires_at".to_string(),
                        format!("{v} is not an RFC 3339 instant (e.g. 2027-02-01T00:00:00Z)"),
                    )
                })?,
            };
            let empty = Target {
                key: String::new(),
                organisation: None,
                host: None,
                sni: None,
                name: None,
                verify,
                expires_at,
            };
            match (text("host"), text("name"), text("organisation")) {
                (Some(host), _, _) => Ok(Target {
                    key: host.clone(),
                    sni: text("sni"),
                    host: Some(host),
                    ..empty
                }),
                (None, Some(name), _) => Ok(Target {
                    key: name.clone(),
                    name: Some(name),
                    ..empty
                }),
                (None, None, Some(organisation)) => Ok(Target {
                    key: organisation.clone(),
                    organisation: Some(organisation),
                    ..empty
                }),
                _ => Err((
                    String::new(),
                    "needs host, name or organisation".to_string(),
                )),
            }
        }
        _ => Err((
            String::new(),
            "is an organisation id, or a mapping with host or name".to_string(),
        )),
    }
}

/// An expired item some services depend on, and the targets still on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiredItem {
    pub renewable: String,
    pub name: String,
    pub expired_at: Timestamp,
    pub targets: Vec<String>,
}

/// The items that expired by `now` among `renewables` on any of `services`, each with
/// its targets not yet verified live on a renewal (`renewals`, by renewable, for the
/// current expiry): what an incident on those services may be about.
pub fn expired_items(
    renewables: &[Renewable],
    renewals: &std::collections::HashMap<String, pipeline::Renewal>,
    services: &[&str],
    now: Timestamp,
) -> Vec<ExpiredItem> {
    renewables
        .iter()
        .filter(|r| r.expires_at <= now)
        .filter(|r| r.services.iter().any(|s| services.contains(&s.as_str())))
        .map(|r| ExpiredItem {
            renewable: r.id.clone(),
            name: r.name.clone(),
            expired_at: r.expires_at,
            targets: match renewals.get(&r.id) {
                Some(renewal) => r.in_order(renewal.unverified()),
                None => r.targets.iter().map(|t| t.key.clone()).collect(),
            },
        })
        .filter(|item| !item.targets.is_empty())
        .collect()
}

/// Days from `now` until `at`, rounded down (negative once past).
pub fn days_left(at: Timestamp, now: Timestamp) -> i64 {
    let seconds = at.as_second() - now.as_second();
    seconds.div_euclid(86_400)
}

/// `SignedDuration` of whole days.
pub fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(n * 24)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seed() -> Catalog {
        crate::catalog::seed_world()
    }

    #[test]
    fn the_seed_world_renewables_read_with_their_defaults() {
        let all = Renewable::of_catalog(&seed());
        assert_eq!(all.len(), 3);
        let licence = &all[0];
        assert_eq!(licence.kind, Kind::Licence);
        assert_eq!(licence.reminders, [90, 60, 30, 14, 7, 3, 1]);
        assert_eq!(licence.targets.len(), 11);
        assert_eq!(
            licence.targets[10].organisation.as_deref(),
            Some("northwind")
        );
        assert_eq!(licence.verify, Verify::Manual);
        let certificate = &all[1];
        assert_eq!(certificate.reminders, [30, 14, 7, 3, 1]);
        assert_eq!(certificate.targets[0].key, IMPLICIT_TARGET);
        assert_eq!(
            certificate.verification(&certificate.targets[0]),
            Verify::Tls {
                host: "api.example.test:443".into(),
                sni: None
            }
        );
    }

    #[test]
    fn bad_entries_name_their_field() {
        let base = json!({"id": "x", "name": "X", "owner": "platform",
                          "expires_at": "2027-01-01T00:00:00Z"});
        let with = |field: &str, value: Value| {
            let mut v = base.clone();
            v[field] = value;
            Renewable::read(&v).unwrap_err().0
        };
        assert_eq!(with("kind", json!("lease")), "kind");
        assert_eq!(with("reminders", json!([30, "2h"])), "reminders[1]");
        assert_eq!(with("reminders", json!([0])), "reminders[0]");
        assert_eq!(with("verify", json!({"tls": "no-port"})), "verify");
        assert_eq!(with("verify", json!({"ftp": "x"})), "verify");
        assert_eq!(with("targets", json!(["org-1", "org-1"])), "targets[1]");
        assert_eq!(with("targets", json!([{"port": 1}])), "targets[0]");
        assert_eq!(
            with(
                "targets",
                json!([{"host": "a:443", "verify": {"tls": "a"}}])
            ),
            "targets[0].verify"
        );
        let mut custom = base.clone();
        custom["reminders"] = json!([7, "30d", 7]);
        assert_eq!(Renewable::read(&custom).unwrap().reminders, [30, 7]);
    }

    #[test]
    fn each_target_has_its_own_expiry_and_the_renewable_the_earliest() {
        let renewable = Renewable::read(&json!({
            "id": "edge", "name": "Edge certificates", "kind": "certificate", "owner": "platform",
            "expires_at": "2027-03-01T00:00:00Z",
            "targets": [{"host": "a.test:443", "expires_at": "2027-01-10T00:00:00Z"},
                        {"host": "b.test:443"}],
        }))
        .unwrap();
        assert_eq!(
            renewable.expires_at,
            "2027-01-10T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            renewable.targets[1].expires_at,
            "2027-03-01T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        let own_only = json!({"id": "x", "name": "X", "owner": "platform",
                              "targets": [{"name": "a", "expires_at": "2027-01-10T00:00:00Z"}, {"name": "b"}]});
        assert_eq!(Renewable::read(&own_only).unwrap_err().0, "targets[1]");
        let bad = json!({"id": "x", "name": "X", "owner": "platform",
                         "targets": [{"name": "a", "expires_at": "soon"}]});
        assert_eq!(
            Renewable::read(&bad).unwrap_err().0,
            "targets[0].expires_at"
        );
        let none = json!({"id": "x", "name": "X", "owner": "platform"});
        assert_eq!(Renewable::read(&none).unwrap_err().0, "expires_at");
    }

    #[test]
    fn an_expired_item_counts_the_targets_not_yet_verified() {
        let all = Renewable::of_catalog(&seed());
        let at = |t: &str| t.parse::<Timestamp>().unwrap();
        let before = at("2027-01-31T00:00:00Z");
        let after = at("2027-02-02T00:00:00Z");
        let none = std::collections::HashMap::new();
        let services = ["forms-printing", "print-licence-server"];
        assert!(expired_items(&all, &none, &services, before).is_empty());
        let expired = expired_items(&all, &none, &services, after);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].renewable, "formprint-licence");
        assert_eq!(expired[0].targets.len(), 11);
        let mut renewal = pipeline::Renewal::start(&all[0], before);
        renewal.targets.get_mut("org-01").unwrap().verified = Some(pipeline::Step {
            by: "tara".into(),
            at: before,
        });
        let renewals = [("formprint-licence".to_string(), renewal)].into();
        assert_eq!(
            expired_items(&all, &renewals, &services, after)[0]
                .targets
                .len(),
            10
        );
        assert!(expired_items(&all, &none, &["identity"], after).is_empty());
    }

    #[test]
    fn days_left_round_down() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(
            days_left(at("2026-12-01T00:00:00Z"), at("2026-11-30T01:00:00Z")),
            0
        );
        assert_eq!(
            days_left(at("2026-12-01T00:00:00Z"), at("2026-11-29T00:00:00Z")),
            2
        );
        assert_eq!(
            days_left(at("2026-12-01T00:00:00Z"), at("2026-12-01T00:00:01Z")),
            -1
        );
    }
}
