// Auth queries, compiled once per database (see `per_dialect!`).

const USER_COLUMNS: &str = "username, role, team, person, created_at, disabled_at";
const TOKEN_COLUMNS: &str = "name, role, team, person, created_by, created_at, last_used_at, revoked_at";

/// The outcome of an insert on a unique key: a violation means `what` already exists.
fn refuse_duplicate(inserted: Result<<DB as sqlx::Database>::QueryResult, sqlx::Error>, what: String) -> Result<()> {
    match inserted {
        Err(e) if is_unique_violation(&e) => Err(StoreError::Refused(Refusal::Exists(what))),
        other => other.map(|_| ()).map_err(StoreError::from),
    }
}

pub async fn insert_user(p: &crate::Pools<DB>, user: &User, hash: &str, audit: NewAuditEntry) -> Result<()> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let inserted = sqlx::query("INSERT INTO users (username, password_hash, role, team, person, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&user.username)
        .bind(hash)
        .bind(user.role.as_str())
        .bind(&user.team)
        .bind(&user.person)
        .bind(user.created_at)
        .execute(&mut *tx)
        .await;
    refuse_duplicate(inserted, format!("user {:?}", user.username))?;
    audit_sql::append(&mut tx, user.created_at, vec![audit]).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn list_users(p: &crate::Pools<DB>) -> Result<Vec<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY username");
    let rows: Vec<UserRow> = sqlx::query_as(trusted(sql)).fetch_all(&p.reader).await?;
    rows.into_iter().map(user_from).collect()
}

pub async fn user_with_hash(p: &crate::Pools<DB>, username: &str) -> Result<Option<(User, String)>> {
    let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = $1 AND disabled_at IS NULL");
    let row: Option<UserRowWith> =
        sqlx::query_as(trusted(sql)).bind(username).fetch_optional(&p.reader).await?;
    row.map(|r| Ok((user_from((r.0, r.1, r.2, r.3, r.4, r.5))?, r.6))).transpose()
}

pub async fn recent_failures(p: &crate::Pools<DB>, username: &str, client: &str, since: i64) -> Result<(i64, i64)> {
    let (by_user,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sign_in_failures WHERE username = $1 AND at >= $2")
        .bind(username)
        .bind(since)
        .fetch_one(&p.reader)
        .await?;
    let (by_client,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sign_in_failures WHERE client = $1 AND at >= $2")
        .bind(client)
        .bind(since)
        .fetch_one(&p.reader)
        .await?;
    Ok((by_user, by_client))
}

pub async fn record_failure(p: &crate::Pools<DB>, username: &str, client: &str, at: i64) -> Result<()> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    sqlx::query("INSERT INTO sign_in_failures (username, client, at) VALUES ($1, $2, $3)")
        .bind(username)
        .bind(client)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    // Old failures no longer count; forget them.
    sqlx::query("DELETE FROM sign_in_failures WHERE at < $1")
        .bind(at - 2 * SIGN_IN_FAILURE_WINDOW_MS)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn insert_session(p: &crate::Pools<DB>, hash: &str, username: &str, csrf: &str, now: i64, expires_at: i64) -> Result<()> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    sqlx::query("DELETE FROM sessions WHERE expires_at < $1").bind(now).execute(&mut *tx).await?;
    sqlx::query("INSERT INTO sessions (token_hash, username, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(hash)
        .bind(username)
        .bind(csrf)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn session_user(p: &crate::Pools<DB>, hash: &str, now: i64) -> Result<Option<(User, String)>> {
    let sql = "SELECT u.username, u.role, u.team, u.person, u.created_at, u.disabled_at, s.csrf_token FROM sessions s \
               JOIN users u ON u.username = s.username \
               WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL";
    let row: Option<UserRowWith> =
        sqlx::query_as(sql).bind(hash).bind(now).fetch_optional(&p.reader).await?;
    row.map(|r| Ok((user_from((r.0, r.1, r.2, r.3, r.4, r.5))?, r.6))).transpose()
}

pub async fn delete_session(p: &crate::Pools<DB>, hash: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(hash).execute(&p.writer).await?;
    Ok(())
}

pub async fn insert_token(p: &crate::Pools<DB>, t: &TokenInfo, hash: &str, audit: NewAuditEntry) -> Result<()> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let inserted = sqlx::query(
        "INSERT INTO api_tokens (name, token_hash, role, team, person, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&t.name)
    .bind(hash)
    .bind(t.role.as_str())
    .bind(&t.team)
    .bind(&t.person)
    .bind(&t.created_by)
    .bind(t.created_at)
    .execute(&mut *tx)
    .await;
    refuse_duplicate(inserted, format!("token {:?}", t.name))?;
    audit_sql::append(&mut tx, t.created_at, vec![audit]).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn list_tokens(p: &crate::Pools<DB>) -> Result<Vec<TokenInfo>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY name");
    let rows: Vec<TokenRow> = sqlx::query_as(trusted(sql)).fetch_all(&p.reader).await?;
    rows.into_iter().map(token_from).collect()
}

pub async fn revoke(p: &crate::Pools<DB>, name: &str, now: i64, audit: NewAuditEntry) -> Result<Option<TokenInfo>> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let done = sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL")
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE name = $1");
    let row: TokenRow = sqlx::query_as(trusted(sql)).bind(name).fetch_one(&mut *tx).await?;
    let info = token_from(row)?;
    let mut audit = audit;
    audit.after = serde_json::to_string(&info).ok();
    audit_sql::append(&mut tx, now, vec![audit]).await?;
    tx.commit().await?;
    Ok(Some(info))
}

pub async fn token_by_hash(p: &crate::Pools<DB>, hash: &str, now: i64) -> Result<Option<TokenInfo>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL");
    let row: Option<TokenRow> = sqlx::query_as(trusted(sql)).bind(hash).fetch_optional(&p.reader).await?;
    let Some(row) = row else { return Ok(None) };
    // Last use is a hint for admins; record it at most once a minute.
    if row.6.is_none_or(|last| now - last > 60_000) {
        sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE token_hash = $1")
            .bind(hash)
            .bind(now)
            .execute(&p.writer)
            .await?;
    }
    token_from(row).map(Some)
}

pub async fn update_password(p: &crate::Pools<DB>, username: &str, hash: &str, now: i64, audit: NewAuditEntry) -> Result<bool> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE username = $1")
        .bind(username)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM sessions WHERE username = $1").bind(username).execute(&mut *tx).await?;
    audit_sql::append(&mut tx, now, vec![audit]).await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn disable(p: &crate::Pools<DB>, username: &str, now: i64, audit: NewAuditEntry) -> Result<bool> {
    let mut tx = p.writer.begin_with(BEGIN_WRITE).await?;
    let done = sqlx::query("UPDATE users SET disabled_at = $2 WHERE username = $1 AND disabled_at IS NULL")
        .bind(username)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM sessions WHERE username = $1").bind(username).execute(&mut *tx).await?;
    audit_sql::append(&mut tx, now, vec![audit]).await?;
    tx.commit().await?;
    Ok(true)
}
