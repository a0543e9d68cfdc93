//! The crate's error type; messages are written for operators who have to fix a configuration.

/// Everything that can go wrong while loading keys, decrypting data or making credentials.
///
/// No variant ever carries key material or plaintext, so errors are safe to log.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Blind indexes were computed under a key that is no longer configured.
    #[error(
        "the key {key_id} that indexes this database is not configured: after rotating, keep it in LIFECERT_MASTER_KEY after the new active key (e.g. NEW,OLD) so pensioners can still be found"
    )]
    IndexKeyMissing { key_id: String },

    /// The master key text could not be used as a key.
    #[error("invalid master key: {0}")]
    InvalidKey(String),

    /// The data names a key that the ring does not hold.
    #[error(
        "data was encrypted with key {key_id}, which is not in the configured key ring; \
         configure that key (LIFECERT_MASTER_KEY or LIFECERT_MASTER_KEY_FILE)"
    )]
    UnknownKeyId {
        /// The 16-hex-character id of the missing key.
        key_id: String,
    },

    /// Authentication failed: the ciphertext was altered, belongs to another field, or the key is wrong.
    #[error("decryption failed: the data is corrupt or was encrypted with a different key")]
    Decrypt,

    /// The bytes are not in the ciphertext format at all (too short, unknown version or cipher, bad UTF-8).
    #[error("ciphertext is malformed")]
    Malformed,

    /// The database's check value was written under a key other than the configured one.
    #[error(
        "wrong master key: this database was set up with key {expected} but the configured key is {configured}"
    )]
    WrongKey {
        /// Key id recorded in the database.
        expected: String,
        /// Id of the active key in the configured ring.
        configured: String,
    },

    /// A master key file could not be read or created.
    #[error("master key file {path}: {message}")]
    KeyFile {
        /// The file, as given.
        path: String,
        /// What went wrong and, where possible, what to do about it.
        message: String,
    },

    /// The configured field cipher name is not one we know.
    #[error("unknown field cipher {0:?}: use aes-256-gcm or sm4-gcm")]
    UnknownCipher(String),

    /// The operating system could not supply random bytes (salts, secrets, tokens).
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),

    /// Argon2 refused to hash a password; with fixed parameters this points to a bug, not bad input.
    #[error("password hashing failed: {0}")]
    PasswordHash(String),

    /// A stored TOTP secret is not usable (bad base32, or too short).
    #[error("invalid TOTP secret: {0}")]
    TotpSecret(String),
}
