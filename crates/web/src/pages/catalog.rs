//! Catalog pages: services (searchable, filterable), a service with its graph and
//! impact, teams, people and organisations.

use super::graph::{GraphView, neighbourhood};
use super::{Nav, PageResult, Viewer, fail, missing};
use crate::AppState;
use crate::api::Params;
use crate::error::ApiError;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use muster_domain::catalog::graph::Impact;
use muster_domain::catalog::{Contact, Organisation, Person, Service, Team};
use muster_domain::oncall::Target;

pub struct ServiceRow {
    id: String,
    name: String,
    owner: String,
    tier: Option<u8>,
    public: bool,
    external: bool,
    depends_on: usize,
    dependents: usize,
}

#[derive(Template, WebTemplate)]
#[template(path = "services.html")]
struct ServicesPage {
    nav: Nav,
    q: String,
    team: String,
    tier: String,
    teams: Vec<(String, String)>,
    tiers: Vec<u8>,
    /// Services matching the filters.
    total: usize,
    /// Services in the catalog.
    all: usize,
    rows: Vec<ServiceRow>,
    next: Option<String>,
}

/// Rows per page of the services list.
const PAGE_ROWS: usize = 100;

pub async fn services(State(state): State<AppState>, viewer: Viewer, params: Params) -> PageResult {
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let q = params.text("q").unwrap_or("").to_string();
    let team = params.text("team").unwrap_or("").to_string();
    let tier = params.text("tier").unwrap_or("").to_string();
    let needle = q.to_lowercase();
    let cursor = params.text("cursor").unwrap_or("");
    let matching = snapshot
        .catalog
        .services
        .iter()
        .filter(|s| {
            needle.is_empty() || s.id.contains(&needle) || s.name.to_lowercase().contains(&needle)
        })
        .filter(|s| team.is_empty() || s.owner == team)
        .filter(|s| tier.is_empty() || s.tier.map(|t| t.to_string()) == Some(tier.clone()));
    let total = matching.clone().count();
    let mut after_cursor = matching.filter(|s| s.id.as_str() > cursor);
    let rows: Vec<ServiceRow> = after_cursor
        .by_ref()
        .take(PAGE_ROWS)
        .map(|s| ServiceRow {
            id: s.id.clone(),
            name: s.name.clone(),
            owner: s.owner.clone(),
            tier: s.tier,
            public: s.public,
            external: s.external,
            depends_on: s.depends_on.len(),
            dependents: snapshot.graph.direct_dependents(&s.id).len(),
        })
        .collect();
    let next = match (after_cursor.next(), rows.last()) {
        (Some(_), Some(last)) => {
            let enc = |s: &str| {
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            };
            Some(format!(
                "/services?q={}&team={}&tier={}&cursor={}",
                enc(&q),
                enc(&team),
                enc(&tier),
                enc(&last.id)
            ))
        }
        _ => None,
    };
    let page = ServicesPage {
        nav: viewer.nav("/services"),
        q,
        team,
        tier,
        teams: snapshot
            .catalog
            .teams
            .iter()
            .map(|t| (t.id.clone(), t.name.clone()))
            .collect(),
        tiers: (1..=5).collect(),
        total,
        all: snapshot.catalog.services.len(),
        rows,
        next,
    };
    Ok(page.into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "service.html")]
struct ServicePage {
    nav: Nav,
    service: Service,
    owner_name: String,
    depends_on: Vec<String>,
    dependents: Vec<String>,
    graph: GraphView,
    impact: Impact,
    /// Who else is playing in its sandbox now, rendered.
    sandbox: String,
}

pub async fn service(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let Some(service) = snapshot.catalog.service(&id).cloned() else {
        return Ok(missing(
            &viewer,
            format!("There is no service with id “{id}”."),
        ));
    };
    let graph = neighbourhood(&snapshot.graph, &id, &service.name)
        .ok_or_else(|| missing(&viewer, id.clone()))?;
    let impact = snapshot
        .graph
        .impact(&id)
        .ok_or_else(|| missing(&viewer, id.clone()))?;
    let now = state.store.clock().now();
    let sandbox = super::changes::sandbox_panel(&state, &viewer, &id, now)
        .await
        .map_err(fail)?
        .render()
        .map_err(ApiError::internal)
        .map_err(fail)?;
    let page = ServicePage {
        nav: viewer.nav("/services"),
        sandbox,
        owner_name: snapshot
            .catalog
            .team(&service.owner)
            .map(|t| t.name.clone())
            .unwrap_or_else(|| service.owner.clone()),
        depends_on: snapshot.graph.direct_dependencies(&id),
        dependents: snapshot.graph.direct_dependents(&id),
        service,
        graph,
        impact,
    };
    Ok(page.into_response())
}

pub struct TeamRow {
    id: String,
    name: String,
    members: usize,
    services: usize,
    policy: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "teams.html")]
struct TeamsPage {
    nav: Nav,
    rows: Vec<TeamRow>,
}

pub async fn teams(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let rows = snapshot
        .catalog
        .teams
        .iter()
        .map(|t| TeamRow {
            id: t.id.clone(),
            name: t.name.clone(),
            members: t.members.len(),
            services: snapshot
                .catalog
                .services
                .iter()
                .filter(|s| s.owner == t.id)
                .count(),
            policy: t.escalation_policy.clone().unwrap_or_else(|| "—".into()),
        })
        .collect();
    Ok(TeamsPage {
        nav: viewer.nav("/teams"),
        rows,
    }
    .into_response())
}

/// An escalation target as shown: kind, id, and the page it links to.
type TargetLink = (String, String, String);

#[derive(Template, WebTemplate)]
#[template(path = "team.html")]
struct TeamPage {
    nav: Nav,
    team: Team,
    members: Vec<(String, String, String)>,
    services: Vec<(String, String)>,
    /// The escalation policy's steps: targets and the wait after.
    steps: Vec<(Vec<TargetLink>, String)>,
    repeat: u32,
    paged_now: Vec<(String, String)>,
}

pub async fn team(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let Some(team) = snapshot.catalog.team(&id).cloned() else {
        return Ok(missing(
            &viewer,
            format!("There is no team with id “{id}”."),
        ));
    };
    let members = team
        .members
        .iter()
        .filter_map(|m| snapshot.catalog.person(m))
        .map(|p| (p.id.clone(), p.name.clone(), p.timezone.clone()))
        .collect();
    let services = snapshot
        .catalog
        .services
        .iter()
        .filter(|s| s.owner == id)
        .map(|s| (s.id.clone(), s.name.clone()))
        .collect();
    let policy = muster_domain::oncall::Policy::of_team(&snapshot.catalog, &id)
        .map_err(|e| ApiError::internal(e).into_response())?;
    let steps = policy
        .steps
        .iter()
        .map(|step| {
            let targets = step
                .targets
                .iter()
                .map(|t| match t {
                    Target::Person(p) => ("person".into(), p.clone(), format!("/people/{p}")),
                    Target::Team(t) => ("team".into(), t.clone(), format!("/teams/{t}")),
                    Target::Schedule(s) => {
                        ("schedule".into(), s.clone(), format!("/schedules/{s}"))
                    }
                })
                .collect();
            (targets, step.escalate_after.to_string())
        })
        .collect();
    let now = state.store.clock().now();
    let paged_now = super::oncall::paged_now(&state, &snapshot.catalog, &id, now).await?;
    Ok(TeamPage {
        nav: viewer.nav("/teams"),
        team,
        members,
        services,
        steps,
        repeat: policy.repeat,
        paged_now,
    }
    .into_response())
}

pub struct PersonRow {
    id: String,
    name: String,
    email: String,
    timezone: String,
    teams: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "people.html")]
struct PeoplePage {
    nav: Nav,
    rows: Vec<PersonRow>,
}

fn teams_of<'a>(teams: &'a [Team], person: &str) -> Vec<&'a str> {
    teams
        .iter()
        .filter(|t| t.members.iter().any(|m| m == person))
        .map(|t| t.id.as_str())
        .collect()
}

pub async fn people(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let rows = snapshot
        .catalog
        .people
        .iter()
        .map(|p| PersonRow {
            id: p.id.clone(),
            name: p.name.clone(),
            email: p.email.clone().unwrap_or_default(),
            timezone: p.timezone.clone(),
            teams: teams_of(&snapshot.catalog.teams, &p.id).join(", "),
        })
        .collect();
    Ok(PeoplePage {
        nav: viewer.nav("/people"),
        rows,
    }
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "person.html")]
struct PersonPage {
    nav: Nav,
    person: Person,
    local_time: String,
    teams: Vec<String>,
    contacts: Vec<String>,
    /// The person's notification rules in words; empty: every method at once.
    rules: Vec<String>,
    shifts: Vec<super::oncall::UpcomingShift>,
    rows: Vec<super::oncall::NotificationRow>,
    can_test: bool,
    can_subscribe: bool,
    tested: Option<usize>,
    /// The test followed the notification rules.
    by_rules: bool,
    csrf: String,
}

#[derive(serde::Deserialize)]
pub struct PersonQuery {
    tested: Option<usize>,
    #[serde(default)]
    by_rules: bool,
}

pub async fn person(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<PersonQuery>,
) -> PageResult {
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let Some(person) = snapshot.catalog.person(&id).cloned() else {
        return Ok(missing(
            &viewer,
            format!("There is no person with id “{id}”."),
        ));
    };
    let local_time = jiff::tz::TimeZone::get(&person.timezone)
        .map(|tz| {
            state
                .store
                .clock()
                .now()
                .to_zoned(tz)
                .strftime("%a %H:%M %Z")
                .to_string()
        })
        .unwrap_or_default();
    // Secrets never reach a page: chat webhooks are named, not shown.
    let contacts = person
        .contacts
        .iter()
        .map(|c| match c {
            Contact::Email { to } => format!("email {to}"),
            Contact::Webhook { url, .. } => format!("webhook {url}"),
            Contact::Slack { .. } => "Slack incoming webhook".to_string(),
            Contact::Teams { .. } => "Microsoft Teams incoming webhook".to_string(),
        })
        .collect();
    let rules = person
        .notification_rules
        .iter()
        .map(|rule| match rule.after.as_deref() {
            None => format!("{} at once", rule.contact),
            Some(after) => format!("{} after {after}", rule.contact),
        })
        .collect();
    let teams = teams_of(&snapshot.catalog.teams, &id)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let shifts = super::oncall::upcoming_shifts(
        &state,
        &viewer,
        &snapshot.catalog,
        &id,
        super::oncall::TIMELINE_DAYS,
    )
    .await?;
    let rows = super::oncall::notification_rows(&state, &viewer, Some(&id), 10)
        .await
        .map_err(fail)?;
    Ok(PersonPage {
        nav: viewer.nav("/people"),
        person,
        local_time,
        teams,
        contacts,
        rules,
        shifts,
        rows,
        can_test: viewer
            .principal
            .grant
            .allows(muster_domain::auth::Permission::Respond, None),
        can_subscribe: muster_domain::auth::may_manage_calendar(
            viewer.principal.person.as_deref(),
            &viewer.principal.grant,
            &id,
        ),
        tested: query.tested,
        by_rules: query.by_rules,
        csrf: viewer.csrf.clone(),
    }
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "organisations.html")]
struct OrganisationsPage {
    nav: Nav,
    rows: Vec<Organisation>,
}

pub async fn organisations(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let snapshot = state.store.catalog().await.map_err(fail)?;
    Ok(OrganisationsPage {
        nav: viewer.nav("/organisations"),
        rows: snapshot.catalog.organisations.clone(),
    }
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "organisation.html")]
struct OrganisationPage {
    nav: Nav,
    org: Organisation,
    indirect: Vec<String>,
}

pub async fn organisation(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let snapshot = state.store.catalog().await.map_err(fail)?;
    let Some(org) = snapshot.catalog.organisation(&id).cloned() else {
        return Ok(missing(
            &viewer,
            format!("There is no organisation with id “{id}”."),
        ));
    };
    let mut indirect: Vec<String> = org
        .uses
        .iter()
        .flat_map(|s| snapshot.graph.dependencies(s).unwrap_or_default())
        .map(|r| r.service)
        .filter(|s| !org.uses.contains(s))
        .collect();
    indirect.sort();
    indirect.dedup();
    Ok(OrganisationPage {
        nav: viewer.nav("/organisations"),
        org,
        indirect,
    }
    .into_response())
}
