//! The command line: flags, help texts and each subcommand's work.

use crate::config::{DEFAULT_DATABASE_URL, DEFAULT_SECRET_KEY_FILE, FileConfig};
use crate::serve;
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use muster_domain::audit::Actor;
use muster_domain::auth::Role;
use muster_domain::catalog::apply::plan_import;
use muster_domain::catalog::parse::{Format, parse_catalog};
use muster_domain::clock::Clock;
use muster_store::auth::NewGrant;
use muster_store::secrets::SecretBox;
use muster_store::{DatabaseUrl, Store};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "muster", version, about = "Muster: who owns what, who is on call, what is changing, what is about to expire, and what is broken.", long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Args, Clone)]
pub struct Global {
    /// TOML file with settings (flags and MUSTER_* variables override it).
    #[arg(long, global = true, env = "MUSTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database: sqlite://FILE (created if missing) or postgres://USER:PASSWORD@HOST/DB.
    /// [default: sqlite://muster.db; sqlite://muster-demo.db for `demo`]
    #[arg(long, global = true, env = "MUSTER_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// File holding the key that encrypts stored secrets (created if missing). Servers
    /// sharing one PostgreSQL need the same key. [default: muster.key]
    #[arg(
        long,
        global = true,
        env = "MUSTER_SECRET_KEY_FILE",
        value_name = "FILE"
    )]
    pub secret_key_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server: the JSON API, the web UI and the operational endpoints.
    Serve(serve::ServeArgs),
    /// Run the server with the demo world loaded; prints the URL and a fresh password for the demo admin.
    Demo(serve::DemoArgs),
    /// Bring the database schema up to date (the server also does this at start).
    Migrate,
    /// Import or export the catalog document.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Manage users who sign in to the web UI.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Check the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Find X.509 certificates and SPKI pins in files, binaries and zip/jar/apk
    /// archives; with --register, record them as the pins of an artifact version.
    Scan(crate::scan::ScanArgs),
}

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Apply a catalog document (YAML or JSON) atomically: creates and updates what it
    /// declares; keeps entities it does not mention unless --prune.
    Import {
        /// The document; `-` reads standard input.
        file: PathBuf,
        /// Delete catalog entities absent from the document.
        #[arg(long)]
        prune: bool,
        /// Why, recorded in the audit trail.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Print the catalog as YAML (secrets redacted); it re-imports to the same state.
    Export {
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct GrantArgs {
    /// viewer, responder, editor or admin.
    #[arg(long)]
    pub role: Role,
    /// Limit the role to one team's entities.
    #[arg(long)]
    pub team: Option<String>,
    /// The catalog person this user or token acts as.
    #[arg(long)]
    pub person: Option<String>,
}

impl GrantArgs {
    fn grant(self) -> NewGrant {
        NewGrant {
            role: self.role,
            team: self.team,
            person: self.person,
        }
    }
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        username: String,
        #[command(flatten)]
        grant: GrantArgs,
        /// Read the password from standard input (required: passwords never go in flags).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Set a user's password (read from standard input) and end their sessions.
    Password {
        #[arg(long)]
        username: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Disable a user: they can no longer sign in and their sessions end.
    Disable {
        #[arg(long)]
        username: String,
    },
    /// List users.
    List,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it, once, on standard output.
    Create {
        /// A name for the token (a slug), e.g. ci-deploy.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        grant: GrantArgs,
    },
    /// List tokens (never their values).
    List,
    /// Revoke a token by name.
    Revoke { name: String },
}

/// Exit code of `audit verify` on a broken chain (2 is clap's usage error).
pub const BROKEN_EXIT: u8 = 3;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain; exits 3 naming the first bad entry when it is broken.
    Verify {
        /// A head hash recorded elsewhere at any time (from GET /api/v1/audit/head or
        /// the server log): it must still be in the chain, which catches a log
        /// truncated or rewritten wholesale.
        #[arg(long, value_name = "HASH")]
        expect_head: Option<String>,
    },
}

/// Settings resolved from flags, environment and the config file.
#[derive(Clone)]
pub struct Resolved {
    pub file: FileConfig,
    pub database_url: DatabaseUrl,
    /// Whether the database URL was chosen (flag, variable or file) or defaulted.
    pub database_url_given: bool,
    pub secret_key_file: PathBuf,
}

pub fn resolve(global: &Global) -> anyhow::Result<Resolved> {
    let file = FileConfig::load(global.config.as_deref())?;
    let given = global.database_url.clone().or(file.database_url.clone());
    let database_url_given = given.is_some();
    let url = given.unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
    let database_url = url
        .parse::<DatabaseUrl>()
        .map_err(|e| anyhow::anyhow!("--database-url: {e}"))?;
    let secret_key_file = global
        .secret_key_file
        .clone()
        .or(file.secret_key_file.clone())
        .unwrap_or_else(|| DEFAULT_SECRET_KEY_FILE.into());
    Ok(Resolved {
        file,
        database_url,
        database_url_given,
        secret_key_file,
    })
}

/// Opens the database, creating it if missing.
pub async fn open_store(resolved: &Resolved, clock: Clock) -> anyhow::Result<Store> {
    let secrets =
        SecretBox::from_key_file(&resolved.secret_key_file).map_err(|e| anyhow::anyhow!(e))?;
    Store::open(&resolved.database_url, secrets, clock)
        .await
        .with_context(|| format!("cannot open database {}", resolved.database_url.redacted()))
}

/// A recorded audit head: 64 hex digits (any case), so a typo is an error, not an alarm.
fn parse_head(head: &str) -> anyhow::Result<String> {
    let head = head.trim().to_ascii_lowercase();
    if head.len() != 64 || !head.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!(
            "--expect-head: {head:?} is not an audit head (64 hex digits, from GET /api/v1/audit/head or the server log)"
        );
    }
    Ok(head)
}

/// Opens a database that must already exist, with its existing key file (for commands
/// that only read or change what is there: a mistyped path should create nothing).
async fn open_existing(resolved: &Resolved) -> anyhow::Result<Store> {
    if let DatabaseUrl::Sqlite { path, .. } = &resolved.database_url
        && !path.exists()
    {
        bail!(
            "no database at {} (check --database-url; `muster migrate` or `muster serve` creates one)",
            path.display()
        );
    }
    let secrets = SecretBox::from_existing_key_file(&resolved.secret_key_file)
        .map_err(|e| anyhow::anyhow!(e))?;
    Store::open(&resolved.database_url, secrets, Clock::System)
        .await
        .with_context(|| format!("cannot open database {}", resolved.database_url.redacted()))
}

/// The actor for changes made from this command line.
fn cli_actor(reason: Option<String>) -> Actor {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    Actor::new(format!("cli:{user}")).with_reason(reason)
}

fn read_password() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!(
            "no password on standard input (e.g. `printf '%s' \"$PW\" | muster user create … --password-stdin`)"
        );
    }
    Ok(password)
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let resolved = resolve(&cli.global)?;
    match cli.command {
        Command::Serve(args) => serve::serve(&resolved, args).await,
        Command::Demo(args) => serve::demo(&resolved, args).await,
        Command::Migrate => {
            open_store(&resolved, Clock::System).await?;
            eprintln!(
                "database {} is up to date",
                resolved.database_url.redacted()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Catalog(command) => catalog(&resolved, command).await,
        Command::User(command) => user(&resolved, command).await,
        Command::Token(command) => token(&resolved, command).await,
        Command::Scan(args) => {
            let report = crate::scan::scan(&args);
            if args.register {
                register_scan(&resolved, &args, &report).await?;
            }
            crate::scan::print(&report, args.json)
        }
        Command::Audit(AuditCommand::Verify { expect_head }) => {
            let expect_head = expect_head.map(|head| parse_head(&head)).transpose()?;
            let store = open_existing(&resolved).await?;
            match store.audit_verify(expect_head.as_deref()).await? {
                Ok(verified) => {
                    println!(
                        "audit trail intact: {} entries, head {}",
                        verified.entries, verified.head
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(broken) => {
                    eprintln!("audit trail BROKEN: {broken}");
                    Ok(ExitCode::from(BROKEN_EXIT))
                }
            }
        }
    }
}

/// Records a scan as the pins of `--artifact` `--version`, and tracks each pinned
/// certificate's expiry as a renewable owned by `--owner`.
async fn register_scan(
    resolved: &Resolved,
    args: &crate::scan::ScanArgs,
    report: &muster_probe::scan::Report,
) -> anyhow::Result<()> {
    use muster_domain::renewals::artifacts::{Pin, artifact_id, check_artifact, pinned_renewable};
    use muster_probe::scan::Found;
    let (Some(name), Some(version), Some(owner)) = (&args.artifact, &args.version, &args.owner)
    else {
        bail!("--register needs --artifact, --version and --owner");
    };
    check_artifact(name, version).map_err(|(field, why)| anyhow::anyhow!("--{field}: {why}"))?;
    let store = open_existing(resolved).await?;
    if store.catalog().await?.catalog.team(owner).is_none() {
        bail!("--owner: no team with id {owner:?} in the catalog");
    }
    let pins: Vec<Pin> = report
        .hits
        .iter()
        .map(|hit| match &hit.found {
            Found::Certificate(c) => Pin {
                path: hit.path.clone(),
                offset: hit.offset as i64,
                kind: "certificate".into(),
                spki_sha256: c.spki_sha256.clone(),
                subject: Some(c.subject.clone()),
                not_after: Some(c.not_after),
            },
            Found::Pin { spki_sha256, .. } => Pin {
                path: hit.path.clone(),
                offset: hit.offset as i64,
                kind: "pin".into(),
                spki_sha256: spki_sha256.clone(),
                subject: None,
                not_after: None,
            },
        })
        .collect();
    let actor = cli_actor(None);
    store
        .register_artifact(&actor, name, version, owner, &pins)
        .await?;
    let mut renewables: Vec<serde_json::Value> = pins
        .iter()
        .filter_map(|pin| pinned_renewable(name, version, owner, pin))
        .collect();
    renewables.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    renewables.dedup_by(|a, b| a["id"] == b["id"]);
    eprintln!(
        "registered {}: {} keys pinned",
        artifact_id(name, version),
        pins.len()
    );
    if !renewables.is_empty() {
        let document = serde_json::json!({ "renewables": renewables }).to_string();
        let summary = import_document(&store, &document, Format::Json, false, &actor).await?;
        eprintln!("pinned certificates tracked as renewables:\n{summary}");
    }
    Ok(())
}

/// Imports a document into `store`, printing a summary; used by `catalog import` and
/// the demo.
pub async fn import_document(
    store: &Store,
    text: &str,
    format: Format,
    prune: bool,
    actor: &Actor,
) -> anyhow::Result<String> {
    let document = parse_catalog(text, format)
        .map_err(|e| anyhow::anyhow!("the document is invalid:\n{e}"))?;
    let sealer = store.sealer().clone();
    let plan = store
        .change_catalog(actor, "import", move |current| {
            Ok(plan_import(current, document, prune, &sealer)?)
        })
        .await
        .map_err(|e| match e {
            muster_store::StoreError::Refused(muster_domain::catalog::apply::Refusal::Invalid(
                errors,
            )) => {
                anyhow::anyhow!("the catalog was not imported; nothing changed:\n{errors}")
            }
            other => other.into(),
        })?;
    let mut lines = Vec::new();
    for (kind, summary) in &plan.summary.kinds {
        let counts = [
            ("created", summary.created.len()),
            ("updated", summary.updated.len()),
            ("deleted", summary.deleted.len()),
            ("unchanged", summary.unchanged.len()),
            ("kept", summary.kept.len()),
        ];
        let parts: Vec<String> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        if !parts.is_empty() {
            lines.push(format!("{:>20}: {}", kind.section(), parts.join(", ")));
        }
    }
    for note in &plan.summary.notes {
        lines.push(format!("note: {note}"));
    }
    Ok(lines.join("\n"))
}

async fn catalog(resolved: &Resolved, command: CatalogCommand) -> anyhow::Result<ExitCode> {
    match command {
        CatalogCommand::Import {
            file,
            prune,
            reason,
        } => {
            let store = open_store(resolved, Clock::System).await?;
            let text = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text)?;
                text
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let format = if file.extension().is_some_and(|e| e == "json") {
                Format::Json
            } else {
                Format::Yaml
            };
            let summary = import_document(&store, &text, format, prune, &cli_actor(reason)).await?;
            eprintln!("imported {}\n{summary}", file.display());
        }
        CatalogCommand::Export { output } => {
            let snapshot = open_existing(resolved).await?.catalog().await?;
            let yaml = muster_web::api::catalog::export_yaml(&snapshot.catalog.redacted())
                .map_err(|e| anyhow::anyhow!(e))?;
            match output {
                Some(path) => std::fs::write(&path, yaml)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{yaml}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn user(resolved: &Resolved, command: UserCommand) -> anyhow::Result<ExitCode> {
    let store = match command {
        UserCommand::Create { .. } => open_store(resolved, Clock::System).await?,
        _ => open_existing(resolved).await?,
    };
    match command {
        UserCommand::Create {
            username, grant, ..
        } => {
            let password = read_password()?;
            let user = store
                .create_user(&cli_actor(None), &username, password, grant.grant())
                .await?;
            eprintln!("created user {} with role {}", user.username, user.role);
        }
        UserCommand::Password { username, .. } => {
            let password = read_password()?;
            store
                .set_password(&cli_actor(None), &username, password)
                .await?;
            eprintln!("password of {username} changed; their sessions were ended");
        }
        UserCommand::Disable { username } => {
            store.disable_user(&cli_actor(None), &username).await?;
            eprintln!("user {username} disabled; their sessions were ended");
        }
        UserCommand::List => {
            println!("USERNAME\tROLE\tTEAM\tPERSON\tSTATE");
            for u in store.users().await? {
                let state = if u.disabled_at.is_some() {
                    "disabled"
                } else {
                    "active"
                };
                let (team, person) = (
                    u.team.as_deref().unwrap_or("-"),
                    u.person.as_deref().unwrap_or("-"),
                );
                println!("{}\t{}\t{team}\t{person}\t{state}", u.username, u.role);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn token(resolved: &Resolved, command: TokenCommand) -> anyhow::Result<ExitCode> {
    let store = match command {
        TokenCommand::Create { .. } => open_store(resolved, Clock::System).await?,
        _ => open_existing(resolved).await?,
    };
    match command {
        TokenCommand::Create { name, grant } => {
            let (token, _) = store
                .create_token(&cli_actor(None), &name, grant.grant())
                .await?;
            println!("{token}");
        }
        TokenCommand::List => {
            println!("NAME\tROLE\tTEAM\tSTATE\tPERSON\tLAST USED");
            for t in store.tokens().await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "live"
                };
                let last_used = t
                    .last_used_at
                    .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                    .map(|t| t.to_string());
                let (team, person) = (
                    t.team.as_deref().unwrap_or("-"),
                    t.person.as_deref().unwrap_or("-"),
                );
                println!(
                    "{}\t{}\t{team}\t{state}\t{person}\t{}",
                    t.name,
                    t.role,
                    last_used.as_deref().unwrap_or("never")
                );
            }
        }
        TokenCommand::Revoke { name } => {
            store.revoke_token(&cli_actor(None), &name).await?;
            eprintln!("token {name} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
