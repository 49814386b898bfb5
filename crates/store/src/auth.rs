//! Users, sessions, API tokens and sign-in throttling. Passwords are Argon2id hashes;
//! tokens and session ids are stored only as SHA-256 hashes.

use crate::secrets::{credential_hash, random_token};
use crate::{Result, Store, StoreError, dispatch, per_dialect};
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use muster_domain::audit::{Actor, NewAuditEntry};
use muster_domain::auth::{
    Grant, Role, SIGN_IN_FAILURE_WINDOW_MS, SIGN_IN_FAILURES_ALLOWED, password_problem,
    username_problem,
};
use muster_domain::catalog::apply::Refusal;
use muster_domain::{FieldError, FieldErrors};
use serde::Serialize;

/// Tokens look like `mst_` + 40 characters of `[a-z0-9]`.
pub const TOKEN_PREFIX: &str = "mst_";
pub const SESSION_TTL_MS: i64 = 12 * 60 * 60 * 1000;

/// An authenticated caller: a signed-in user or an API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// `user:alice` or `token:ci-deploy`.
    pub label: String,
    pub grant: Grant,
    /// The catalog person this caller is, when linked.
    pub person: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub username: String,
    pub role: Role,
    pub team: Option<String>,
    pub person: Option<String>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub team: Option<String>,
    pub person: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A new session: the cookie value (shown once) and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub csrf_token: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInError {
    /// Wrong username or password (deliberately not saying which).
    Invalid,
    /// Too many recent failures for this username or client.
    Throttled,
}

/// What a user or token is granted, checked against the catalog before it is stored.
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub role: Role,
    pub team: Option<String>,
    pub person: Option<String>,
}

fn argon2() -> Argon2<'static> {
    Argon2::default()
}

pub async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        argon2()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| StoreError::Config(format!("cannot hash password: {e}")))
    })
    .await
    .map_err(|e| StoreError::Config(format!("password hashing task failed: {e}")))?
}

async fn password_matches(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .is_ok_and(|hash| argon2().verify_password(password.as_bytes(), &hash).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// A hash to verify against when the user does not exist, so timing does not reveal
/// which usernames exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0kYkQ2JmN4rL+uJtX8j5yQ0c8G0tP7w4cH9r1m3s5QY";

impl Store {
    async fn check_grant(&self, grant: &NewGrant) -> Result<()> {
        let snapshot = self.catalog().await?;
        let mut errors = FieldErrors::default();
        if let Some(team) = &grant.team
            && snapshot.catalog.team(team).is_none()
        {
            errors.push("team", format!("unknown team {team:?}"));
        }
        if let Some(person) = &grant.person
            && snapshot.catalog.person(person).is_none()
        {
            errors.push("person", format!("unknown person {person:?}"));
        }
        errors.into_result(()).map_err(StoreError::Invalid)
    }

    pub async fn create_user(
        &self,
        actor: &Actor,
        username: &str,
        password: String,
        grant: NewGrant,
    ) -> Result<User> {
        let mut errors = FieldErrors::default();
        if let Some(p) = username_problem(username) {
            errors.push("username", p);
        }
        if let Some(p) = password_problem(&password) {
            errors.push("password", p);
        }
        errors.into_result(()).map_err(StoreError::Invalid)?;
        self.check_grant(&grant).await?;
        let hash = hash_password(password).await?;
        let user = User {
            username: username.to_string(),
            role: grant.role,
            team: grant.team,
            person: grant.person,
            created_at: self.now_ms(),
            disabled_at: None,
        };
        let audit = actor.entry(
            "create",
            format!("user:{username}"),
            None,
            serde_json::to_string(&user).ok(),
        );
        dispatch!(self, insert_user(&user, &hash, audit))?;
        Ok(user)
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        dispatch!(self, list_users())
    }

    /// Checks a password, throttling repeated failures per username and per client.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        client: &str,
    ) -> Result<Result<User, SignInError>> {
        let now = self.now_ms();
        let since = now - SIGN_IN_FAILURE_WINDOW_MS;
        let (by_user, by_client): (i64, i64) =
            dispatch!(self, recent_failures(username, client, since))?;
        if by_user >= SIGN_IN_FAILURES_ALLOWED || by_client >= SIGN_IN_FAILURES_ALLOWED * 4 {
            return Ok(Err(SignInError::Throttled));
        }
        let found: Option<(User, String)> = dispatch!(self, user_with_hash(username))?;
        let stored_hash = found
            .as_ref()
            .map(|(_, h)| h.clone())
            .unwrap_or_else(|| DUMMY_HASH.to_string());
        let ok = password_matches(password.to_string(), stored_hash).await && found.is_some();
        if !ok {
            dispatch!(self, record_failure(username, client, now))?;
            return Ok(Err(SignInError::Invalid));
        }
        Ok(Ok(found.map(|(u, _)| u).expect("checked above")))
    }

    pub async fn create_session(&self, username: &str) -> Result<NewSession> {
        let now = self.now_ms();
        let session = NewSession {
            id: random_token(43),
            csrf_token: random_token(32),
            expires_at: now + SESSION_TTL_MS,
        };
        dispatch!(
            self,
            insert_session(
                &credential_hash(&session.id),
                username,
                &session.csrf_token,
                now,
                session.expires_at
            )
        )?;
        Ok(session)
    }

    /// The user and CSRF token of a live session.
    pub async fn session(&self, id: &str) -> Result<Option<(Principal, String)>> {
        let found: Option<(User, String)> =
            dispatch!(self, session_user(&credential_hash(id), self.now_ms()))?;
        Ok(found.map(|(user, csrf)| (user_principal(&user), csrf)))
    }

    pub async fn end_session(&self, id: &str) -> Result<()> {
        dispatch!(self, delete_session(&credential_hash(id)))
    }

    /// Creates an API token and returns it; only its hash is stored.
    pub async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        grant: NewGrant,
    ) -> Result<(String, TokenInfo)> {
        if let Some(p) = muster_domain::slug::slug_problem(name) {
            return Err(StoreError::Invalid(FieldError::new("name", p).into()));
        }
        self.check_grant(&grant).await?;
        let token = format!("{TOKEN_PREFIX}{}", random_token(40));
        let info = TokenInfo {
            name: name.to_string(),
            role: grant.role,
            team: grant.team,
            person: grant.person,
            created_by: actor.label.clone(),
            created_at: self.now_ms(),
            last_used_at: None,
            revoked_at: None,
        };
        let audit = actor.entry(
            "create",
            format!("token:{name}"),
            None,
            serde_json::to_string(&info).ok(),
        );
        dispatch!(self, insert_token(&info, &credential_hash(&token), audit))?;
        Ok((token, info))
    }

    pub async fn tokens(&self) -> Result<Vec<TokenInfo>> {
        dispatch!(self, list_tokens())
    }

    /// Whether the principal an actor label names may still act: a user not disabled
    /// (`user:…`), a token not revoked (`token:…`); the command line and the system
    /// always may.
    pub async fn principal_active(&self, label: &str) -> Result<bool> {
        Ok(match label.split_once(':') {
            Some(("user", name)) => self
                .users()
                .await?
                .iter()
                .any(|u| u.username == name && u.disabled_at.is_none()),
            Some(("token", name)) => self
                .tokens()
                .await?
                .iter()
                .any(|t| t.name == name && t.revoked_at.is_none()),
            _ => true,
        })
    }

    pub async fn revoke_token(&self, actor: &Actor, name: &str) -> Result<TokenInfo> {
        let now = self.now_ms();
        let audit = actor.entry("revoke", format!("token:{name}"), None, None);
        dispatch!(self, revoke(name, now, audit))?
            .ok_or_else(|| StoreError::NotFound(format!("no live token named {name:?}")))
    }

    /// The principal behind a bearer token, if it is live.
    pub async fn authenticate_token(&self, token: &str) -> Result<Option<Principal>> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let found: Option<TokenInfo> =
            dispatch!(self, token_by_hash(&credential_hash(token), self.now_ms()))?;
        Ok(found.map(|t| Principal {
            label: format!("token:{}", t.name),
            grant: Grant {
                role: t.role,
                team: t.team,
            },
            person: t.person,
        }))
    }
}

pub fn user_principal(user: &User) -> Principal {
    Principal {
        label: format!("user:{}", user.username),
        grant: Grant {
            role: user.role,
            team: user.team.clone(),
        },
        person: user.person.clone(),
    }
}

fn parse_role(role: &str) -> Result<Role> {
    role.parse().map_err(StoreError::Corrupt)
}

type UserRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
);
/// A user row and one more text column (the password hash or a session's CSRF token).
type UserRowWith = (
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
    String,
);

fn user_from(r: UserRow) -> Result<User> {
    Ok(User {
        username: r.0,
        role: parse_role(&r.1)?,
        team: r.2,
        person: r.3,
        created_at: r.4,
        disabled_at: r.5,
    })
}

type TokenRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);

fn token_from(r: TokenRow) -> Result<TokenInfo> {
    Ok(TokenInfo {
        name: r.0,
        role: parse_role(&r.1)?,
        team: r.2,
        person: r.3,
        created_by: r.4,
        created_at: r.5,
        last_used_at: r.6,
        revoked_at: r.7,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

per_dialect!("auth/sql.rs");

impl Store {
    /// Disables a user: no more sign-ins, and their sessions end.
    pub async fn disable_user(&self, actor: &Actor, username: &str) -> Result<()> {
        let audit = actor.entry("disable", format!("user:{username}"), None, None);
        if !dispatch!(self, disable(username, self.now_ms(), audit))? {
            return Err(StoreError::NotFound(format!(
                "no active user named {username:?}"
            )));
        }
        Ok(())
    }

    /// Replaces a user's password and ends their sessions.
    pub async fn set_password(
        &self,
        actor: &Actor,
        username: &str,
        password: String,
    ) -> Result<()> {
        if let Some(p) = password_problem(&password) {
            return Err(StoreError::Invalid(FieldError::new("password", p).into()));
        }
        let hash = hash_password(password).await?;
        let audit = actor.entry("set_password", format!("user:{username}"), None, None);
        if !dispatch!(self, update_password(username, &hash, self.now_ms(), audit))? {
            return Err(StoreError::NotFound(format!("no user named {username:?}")));
        }
        Ok(())
    }
}
