//! Reading and creating master key files, so the key can live outside the environment and the database.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::{CryptoError, MasterKey};

fn key_file_error(path: &Path, message: impl Into<String>) -> CryptoError {
    CryptoError::KeyFile {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Reads a key file and returns its text: one or more base64 keys, active first.
///
/// Parse the result with [`crate::KeyRing::from_key_list`]. Loose permissions are
/// not an error here; see [`key_file_warning`].
pub fn load_key_file(path: &Path) -> Result<String, CryptoError> {
    let bytes = fs::read(path).map_err(|e| {
        let message = match e.kind() {
            io::ErrorKind::NotFound => {
                "file does not exist; create it with a new key (e.g. `openssl rand -base64 32`) \
                 or point LIFECERT_MASTER_KEY_FILE at the right file"
                    .to_string()
            }
            io::ErrorKind::PermissionDenied => {
                "permission denied; the user running lifecert must be able to read it".to_string()
            }
            _ => format!("cannot read: {e}"),
        };
        key_file_error(path, message)
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        key_file_error(
            path,
            "not a text file; expected base64 of 32 bytes (e.g. `openssl rand -base64 32`)",
        )
    })?;
    if text.trim().is_empty() {
        return Err(key_file_error(
            path,
            "file is empty; expected base64 of 32 bytes (e.g. `openssl rand -base64 32`)",
        ));
    }
    Ok(text)
}

/// A warning to show when a key file can be read by users other than its owner.
///
/// Separate from [`load_key_file`] because loose permissions should be reported, not refused.
/// Always `None` off unix.
pub fn key_file_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Some(format!(
                "master key file {} is accessible to other users (mode {mode:03o}); \
                 restrict it with `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
        None
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Generates a new master key and writes it to a new file readable only by its owner.
///
/// Never overwrites: replacing a key file would make everything encrypted with it unreadable.
pub fn create_key_file(path: &Path) -> Result<MasterKey, CryptoError> {
    let key = MasterKey::generate()?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| {
            key_file_error(
                path,
                format!("cannot create directory {}: {e}", parent.display()),
            )
        })?;
    }

    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Set at creation so the key is never briefly readable by others.
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        let message = if e.kind() == io::ErrorKind::AlreadyExists {
            "already exists; refusing to overwrite a master key (data encrypted with it would \
             become unreadable)"
                .to_string()
        } else {
            format!("cannot create: {e}")
        };
        key_file_error(path, message)
    })?;

    let mut text = key.to_base64();
    text.push('\n');
    if let Err(e) = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
    {
        drop(file);
        // A half-written key file would fail later in a more confusing way; remove it.
        let _ = fs::remove_file(path);
        return Err(key_file_error(path, format!("cannot write: {e}")));
    }
    Ok(key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Cipher, Field, KeyRing};

    #[test]
    fn create_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/master.key");
        let key = create_key_file(&path).unwrap();

        let text = load_key_file(&path).unwrap();
        assert_eq!(text, format!("{}\n", key.to_base64()));
        let ring = KeyRing::from_key_list(&text, Cipher::default()).unwrap();
        assert_eq!(ring.active_key_id(), key.key_id());
        let ct = ring.encrypt_str(Field::Name, "x");
        assert_eq!(ring.decrypt_str(Field::Name, &ct).unwrap(), "x");
    }

    #[cfg(unix)]
    #[test]
    fn created_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        create_key_file(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(key_file_warning(&path), None);

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let warning = key_file_warning(&path).unwrap();
        assert!(
            warning.contains("644") && warning.contains("chmod 600"),
            "{warning}"
        );
        // Loose permissions are a warning only.
        load_key_file(&path).unwrap();
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        create_key_file(&path).unwrap();
        let before = fs::read_to_string(&path).unwrap();

        let err = create_key_file(&path).unwrap_err();
        assert!(matches!(err, CryptoError::KeyFile { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("already exists"), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert_eq!(fs::read_to_string(&path).unwrap(), before);
    }

    #[test]
    fn load_errors_are_helpful() {
        let dir = tempfile::tempdir().unwrap();

        let missing = dir.path().join("missing.key");
        let msg = load_key_file(&missing).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("master key file {}: ", missing.display())),
            "{msg}"
        );
        assert!(msg.contains("does not exist"), "{msg}");

        let empty = dir.path().join("empty.key");
        fs::write(&empty, "  \n").unwrap();
        let msg = load_key_file(&empty).unwrap_err().to_string();
        assert!(msg.contains("empty") && msg.contains("32 bytes"), "{msg}");

        let binary = dir.path().join("binary.key");
        fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        let msg = load_key_file(&binary).unwrap_err().to_string();
        assert!(msg.contains("not a text file"), "{msg}");

        let msg = load_key_file(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("cannot read"), "{msg}");
    }

    #[test]
    fn load_returns_a_multi_key_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let a = MasterKey::generate().unwrap();
        let b = MasterKey::generate().unwrap();
        fs::write(&path, format!("{}\n{}\n", a.to_base64(), b.to_base64())).unwrap();
        let ring = KeyRing::from_key_list(&load_key_file(&path).unwrap(), Cipher::Sm4Gcm).unwrap();
        assert_eq!(ring.key_ids(), vec![a.key_id(), b.key_id()]);
    }
}
