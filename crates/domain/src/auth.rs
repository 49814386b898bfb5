//! Who may do what. Roles are granted globally or for one team's entities only.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Also acknowledges, resolves, reports and annotates.
    Responder,
    /// Also edits the catalog and, later, changes and renewals.
    Editor,
    /// Everything, including users and tokens.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Responder, Role::Editor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Responder => "responder",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a role: use viewer, responder, editor or admin"))
    }
}

/// What an action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Read,
    Respond,
    Edit,
    Admin,
}

impl Permission {
    pub fn describe(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Respond => "respond to incidents",
            Permission::Edit => "edit",
            Permission::Admin => "administer Muster (users, tokens, the test clock)",
        }
    }
}

/// A role, granted globally (`team: None`) or only over one team's entities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub role: Role,
    pub team: Option<String>,
}

impl Grant {
    /// Whether this grant allows `permission` on an entity owned by `owner_team`
    /// (`None` for entities no team owns, such as people or the whole catalog).
    /// A team-scoped grant reads everything but acts only inside its team.
    pub fn allows(&self, permission: Permission, owner_team: Option<&str>) -> bool {
        let role_allows = match permission {
            Permission::Read => true,
            Permission::Respond => self.role != Role::Viewer,
            Permission::Edit => matches!(self.role, Role::Editor | Role::Admin),
            Permission::Admin => self.role == Role::Admin,
        };
        let in_scope = match (&self.team, permission) {
            (None, _) | (_, Permission::Read) => true,
            (Some(team), _) => owner_team == Some(team.as_str()),
        };
        role_allows && in_scope
    }
}

/// Failed sign-ins allowed per username (and per client address) in the window.
pub const SIGN_IN_FAILURES_ALLOWED: i64 = 5;
pub const SIGN_IN_FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;

pub const MIN_PASSWORD_CHARS: usize = 12;

pub fn password_problem(password: &str) -> Option<String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        Some(format!(
            "must be at least {MIN_PASSWORD_CHARS} characters (got {n})"
        ))
    } else if n > 1024 {
        Some("must be at most 1024 characters".into())
    } else if password.trim().chars().count() < MIN_PASSWORD_CHARS {
        Some(format!(
            "must have at least {MIN_PASSWORD_CHARS} characters besides surrounding spaces"
        ))
    } else {
        None
    }
}

pub fn username_problem(username: &str) -> Option<String> {
    crate::slug::slug_problem(username)
}

/// Who may make or revoke a person's calendar link: that person, or an editor.
pub fn may_manage_calendar(acting_person: Option<&str>, grant: &Grant, person: &str) -> bool {
    acting_person == Some(person) || grant.allows(Permission::Edit, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_increasing_rights() {
        let g = |role| Grant { role, team: None };
        assert!(g(Role::Viewer).allows(Permission::Read, None));
        assert!(!g(Role::Viewer).allows(Permission::Respond, None));
        assert!(g(Role::Responder).allows(Permission::Respond, None));
        assert!(!g(Role::Responder).allows(Permission::Edit, None));
        assert!(g(Role::Editor).allows(Permission::Edit, Some("any")));
        assert!(!g(Role::Editor).allows(Permission::Admin, None));
        assert!(g(Role::Admin).allows(Permission::Admin, None));
    }

    #[test]
    fn a_team_scoped_grant_acts_only_inside_its_team() {
        let ges = Grant {
            role: Role::Editor,
            team: Some("ges-team".into()),
        };
        assert!(ges.allows(Permission::Edit, Some("ges-team")));
        assert!(!ges.allows(Permission::Edit, Some("platform")));
        assert!(!ges.allows(Permission::Edit, None), "not the whole catalog");
        assert!(ges.allows(Permission::Read, Some("platform")));
    }

    #[test]
    fn roles_parse_with_a_helpful_error() {
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        assert!(
            "root"
                .parse::<Role>()
                .unwrap_err()
                .contains("viewer, responder, editor or admin")
        );
    }

    #[test]
    fn a_calendar_link_is_for_its_person_or_an_editor() {
        let viewer = Grant {
            role: Role::Viewer,
            team: None,
        };
        let editor = Grant {
            role: Role::Editor,
            team: None,
        };
        let team_editor = Grant {
            role: Role::Editor,
            team: Some("print-platform".into()),
        };
        assert!(may_manage_calendar(Some("dana"), &viewer, "dana"));
        assert!(!may_manage_calendar(Some("eli"), &viewer, "dana"));
        assert!(!may_manage_calendar(None, &viewer, "dana"));
        assert!(may_manage_calendar(None, &editor, "dana"));
        assert!(
            !may_manage_calendar(None, &team_editor, "dana"),
            "people belong to no team"
        );
    }
}
