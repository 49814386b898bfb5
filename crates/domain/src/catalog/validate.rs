//! Every rule a catalog must satisfy. Validation collects all problems, each with the
//! path of the field at fault, so a whole document is fixed in one pass.

use super::graph::ServiceGraph;
use super::model::{Catalog, Contact, Kind, Organisation, Person, Service, Team, entity_id};
use super::secret::Secret;
use crate::notify::{Channel, rule_delay};
use crate::problem::FieldErrors;
use crate::slug::slug_problem;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

const MAX_NAME: usize = 200;
const MAX_TEXT: usize = 10_000;

/// How an entity is named in error paths. A document's entities are named by position
/// (`services[3]`); entities kept from the store by an import are named by id, and the
/// single entity of an API request by nothing (its fields are the paths).
pub struct Paths<'a> {
    pub label: Box<Labeller<'a>>,
}

/// Names the entity of a kind at an index with an id, e.g. `services[3]`.
pub type Labeller<'a> = dyn Fn(Kind, usize, &str) -> String + 'a;

impl Paths<'_> {
    /// Entities named by their position in the document.
    pub fn document() -> Paths<'static> {
        Paths {
            label: Box::new(|kind, index, _| format!("{}[{index}]", kind.section())),
        }
    }

    /// The first `lens[kind]` entities of each kind came from the document; the rest were
    /// kept from the store.
    pub fn document_then_stored(lens: HashMap<Kind, usize>) -> Paths<'static> {
        Paths {
            label: Box::new(move |kind, index, id| {
                if index < lens.get(&kind).copied().unwrap_or(0) {
                    format!("{}[{index}]", kind.section())
                } else {
                    format!("{}[id={id}] (stored)", kind.section())
                }
            }),
        }
    }

    /// The entity `(kind, id)` is the request body; others are named by id.
    pub fn single(kind: Kind, id: String) -> Paths<'static> {
        Paths {
            label: Box::new(move |k, _, i| {
                if k == kind && i == id {
                    String::new()
                } else {
                    format!("{}[id={i}]", k.section())
                }
            }),
        }
    }

    fn at(&self, kind: Kind, index: usize, id: &str, field: &str) -> String {
        let prefix = (self.label)(kind, index, id);
        match (prefix.is_empty(), field.is_empty()) {
            (true, _) => field.to_string(),
            (false, true) => prefix,
            (false, false) => format!("{prefix}.{field}"),
        }
    }
}

/// Ids present in the catalog, per kind, for reference checks.
struct Ids<'a> {
    of: HashMap<Kind, HashSet<&'a str>>,
}

impl<'a> Ids<'a> {
    fn new(catalog: &'a Catalog) -> Self {
        let mut of: HashMap<Kind, HashSet<&'a str>> = HashMap::new();
        of.insert(
            Kind::Team,
            catalog.teams.iter().map(|t| t.id.as_str()).collect(),
        );
        of.insert(
            Kind::Person,
            catalog.people.iter().map(|p| p.id.as_str()).collect(),
        );
        of.insert(
            Kind::Service,
            catalog.services.iter().map(|s| s.id.as_str()).collect(),
        );
        of.insert(
            Kind::Organisation,
            catalog
                .organisations
                .iter()
                .map(|o| o.id.as_str())
                .collect(),
        );
        for (kind, values) in [
            (Kind::Schedule, &catalog.schedules),
            (Kind::EscalationPolicy, &catalog.escalation_policies),
            (Kind::Freeze, &catalog.freezes),
            (Kind::Renewable, &catalog.renewables),
            (Kind::ChangeTemplate, &catalog.change_templates),
        ] {
            of.insert(kind, values.iter().filter_map(entity_id).collect());
        }
        Ids { of }
    }

    fn has(&self, kind: Kind, id: &str) -> bool {
        self.of.get(&kind).is_some_and(|ids| ids.contains(id))
    }
}

/// The validation context: where errors go and how entities are named.
struct Check<'a> {
    ids: Ids<'a>,
    paths: &'a Paths<'a>,
    errors: FieldErrors,
}

impl Check<'_> {
    fn error(
        &mut self,
        kind: Kind,
        index: usize,
        id: &str,
        field: &str,
        message: impl Into<String>,
    ) {
        let path = self.paths.at(kind, index, id, field);
        self.errors.push(path, message);
    }

    fn reference(
        &mut self,
        (kind, index, id): (Kind, usize, &str),
        field: &str,
        target: Kind,
        value: &str,
    ) {
        if !self.ids.has(target, value) {
            let message = format!("unknown {} {value:?}", target.singular().replace('_', " "));
            self.error(kind, index, id, field, message);
        }
    }

    fn name(&mut self, at: (Kind, usize, &str), field: &str, value: &str) {
        if value.trim().is_empty() {
            self.error(at.0, at.1, at.2, field, "must not be empty");
        } else if value.chars().count() > MAX_NAME {
            self.error(
                at.0,
                at.1,
                at.2,
                field,
                format!("must be at most {MAX_NAME} characters"),
            );
        }
    }

    fn text(&mut self, at: (Kind, usize, &str), field: &str, value: &Option<String>) {
        if value.as_ref().is_some_and(|v| v.chars().count() > MAX_TEXT) {
            self.error(
                at.0,
                at.1,
                at.2,
                field,
                format!("must be at most {MAX_TEXT} characters"),
            );
        }
    }

    fn url(&mut self, at: (Kind, usize, &str), field: &str, value: &str) {
        if let Some(problem) = url_problem(value) {
            self.error(at.0, at.1, at.2, field, problem);
        }
    }

    fn instant(
        &mut self,
        at: (Kind, usize, &str),
        field: &str,
        value: &Option<String>,
    ) -> Option<jiff::Timestamp> {
        let text = value.as_deref()?;
        match text.parse::<jiff::Timestamp>() {
            Ok(t) => Some(t),
            Err(_) => {
                let message = format!(
                    "{text:?} is not an RFC 3339 instant with an offset (e.g. 2026-12-21T00:00:00Z)"
                );
                self.error(at.0, at.1, at.2, field, message);
                None
            }
        }
    }

    fn required<'v>(
        &mut self,
        at: (Kind, usize, &str),
        field: &str,
        value: &'v Option<String>,
    ) -> Option<&'v str> {
        if value.is_none() {
            self.error(at.0, at.1, at.2, field, "is required");
        }
        value.as_deref()
    }
}

/// Checks a whole catalog; `Ok` when it satisfies every rule.
pub fn validate(catalog: &Catalog, paths: &Paths) -> Result<(), FieldErrors> {
    let mut check = Check {
        ids: Ids::new(catalog),
        paths,
        errors: FieldErrors::default(),
    };
    check_ids(&mut check, catalog);
    for (i, team) in catalog.teams.iter().enumerate() {
        check_team(&mut check, i, team);
    }
    for (i, person) in catalog.people.iter().enumerate() {
        check_person(&mut check, i, person);
    }
    for (i, service) in catalog.services.iter().enumerate() {
        check_service(&mut check, i, service);
    }
    check_cycles(&mut check, catalog);
    for (i, org) in catalog.organisations.iter().enumerate() {
        check_organisation(&mut check, i, org);
    }
    for (i, value) in catalog.schedules.iter().enumerate() {
        check_schedule(&mut check, i, value);
    }
    for (i, value) in catalog.escalation_policies.iter().enumerate() {
        check_escalation_policy(&mut check, i, value);
    }
    for (i, value) in catalog.freezes.iter().enumerate() {
        check_freeze(&mut check, i, value);
    }
    for (i, value) in catalog.renewables.iter().enumerate() {
        check_renewable(&mut check, i, value);
    }
    for (i, value) in catalog.change_templates.iter().enumerate() {
        check_change_template(&mut check, i, value, catalog);
    }
    check.errors.into_result(())
}

/// Ids are slugs and unique within their kind.
fn check_ids(check: &mut Check, catalog: &Catalog) {
    for kind in Kind::ALL {
        let ids: Vec<Option<&str>> = match kind {
            Kind::Team => catalog.teams.iter().map(|t| Some(t.id.as_str())).collect(),
            Kind::Person => catalog.people.iter().map(|p| Some(p.id.as_str())).collect(),
            Kind::Service => catalog
                .services
                .iter()
                .map(|s| Some(s.id.as_str()))
                .collect(),
            Kind::Organisation => catalog
                .organisations
                .iter()
                .map(|o| Some(o.id.as_str()))
                .collect(),
            Kind::Schedule => catalog.schedules.iter().map(entity_id).collect(),
            Kind::EscalationPolicy => catalog.escalation_policies.iter().map(entity_id).collect(),
            Kind::Freeze => catalog.freezes.iter().map(entity_id).collect(),
            Kind::Renewable => catalog.renewables.iter().map(entity_id).collect(),
            Kind::ChangeTemplate => catalog.change_templates.iter().map(entity_id).collect(),
        };
        let mut first_at: HashMap<&str, usize> = HashMap::new();
        for (i, id) in ids.into_iter().enumerate() {
            let Some(id) = id else {
                check.error(kind, i, "", "id", "is required and must be a string");
                continue;
            };
            if let Some(problem) = slug_problem(id) {
                check.error(kind, i, id, "id", problem);
            }
            if let Some(first) = first_at.get(id) {
                let first_path = check.paths.at(kind, *first, id, "");
                check.error(
                    kind,
                    i,
                    id,
                    "id",
                    format!(
                        "duplicate {} id {id:?} (first declared at {first_path})",
                        kind.singular().replace('_', " ")
                    ),
                );
            } else {
                first_at.insert(id, i);
            }
        }
    }
}

fn check_team(check: &mut Check, i: usize, team: &Team) {
    let at = (Kind::Team, i, team.id.as_str());
    check.name(at, "name", &team.name);
    check.text(at, "description", &team.description);
    let mut seen = HashSet::new();
    for (m, member) in team.members.iter().enumerate() {
        let field = format!("members[{m}]");
        check.reference(at, &field, Kind::Person, member);
        if !seen.insert(member) {
            check.error(at.0, i, at.2, &field, format!("{member:?} is listed twice"));
        }
    }
    if let Some(policy) = &team.escalation_policy {
        check.reference(at, "escalation_policy", Kind::EscalationPolicy, policy);
    }
}

fn check_person(check: &mut Check, i: usize, person: &Person) {
    let at = (Kind::Person, i, person.id.as_str());
    check.name(at, "name", &person.name);
    if jiff::tz::TimeZone::get(&person.timezone).is_err() {
        check.error(
            at.0,
            i,
            at.2,
            "timezone",
            format!(
                "unknown timezone {:?} (use an IANA name such as Europe/London)",
                person.timezone
            ),
        );
    }
    if let Some(email) = &person.email
        && let Some(problem) = email_problem(email)
    {
        check.error(at.0, i, at.2, "email", problem);
    }
    for (c, contact) in person.contacts.iter().enumerate() {
        let field = format!("contacts[{c}]");
        match contact {
            Contact::Email { to } => {
                if let Some(problem) = email_problem(to) {
                    check.error(at.0, i, at.2, &format!("{field}.to"), problem);
                }
            }
            Contact::Webhook { url, .. } => check.url(at, &format!("{field}.url"), url),
            Contact::Slack { url } | Contact::Teams { url } => {
                if let Secret::Plain(url) = url {
                    check.url(at, &format!("{field}.url"), url);
                }
            }
        }
    }
    for (r, rule) in person.notification_rules.iter().enumerate() {
        let field = format!("notification_rules[{r}]");
        match Channel::parse(&rule.contact) {
            None => check.error(
                at.0,
                i,
                at.2,
                &format!("{field}.contact"),
                format!(
                    "{:?} is not a kind of contact method (email, webhook, slack or teams)",
                    rule.contact
                ),
            ),
            Some(channel) if !has_channel(person, channel) => check.error(
                at.0,
                i,
                at.2,
                &format!("{field}.contact"),
                format!("{} has no {} contact method", person.id, rule.contact),
            ),
            Some(_) => {}
        }
        if let Err(problem) = rule_delay(rule) {
            check.error(at.0, i, at.2, &format!("{field}.after"), problem);
        }
    }
}

/// Whether `person` can be reached on `channel` (a Slack or Teams URL counts whether
/// sealed yet or not).
fn has_channel(person: &Person, channel: Channel) -> bool {
    (channel == Channel::Email && person.email.is_some())
        || person.contacts.iter().any(|c| c.kind() == channel.as_str())
}

fn check_service(check: &mut Check, i: usize, service: &Service) {
    let at = (Kind::Service, i, service.id.as_str());
    check.name(at, "name", &service.name);
    check.text(at, "description", &service.description);
    check.reference(at, "owner", Kind::Team, &service.owner);
    if let Some(tier) = service.tier
        && !(1..=5).contains(&tier)
    {
        check.error(
            at.0,
            i,
            at.2,
            "tier",
            format!("{tier} is not a tier: use 1 (most critical) to 5"),
        );
    }
    let mut seen = HashSet::new();
    for (d, dep) in service.depends_on.iter().enumerate() {
        let field = format!("depends_on[{d}]");
        if dep == &service.id {
            check.error(at.0, i, at.2, &field, "a service cannot depend on itself");
            continue;
        }
        check.reference(at, &field, Kind::Service, dep);
        if !seen.insert(dep) {
            check.error(at.0, i, at.2, &field, format!("{dep:?} is listed twice"));
        }
    }
    if let Some(runbook) = &service.runbook {
        check.url(at, "runbook", runbook);
    }
    if let Some(settings) = &service.incidents
        && let Err(errors) = crate::incidents::Rules::from_settings(settings)
    {
        for (field, message) in errors {
            check.error(at.0, i, at.2, &format!("incidents.{field}"), message);
        }
    }
}

/// Dependency cycles are named in full (`a -> b -> a`), reported on the first service.
fn check_cycles(check: &mut Check, catalog: &Catalog) {
    for cycle in ServiceGraph::new(catalog).cycles() {
        if cycle.len() <= 2 {
            continue; // self-dependency, reported on its own field
        }
        let first = &cycle[0];
        let index = catalog
            .services
            .iter()
            .position(|s| &s.id == first)
            .unwrap_or(0);
        check.error(
            Kind::Service,
            index,
            first,
            "depends_on",
            format!("dependency cycle: {}", cycle.join(" -> ")),
        );
    }
}

fn check_organisation(check: &mut Check, i: usize, org: &Organisation) {
    let at = (Kind::Organisation, i, org.id.as_str());
    check.name(at, "name", &org.name);
    let mut seen = HashSet::new();
    for (u, used) in org.uses.iter().enumerate() {
        let field = format!("uses[{u}]");
        check.reference(at, &field, Kind::Service, used);
        if !seen.insert(used) {
            check.error(at.0, i, at.2, &field, format!("{used:?} is listed twice"));
        }
    }
}

/// Reads the fields a reference check needs from a section stored as given.
fn view<T: for<'de> Deserialize<'de>>(
    check: &mut Check,
    kind: Kind,
    i: usize,
    value: &Value,
) -> Option<T> {
    let id = entity_id(value).unwrap_or("");
    if !value.is_object() {
        check.error(kind, i, id, "", "must be a mapping");
        return None;
    }
    match serde_path_to_error::deserialize::<_, T>(value.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            let field = e.path().to_string();
            check.error(
                kind,
                i,
                id,
                if field == "." { "" } else { &field },
                e.into_inner().to_string(),
            );
            None
        }
    }
}

/// Schedules are read by the on-call model itself, so the catalog accepts exactly
/// what the calculators understand; references are checked on the raw document so
/// they are reported even beside shape problems.
fn check_schedule(check: &mut Check, i: usize, value: &Value) {
    let id = entity_id(value).unwrap_or("");
    if let Err(errors) = crate::oncall::Schedule::from_json(value) {
        for e in errors.0 {
            check.error(Kind::Schedule, i, id, &e.path, e.message);
        }
    }
    let at = (Kind::Schedule, i, id);
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    for (l, layer) in value
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (m, member) in strings(&layer["members"]).iter().enumerate() {
            check.reference(
                at,
                &format!("layers[{l}].members[{m}]"),
                Kind::Person,
                member,
            );
        }
    }
    for (o, over) in value
        .get("overrides")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for field in ["person", "replaces"] {
            if let Some(person) = over.get(field).and_then(Value::as_str) {
                check.reference(at, &format!("overrides[{o}].{field}"), Kind::Person, person);
            }
        }
    }
}

/// Policies are read by the escalation model itself; target references are checked
/// on the raw document so they are reported beside shape problems.
fn check_escalation_policy(check: &mut Check, i: usize, value: &Value) {
    use crate::oncall::Target;
    let id = entity_id(value).unwrap_or("");
    if let Err(errors) = crate::oncall::Policy::from_json(value) {
        for e in errors.0 {
            check.error(Kind::EscalationPolicy, i, id, &e.path, e.message);
        }
    }
    let at = (Kind::EscalationPolicy, i, id);
    for (s, step) in value
        .get("steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (t, target) in step
            .get("targets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let field = format!("steps[{s}].targets[{t}]");
            match target.as_str().map(Target::parse) {
                Some(Ok(Target::Person(p))) => check.reference(at, &field, Kind::Person, &p),
                Some(Ok(Target::Schedule(x))) => check.reference(at, &field, Kind::Schedule, &x),
                Some(Ok(Target::Team(x))) => check.reference(at, &field, Kind::Team, &x),
                _ => {} // reported by the model
            }
        }
    }
}

#[derive(Deserialize)]
struct FreezeView {
    #[serde(default)]
    id: String,
    from: Option<String>,
    to: Option<String>,
    #[serde(default)]
    services: Vec<String>,
}

fn check_freeze(check: &mut Check, i: usize, value: &Value) {
    let Some(freeze) = view::<FreezeView>(check, Kind::Freeze, i, value) else {
        return;
    };
    let at = (Kind::Freeze, i, freeze.id.as_str());
    check.required(at, "from", &freeze.from);
    check.required(at, "to", &freeze.to);
    let from = check.instant(at, "from", &freeze.from);
    let to = check.instant(at, "to", &freeze.to);
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        check.error(at.0, i, at.2, "to", "must be after from");
    }
    for (s, service) in freeze.services.iter().enumerate() {
        if service != "*" {
            check.reference(at, &format!("services[{s}]"), Kind::Service, service);
        }
    }
}

#[derive(Deserialize)]
struct ChangeTemplateView {
    #[serde(default)]
    id: String,
    title: Option<String>,
    #[serde(default)]
    services: Vec<String>,
    max_duration: Option<String>,
    approved_by: Option<String>,
    approved_at: Option<String>,
}

/// A template names its services, how long its work may take, and who approved it
/// once: a member of the owner team of every service it covers.
fn check_change_template(check: &mut Check, i: usize, value: &Value, catalog: &Catalog) {
    let Some(template) = view::<ChangeTemplateView>(check, Kind::ChangeTemplate, i, value) else {
        return;
    };
    let at = (Kind::ChangeTemplate, i, template.id.as_str());
    if let Some(title) = check.required(at, "title", &template.title) {
        check.name(at, "title", title);
    }
    if template.services.is_empty() {
        check.error(at.0, i, at.2, "services", "names at least one service");
    }
    for (s, service) in template.services.iter().enumerate() {
        check.reference(at, &format!("services[{s}]"), Kind::Service, service);
    }
    if let Some(text) = check.required(at, "max_duration", &template.max_duration) {
        match crate::clock::parse_duration(text) {
            Ok(d) if d.is_positive() && d.as_hours() <= 92 * 24 => {}
            Ok(_) => check.error(
                at.0,
                i,
                at.2,
                "max_duration",
                "must be more than 0 and at most 92 days",
            ),
            Err(why) => check.error(at.0, i, at.2, "max_duration", why),
        }
    }
    if let Some(person) = check.required(at, "approved_by", &template.approved_by) {
        check.reference(at, "approved_by", Kind::Person, person);
        for service in &template.services {
            let Some(owner) = catalog.service(service).map(|s| s.owner.as_str()) else {
                continue;
            };
            if catalog
                .team(owner)
                .is_some_and(|t| !t.members.iter().any(|m| m == person))
            {
                check.error(
                    at.0,
                    i,
                    at.2,
                    "approved_by",
                    format!("{person:?} is not a member of {owner}, which owns {service}: the owner team approves its templates"),
                );
            }
        }
    }
    check.instant(at, "approved_at", &template.approved_at);
}

#[derive(Deserialize)]
struct RenewableView {
    #[serde(default)]
    id: String,
    name: Option<String>,
    owner: Option<String>,
    buyer: Option<String>,
    #[serde(default)]
    services: Vec<String>,
    expires_at: Option<String>,
    #[serde(default)]
    targets: Vec<Value>,
}

fn check_renewable(check: &mut Check, i: usize, value: &Value) {
    let Some(renewable) = view::<RenewableView>(check, Kind::Renewable, i, value) else {
        return;
    };
    let at = (Kind::Renewable, i, renewable.id.as_str());
    if let Some(name) = check.required(at, "name", &renewable.name) {
        check.name(at, "name", name);
    }
    if let Some(owner) = check.required(at, "owner", &renewable.owner) {
        check.reference(at, "owner", Kind::Team, owner);
    }
    if let Some(buyer) = &renewable.buyer {
        check.reference(at, "buyer", Kind::Team, buyer);
    }
    for (s, service) in renewable.services.iter().enumerate() {
        check.reference(at, &format!("services[{s}]"), Kind::Service, service);
    }
    check.instant(at, "expires_at", &renewable.expires_at);
    for (t, target) in renewable.targets.iter().enumerate() {
        let organisation = match target {
            Value::String(org) => Some(org.as_str()),
            Value::Object(map) => map.get("organisation").and_then(Value::as_str),
            _ => None,
        };
        if let Some(org) = organisation {
            check.reference(at, &format!("targets[{t}]"), Kind::Organisation, org);
        }
    }
    // Kind, reminders, verification and target shapes, as the renewals domain reads
    // them (a field left out or of the wrong type is reported above).
    if let Err((field, why)) = crate::renewals::Renewable::read(value)
        && !field.is_empty()
    {
        check.error(at.0, i, at.2, &field, why);
    }
}

fn email_problem(email: &str) -> Option<String> {
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    (!valid).then(|| format!("{email:?} is not an email address"))
}

/// An http(s) URL with a host; anything else (javascript:, file:, …) is rejected.
pub fn url_problem(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && !url.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            None
        }
        _ => Some(format!("{url:?} is not an http(s) URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::parse::{Format, parse_catalog};

    fn problems(yaml: &str) -> Vec<String> {
        let catalog = parse_catalog(yaml, Format::Yaml).expect("parses");
        match validate(&catalog, &Paths::document()) {
            Ok(()) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    const BASE: &str = "
teams: [{id: print, name: Print, members: [dana]}]
people: [{id: dana, name: Dana, timezone: Europe/London, email: dana@example.test}]
";

    #[test]
    fn the_seed_world_is_valid() {
        let text = include_str!("../../../../fixtures/seed-world.yaml");
        let catalog = parse_catalog(text, Format::Yaml).expect("seed world parses");
        validate(&catalog, &Paths::document()).expect("seed world is valid");
        assert_eq!(catalog.services.len(), 12);
        assert_eq!(catalog.people.len(), 22);
    }

    #[test]
    fn names_unknown_references_with_their_path() {
        let got = problems(&format!(
            "{BASE}services:\n  - {{id: a, name: A, owner: prnt, depends_on: [ghost]}}\n"
        ));
        assert_eq!(
            got,
            vec![
                "services[0].owner: unknown team \"prnt\"",
                "services[0].depends_on[0]: unknown service \"ghost\"",
            ]
        );
    }

    #[test]
    fn names_cycles() {
        let got = problems(&format!(
            "{BASE}services:\n  - {{id: a, name: A, owner: print, depends_on: [b]}}\n  - {{id: b, name: B, owner: print, depends_on: [a]}}\n"
        ));
        assert_eq!(
            got,
            vec!["services[0].depends_on: dependency cycle: a -> b -> a"]
        );
    }

    #[test]
    fn rejects_duplicates_bad_slugs_timezones_and_dates() {
        let got = problems(
            "teams: [{id: t, name: T}, {id: t, name: T2}, {id: Bad_Id, name: B}]
people: [{id: p, name: P, timezone: Mars/Olympus}]
freezes: [{id: f, from: 2026-13-01, to: '2026-12-01T00:00:00Z', services: ['*']}]
",
        );
        assert_eq!(
            got,
            vec![
                "teams[1].id: duplicate team id \"t\" (first declared at teams[0])",
                "teams[2].id: \"Bad_Id\" is not a slug: it must start with a lowercase letter or digit",
                "people[0].timezone: unknown timezone \"Mars/Olympus\" (use an IANA name such as Europe/London)",
                "freezes[0].from: \"2026-13-01\" is not an RFC 3339 instant with an offset (e.g. 2026-12-21T00:00:00Z)",
            ]
        );
    }

    #[test]
    fn checks_the_sections_stored_as_given() {
        let got = problems(&format!(
            "{BASE}schedules:
  - id: s
    timezone: Europe/London
    layers: [{{name: w, rotation: 5h, handoff: '09:00', start: 2026-11-02, members: [ghost]}}]
    overrides: [{{person: dana, from: '2026-12-02T00:00:00Z', to: '2026-12-01T00:00:00Z'}}]
escalation_policies:
  - {{id: p, steps: [{{targets: ['schedule:s', 'squad:x'], escalate_after: soon}}]}}
renewables:
  - {{id: r, name: R, owner: print, buyer: procurement, expires_at: '2027-01-01T00:00:00Z', targets: [org-x]}}
"
        ));
        assert_eq!(
            got,
            vec![
                "schedules[0].layers[0].rotation: 5h does not divide 24 hours",
                "schedules[0].overrides[0].to: must be after from",
                "schedules[0].layers[0].members[0]: unknown person \"ghost\"",
                "escalation_policies[0].steps[0].targets[1]: \"squad:x\" is not a target: use person:ID, schedule:ID or team:ID",
                "escalation_policies[0].steps[0].escalate_after: \"soon\" is not a duration (examples: 90s, 15m, 2h30m, 1d)",
                "renewables[0].buyer: unknown team \"procurement\"",
                "renewables[0].targets[0]: unknown organisation \"org-x\"",
            ]
        );
    }

    #[test]
    fn rejects_unsafe_urls_and_bad_emails() {
        let got = problems(
            "people:
  - id: p
    name: P
    timezone: UTC
    email: not-an-email
    contacts: [{type: webhook, url: 'javascript:alert(1)'}, {type: slack, url: 'ftp://x'}]
",
        );
        assert_eq!(
            got,
            vec![
                "people[0].email: \"not-an-email\" is not an email address",
                "people[0].contacts[0].url: \"javascript:alert(1)\" is not an http(s) URL",
                "people[0].contacts[1].url: \"ftp://x\" is not an http(s) URL",
            ]
        );
    }

    #[test]
    fn notification_rules_name_methods_the_person_has() {
        let got = problems(
            "people:
  - id: p
    name: P
    timezone: UTC
    email: p@example.test
    contacts: [{type: webhook, url: 'https://hooks.example.test/p'}]
    notification_rules:
      - {contact: email}
      - {contact: webhook, after: 5m}
      - {contact: sms, after: 1m}
      - {contact: slack}
      - {contact: email, after: 2d}
      - {contact: webhook, after: later}
",
        );
        assert_eq!(
            got,
            vec![
                "people[0].notification_rules[2].contact: \"sms\" is not a kind of contact method (email, webhook, slack or teams)",
                "people[0].notification_rules[3].contact: p has no slack contact method",
                "people[0].notification_rules[4].after: \"2d\" is out of range: use 0m (at once) up to 24h",
                "people[0].notification_rules[5].after: \"later\" is not a duration (examples: 90s, 15m, 2h30m, 1d)",
            ]
        );
    }

    #[test]
    fn single_entity_paths_are_the_fields() {
        let catalog = parse_catalog(
            &format!("{BASE}services: [{{id: a, name: '', owner: nope}}]"),
            Format::Yaml,
        )
        .unwrap();
        let err = validate(&catalog, &Paths::single(Kind::Service, "a".into())).unwrap_err();
        let got: Vec<String> = err.0.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            vec!["name: must not be empty", "owner: unknown team \"nope\""]
        );
    }
}
