//! Settings: command-line flags win over `MUSTER_…` environment variables, which win
//! over the TOML file given by `--config`, which wins over the defaults.

use anyhow::{Context, bail};
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
}
