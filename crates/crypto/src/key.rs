//! Master keys and the choice of field cipher.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::CryptoError;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// Appended to every "bad key" message so the operator knows how to make a good one.
const KEY_HINT: &str = "expected base64 of 32 bytes (e.g. `openssl rand -base64 32`)";

const KEY_ID_LABEL: &[u8] = b"lifecert/key-id/v1";

/// The authenticated cipher used for newly written fields.
///
/// Reading always follows the cipher recorded in each ciphertext, so changing
/// this setting never makes existing data unreadable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Cipher {
    /// AES-256 in GCM mode.
    #[default]
    Aes256Gcm,
    /// SM4 (GB/T 32907) in GCM mode, for deployments that must use Chinese national algorithms.
    Sm4Gcm,
}

impl Cipher {
    /// The identifier stored in byte 1 of each ciphertext.
    pub(crate) fn id(self) -> u8 {
        match self {
            Cipher::Aes256Gcm => 1,
            Cipher::Sm4Gcm => 2,
        }
    }

    pub(crate) fn from_id(id: u8) -> Option<Cipher> {
        match id {
            1 => Some(Cipher::Aes256Gcm),
            2 => Some(Cipher::Sm4Gcm),
            _ => None,
        }
    }
}

impl FromStr for Cipher {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "aes-256-gcm" | "aes256gcm" => Ok(Cipher::Aes256Gcm),
            "sm4-gcm" | "sm4gcm" => Ok(Cipher::Sm4Gcm),
            _ => Err(CryptoError::UnknownCipher(s.to_string())),
        }
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cipher::Aes256Gcm => "aes-256-gcm",
            Cipher::Sm4Gcm => "sm4-gcm",
        })
    }
}

/// A 32-byte secret from which all working keys are derived.
///
/// It is meant to live in the environment or a key file, never in the database.
/// `Debug` shows only the key id.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; MASTER_KEY_LEN],
}

impl MasterKey {
    /// Parses standard (padded) base64 of exactly 32 bytes, ignoring surrounding whitespace.
    pub fn from_base64(s: &str) -> Result<MasterKey, CryptoError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(CryptoError::InvalidKey(format!(
                "the key is empty; {KEY_HINT}"
            )));
        }
        // The decode error text never echoes the input, which is a secret (or close to one).
        let decoded = STANDARD
            .decode(s)
            .map_err(|e| CryptoError::InvalidKey(format!("not valid base64 ({e}); {KEY_HINT}")))?;
        let bytes: [u8; MASTER_KEY_LEN] = decoded.as_slice().try_into().map_err(|_| {
            CryptoError::InvalidKey(format!("decodes to {} bytes; {KEY_HINT}", decoded.len()))
        })?;
        Ok(MasterKey { bytes })
    }

    /// Makes a new key from the operating system's random number generator.
    pub fn generate() -> Result<MasterKey, CryptoError> {
        let mut bytes = [0u8; MASTER_KEY_LEN];
        getrandom::getrandom(&mut bytes).map_err(|e| {
            CryptoError::InvalidKey(format!(
                "cannot generate a key: random number generator failed: {e}"
            ))
        })?;
        Ok(MasterKey { bytes })
    }

    /// Standard padded base64, the form accepted by [`MasterKey::from_base64`].
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    /// A stable public name for the key: 16 lowercase hex characters.
    ///
    /// Derived through HMAC so that it identifies the key without revealing anything about it.
    pub fn key_id(&self) -> String {
        hex(&self.key_id_bytes())
    }

    pub(crate) fn key_id_bytes(&self) -> [u8; 8] {
        let tag = self.derive(KEY_ID_LABEL);
        let mut id = [0u8; 8];
        id.copy_from_slice(&tag[..8]);
        id
    }

    /// HMAC-SHA256(master, label): the one derivation used for every subkey.
    pub(crate) fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut mac = self.hmac();
        mac.update(label);
        mac.finalize().into_bytes().into()
    }

    fn hmac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail; the fallback only satisfies the type.
        <HmacSha256 as Mac>::new_from_slice(&self.bytes)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.key_id())
    }
}

/// A pre-keyed HMAC, so callers can `clone()` it instead of re-running the key schedule.
pub(crate) fn keyed_hmac(key: &[u8; 32]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn base64_round_trip_and_whitespace() {
        let k = MasterKey::from_base64(&format!("  {KEY_B64}\n")).unwrap();
        assert_eq!(k.to_base64(), KEY_B64);
        assert_eq!(
            MasterKey::from_base64(&k.to_base64()).unwrap().bytes,
            k.bytes
        );
    }

    #[test]
    fn rejects_wrong_length() {
        // 16 bytes: a plausible mistake (an AES-128 or SM4 key).
        let err = MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODw==").unwrap_err();
        assert!(matches!(err, CryptoError::InvalidKey(_)));
        let msg = err.to_string();
        assert!(msg.contains("32 bytes"), "{msg}");
        assert!(msg.contains("16 bytes"), "{msg}");
        assert!(msg.contains("openssl rand -base64 32"), "{msg}");
    }

    #[test]
    fn rejects_bad_base64_and_empty() {
        for bad in [
            "not base64!!",
            "",
            "   ",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        ] {
            let err = MasterKey::from_base64(bad).unwrap_err();
            assert!(matches!(err, CryptoError::InvalidKey(_)), "{bad:?}");
            let msg = err.to_string();
            assert!(msg.starts_with("invalid master key: "), "{msg}");
            assert!(msg.contains("32 bytes"), "{msg}");
        }
    }

    #[test]
    fn error_does_not_echo_the_key() {
        let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQ=";
        let msg = MasterKey::from_base64(secret).unwrap_err().to_string();
        assert!(!msg.contains(secret), "{msg}");
    }

    #[test]
    fn key_id_is_stable_hex_and_debug_hides_bytes() {
        let k = MasterKey::from_base64(KEY_B64).unwrap();
        let id = k.key_id();
        assert_eq!(id.len(), 16);
        assert!(id
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_eq!(id, k.clone().key_id());
        assert_eq!(format!("{k:?}"), format!("MasterKey({id})"));
        assert!(!format!("{k:?}").contains(KEY_B64));

        // Pinned so an accidental change of derivation (which would orphan every database) fails loudly.
        let expected = {
            let mut mac = HmacSha256::new_from_slice(&k.bytes).unwrap();
            mac.update(b"lifecert/key-id/v1");
            hex(&mac.finalize().into_bytes()[..8])
        };
        assert_eq!(id, expected);
    }

    #[test]
    fn generate_gives_distinct_keys() {
        let a = MasterKey::generate().unwrap();
        let b = MasterKey::generate().unwrap();
        assert_ne!(a.bytes, b.bytes);
        assert_ne!(a.key_id(), b.key_id());
        assert_eq!(
            MasterKey::from_base64(&a.to_base64()).unwrap().bytes,
            a.bytes
        );
    }

    #[test]
    fn cipher_parse_and_display() {
        for (s, c) in [
            ("aes-256-gcm", Cipher::Aes256Gcm),
            ("AES256GCM", Cipher::Aes256Gcm),
            ("Aes-256-Gcm", Cipher::Aes256Gcm),
            ("sm4-gcm", Cipher::Sm4Gcm),
            ("SM4GCM", Cipher::Sm4Gcm),
        ] {
            assert_eq!(s.parse::<Cipher>().unwrap(), c, "{s}");
        }
        assert_eq!(Cipher::default(), Cipher::Aes256Gcm);
        for c in [Cipher::Aes256Gcm, Cipher::Sm4Gcm] {
            assert_eq!(c.to_string().parse::<Cipher>().unwrap(), c);
            assert_eq!(Cipher::from_id(c.id()), Some(c));
        }
        assert_eq!(Cipher::Aes256Gcm.to_string(), "aes-256-gcm");
        assert_eq!(Cipher::Sm4Gcm.to_string(), "sm4-gcm");
        let err = "chacha20".parse::<Cipher>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown field cipher \"chacha20\": use aes-256-gcm or sm4-gcm"
        );
    }

    #[test]
    fn hex_encodes_lowercase() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }
}
