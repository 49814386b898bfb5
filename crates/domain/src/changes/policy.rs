//! The change policy: a change's computed risk (with its reasons), the safeguards a
//! tier-1 change needs, who must approve it, and whether one more approval is allowed.

use super::conflicts::Conflict;
use super::{ChangeType, Risk, Settings, State, TestEvidence, Window};
use crate::catalog::Catalog;
use crate::catalog::graph::ServiceGraph;
use crate::clock::format_duration;
use jiff::Timestamp;
use serde::Serialize;
use std::collections::BTreeSet;

/// What the policy reads of a change.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub change_type: ChangeType,
    pub declared_risk: Risk,
    pub services: &'a [String],
    pub implementer: Option<&'a str>,
    pub test_evidence: Option<&'a TestEvidence>,
    pub rollback_plan: &'a str,
    /// The template a standard change follows.
    pub template: Option<&'a str>,
    pub window: Window,
}

impl Facts<'_> {
    fn tier_one(&self, catalog: &Catalog) -> Vec<String> {
        self.services
            .iter()
            .filter(|s| catalog.service(s).and_then(|s| s.tier) == Some(1))
            .cloned()
            .collect()
    }

    fn has_fresh_evidence(&self) -> bool {
        self.test_evidence.is_some_and(|e| !e.stale)
    }

    /// A standard change that fits a template the catalog has (as it stands now): its
    /// safeguards were judged when the owner team approved the template.
    fn templated(&self, catalog: &Catalog) -> bool {
        self.change_type == ChangeType::Standard
            && self
                .template
                .and_then(|id| super::templates::ChangeTemplate::find(catalog, id))
                .is_some_and(|t| t.misfits(self.services, self.window).is_empty())
    }
}

/// The risk a change is treated as having, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    pub risk: Risk,
    pub reasons: Vec<String>,
}

/// The higher of the declared risk and the policy's: high for a tier-1 service without
/// (fresh) test evidence or with conflicts, medium for tier 1, else low.
pub fn assess(facts: &Facts, catalog: &Catalog, conflicts: &[Conflict]) -> Assessment {
    let mut reasons = vec![format!("declared {}", facts.declared_risk.as_str())];
    let tier_one = facts.tier_one(catalog);
    let policy = if tier_one.is_empty() {
        Risk::Low
    } else {
        let which = tier_one.join(", ");
        match (facts.test_evidence, conflicts.is_empty()) {
            (None, _) => reasons.push(format!("tier 1 ({which}) without test evidence")),
            (Some(e), _) if e.stale => reasons.push(format!(
                "tier 1 ({which}) with stale test evidence (the change was edited after it)"
            )),
            (_, false) => reasons.push(format!(
                "tier 1 ({which}) with {} conflict{}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" }
            )),
            _ => reasons.push(format!("tier 1 ({which})")),
        }
        if !facts.has_fresh_evidence() || !conflicts.is_empty() {
            Risk::High
        } else {
            Risk::Medium
        }
    };
    Assessment {
        risk: facts.declared_risk.max(policy),
        reasons,
    }
}

/// The recommended safeguards a change lacks: normal and emergency changes on tier-1
/// services need a rollback plan and fresh test evidence. Without them, approval needs
/// a recorded risk acceptance.
pub fn missing_safeguards(facts: &Facts, catalog: &Catalog) -> Vec<String> {
    let tier_one = facts.tier_one(catalog);
    if tier_one.is_empty() || facts.templated(catalog) {
        return Vec::new();
    }
    let mut missing = Vec::new();
    if facts.rollback_plan.trim().is_empty() {
        missing.push(format!("a rollback plan (tier 1: {})", tier_one.join(", ")));
    }
    match facts.test_evidence {
        None => missing.push(format!("test evidence (tier 1: {})", tier_one.join(", "))),
        Some(e) if e.stale => missing.push(format!(
            "fresh test evidence: the evidence from {} predates an edit of the change",
            e.environment
        )),
        Some(_) => {}
    }
    missing
}

/// One approval a change needs: from a member of any of `teams`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    pub teams: Vec<String>,
    pub why: String,
}

/// Who must approve: nobody for a standard change that follows its template and
/// collides with nothing (pre-approved); otherwise, for normal and standard changes a member
/// of each affected service's owner team; high risk adds the owners of the direct
/// dependents. Emergency changes need one member of any owner team. The implementer's
/// own approval never counts.
pub fn requirements(
    facts: &Facts,
    risk: Risk,
    conflicts: &[Conflict],
    catalog: &Catalog,
    graph: &ServiceGraph,
) -> Vec<Requirement> {
    if facts.templated(catalog) && conflicts.is_empty() {
        return Vec::new();
    }
    let owners: BTreeSet<&str> = facts
        .services
        .iter()
        .filter_map(|s| catalog.service(s).map(|s| s.owner.as_str()))
        .collect();
    if facts.change_type == ChangeType::Emergency {
        return vec![Requirement {
            teams: owners.iter().map(|t| t.to_string()).collect(),
            why: "emergency: one member of an owner team".into(),
        }];
    }
    let mut found: Vec<Requirement> = owners
        .iter()
        .map(|team| {
            let owned: Vec<&str> = facts
                .services
                .iter()
                .filter(|s| catalog.service(s).is_some_and(|s| s.owner == *team))
                .map(String::as_str)
                .collect();
            Requirement {
                teams: vec![team.to_string()],
                why: format!("owns {}", owned.join(", ")),
            }
        })
        .collect();
    if risk == Risk::High {
        let mut dependents: Vec<(String, Vec<String>)> = Vec::new();
        for service in facts.services {
            for dependent in graph.direct_dependents(service) {
                let Some(team) = graph.owner(&dependent) else {
                    continue;
                };
                if owners.contains(team) || facts.services.contains(&dependent) {
                    continue;
                }
                match dependents.iter_mut().find(|(t, _)| t == team) {
                    Some((_, list)) => list.push(format!("{dependent} (depends on {service})")),
                    None => dependents.push((
                        team.to_string(),
                        vec![format!("{dependent} (depends on {service})")],
                    )),
                }
            }
        }
        dependents.sort();
        found.extend(dependents.into_iter().map(|(team, list)| Requirement {
            teams: vec![team],
            why: format!("high risk: owns {}", list.join(", ")),
        }));
    }
    found
}

/// An approval given: who, and the teams they belonged to when they gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub person: String,
    pub teams: Vec<String>,
    pub at: Timestamp,
}

/// The requirements no approval satisfies yet.
pub fn outstanding<'r>(
    requirements: &'r [Requirement],
    approvals: &[Approval],
) -> Vec<&'r Requirement> {
    requirements
        .iter()
        .filter(|r| {
            !approvals
                .iter()
                .any(|a| a.teams.iter().any(|t| r.teams.contains(t)))
        })
        .collect()
}

/// Everything an approval is judged on.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalRequest<'a> {
    pub facts: &'a Facts<'a>,
    pub state: State,
    /// When the change went in progress (emergencies approved afterwards).
    pub started_at: Option<Timestamp>,
    pub now: Timestamp,
    pub approver: &'a str,
    /// The teams the approver belongs to.
    pub approver_teams: &'a [String],
    pub requirements: &'a [Requirement],
    pub approvals: &'a [Approval],
    pub conflicts: &'a [Conflict],
    pub acknowledge_conflicts: bool,
    pub missing_safeguards: &'a [String],
    pub risk_accepted: bool,
}

/// One more approval, or why it is refused (the rule, in words). The lifecycle (is the
/// change submitted?) is checked by `transition` first.
pub fn approve(request: &ApprovalRequest, settings: &Settings) -> Result<Approval, String> {
    let r = request;
    if r.facts.implementer == Some(r.approver) {
        return Err(format!(
            "self-approval: {} implements this change and cannot approve it",
            r.approver
        ));
    }
    if let Some(freeze) = r.conflicts.iter().find(|c| c.blocking) {
        return Err(format!("freeze: {}", freeze.message));
    }
    if let (State::InProgress, Some(started)) = (r.state, r.started_at) {
        let window = settings.emergency_approval_window;
        if r.now > started + window {
            return Err(format!(
                "emergency changes may be approved up to {} after they start; this one started at {started}",
                format_duration(window)
            ));
        }
    }
    if !r.conflicts.is_empty() && !r.acknowledge_conflicts {
        return Err(format!(
            "conflicts: the change has {} conflict{} ({}); approve with \"acknowledge_conflicts\": true once they are understood",
            r.conflicts.len(),
            if r.conflicts.len() == 1 { "" } else { "s" },
            r.conflicts
                .iter()
                .map(|c| c.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if !r.missing_safeguards.is_empty() && !r.risk_accepted {
        return Err(format!(
            "safeguards: the change lacks {}; record a risk acceptance (POST …/risk-acceptance) before approving",
            r.missing_safeguards.join(" and ")
        ));
    }
    if r.approvals.iter().any(|a| a.person == r.approver) {
        return Err(format!("{} has already approved this change", r.approver));
    }
    let waiting = outstanding(r.requirements, r.approvals);
    let satisfies: Vec<String> = r
        .approver_teams
        .iter()
        .filter(|t| waiting.iter().any(|w| w.teams.contains(t)))
        .cloned()
        .collect();
    if satisfies.is_empty() {
        let needed: Vec<String> = waiting
            .iter()
            .map(|w| format!("{} ({})", w.teams.join(" or "), w.why))
            .collect();
        return Err(if needed.is_empty() {
            "every required approval is in already".into()
        } else {
            format!(
                "{} is not a member of a team whose approval is still needed: {}",
                r.approver,
                needed.join("; ")
            )
        });
    }
    Ok(Approval {
        person: r.approver.to_string(),
        teams: satisfies,
        at: r.now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::conflicts::Kind;

    fn seed() -> Catalog {
        crate::catalog::seed_world()
    }

    fn window() -> Window {
        Window {
            start: "2026-11-25T10:00:00Z".parse().unwrap(),
            end: "2026-11-25T11:00:00Z".parse().unwrap(),
        }
    }

    fn services(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn evidence(stale: bool) -> TestEvidence {
        TestEvidence {
            environment: "backup server".into(),
            result: "logins work".into(),
            link: None,
            tested_at: "2026-11-01T10:00:00Z".parse().unwrap(),
            stale,
        }
    }

    fn conflict() -> Conflict {
        Conflict {
            kind: Kind::SameService,
            change: None,
            changes: Vec::new(),
            freeze: None,
            services: services(&["ges"]),
            path: None,
            team: None,
            blocking: false,
            message: "CHG-9 also works on ges".into(),
        }
    }

    #[test]
    fn risk_is_the_higher_of_declared_and_policy_with_reasons() {
        let catalog = seed();
        let login = services(&["northwind-login"]);
        let fresh = evidence(false);
        let mut facts = Facts {
            change_type: ChangeType::Normal,
            declared_risk: Risk::Low,
            services: &login,
            implementer: Some("hank"),
            test_evidence: None,
            rollback_plan: "",
            template: None,
            window: window(),
        };
        let a = assess(&facts, &catalog, &[]);
        assert_eq!(a.risk, Risk::High);
        assert_eq!(
            a.reasons,
            [
                "declared low",
                "tier 1 (northwind-login) without test evidence"
            ]
        );
        facts.test_evidence = Some(&fresh);
        assert_eq!(assess(&facts, &catalog, &[]).risk, Risk::Medium);
        assert_eq!(assess(&facts, &catalog, &[conflict()]).risk, Risk::High);
        let stale = evidence(true);
        facts.test_evidence = Some(&stale);
        assert_eq!(assess(&facts, &catalog, &[]).risk, Risk::High);
        // Tier 3 alone: low by policy, the declaration wins when higher.
        let backup = services(&["northwind-login-backup"]);
        facts.services = &backup;
        facts.declared_risk = Risk::Medium;
        assert_eq!(assess(&facts, &catalog, &[]).risk, Risk::Medium);
        assert!(missing_safeguards(&facts, &catalog).is_empty());
    }

    #[test]
    fn tier_one_changes_need_a_rollback_plan_and_fresh_evidence() {
        let catalog = seed();
        let login = services(&["northwind-login"]);
        let stale = evidence(true);
        let facts = Facts {
            change_type: ChangeType::Normal,
            declared_risk: Risk::High,
            services: &login,
            implementer: Some("hank"),
            test_evidence: Some(&stale),
            rollback_plan: " ",
            template: None,
            window: window(),
        };
        let missing = missing_safeguards(&facts, &catalog);
        assert_eq!(missing.len(), 2);
        assert!(missing[0].starts_with("a rollback plan"));
        assert!(missing[1].starts_with("fresh test evidence"));
    }

    #[test]
    fn owners_approve_and_high_risk_adds_the_owners_of_direct_dependents() {
        let catalog = seed();
        let graph = ServiceGraph::new(&catalog);
        let ges = services(&["ges"]);
        let facts = Facts {
            change_type: ChangeType::Normal,
            declared_risk: Risk::Low,
            services: &ges,
            implementer: None,
            test_evidence: None,
            rollback_plan: "",
            template: None,
            window: window(),
        };
        let medium = requirements(&facts, Risk::Medium, &[], &catalog, &graph);
        assert_eq!(medium.len(), 1);
        assert_eq!(medium[0].teams, ["ges-team"]);
        let high = requirements(&facts, Risk::High, &[], &catalog, &graph);
        assert_eq!(high.len(), 2);
        assert_eq!(
            high[1].teams,
            ["contact-centre"],
            "agent-portal depends on ges"
        );
        assert_eq!(high[1].why, "high risk: owns agent-portal (depends on ges)");
        let emergency = Facts {
            change_type: ChangeType::Emergency,
            ..facts
        };
        let one = requirements(&emergency, Risk::High, &[], &catalog, &graph);
        assert_eq!(one.len(), 1);
        // A standard change on a template the catalog has is pre-approved, unless it
        // collides; without one it is treated as normal.
        let mut templated = catalog.clone();
        templated.change_templates.push(serde_json::json!({
            "id": "ges-deploy", "title": "Deploy GES", "services": ["ges"],
            "max_duration": "2h", "approved_by": "jared"}));
        let standard = Facts {
            change_type: ChangeType::Standard,
            template: Some("ges-deploy"),
            ..facts
        };
        assert!(requirements(&standard, Risk::High, &[], &templated, &graph).is_empty());
        assert_eq!(
            requirements(&standard, Risk::High, &[conflict()], &templated, &graph).len(),
            2
        );
        assert!(missing_safeguards(&standard, &templated).is_empty());
        // A template narrowed since no longer covers a longer window.
        let longer = Facts {
            window: Window {
                end: "2026-11-25T13:00:00Z".parse().unwrap(),
                ..window()
            },
            ..standard
        };
        assert_eq!(
            requirements(&longer, Risk::High, &[], &templated, &graph).len(),
            2
        );
        assert_eq!(
            missing_safeguards(&standard, &catalog).len(),
            2,
            "the seed world has no such template, and ges is tier 1"
        );
    }

    #[test]
    fn approvals_follow_the_rules_in_order() {
        let catalog = seed();
        let graph = ServiceGraph::new(&catalog);
        let login = services(&["northwind-login"]);
        let facts = Facts {
            change_type: ChangeType::Normal,
            declared_risk: Risk::High,
            services: &login,
            implementer: Some("hank"),
            test_evidence: None,
            rollback_plan: "",
            template: None,
            window: window(),
        };
        let required = requirements(&facts, Risk::High, &[], &catalog, &graph);
        let missing = missing_safeguards(&facts, &catalog);
        let hosting = services(&["hosting"]);
        let now: Timestamp = "2026-11-02T10:00:00Z".parse().unwrap();
        let conflicts = [conflict()];
        let base = ApprovalRequest {
            facts: &facts,
            state: State::Submitted,
            started_at: None,
            now,
            approver: "hiro",
            approver_teams: &hosting,
            requirements: &required,
            approvals: &[],
            conflicts: &[],
            acknowledge_conflicts: false,
            missing_safeguards: &missing,
            risk_accepted: false,
        };
        let settings = Settings::default();
        let refused = |r: &ApprovalRequest| approve(r, &settings).unwrap_err();
        assert!(
            refused(&ApprovalRequest {
                approver: "hank",
                ..base
            })
            .starts_with("self-approval")
        );
        assert!(refused(&base).starts_with("safeguards: the change lacks a rollback plan"));
        let accepted = ApprovalRequest {
            risk_accepted: true,
            ..base
        };
        assert!(
            refused(&ApprovalRequest {
                conflicts: &conflicts,
                ..accepted
            })
            .starts_with("conflicts: the change has 1 conflict")
        );
        let outsider = services(&["platform"]);
        assert!(refused(&ApprovalRequest { approver_teams: &outsider, ..accepted })
            .starts_with("hiro is not a member of a team whose approval is still needed: hosting (owns northwind-login)"));
        let given = approve(
            &ApprovalRequest {
                conflicts: &conflicts,
                acknowledge_conflicts: true,
                ..accepted
            },
            &settings,
        )
        .unwrap();
        assert_eq!(given.teams, ["hosting"]);
        let approvals = [given];
        assert!(
            refused(&ApprovalRequest {
                approvals: &approvals,
                ..accepted
            })
            .contains("already approved")
        );
        assert!(outstanding(&required, &approvals).is_empty());
        // An emergency in progress: approvable for 24 hours after it started.
        let started = Some(now - jiff::SignedDuration::from_hours(25));
        let late = ApprovalRequest {
            state: State::InProgress,
            started_at: started,
            ..accepted
        };
        assert!(refused(&late).starts_with("emergency changes may be approved up to 1d"));
    }
}
