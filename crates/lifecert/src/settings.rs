//! One typed `Settings`: defaults, then a TOML file, then `LIFECERT_*` environment
//! variables, then command-line flags; validated once at start.

use anyhow::{bail, Context, Result};
use lifecert_app::feeds::MatchingSettings;
use lifecert_app::integration::WebhookSecret;
use lifecert_app::keys::KeySettings;
use lifecert_crypto::Cipher;
use lifecert_domain::feed::Sources;
use lifecert_domain::IdScheme;
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://lifecert-data/lifecert.db";
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database_url: Option<String>,
    addr: Option<String>,
    secure_cookies: Option<bool>,
    master_key_file: Option<PathBuf>,
    field_cipher: Option<String>,
    /// `cn_resident` (default) or `generic`.
    id_scheme: Option<String>,
    #[serde(default)]
    sources: Vec<lifecert_domain::feed::SourceConfig>,
    #[serde(default)]
    matching: MatchingSettings,
    #[serde(default)]
    scheduler: crate::scheduler::SchedulerFile,
    #[serde(default)]
    integration: IntegrationSettings,
    /// `[notify]`: read by `crate::notify` (channels for `lifecert-notify`, and delivery).
    notify: Option<toml::Table>,
}

/// `[integration]`: endpoints other systems push to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntegrationSettings {
    /// A file holding the OpenCRVS webhook's shared secret (`hub.secret`).
    opencrvs_secret_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    /// Where `serve` listens.
    pub addr: std::net::SocketAddr,
    /// Mark session cookies `Secure` (when served behind TLS).
    pub secure_cookies: bool,
    pub keys: KeySettings,
    /// How pensioners are identified: `id_scheme` in the file or `LIFECERT_ID_SCHEME`.
    /// Fixed when a database is first used.
    pub id_scheme: IdScheme,
    /// The feed sources: the shipped ones with `[[sources]]` applied.
    pub sources: Sources,
    pub matching: MatchingSettings,
    /// `[scheduler]`: the periodic jobs and the job workers of `serve`.
    pub scheduler: crate::scheduler::SchedulerSettings,
    /// The OpenCRVS webhook's shared secret: `LIFECERT_OPENCRVS_SECRET`, else the file
    /// named by `LIFECERT_OPENCRVS_SECRET_FILE` or `[integration] opencrvs_secret_file`.
    /// Without one the webhook is off.
    pub opencrvs_secret: Option<WebhookSecret>,
    /// `[notify]`: the notification channels and how `serve` delivers.
    pub notify: crate::notify::NotifyConfig,
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
        let addr_text = env("LIFECERT_ADDR")
            .or(file.addr)
            .unwrap_or_else(|| DEFAULT_ADDR.to_string());
        let addr = addr_text.parse().with_context(|| {
            format!(
                "the listen address {addr_text:?} is not valid: use HOST:PORT, e.g. 127.0.0.1:8080"
            )
        })?;
        let secure_cookies = match env("LIFECERT_SECURE_COOKIES") {
            Some(v) => matches!(v.as_str(), "1" | "true" | "yes"),
            None => file.secure_cookies.unwrap_or(false),
        };
        let id_scheme = match env("LIFECERT_ID_SCHEME") {
            Some(s) => IdScheme::parse(&s).context("LIFECERT_ID_SCHEME is not valid")?,
            None => match &file.id_scheme {
                Some(s) => {
                    IdScheme::parse(s).context("id_scheme in the settings file is not valid")?
                }
                None => IdScheme::default(),
            },
        };
        let sources = Sources::configured(&file.sources)
            .context("the [[sources]] in the settings file are not valid")?;
        file.matching
            .validate()
            .context("the [matching] settings are not valid")?;
        let opencrvs_secret = match env("LIFECERT_OPENCRVS_SECRET") {
            Some(secret) => Some(
                WebhookSecret::new(&secret).context("LIFECERT_OPENCRVS_SECRET is not usable")?,
            ),
            None => match env("LIFECERT_OPENCRVS_SECRET_FILE")
                .map(PathBuf::from)
                .or(file.integration.opencrvs_secret_file)
            {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).with_context(|| {
                        format!("cannot read the OpenCRVS secret file {}", path.display())
                    })?;
                    Some(WebhookSecret::new(&text).with_context(|| {
                        format!("the OpenCRVS secret in {} is not usable", path.display())
                    })?)
                }
                None => None,
            },
        };
        let scheduler = crate::scheduler::SchedulerSettings::load(file.scheduler)?;
        let notify = crate::notify::NotifyConfig::load(file.notify)?;
        Ok(Settings {
            scheduler,
            notify,
            sources,
            matching: file.matching.clone(),
            opencrvs_secret,
            id_scheme,
            database_url,
            addr,
            secure_cookies,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let p = dir.path().join("lifecert.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn file_then_flag_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let config = write(
            &dir,
            "database_url = \"postgres://u:p@db/lifecert\"\nmaster_key_file = \"/etc/lifecert/key\"\n",
        );
        let s = Settings::load(Some(&config), None).unwrap();
        assert_eq!(s.database_url, "postgres://u:p@db/lifecert");
        assert_eq!(
            s.keys.master_key_file.as_deref(),
            Some(Path::new("/etc/lifecert/key"))
        );
        // The flag (or LIFECERT_DATABASE_URL, merged into it by clap) wins over the file.
        let s = Settings::load(Some(&config), Some("sqlite://x.db".into())).unwrap();
        assert_eq!(s.database_url, "sqlite://x.db");
        assert_eq!(
            Settings::load(None, None).unwrap().database_url,
            DEFAULT_DATABASE_URL
        );
    }

    #[test]
    fn mistakes_in_the_file_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = Settings::load(Some(&write(&dir, "databse_url = \"x\"\n")), None).unwrap_err();
        assert!(format!("{err:#}").contains("databse_url"), "{err:#}");
        let err = Settings::load(Some(&write(&dir, "field_cipher = \"des\"\n")), None).unwrap_err();
        assert!(format!("{err:#}").contains("sm4-gcm"), "{err:#}");
        let err = Settings::load(
            Some(&write(
                &dir,
                "[[sources]]\nname = \"pharmacy\"\nkind = \"life\"\nweight = 2.0\n",
            )),
            None,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("sources[0]"), "{err:#}");
        let err = Settings::load(
            Some(&write(&dir, "[matching]\nprobable = 5.0\npossible = 8.0\n")),
            None,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("matching.possible"), "{err:#}");
    }

    #[test]
    fn id_scheme_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Settings::load(None, None).unwrap().id_scheme,
            IdScheme::CnResident
        );
        let config = write(&dir, "id_scheme = \"generic\"\n");
        assert_eq!(
            Settings::load(Some(&config), None).unwrap().id_scheme,
            IdScheme::Generic
        );
        let err =
            Settings::load(Some(&write(&dir, "id_scheme = \"passport\"\n")), None).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("id_scheme") && text.contains("cn_resident") && text.contains("generic"),
            "{text}"
        );
    }

    #[test]
    fn the_opencrvs_secret_comes_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("opencrvs.secret");
        std::fs::write(&secret, "0123456789abcdef0123\n").unwrap();
        let config = write(
            &dir,
            &format!(
                "[integration]\nopencrvs_secret_file = {:?}\n",
                secret.display().to_string()
            ),
        );
        assert!(Settings::load(Some(&config), None)
            .unwrap()
            .opencrvs_secret
            .is_some());
        std::fs::write(&secret, "short\n").unwrap();
        let err = Settings::load(Some(&config), None).unwrap_err();
        assert!(format!("{err:#}").contains("at least 16"), "{err:#}");
        std::fs::remove_file(&secret).unwrap();
        let err = Settings::load(Some(&config), None).unwrap_err();
        assert!(format!("{err:#}").contains("opencrvs.secret"), "{err:#}");
    }

    #[test]
    fn sources_and_matching_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = write(
            &dir,
            "[[sources]]\nname = \"pharmacy\"\nkind = \"life\"\nweight = 0.4\n\n[matching]\nprobable = 20.0\nweights = \"estimate\"\n",
        );
        let s = Settings::load(Some(&config), None).unwrap();
        assert_eq!(s.sources.named("pharmacy").unwrap().weight_milli, 400);
        assert_eq!(s.matching.probable, 20.0);
        assert_eq!(s.matching.weights, "estimate");
    }
}
