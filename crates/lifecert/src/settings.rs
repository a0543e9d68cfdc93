//! One typed `Settings`: defaults, then a TOML file, then `LIFECERT_*` environment
//! variables, then command-line flags; validated once at start.

use anyhow::{bail, Context, Result};
use lifecert_app::keys::KeySettings;
use lifecert_crypto::Cipher;
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://lifecert-data/lifecert.db";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database_url: Option<String>,
    master_key_file: Option<PathBuf>,
    field_cipher: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub keys: KeySettings,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Settings {
    /// `database_url` comes from the flag or `LIFECERT_DATABASE_URL` (clap merges both).
    pub fn load(config: Option<&Path>, database_url: Option<String>) -> Result<Settings> {
        let file: FileSettings = match config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read settings file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("settings file {} is not valid", path.display()))?
            }
            None => FileSettings::default(),
        };
        let cipher_text = env("LIFECERT_FIELD_CIPHER").or(file.field_cipher);
        let cipher = match cipher_text {
            Some(c) => c.parse::<Cipher>()?,
            None => Cipher::default(),
        };
        let database_url = database_url
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        if database_url.trim().is_empty() {
            bail!(
                "the database URL is empty: use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB"
            );
        }
        Ok(Settings {
            database_url,
            keys: KeySettings {
                master_key: env("LIFECERT_MASTER_KEY"),
                master_key_file: env("LIFECERT_MASTER_KEY_FILE")
                    .map(PathBuf::from)
                    .or(file.master_key_file),
                cipher,
            },
        })
    }
}
