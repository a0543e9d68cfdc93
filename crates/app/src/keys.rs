//! Where the master key comes from: `LIFECERT_MASTER_KEY`, `LIFECERT_MASTER_KEY_FILE`,
//! or (SQLite only) a key file lifecert creates beside a new database.

use crate::{AppError, Result};
use lifecert_crypto::{create_key_file, load_key_file, Cipher, KeyRing};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct KeySettings {
    /// One or more base64 keys; the first encrypts, the others still decrypt.
    pub master_key: Option<String>,
    pub master_key_file: Option<PathBuf>,
    pub cipher: Cipher,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File(PathBuf),
    /// A new key file was made for a new SQLite database: the operator must be told.
    Created(PathBuf),
}

/// The key file lifecert keeps beside a SQLite database: `lifecert.db` → `lifecert.key`.
pub fn default_key_file(db_path: &Path) -> PathBuf {
    db_path.with_extension("key")
}

pub fn resolve_key_ring(
    settings: &KeySettings,
    database_url: &str,
) -> Result<(KeyRing, KeySource)> {
    if let Some(list) = settings
        .master_key
        .as_deref()
        .filter(|k| !k.trim().is_empty())
    {
        return Ok((
            KeyRing::from_key_list(list, settings.cipher)?,
            KeySource::Environment,
        ));
    }
    if let Some(path) = &settings.master_key_file {
        let list = load_key_file(path)?;
        return Ok((
            KeyRing::from_key_list(&list, settings.cipher)?,
            KeySource::File(path.clone()),
        ));
    }
    let how = "set LIFECERT_MASTER_KEY to the base64 of 32 random bytes (e.g. `openssl rand -base64 32`) or LIFECERT_MASTER_KEY_FILE to a file that holds it; keep it outside the database and back it up: without it the personal data cannot be read";
    let Some(db_path) = lifecert_store::sqlite_path(database_url) else {
        return Err(AppError::invalid(
            "master_key",
            format!("no master key is configured: {how}"),
        ));
    };
    let key_path = default_key_file(&db_path);
    if key_path.exists() {
        let list = load_key_file(&key_path)?;
        return Ok((
            KeyRing::from_key_list(&list, settings.cipher)?,
            KeySource::File(key_path),
        ));
    }
    if db_path.exists() {
        return Err(AppError::invalid(
            "master_key",
            format!(
                "the database {} exists but its key file {} is missing and no key is configured: restore the key file, or {how}",
                db_path.display(),
                key_path.display()
            ),
        ));
    }
    let key = create_key_file(&key_path)?;
    Ok((
        KeyRing::new(key, Vec::new(), settings.cipher),
        KeySource::Created(key_path),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_gets_a_key_file_postgres_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/x/lifecert.db", dir.path().display());
        let (ring, source) = resolve_key_ring(&KeySettings::default(), &url).unwrap();
        let key_path = dir.path().join("x/lifecert.key");
        assert_eq!(source, KeySource::Created(key_path.clone()));
        let (again, source) = resolve_key_ring(&KeySettings::default(), &url).unwrap();
        assert_eq!(source, KeySource::File(key_path));
        assert_eq!(ring.active_key_id(), again.active_key_id());

        let err = resolve_key_ring(&KeySettings::default(), "postgres://u@localhost/db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("LIFECERT_MASTER_KEY"), "{err}");
    }
}
