//! API keys and login session tokens: random bearer secrets of which only a SHA-256 hash is stored.
//!
//! A key is `lck_` (API key) or `lcs_` (session token) followed by 43 characters of
//! URL-safe base64 without padding, encoding 32 random bytes. The prefix lets
//! secret scanners and humans tell what leaked; the database keeps only the hash,
//! so a copy of it cannot be used to authenticate.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::random::fill_random;
use crate::CryptoError;

/// Prefix of API keys for machine clients.
const API_KEY_PREFIX: &str = "lck_";
/// Prefix of session tokens handed to logged-in browsers.
const SESSION_PREFIX: &str = "lcs_";
/// Random bytes per key: 256 bits, far beyond guessing.
const TOKEN_BYTES: usize = 32;

/// Makes a new API key. Returns the key, to show once and then forget, and the hash to store.
pub fn generate_api_key() -> Result<(String, [u8; 32]), CryptoError> {
    token(API_KEY_PREFIX)
}

/// Makes a new login session token. Returns the token for the client and the hash to store.
pub fn session_token() -> Result<(String, [u8; 32]), CryptoError> {
    token(SESSION_PREFIX)
}

/// SHA-256 of the key text, prefix included; used for API keys and session tokens alike.
///
/// A fast hash is enough here: the key carries 256 random bits, so there is
/// nothing for a slow hash to protect against (unlike a human-chosen password).
/// Looking the hash up through an ordinary database index is safe: timing can
/// leak at most a prefix of a hash, which the attacker cannot steer towards a
/// real key's hash.
pub fn api_key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Compares two byte strings in time that depends only on their lengths, not their contents.
///
/// Lengths are not treated as secret: unequal lengths return `false` at once.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box stops the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

fn token(prefix: &str) -> Result<(String, [u8; 32]), CryptoError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    fill_random(&mut bytes)?;
    let key = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = api_key_hash(&key);
    Ok((key, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_shape(key: &str, prefix: &str) {
        assert_eq!(key.len(), prefix.len() + 43, "{key}");
        let body = key.strip_prefix(prefix).unwrap();
        assert!(
            body.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "{key}"
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), TOKEN_BYTES);
    }

    #[test]
    fn api_keys_have_prefix_length_and_matching_hash() {
        let (key, hash) = generate_api_key().unwrap();
        assert_shape(&key, "lck_");
        assert_eq!(api_key_hash(&key), hash);
        let (other, other_hash) = generate_api_key().unwrap();
        assert_ne!(key, other);
        assert_ne!(hash, other_hash);
    }

    #[test]
    fn session_tokens_have_their_own_prefix() {
        let (token, hash) = session_token().unwrap();
        assert_shape(&token, "lcs_");
        assert_eq!(api_key_hash(&token), hash);
        assert_ne!(session_token().unwrap().0, token);
    }

    #[test]
    fn hash_is_plain_sha256_of_the_text() {
        // FIPS 180-2 test vector, pinned so stored hashes never silently change meaning.
        assert_eq!(
            crate::key::hex(&api_key_hash("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_eq_cases() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"bbc"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
