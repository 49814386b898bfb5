//! Settings: command-line flags win over `MUSTER_…` environment variables, which win
//! over the TOML file given by `--config`, which wins over the defaults.

use anyhow::{Context, bail};
use muster_domain::clock::parse_duration;
use muster_domain::notify::{Channel, Throttle};
use muster_notify::{SmtpSettings, SmtpTls};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://muster.db";
pub const DEFAULT_SECRET_KEY_FILE: &str = "muster.key";

/// The `--config` file. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub public_url: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    /// Outgoing email; without it, email contacts are not served.
    pub smtp: Option<SmtpConfig>,
    /// Limits per contact method; the default when absent (see `Throttle::defaults`).
    pub throttle: Option<Vec<ThrottleConfig>>,
    /// Alert intake settings.
    pub alerts: Option<AlertsConfig>,
    /// The change policy.
    pub changes: Option<ChangesConfig>,
    /// How renewables' targets are probed.
    pub probes: Option<ProbesConfig>,
}

/// The `[probes]` section; every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbesConfig {
    /// How often each target is probed, e.g. `"6h"` (the default).
    pub interval: Option<String>,
    /// How long one probe may take, e.g. `"10s"` (the default).
    pub timeout: Option<String>,
    /// Probes running at once (default 32).
    pub concurrency: Option<usize>,
    /// PEM certificates trusted besides the Mozilla roots (an internal CA).
    pub ca_file: Option<PathBuf>,
}

/// The `[changes]` section; every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesConfig {
    /// How far along the dependency graph other work conflicts (default 2).
    pub hops: Option<u32>,
    /// More launches than this per owner team within `launch_window` conflict (default 2).
    pub launches: Option<u32>,
    /// e.g. `"30d"` (the default).
    pub launch_window: Option<String>,
    /// How long after it starts an emergency change may be approved, e.g. `"24h"`.
    pub emergency_approval_window: Option<String>,
}

/// The `[alerts]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// How long resolved alerts are kept, e.g. `"30d"` (default 90 days).
    pub retention: Option<String>,
}

/// One `[[throttle]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// `email`, `webhook`, `slack` or `teams`; every channel when absent.
    pub channel: Option<Channel>,
    pub max: u32,
    pub per: String,
}

impl FileConfig {
    /// How long resolved alerts are kept.
    pub fn alert_retention(&self) -> anyhow::Result<jiff::SignedDuration> {
        let Some(text) = self.alerts.as_ref().and_then(|a| a.retention.as_deref()) else {
            return Ok(muster_engine::DEFAULT_ALERT_RETENTION);
        };
        parse_duration(text)
            .ok()
            .filter(|d| *d >= jiff::SignedDuration::from_hours(1))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "[alerts] retention: {text:?} is not a duration of at least 1h (e.g. \"30d\")"
                )
            })
    }

    /// The change policy's settings, each checked.
    pub fn change_settings(&self) -> anyhow::Result<muster_domain::changes::Settings> {
        let mut settings = muster_domain::changes::Settings::default();
        let Some(c) = &self.changes else {
            return Ok(settings);
        };
        let duration = |key: &str, text: &str| {
            parse_duration(text)
                .ok()
                .filter(|d| d.is_positive())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "[changes] {key}: {text:?} is not a positive duration (e.g. \"30d\")"
                    )
                })
        };
        if let Some(hops) = c.hops {
            if !(1..=6).contains(&hops) {
                bail!("[changes] hops: must be from 1 to 6, got {hops}");
            }
            settings.hops = hops;
        }
        if let Some(launches) = c.launches {
            if launches == 0 {
                bail!("[changes] launches: must be at least 1");
            }
            settings.launches = launches;
        }
        if let Some(text) = &c.launch_window {
            settings.launch_window = duration("launch_window", text)?;
        }
        if let Some(text) = &c.emergency_approval_window {
            settings.emergency_approval_window = duration("emergency_approval_window", text)?;
        }
        Ok(settings)
    }

    /// How probes run, each setting checked (the CA file is read now).
    pub fn probe_settings(&self) -> anyhow::Result<muster_engine::probes::ProbeSettings> {
        let c = self.probes.clone().unwrap_or_default();
        let duration = |key: &str, text: &Option<String>, default: jiff::SignedDuration| {
            let Some(text) = text else {
                return Ok(default);
            };
            parse_duration(text)
                .ok()
                .filter(|d| d.is_positive())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "[probes] {key}: {text:?} is not a positive duration (e.g. \"6h\")"
                    )
                })
        };
        let interval = duration(
            "interval",
            &c.interval,
            muster_engine::probes::DEFAULT_INTERVAL,
        )?;
        let timeout = duration(
            "timeout",
            &c.timeout,
            jiff::SignedDuration::try_from(muster_probe::DEFAULT_TIMEOUT)?,
        )?;
        let concurrency = c.concurrency.unwrap_or(muster_probe::DEFAULT_CONCURRENCY);
        if !(1..=1024).contains(&concurrency) {
            bail!("[probes] concurrency: must be from 1 to 1024, got {concurrency}");
        }
        let roots = match &c.ca_file {
            None => Vec::new(),
            Some(path) => std::fs::read(path)
                .with_context(|| format!("[probes] ca_file: cannot read {}", path.display()))?,
        };
        if c.ca_file.is_some() && muster_probe::certificates::find(&roots).is_empty() {
            bail!("[probes] ca_file: no certificate in it (PEM or DER)");
        }
        let prober = muster_probe::Prober::new(&roots, timeout.unsigned_abs())
            .map_err(|e| anyhow::anyhow!("[probes] ca_file: {e}"))?;
        Ok(muster_engine::probes::ProbeSettings {
            prober,
            interval,
            concurrency,
        })
    }

    /// The throttles in force, each checked.
    pub fn throttles(&self) -> anyhow::Result<Vec<Throttle>> {
        let Some(configured) = &self.throttle else {
            return Ok(Throttle::defaults());
        };
        configured
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.max == 0 {
                    bail!("[[throttle]] {}: max must be at least 1", i + 1);
                }
                let per = parse_duration(&t.per)
                    .ok()
                    .filter(|d| d.is_positive())
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "[[throttle]] {}: per: {:?} is not a positive duration (e.g. \"10m\")",
                            i + 1,
                            t.per
                        )
                    })?;
                Ok(Throttle {
                    channel: t.channel,
                    max: t.max,
                    per,
                })
            })
            .collect()
    }
}

/// The `[smtp]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    pub username: Option<String>,
    /// The name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// A file holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    pub from: String,
    /// PEM file of extra trusted certificates, for a relay with a private CA.
    pub ca_file: Option<PathBuf>,
}

impl SmtpConfig {
    /// Reads the password and CA file the section points at.
    pub fn settings(&self) -> anyhow::Result<SmtpSettings> {
        let password = match (&self.password_env, &self.password_file) {
            (Some(_), Some(_)) => bail!("[smtp]: give password_env or password_file, not both"),
            (Some(name), None) => Some(std::env::var(name).map_err(|_| {
                anyhow::anyhow!("[smtp] password_env: environment variable {name} is not set")
            })?),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| {
                        format!("[smtp] password_file: cannot read {}", path.display())
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            (None, None) => None,
        };
        let ca_pem = match &self.ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("[smtp] ca_file: cannot read {}", path.display()))?,
            ),
            None => None,
        };
        Ok(SmtpSettings {
            host: self.host.clone(),
            port: self.port,
            tls: self.tls,
            username: self.username.clone(),
            password,
            from: self.from.clone(),
            ca_pem,
        })
    }
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        match toml::from_str(&text) {
            Ok(config) => Ok(config),
            Err(e) => bail!("config file {}: {e}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_known_keys_and_rejects_typos() {
        let ok: FileConfig =
            toml::from_str("listen = \"127.0.0.1:9000\"\ndatabase_url = \"sqlite://x.db\"")
                .unwrap();
        assert_eq!(ok.listen.as_deref(), Some("127.0.0.1:9000"));
        let err = toml::from_str::<FileConfig>("listn = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listn"), "{err}");
    }

    #[test]
    fn probe_settings_default_and_are_checked() {
        let defaults = FileConfig::default().probe_settings().unwrap();
        assert_eq!(defaults.interval, jiff::SignedDuration::from_hours(6));
        assert_eq!(defaults.concurrency, 32);
        let dir = std::env::temp_dir().join(format!("muster-probes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        for (text, key) in [
            ("interval = \"soon\"", "[probes] interval"),
            ("timeout = \"-1s\"", "[probes] timeout"),
            ("concurrency = 0", "[probes] concurrency"),
            (
                "ca_file = \"/nonexistent/ca.pem\"",
                "[probes] ca_file: cannot read",
            ),
            (
                &format!("ca_file = {:?}", empty.display().to_string()),
                "[probes] ca_file: no certificate",
            ),
        ] {
            let bad: FileConfig = toml::from_str(&format!("[probes]\n{text}\n")).unwrap();
            let error = bad.probe_settings().unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
        assert!(toml::from_str::<FileConfig>("[probes]\ninterval_s = 3\n").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn throttles_default_and_are_checked() {
        assert_eq!(
            FileConfig::default().throttles().unwrap(),
            Throttle::defaults()
        );
        let config: FileConfig = toml::from_str(
            "[[throttle]]\nmax = 5\nper = \"15m\"\n[[throttle]]\nchannel = \"email\"\nmax = 2\nper = \"1h\"\n",
        )
        .unwrap();
        let throttles = config.throttles().unwrap();
        assert_eq!(throttles[1].channel, Some(Channel::Email));
        assert_eq!(throttles[1].per, jiff::SignedDuration::from_hours(1));
        let bad: FileConfig = toml::from_str("[[throttle]]\nmax = 5\nper = \"soon\"\n").unwrap();
        assert!(
            bad.throttles()
                .unwrap_err()
                .to_string()
                .contains("per: \"soon\"")
        );
        let zero: FileConfig = toml::from_str("[[throttle]]\nmax = 0\nper = \"1m\"\n").unwrap();
        let retention: FileConfig = toml::from_str("[alerts]\nretention = \"30d\"\n").unwrap();
        assert_eq!(retention.alert_retention().unwrap().as_hours(), 720);
        let short: FileConfig = toml::from_str("[alerts]\nretention = \"5m\"\n").unwrap();
        assert!(
            short
                .alert_retention()
                .unwrap_err()
                .to_string()
                .contains("[alerts] retention")
        );
        assert!(zero.throttles().is_err());
        assert!(
            toml::from_str::<FileConfig>(
                "[[throttle]]\nchannel = \"sms\"\nmax = 1\nper = \"1m\"\n"
            )
            .is_err()
        );
    }

    #[test]
    fn reads_the_change_policy_and_names_bad_keys() {
        let defaults = FileConfig::default().change_settings().unwrap();
        assert_eq!(defaults, muster_domain::changes::Settings::default());
        let set: FileConfig = toml::from_str(
            "[changes]\nhops = 3\nlaunches = 4\nlaunch_window = \"14d\"\nemergency_approval_window = \"48h\"\n",
        )
        .unwrap();
        let settings = set.change_settings().unwrap();
        assert_eq!((settings.hops, settings.launches), (3, 4));
        assert_eq!(settings.launch_window.as_hours(), 14 * 24);
        assert_eq!(settings.emergency_approval_window.as_hours(), 48);
        for (text, named) in [
            ("hops = 0", "[changes] hops"),
            ("launches = 0", "[changes] launches"),
            ("launch_window = \"soon\"", "[changes] launch_window"),
        ] {
            let bad: FileConfig = toml::from_str(&format!("[changes]\n{text}\n")).unwrap();
            let error = bad.change_settings().unwrap_err().to_string();
            assert!(error.contains(named), "{error}");
        }
        assert!(toml::from_str::<FileConfig>("[changes]\nhop = 2\n").is_err());
    }

    #[test]
    fn reads_the_smtp_section_and_its_password() {
        let dir = std::env::temp_dir().join(format!("muster-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let password_file = dir.join("smtp-password");
        std::fs::write(&password_file, "s3cret\n").unwrap();
        let text = format!(
            "[smtp]\nhost = \"mail.example.com\"\ntls = \"tls\"\nusername = \"muster\"\n\
             password_file = {:?}\nfrom = \"muster@example.com\"\n",
            password_file.display().to_string()
        );
        let config: FileConfig = toml::from_str(&text).unwrap();
        let settings = config.smtp.unwrap().settings().unwrap();
        assert_eq!(settings.tls, SmtpTls::Tls);
        assert_eq!(settings.password.as_deref(), Some("s3cret"));
        std::fs::remove_dir_all(&dir).unwrap();

        let typo =
            toml::from_str::<FileConfig>("[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\ntls = \"ssl\"\n")
                .unwrap_err()
                .to_string();
        assert!(typo.contains("ssl") && typo.contains("starttls"), "{typo}");
        let unset = toml::from_str::<FileConfig>(
            "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\nusername = \"u\"\npassword_env = \"MUSTER_TEST_UNSET_VARIABLE\"\n",
        )
        .unwrap()
        .smtp
        .unwrap()
        .settings()
        .unwrap_err()
        .to_string();
        assert!(unset.contains("MUSTER_TEST_UNSET_VARIABLE"), "{unset}");
    }
}
